#!/usr/bin/env python3
"""PyTorch peer for the prefill cells of `bench` (chunked prefill over a cached prefix).

Every cell: B sequences, each with a cached prefix of P tokens and L new query tokens (positions
P .. P+L-1) that attend causally to the prefix and to each other; Llama-3-8B heads (32 query, 8 KV,
head dim 128), fp16 K/V and queries, the same FLOP count as ours (QK^T and PV over the visible
pairs only). Variants:

  sdpa-lower-right  scaled_dot_product_attention over CONTIGUOUS K/V [B, 8, P+L, 128] with
                    causal_lower_right(L, P+L) (the causal mask with the offset P); the first of
                    flash / efficient / default backend that runs
  sdpa-cudnn        the same, cuDNN backend only (lower-right bias, else an explicit boolean mask)
  flex-paged        FlexAttention over a paged cache (pages of 16, shuffled), block mask from the
                    causal offset mask_mod converted by PagedAttention

Each output is checked against an fp64 reference on 16 query rows at each end of the chunk of the
first and the last sequence; failures become CSV rows (status error / does-not-fit), never a crash.
Columns match ours (bench --sweeps prefill, benchmarks/results/ours-prefill.csv):

    python3 benchmarks/peer_torch_prefill.py --out benchmarks/results/peer-prefill.csv
"""

import argparse
import inspect
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_torch as pt  # noqa: E402  (shared pieces: sizes, random inputs, timing, error handling)

H_Q, H_KV, HEAD_DIM, BLOCK, SCALE, DEVICE = pt.H_Q, pt.H_KV, pt.HEAD_DIM, pt.BLOCK, pt.SCALE, pt.DEVICE
HEADER = "impl,variant,dtype,batch,prefix,query_len,status,min_us,median_us,max_us,flops,tflops,rel_l2,note"
VARIANTS = ("sdpa-lower-right", "sdpa-cudnn", "flex-paged")
SAMPLE = 16


