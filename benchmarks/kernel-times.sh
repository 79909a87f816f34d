#!/usr/bin/env bash
# On a GPU machine with Nsight Compute: the device time of a decode step by one tool for both sides, our kernels (each
# TornadoVM backend) and cuDNN SDPA's, as ncu's gpu__time_duration summed over a step's kernels
# (benchmarks/kernel_steps.py says why `bench`'s times and the peer's CUDA events differ on small steps).
# Needs a built jar (target/) and a TornadoVM SDK (TORNADOVM_HOME, or an archive for benchmarks/device-env.sh).
#   benchmarks/kernel-times.sh [OUT_DIR]        (default benchmarks/results/kernel-times)
# Environment:
#   BACKENDS     TornadoVM backends, in order (default "cuda ptx")
#   CELLS        BATCHxCONTEXT cells, space-separated (default: the six standard cells of benchmarks/README.md and
#                the other cells of 262k tokens)
#   SEED         random seed (default 20261201)
#   NCU_TIMEOUT  seconds per profiled process (default 120)
#   PEER         0 to leave out the cuDNN side (default 1)
# Writes OUT_DIR/kernel-times.csv (one row per side, backend and cell), OUT_DIR/kernel-times.md (the table) and each
# process's ncu CSV (with its stderr where that is not empty). On an H200 a profiled process of ours takes 60-70 s, the
# peer's about 8 s: the default cells on both backends take about 20 minutes. Every cell is a process of its own
# (as benchmarks/bench-cells.sh says why). The plans run without CUDA graphs here: kernels
# replayed inside a graph are not the steps `bench` times.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
python3 benchmarks/kernel_steps.py selftest > /dev/null || exit 1
out="${1:-benchmarks/results/kernel-times}"
mkdir -p "$out"
rm -f "$out/kernel-times.csv"
seed="${SEED:-20261201}"
cells="${CELLS:-1x1024 1x32768 8x8192 8x32768 32x8192 64x4096 64x8192 256x1024}"
limit="${NCU_TIMEOUT:-120}"
scratch="$(mktemp -d)"  # the CSVs of bench and the peer themselves: their times are those of profiled runs
trap 'rm -rf "$scratch"' EXIT
ncu_args=(--target-processes all --csv --print-units base --clock-control none --metrics gpu__time_duration.sum)

# the peer first: a few seconds a cell
for cell in $( [[ "${PEER:-1}" == 0 ]] || echo "$cells" ); do
  raw="$out/ncu-cudnn-$cell.csv"
  echo "== ncu ... python3 benchmarks/peer_torch.py --variants sdpa-cudnn --cells $cell" >&2
  PYTHONUNBUFFERED=1 timeout "$limit" ncu "${ncu_args[@]}" -k regex:'fprop|flash|reduction' --launch-count 16 \
    python3 benchmarks/peer_torch.py --seed "$seed" --variants sdpa-cudnn --warmup 2 --iters 12 --cells "$cell" \
    --out "$scratch/peer.csv" > "$raw" 2> "$raw.err"
  python3 benchmarks/kernel_steps.py add "$out/kernel-times.csv" peer cudnn "$cell" "$raw"
done
for be in ${BACKENDS:-cuda ptx}; do
  if [[ -x "$TORNADOVM_HOME/bin/tornado-backends" ]]; then
    (cd /tmp && "$TORNADOVM_HOME/bin/tornado-backends" "$be" >/dev/null)
  fi
  for cell in $cells; do
    raw="$out/ncu-$be-$cell.csv"
    echo "== ncu ... bin/pa-tornado $be bench --cells $cell" >&2
    # 16 launches: at least five whole steps of the timed loop (1-3 kernels each), before any other plan of the process
    PA_JVM_OPTS="${PA_JVM_OPTS:-} -Dpagedattn.tornado.cudaGraph=false" timeout "$limit" \
      ncu "${ncu_args[@]}" -k regex:'attention|merge|scatter' --launch-count 16 \
      bin/pa-tornado "$be" bench --sweeps decode --ragged none --variants auto --seed "$seed" --iterations 12 \
      --cells "$cell" --out "$scratch/bench.csv" > "$raw" 2> "$raw.err"
    python3 benchmarks/kernel_steps.py add "$out/kernel-times.csv" ours "$be" "$cell" "$raw"
  done
done
find "$out" -name '*.err' -empty -delete  # ncu's and the programs' stderr, kept where something went wrong
python3 benchmarks/kernel_steps.py table "$out/kernel-times.csv" | tee "$out/kernel-times.md"
