#!/usr/bin/env python3
"""PyTorch peer for the paged decode attention sweep (see benchmarks/PEER.md).

Times decode attention (one query token per sequence) on the standard workload (benchmarks/README.md) with
PyTorch's own kernels and writes a CSV with the same columns as our `bench` command:

  sdpa-cudnn         scaled_dot_product_attention over CONTIGUOUS K/V, cuDNN backend only
  sdpa-flash         the same, flash backend only
  paged-gather-sdpa  K/V in a paged pool [block][kvHead][slot][dim] with shuffled block tables;
                     every call gathers K/V contiguous through the block table, then runs SDPA
  flex-paged         FlexAttention's PagedAttention: torch.compile'd flex_attention over a paged cache

Every (variant, cell) is built, checked against an fp64 reference and timed on its own; any
failure becomes a CSV row (status error / does-not-fit / skipped), never a crash.

    python3 benchmarks/peer_torch.py --out benchmarks/results/peer.csv
"""

import argparse
import contextlib
import gc
import inspect
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # recorded per row by the sdpa variants
    SDPBackend = sdpa_kernel = None

DEVICE = "cuda"

# The standard workload (benchmarks/README.md).
H_Q, H_KV, HEAD_DIM, BLOCK = 32, 8, 128, 16
SCALE = 1.0 / math.sqrt(HEAD_DIM)
BATCHES = (1, 8, 32, 64, 128, 256)
CONTEXTS = (1024, 4096, 8192, 16384, 32768)
RAGGED_BATCH, RAGGED_MIN, RAGGED_MAX = 64, 1024, 32768
QUICK_CELLS = "1x1024,8x8192,64x8192,256x4096"
VARIANTS = ("sdpa-cudnn", "sdpa-flash", "paged-gather-sdpa", "flex-paged")
HEADER = "impl,variant,dtype,batch,context,tokens,status,min_us,median_us,max_us,min_bytes,gbs,pct_ceiling,rel_l2,note"
KV_BYTES_PER_TOKEN = 2 * H_KV * HEAD_DIM * 2  # K and V in fp16: 4096 bytes

ROTATE_BYTES = 200e6       # rotate input copies until K/V of all copies reach this (L2 is 50 MB)
MAX_COPIES = 64
REF_MAX_TOKENS = 1 << 21   # cells with more tokens check an evenly spread subset of sequences
TOLERANCE = 1e-2           # fp16 K/V with fp32 math lands near 1e-3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Ragged lengths: java.util.SplittableRandom, so that the same --seed gives the same ragged row as
# our Java bench (DecodeWorkload.lengths: new SplittableRandom(seed ^ 0x1E57), min + nextInt(n)).

MASK64 = (1 << 64) - 1


class JavaSplittableRandom:
    GOLDEN_GAMMA = 0x9E3779B97F4A7C15

    def __init__(self, seed):
        self.seed = seed & MASK64

    def next_int(self):
        """mix32(nextSeed()) as a signed 32-bit int."""
        self.seed = (self.seed + self.GOLDEN_GAMMA) & MASK64
        z = self.seed
        z = ((z ^ (z >> 33)) * 0x62A9D9ED799705F5) & MASK64
        r = (((z ^ (z >> 28)) * 0xCB24D0A5C88C35B3) & MASK64) >> 32
        return r - (1 << 32) if r >= (1 << 31) else r

    def next_int_bounded(self, bound):
        r = self.next_int()
        m = bound - 1
        if bound & m == 0:
            return r & m
        u = (r & 0xFFFFFFFF) >> 1
        while u + m - (u % bound) >= (1 << 31):  # Java: u + m - r < 0 (int overflow): reject
            u = (self.next_int() & 0xFFFFFFFF) >> 1
        return u % bound


def java_lengths(batch, lo, hi, seed):
    r = JavaSplittableRandom(seed ^ 0x1E57)
    return [lo if lo == hi else lo + r.next_int_bounded(hi - lo + 1) for _ in range(batch)]


# ---------------------------------------------------------------------------------------------
# Cells, bytes, copies


