#!/usr/bin/env bash
# On a GPU machine: our decode sweep over the standard workload on each TornadoVM backend, the PyTorch
# peer on the same card, the prefill cells (ours and the peer), then benchmarks/RESULTS.md and the
# chart (`bin/pa report` rewrites the page's header and its two sweep tables and keeps every section after
# them). Needs a built jar (target/) and a TornadoVM SDK (TORNADOVM_HOME, or an archive for
# benchmarks/device-env.sh).
#   benchmarks/gpu-sweep.sh [OUT_DIR]        (default benchmarks/results)
# Environment:
#   BACKENDS   TornadoVM backends to sweep, in order (default "ptx cuda"); an SDK with the
#              tornado-backends tool is switched to each in turn, otherwise the SDK's own
#              configuration decides which backend serves each run
#   PARTS      what to run (default "decode peer prefill report"; report also prints the speed bars, `bin/pa bars`,
#              into OUT_DIR/bars.txt); the parts can run in separate
#              sessions into the same OUT_DIR (each writes its own CSVs). "shapes" (not in the default) runs
#              our decode and the cuDNN peer for other models' heads on nine cells each: Llama-3.2-1B
#              (32 / 8 heads of 64), Gemma-2-9B (16 / 8 of 256), Llama-3-70B (64 / 8 of 128), Phi-3-mini's
#              head dim 96 and Phi-2's 80 (as MHA 8 / 8: bench keeps 8 KV heads) and groups of four at head
#              dim 112, into ours-<model>-<backend>.csv and peer-<model>.csv (benchmarks/RESULTS.md's "Head dim
#              64", "Head dim 96", "Head dims 80 and 112", "Head dim 256" and "Groups of eight" sections)
#              "kernels" (not in the default either) runs benchmarks/kernel-times.sh into OUT_DIR/kernel-times: a step's
#              kernel time by ncu for both sides, ours on each backend and cuDNN SDPA's (about 20 minutes)
#   BENCH_ARGS extra arguments for our decode sweep, e.g. "--iterations 30" (not --cells or --ragged: the script
#              passes those itself)
#   SEED       random seed of every part (default 20261201)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${TORNADOVM_HOME:-}" ]]; then
  source benchmarks/device-env.sh
fi
out="${1:-benchmarks/results}"
mkdir -p "$out"
backends="${BACKENDS:-ptx cuda}"
parts=" ${PARTS:-decode peer prefill report} "
seed="${SEED:-20261201}"
grid=""
for b in 1 8 32 64 128 256; do for l in 1024 4096 8192 16384 32768; do grid="$grid${grid:+,}${b}x$l"; done; done

source benchmarks/bench-cells.sh  # use_backend, bench_on, bench_cells, card_name
card="$(card_name)"

commands=""
if [[ "$parts" == *" decode "* ]]; then
  for be in $backends; do
    bench_cells "$be" "$out/ours-$be.csv" "$grid" 64x1024..32768 --seed "$seed" ${BENCH_ARGS:-}
  done
fi
for be in $backends; do
  commands="$commands${commands:+; }bin/pa-tornado $be bench --sweeps decode --seed $seed --cells <grid> --ragged 64x1024..32768 --out $out/ours-$be.csv ${BENCH_ARGS:-}"
done
peer_cmd="python3 benchmarks/peer_torch.py --seed $seed --cells $grid --out $out/peer.csv"
ragged_cmd="python3 benchmarks/peer_torch.py --seed $seed --cells ragged --out $out/peer-ragged.csv"
if [[ "$parts" == *" peer "* ]]; then
  echo "== $peer_cmd" >&2
  PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-900}" $peer_cmd || echo "peer grid stopped early (rc=$?); its CSV holds what it measured" >&2
  # The ragged row gets its own time limit: a varlen path that stalls must not cost the grid.
  PYTHONUNBUFFERED=1 timeout "${PEER_RAGGED_TIMEOUT:-240}" $ragged_cmd || echo "peer ragged row stopped early (rc=$?)" >&2
  [[ -f "$out/peer-ragged.csv" ]] && tail -n +2 "$out/peer-ragged.csv" >> "$out/peer.csv"
fi
if [[ "$parts" == *" prefill "* ]]; then
  # Prefill cells: 512 new tokens over a cached 8k prefix, B 1/8/32.
  for be in $backends; do
    bench_on "$be" --sweeps prefill --seed "$seed" --prefill-out "$out/ours-prefill-$be.csv" ${PREFILL_ARGS:-}
  done
  prefill_cmd="python3 benchmarks/peer_torch_prefill.py --seed $seed --out $out/peer-prefill.csv"
  echo "== $prefill_cmd" >&2
  PYTHONUNBUFFERED=1 timeout "${PEER_PREFILL_TIMEOUT:-600}" $prefill_cmd || echo "peer prefill stopped early (rc=$?)" >&2
fi
if [[ "$parts" == *" shapes "* ]]; then
  # model: query heads, head dim, cells (Gemma-2-9B's 256 x 4k would be two KV-head shards: 128 x 4k instead)
  for shape in "llama32-1b 32 64 1x1024,1x32768,8x8192,8x32768,32x8192,64x8192,128x1024,256x1024,256x4096" \
               "gemma2-9b 16 256 1x1024,1x32768,8x8192,8x32768,32x8192,64x8192,128x1024,256x1024,128x4096" \
               "llama3-70b 64 128 1x1024,1x32768,8x8192,8x32768,32x8192,64x8192,128x1024,256x1024,128x4096" \
               "phi3-mini-d96 8 96 1x1024,1x32768,8x8192,8x32768,32x8192,64x8192,128x1024,256x1024,256x4096" \
               "phi2-d80 8 80 1x1024,1x32768,8x8192,8x32768,32x8192,64x8192,128x1024,256x1024,256x4096" \
               "gqa4-d112 32 112 1x1024,1x32768,8x8192,8x32768,32x8192,64x8192,128x1024,256x1024,128x4096"; do
    read -r model qh hd cells <<< "$shape"
    for be in $backends; do
      bench_cells "$be" "$out/ours-$model-$be.csv" "$cells" none --variants auto --q-heads "$qh" --head-dim "$hd" \
        --seed "$seed" ${BENCH_ARGS:-}
    done
    shape_peer="python3 benchmarks/peer_torch.py --seed $seed --variants sdpa-cudnn --q-heads $qh --head-dim $hd --cells $cells --out $out/peer-$model.csv"
    echo "== $shape_peer" >&2
    PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-900}" $shape_peer || echo "peer $model stopped early (rc=$?)" >&2
  done
fi
if [[ "$parts" == *" kernels "* ]]; then
  BACKENDS="$backends" SEED="$seed" benchmarks/kernel-times.sh "$out/kernel-times"
fi
if [[ "$parts" == *" report "* ]]; then
  ours=""
  for be in $backends; do ours="$ours${ours:+,}$out/ours-$be.csv"; done
  bin/pa report --ours "$ours" --peer "$out/peer.csv" --md benchmarks/RESULTS.md \
    --chart "$out/decode-bandwidth.png" --card "$card" --commands "$commands; $peer_cmd; $ragged_cmd"
  bin/pa bars --ours "$ours" --peer "$out/peer.csv" | tee "$out/bars.txt"  # the speed bars on this sweep
fi
