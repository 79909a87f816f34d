#!/usr/bin/env bash
# The JVM backend's CPU cells (issue 13) next to PyTorch's CPU SDPA and a memory-read probe, in ONE
# run on one machine; writes OUT_DIR/cpu-sweep.csv (every row), cpu-sweep.md (the table and the
# ratios of the bar), cpu-sweep.log (the machine and the console) and, when the JMH jar is here,
# summary-cells.md / jmh-cells.csv (the JMH cells with the stream baseline).
#   benchmarks/cpu-sweep.sh OUT_DIR
# Needs a JDK 25 (JAVA_HOME, or what bin/pa finds) and a built target/ (no Maven needed when the jar
# is there). The PyTorch peer needs python3 with torch; without it the peer is skipped with a line
# saying so and the table has our rows and our own read probe only.
# Environment: STEPS (timed steps per cell and JVM, 100), WARMUP_SECONDS (4), REPEATS (2 fresh JVMs per
# cell and dtype, in interleaved rounds), PEER_STEPS (torch's timed calls per cell, 50), PROBE_MIB
# (4096), CELLS (1x8192,8x8192,32x4096), THREADS (all processors: ours and torch's thread count),
# JMH (1: also the JMH cells when benchmarks/target/benchmarks.jar exists), JMH_ARGS (appended).
# Timing: about 10 s per JVM on 16 cores (start, K/V fill, warm-up, steps, fp64 check), so the
# defaults take about 2 minutes for ours and well under 4 with the peer (JMH=0).
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: benchmarks/cpu-sweep.sh OUT_DIR" >&2; exit 2
fi
cd "$(dirname "$0")/.."
out="$1"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
threads="${THREADS:-$(nproc)}"
steps="${STEPS:-100}"
repeats="${REPEATS:-2}"
warmup="${WARMUP_SECONDS:-4}"
cells="${CELLS:-1x8192,8x8192,32x4096}"
probe_mib="${PROBE_MIB:-4096}"
log="$out/cpu-sweep.log"
: > "$log"
say() { echo "$*" | tee -a "$log" >&2; }

say "== cpu-sweep $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
say "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) processors, threads used: $threads"
say "memory: $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')"

# Every (cell, dtype) in a JVM of its own: in one JVM the cells measured later depended on which ran
# first (C2 compiled the fp16 widening differently after an fp32 cell; benchmarks/NOTES.md). And each
# REPEATS times, in rounds over all cells, because one JVM's timings on a shared VM can be 2x
# another's: the table takes, per (cell, dtype), the JVM with the lowest median and lists the others.
ours_cmd=(bin/pa bench-cpu --threads "$threads")
say "== ${ours_cmd[*]} --probe-mib $probe_mib (the probe, with one short step), then --cells C --dtypes D --steps $steps --warmup-seconds $warmup for each (C, D), $repeats rounds"
"${ours_cmd[@]}" --cells "${cells%%,*}" --dtypes fp32 --steps 1 --warmup-seconds 0 --probe-mib "$probe_mib" \
  --out "$out/ours-probe.csv" 2>&1 | grep -v 'Using incubator modules' | tee -a "$log" >&2
grep -E '^(impl|jvm-read-probe),' "$out/ours-probe.csv" > "$out/ours-cpu.csv"
for ((round = 1; round <= repeats; round++)); do
  for cell in ${cells//,/ }; do
    for dtype in fp32 fp16; do
      "${ours_cmd[@]}" --cells "$cell" --dtypes "$dtype" --steps "$steps" --warmup-seconds "$warmup" \
        --probe-mib 0 --out "$out/ours-one.csv" 2>&1 \
        | grep -v -e 'Using incubator modules' -e '^impl,' | tee -a "$log" >&2
      tail -n +2 "$out/ours-one.csv" >> "$out/ours-cpu.csv"
    done
  done
done
rm -f "$out/ours-probe.csv" "$out/ours-one.csv"

peer_cmd=(python3 benchmarks/peer_torch_cpu.py --cells "$cells" --threads "$threads" --steps "${PEER_STEPS:-50}"
          --probe-gib "$(awk -v m="$probe_mib" 'BEGIN {print m / 1024}')" --out "$out/peer-cpu.csv")
rm -f "$out/peer-cpu.csv"
if command -v python3 >/dev/null 2>&1 && python3 -c "import torch" >/dev/null 2>&1; then
  say "== ${peer_cmd[*]}"
  PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-1200}" "${peer_cmd[@]}" 2>&1 | tee -a "$log" >&2 \
    || say "peer stopped early (rc=${PIPESTATUS[0]}); its CSV holds what it measured"