class Cell:
    def __init__(self, lengths, context):
        self.lengths = list(lengths)
        self.context = context  # "8192" or "1024..32768" for the ragged row
        self.batch = len(self.lengths)
        self.tokens = sum(self.lengths)
        self.max_len = max(self.lengths)
        self.blocks = [-(-n // BLOCK) for n in self.lengths]  # ceil(L / 16) per sequence


def parse_cells(spec, seed):
    cells = []
    ragged = []  # measured last: a varlen path that stalls (seen on an H200) must not cost the uniform cells
    for item in spec.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item == "ragged":
            ragged.append(Cell(java_lengths(RAGGED_BATCH, RAGGED_MIN, RAGGED_MAX, seed), f"{RAGGED_MIN}..{RAGGED_MAX}"))
            continue
        b, _, l = item.partition("x")
        if not (b.isdigit() and l.isdigit() and int(b) > 0 and int(l) > 0):
            raise ValueError(f"cell '{item}' must be BxL (e.g. 64x8192) or 'ragged'")
        cells.append(Cell([int(l)] * int(b), l))
    return cells + ragged


def min_bytes(cell):
    """Minimum bytes (benchmarks/README.md): K/V + q in/out + block tables + lengths, by the TRUE lengths."""
    return (cell.tokens * KV_BYTES_PER_TOKEN + cell.batch * H_Q * HEAD_DIM * (2 + 2)
            + sum(cell.blocks) * 4 + 4 * cell.batch)


def copies_for(cell):
    return max(1, min(MAX_COPIES, math.ceil(ROTATE_BYTES / (cell.tokens * KV_BYTES_PER_TOKEN))))


def rand_fp16(*shape):
    """Uniform in [-1, 1), like the Java workload. Never zeros."""
    return torch.empty(shape, dtype=torch.float16, device=DEVICE).uniform_(-1.0, 1.0)


def rand_q(cell):
    return rand_fp16(cell.batch, H_Q, 1, HEAD_DIM)


# ---------------------------------------------------------------------------------------------
# What a variant builds for one cell


class Case:
    """Inputs of one (variant, cell), the K/V reader for the reference, and the implementations to try.

    candidates: list of (label, factory); factory() builds what it needs and returns call(i), which
    runs the implementation on input copy i and returns the output ([B, 32, 1, 128] or [B, 32, 128]).
    The first candidate that runs and passes the check is timed; the others only add to the note.
    kv_of(b) returns sequence b's logical K and V of copy 0 as [8, L_b, 128] fp16.
    """

    def __init__(self, copies, q0, kv_of, candidates, ctx=contextlib.nullcontext):
        self.copies, self.q0, self.kv_of, self.candidates, self.ctx = copies, q0, kv_of, candidates, ctx


def setup_sdpa(cell, gen, backend_name):
    if sdpa_kernel is None:
        raise RuntimeError("torch.nn.attention.sdpa_kernel is not available in this torch")
    backend = getattr(SDPBackend, backend_name)
    ctx = lambda: sdpa_kernel([backend])  # noqa: E731
    B, n = cell.batch, copies_for(cell)
    qs = [rand_q(cell) for _ in range(n)]

    if min(cell.lengths) == cell.max_len:  # uniform: K/V [B, 8, L, 128]
        L = cell.max_len
        ks = [rand_fp16(B, H_KV, L, HEAD_DIM) for _ in range(n)]
        vs = [rand_fp16(B, H_KV, L, HEAD_DIM) for _ in range(n)]

        def dense():
            return lambda i: F.scaled_dot_product_attention(qs[i], ks[i], vs[i], scale=SCALE, enable_gqa=True)

        return Case(n, qs[0], lambda b: (ks[0][b], vs[0][b]), [("dense", dense)], ctx)

    # Ragged: K/V packed token-major [total_tokens, 8, 128] (the varlen / jagged layout), no padding.
    starts = [0]
    for L in cell.lengths:
        starts.append(starts[-1] + L)
    lens = torch.tensor(cell.lengths, device=DEVICE)
    offsets = torch.tensor(starts, device=DEVICE)  # int64 [B + 1]
    ks = [rand_fp16(cell.tokens, H_KV, HEAD_DIM) for _ in range(n)]
    vs = [rand_fp16(cell.tokens, H_KV, HEAD_DIM) for _ in range(n)]

    def kv_of(b):
        return ks[0][starts[b]:starts[b + 1]].transpose(0, 1), vs[0][starts[b]:starts[b + 1]].transpose(0, 1)

    def njt():  # nested jagged tensors through F.scaled_dot_product_attention
        q_off = torch.arange(B + 1, device=DEVICE)
        jag = torch.nested.nested_tensor_from_jagged
        nq = [jag(q.view(B, H_Q, HEAD_DIM), q_off, min_seqlen=1, max_seqlen=1).transpose(1, 2) for q in qs]
        mn, mx = min(cell.lengths), cell.max_len
        nk = [jag(k, offsets, min_seqlen=mn, max_seqlen=mx).transpose(1, 2) for k in ks]
        nv = [jag(v, offsets, min_seqlen=mn, max_seqlen=mx).transpose(1, 2) for v in vs]

        def call(i):
            out = F.scaled_dot_product_attention(nq[i], nk[i], nv[i], scale=SCALE, enable_gqa=True)
            return out.transpose(1, 2).values()  # [B, 32, 128]

        return call

    def varlen():  # the varlen kernel SDPA's jagged path calls, directly (private aten op)
        cu_q = torch.arange(B + 1, dtype=torch.int32, device=DEVICE)
        cu_k = offsets.to(torch.int32)
        mx = cell.max_len
        if backend_name == "FLASH_ATTENTION":
            op = lambda q, k, v: torch.ops.aten._flash_attention_forward(  # noqa: E731
                q, k, v, cu_q, cu_k, 1, mx, 0.0, False, False, scale=SCALE)[0]
        else:
            op = lambda q, k, v: torch.ops.aten._cudnn_attention_forward(  # noqa: E731
                q, k, v, None, cu_q, cu_k, 1, mx, False, 0.0, False, False, scale=SCALE)[0]
        return lambda i: op(qs[i].view(B, H_Q, HEAD_DIM), ks[i], vs[i])

    def pad_mask():  # pad to the longest sequence, mask the padding
        kp = [pad_packed(k, cell, starts) for k in ks]
        vp = [pad_packed(v, cell, starts) for v in vs]
        mask = (torch.arange(cell.max_len, device=DEVICE)[None, :] < lens[:, None]).view(B, 1, 1, cell.max_len)
        return lambda i: F.scaled_dot_product_attention(qs[i], kp[i], vp[i], attn_mask=mask, scale=SCALE, enable_gqa=True)

    return Case(n, qs[0], kv_of, [("njt", njt), ("varlen-op", varlen), ("pad-mask", pad_mask)], ctx)


def pad_packed(x, cell, starts):
    """[tokens, 8, 128] packed -> [B, 8, max_len, 128]; the padding is random (it is masked out)."""
    out = rand_fp16(cell.batch, H_KV, cell.max_len, HEAD_DIM)
    for b, L in enumerate(cell.lengths):
        out[b, :, :L] = x[starts[b]:starts[b] + L].transpose(0, 1)
    return out


def shuffled_block_tables(cell, gen):
    """Disjoint, randomly shuffled physical blocks: [B, max_blocks] int64 (CPU); the tail of a short
    sequence's row repeats its first block (only the padded gather reads it, and it is masked)."""
    perm = torch.randperm(sum(cell.blocks), generator=gen)
    table = torch.empty(cell.batch, max(cell.blocks), dtype=torch.int64)
    off = 0
    for b, nb in enumerate(cell.blocks):
        table[b, :nb] = perm[off:off + nb]
        table[b, nb:] = perm[off]
        off += nb
    return table


def setup_paged_gather(cell, gen):
    B, n = cell.batch, copies_for(cell)
    nbmax = max(cell.blocks)
    padded = nbmax * BLOCK
    table = shuffled_block_tables(cell, gen).to(DEVICE)
    qs = [rand_q(cell) for _ in range(n)]
    pools_k = [rand_fp16(sum(cell.blocks), H_KV, BLOCK, HEAD_DIM) for _ in range(n)]  # [block][kvHead][slot][dim]
    pools_v = [rand_fp16(sum(cell.blocks), H_KV, BLOCK, HEAD_DIM) for _ in range(n)]
    rows = table.view(B, 1, nbmax)
    heads = torch.arange(H_KV, device=DEVICE).view(1, H_KV, 1)
    mask = None
    if any(L != padded for L in cell.lengths):
        lens = torch.tensor(cell.lengths, device=DEVICE)
        mask = (torch.arange(padded, device=DEVICE)[None, :] < lens[:, None]).view(B, 1, 1, padded)

    def gather(pool):  # one gather kernel: [B, 8, nbmax, 16, 128] contiguous, then a free view
        return pool[rows, heads].view(B, H_KV, padded, HEAD_DIM)

    def gather_sdpa():
        return lambda i: F.scaled_dot_product_attention(
            qs[i], gather(pools_k[i]), gather(pools_v[i]), attn_mask=mask, scale=SCALE, enable_gqa=True)

    def kv_of(b):
        nb, L = cell.blocks[b], cell.lengths[b]
        blocks = table[b, :nb]
        k = pools_k[0][blocks].transpose(0, 1).reshape(H_KV, nb * BLOCK, HEAD_DIM)[:, :L]
        v = pools_v[0][blocks].transpose(0, 1).reshape(H_KV, nb * BLOCK, HEAD_DIM)[:, :L]
        return k, v

    label = "gather+sdpa default backend" + (" pad-mask" if mask is not None else "")
    return Case(n, qs[0], kv_of, [(label, gather_sdpa)])


_flex = None


def compiled_flex():
    """flex_attention compiled with static shapes: one compile per cell (main() resets dynamo before
    each flex cell). Static is the best-tested path, and it keeps batch static, which the flex
    decoding kernel needs."""
    global _flex
    if _flex is None:
        from torch.nn.attention.flex_attention import flex_attention
        for name in ("recompile_limit", "cache_size_limit"):  # never fall back to eager flex (huge, slow)
            try:
                if hasattr(torch._dynamo.config, name):
                    setattr(torch._dynamo.config, name, 256)
            except Exception:
                pass
        _flex = torch.compile(flex_attention, dynamic=False)
    return _flex


def setup_flex(cell, gen):
    from torch.nn.attention.experimental._paged_attention import PagedAttention
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask

    B, n = cell.batch, copies_for(cell)
    n_pages = sum(cell.blocks)
    padded = max(cell.blocks) * BLOCK
    kwargs = {"device": DEVICE}
    if "max_seq_len" in inspect.signature(PagedAttention.__init__).parameters:  # some versions take it
        kwargs["max_seq_len"] = padded
    pa = PagedAttention(n_pages, BLOCK, B, **kwargs)
    pa.empty_pages = torch.randperm(n_pages, generator=gen).tolist()  # reserve() takes pages from here: shuffled
    for b, L in enumerate(cell.lengths):
        pa.reserve(torch.tensor(b), torch.tensor(L, device=DEVICE))

    lens = torch.tensor(cell.lengths, device=DEVICE)

    def within_length(b, h, q_idx, kv_idx):  # logical positions
        return kv_idx < lens[b]

    logical = create_block_mask(within_length, B, 1, 1, padded, device=DEVICE, BLOCK_SIZE=BLOCK)
    if "kv_len" in inspect.signature(pa.convert_logical_block_mask).parameters:  # some versions take it
        block_mask = pa.convert_logical_block_mask(logical, kv_len=lens)
    else:
        block_mask = pa.convert_logical_block_mask(logical)
    slots = n_pages * BLOCK
    if tuple(getattr(block_mask, "seq_lengths", (1, slots))) != (1, slots):
        # Versions that infer (16, slots) from the block counts: flex would reject q_len=1.
        block_mask = BlockMask.from_kv_blocks(
            block_mask.kv_num_blocks, block_mask.kv_indices, block_mask.full_kv_num_blocks,
            block_mask.full_kv_indices, BLOCK_SIZE=block_mask.BLOCK_SIZE, mask_mod=block_mask.mask_mod,
            seq_lengths=(1, slots))
    qs = [rand_q(cell) for _ in range(n)]
    kcs = [rand_fp16(1, H_KV, slots, HEAD_DIM) for _ in range(n)]  # flex's cache layout: [1, kvHead, page*slot, dim]
    vcs = [rand_fp16(1, H_KV, slots, HEAD_DIM) for _ in range(n)]
    page_table = pa.page_table
    slot = torch.arange(BLOCK, device=DEVICE)
    flex = compiled_flex()

    def flex_paged():
        return lambda i: flex(qs[i], kcs[i], vcs[i], block_mask=block_mask, scale=SCALE, enable_gqa=True)

    def kv_of(b):
        nb, L = cell.blocks[b], cell.lengths[b]
        idx = (page_table[b, :nb, None] * BLOCK + slot).reshape(-1)[:L]
        return kcs[0][0][:, idx], vcs[0][0][:, idx]

    return Case(n, qs[0], kv_of, [("flex static compile; page 16; cache [1 8 pages*16 128]", flex_paged)])


SETUPS = {
    "sdpa-cudnn": lambda cell, gen: setup_sdpa(cell, gen, "CUDNN_ATTENTION"),
    "sdpa-flash": lambda cell, gen: setup_sdpa(cell, gen, "FLASH_ATTENTION"),
    "paged-gather-sdpa": setup_paged_gather,
    "flex-paged": setup_flex,
}


# ---------------------------------------------------------------------------------------------
# Reference, check, timing


def reference_ids(cell):
    B = cell.batch
    if cell.tokens <= REF_MAX_TOKENS or B <= 2:
        return list(range(B))
    n = max(2, min(B, REF_MAX_TOKENS * B // cell.tokens))
    return sorted({round(i * (B - 1) / (n - 1)) for i in range(n)})


def reference(q0, kv_of, ids):
    """fp64 attention on the GPU, one sequence at a time (bounded memory): [len(ids), 32, 128]."""
    outs = []
    for b in ids:
        k, v = kv_of(b)  # [8, L, 128] fp16
        q = q0[b].reshape(H_KV, H_Q // H_KV, HEAD_DIM).double()  # query head h reads KV head h // (H_Q / H_KV)
        p = torch.softmax(torch.matmul(q, k.double().transpose(1, 2)) * SCALE, dim=-1)
        outs.append(torch.matmul(p, v.double()).reshape(H_Q, HEAD_DIM))
    return torch.stack(outs)


def rel_l2(out, ref, ids_t, batch):
    """||out - ref|| / ||ref|| over the reference sequences; NaN if anything is not finite."""
    o = out.reshape(batch, H_Q, HEAD_DIM).index_select(0, ids_t).double()
    rel = (torch.linalg.vector_norm(o - ref) / torch.linalg.vector_norm(ref)).item()
    return rel if math.isfinite(rel) else float("nan")


def worse(a, b):
    return b if not (b <= a) else a  # NaN wins


def checked_call(call, cell):
    """Best-effort poisoning: free a NaN block of the output's size so the allocator likely hands it
    to the output; unwritten elements then show up as NaN."""
    poison = torch.full((cell.batch, H_Q, 1, HEAD_DIM), float("nan"), dtype=torch.float16, device=DEVICE)
    del poison
    out = call(0)
    torch.cuda.synchronize()
    return out


def time_calls(call, copies, warmup, iters):
    """CUDA events around every call, rotating input copies; returns (min, median, max) in us."""
    k = 0
    for _ in range(warmup):
        call(k % copies)
        k += 1
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for start, end in events:
        start.record()
        call(k % copies)
        end.record()
        k += 1
    torch.cuda.synchronize()
    us = sorted(start.elapsed_time(end) * 1e3 for start, end in events)
    return us[0], us[len(us) // 2], us[-1]  # median as our Java bench takes it: element n/2


def is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(e, oom) or "out of memory" in str(e).lower()


def first_line(e):
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:  # e.g. "backend='inductor' raised:" then the cause
        text += " " + lines[1]
    return f"{type(e).__name__}: {text}"[:160]


def free_gpu():
    gc.collect()
    torch.cuda.empty_cache()


def measure(case, cell, args):
    ids = reference_ids(cell)
    ref = reference(case.q0, case.kv_of, ids)
    ids_t = torch.tensor(ids, device=DEVICE)
    ref_note = "fp64 ref all seqs" if len(ids) == cell.batch else f"fp64 ref {len(ids)}/{cell.batch} seqs"
    failed = []
    for label, factory in case.candidates:
        try:
            call = factory()
            with case.ctx():
                rel = rel_l2(checked_call(call, cell), ref, ids_t, cell.batch)
                if not rel < TOLERANCE:
                    failed.append(f"{label}: wrong rel_l2 {rel:.2e}")
                    continue
                t = time_calls(call, case.copies, args.warmup, args.iters)
                rel = worse(rel, rel_l2(checked_call(call, cell), ref, ids_t, cell.batch))
        except Exception as e:
            if is_oom(e):
                raise
            failed.append(f"{label}: {first_line(e)}")
            continue
        finally:
            call = None
            free_gpu()
        note = [label, f"{case.copies} copies rotated", ref_note] + [f"failed {f}" for f in failed]
        status = "ok" if rel < TOLERANCE else "error"
        if status != "ok":
            note.insert(0, f"WRONG after timing: rel_l2 {rel:.2e}")
        return dict(status=status, times=t, rel=rel, note="; ".join(note))
    return dict(status="error", note="; ".join(failed + [ref_note]))


def run_one(variant, cell, gen, args):
    """Never raises: every failure becomes a status and a note."""
    try:
        case = SETUPS[variant](cell, gen)
        return measure(case, cell, args)
    except Exception as e:
        if is_oom(e):
            return dict(status="does-not-fit", note="out of GPU memory: " + first_line(e))
        return dict(status="error", note=first_line(e))


def cuda_alive():
    try:
        torch.ones(1, device=DEVICE).add_(1)
        torch.cuda.synchronize()
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# CSV


def csv_line(r):
    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    times = r.get("times") or (None, None, None)
    gbs = r["min_bytes"] / (times[0] * 1e3) if times[0] else None
    note = " ".join(str(r.get("note", "")).replace(",", ";").split())
    return ",".join([
        r["impl"], r["variant"], "fp16", str(r["batch"]), r["context"], str(r["tokens"]), r["status"],
        num(times[0], ".2f"), num(times[1], ".2f"), num(times[2], ".2f"), str(r["min_bytes"]),
        num(gbs, ".1f"), "", num(r.get("rel"), ".3e"), note])


def write_csv(path, rows):
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w") as f:
        f.write(HEADER + "\n")
        for r in rows:
            f.write(csv_line(r) + "\n")


# ---------------------------------------------------------------------------------------------


def set_shape(q_heads, d):
    """The shape's query heads and head dim, and what follows (the softmax scale, the bytes of K/V per token)."""
    global H_Q, HEAD_DIM, SCALE, KV_BYTES_PER_TOKEN
    H_Q = q_heads
    HEAD_DIM = d
    SCALE = 1.0 / math.sqrt(HEAD_DIM)
    KV_BYTES_PER_TOKEN = 2 * H_KV * HEAD_DIM * 2


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch peer for the paged decode attention sweep (benchmarks/PEER.md).")
    p.add_argument("--out", default="benchmarks/results/peer.csv", help="CSV to write (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; always printed)")
    p.add_argument("--quick", action="store_true", help="only the cells " + QUICK_CELLS)
    p.add_argument("--cells", default=None, help="comma list of BxL cells and/or 'ragged' (overrides --quick)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list (default: %(default)s)")
    p.add_argument("--q-heads", type=int, default=H_Q,
                   help="query heads over the 8 KV heads, as bench --q-heads (default: %(default)s; 16: Gemma-2-9B)")
    p.add_argument("--head-dim", type=int, default=HEAD_DIM,
                   help="dims per head, as bench --head-dim (default: %(default)s, Llama-3-8B; 64: Llama-3.2-1B; 256: Gemma-2)")
    p.add_argument("--iters", type=int, default=30, help="timed runs per cell (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default: %(default)s)")
    p.add_argument("--flex-budget", type=float, default=180.0,
                   help="seconds for flex-paged in all (compiles included); later flex cells are skipped (default: %(default)s)")
    args = p.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad or not args.variants:
        p.error(f"--variants: unknown {bad}; choose from {','.join(VARIANTS)}")
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    if args.head_dim < 8 or args.head_dim > 256 or args.head_dim % 8:
        p.error(f"--head-dim={args.head_dim} must be a multiple of 8 in [8, 256]")
    if args.q_heads < H_KV or args.q_heads % H_KV:
        p.error(f"--q-heads={args.q_heads} must be a multiple of the {H_KV} KV heads")
    set_shape(args.q_heads, args.head_dim)
    if args.seed is None:
        args.seed = time.time_ns() & ((1 << 62) - 1)
    spec = args.cells or (QUICK_CELLS if args.quick else
                          ",".join(f"{b}x{l}" for b in BATCHES for l in CONTEXTS) + ",ragged")
    try:
        args.cells = parse_cells(spec, args.seed)
    except ValueError as e:
        p.error(str(e))
    return args


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        log("peer_torch: no CUDA device visible to torch")
        return 2
    torch.set_grad_enabled(False)
    prop = torch.cuda.get_device_properties(0)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    log(f"peer_torch: torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn}) on {prop.name} "
        f"({prop.multi_processor_count} SMs, {prop.total_memory / 2**30:.1f} GiB)")
    log(f"peer_torch: seed={args.seed} q-heads={H_Q} head-dim={HEAD_DIM} variants={','.join(args.variants)} cells={len(args.cells)} "
        f"warmup={args.warmup} iters={args.iters} out={args.out}")
    for c in args.cells:
        if min(c.lengths) != c.max_len:
            log(f"peer_torch: ragged row B={c.batch} tokens={c.tokens} lengths {min(c.lengths)}..{c.max_len}: "
                f"{' '.join(map(str, c.lengths[:8]))} ...")

    # Cells whose K (or V) has >= 2^31 elements run after all others, so that a kernel that mishandles
    # 64-bit indexing cannot take the CUDA context down before the rest are measured.
    order = []
    for big in (False, True):
        for vi, variant in enumerate(args.variants):
            for ci, cell in enumerate(args.cells):
                if (cell.tokens * H_KV * HEAD_DIM >= 2**31) == big:
                    order.append((vi, variant, ci, cell))

    impl = f"torch-{torch.__version__}"
    rows = []
    alive = True
    flex_spent = 0.0
    t_start = time.time()
    for vi, variant, ci, cell in order:
        row = dict(impl=impl, variant=variant, batch=cell.batch, context=cell.context, tokens=cell.tokens,
                   min_bytes=min_bytes(cell))
        t0 = time.time()
        if not alive:
            row.update(status="skipped", note="CUDA context lost after an earlier error")
        elif variant == "flex-paged" and flex_spent > args.flex_budget:
            row.update(status="skipped", note=f"--flex-budget {args.flex_budget:.0f} s used up (compiles)")
        else:
            seed = (args.seed * 1000003 + vi * 1009 + ci) & ((1 << 63) - 1)  # per (variant, cell): reproducible alone
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            if variant == "flex-paged":
                try:
                    torch._dynamo.reset()  # a fresh static compile per cell; frees what guards hold
                except Exception as e:
                    log(f"peer_torch: torch._dynamo.reset() failed: {first_line(e)}")
            row.update(run_one(variant, cell, gen, args))
            free_gpu()
            alive = cuda_alive()
        dt = time.time() - t0
        if variant == "flex-paged":
            flex_spent += dt
            if row["status"] == "ok":
                row["note"] += f"; cell took {dt:.1f} s with compile"
        rows.append(row)
        write_csv(args.out, rows)
        t = row.get("times")
        timing = (f"min {t[0]:9.1f} us  median {t[1]:9.1f} us  {row['min_bytes'] / (t[0] * 1e3):7.1f} GB/s  "
                  f"rel L2 {row['rel']:.2e}") if t else ""
        log(f"{variant:18s} {cell.batch:4d} x {cell.context:12s} {row['status']:12s} {timing}  "
            f"[{dt:.1f} s]  {row.get('note', '')}")
    log(f"peer_torch: {len(rows)} rows in {time.time() - t_start:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
