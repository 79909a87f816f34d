#!/usr/bin/env bash
# One command on a GPU machine: our sweep over the standard workload, the PyTorch peer on the same
# card, then benchmarks/RESULTS.md and the chart. Needs a built jar (target/) and a TornadoVM SDK
# (TORNADOVM_HOME, or an archive for benchmarks/device-env.sh).
#   benchmarks/gpu-sweep.sh [OUT_DIR]        (default benchmarks/results)
# Extra arguments for our sweep: BENCH_ARGS="--iterations 30" benchmarks/gpu-sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
out="${1:-benchmarks/results}"
mkdir -p "$out"
card="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo 'unknown GPU')"
seed="${SEED:-20261127}"
ours_cmd="bin/pa-tornado ptx bench --seed $seed --out $out/ours.csv --prefill-out $out/ours-prefill.csv ${BENCH_ARGS:-}"
grid=""
for b in 1 8 32 64 128 256; do for l in 1024 4096 8192 16384 32768; do grid="$grid${grid:+,}${b}x$l"; done; done
peer_cmd="python3 benchmarks/peer_torch.py --seed $seed --cells $grid --out $out/peer.csv"
ragged_cmd="python3 benchmarks/peer_torch.py --seed $seed --cells ragged --out $out/peer-ragged.csv"
echo "== $ours_cmd" >&2
$ours_cmd
echo "== $peer_cmd" >&2
PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-900}" $peer_cmd || echo "peer grid stopped early (rc=$?); its CSV holds what it measured" >&2
# The ragged row gets its own time limit: a varlen path that stalls must not cost the grid.
PYTHONUNBUFFERED=1 timeout "${PEER_RAGGED_TIMEOUT:-240}" $ragged_cmd || echo "peer ragged row stopped early (rc=$?)" >&2
[[ -f "$out/peer-ragged.csv" ]] && tail -n +2 "$out/peer-ragged.csv" >> "$out/peer.csv"
# Prefill cells (512 new tokens over a cached 8k prefix, B 1/8/32): ours-prefill.csv from the bench above.
prefill_cmd="python3 benchmarks/peer_torch_prefill.py --seed $seed --out $out/peer-prefill.csv"
echo "== $prefill_cmd" >&2
PYTHONUNBUFFERED=1 timeout "${PEER_PREFILL_TIMEOUT:-600}" $prefill_cmd || echo "peer prefill stopped early (rc=$?)" >&2
bin/pa report --ours "$out/ours.csv" --peer "$out/peer.csv" --md benchmarks/RESULTS.md \
  --chart "$out/decode-bandwidth.png" --card "$card" --commands "$ours_cmd; $peer_cmd; $ragged_cmd"
