#!/usr/bin/env bash
# Registers of the stream kernel's bodies against the occupancy their grids assume. DecodeGrid plans the bodies that
# DecodeGrid.leanStreamBody names on grids of 2112 one-warp groups (16 per SM: at most 128 registers each) and every
# other body on 1584 (12 per SM: at most 168). What nvcc makes of TornadoVM's printed CUDA C drifts as the bodies
# change: the fp16 head-dim-256 body went from 128 registers to 142 unnoticed and ran 1.21-1.23x slower on its lean grid
# (H100, benchmarks/NOTES.md, fifty-second session). Run this after changing a stream body or the rule: it prints each
# shape's body, registers and limit, and exits 1 if one needs more than its limit. The FP8 twins cannot be printed
# without a GPU (benchmarks/kernel-registers.sh says why); their INT8 siblings, which decode the same words with fewer
# instructions, stand in. The shapes are the rule's, kept by hand (Llama-3-8B's 8 KV heads; --q-heads sets the group).
#   benchmarks/stream-registers.sh
# Needs what benchmarks/kernel-registers.sh needs (TORNADOVM_HOME with the CUDA backend enabled, nvcc, python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shapes=(  # limit|check flags
  "128|--dtype fp16 --head-dim 64 --q-heads 32"
  "128|--dtype fp16 --head-dim 64 --q-heads 32 --v-sums fp16"
  "128|--dtype fp16 --head-dim 256 --q-heads 16"
  "128|--dtype fp16 --head-dim 256 --q-heads 16 --v-sums fp16"
  "128|--dtype fp16 --head-dim 80 --q-heads 8"
  "128|--dtype fp16 --head-dim 80 --q-heads 8 --v-sums fp16"
  "128|--dtype fp16 --q-heads 64"
  "128|--dtype int8 --head-dim 64 --q-heads 32"
  "128|--dtype int8 --head-dim 256 --q-heads 32"
  "128|--dtype int8 --q-heads 16"
  "128|--dtype int8 --head-dim 80 --q-heads 8"
  "128|--dtype int8 --head-dim 96 --q-heads 8"
  "168|--dtype fp16 --q-heads 32"
  "168|--dtype fp16 --q-heads 32 --v-sums fp16"
  "168|--dtype fp16 --q-heads 64 --v-sums fp16"
  "168|--dtype fp16 --head-dim 256 --q-heads 32"
  "168|--dtype fp16 --head-dim 256 --q-heads 32 --v-sums fp16"
  "168|--dtype fp16 --head-dim 80 --q-heads 32"
  "168|--dtype fp16 --head-dim 96 --q-heads 32"
  "168|--dtype fp16 --head-dim 112 --q-heads 32"
  "168|--dtype int8 --q-heads 32"
  "168|--dtype int8 --q-heads 64"
  "168|--dtype int8 --head-dim 80 --q-heads 32"
  "168|--dtype int8 --head-dim 96 --q-heads 32"
  "168|--dtype int8 --head-dim 112 --q-heads 32"
  "128|--dtype bf16 --head-dim 64 --q-heads 32"
  "128|--dtype bf16 --head-dim 256 --q-heads 16"
  "128|--dtype bf16 --head-dim 80 --q-heads 8"
  "168|--dtype bf16 --q-heads 32"
  "168|--dtype bf16 --q-heads 64"
  "168|--dtype bf16 --head-dim 256 --q-heads 32"
  "168|--dtype bf16 --head-dim 80 --q-heads 32"
  "168|--dtype bf16 --head-dim 96 --q-heads 32"
  "168|--dtype bf16 --head-dim 112 --q-heads 32"
)
over=0
for entry in "${shapes[@]}"; do
  limit="${entry%%|*}"
  shape="${entry#*|}"
  # shellcheck disable=SC2086
  line="$("$here/kernel-registers.sh" $shape | grep '^attention' || true)"
  regs="$(sed -n 's/.*Used \([0-9]*\) registers.*/\1/p' <<< "$line")"
  printf '%-55s <= %s  %s\n' "$shape" "$limit" "${line:-no stream body printed}"
  if [[ -z "$regs" || "$regs" -gt "$limit" ]]; then
    over=1
  fi
done
if (( over )); then
  echo "error: a stream body needs more registers than its grid assumes (or was not printed): fix the body or DecodeGrid's rule" >&2
  exit 1
fi
