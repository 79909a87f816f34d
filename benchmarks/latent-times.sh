#!/usr/bin/env bash
# On a GPU machine: decode over a latent (MLA) cache, our latent kernel against PyTorch's eager MLA decode in the same
# run. For each cell and head count, `check` through the tornado backend (DeepSeek's 576 = 512 + 64, block 64, DTYPE;
# kernel time by TornadoVM's profiler, CUDA graphs off, min of 20 steps, checked against fp64), optionally the same on
# the first version's grid (OLD_GRID=1: 528 target work-groups, partitions of at least 512 tokens) and in FP8, then
# benchmarks/peer_mla.py over the same cells. Needs a built jar (target/) and a TornadoVM SDK (TORNADOVM_HOME, or an
# archive for benchmarks/device-env.sh).
#   benchmarks/latent-times.sh [OUT_DIR]      (default benchmarks/results/latent-times)
# Environment:
#   BACKENDS   TornadoVM backends, in order (default "cuda ptx")
#   CELLS      BATCHxCONTEXT cells (default "8x8192 32x4096")
#   HEADS      query head counts (default "16 128": DeepSeek-V2-Lite's and V3's)
#   OLD_GRID   1 to also time each cell on the first version's grid (default 0)
#   FP8        1 to also time each cell over an FP8 E4M3 cache (default 0)
#   DTYPE      the K/V dtype of the main lines (default fp16; PoCL: fp32)
#   LIMIT_S    seconds each process may take (default 60; an fp64 reference of 64k tokens at 128 heads takes longer)
# Writes OUT_DIR/<backend>-<heads>-<cell>[-old|-fp8].txt, OUT_DIR/peer-mla.txt and OUT_DIR/summary.txt (one line per
# process: its kernel time, relative L2 and verdict).
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
source benchmarks/bench-cells.sh  # use_backend
out="${1:-benchmarks/results/latent-times}"
mkdir -p "$out"
: > "$out/summary.txt"
cells="${CELLS:-8x8192 32x4096}"
limit="${LIMIT_S:-60}"
old="-Dpagedattn.tornado.latentTargetGroups=528 -Dpagedattn.tornado.latentMinPartitionTokens=512"
one() {  # backend file-stem jvm-opts dtype heads batch context
  local be=$1 file="$out/$2.txt" opts=$3 dtype=$4 heads=$5 batch=$6 context=$7
  PA_JVM_OPTS="-Dpagedattn.tornado.cudaGraph=false $opts" timeout -s KILL "$limit" bin/pa-tornado "$be" check --backend tornado \
      --head-dim 576 --latent-dim 512 --kv-heads 1 --q-heads "$heads" --block-size 64 --dtype "$dtype" --batch "$batch" \
      --context "$context" --iterations 20 --seed 20261205 > "$file" 2>&1
  local rc=$? verdict=FAIL
  grep -q -- "-> PASS" "$file" && [[ $rc == 0 ]] && verdict=PASS
  printf '%s %-5s %-4s heads=%-3s %sx%s %s  %s | %s\n' "$verdict" "$be" "$dtype" "$heads" "$batch" "$context" "${opts:+first grid}" \
      "$(grep -o 'time min=[0-9.]* ms' "$file" | head -1)" "$(grep -o 'relative L2=[0-9.e-]*' "$file" | head -1)" \
      | tee -a "$out/summary.txt"
}
for be in ${BACKENDS:-cuda ptx}; do
  use_backend "$be"
  for heads in ${HEADS:-16 128}; do
    for cell in $cells; do
      b=${cell%x*}
      l=${cell#*x}
      one "$be" "$be-$heads-$cell" "" "${DTYPE:-fp16}" "$heads" "$b" "$l"
      [[ "${OLD_GRID:-0}" == 1 ]] && one "$be" "$be-$heads-$cell-old" "$old" "${DTYPE:-fp16}" "$heads" "$b" "$l"
      [[ "${FP8:-0}" == 1 ]] && one "$be" "$be-$heads-$cell-fp8" "" fp8 "$heads" "$b" "$l"
    done
  done
done
python3 benchmarks/peer_mla.py --cells "$(echo $cells | tr ' ' ',')" --heads "$(echo ${HEADS:-16 128} | tr ' ' ',')" \
    > "$out/peer-mla.txt" 2>&1
cat "$out/peer-mla.txt" | tee -a "$out/summary.txt"
