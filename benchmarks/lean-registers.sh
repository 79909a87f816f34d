#!/usr/bin/env bash
# Registers of the stream kernel's bodies that DecodeGrid.leanStreamBody plans on grids of 2112 one-warp groups
# (16 per SM, so at most 128 registers each); every other body is planned on 1584 (12 per SM). What nvcc makes of
# TornadoVM's printed CUDA C drifts as the bodies change: the fp16 head-dim-256 body went from 128 registers to 142
# unnoticed and ran 1.21-1.23x slower on its lean grid (H100, benchmarks/NOTES.md, fifty-second session). Run this
# after changing a stream body or the rule: it prints each lean shape's body and registers, and exits 1 if one needs
# more than 128. The FP8 twins cannot be printed without a GPU (benchmarks/kernel-registers.sh says why); their INT8
# siblings, which decode the same words with fewer instructions, stand in.
#   benchmarks/lean-registers.sh
# Needs what benchmarks/kernel-registers.sh needs (TORNADOVM_HOME with the CUDA backend enabled, nvcc, python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# check flags of each shape the rule makes lean (Llama-3-8B's 8 KV heads; --q-heads sets the group)
shapes=(
  "--dtype fp16 --head-dim 64 --q-heads 32"
  "--dtype fp16 --head-dim 64 --q-heads 32 --v-sums fp16"
  "--dtype fp16 --head-dim 256 --q-heads 16"
  "--dtype fp16 --head-dim 256 --q-heads 16 --v-sums fp16"
  "--dtype fp16 --head-dim 80 --q-heads 8"
  "--dtype fp16 --head-dim 80 --q-heads 8 --v-sums fp16"
  "--dtype int8 --head-dim 64 --q-heads 32"
  "--dtype int8 --head-dim 256 --q-heads 32"
  "--dtype int8 --q-heads 16"
  "--dtype int8 --head-dim 80 --q-heads 8"
  "--dtype int8 --head-dim 96 --q-heads 8"
)
over=0
for shape in "${shapes[@]}"; do
  # shellcheck disable=SC2086
  line="$("$here/kernel-registers.sh" $shape | grep '^attention' || true)"
  regs="$(sed -n 's/.*Used \([0-9]*\) registers.*/\1/p' <<< "$line")"
  printf '%-55s %s\n' "$shape" "${line:-no stream body printed}"
  if [[ -z "$regs" || "$regs" -gt 128 ]]; then
    over=1
  fi
done
if (( over )); then
  echo "error: a lean body needs more than 128 registers (or was not printed): fix the body or DecodeGrid.leanStreamBody" >&2
  exit 1
fi
