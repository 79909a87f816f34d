# Sourced by benchmarks/gpu-sweep.sh and benchmarks/ab.sh (from the project root, TORNADOVM_HOME set): our bench on
# one TornadoVM backend, over cells, with PTX's one process per cell.

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
  # RAGGED row (or none) into CSV. On PTX every cell runs in a process of its own (the ragged row with the last) and the
  # CSVs are joined: until 2026-12-04 closed plans kept their pools and a later plan's first upload on PTX failed (a
  # wrong result, then a crash; benchmarks/NOTES.md, twenty-second and twenty-sixth sessions). That is fixed, but a
  # whole PTX sweep in one process has not been run since.
  local be="$1" csv="$2" cells="$3" ragged="$4"
  shift 4
  if [[ "$be" != ptx ]]; then
    bench_on "$be" --sweeps decode --cells "$cells" --ragged "$ragged" --out "$csv" "$@"
    return
  fi
  rm -f "$csv"
  local list=(${cells//,/ }) i r
  for i in "${!list[@]}"; do
    r=none
    (( i == ${#list[@]} - 1 )) && r="$ragged"
    bench_on "$be" --sweeps decode --cells "${list[$i]}" --ragged "$r" --out "$csv.cell" "$@" \
      || echo "$be cell ${list[$i]} stopped (rc=$?); the sweep goes on" >&2
    if [[ -f "$csv.cell" ]]; then
      if [[ -f "$csv" ]]; then tail -n +2 "$csv.cell" >> "$csv"; else cp "$csv.cell" "$csv"; fi
      rm -f "$csv.cell"
    fi
  done
}
