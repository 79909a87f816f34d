#!/usr/bin/env bash
# On a GPU machine: our 8-bit decode on TornadoVM's PTX backend under other JIT register caps, one bench process per
# run, with the cap of tornado-config/ptx.args (CU_JIT_MAX_REGISTERS, set for the whole process) replaced for that run
# and put back afterwards (the flag's value holds spaces, which PA_JVM_OPTS cannot carry: TornadoVM's launcher splits
# --jvm on whitespace; a Java @file keeps quotes). This is how benchmarks/NOTES.md's cap experiments (sixty-third to
# sixty-seventh sessions) were measured. Needs a built jar (target/) and a TornadoVM SDK (TORNADOVM_HOME, or an archive
# for benchmarks/device-env.sh).
#   benchmarks/ptx-caps.sh OUT_DIR RUN...
# RUN is LABEL:HEAD_DIM:Q_HEADS:CAP[:FLAGS], FLAGS the run's JVM flags joined by commas, e.g.
#   d112-q8-default:112:8:128
#   d112-q8-nocap:112:8:128:-Dpagedattn.tornado.ptxInt8MaxRegisters=0
#   d96-q8-cap168:96:8:168:-Dpagedattn.tornado.ptxInt8MaxRegisters=0,-Dpagedattn.tornado.streamTargetGroups=1584
# Each run writes OUT_DIR/LABEL-T.csv (T: seconds since the start) and prints its min and median us per cell.
# Environment:
#   CELLS   cells (default 8x32768,64x8192,128x4096)
#   DTYPE   KV dtype (default int8)
#   SEED    random seed (default 20261201)
#   BUDGET  seconds for all runs (default 540): a run that would start with less than 70 s left is skipped, and a run
#           is stopped when the budget is spent
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 2 ]]; then
  echo "usage: benchmarks/ptx-caps.sh OUT_DIR LABEL:HEAD_DIM:Q_HEADS:CAP[:FLAGS]..." >&2
  exit 2
fi
out="$1"
shift
for run in "$@"; do  # every run checked before the first starts
  IFS=: read -r label dim heads cap flags <<<"$run"
  if [[ ! "$label" =~ ^[A-Za-z0-9._-]+$ || ! "$dim" =~ ^[0-9]+$ || ! "$heads" =~ ^[0-9]+$ || ! "$cap" =~ ^[0-9]+$ ]]; then
    echo "error: bad run '$run': want LABEL:HEAD_DIM:Q_HEADS:CAP[:FLAGS], LABEL of letters, digits, ., _ and -" >&2
    exit 2
  fi
done
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
source benchmarks/bench-cells.sh  # bench_cells, card_name
mkdir -p "$out"
args=tornado-config/ptx.args
saved="$(mktemp)"
cp "$args" "$saved"
trap 'cp "$saved" "$args"; rm -f "$saved"' EXIT
if ! grep -q 'CU_JIT_MAX_REGISTERS 128"' "$saved"; then
  echo "error: $args sets no CU_JIT_MAX_REGISTERS 128 to replace" >&2
  exit 1
fi
budget="${BUDGET:-540}"
echo "card: $(card_name)"
for run in "$@"; do
  IFS=: read -r label dim heads cap flags <<<"$run"
  left=$((budget - SECONDS))
  if ((left < 70)); then
    echo "== $label skipped: $left s of the budget left"
    continue
  fi
  sed "s/CU_JIT_MAX_REGISTERS 128\"/CU_JIT_MAX_REGISTERS $cap\"/" "$saved" > "$args"
  csv="$out/$label-$SECONDS.csv"
  PA_JVM_OPTS="${flags//,/ }" timeout "$((left - 10))" bash -c 'source benchmarks/bench-cells.sh; bench_cells "$@"' _ \
    ptx "$csv" "${CELLS:-8x32768,64x8192,128x4096}" none --variants auto --dtype "${DTYPE:-int8}" --head-dim "$dim" \
    --q-heads "$heads" --seed "${SEED:-20261201}" > "$out/$label.log" 2>&1
  rc=$?
  echo "== $label: head dim $dim, $heads query heads, cap $cap, flags '${flags//,/ }': rc $rc at $SECONDS s"
  [[ -s "$csv" ]] && awk -F, '$1 == "ours" && $4 > 0 {
    printf "   %s x %s %s: min %s us, median %s us, rel L2 %s (%s)\n", $4, $5, $2, $8, $9, $14, $15 }' "$csv"
  ((rc == 0)) || grep -iE "error|exception" "$out/$label.log" | head -3
done
