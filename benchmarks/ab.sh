#!/usr/bin/env bash
# On a GPU machine: an A/B of JVM option sets on our decode `bench`, alternated over rounds in one call, so that a
# change behind a system property (e.g. -Dpagedattn.tornado.mergeRows=true) is timed next to the default on the same
# card and the same cells. Needs a built jar (target/) and a TornadoVM SDK (TORNADOVM_HOME, or an archive for
# benchmarks/device-env.sh).
#   benchmarks/ab.sh BACKEND CELLS OUT_DIR OPTS_A OPTS_B [OPTS_C ...]
#   e.g. benchmarks/ab.sh cuda 1x1024,8x8192,64x4096 /tmp/ab "" "-Dpagedattn.tornado.mergeRows=true"
# A set may also carry bench arguments of its own after a '|' (JVM options first): an A/B of two K/V dtypes is
#   benchmarks/ab.sh cuda 8x32768,64x8192 /tmp/ab "|--dtype fp16" "|--dtype bf16"
# Environment: ROUNDS (default 2), SEED (default 20261201), BENCH_ARGS (extra bench arguments; `--iterations N` there
# replaces the default of 10).
# Writes OUT_DIR/ab-<set>-<round>.csv (bench's CSV) and prints, per cell, each set's min kernel time per round (TornadoVM's profiler)
# and its wall time per call (min / median).
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 5 ]]; then
  echo "usage: benchmarks/ab.sh BACKEND CELLS OUT_DIR OPTS_A OPTS_B [OPTS_C ...]" >&2
  exit 2
fi
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
backend="$1" cells="$2" out="$3"
shift 3
mkdir -p "$out"
source benchmarks/bench-cells.sh  # bench_cells
iterations=(--iterations 10)
[[ " ${BENCH_ARGS:-} " == *" --iterations "* ]] && iterations=()  # bench refuses an option given twice
for r in $(seq 1 "${ROUNDS:-2}"); do
  i=0
  for set in "$@"; do
    opts="${set%%|*}"
    args=""
    [[ "$set" == *"|"* ]] && args="${set#*|}"
    echo "== set $i, round $r: PA_JVM_OPTS='$opts' bench args '$args'" >&2
    # shellcheck disable=SC2086
    PA_JVM_OPTS="$opts" bench_cells "$backend" "$out/ab-$i-$r.csv" "$cells" none --variants auto \
      --seed "${SEED:-20261201}" "${iterations[@]}" ${BENCH_ARGS:-} $args > /dev/null
    i=$((i + 1))
  done
done
python3 benchmarks/ab_table.py "$out" "$@"
