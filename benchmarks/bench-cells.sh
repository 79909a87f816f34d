# Sourced by benchmarks/gpu-sweep.sh, benchmarks/bars.sh and benchmarks/ab.sh (from the project root, TORNADOVM_HOME set):
# our bench on one TornadoVM backend, over cells; the card's name.

use_backend() { # the bundle's tornado-backends tool, where the SDK has it
  if [[ -x "$TORNADOVM_HOME/bin/tornado-backends" ]]; then
    (cd /tmp && "$TORNADOVM_HOME/bin/tornado-backends" "$1" >/dev/null)
  fi
}

bench_on() { # bench_on BACKEND ARGS...: our bench on that backend, the command echoed first
  use_backend "$1"
  local cmd="bin/pa-tornado $1 bench ${*:2}"
  echo "== $cmd" >&2
  $cmd
}

bench_cells() { # bench_cells BACKEND CSV CELLS RAGGED ARGS...: our decode bench over CELLS (comma-separated) and the
  # RAGGED row (or none) into CSV, in one process on every backend. Until 2026-12-04 PTX ran one process per cell: closed
  # plans kept their pools and a later plan's first upload on PTX failed (a wrong result, then a crash; benchmarks/NOTES.md,
  # twenty-second and twenty-sixth sessions). Since the fix the whole PTX grid and the ragged row ran in one process,
  # every row verified (NOTES.md, twenty-eighth session).
  local be="$1" csv="$2" cells="$3" ragged="$4"
  shift 4
  bench_on "$be" --sweeps decode --cells "$cells" --ragged "$ragged" --out "$csv" "$@"
}

card_name() { # the GPU's name as nvidia-smi gives it, or "unknown GPU"
  local card
  card="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  echo "${card:-unknown GPU}"
}
