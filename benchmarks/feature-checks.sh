#!/usr/bin/env bash
# On a GPU machine (or PoCL): every attention feature checked against fp64 through the tornado backend, one `check` or
# `demo` per line, on each TornadoVM backend, with a PASS/FAIL tally. Needs a built jar (target/) and a TornadoVM SDK
# (TORNADOVM_HOME, or an archive for benchmarks/device-env.sh).
#   benchmarks/feature-checks.sh [OUT_DIR]    (default benchmarks/results/feature-checks)
# Environment:
#   BACKENDS   TornadoVM backends, in order (default "cuda ptx"; PoCL: "opencl")
#   DTYPE      the K/V dtype of the fp16 lines (default fp16; PoCL runs only fp32; bf16 needs BACKENDS=cuda and skips
#              the latent lines, which TornadoVM does not run in bf16)
#   HEAD_DIM   head dim of every line (default 128)
#   CONTEXT    context lengths of the 4 sequences (default 1000..9000; PoCL: 100..600)
#   SEED       random seed (default 20261204)
#   LIMIT_S    seconds each line may take (default 90: on an H100 the longest line took 44 s, on PoCL 12 s; a hung
#              kernel then costs 90 s of device time, not 300)
# Each line's output goes to OUT_DIR/<backend>-<n>.txt; the tally to OUT_DIR/summary.txt. Exit 1 if a line failed.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
source benchmarks/bench-cells.sh  # use_backend
out="${1:-benchmarks/results/feature-checks}"
mkdir -p "$out"
dtype="${DTYPE:-fp16}"
hd="${HEAD_DIM:-128}"
seed="${SEED:-20261204}"
limit="${LIMIT_S:-90}"
shape="--batch 4 --context ${CONTEXT:-1000..9000} --head-dim $hd --seed $seed --backend tornado"
lines=(
  "check $shape --dtype $dtype --steps 2"
  "check $shape --dtype $dtype --swap --steps 2"
  "check $shape --dtype $dtype --window 96 --release --steps 2"
  "check $shape --dtype $dtype --sinks --soft-cap 30 --alibi --steps 2"
  "check $shape --dtype $dtype --query-len 1..80 --steps 2 --decode-steps 1"
  "check $shape --dtype $dtype --query-len 1..80 --tree --steps 2 --decode-steps 1"
  "check $shape --dtype $dtype --query-len 1..80 --tree --window 96 --sinks --soft-cap 30"
  "check $shape --dtype $dtype --query-len 1..80 --non-causal --decode-steps 1"
  "check $shape --dtype $dtype --query-len 1..80 --alibi"
  "check $shape --dtype $dtype --layers 4 --window 96 --full-every 2 --release --steps 2"
  "check $shape --dtype $dtype --chunk 100 --release --steps 2"
  "check $shape --dtype $dtype --query-len 1..80 --chunk 100 --tree --steps 2 --decode-steps 1"
  "check $shape --dtype $dtype --layers 4 --chunk 96 --full-every 4 --release --steps 2"
  "check $shape --dtype $dtype --lse --sinks --window 96 --steps 2"
  "check $shape --dtype $dtype --query-len 1..80 --lse --chunk 100 --tree"
  "check $shape --dtype $dtype --cascade 96 --sharers 3"
  "check $shape --dtype $dtype --query-len 1..80 --spans --window 96 --steps 2 --decode-steps 1"
  "demo --backend tornado --dtype $dtype --seed $seed"
  "check $shape --dtype $dtype --select-blocks 16 --sinks --soft-cap 30"
  "check ${shape/--head-dim $hd/--head-dim 576} --latent-dim 512 --kv-heads 1 --q-heads 16 --dtype $dtype --lse --window 96 --steps 2"
  "check ${shape/--head-dim $hd/--head-dim 576} --latent-dim 512 --kv-heads 1 --q-heads 16 --dtype $dtype --query-len 1..40 --lse --window 96 --steps 2 --decode-steps 1"
)
if [[ "$dtype" == bf16 ]]; then  # no latent kernel reads bf16: those two lines would be refusals
  for i in "${!lines[@]}"; do
    [[ "${lines[$i]}" == *--latent-dim* ]] && unset 'lines[i]'
  done
  lines=("${lines[@]}")
fi
if [[ "$dtype" != fp32 ]]; then
  lines+=("check $shape --dtype fp8 --query-len 1..80 --tree --steps 2" "check $shape --dtype fp32 --query-len 1..80 --tree")
fi
pass=0
fail=0
: > "$out/summary.txt"
for be in ${BACKENDS:-cuda ptx}; do
  use_backend "$be"
  n=0
  for line in "${lines[@]}"; do
    n=$((n + 1))
    file="$out/$be-$n.txt"
    start=$SECONDS
    # in a process group of its own, killed whole at the limit: a line whose kernel faults can leave the JVM (a child of
    # the launcher) spinning on CUDA errors, which a plain `timeout` of the launcher would not stop
    setsid bin/pa-tornado "$be" $line > "$file" 2>&1 &
    pid=$!
    ( sleep "$limit"; kill -KILL -- -"$pid" ) > /dev/null 2>&1 &
    killer=$!
    wait "$pid"
    rc=$?
    kill "$killer" 2> /dev/null
    kill -KILL -- -"$pid" 2> /dev/null
    verdict=PASS
    if [[ $rc -ne 0 ]] || grep -q -- "-> FAIL" "$file" || ! grep -q -- "-> PASS" "$file"; then
      verdict=FAIL
      fail=$((fail + 1))
    else
      pass=$((pass + 1))
    fi
    printf '%s %-7s rc=%-3d %4ds  %s\n' "$verdict" "$be" "$rc" $((SECONDS - start)) "$line" | tee -a "$out/summary.txt"
  done
done
printf '%d PASS, %d FAIL\n' "$pass" "$fail" | tee -a "$out/summary.txt"
[[ $fail -eq 0 ]]
