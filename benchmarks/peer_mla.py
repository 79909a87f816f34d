#!/usr/bin/env python3
"""PyTorch peer for decode over a latent (MLA) cache: DeepSeek's multi-head latent attention, absorbed form.

Each sequence caches one vector of 576 elements per token (512 compressed KV, then 64 rotary key), contiguous in fp16;
H query heads of 576 attend to it (the keys are the whole vectors, the values their first 512 elements, one KV head
shared by all query heads). PyTorch has no fused kernel for that shape (cuDNN and flash take head dims up to 256), so
the peer is what an engine without FlashMLA runs: two batched matmuls (cuBLAS, tensor cores, fp32 accumulation) around
an fp32 softmax:

    s = (q @ c^T) * scale      [B][H][L]
    o = softmax(s) @ c[..., :512]

Every cell is checked against an fp64 reference (first sequence) and timed with CUDA events over rotating copies of
its inputs (so that the cache is read from HBM, not L2), median of --iterations. One line per cell:

    peer-mla B=8 L=4096 H=128 min_us=... median_us=... gbs=... rel_l2=...

    python3 benchmarks/peer_mla.py --cells 1x8192,8x4096 --heads 16,128
"""

import argparse
import math
import sys

import torch

LATENT, ROPE = 512, 64
DIM = LATENT + ROPE
ROTATE_BYTES = 200e6  # the copies' caches together: four times the H200's 50 MB L2


def step(q, c, scale):
    s = torch.matmul(q, c.transpose(1, 2)).float() * scale  # [B][H][L]
    p = torch.softmax(s, dim=-1).to(c.dtype)
    return torch.matmul(p, c[:, :, :LATENT])                 # [B][H][512]


def reference(q, c, scale):
    q64, c64 = q[0].double(), c[0].double()
    s = (q64 @ c64.T) * scale
    return torch.softmax(s, dim=-1) @ c64[:, :LATENT]


def run(batch, length, heads, iterations, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    scale = 1.0 / math.sqrt(128 + ROPE)  # DeepSeek's: qk_nope_head_dim + qk_rope_head_dim
    cache_bytes = batch * length * DIM * 2
    copies = max(1, min(16, int(ROTATE_BYTES // cache_bytes)))
    qs = [torch.randn(batch, heads, DIM, device="cuda", dtype=torch.float16, generator=gen) for _ in range(copies)]
    cs = [torch.randn(batch, length, DIM, device="cuda", dtype=torch.float16, generator=gen) for _ in range(copies)]
    out = step(qs[0], cs[0], scale)
    ref = reference(qs[0], cs[0], scale)
    rel = (torch.linalg.norm(out[0].double() - ref) / torch.linalg.norm(ref)).item()
    for i in range(3):
        step(qs[i % copies], cs[i % copies], scale)
    times = []
    for i in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(qs[i % copies], cs[i % copies], scale)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    times.sort()
    median = times[len(times) // 2]
    gbs = cache_bytes / (median * 1e-6) / 1e9
    print(f"peer-mla B={batch} L={length} H={heads} min_us={times[0]:.1f} median_us={median:.1f} gbs={gbs:.0f}"
          f" rel_l2={rel:.2e}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="1x8192,8x4096,32x2048", help="BxL,... (default %(default)s)")
    ap.add_argument("--heads", default="16,128", help="query head counts (default %(default)s)")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--seed", type=int, default=20261205)
    args = ap.parse_args()
    print(f"device={torch.cuda.get_device_name()} torch={torch.__version__}", file=sys.stderr)
    for heads in (int(h) for h in args.heads.split(",")):
        for cell in args.cells.split(","):
            b, l = (int(x) for x in cell.split("x"))
            run(b, l, heads, args.iterations, args.seed)


if __name__ == "__main__":
    main()
