#!/usr/bin/env bash
# On a GPU machine: an A/B of JVM option sets on our decode `bench`, alternated over rounds in one call, so that a
# change behind a system property (e.g. -Dpagedattn.tornado.mergeRows=true) is timed next to the default on the same
# card and the same cells. Needs a built jar (target/) and a TornadoVM SDK (TORNADOVM_HOME, or an archive for
# benchmarks/device-env.sh).
#   benchmarks/ab.sh BACKEND CELLS OUT_DIR OPTS_A OPTS_B [OPTS_C ...]
#   e.g. benchmarks/ab.sh cuda 1x1024,8x8192,64x4096 /tmp/ab "" "-Dpagedattn.tornado.mergeRows=true"
# Environment: ROUNDS (default 2), SEED (default 20261201), BENCH_ARGS (extra bench arguments).
# Writes OUT_DIR/ab-<set>-<round>.csv (bench's CSV; on PTX one process per cell, joined: TornadoVM 5.2's PTX backend
# fails at a process's sixth plan) and prints, per cell, each set's min kernel time per round (TornadoVM's profiler)
# and its min wall time per call.
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
if [[ -x "$TORNADOVM_HOME/bin/tornado-backends" ]]; then
  (cd /tmp && "$TORNADOVM_HOME/bin/tornado-backends" "$backend" >/dev/null)
fi
per_process="$cells"
[[ "$backend" == ptx ]] && per_process="${cells//,/ }"
for r in $(seq 1 "${ROUNDS:-2}"); do
  i=0
  for opts in "$@"; do
    csv="$out/ab-$i-$r.csv"
    rm -f "$csv"
    for c in $per_process; do
      echo "== PA_JVM_OPTS='$opts' bin/pa-tornado $backend bench --cells $c (set $i, round $r)" >&2
      PA_JVM_OPTS="$opts" bin/pa-tornado "$backend" bench --sweeps decode --ragged none --variants auto \
        --seed "${SEED:-20261201}" --iterations 10 --cells "$c" --out "$csv.part" ${BENCH_ARGS:-} > /dev/null \
        || echo "set $i round $r cells $c stopped (rc=$?)" >&2
      if [[ -f "$csv.part" ]]; then
        if [[ -f "$csv" ]]; then tail -n +2 "$csv.part" >> "$csv"; else cp "$csv.part" "$csv"; fi
        rm -f "$csv.part"
      fi
    done
    i=$((i + 1))
  done
done
python3 benchmarks/ab_table.py "$out" "$@"