else
  say "== PyTorch peer skipped: python3 with torch is not available here (python3: $(command -v python3 || echo none))"
fi

# The JMH cells (as `bin/pa jmh cells`, cold K/V rotated through 256 MiB, with the stream baseline)
# when the benchmark jar was built and travelled with the repo; JMH=0 skips them.
jar=benchmarks/target/benchmarks.jar
if [[ "${JMH:-1}" != 0 && -f "$jar" ]]; then
  source bin/jdk.sh
  jmh_cmd=("$JAVA_HOME/bin/java" @tornado-config/jvm.args @tornado-config/jmh.args
           -jar "$jar" -foe true -rf json -rff "$out/jmh-cells.json" '\.DecodeBenchmark\.|StreamBenchmark'
           -p cell="$cells" -p batch=1 -p context=1024 -p heads=32/8 -p dtype=fp16,fp32 -p megabytes=1024 -p threads=all
           ${JMH_ARGS:-})
  say "== ${jmh_cmd[*]}"
  jmh_start=$SECONDS
  if "${jmh_cmd[@]}" > "$out/jmh-cells.log" 2>&1; then
    "$JAVA_HOME/bin/java" @tornado-config/jvm.args -cp "$jar" dev.pagedattn.bench.Summary "$out/jmh-cells.json" \
      "$out/jmh-cells.csv" cells "$((SECONDS - jmh_start))" "$(cut -d' ' -f1 /proc/loadavg)" > "$out/summary-cells.md"
    say "JMH cells: $out/summary-cells.md"
  else
    say "JMH cells failed; see $out/jmh-cells.log"
  fi
else
  say "== JMH cells skipped: ${jar} is not here (build it with bin/pa jmh cells where Maven is) or JMH=0"
fi

csv="$out/cpu-sweep.csv"
cp "$out/ours-cpu.csv" "$csv"
[[ -f "$out/peer-cpu.csv" ]] && tail -n +2 "$out/peer-cpu.csv" >> "$csv"