class PrefillCell:
    def __init__(self, batch, prefix, query_len):
        self.batch, self.prefix, self.query_len = batch, prefix, query_len
        self.length = prefix + query_len
        self.blocks = -(-self.length // BLOCK)
        # visible (query, key) pairs: query j sees prefix + j + 1 keys
        pairs = batch * (query_len * prefix + query_len * (query_len + 1) // 2)
        self.flops = 4.0 * pairs * H_Q * HEAD_DIM


class Case:
    """q [B, 32, L, 128]; kv_of(b) -> sequence b's logical K, V [8, P+L, 128]; candidates (label, factory)."""

    def __init__(self, q, kv_of, candidates):
        self.q, self.kv_of, self.candidates = q, kv_of, candidates


def lower_right(cell):
    from torch.nn.attention.bias import causal_lower_right
    return causal_lower_right(cell.query_len, cell.length)


def bool_mask(cell):
    """[L, P+L]: query j sees keys 0 .. P+j."""
    kv = torch.arange(cell.length, device=DEVICE)[None, :]
    q = torch.arange(cell.query_len, device=DEVICE)[:, None]
    return kv <= q + cell.prefix


def setup_sdpa(cell, backends):
    B = cell.batch
    q = pt.rand_fp16(B, H_Q, cell.query_len, HEAD_DIM)
    k = pt.rand_fp16(B, H_KV, cell.length, HEAD_DIM)
    v = pt.rand_fp16(B, H_KV, cell.length, HEAD_DIM)

    def with_backend(name, mask_of, gqa):
        def factory():
            mask = mask_of(cell)
            kk, vv = (k, v) if gqa else (k.repeat_interleave(H_Q // H_KV, 1), v.repeat_interleave(H_Q // H_KV, 1))
            backend = getattr(pt.SDPBackend, name) if name else None

            def call(i):
                if backend is None:
                    return F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, scale=SCALE, enable_gqa=gqa)
                with pt.sdpa_kernel([backend]):
                    return F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, scale=SCALE, enable_gqa=gqa)
            return call
        return factory

    candidates = []
    for name in backends:
        for mask_name, mask_of in (("lower-right bias", lower_right), ("bool mask", bool_mask)):
            if name == "FLASH_ATTENTION" and mask_of is bool_mask:
                continue  # flash takes no explicit mask
            for gqa in (True, False):
                label = f"{name or 'default'} {mask_name} {'enable_gqa' if gqa else 'kv expanded to 32 heads'}"
                candidates.append((label, with_backend(name, mask_of, gqa)))
    return Case(q, lambda b: (k[b], v[b]), candidates)


def setup_flex(cell, gen):
    from torch.nn.attention.experimental._paged_attention import PagedAttention
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask

    B, L, P = cell.batch, cell.query_len, cell.prefix
    n_pages = B * cell.blocks
    padded = cell.blocks * BLOCK
    kwargs = {"device": DEVICE}
    if "max_seq_len" in inspect.signature(PagedAttention.__init__).parameters:
        kwargs["max_seq_len"] = padded
    pa = PagedAttention(n_pages, BLOCK, B, **kwargs)
    pa.empty_pages = torch.randperm(n_pages, generator=gen).tolist()
    for b in range(B):
        pa.reserve(torch.tensor(b), torch.tensor(cell.length, device=DEVICE))
    length = cell.length

    def causal_offset(b, h, q_idx, kv_idx):  # logical positions
        return (kv_idx <= q_idx + P) & (kv_idx < length)

    slots = n_pages * BLOCK
    q = pt.rand_fp16(B, H_Q, L, HEAD_DIM)
    kc = pt.rand_fp16(1, H_KV, slots, HEAD_DIM)
    vc = pt.rand_fp16(1, H_KV, slots, HEAD_DIM)
    page_table = pa.page_table
    slot = torch.arange(BLOCK, device=DEVICE)

    def factory_for(block_size):
        def factory():
            logical = create_block_mask(causal_offset, B, 1, L, padded, device=DEVICE, BLOCK_SIZE=block_size)
            block_mask = pa.convert_logical_block_mask(logical)
            if tuple(getattr(block_mask, "seq_lengths", (L, slots))) != (L, slots):
                block_mask = BlockMask.from_kv_blocks(
                    block_mask.kv_num_blocks, block_mask.kv_indices, block_mask.full_kv_num_blocks,
                    block_mask.full_kv_indices, BLOCK_SIZE=block_mask.BLOCK_SIZE, mask_mod=block_mask.mask_mod,
                    seq_lengths=(L, slots))
            flex = pt.compiled_flex()
            return lambda i: flex(q, kc, vc, block_mask=block_mask, scale=SCALE, enable_gqa=True)
        return factory

    def kv_of(b):
        idx = (page_table[b, :cell.blocks, None] * BLOCK + slot).reshape(-1)[:cell.length]
        return kc[0][:, idx], vc[0][:, idx]

    return Case(q, kv_of, [("flex static compile; q blocks 128; pages of 16", factory_for((128, BLOCK))),
                           ("flex static compile; q blocks 16; pages of 16", factory_for(BLOCK))])


def sample_rows(cell):
    n = min(SAMPLE, cell.query_len)
    return sorted(set(range(n)) | set(range(cell.query_len - n, cell.query_len)))


def reference(cell, case):
    """fp64 on the GPU for the sampled rows of the first and last sequence: {b: [32, rows, 128]}."""
    rows = torch.tensor(sample_rows(cell), device=DEVICE)
    out = {}
    for b in sorted({0, cell.batch - 1}):
        k, v = case.kv_of(b)  # [8, P+L, 128]
        q = case.q[b].index_select(1, rows).double().reshape(H_KV, H_Q // H_KV, len(rows), HEAD_DIM)
        s = torch.matmul(q, k.double().transpose(-1, -2)[:, None]) * SCALE  # [8, 4, rows, P+L]
        visible = torch.arange(cell.length, device=DEVICE)[None, :] <= (rows[:, None] + cell.prefix)
        s = s.masked_fill(~visible, float("-inf"))
        out[b] = torch.matmul(torch.softmax(s, dim=-1), v.double()[:, None]).reshape(H_Q, len(rows), HEAD_DIM)
    return out


def rel_l2(cell, out, ref):
    rows = torch.tensor(sample_rows(cell), device=DEVICE)
    num = den = 0.0
    for b, r in ref.items():
        o = out.reshape(cell.batch, H_Q, cell.query_len, HEAD_DIM)[b].index_select(1, rows).double()
        num += torch.linalg.vector_norm(o - r).item() ** 2
        den += torch.linalg.vector_norm(r).item() ** 2
    rel = (num / den) ** 0.5 if den > 0 else float("nan")
    return rel if rel == rel and rel != float("inf") else float("nan")


def measure(cell, case, args):
    ref = reference(cell, case)
    failed = []
    for label, factory in case.candidates:
        call = None
        try:
            call = factory()
            out = call(0)
            torch.cuda.synchronize()
            rel = rel_l2(cell, out, ref)
            if not rel < pt.TOLERANCE:
                failed.append(f"{label}: wrong rel_l2 {rel:.2e}")
                continue
            t = pt.time_calls(call, 1, args.warmup, args.iters)
            rel = pt.worse(rel, rel_l2(cell, call(0), ref))
        except Exception as e:
            if pt.is_oom(e):
                raise
            failed.append(f"{label}: {pt.first_line(e)}")
            continue
        finally:
            call = None
            pt.free_gpu()
        note = [label, "fp64 check: 2x16 rows of the first and last sequence"] + [f"failed {f}" for f in failed]
        return dict(status="ok" if rel < pt.TOLERANCE else "error", times=t, rel=rel, note="; ".join(note))
    return dict(status="error", note="; ".join(failed))


def run_one(variant, cell, gen, args):
    try:
        if variant == "sdpa-lower-right":
            case = setup_sdpa(cell, ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", None))
        elif variant == "sdpa-cudnn":
            case = setup_sdpa(cell, ("CUDNN_ATTENTION",))
        else:
            case = setup_flex(cell, gen)
        return measure(cell, case, args)
    except Exception as e:
        if pt.is_oom(e):
            return dict(status="does-not-fit", note="out of GPU memory: " + pt.first_line(e))
        return dict(status="error", note=pt.first_line(e))


def csv_line(r, cell):
    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    t = r.get("times") or (None, None, None)
    tflops = cell.flops / (t[0] * 1e6) if t[0] else None
    note = " ".join(str(r.get("note", "")).replace(",", ";").split())
    return ",".join([r["impl"], r["variant"], "fp16", str(cell.batch), str(cell.prefix), str(cell.query_len), r["status"],
                     num(t[0], ".2f"), num(t[1], ".2f"), num(t[2], ".2f"), format(cell.flops, ".4g"), num(tflops, ".3f"),
                     num(r.get("rel"), ".3e"), note])


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch peer for the prefill cells of bench.")
    p.add_argument("--out", default="benchmarks/results/peer-prefill.csv", help="CSV to write (default: %(default)s)")
    p.add_argument("--batches", default="1,8,32", help="comma list of batch sizes (default: %(default)s)")
    p.add_argument("--prefix", type=int, default=8192, help="cached tokens per sequence (default: %(default)s)")
    p.add_argument("--query-len", type=int, default=512, help="new tokens per sequence (default: %(default)s)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list (default: %(default)s)")
    p.add_argument("--iters", type=int, default=20, help="timed runs per cell (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; always printed)")
    a = p.parse_args()
    a.batches = [int(b) for b in a.batches.split(",") if b.strip()]
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    for v in a.variants:
        if v not in VARIANTS:
            p.error(f"--variants: {v} is not one of {', '.join(VARIANTS)}")
    if a.prefix < 0 or a.query_len < 1 or any(b < 1 for b in a.batches):
        p.error(f"--prefix={a.prefix} --query-len={a.query_len} --batches={a.batches}: need prefix >= 0, query-len >= 1, batches >= 1")
    if a.seed is None:
        a.seed = time.time_ns() & ((1 << 62) - 1)
    return a


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        pt.log("peer_torch_prefill: no CUDA device visible to torch")
        return 2
    torch.set_grad_enabled(False)
    prop = torch.cuda.get_device_properties(0)
    pt.log(f"peer_torch_prefill: torch {torch.__version__} (CUDA {torch.version.cuda}) on {prop.name}; seed={args.seed} "
           f"prefix={args.prefix} query-len={args.query_len} batches={args.batches} variants={','.join(args.variants)}")
    impl = f"torch-{torch.__version__}"
    lines = [HEADER]
    alive = True
    for vi, variant in enumerate(args.variants):
        for b in args.batches:
            cell = PrefillCell(b, args.prefix, args.query_len)
            row = dict(impl=impl, variant=variant)
            t0 = time.time()
            if not alive:
                row.update(status="skipped", note="CUDA context lost after an earlier error")
            else:
                seed = (args.seed * 1000003 + vi * 1009 + b) & ((1 << 63) - 1)
                torch.manual_seed(seed)
                gen = torch.Generator().manual_seed(seed)
                if variant == "flex-paged":
                    try:
                        torch._dynamo.reset()
                    except Exception as e:
                        pt.log(f"peer_torch_prefill: torch._dynamo.reset() failed: {pt.first_line(e)}")
                row.update(run_one(variant, cell, gen, args))
                pt.free_gpu()
                alive = pt.cuda_alive()
            lines.append(csv_line(row, cell))
            parent = os.path.dirname(args.out)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with open(args.out, "w") as f:
                f.write("\n".join(lines) + "\n")
            t = row.get("times")
            timing = (f"min {t[0]:10.1f} us  median {t[1]:10.1f} us  {cell.flops / (t[0] * 1e6):7.2f} TFLOP/s  "
                      f"rel L2 {row['rel']:.2e}") if t else ""
            pt.log(f"{variant:17s} {b:4d} x {args.prefix}+{args.query_len} {row['status']:12s} {timing}  "
                   f"[{time.time() - t0:.1f} s]  {row.get('note', '')}")
    pt.log(f"peer_torch_prefill: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
