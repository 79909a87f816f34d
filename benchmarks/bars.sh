#!/usr/bin/env bash
# On a GPU machine: the decode speed bars in one call. Our fp16 step on the bar cells and the PyTorch peer (cuDNN SDPA,
# FlexAttention paged) on the same cells and card, then FP8 and INT8 on the cells of 262k tokens and more, then
# `bin/pa bars`, which prints each bar as PASS, MISS or "not measured". Needs a built jar (target/) and a TornadoVM SDK
# (TORNADOVM_HOME, or an archive for benchmarks/device-env.sh).
#   benchmarks/bars.sh [OUT_DIR]        (default target/bars)
# Environment:
#   BACKENDS   TornadoVM backends, in order (default "cuda ptx"): each runs fp16 on the bar cells and 8-bit on the big ones
#   DTYPES     8-bit dtypes (default "fp8 int8")
#   CELLS      bar cells (default below); BIG the cells of 262k tokens and more among them for the 8-bit runs
#   SEED       random seed of every part (default 20261201)
#   PEER_VARIANTS the peer's variants (default sdpa-cudnn,flex-paged; FlexAttention compiles each cell, ~15 s)
#   PEER_TIMEOUT  seconds for the peer (default 420)
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
out="${1:-target/bars}"
mkdir -p "$out"
seed="${SEED:-20261201}"
cells="${CELLS:-1x1024,1x32768,8x8192,8x32768,32x8192,64x8192,128x1024,128x4096,256x1024}"
big="${BIG:-8x32768,32x8192,64x8192,128x4096,256x1024}"
source benchmarks/bench-cells.sh  # bench_cells
ours=()
csv() { [[ -s "$1" ]] && ours+=("$1"); }  # a CSV with a wrong row (bench's exit 1) still goes to the bars
peer_done=""
for be in ${BACKENDS:-cuda ptx}; do
  bench_cells "$be" "$out/ours-$be-fp16.csv" "$cells" none --variants auto --seed "$seed"
  csv "$out/ours-$be-fp16.csv"
  if [[ -z "$peer_done" ]]; then  # the peer once, right after the first backend's fp16 cells
    peer_done=1
    peer_cmd="python3 benchmarks/peer_torch.py --seed $seed --variants ${PEER_VARIANTS:-sdpa-cudnn,flex-paged} --cells $cells --out $out/peer.csv"
    echo "== $peer_cmd" >&2
    PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-420}" $peer_cmd || echo "peer stopped early (rc=$?); its CSV holds what it measured" >&2
  fi
  for dt in ${DTYPES:-fp8 int8}; do
    bench_cells "$be" "$out/ours-$be-$dt.csv" "$big" none --variants auto --dtype "$dt" --seed "$seed"
    csv "$out/ours-$be-$dt.csv"
  done
done
peer_arg=()
[[ -s "$out/peer.csv" ]] && peer_arg=(--peer "$out/peer.csv")
# the card first: the issues' bars are set for an H200, and a call may get another
echo "card: $(card_name)" | tee "$out/bars.txt"
(IFS=,; bin/pa bars --ours "${ours[*]}" "${peer_arg[@]}") | tee -a "$out/bars.txt"
