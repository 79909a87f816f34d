#!/usr/bin/env python3
"""PyTorch CPU peer for the JVM backend's cells (issue 13; run by benchmarks/cpu-sweep.sh).

Per cell (BATCHxCONTEXT, standard heads Hq32/Hkv8/D128) and dtype (fp32, fp16, bf16): decode
attention with torch.nn.functional.scaled_dot_product_attention over CONTIGUOUS K/V
[batch, kvHeads, context, headDim] (enable_gqa), the same tensors every call (as `bin/pa bench-cpu`
reuses one workload), after a warm-up; min / median / max over --steps calls; relative L2 error
against an fp64 SDPA of the same inputs. Plus a memory-read probe: torch.sum over a --probe-gib
GiB fp32 tensor. Rows use the columns of `bin/pa bench-cpu` (impl, cell, dtype, ... status).

    python3 benchmarks/peer_torch_cpu.py --threads 16 --out peer-cpu.csv
"""

import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

H_Q, H_KV, HEAD_DIM = 32, 8, 128
HEADER = "impl,cell,dtype,batch,context,threads,steps,min_ms,median_ms,max_ms,gbs_at_min,rel_l2,status"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def timed(call, warmup, steps):
    for _ in range(warmup):
        call()
    ms = []
    for _ in range(steps):
        t0 = time.perf_counter_ns()
        call()
        ms.append((time.perf_counter_ns() - t0) / 1e6)
    ms.sort()
    return ms[0], statistics.median(ms), ms[-1]


def min_bytes(batch, context, elem_bytes):
    """bin/pa's minimum bytes: K and V once, q and out in fp32, block tables (16-token blocks), lengths."""
    kv = batch * context * 2 * H_KV * HEAD_DIM * elem_bytes
    qo = batch * H_Q * HEAD_DIM * 4
    tables = 4 * batch * ((context + 15) // 16)
    return kv + qo + tables + 4 * batch


def cell_row(batch, context, name, threads, warmup, steps, seed):
    dtype = DTYPES[name]
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(batch, H_Q, 1, HEAD_DIM, generator=g) * 2 - 1
    k = torch.rand(batch, H_KV, context, HEAD_DIM, generator=g) * 2 - 1
    v = torch.rand(batch, H_KV, context, HEAD_DIM, generator=g) * 2 - 1
    qd, kd, vd = q.to(dtype), k.to(dtype), v.to(dtype)
    scale = 1.0 / math.sqrt(HEAD_DIM)
    call = lambda: F.scaled_dot_product_attention(qd, kd, vd, scale=scale, enable_gqa=True)
    out = call().double()
    ref = F.scaled_dot_product_attention(qd.double(), kd.double(), vd.double(), scale=scale, enable_gqa=True)
    rel = (torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref)).item()
    lo, med, hi = timed(call, warmup, steps)
    gbs = min_bytes(batch, context, kd.element_size()) / (lo * 1e6)
    status = "ok" if rel <= 1e-2 else "wrong"
    return f"torch-sdpa,{batch}x{context},{name},{batch},{context},{threads},{steps},{lo:.4f},{med:.4f},{hi:.4f},{gbs:.2f},{rel:.2e},{status}"


def probe_row(gib, threads, steps):
    n = int(gib * (1 << 30)) // 4
    x = torch.ones(n, dtype=torch.float32)
    lo, med, hi = timed(lambda: torch.sum(x), 2, steps)
    mib = int(gib * 1024)
    return f"torch-read-probe,{mib}MiB,fp32,1,{mib},{threads},{steps},{lo:.4f},{med:.4f},{hi:.4f},{n * 4 / (lo * 1e6):.2f},,ok"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", default="1x8192,8x8192,32x4096")
    ap.add_argument("--dtypes", default="fp32,fp16,bf16")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--probe-gib", type=float, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads", file=sys.stderr, flush=True)
    rows = []
    if a.probe_gib > 0:
        rows.append(probe_row(a.probe_gib, threads, 10))
        print(rows[-1], flush=True)
    for cell in a.cells.split(","):
        batch, context = (int(x) for x in cell.split("x"))
        for name in a.dtypes.split(","):
            try:
                rows.append(cell_row(batch, context, name, threads, a.warmup, a.steps, a.seed))
            except Exception as e:  # one broken cell is a row, not a crash
                msg = str(e).replace(",", ";").replace("\n", " ")[:120]
                rows.append(f"torch-sdpa,{batch}x{context},{name},{batch},{context},{threads},0,,,,,,error: {msg}")
            print(rows[-1], flush=True)
    with open(a.out, "w") as f:
        f.write(HEADER + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