# The table: one row per cell; ratios of issue 13's bar (times are the min over the steps).
awk -F, -v cells="$cells" -v cmd="${ours_cmd[*]} --cells C --dtypes D --steps $steps --warmup-seconds $warmup (each in its own JVM, $repeats rounds); ${peer_cmd[*]}" '
  NR == 1 || $1 == "impl" { next }
  # several JVMs per key: keep the one with the lowest median, list them all in runs[]
  { key = $1 "|" $2 "|" $3
    runs[key] = (nruns[key]++ ? runs[key] ", " : "") sprintf("%.2f/%.2f", $8, $9)
    if (!(key in md) || $9 + 0 < md[key] + 0) { mn[key] = $8; md[key] = $9; gbs[key] = $11; st[key] = $13 }
    if ($13 != "ok" && $1 !~ /read-probe/) { bad[key] = $13 } }
  $1 ~ /read-probe/ { probe[$1] = $11; probeCell[$1] = $2 }
  function t(impl, cell, dt,   k) { k = impl "|" cell "|" dt; return (k in mn && mn[k] != "") ? sprintf("%.2f / %.2f", mn[k], md[k]) : "n/a" }
  function ratio(a, b) { return (a != "" && b != "" && b + 0 > 0) ? sprintf("%.2f", a / b) : "n/a" }
  function m(impl, cell, dt) { return mn[impl "|" cell "|" dt] }
  END {
    readbw = ("torch-read-probe" in probe) ? probe["torch-read-probe"] : probe["jvm-read-probe"]
    readsrc = ("torch-read-probe" in probe) ? "torch.sum" : "our JVM probe (no torch)"
    print "## JVM backend on the CPU (benchmarks/cpu-sweep.sh)"
    print ""
    printf "Memory read: torch.sum %s GB/s, JVM vector-sum probe %s GB/s (%s). Times in ms, min / median over the steps.\n\n",
      ("torch-read-probe" in probe) ? probe["torch-read-probe"] : "n/a", ("jvm-read-probe" in probe) ? probe["jvm-read-probe"] : "n/a",
      ("jvm-read-probe" in probeCell) ? probeCell["jvm-read-probe"] : "no probe"
    print "| cell | ours fp32 | torch fp32 | ours fp16 | torch fp16 | torch bf16 |"
    print "|---|---|---|---|---|---|"
    n = split(cells, cs, ",")
    for (i = 1; i <= n; i++) {
      c = cs[i]
      printf "| %s | %s | %s | %s | %s | %s |\n", c, t("jvm", c, "fp32"), t("torch-sdpa", c, "fp32"), t("jvm", c, "fp16"),
        t("torch-sdpa", c, "fp16"), t("torch-sdpa", c, "bf16")
    }
    print ""
    print "Ours, every JVM (min/median ms; the table shows the one with the lowest median):"
    print ""
    for (i = 1; i <= n; i++) {
      for (j = 1; j <= 2; j++) {
        dt = j == 1 ? "fp32" : "fp16"; k = "jvm|" cs[i] "|" dt
        if (k in runs) printf "- %s %s: %s%s\n", cs[i], dt, runs[k], (k in bad) ? " (one run: " bad[k] ")" : ""
      }
    }
    print ""
    printf "Bar (issue 13), read bandwidth from %s:\n\n", readsrc
    print "| cell | ours fp16 / torch bf16 | ours fp32 / torch fp32 | ours fp32 % of read | median/min fp32 | median/min fp16 | vs fp64 (fp32, fp16) |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
      c = cs[i]
      pct = (gbs["jvm|" c "|fp32"] != "" && readbw + 0 > 0) ? sprintf("%.0f%%", 100 * gbs["jvm|" c "|fp32"] / readbw) : "n/a"
      printf "| %s | %s | %s | %s | %s | %s | %s %s |\n", c, ratio(m("jvm", c, "fp16"), m("torch-sdpa", c, "bf16")),
        ratio(m("jvm", c, "fp32"), m("torch-sdpa", c, "fp32")), pct, ratio(md["jvm|" c "|fp32"], mn["jvm|" c "|fp32"]),
        ratio(md["jvm|" c "|fp16"], mn["jvm|" c "|fp16"]), ("jvm|" c "|fp32" in bad) ? bad["jvm|" c "|fp32"] : st["jvm|" c "|fp32"],
        ("jvm|" c "|fp16" in bad) ? bad["jvm|" c "|fp16"] : st["jvm|" c "|fp16"]
    }
    print ""
    print "Targets: fp16 / torch bf16 <= 1 on 8x8192 and 32x4096, <= 1.5 on 1x8192; fp32 >= 60% of read on 8x8192 and"
    print "32x4096, fp32 / torch fp32 <= 1.5 on 1x8192; median/min <= 1.3 everywhere."
    print ""
    printf "Commands: `%s`\n", cmd
  }' "$csv" > "$out/cpu-sweep.md"
cat "$out/cpu-sweep.md" | tee -a "$log"
say "== wrote $csv, $out/cpu-sweep.md, $log"
