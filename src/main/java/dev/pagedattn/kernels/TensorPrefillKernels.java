package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.enums.MMAShape;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.BFloat16;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Prefill attention on tensor cores (NVIDIA, TornadoVM 5.2's {@code KernelContext.mma*}: PTX and
 * CUDA backends): fp16 pools, head dims up to {@value #HEAD_DIM}. The tiles are {@value #HEAD_DIM} dims wide: a
 * smaller head dim is padded, its queries with zeros (so the padded dims add nothing to a score) and its K/V tile
 * dims past headDim with real pairs of the same row (read from cache, never written out). Same arguments, work-group mapping
 * (sequence, KV head, head tile, query tile, partition), masking and output (normalised rows, or
 * the partition's state for {@link PrefillKernels#mergePartitions}) as {@link PrefillKernels#prefillF16};
 * the queries and probabilities are rounded to fp16 for the products (fp32 accumulation), as in
 * FlashAttention and FlashInfer.
 *
 * <p>Work-group: {@value #WARPS} warps, each owning 16 of the tile's {@value #ROWS} (query token,
 * query head) rows. A fragment of TornadoVM 5.2 is opaque (only {@code mma} and {@code mmaStore}
 * read it), so the scores leave the tensor cores through a per-warp scratch region of global
 * memory (L2), and a fragment cannot be rescaled. One pass over the visible context, {@value #CHUNK}
 * tokens at a time, in segments: scores {@code S^T = K Q^T} (M = 16 tokens, N = 8 rows, K = 16 dims
 * per {@code mma}; K in the A tiles as stored, q in the B tiles; the softmax scale applied to the
 * fp32 scores); {@code P = exp(S - m)} against the row's reference {@code m}, each lane reading its
 * 16 scores once and checking its half-row max against {@code m} in the same pass (fp16, in A tiles);
 * and {@code O += P V} in 16 accumulator fragments (the row's 128 dims). The
 * references stay fixed while every score stays below {@code m + }{@value #GROW} (so {@code p < e^8},
 * safe in fp16); a chunk where a row exceeds its reference ends the segment (its probabilities are
 * set to 0, so the fragments add exact zeros), the fragments are folded, rescaled per row, into the
 * work-group's fp32 accumulators in scratch, and the next segment starts over at that chunk with
 * the larger references. The first chunk of a segment may raise them (its row maxima first, then its
 * probabilities). Each chunk's K/V rows are located once, two chunks ahead (a local table of pool
 * offsets in three slots); a chunk's K is staged into one of two K buffers while the chunk before it
 * computes, and its V when the chunk starts: by asynchronous copies ({@code cp.async}, no registers)
 * in {@link #prefillF16Async} for the CUDA backend, so that both loads fly behind the scores and the
 * softmax, and by plain copies in its twin {@link #prefillF16} for PTX. Local memory is one int array (the MMA tiles, fp16 pairs, 16-byte
 * aligned sub-tiles), three small float arrays, a flag and the offsets. The kernel it replaced (a
 * first pass for the exact row maxima, then the scores again and {@code P V}) was 1.13-1.40x slower
 * on an H200 (benchmarks/NOTES.md, t7).
 *
 * <p>fp16 bits: TornadoVM 5.2's PTX backend rounds {@code new HalfFloat(x)} only where {@code x} is
 * a load (for a computed float it emits an invalid {@code mov.b16}), so the queries are converted
 * from their loads and the probabilities are written over their scores and converted as they are
 * read back. Its CUDA backend is no safer with computed floats: for {@code new HalfFloat(p).getFloat32()}
 * of a computed {@code p} it printed the conversion of another float ({@code p}'s operand before its
 * {@code exp}; benchmarks/NOTES.md, fifty-ninth session), so both backends take the same route.
 *
 * <p>Global scratch: {@value #SCRATCH_PER_GROUP} floats per work-group in {@code partials}, from
 * {@link PrefillParams#SCRATCH_BASE}: each warp's {@code [16][HEAD_DIM]} fragment region, which doubles as
 * its {@code [CHUNK][16]} score region, then the work-group's {@code [ROWS][HEAD_DIM]} folded accumulators.
 */
public final class TensorPrefillKernels {
    /** The tiles' head dimension (16 accumulator fragments of 8 dims): the largest head dim this kernel serves. */
    public static final int HEAD_DIM = 128;
    /** Warps per work-group. */
    public static final int WARPS = 4;
    /** Work-items per work-group. */
    public static final int LOCAL = 32 * WARPS;
    /** (query token, query head) rows per tile: 16 per warp. */
    public static final int ROWS = 16 * WARPS;
    /** Context tokens per chunk (two MMA row tiles of tokens). */
    public static final int CHUNK = 32;
    /** Floats of global scratch per work-group: each warp's [16][HEAD_DIM] region, then the [ROWS][HEAD_DIM] folded accumulators. */
    public static final int SCRATCH_PER_GROUP = 2 * WARPS * 16 * HEAD_DIM;
    /** Headroom of a row's reference over the scores a segment accumulates (natural log): p < e^8 = 2981, fp16-safe. */
    public static final float GROW = 8f;

    // The int tile array, in ints: B tiles of Q^T [warp][nt 2][ks 8] (64 ints), two buffers of A tiles of K
    // [mt 2][ks 8] (128 ints), B tiles of V [ks 2][nt 16] (64 ints), A tiles of P [warp][ks 2] (128 ints).
    private static final int Q_INTS = ROWS * HEAD_DIM / 2;
    /** Ints of one chunk's K (or V) tiles. */
    private static final int KV_INTS = CHUNK * HEAD_DIM / 2;
    private static final int K_AT = Q_INTS;
    private static final int V_AT = K_AT + 2 * KV_INTS;
    private static final int P_AT = V_AT + KV_INTS;
    private static final int TILE_INTS = P_AT + ROWS * CHUNK / 2;
    /** Chunks whose K/V rows the offset table holds: the current one, the next, and the one after it being located. */
    private static final int ROW_SLOTS = 3;
    /** Local memory per work-group (under the 48 KB of static shared memory a CUDA block may have). */
    public static final int LOCAL_BYTES = 4 * (TILE_INTS + 2 * LOCAL + ROWS + ROW_SLOTS * CHUNK + 1);

    private TensorPrefillKernels() {
    }

    /** Query heads per tile. */
    public static int headsPerTile(int groupSize) {
        return Math.min(groupSize, ROWS);
    }

    /** Query tokens per tile. */
    public static int tokensPerTile(int groupSize) {
        return ROWS / headsPerTile(groupSize);
    }

    /** Head tiles per KV head. */
    public static int headTiles(int groupSize) {
        int heads = headsPerTile(groupSize);
        return (groupSize + heads - 1) / heads;
    }

    /** The fp16 bit pattern of {@code x} (round to nearest even), in the low 16 bits. */
    static int halfBits(float x) {
        return new HalfFloat(x).getHalfFloatValue() & 0xFFFF;
    }

    /**
     * The bf16 bit pattern of {@code x} (round to nearest even), in the low 16 bits. Through a long: TornadoVM 5.2's CUDA
     * backend gives every int operation on {@code bf16FromFloat}'s short a short variable, so {@code bits & 0xFFFF} came
     * back sign-extended and {@code bits << 16} as 0 (the queries' pairs lost their high halves: NaN on an H100); the
     * widening to long is printed as a cast, and what follows is int again (its virtual CUDA device's code, sixty-ninth
     * session).
     */
    static int bf16Bits(float x) {
        long bits = BFloat16.bf16FromFloat(x);
        return (int) (bits & 0xFFFFL);
    }

    /**
     * The bf16 bit pattern of {@code x}'s low part {@code x - bf16(x)} (exact in fp32), rounded to bf16: with
     * {@link #bf16Bits} it carries 16 of {@code x}'s significant bits (a computed float through {@code bf16FromFloat} is
     * printed correctly by TornadoVM 5.2's CUDA backend: its virtual CUDA device's code, seventieth session).
     */
    static int loBits(float x) {
        return bf16Bits(x - BFloat16.bf16ToFloat((short) bf16Bits(x)));
    }

    /** Two adjacent fp16 elements of a pool as one int, {@code at} in the low half (an asynchronous copy's value). */
    static int pairBits(HalfFloatArray pool, int at) {
        return (pool.get(at).getHalfFloatValue() & 0xFFFF) | (pool.get(at + 1).getHalfFloatValue() << 16);
    }

    /**
     * Pool offset of dim 0 of the K/V row of context position {@code pos} (block table row at
     * {@code tableRow}), clamped to {@code [lo, hi - 1]}, the visible positions: rows past either end (a chunk past the
     * walk's last, forward or back) are staged from the end's row and masked (score -inf, probability 0), so the staging
     * loads need no branch and never read before the window (a released block).
     */
    static int locate(IntArray blockTables, int tableRow, int pos, int lo, int hi, int blockSize, int layerBase, int blockStride,
                      int headStride, int headDim, int kvHead) {
        int at = TornadoMath.max(lo, TornadoMath.min(pos, hi - 1));
        int block = blockTables.get(tableRow + at / blockSize);
        return KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, at % blockSize, 0);
    }

    /**
     * The scaled score at {@code at}, soft-capped at {@code cap} ({@link PagedDecodeKernels#softCap}; 0: as it is), when
     * chunk token {@code tt} is visible ({@code tLo <= tt < tHi}), else -inf. A row with ALiBi finished its scores in place
     * first ({@link #alibiScore}) and passes scale 1 and cap 0.
     */
    static float visibleScore(FloatArray partials, int at, int tt, int tLo, int tHi, float scale, float cap) {
        float s = tt < tHi ? PagedDecodeKernels.softCap(partials.get(at) * scale, cap) : Float.NEGATIVE_INFINITY;
        return tt >= tLo ? s : Float.NEGATIVE_INFINITY;
    }

    /**
     * A raw score {@code x} scaled, soft-capped at {@code cap} and biased by ALiBi's {@code slope * distance} (the key's
     * position minus the query's), the order of {@code ReferenceAttention.logit}.
     */
    static float alibiScore(float x, float scale, float cap, float slope, int distance) {
        return PagedDecodeKernels.softCap(x * scale, cap) + slope * (float) distance;
    }

    /** Int index of K element pair (t, d..d+1) of a chunk: A tile (t / 16, d / 16), row t % 16. */
    static int kIndex(int t, int d) {
        return K_AT + ((t / 16) * 8 + d / 16) * 128 + (t % 16) * 8 + (d % 16) / 2;
    }

    /** Int index of V element pair (t, d..d+1) of a chunk: B tile (t / 16, d / 8), row t % 16. */
    static int vIndex(int t, int d) {
        return V_AT + ((t / 16) * 16 + d / 8) * 64 + (t % 16) * 4 + (d % 8) / 2;
    }

    /**
     * The kernel for TornadoVM's CUDA backend: K/V staged by asynchronous copies ({@code cp.async}, no
     * registers), each chunk's K issued a chunk ahead into the other K buffer and its V when the chunk
     * starts, so both loads fly behind the scores and the softmax. {@link #prefillF16} is this body with
     * plain copies (TornadoVM 5.2's PTX backend cannot build {@code asyncCopyToLocal}); a source test keeps
     * them twins.
     */
    public static void prefillF16Async(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                       IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                       FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                       int blockSize, float scale) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int warp = tid / 32;
        int lane = tid - warp * 32;
        int heads = TornadoMath.min(groupSize, ROWS);         // query heads per tile
        int tokensPerTile = ROWS / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest: PrefillTile's start, written out (see there)
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int maxQTiles = params.get(PrefillParams.MAX_Q_TILES);
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int qTile = rest % maxQTiles;
        rest = rest / maxQTiles;
        int headTile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        if (seq >= params.get(PrefillParams.NUM_SEQS)) {
            return;
        }
        int qStart = qIndptr.get(seq);
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;
        if (firstToken >= qLen) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(PrefillParams.PARTITION_TOKENS);
        int numParts = (len + partTokens - 1) / partTokens;
        if (part >= numParts) {
            return;
        }
        int tileTokens = TornadoMath.min(tokensPerTile, qLen - firstToken);
        int tree = PrefillTile.treeRows(params, seq);         // token-tree mask rows (0: causal)
        // (non-causal, or masked: the context's end; a mask's bits decide among the new tokens, a span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int window = params.get(PrefillParams.WINDOW);
        int lo = TornadoMath.max(part * partTokens, PrefillTile.visibleFrom(tree != 0 ? len - qLen : firstPos, window));
        int hi = TornadoMath.min((part + 1) * partTokens, TornadoMath.min(len, firstPos + tileTokens)); // visible context of the tile: [lo, hi)
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;
        int headStride = blockSize * headDim;                 // the pools' rows are headDim long; the tiles are HEAD_DIM wide
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int regionBase = params.get(PrefillParams.SCRATCH_BASE) + gid * SCRATCH_PER_GROUP;
        int accBase = regionBase + WARPS * 16 * HEAD_DIM;     // [ROWS][HEAD_DIM]: the folded accumulators
        int region = regionBase + warp * 16 * HEAD_DIM;       // this warp's scores [CHUNK][16], then output [16][HEAD_DIM]

        int[] tile = ctx.allocateIntLocalArray(TILE_INTS);    // first: 16-byte aligned for ldmatrix
        float[] mPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: max of a lane's half of a row
        float[] lPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: sum of a lane's half of a row
        float[] mRow = ctx.allocateFloatLocalArray(ROWS);     // [row] the fold's rescale factor of the accumulators
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int[] flag = ctx.allocateIntLocalArray(1);            // 1: a row of the chunk exceeds its reference (segment ends)
        int[] rowAt = ctx.allocateIntLocalArray(ROW_SLOTS * CHUNK); // [slot][token of the chunk] pool offset of its K/V row (see locate)

        // q^T as B tiles: rows r0, r0+1 (one int) at dim d, fp16 (the scale is applied to the fp32 scores). Each
        // element is converted straight from its load: TornadoVM 5.2's PTX backend rounds a HalfFloat made from a
        // loaded float, but not one made from a computed float.
        for (int idx = tid; idx < ROWS / 2 * HEAD_DIM; idx += local) {
            int r0 = idx / HEAD_DIM * 2;
            int d = idx - idx / HEAD_DIM * HEAD_DIM;
            int pair = 0;
            for (int i = 0; i < 2; i++) {
                int r = r0 + i;
                int token = r / heads;
                int h = headBase + r - token * heads;
                boolean valid = token < tileTokens && h < groupSize && d < headDim; // dims past headDim: 0 (the padding)
                int at = valid ? ((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + d : 0;
                int bits = halfBits(q.get(at));
                if (valid) {
                    pair = pair | (bits << (16 * i));
                }
            }
            int w = r0 / 16;
            int rr = r0 - w * 16;
            int nt = rr / 8;
            tile[((w * 2 + nt) * 8 + d / 16) * 64 + (d % 16) * 4 + (rr - nt * 8) / 2] = pair;
        }
        // this lane's row (of its warp's 16) and half of each chunk's tokens
        int rr = lane % 16;
        int half = lane / 16;
        int row = warp * 16 + rr;
        int rowPos = PrefillKernels.rowPosition(row, heads, tileTokens, headBase, groupSize, firstPos);
        float slope = PrefillKernels.rowSlope(partials, params.get(PrefillParams.ALIBI), row, heads, headBase, groupSize, kvHead);  // ALiBi (0: none)
        int finish = slope != 0f ? 1 : tree != 0 ? 1 : 0;     // a row with ALiBi or a mask has its scores finished in place (below)
        // ... every chunk of such a row in a layer with ALiBi or under a window, else (a mask) only the chunks that reach the
        // new tokens. Flags from single int comparisons, combined by max: chained in one ternary with the row's slope test,
        // they gave ALiBi rows wrong scores on the CUDA backend (relative L2 0.85, H100) while PTX and the emulator passed
        int everyChunk = TornadoMath.max(params.get(PrefillParams.ALIBI) != 0 ? 1 : 0, window != Integer.MAX_VALUE ? 1 : 0);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int qB = (warp * 2) * 8 * 64;                         // int index of this warp's first q^T tile
        int dPair = (tid % 64) * 2;                           // the dims (dPair, dPair + 1) this work-item stages
        int dSrc = dPair % headDim;                           // ... read from these dims: past headDim a real pair, met by q's zeros
        int tFirst = tid / 64;                                // ... for tokens tFirst + 2i of each chunk (LOCAL = 2 x 64)

        // One pass, in segments: a row's reference m stays fixed while its scores stay below m + GROW
        // (p = exp(s - m) < e^GROW, fp16-safe), so the 16 accumulator fragments, which cannot be rescaled, add
        // P V relative to it; a chunk that exceeds it (or the last chunk) ends the segment, whose fragments are
        // then folded, rescaled, into the work-group's accumulators in scratch (accBase), and the next segment
        // starts over at that chunk with the larger reference. Flags are ints from single comparisons
        // (TornadoVM 5.2's CUDA C loses the negations of a materialised `a && !b`).
        float m = -Float.MAX_VALUE;                           // this row's reference (the same in both lanes of a row)
        float mAcc = -Float.MAX_VALUE;                        // the reference of the folded accumulators
        float l = 0f;                                         // this lane's half of its row's sum, relative to mAcc
        int folded = 0;                                       // 1 once the scratch accumulators hold a segment
        int pB = P_AT + warp * 2 * 128;                       // int index of this warp's first P tile
        int buf = 0;
        // With ALiBi the walk goes from the last chunk back: its biases rise towards the diagonal, so the highest scores
        // come first and a segment ends only where the scores themselves jump (forward, nearly every chunk would end one)
        int dir = params.get(PrefillParams.ALIBI) != 0 ? -1 : 1;
        // chunk k of the walk starts at c0 = walk0 + dir k CHUNK; none where the partition ends before the window starts
        // (hi <= lo): never a negative dividend, which TornadoVM 5.2's PTX backend divides by 32 with logical shifts
        int chunks = hi > lo ? (hi - lo + CHUNK - 1) / CHUNK : 0;
        int walk0 = dir > 0 ? lo : lo + (chunks - 1) * CHUNK;
        int k = 0;
        int c0 = walk0;
        while (k < chunks) {
            float[] o0 = ctx.mmaFragment(0f);
            float[] o1 = ctx.mmaFragment(0f);
            float[] o2 = ctx.mmaFragment(0f);
            float[] o3 = ctx.mmaFragment(0f);
            float[] o4 = ctx.mmaFragment(0f);
            float[] o5 = ctx.mmaFragment(0f);
            float[] o6 = ctx.mmaFragment(0f);
            float[] o7 = ctx.mmaFragment(0f);
            float[] o8 = ctx.mmaFragment(0f);
            float[] o9 = ctx.mmaFragment(0f);
            float[] o10 = ctx.mmaFragment(0f);
            float[] o11 = ctx.mmaFragment(0f);
            float[] o12 = ctx.mmaFragment(0f);
            float[] o13 = ctx.mmaFragment(0f);
            float[] o14 = ctx.mmaFragment(0f);
            float[] o15 = ctx.mmaFragment(0f);
            int seg0 = c0;
            int stop = chunks;
            float segL = 0f;
            int grew = 0;
            // The pipeline's start: the segment's first two chunks located (offset slots 0 and 1), the first
            // chunk's K in flight. A segment that ended may have left the next chunk's K in flight: waited for
            // first, so that no copy of this work-item is pending across the restart.
            ctx.asyncCopyWaitGroup(0);
            if (tid < 2 * CHUNK) {
                rowAt[tid] = locate(blockTables, seq * maxBlocks, c0 + (tid / CHUNK) * dir * CHUNK + tid % CHUNK, lo, hi, blockSize,
                        layerBase, blockStride, headStride, headDim, kvHead);
            }
            ctx.localBarrier();
            // Each work-item's 16 pairs of a chunk in two rounds of eight copies: in the PTX twin, eight loads in flight
            // before their stores. (The staging stays in this method: TornadoVM 5.2 addresses a local array that a
            // helper method receives as a global one, header and byte offset included.)
            for (int i = 0; i < 2; i++) {
                int t0 = tFirst + 16 * i;
                ctx.asyncCopyToLocal(tile, kIndex(t0, dPair) + buf * KV_INTS, kPool, rowAt[t0] + dSrc);
                ctx.asyncCopyToLocal(tile, kIndex(t0 + 2, dPair) + buf * KV_INTS, kPool, rowAt[t0 + 2] + dSrc);
                ctx.asyncCopyToLocal(tile, kIndex(t0 + 4, dPair) + buf * KV_INTS, kPool, rowAt[t0 + 4] + dSrc);
                ctx.asyncCopyToLocal(tile, kIndex(t0 + 6, dPair) + buf * KV_INTS, kPool, rowAt[t0 + 6] + dSrc);
                ctx.asyncCopyToLocal(tile, kIndex(t0 + 8, dPair) + buf * KV_INTS, kPool, rowAt[t0 + 8] + dSrc);
                ctx.asyncCopyToLocal(tile, kIndex(t0 + 10, dPair) + buf * KV_INTS, kPool, rowAt[t0 + 10] + dSrc);
                ctx.asyncCopyToLocal(tile, kIndex(t0 + 12, dPair) + buf * KV_INTS, kPool, rowAt[t0 + 12] + dSrc);
                ctx.asyncCopyToLocal(tile, kIndex(t0 + 14, dPair) + buf * KV_INTS, kPool, rowAt[t0 + 14] + dSrc);
            }
            ctx.asyncCopyCommit();
            int slot = 0;                                             // offset slot of the current chunk's rows
            while (k < stop) {
                int n = TornadoMath.min(CHUNK, hi - c0);
                int next = slot == 2 ? 0 : slot + 1;
                int after = next == 2 ? 0 : next + 1;
                // Copies in flight while this chunk computes (cp.async on the CUDA backend; plain copies elsewhere): its
                // V (the V tiles were last read by the previous chunk's P V, before the barrier that ended it), then
                // the next chunk's K into the other K buffer (last read by the previous chunk's scores).
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    ctx.asyncCopyToLocal(tile, vIndex(t0, dPair), vPool, rowAt[slot * CHUNK + t0] + dSrc);
                    ctx.asyncCopyToLocal(tile, vIndex(t0 + 2, dPair), vPool, rowAt[slot * CHUNK + t0 + 2] + dSrc);
                    ctx.asyncCopyToLocal(tile, vIndex(t0 + 4, dPair), vPool, rowAt[slot * CHUNK + t0 + 4] + dSrc);
                    ctx.asyncCopyToLocal(tile, vIndex(t0 + 6, dPair), vPool, rowAt[slot * CHUNK + t0 + 6] + dSrc);
                    ctx.asyncCopyToLocal(tile, vIndex(t0 + 8, dPair), vPool, rowAt[slot * CHUNK + t0 + 8] + dSrc);
                    ctx.asyncCopyToLocal(tile, vIndex(t0 + 10, dPair), vPool, rowAt[slot * CHUNK + t0 + 10] + dSrc);
                    ctx.asyncCopyToLocal(tile, vIndex(t0 + 12, dPair), vPool, rowAt[slot * CHUNK + t0 + 12] + dSrc);
                    ctx.asyncCopyToLocal(tile, vIndex(t0 + 14, dPair), vPool, rowAt[slot * CHUNK + t0 + 14] + dSrc);
                }
                ctx.asyncCopyCommit();
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    ctx.asyncCopyToLocal(tile, kIndex(t0, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0] + dSrc);
                    ctx.asyncCopyToLocal(tile, kIndex(t0 + 2, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0 + 2] + dSrc);
                    ctx.asyncCopyToLocal(tile, kIndex(t0 + 4, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0 + 4] + dSrc);
                    ctx.asyncCopyToLocal(tile, kIndex(t0 + 6, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0 + 6] + dSrc);
                    ctx.asyncCopyToLocal(tile, kIndex(t0 + 8, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0 + 8] + dSrc);
                    ctx.asyncCopyToLocal(tile, kIndex(t0 + 10, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0 + 10] + dSrc);
                    ctx.asyncCopyToLocal(tile, kIndex(t0 + 12, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0 + 12] + dSrc);
                    ctx.asyncCopyToLocal(tile, kIndex(t0 + 14, dPair) + (1 - buf) * KV_INTS, kPool, rowAt[next * CHUNK + t0 + 14] + dSrc);
                }
                ctx.asyncCopyCommit();
                if (tid == 0) {
                    flag[0] = 0;                                      // read only after the score barriers below
                }
                if (tid < CHUNK) {                                    // the rows of the chunk after the next
                    rowAt[after * CHUNK + tid] = locate(blockTables, seq * maxBlocks, c0 + 2 * dir * CHUNK + tid, lo, hi, blockSize, layerBase,
                            blockStride, headStride, headDim, kvHead);
                }
                ctx.asyncCopyWaitGroup(2);                            // this chunk's K (issued a chunk ago) has landed
                ctx.localBarrier();
                for (int mt = 0; mt < 2; mt++) {
                    float[] s0 = ctx.mmaFragment(0f);
                    float[] s1 = ctx.mmaFragment(0f);
                    for (int ks = 0; ks < 8; ks++) {
                        HalfFloat[] a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + ks) * 128) * 4);
                        s0 = ctx.mma(a, ctx.mmaLoadB(tile, 16, (qB + ks * 64) * 4), s0, MMAShape.M16N8K16);
                        s1 = ctx.mma(a, ctx.mmaLoadB(tile, 16, (qB + (8 + ks) * 64) * 4), s1, MMAShape.M16N8K16);
                    }
                    ctx.mmaStore(s0, partials, mt * 16, region, 16);
                    ctx.mmaStore(s1, partials, mt * 16, region + 8, 16);
                }
                ctx.localBarrier();
                // this lane's 16 scores of its row (tokens half * 16 + j of the chunk), visible for tLo <= tt < tHi
                int rel = rowPos - c0;                                // the row's position relative to the chunk (< 0: none visible)
                int tHi = TornadoMath.min(n, rel + 1);
                int tLo = TornadoMath.max(-CHUNK, PrefillTile.visibleFrom(rowPos, slotWindow) - c0); // the row's window (or chunk), from c0
                // a masked row's chunks of cached tokens, which every new token sees whole when there is no window, take the
                // causal path: only ALiBi, a window, or a chunk that reaches the new tokens needs the scores finished
                int reaches = c0 + n > len - qLen ? 1 : 0;
                int fin = finish * TornadoMath.max(everyChunk, reaches);
                float rowScale = fin != 0 ? 1f : scale;
                float rowCap = fin != 0 ? 0f : cap;
                if (fin != 0) {
                    // ALiBi or a token-tree mask: this lane's 16 scores scaled, capped, biased and masked (-inf) in place,
                    // so that the loops below (which take them as they are: rowScale 1, rowCap 0) add nothing per score to
                    // a row without either
                    int bits = PrefillTile.maskBits(params, tree, row, heads, firstToken, tileTokens, qLen, len, c0, window);
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float x = alibiScore(partials.get(at), scale, cap, slope, half * 16 + j - rel);
                        partials.set(at, ((bits >> (half * 16 + j)) & 1) != 0 ? x : Float.NEGATIVE_INFINITY);
                    }
                }
                float t = Float.NEGATIVE_INFINITY;                    // this lane's half of the row's chunk max
                float cs = 0f;                                        // this lane's share of the chunk's probability sum
                if (c0 == seg0) {
                    // the segment's first chunk: its row maxima may raise the references before any probability
                    for (int j = 0; j < 16; j++) {
                        t = TornadoMath.max(t, visibleScore(partials, region + (half * 16 + j) * 16 + rr, half * 16 + j, tLo, tHi, rowScale, rowCap));
                    }
                    mPart[tid] = t;
                    ctx.localBarrier();
                    float rowMax = TornadoMath.max(mPart[warp * 32 + rr], mPart[warp * 32 + 16 + rr]);
                    if (rowMax > m + GROW) {
                        m = rowMax;                                   // nothing accumulated yet: raise the reference
                    }
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float p = TornadoMath.exp(visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap) - m);
                        cs += p;
                        partials.set(at, p);
                    }
                } else {
                    // later chunks: the probabilities against the fixed references in the same pass as the max; a
                    // lane whose max exceeds its reference ends the segment, and the chunk's probabilities are dropped
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float sc = visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap);
                        t = TornadoMath.max(t, sc);
                        float p = TornadoMath.exp(sc - m);
                        cs += p;
                        partials.set(at, p);
                    }
                    int over = t > m + GROW ? 1 : 0;
                    if (over != 0) {
                        flag[0] = 1;                                  // every writer writes 1 (reset while staging)
                    }
                }
                ctx.localBarrier();
                grew = flag[0];
                int keep = 1 - grew;
                segL += grew != 0 ? 0f : cs;
                // the probabilities as one A tile row, two fp16 per int; 0 in a chunk that ends the segment (the
                // fragments add exact zeros)
                for (int j = 0; j < 16; j += 2) {
                    int at = region + (half * 16 + j) * 16 + rr;
                    tile[pB + half * 128 + rr * 8 + j / 2] = (halfBits(partials.get(at)) | (halfBits(partials.get(at + 16)) << 16)) * keep;
                }
                ctx.asyncCopyWaitGroup(1);                            // this chunk's V has landed (the next K may fly on)
                ctx.localBarrier();
                // (unrolled: each fragment's loop-carried value comes straight from an mma; TornadoVM 5.2 copies a
                // fragment that flows from one loop phi into another as a whole C array, which NVRTC rejects)
                HalfFloat[] a0 = ctx.mmaLoadA(tile, 16, (pB + 0) * 4);
                o0 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0) * 4), o0, MMAShape.M16N8K16);
                o1 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 1 * 64) * 4), o1, MMAShape.M16N8K16);
                o2 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 2 * 64) * 4), o2, MMAShape.M16N8K16);
                o3 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 3 * 64) * 4), o3, MMAShape.M16N8K16);
                o4 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 4 * 64) * 4), o4, MMAShape.M16N8K16);
                o5 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 5 * 64) * 4), o5, MMAShape.M16N8K16);
                o6 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 6 * 64) * 4), o6, MMAShape.M16N8K16);
                o7 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 7 * 64) * 4), o7, MMAShape.M16N8K16);
                o8 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 8 * 64) * 4), o8, MMAShape.M16N8K16);
                o9 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 9 * 64) * 4), o9, MMAShape.M16N8K16);
                o10 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 10 * 64) * 4), o10, MMAShape.M16N8K16);
                o11 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 11 * 64) * 4), o11, MMAShape.M16N8K16);
                o12 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 12 * 64) * 4), o12, MMAShape.M16N8K16);
                o13 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 13 * 64) * 4), o13, MMAShape.M16N8K16);
                o14 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 14 * 64) * 4), o14, MMAShape.M16N8K16);
                o15 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 15 * 64) * 4), o15, MMAShape.M16N8K16);
                HalfFloat[] a1 = ctx.mmaLoadA(tile, 16, (pB + 128) * 4);
                o0 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024) * 4), o0, MMAShape.M16N8K16);
                o1 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 1 * 64) * 4), o1, MMAShape.M16N8K16);
                o2 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 2 * 64) * 4), o2, MMAShape.M16N8K16);
                o3 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 3 * 64) * 4), o3, MMAShape.M16N8K16);
                o4 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 4 * 64) * 4), o4, MMAShape.M16N8K16);
                o5 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 5 * 64) * 4), o5, MMAShape.M16N8K16);
                o6 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 6 * 64) * 4), o6, MMAShape.M16N8K16);
                o7 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 7 * 64) * 4), o7, MMAShape.M16N8K16);
                o8 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 8 * 64) * 4), o8, MMAShape.M16N8K16);
                o9 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 9 * 64) * 4), o9, MMAShape.M16N8K16);
                o10 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 10 * 64) * 4), o10, MMAShape.M16N8K16);
                o11 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 11 * 64) * 4), o11, MMAShape.M16N8K16);
                o12 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 12 * 64) * 4), o12, MMAShape.M16N8K16);
                o13 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 13 * 64) * 4), o13, MMAShape.M16N8K16);
                o14 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 14 * 64) * 4), o14, MMAShape.M16N8K16);
                o15 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 15 * 64) * 4), o15, MMAShape.M16N8K16);
                ctx.localBarrier();
                // advance, or end the segment at this chunk; branch-free, so that no merge lies between the
                // fragments' mma results and the loop's back edge (TornadoVM 5.2 routes fragments through a
                // merge as a whole C array, which NVRTC rejects)
                stop -= grew * (stop - k);
                c0 += keep * dir * CHUNK;
                k += keep;
                buf ^= keep;
                slot += keep * (next - slot);
            }
            // fold: acc = acc * exp(mAcc - m) + fragments, per row
            ctx.mmaStore(o0, partials, 0, region, HEAD_DIM);
            ctx.mmaStore(o1, partials, 0, region + 8, HEAD_DIM);
            ctx.mmaStore(o2, partials, 0, region + 2 * 8, HEAD_DIM);
            ctx.mmaStore(o3, partials, 0, region + 3 * 8, HEAD_DIM);
            ctx.mmaStore(o4, partials, 0, region + 4 * 8, HEAD_DIM);
            ctx.mmaStore(o5, partials, 0, region + 5 * 8, HEAD_DIM);
            ctx.mmaStore(o6, partials, 0, region + 6 * 8, HEAD_DIM);
            ctx.mmaStore(o7, partials, 0, region + 7 * 8, HEAD_DIM);
            ctx.mmaStore(o8, partials, 0, region + 8 * 8, HEAD_DIM);
            ctx.mmaStore(o9, partials, 0, region + 9 * 8, HEAD_DIM);
            ctx.mmaStore(o10, partials, 0, region + 10 * 8, HEAD_DIM);
            ctx.mmaStore(o11, partials, 0, region + 11 * 8, HEAD_DIM);
            ctx.mmaStore(o12, partials, 0, region + 12 * 8, HEAD_DIM);
            ctx.mmaStore(o13, partials, 0, region + 13 * 8, HEAD_DIM);
            ctx.mmaStore(o14, partials, 0, region + 14 * 8, HEAD_DIM);
            ctx.mmaStore(o15, partials, 0, region + 15 * 8, HEAD_DIM);
            float c = TornadoMath.exp(mAcc - m);
            if (half == 0) {
                mRow[row] = c;
            }
            l = l * c + segL;
            mAcc = m;
            ctx.localBarrier();
            for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) { // the warps' [16][HEAD_DIM] regions are [ROWS][HEAD_DIM]
                int r = idx / HEAD_DIM;
                float add = partials.get(regionBase + idx);
                float prev = 0f;
                if (folded != 0) {
                    prev = partials.get(accBase + idx) * mRow[r];
                }
                partials.set(accBase + idx, prev + add);
            }
            folded = 1;                                       // (the restart chunk raises its references as a first chunk)
            ctx.localBarrier();
        }
        ctx.asyncCopyWaitGroup(0);                            // the last chunk's next K: nothing left in flight
        if (half == 0) {
            mRow[row] = mAcc;
        }
        lPart[tid] = l;
        ctx.localBarrier();

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) {
            int r = idx / HEAD_DIM;
            int e = idx - r * HEAD_DIM;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize && e < headDim) {
                int w = r / 16;
                int wr = r - w * 16;
                float acc = 0f;                               // 0 where the partition has no visible chunk
                if (folded != 0) {
                    acc = partials.get(accBase + idx);
                }
                float sum = lPart[w * 32 + wr] + lPart[w * 32 + 16 + wr];
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc / sum);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, sum);
                    }
                }
            }
        }
    }

    /**
     * The kernel for the PTX backend: {@link #prefillF16Async} with each round of asynchronous copies as
     * plain ones, the round's loads ({@link #pairBits}: two 16-bit loads each) before its local stores, and
     * without the commits and waits.
     */
    public static void prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                  IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                  FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                  int blockSize, float scale) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int warp = tid / 32;
        int lane = tid - warp * 32;
        int heads = TornadoMath.min(groupSize, ROWS);         // query heads per tile
        int tokensPerTile = ROWS / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest: PrefillTile's start, written out (see there)
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int maxQTiles = params.get(PrefillParams.MAX_Q_TILES);
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int qTile = rest % maxQTiles;
        rest = rest / maxQTiles;
        int headTile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        if (seq >= params.get(PrefillParams.NUM_SEQS)) {
            return;
        }
        int qStart = qIndptr.get(seq);
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;
        if (firstToken >= qLen) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(PrefillParams.PARTITION_TOKENS);
        int numParts = (len + partTokens - 1) / partTokens;
        if (part >= numParts) {
            return;
        }
        int tileTokens = TornadoMath.min(tokensPerTile, qLen - firstToken);
        int tree = PrefillTile.treeRows(params, seq);         // token-tree mask rows (0: causal)
        // (non-causal, or masked: the context's end; a mask's bits decide among the new tokens, a span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int window = params.get(PrefillParams.WINDOW);
        int lo = TornadoMath.max(part * partTokens, PrefillTile.visibleFrom(tree != 0 ? len - qLen : firstPos, window));
        int hi = TornadoMath.min((part + 1) * partTokens, TornadoMath.min(len, firstPos + tileTokens)); // visible context of the tile: [lo, hi)
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;
        int headStride = blockSize * headDim;                 // the pools' rows are headDim long; the tiles are HEAD_DIM wide
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int regionBase = params.get(PrefillParams.SCRATCH_BASE) + gid * SCRATCH_PER_GROUP;
        int accBase = regionBase + WARPS * 16 * HEAD_DIM;     // [ROWS][HEAD_DIM]: the folded accumulators
        int region = regionBase + warp * 16 * HEAD_DIM;       // this warp's scores [CHUNK][16], then output [16][HEAD_DIM]

        int[] tile = ctx.allocateIntLocalArray(TILE_INTS);    // first: 16-byte aligned for ldmatrix
        float[] mPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: max of a lane's half of a row
        float[] lPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: sum of a lane's half of a row
        float[] mRow = ctx.allocateFloatLocalArray(ROWS);     // [row] the fold's rescale factor of the accumulators
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int[] flag = ctx.allocateIntLocalArray(1);            // 1: a row of the chunk exceeds its reference (segment ends)
        int[] rowAt = ctx.allocateIntLocalArray(ROW_SLOTS * CHUNK); // [slot][token of the chunk] pool offset of its K/V row (see locate)

        // q^T as B tiles: rows r0, r0+1 (one int) at dim d, fp16 (the scale is applied to the fp32 scores). Each
        // element is converted straight from its load: TornadoVM 5.2's PTX backend rounds a HalfFloat made from a
        // loaded float, but not one made from a computed float.
        for (int idx = tid; idx < ROWS / 2 * HEAD_DIM; idx += local) {
            int r0 = idx / HEAD_DIM * 2;
            int d = idx - idx / HEAD_DIM * HEAD_DIM;
            int pair = 0;
            for (int i = 0; i < 2; i++) {
                int r = r0 + i;
                int token = r / heads;
                int h = headBase + r - token * heads;
                boolean valid = token < tileTokens && h < groupSize && d < headDim; // dims past headDim: 0 (the padding)
                int at = valid ? ((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + d : 0;
                int bits = halfBits(q.get(at));
                if (valid) {
                    pair = pair | (bits << (16 * i));
                }
            }
            int w = r0 / 16;
            int rr = r0 - w * 16;
            int nt = rr / 8;
            tile[((w * 2 + nt) * 8 + d / 16) * 64 + (d % 16) * 4 + (rr - nt * 8) / 2] = pair;
        }
        // this lane's row (of its warp's 16) and half of each chunk's tokens
        int rr = lane % 16;
        int half = lane / 16;
        int row = warp * 16 + rr;
        int rowPos = PrefillKernels.rowPosition(row, heads, tileTokens, headBase, groupSize, firstPos);
        float slope = PrefillKernels.rowSlope(partials, params.get(PrefillParams.ALIBI), row, heads, headBase, groupSize, kvHead);  // ALiBi (0: none)
        int finish = slope != 0f ? 1 : tree != 0 ? 1 : 0;     // a row with ALiBi or a mask has its scores finished in place (below)
        // ... every chunk of such a row in a layer with ALiBi or under a window, else (a mask) only the chunks that reach the
        // new tokens. Flags from single int comparisons, combined by max: chained in one ternary with the row's slope test,
        // they gave ALiBi rows wrong scores on the CUDA backend (relative L2 0.85, H100) while PTX and the emulator passed
        int everyChunk = TornadoMath.max(params.get(PrefillParams.ALIBI) != 0 ? 1 : 0, window != Integer.MAX_VALUE ? 1 : 0);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int qB = (warp * 2) * 8 * 64;                         // int index of this warp's first q^T tile
        int dPair = (tid % 64) * 2;                           // the dims (dPair, dPair + 1) this work-item stages
        int dSrc = dPair % headDim;                           // ... read from these dims: past headDim a real pair, met by q's zeros
        int tFirst = tid / 64;                                // ... for tokens tFirst + 2i of each chunk (LOCAL = 2 x 64)

        // One pass, in segments: a row's reference m stays fixed while its scores stay below m + GROW
        // (p = exp(s - m) < e^GROW, fp16-safe), so the 16 accumulator fragments, which cannot be rescaled, add
        // P V relative to it; a chunk that exceeds it (or the last chunk) ends the segment, whose fragments are
        // then folded, rescaled, into the work-group's accumulators in scratch (accBase), and the next segment
        // starts over at that chunk with the larger reference. Flags are ints from single comparisons
        // (TornadoVM 5.2's CUDA C loses the negations of a materialised `a && !b`).
        float m = -Float.MAX_VALUE;                           // this row's reference (the same in both lanes of a row)
        float mAcc = -Float.MAX_VALUE;                        // the reference of the folded accumulators
        float l = 0f;                                         // this lane's half of its row's sum, relative to mAcc
        int folded = 0;                                       // 1 once the scratch accumulators hold a segment
        int pB = P_AT + warp * 2 * 128;                       // int index of this warp's first P tile
        int buf = 0;
        // With ALiBi the walk goes from the last chunk back: its biases rise towards the diagonal, so the highest scores
        // come first and a segment ends only where the scores themselves jump (forward, nearly every chunk would end one)
        int dir = params.get(PrefillParams.ALIBI) != 0 ? -1 : 1;
        // chunk k of the walk starts at c0 = walk0 + dir k CHUNK; none where the partition ends before the window starts
        // (hi <= lo): never a negative dividend, which TornadoVM 5.2's PTX backend divides by 32 with logical shifts
        int chunks = hi > lo ? (hi - lo + CHUNK - 1) / CHUNK : 0;
        int walk0 = dir > 0 ? lo : lo + (chunks - 1) * CHUNK;
        int k = 0;
        int c0 = walk0;
        while (k < chunks) {
            float[] o0 = ctx.mmaFragment(0f);
            float[] o1 = ctx.mmaFragment(0f);
            float[] o2 = ctx.mmaFragment(0f);
            float[] o3 = ctx.mmaFragment(0f);
            float[] o4 = ctx.mmaFragment(0f);
            float[] o5 = ctx.mmaFragment(0f);
            float[] o6 = ctx.mmaFragment(0f);
            float[] o7 = ctx.mmaFragment(0f);
            float[] o8 = ctx.mmaFragment(0f);
            float[] o9 = ctx.mmaFragment(0f);
            float[] o10 = ctx.mmaFragment(0f);
            float[] o11 = ctx.mmaFragment(0f);
            float[] o12 = ctx.mmaFragment(0f);
            float[] o13 = ctx.mmaFragment(0f);
            float[] o14 = ctx.mmaFragment(0f);
            float[] o15 = ctx.mmaFragment(0f);
            int seg0 = c0;
            int stop = chunks;
            float segL = 0f;
            int grew = 0;
            // The pipeline's start: the segment's first two chunks located (offset slots 0 and 1), the first
            // chunk's K in flight. A segment that ended may have left the next chunk's K in flight: waited for
            // first, so that no copy of this work-item is pending across the restart.
            if (tid < 2 * CHUNK) {
                rowAt[tid] = locate(blockTables, seq * maxBlocks, c0 + (tid / CHUNK) * dir * CHUNK + tid % CHUNK, lo, hi, blockSize,
                        layerBase, blockStride, headStride, headDim, kvHead);
            }
            ctx.localBarrier();
            // Each work-item's 16 pairs of a chunk in two rounds of eight copies: in the PTX twin, eight loads in flight
            // before their stores. (The staging stays in this method: TornadoVM 5.2 addresses a local array that a
            // helper method receives as a global one, header and byte offset included.)
            for (int i = 0; i < 2; i++) {
                int t0 = tFirst + 16 * i;
                int w0 = pairBits(kPool, rowAt[t0] + dSrc);
                int w1 = pairBits(kPool, rowAt[t0 + 2] + dSrc);
                int w2 = pairBits(kPool, rowAt[t0 + 4] + dSrc);
                int w3 = pairBits(kPool, rowAt[t0 + 6] + dSrc);
                int w4 = pairBits(kPool, rowAt[t0 + 8] + dSrc);
                int w5 = pairBits(kPool, rowAt[t0 + 10] + dSrc);
                int w6 = pairBits(kPool, rowAt[t0 + 12] + dSrc);
                int w7 = pairBits(kPool, rowAt[t0 + 14] + dSrc);
                tile[kIndex(t0, dPair) + buf * KV_INTS] = w0;
                tile[kIndex(t0 + 2, dPair) + buf * KV_INTS] = w1;
                tile[kIndex(t0 + 4, dPair) + buf * KV_INTS] = w2;
                tile[kIndex(t0 + 6, dPair) + buf * KV_INTS] = w3;
                tile[kIndex(t0 + 8, dPair) + buf * KV_INTS] = w4;
                tile[kIndex(t0 + 10, dPair) + buf * KV_INTS] = w5;
                tile[kIndex(t0 + 12, dPair) + buf * KV_INTS] = w6;
                tile[kIndex(t0 + 14, dPair) + buf * KV_INTS] = w7;
            }
            int slot = 0;                                             // offset slot of the current chunk's rows
            while (k < stop) {
                int n = TornadoMath.min(CHUNK, hi - c0);
                int next = slot == 2 ? 0 : slot + 1;
                int after = next == 2 ? 0 : next + 1;
                // Copies in flight while this chunk computes (cp.async on the CUDA backend; plain copies elsewhere): its
                // V (the V tiles were last read by the previous chunk's P V, before the barrier that ended it), then
                // the next chunk's K into the other K buffer (last read by the previous chunk's scores).
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    int w0 = pairBits(vPool, rowAt[slot * CHUNK + t0] + dSrc);
                    int w1 = pairBits(vPool, rowAt[slot * CHUNK + t0 + 2] + dSrc);
                    int w2 = pairBits(vPool, rowAt[slot * CHUNK + t0 + 4] + dSrc);
                    int w3 = pairBits(vPool, rowAt[slot * CHUNK + t0 + 6] + dSrc);
                    int w4 = pairBits(vPool, rowAt[slot * CHUNK + t0 + 8] + dSrc);
                    int w5 = pairBits(vPool, rowAt[slot * CHUNK + t0 + 10] + dSrc);
                    int w6 = pairBits(vPool, rowAt[slot * CHUNK + t0 + 12] + dSrc);
                    int w7 = pairBits(vPool, rowAt[slot * CHUNK + t0 + 14] + dSrc);
                    tile[vIndex(t0, dPair)] = w0;
                    tile[vIndex(t0 + 2, dPair)] = w1;
                    tile[vIndex(t0 + 4, dPair)] = w2;
                    tile[vIndex(t0 + 6, dPair)] = w3;
                    tile[vIndex(t0 + 8, dPair)] = w4;
                    tile[vIndex(t0 + 10, dPair)] = w5;
                    tile[vIndex(t0 + 12, dPair)] = w6;
                    tile[vIndex(t0 + 14, dPair)] = w7;
                }
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    int w0 = pairBits(kPool, rowAt[next * CHUNK + t0] + dSrc);
                    int w1 = pairBits(kPool, rowAt[next * CHUNK + t0 + 2] + dSrc);
                    int w2 = pairBits(kPool, rowAt[next * CHUNK + t0 + 4] + dSrc);
                    int w3 = pairBits(kPool, rowAt[next * CHUNK + t0 + 6] + dSrc);
                    int w4 = pairBits(kPool, rowAt[next * CHUNK + t0 + 8] + dSrc);
                    int w5 = pairBits(kPool, rowAt[next * CHUNK + t0 + 10] + dSrc);
                    int w6 = pairBits(kPool, rowAt[next * CHUNK + t0 + 12] + dSrc);
                    int w7 = pairBits(kPool, rowAt[next * CHUNK + t0 + 14] + dSrc);
                    tile[kIndex(t0, dPair) + (1 - buf) * KV_INTS] = w0;
                    tile[kIndex(t0 + 2, dPair) + (1 - buf) * KV_INTS] = w1;
                    tile[kIndex(t0 + 4, dPair) + (1 - buf) * KV_INTS] = w2;
                    tile[kIndex(t0 + 6, dPair) + (1 - buf) * KV_INTS] = w3;
                    tile[kIndex(t0 + 8, dPair) + (1 - buf) * KV_INTS] = w4;
                    tile[kIndex(t0 + 10, dPair) + (1 - buf) * KV_INTS] = w5;
                    tile[kIndex(t0 + 12, dPair) + (1 - buf) * KV_INTS] = w6;
                    tile[kIndex(t0 + 14, dPair) + (1 - buf) * KV_INTS] = w7;
                }
                if (tid == 0) {
                    flag[0] = 0;                                      // read only after the score barriers below
                }
                if (tid < CHUNK) {                                    // the rows of the chunk after the next
                    rowAt[after * CHUNK + tid] = locate(blockTables, seq * maxBlocks, c0 + 2 * dir * CHUNK + tid, lo, hi, blockSize, layerBase,
                            blockStride, headStride, headDim, kvHead);
                }
                ctx.localBarrier();
                for (int mt = 0; mt < 2; mt++) {
                    float[] s0 = ctx.mmaFragment(0f);
                    float[] s1 = ctx.mmaFragment(0f);
                    for (int ks = 0; ks < 8; ks++) {
                        HalfFloat[] a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + ks) * 128) * 4);
                        s0 = ctx.mma(a, ctx.mmaLoadB(tile, 16, (qB + ks * 64) * 4), s0, MMAShape.M16N8K16);
                        s1 = ctx.mma(a, ctx.mmaLoadB(tile, 16, (qB + (8 + ks) * 64) * 4), s1, MMAShape.M16N8K16);
                    }
                    ctx.mmaStore(s0, partials, mt * 16, region, 16);
                    ctx.mmaStore(s1, partials, mt * 16, region + 8, 16);
                }
                ctx.localBarrier();
                // this lane's 16 scores of its row (tokens half * 16 + j of the chunk), visible for tLo <= tt < tHi
                int rel = rowPos - c0;                                // the row's position relative to the chunk (< 0: none visible)
                int tHi = TornadoMath.min(n, rel + 1);
                int tLo = TornadoMath.max(-CHUNK, PrefillTile.visibleFrom(rowPos, slotWindow) - c0); // the row's window (or chunk), from c0
                // a masked row's chunks of cached tokens, which every new token sees whole when there is no window, take the
                // causal path: only ALiBi, a window, or a chunk that reaches the new tokens needs the scores finished
                int reaches = c0 + n > len - qLen ? 1 : 0;
                int fin = finish * TornadoMath.max(everyChunk, reaches);
                float rowScale = fin != 0 ? 1f : scale;
                float rowCap = fin != 0 ? 0f : cap;
                if (fin != 0) {
                    // ALiBi or a token-tree mask: this lane's 16 scores scaled, capped, biased and masked (-inf) in place,
                    // so that the loops below (which take them as they are: rowScale 1, rowCap 0) add nothing per score to
                    // a row without either
                    int bits = PrefillTile.maskBits(params, tree, row, heads, firstToken, tileTokens, qLen, len, c0, window);
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float x = alibiScore(partials.get(at), scale, cap, slope, half * 16 + j - rel);
                        partials.set(at, ((bits >> (half * 16 + j)) & 1) != 0 ? x : Float.NEGATIVE_INFINITY);
                    }
                }
                float t = Float.NEGATIVE_INFINITY;                    // this lane's half of the row's chunk max
                float cs = 0f;                                        // this lane's share of the chunk's probability sum
                if (c0 == seg0) {
                    // the segment's first chunk: its row maxima may raise the references before any probability
                    for (int j = 0; j < 16; j++) {
                        t = TornadoMath.max(t, visibleScore(partials, region + (half * 16 + j) * 16 + rr, half * 16 + j, tLo, tHi, rowScale, rowCap));
                    }
                    mPart[tid] = t;
                    ctx.localBarrier();
                    float rowMax = TornadoMath.max(mPart[warp * 32 + rr], mPart[warp * 32 + 16 + rr]);
                    if (rowMax > m + GROW) {
                        m = rowMax;                                   // nothing accumulated yet: raise the reference
                    }
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float p = TornadoMath.exp(visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap) - m);
                        cs += p;
                        partials.set(at, p);
                    }
                } else {
                    // later chunks: the probabilities against the fixed references in the same pass as the max; a
                    // lane whose max exceeds its reference ends the segment, and the chunk's probabilities are dropped
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float sc = visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap);
                        t = TornadoMath.max(t, sc);
                        float p = TornadoMath.exp(sc - m);
                        cs += p;
                        partials.set(at, p);
                    }
                    int over = t > m + GROW ? 1 : 0;
                    if (over != 0) {
                        flag[0] = 1;                                  // every writer writes 1 (reset while staging)
                    }
                }
                ctx.localBarrier();
                grew = flag[0];
                int keep = 1 - grew;
                segL += grew != 0 ? 0f : cs;
                // the probabilities as one A tile row, two fp16 per int; 0 in a chunk that ends the segment (the
                // fragments add exact zeros)
                for (int j = 0; j < 16; j += 2) {
                    int at = region + (half * 16 + j) * 16 + rr;
                    tile[pB + half * 128 + rr * 8 + j / 2] = (halfBits(partials.get(at)) | (halfBits(partials.get(at + 16)) << 16)) * keep;
                }
                ctx.localBarrier();
                // (unrolled: each fragment's loop-carried value comes straight from an mma; TornadoVM 5.2 copies a
                // fragment that flows from one loop phi into another as a whole C array, which NVRTC rejects)
                HalfFloat[] a0 = ctx.mmaLoadA(tile, 16, (pB + 0) * 4);
                o0 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0) * 4), o0, MMAShape.M16N8K16);
                o1 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 1 * 64) * 4), o1, MMAShape.M16N8K16);
                o2 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 2 * 64) * 4), o2, MMAShape.M16N8K16);
                o3 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 3 * 64) * 4), o3, MMAShape.M16N8K16);
                o4 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 4 * 64) * 4), o4, MMAShape.M16N8K16);
                o5 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 5 * 64) * 4), o5, MMAShape.M16N8K16);
                o6 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 6 * 64) * 4), o6, MMAShape.M16N8K16);
                o7 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 7 * 64) * 4), o7, MMAShape.M16N8K16);
                o8 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 8 * 64) * 4), o8, MMAShape.M16N8K16);
                o9 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 9 * 64) * 4), o9, MMAShape.M16N8K16);
                o10 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 10 * 64) * 4), o10, MMAShape.M16N8K16);
                o11 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 11 * 64) * 4), o11, MMAShape.M16N8K16);
                o12 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 12 * 64) * 4), o12, MMAShape.M16N8K16);
                o13 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 13 * 64) * 4), o13, MMAShape.M16N8K16);
                o14 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 14 * 64) * 4), o14, MMAShape.M16N8K16);
                o15 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 15 * 64) * 4), o15, MMAShape.M16N8K16);
                HalfFloat[] a1 = ctx.mmaLoadA(tile, 16, (pB + 128) * 4);
                o0 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024) * 4), o0, MMAShape.M16N8K16);
                o1 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 1 * 64) * 4), o1, MMAShape.M16N8K16);
                o2 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 2 * 64) * 4), o2, MMAShape.M16N8K16);
                o3 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 3 * 64) * 4), o3, MMAShape.M16N8K16);
                o4 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 4 * 64) * 4), o4, MMAShape.M16N8K16);
                o5 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 5 * 64) * 4), o5, MMAShape.M16N8K16);
                o6 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 6 * 64) * 4), o6, MMAShape.M16N8K16);
                o7 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 7 * 64) * 4), o7, MMAShape.M16N8K16);
                o8 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 8 * 64) * 4), o8, MMAShape.M16N8K16);
                o9 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 9 * 64) * 4), o9, MMAShape.M16N8K16);
                o10 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 10 * 64) * 4), o10, MMAShape.M16N8K16);
                o11 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 11 * 64) * 4), o11, MMAShape.M16N8K16);
                o12 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 12 * 64) * 4), o12, MMAShape.M16N8K16);
                o13 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 13 * 64) * 4), o13, MMAShape.M16N8K16);
                o14 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 14 * 64) * 4), o14, MMAShape.M16N8K16);
                o15 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 15 * 64) * 4), o15, MMAShape.M16N8K16);
                ctx.localBarrier();
                // advance, or end the segment at this chunk; branch-free, so that no merge lies between the
                // fragments' mma results and the loop's back edge (TornadoVM 5.2 routes fragments through a
                // merge as a whole C array, which NVRTC rejects)
                stop -= grew * (stop - k);
                c0 += keep * dir * CHUNK;
                k += keep;
                buf ^= keep;
                slot += keep * (next - slot);
            }
            // fold: acc = acc * exp(mAcc - m) + fragments, per row
            ctx.mmaStore(o0, partials, 0, region, HEAD_DIM);
            ctx.mmaStore(o1, partials, 0, region + 8, HEAD_DIM);
            ctx.mmaStore(o2, partials, 0, region + 2 * 8, HEAD_DIM);
            ctx.mmaStore(o3, partials, 0, region + 3 * 8, HEAD_DIM);
            ctx.mmaStore(o4, partials, 0, region + 4 * 8, HEAD_DIM);
            ctx.mmaStore(o5, partials, 0, region + 5 * 8, HEAD_DIM);
            ctx.mmaStore(o6, partials, 0, region + 6 * 8, HEAD_DIM);
            ctx.mmaStore(o7, partials, 0, region + 7 * 8, HEAD_DIM);
            ctx.mmaStore(o8, partials, 0, region + 8 * 8, HEAD_DIM);
            ctx.mmaStore(o9, partials, 0, region + 9 * 8, HEAD_DIM);
            ctx.mmaStore(o10, partials, 0, region + 10 * 8, HEAD_DIM);
            ctx.mmaStore(o11, partials, 0, region + 11 * 8, HEAD_DIM);
            ctx.mmaStore(o12, partials, 0, region + 12 * 8, HEAD_DIM);
            ctx.mmaStore(o13, partials, 0, region + 13 * 8, HEAD_DIM);
            ctx.mmaStore(o14, partials, 0, region + 14 * 8, HEAD_DIM);
            ctx.mmaStore(o15, partials, 0, region + 15 * 8, HEAD_DIM);
            float c = TornadoMath.exp(mAcc - m);
            if (half == 0) {
                mRow[row] = c;
            }
            l = l * c + segL;
            mAcc = m;
            ctx.localBarrier();
            for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) { // the warps' [16][HEAD_DIM] regions are [ROWS][HEAD_DIM]
                int r = idx / HEAD_DIM;
                float add = partials.get(regionBase + idx);
                float prev = 0f;
                if (folded != 0) {
                    prev = partials.get(accBase + idx) * mRow[r];
                }
                partials.set(accBase + idx, prev + add);
            }
            folded = 1;                                       // (the restart chunk raises its references as a first chunk)
            ctx.localBarrier();
        }
        if (half == 0) {
            mRow[row] = mAcc;
        }
        lPart[tid] = l;
        ctx.localBarrier();

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) {
            int r = idx / HEAD_DIM;
            int e = idx - r * HEAD_DIM;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize && e < headDim) {
                int w = r / 16;
                int wr = r - w * 16;
                float acc = 0f;                               // 0 where the partition has no visible chunk
                if (folded != 0) {
                    acc = partials.get(accBase + idx);
                }
                float sum = lPart[w * 32 + wr] + lPart[w * 32 + 16 + wr];
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc / sum);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, sum);
                    }
                }
            }
        }
    }

    /**
     * {@link #prefillF16} over bf16 pools on bf16 tensor cores ({@code mma.sync ... .bf16}, {@code KernelContext.mmaBF16}:
     * TornadoVM's CUDA backend only): the same body, each staged pair the pool's own word (two bf16 elements, the low one
     * first, as {@link #pairBits} gives two fp16 ones), and the queries and probabilities each in two bf16 parts, a high
     * part ({@link #bf16Bits}) and the rounded rest ({@link #loBits}), so that together they carry 16 significant bits
     * (fp16's products carry 11) and the K/V elements, exact in bf16, meet them on the tensor cores twice:
     * <ul>
     *   <li>the queries' low parts are staged beside the high parts, in the K buffers (free until the first chunk), and
     *       each warp holds its 16 B fragments of them for the whole kernel; the scores' loop over dims is unrolled to
     *       name them, each K fragment taking the high parts (staged) and the low parts (held);</li>
     *   <li>the probabilities' low parts go, in the pass that writes the high parts, into this chunk's K buffer (its
     *       scores are done, and the next chunk's K is in the other buffer), and each V fragment is loaded once for
     *       both parts.</li>
     * </ul>
     * Twice the products of the fp16 body for no more local memory or barriers. The lines that add the low parts end in
     * {@code // lo part}: PrefillKernelSourceTest holds the rest to the fp16 body.
     */
    public static void prefillBf16Tensor(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray q,
                                         IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                         FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                         int blockSize, float scale) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int warp = tid / 32;
        int lane = tid - warp * 32;
        int heads = TornadoMath.min(groupSize, ROWS);         // query heads per tile
        int tokensPerTile = ROWS / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest: PrefillTile's start, written out (see there)
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int maxQTiles = params.get(PrefillParams.MAX_Q_TILES);
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int qTile = rest % maxQTiles;
        rest = rest / maxQTiles;
        int headTile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        if (seq >= params.get(PrefillParams.NUM_SEQS)) {
            return;
        }
        int qStart = qIndptr.get(seq);
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;
        if (firstToken >= qLen) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(PrefillParams.PARTITION_TOKENS);
        int numParts = (len + partTokens - 1) / partTokens;
        if (part >= numParts) {
            return;
        }
        int tileTokens = TornadoMath.min(tokensPerTile, qLen - firstToken);
        int tree = PrefillTile.treeRows(params, seq);         // token-tree mask rows (0: causal)
        // (non-causal, or masked: the context's end; a mask's bits decide among the new tokens, a span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int window = params.get(PrefillParams.WINDOW);
        int lo = TornadoMath.max(part * partTokens, PrefillTile.visibleFrom(tree != 0 ? len - qLen : firstPos, window));
        int hi = TornadoMath.min((part + 1) * partTokens, TornadoMath.min(len, firstPos + tileTokens)); // visible context of the tile: [lo, hi)
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;
        int headStride = blockSize * headDim;                 // the pools' rows are headDim long; the tiles are HEAD_DIM wide
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int regionBase = params.get(PrefillParams.SCRATCH_BASE) + gid * SCRATCH_PER_GROUP;
        int accBase = regionBase + WARPS * 16 * HEAD_DIM;     // [ROWS][HEAD_DIM]: the folded accumulators
        int region = regionBase + warp * 16 * HEAD_DIM;       // this warp's scores [CHUNK][16], then output [16][HEAD_DIM]

        int[] tile = ctx.allocateIntLocalArray(TILE_INTS);    // first: 16-byte aligned for ldmatrix
        float[] mPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: max of a lane's half of a row
        float[] lPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: sum of a lane's half of a row
        float[] mRow = ctx.allocateFloatLocalArray(ROWS);     // [row] the fold's rescale factor of the accumulators
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int[] flag = ctx.allocateIntLocalArray(1);            // 1: a row of the chunk exceeds its reference (segment ends)
        int[] rowAt = ctx.allocateIntLocalArray(ROW_SLOTS * CHUNK); // [slot][token of the chunk] pool offset of its K/V row (see locate)

        // q^T as B tiles: rows r0, r0+1 (one int) at dim d, fp16 (the scale is applied to the fp32 scores). Each
        // element is converted straight from its load: TornadoVM 5.2's PTX backend rounds a HalfFloat made from a
        // loaded float, but not one made from a computed float.
        for (int idx = tid; idx < ROWS / 2 * HEAD_DIM; idx += local) {
            int r0 = idx / HEAD_DIM * 2;
            int d = idx - idx / HEAD_DIM * HEAD_DIM;
            int pair = 0;
            int lowPair = 0;  // lo part
            for (int i = 0; i < 2; i++) {
                int r = r0 + i;
                int token = r / heads;
                int h = headBase + r - token * heads;
                boolean valid = token < tileTokens && h < groupSize && d < headDim; // dims past headDim: 0 (the padding)
                int at = valid ? ((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + d : 0;
                int bits = bf16Bits(q.get(at));
                int low = loBits(q.get(at));  // lo part
                if (valid) {
                    pair = pair | (bits << (16 * i));
                    lowPair = lowPair | (low << (16 * i));  // lo part
                }
            }
            int w = r0 / 16;
            int rr = r0 - w * 16;
            int nt = rr / 8;
            tile[((w * 2 + nt) * 8 + d / 16) * 64 + (d % 16) * 4 + (rr - nt * 8) / 2] = pair;
            tile[K_AT + ((w * 2 + nt) * 8 + d / 16) * 64 + (d % 16) * 4 + (rr - nt * 8) / 2] = lowPair;  // lo part
        }
        // the queries' low parts, staged in the K buffers (free until the first chunk) as the high parts are in the q^T
        // tiles: this warp's 16 B fragments of them, held for the whole kernel (the scores below take them by name)
        ctx.localBarrier();  // lo part
        HalfFloat[] ql0 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 0 * 64) * 4);  // lo part
        HalfFloat[] ql1 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 1 * 64) * 4);  // lo part
        HalfFloat[] ql2 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 2 * 64) * 4);  // lo part
        HalfFloat[] ql3 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 3 * 64) * 4);  // lo part
        HalfFloat[] ql4 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 4 * 64) * 4);  // lo part
        HalfFloat[] ql5 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 5 * 64) * 4);  // lo part
        HalfFloat[] ql6 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 6 * 64) * 4);  // lo part
        HalfFloat[] ql7 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 7 * 64) * 4);  // lo part
        HalfFloat[] ql8 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 8 * 64) * 4);  // lo part
        HalfFloat[] ql9 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 9 * 64) * 4);  // lo part
        HalfFloat[] ql10 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 10 * 64) * 4);  // lo part
        HalfFloat[] ql11 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 11 * 64) * 4);  // lo part
        HalfFloat[] ql12 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 12 * 64) * 4);  // lo part
        HalfFloat[] ql13 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 13 * 64) * 4);  // lo part
        HalfFloat[] ql14 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 14 * 64) * 4);  // lo part
        HalfFloat[] ql15 = ctx.mmaLoadB(tile, 16, (K_AT + warp * 2 * 8 * 64 + 15 * 64) * 4);  // lo part
        // this lane's row (of its warp's 16) and half of each chunk's tokens
        int rr = lane % 16;
        int half = lane / 16;
        int row = warp * 16 + rr;
        int rowPos = PrefillKernels.rowPosition(row, heads, tileTokens, headBase, groupSize, firstPos);
        float slope = PrefillKernels.rowSlope(partials, params.get(PrefillParams.ALIBI), row, heads, headBase, groupSize, kvHead);  // ALiBi (0: none)
        int finish = slope != 0f ? 1 : tree != 0 ? 1 : 0;     // a row with ALiBi or a mask has its scores finished in place (below)
        // ... every chunk of such a row in a layer with ALiBi or under a window, else (a mask) only the chunks that reach the
        // new tokens. Flags from single int comparisons, combined by max: chained in one ternary with the row's slope test,
        // they gave ALiBi rows wrong scores on the CUDA backend (relative L2 0.85, H100) while PTX and the emulator passed
        int everyChunk = TornadoMath.max(params.get(PrefillParams.ALIBI) != 0 ? 1 : 0, window != Integer.MAX_VALUE ? 1 : 0);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int qB = (warp * 2) * 8 * 64;                         // int index of this warp's first q^T tile
        int dPair = (tid % 64) * 2;                           // the dims (dPair, dPair + 1) this work-item stages
        int dSrc = dPair % headDim;                           // ... read from these dims: past headDim a real pair, met by q's zeros
        int tFirst = tid / 64;                                // ... for tokens tFirst + 2i of each chunk (LOCAL = 2 x 64)

        // One pass, in segments: a row's reference m stays fixed while its scores stay below m + GROW
        // (p = exp(s - m) < e^GROW, fp16-safe), so the 16 accumulator fragments, which cannot be rescaled, add
        // P V relative to it; a chunk that exceeds it (or the last chunk) ends the segment, whose fragments are
        // then folded, rescaled, into the work-group's accumulators in scratch (accBase), and the next segment
        // starts over at that chunk with the larger reference. Flags are ints from single comparisons
        // (TornadoVM 5.2's CUDA C loses the negations of a materialised `a && !b`).
        float m = -Float.MAX_VALUE;                           // this row's reference (the same in both lanes of a row)
        float mAcc = -Float.MAX_VALUE;                        // the reference of the folded accumulators
        float l = 0f;                                         // this lane's half of its row's sum, relative to mAcc
        int folded = 0;                                       // 1 once the scratch accumulators hold a segment
        int pB = P_AT + warp * 2 * 128;                       // int index of this warp's first P tile
        int buf = 0;
        // With ALiBi the walk goes from the last chunk back: its biases rise towards the diagonal, so the highest scores
        // come first and a segment ends only where the scores themselves jump (forward, nearly every chunk would end one)
        int dir = params.get(PrefillParams.ALIBI) != 0 ? -1 : 1;
        // chunk k of the walk starts at c0 = walk0 + dir k CHUNK; none where the partition ends before the window starts
        // (hi <= lo): never a negative dividend, which TornadoVM 5.2's PTX backend divides by 32 with logical shifts
        int chunks = hi > lo ? (hi - lo + CHUNK - 1) / CHUNK : 0;
        int walk0 = dir > 0 ? lo : lo + (chunks - 1) * CHUNK;
        int k = 0;
        int c0 = walk0;
        while (k < chunks) {
            float[] o0 = ctx.mmaFragment(0f);
            float[] o1 = ctx.mmaFragment(0f);
            float[] o2 = ctx.mmaFragment(0f);
            float[] o3 = ctx.mmaFragment(0f);
            float[] o4 = ctx.mmaFragment(0f);
            float[] o5 = ctx.mmaFragment(0f);
            float[] o6 = ctx.mmaFragment(0f);
            float[] o7 = ctx.mmaFragment(0f);
            float[] o8 = ctx.mmaFragment(0f);
            float[] o9 = ctx.mmaFragment(0f);
            float[] o10 = ctx.mmaFragment(0f);
            float[] o11 = ctx.mmaFragment(0f);
            float[] o12 = ctx.mmaFragment(0f);
            float[] o13 = ctx.mmaFragment(0f);
            float[] o14 = ctx.mmaFragment(0f);
            float[] o15 = ctx.mmaFragment(0f);
            int seg0 = c0;
            int stop = chunks;
            float segL = 0f;
            int grew = 0;
            // The pipeline's start: the segment's first two chunks located (offset slots 0 and 1), the first
            // chunk's K in flight. A segment that ended may have left the next chunk's K in flight: waited for
            // first, so that no copy of this work-item is pending across the restart.
            if (tid < 2 * CHUNK) {
                rowAt[tid] = locate(blockTables, seq * maxBlocks, c0 + (tid / CHUNK) * dir * CHUNK + tid % CHUNK, lo, hi, blockSize,
                        layerBase, blockStride, headStride, headDim, kvHead);
            }
            ctx.localBarrier();
            // Each work-item's 16 pairs of a chunk in two rounds of eight copies: in the PTX twin, eight loads in flight
            // before their stores. (The staging stays in this method: TornadoVM 5.2 addresses a local array that a
            // helper method receives as a global one, header and byte offset included.)
            for (int i = 0; i < 2; i++) {
                int t0 = tFirst + 16 * i;
                int w0 = kPool.get((rowAt[t0] + dSrc) >> 1);
                int w1 = kPool.get((rowAt[t0 + 2] + dSrc) >> 1);
                int w2 = kPool.get((rowAt[t0 + 4] + dSrc) >> 1);
                int w3 = kPool.get((rowAt[t0 + 6] + dSrc) >> 1);
                int w4 = kPool.get((rowAt[t0 + 8] + dSrc) >> 1);
                int w5 = kPool.get((rowAt[t0 + 10] + dSrc) >> 1);
                int w6 = kPool.get((rowAt[t0 + 12] + dSrc) >> 1);
                int w7 = kPool.get((rowAt[t0 + 14] + dSrc) >> 1);
                tile[kIndex(t0, dPair) + buf * KV_INTS] = w0;
                tile[kIndex(t0 + 2, dPair) + buf * KV_INTS] = w1;
                tile[kIndex(t0 + 4, dPair) + buf * KV_INTS] = w2;
                tile[kIndex(t0 + 6, dPair) + buf * KV_INTS] = w3;
                tile[kIndex(t0 + 8, dPair) + buf * KV_INTS] = w4;
                tile[kIndex(t0 + 10, dPair) + buf * KV_INTS] = w5;
                tile[kIndex(t0 + 12, dPair) + buf * KV_INTS] = w6;
                tile[kIndex(t0 + 14, dPair) + buf * KV_INTS] = w7;
            }
            int slot = 0;                                             // offset slot of the current chunk's rows
            while (k < stop) {
                int n = TornadoMath.min(CHUNK, hi - c0);
                int next = slot == 2 ? 0 : slot + 1;
                int after = next == 2 ? 0 : next + 1;
                // Copies in flight while this chunk computes (cp.async on the CUDA backend; plain copies elsewhere): its
                // V (the V tiles were last read by the previous chunk's P V, before the barrier that ended it), then
                // the next chunk's K into the other K buffer (last read by the previous chunk's scores).
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    int w0 = vPool.get((rowAt[slot * CHUNK + t0] + dSrc) >> 1);
                    int w1 = vPool.get((rowAt[slot * CHUNK + t0 + 2] + dSrc) >> 1);
                    int w2 = vPool.get((rowAt[slot * CHUNK + t0 + 4] + dSrc) >> 1);
                    int w3 = vPool.get((rowAt[slot * CHUNK + t0 + 6] + dSrc) >> 1);
                    int w4 = vPool.get((rowAt[slot * CHUNK + t0 + 8] + dSrc) >> 1);
                    int w5 = vPool.get((rowAt[slot * CHUNK + t0 + 10] + dSrc) >> 1);
                    int w6 = vPool.get((rowAt[slot * CHUNK + t0 + 12] + dSrc) >> 1);
                    int w7 = vPool.get((rowAt[slot * CHUNK + t0 + 14] + dSrc) >> 1);
                    tile[vIndex(t0, dPair)] = w0;
                    tile[vIndex(t0 + 2, dPair)] = w1;
                    tile[vIndex(t0 + 4, dPair)] = w2;
                    tile[vIndex(t0 + 6, dPair)] = w3;
                    tile[vIndex(t0 + 8, dPair)] = w4;
                    tile[vIndex(t0 + 10, dPair)] = w5;
                    tile[vIndex(t0 + 12, dPair)] = w6;
                    tile[vIndex(t0 + 14, dPair)] = w7;
                }
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    int w0 = kPool.get((rowAt[next * CHUNK + t0] + dSrc) >> 1);
                    int w1 = kPool.get((rowAt[next * CHUNK + t0 + 2] + dSrc) >> 1);
                    int w2 = kPool.get((rowAt[next * CHUNK + t0 + 4] + dSrc) >> 1);
                    int w3 = kPool.get((rowAt[next * CHUNK + t0 + 6] + dSrc) >> 1);
                    int w4 = kPool.get((rowAt[next * CHUNK + t0 + 8] + dSrc) >> 1);
                    int w5 = kPool.get((rowAt[next * CHUNK + t0 + 10] + dSrc) >> 1);
                    int w6 = kPool.get((rowAt[next * CHUNK + t0 + 12] + dSrc) >> 1);
                    int w7 = kPool.get((rowAt[next * CHUNK + t0 + 14] + dSrc) >> 1);
                    tile[kIndex(t0, dPair) + (1 - buf) * KV_INTS] = w0;
                    tile[kIndex(t0 + 2, dPair) + (1 - buf) * KV_INTS] = w1;
                    tile[kIndex(t0 + 4, dPair) + (1 - buf) * KV_INTS] = w2;
                    tile[kIndex(t0 + 6, dPair) + (1 - buf) * KV_INTS] = w3;
                    tile[kIndex(t0 + 8, dPair) + (1 - buf) * KV_INTS] = w4;
                    tile[kIndex(t0 + 10, dPair) + (1 - buf) * KV_INTS] = w5;
                    tile[kIndex(t0 + 12, dPair) + (1 - buf) * KV_INTS] = w6;
                    tile[kIndex(t0 + 14, dPair) + (1 - buf) * KV_INTS] = w7;
                }
                if (tid == 0) {
                    flag[0] = 0;                                      // read only after the score barriers below
                }
                if (tid < CHUNK) {                                    // the rows of the chunk after the next
                    rowAt[after * CHUNK + tid] = locate(blockTables, seq * maxBlocks, c0 + 2 * dir * CHUNK + tid, lo, hi, blockSize, layerBase,
                            blockStride, headStride, headDim, kvHead);
                }
                ctx.localBarrier();
                for (int mt = 0; mt < 2; mt++) {
                    float[] s0 = ctx.mmaFragment(0f);
                    float[] s1 = ctx.mmaFragment(0f);
                    HalfFloat[] a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 0) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 0 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 0) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql0, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql8, s1, MMAShape.M16N8K16);  // lo part
                    a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 1) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 1 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 1) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql1, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql9, s1, MMAShape.M16N8K16);  // lo part
                    a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 2) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 2 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 2) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql2, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql10, s1, MMAShape.M16N8K16);  // lo part
                    a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 3) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 3 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 3) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql3, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql11, s1, MMAShape.M16N8K16);  // lo part
                    a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 4) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 4 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 4) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql4, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql12, s1, MMAShape.M16N8K16);  // lo part
                    a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 5) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 5 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 5) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql5, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql13, s1, MMAShape.M16N8K16);  // lo part
                    a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 6) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 6 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 6) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql6, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql14, s1, MMAShape.M16N8K16);  // lo part
                    a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + 7) * 128) * 4);
                    s0 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + 7 * 64) * 4), s0, MMAShape.M16N8K16);
                    s1 = ctx.mmaBF16(a, ctx.mmaLoadB(tile, 16, (qB + (8 + 7) * 64) * 4), s1, MMAShape.M16N8K16);
                    s0 = ctx.mmaBF16(a, ql7, s0, MMAShape.M16N8K16);  // lo part
                    s1 = ctx.mmaBF16(a, ql15, s1, MMAShape.M16N8K16);  // lo part
                    ctx.mmaStore(s0, partials, mt * 16, region, 16);
                    ctx.mmaStore(s1, partials, mt * 16, region + 8, 16);
                }
                ctx.localBarrier();
                // this lane's 16 scores of its row (tokens half * 16 + j of the chunk), visible for tLo <= tt < tHi
                int rel = rowPos - c0;                                // the row's position relative to the chunk (< 0: none visible)
                int tHi = TornadoMath.min(n, rel + 1);
                int tLo = TornadoMath.max(-CHUNK, PrefillTile.visibleFrom(rowPos, slotWindow) - c0); // the row's window (or chunk), from c0
                // a masked row's chunks of cached tokens, which every new token sees whole when there is no window, take the
                // causal path: only ALiBi, a window, or a chunk that reaches the new tokens needs the scores finished
                int reaches = c0 + n > len - qLen ? 1 : 0;
                int fin = finish * TornadoMath.max(everyChunk, reaches);
                float rowScale = fin != 0 ? 1f : scale;
                float rowCap = fin != 0 ? 0f : cap;
                if (fin != 0) {
                    // ALiBi or a token-tree mask: this lane's 16 scores scaled, capped, biased and masked (-inf) in place,
                    // so that the loops below (which take them as they are: rowScale 1, rowCap 0) add nothing per score to
                    // a row without either
                    int bits = PrefillTile.maskBits(params, tree, row, heads, firstToken, tileTokens, qLen, len, c0, window);
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float x = alibiScore(partials.get(at), scale, cap, slope, half * 16 + j - rel);
                        partials.set(at, ((bits >> (half * 16 + j)) & 1) != 0 ? x : Float.NEGATIVE_INFINITY);
                    }
                }
                float t = Float.NEGATIVE_INFINITY;                    // this lane's half of the row's chunk max
                float cs = 0f;                                        // this lane's share of the chunk's probability sum
                if (c0 == seg0) {
                    // the segment's first chunk: its row maxima may raise the references before any probability
                    for (int j = 0; j < 16; j++) {
                        t = TornadoMath.max(t, visibleScore(partials, region + (half * 16 + j) * 16 + rr, half * 16 + j, tLo, tHi, rowScale, rowCap));
                    }
                    mPart[tid] = t;
                    ctx.localBarrier();
                    float rowMax = TornadoMath.max(mPart[warp * 32 + rr], mPart[warp * 32 + 16 + rr]);
                    if (rowMax > m + GROW) {
                        m = rowMax;                                   // nothing accumulated yet: raise the reference
                    }
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float p = TornadoMath.exp(visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap) - m);
                        cs += p;
                        partials.set(at, p);
                    }
                } else {
                    // later chunks: the probabilities against the fixed references in the same pass as the max; a
                    // lane whose max exceeds its reference ends the segment, and the chunk's probabilities are dropped
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float sc = visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap);
                        t = TornadoMath.max(t, sc);
                        float p = TornadoMath.exp(sc - m);
                        cs += p;
                        partials.set(at, p);
                    }
                    int over = t > m + GROW ? 1 : 0;
                    if (over != 0) {
                        flag[0] = 1;                                  // every writer writes 1 (reset while staging)
                    }
                }
                ctx.localBarrier();
                grew = flag[0];
                int keep = 1 - grew;
                segL += grew != 0 ? 0f : cs;
                // the probabilities as one A tile row, two fp16 per int; 0 in a chunk that ends the segment (the
                // fragments add exact zeros)
                for (int j = 0; j < 16; j += 2) {
                    int at = region + (half * 16 + j) * 16 + rr;
                    tile[pB + half * 128 + rr * 8 + j / 2] = (bf16Bits(partials.get(at)) | (bf16Bits(partials.get(at + 16)) << 16)) * keep;
                    // ... and their low parts in this chunk's K buffer (its scores are done; the next chunk's K is in the other)
                    tile[K_AT + buf * KV_INTS + warp * 2 * 128 + half * 128 + rr * 8 + j / 2] = (loBits(partials.get(at)) | (loBits(partials.get(at + 16)) << 16)) * keep;  // lo part
                }
                ctx.localBarrier();
                // (unrolled: each fragment's loop-carried value comes straight from an mma; TornadoVM 5.2 copies a
                // fragment that flows from one loop phi into another as a whole C array, which NVRTC rejects)
                HalfFloat[] a0 = ctx.mmaLoadA(tile, 16, (pB + 0) * 4);
                HalfFloat[] a0lo = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + warp * 2 * 128 + 0) * 4);  // lo part
                HalfFloat[] v = ctx.mmaLoadB(tile, 16, (V_AT + 0) * 4);
                o0 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o0, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 1 * 64) * 4);
                o1 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o1, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 2 * 64) * 4);
                o2 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o2, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 3 * 64) * 4);
                o3 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o3, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 4 * 64) * 4);
                o4 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o4, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 5 * 64) * 4);
                o5 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o5, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 6 * 64) * 4);
                o6 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o6, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 7 * 64) * 4);
                o7 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o7, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 8 * 64) * 4);
                o8 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o8, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 9 * 64) * 4);
                o9 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o9, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 10 * 64) * 4);
                o10 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o10, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 11 * 64) * 4);
                o11 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o11, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 12 * 64) * 4);
                o12 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o12, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 13 * 64) * 4);
                o13 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o13, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 14 * 64) * 4);
                o14 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o14, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 0 + 15 * 64) * 4);
                o15 = ctx.mmaBF16(a0lo, v, ctx.mmaBF16(a0, v, o15, MMAShape.M16N8K16), MMAShape.M16N8K16);
                HalfFloat[] a1 = ctx.mmaLoadA(tile, 16, (pB + 128) * 4);
                HalfFloat[] a1lo = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + warp * 2 * 128 + 128) * 4);  // lo part
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024) * 4);
                o0 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o0, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 1 * 64) * 4);
                o1 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o1, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 2 * 64) * 4);
                o2 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o2, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 3 * 64) * 4);
                o3 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o3, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 4 * 64) * 4);
                o4 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o4, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 5 * 64) * 4);
                o5 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o5, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 6 * 64) * 4);
                o6 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o6, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 7 * 64) * 4);
                o7 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o7, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 8 * 64) * 4);
                o8 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o8, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 9 * 64) * 4);
                o9 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o9, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 10 * 64) * 4);
                o10 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o10, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 11 * 64) * 4);
                o11 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o11, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 12 * 64) * 4);
                o12 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o12, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 13 * 64) * 4);
                o13 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o13, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 14 * 64) * 4);
                o14 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o14, MMAShape.M16N8K16), MMAShape.M16N8K16);
                v = ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 15 * 64) * 4);
                o15 = ctx.mmaBF16(a1lo, v, ctx.mmaBF16(a1, v, o15, MMAShape.M16N8K16), MMAShape.M16N8K16);
                ctx.localBarrier();
                // advance, or end the segment at this chunk; branch-free, so that no merge lies between the
                // fragments' mma results and the loop's back edge (TornadoVM 5.2 routes fragments through a
                // merge as a whole C array, which NVRTC rejects)
                stop -= grew * (stop - k);
                c0 += keep * dir * CHUNK;
                k += keep;
                buf ^= keep;
                slot += keep * (next - slot);
            }
            // fold: acc = acc * exp(mAcc - m) + fragments, per row
            ctx.mmaStore(o0, partials, 0, region, HEAD_DIM);
            ctx.mmaStore(o1, partials, 0, region + 8, HEAD_DIM);
            ctx.mmaStore(o2, partials, 0, region + 2 * 8, HEAD_DIM);
            ctx.mmaStore(o3, partials, 0, region + 3 * 8, HEAD_DIM);
            ctx.mmaStore(o4, partials, 0, region + 4 * 8, HEAD_DIM);
            ctx.mmaStore(o5, partials, 0, region + 5 * 8, HEAD_DIM);
            ctx.mmaStore(o6, partials, 0, region + 6 * 8, HEAD_DIM);
            ctx.mmaStore(o7, partials, 0, region + 7 * 8, HEAD_DIM);
            ctx.mmaStore(o8, partials, 0, region + 8 * 8, HEAD_DIM);
            ctx.mmaStore(o9, partials, 0, region + 9 * 8, HEAD_DIM);
            ctx.mmaStore(o10, partials, 0, region + 10 * 8, HEAD_DIM);
            ctx.mmaStore(o11, partials, 0, region + 11 * 8, HEAD_DIM);
            ctx.mmaStore(o12, partials, 0, region + 12 * 8, HEAD_DIM);
            ctx.mmaStore(o13, partials, 0, region + 13 * 8, HEAD_DIM);
            ctx.mmaStore(o14, partials, 0, region + 14 * 8, HEAD_DIM);
            ctx.mmaStore(o15, partials, 0, region + 15 * 8, HEAD_DIM);
            float c = TornadoMath.exp(mAcc - m);
            if (half == 0) {
                mRow[row] = c;
            }
            l = l * c + segL;
            mAcc = m;
            ctx.localBarrier();
            for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) { // the warps' [16][HEAD_DIM] regions are [ROWS][HEAD_DIM]
                int r = idx / HEAD_DIM;
                float add = partials.get(regionBase + idx);
                float prev = 0f;
                if (folded != 0) {
                    prev = partials.get(accBase + idx) * mRow[r];
                }
                partials.set(accBase + idx, prev + add);
            }
            folded = 1;                                       // (the restart chunk raises its references as a first chunk)
            ctx.localBarrier();
        }
        if (half == 0) {
            mRow[row] = mAcc;
        }
        lPart[tid] = l;
        ctx.localBarrier();

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) {
            int r = idx / HEAD_DIM;
            int e = idx - r * HEAD_DIM;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize && e < headDim) {
                int w = r / 16;
                int wr = r - w * 16;
                float acc = 0f;                               // 0 where the partition has no visible chunk
                if (folded != 0) {
                    acc = partials.get(accBase + idx);
                }
                float sum = lPart[w * 32 + wr] + lPart[w * 32 + 16 + wr];
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc / sum);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, sum);
                    }
                }
            }
        }
    }

    /**
     * {@link #prefillF16} over 8-bit pools (FP8 E4M3, FP8 E5M2, INT8: four codes per word of an {@code IntArray}; the
     * {@code dequant} argument of {@link PackedCodes}). Each staged pair of codes becomes the fp16 bits of the format's
     * values through a table in local memory (every 8-bit value is exact in fp16), so the products are those of the
     * fp16 kernel; the K scale rides with the softmax scale on the fp32 scores and the V scale multiplies the output.
     * Plain copies on both NVIDIA backends (a code word cannot become fp16 pairs in an asynchronous copy). A source
     * test keeps it {@link #prefillF16} under that rule.
     */
    public static void prefillQ8Tensor(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,
                                       IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                       FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                       int blockSize) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int warp = tid / 32;
        int lane = tid - warp * 32;
        int heads = TornadoMath.min(groupSize, ROWS);         // query heads per tile
        int tokensPerTile = ROWS / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest: PrefillTile's start, written out (see there)
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int maxQTiles = params.get(PrefillParams.MAX_Q_TILES);
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int qTile = rest % maxQTiles;
        rest = rest / maxQTiles;
        int headTile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        if (seq >= params.get(PrefillParams.NUM_SEQS)) {
            return;
        }
        int qStart = qIndptr.get(seq);
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;
        if (firstToken >= qLen) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(PrefillParams.PARTITION_TOKENS);
        int numParts = (len + partTokens - 1) / partTokens;
        if (part >= numParts) {
            return;
        }
        int tileTokens = TornadoMath.min(tokensPerTile, qLen - firstToken);
        int tree = PrefillTile.treeRows(params, seq);         // token-tree mask rows (0: causal)
        // (non-causal, or masked: the context's end; a mask's bits decide among the new tokens, a span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int window = params.get(PrefillParams.WINDOW);
        int lo = TornadoMath.max(part * partTokens, PrefillTile.visibleFrom(tree != 0 ? len - qLen : firstPos, window));
        int hi = TornadoMath.min((part + 1) * partTokens, TornadoMath.min(len, firstPos + tileTokens)); // visible context of the tile: [lo, hi)
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;
        int headStride = blockSize * headDim;                 // the pools' rows are headDim long; the tiles are HEAD_DIM wide
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int regionBase = params.get(PrefillParams.SCRATCH_BASE) + gid * SCRATCH_PER_GROUP;
        int accBase = regionBase + WARPS * 16 * HEAD_DIM;     // [ROWS][HEAD_DIM]: the folded accumulators
        int region = regionBase + warp * 16 * HEAD_DIM;       // this warp's scores [CHUNK][16], then output [16][HEAD_DIM]

        int[] tile = ctx.allocateIntLocalArray(TILE_INTS);    // first: 16-byte aligned for ldmatrix
        float[] mPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: max of a lane's half of a row
        float[] lPart = ctx.allocateFloatLocalArray(LOCAL);   // [warp][lane]: sum of a lane's half of a row
        float[] mRow = ctx.allocateFloatLocalArray(ROWS);     // [row] the fold's rescale factor of the accumulators
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int[] flag = ctx.allocateIntLocalArray(1);            // 1: a row of the chunk exceeds its reference (segment ends)
        int[] rowAt = ctx.allocateIntLocalArray(ROW_SLOTS * CHUNK); // [slot][token of the chunk] pool offset of its K/V row (see locate)
        int[] lut = ctx.allocateIntLocalArray(DequantTable.SIZE); // [code]: the fp16 bits of the format's value (exact in fp16)
        float scale = dequant.get(DequantTable.SIZE + kvHead);   // the softmax scale times this head's K scale (PackedCodes)
        float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead);
        for (int t = tid; t < DequantTable.SIZE; t += local) {
            lut[t] = halfBits(dequant.get(t));
        }

        // q^T as B tiles: rows r0, r0+1 (one int) at dim d, fp16 (the scale is applied to the fp32 scores). Each
        // element is converted straight from its load: TornadoVM 5.2's PTX backend rounds a HalfFloat made from a
        // loaded float, but not one made from a computed float.
        for (int idx = tid; idx < ROWS / 2 * HEAD_DIM; idx += local) {
            int r0 = idx / HEAD_DIM * 2;
            int d = idx - idx / HEAD_DIM * HEAD_DIM;
            int pair = 0;
            for (int i = 0; i < 2; i++) {
                int r = r0 + i;
                int token = r / heads;
                int h = headBase + r - token * heads;
                boolean valid = token < tileTokens && h < groupSize && d < headDim; // dims past headDim: 0 (the padding)
                int at = valid ? ((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + d : 0;
                int bits = halfBits(q.get(at));
                if (valid) {
                    pair = pair | (bits << (16 * i));
                }
            }
            int w = r0 / 16;
            int rr = r0 - w * 16;
            int nt = rr / 8;
            tile[((w * 2 + nt) * 8 + d / 16) * 64 + (d % 16) * 4 + (rr - nt * 8) / 2] = pair;
        }
        // this lane's row (of its warp's 16) and half of each chunk's tokens
        int rr = lane % 16;
        int half = lane / 16;
        int row = warp * 16 + rr;
        int rowPos = PrefillKernels.rowPosition(row, heads, tileTokens, headBase, groupSize, firstPos);
        float slope = PrefillKernels.rowSlope(partials, params.get(PrefillParams.ALIBI), row, heads, headBase, groupSize, kvHead);  // ALiBi (0: none)
        int finish = slope != 0f ? 1 : tree != 0 ? 1 : 0;     // a row with ALiBi or a mask has its scores finished in place (below)
        // ... every chunk of such a row in a layer with ALiBi or under a window, else (a mask) only the chunks that reach the
        // new tokens. Flags from single int comparisons, combined by max: chained in one ternary with the row's slope test,
        // they gave ALiBi rows wrong scores on the CUDA backend (relative L2 0.85, H100) while PTX and the emulator passed
        int everyChunk = TornadoMath.max(params.get(PrefillParams.ALIBI) != 0 ? 1 : 0, window != Integer.MAX_VALUE ? 1 : 0);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int qB = (warp * 2) * 8 * 64;                         // int index of this warp's first q^T tile
        int dPair = (tid % 64) * 2;                           // the dims (dPair, dPair + 1) this work-item stages
        int dSrc = dPair % headDim;                           // ... read from these dims: past headDim a real pair, met by q's zeros
        int dWord = dSrc >> 2;                                // ... in this word of a row (four codes per word)
        int sh = (dSrc & 3) << 3;                             // ... as its bytes sh / 8 and sh / 8 + 1
        int sh8 = sh + 8;
        int tFirst = tid / 64;                                // ... for tokens tFirst + 2i of each chunk (LOCAL = 2 x 64)

        // One pass, in segments: a row's reference m stays fixed while its scores stay below m + GROW
        // (p = exp(s - m) < e^GROW, fp16-safe), so the 16 accumulator fragments, which cannot be rescaled, add
        // P V relative to it; a chunk that exceeds it (or the last chunk) ends the segment, whose fragments are
        // then folded, rescaled, into the work-group's accumulators in scratch (accBase), and the next segment
        // starts over at that chunk with the larger reference. Flags are ints from single comparisons
        // (TornadoVM 5.2's CUDA C loses the negations of a materialised `a && !b`).
        float m = -Float.MAX_VALUE;                           // this row's reference (the same in both lanes of a row)
        float mAcc = -Float.MAX_VALUE;                        // the reference of the folded accumulators
        float l = 0f;                                         // this lane's half of its row's sum, relative to mAcc
        int folded = 0;                                       // 1 once the scratch accumulators hold a segment
        int pB = P_AT + warp * 2 * 128;                       // int index of this warp's first P tile
        int buf = 0;
        // With ALiBi the walk goes from the last chunk back: its biases rise towards the diagonal, so the highest scores
        // come first and a segment ends only where the scores themselves jump (forward, nearly every chunk would end one)
        int dir = params.get(PrefillParams.ALIBI) != 0 ? -1 : 1;
        // chunk k of the walk starts at c0 = walk0 + dir k CHUNK; none where the partition ends before the window starts
        // (hi <= lo): never a negative dividend, which TornadoVM 5.2's PTX backend divides by 32 with logical shifts
        int chunks = hi > lo ? (hi - lo + CHUNK - 1) / CHUNK : 0;
        int walk0 = dir > 0 ? lo : lo + (chunks - 1) * CHUNK;
        int k = 0;
        int c0 = walk0;
        while (k < chunks) {
            float[] o0 = ctx.mmaFragment(0f);
            float[] o1 = ctx.mmaFragment(0f);
            float[] o2 = ctx.mmaFragment(0f);
            float[] o3 = ctx.mmaFragment(0f);
            float[] o4 = ctx.mmaFragment(0f);
            float[] o5 = ctx.mmaFragment(0f);
            float[] o6 = ctx.mmaFragment(0f);
            float[] o7 = ctx.mmaFragment(0f);
            float[] o8 = ctx.mmaFragment(0f);
            float[] o9 = ctx.mmaFragment(0f);
            float[] o10 = ctx.mmaFragment(0f);
            float[] o11 = ctx.mmaFragment(0f);
            float[] o12 = ctx.mmaFragment(0f);
            float[] o13 = ctx.mmaFragment(0f);
            float[] o14 = ctx.mmaFragment(0f);
            float[] o15 = ctx.mmaFragment(0f);
            int seg0 = c0;
            int stop = chunks;
            float segL = 0f;
            int grew = 0;
            // The pipeline's start: the segment's first two chunks located (offset slots 0 and 1), the first
            // chunk's K in flight. A segment that ended may have left the next chunk's K in flight: waited for
            // first, so that no copy of this work-item is pending across the restart.
            if (tid < 2 * CHUNK) {
                rowAt[tid] = locate(blockTables, seq * maxBlocks, c0 + (tid / CHUNK) * dir * CHUNK + tid % CHUNK, lo, hi, blockSize,
                        layerBase, blockStride, headStride, headDim, kvHead);
            }
            ctx.localBarrier();
            // Each work-item's 16 pairs of a chunk in two rounds of eight copies: in the PTX twin, eight loads in flight
            // before their stores. (The staging stays in this method: TornadoVM 5.2 addresses a local array that a
            // helper method receives as a global one, header and byte offset included.)
            for (int i = 0; i < 2; i++) {
                int t0 = tFirst + 16 * i;
                int w0 = kPool.get((rowAt[t0] >> 2) + dWord);
                int w1 = kPool.get((rowAt[t0 + 2] >> 2) + dWord);
                int w2 = kPool.get((rowAt[t0 + 4] >> 2) + dWord);
                int w3 = kPool.get((rowAt[t0 + 6] >> 2) + dWord);
                int w4 = kPool.get((rowAt[t0 + 8] >> 2) + dWord);
                int w5 = kPool.get((rowAt[t0 + 10] >> 2) + dWord);
                int w6 = kPool.get((rowAt[t0 + 12] >> 2) + dWord);
                int w7 = kPool.get((rowAt[t0 + 14] >> 2) + dWord);
                tile[kIndex(t0, dPair) + buf * KV_INTS] = lut[(w0 >> sh) & 0xFF] | (lut[(w0 >> sh8) & 0xFF] << 16);
                tile[kIndex(t0 + 2, dPair) + buf * KV_INTS] = lut[(w1 >> sh) & 0xFF] | (lut[(w1 >> sh8) & 0xFF] << 16);
                tile[kIndex(t0 + 4, dPair) + buf * KV_INTS] = lut[(w2 >> sh) & 0xFF] | (lut[(w2 >> sh8) & 0xFF] << 16);
                tile[kIndex(t0 + 6, dPair) + buf * KV_INTS] = lut[(w3 >> sh) & 0xFF] | (lut[(w3 >> sh8) & 0xFF] << 16);
                tile[kIndex(t0 + 8, dPair) + buf * KV_INTS] = lut[(w4 >> sh) & 0xFF] | (lut[(w4 >> sh8) & 0xFF] << 16);
                tile[kIndex(t0 + 10, dPair) + buf * KV_INTS] = lut[(w5 >> sh) & 0xFF] | (lut[(w5 >> sh8) & 0xFF] << 16);
                tile[kIndex(t0 + 12, dPair) + buf * KV_INTS] = lut[(w6 >> sh) & 0xFF] | (lut[(w6 >> sh8) & 0xFF] << 16);
                tile[kIndex(t0 + 14, dPair) + buf * KV_INTS] = lut[(w7 >> sh) & 0xFF] | (lut[(w7 >> sh8) & 0xFF] << 16);
            }
            int slot = 0;                                             // offset slot of the current chunk's rows
            while (k < stop) {
                int n = TornadoMath.min(CHUNK, hi - c0);
                int next = slot == 2 ? 0 : slot + 1;
                int after = next == 2 ? 0 : next + 1;
                // Copies in flight while this chunk computes (cp.async on the CUDA backend; plain copies elsewhere): its
                // V (the V tiles were last read by the previous chunk's P V, before the barrier that ended it), then
                // the next chunk's K into the other K buffer (last read by the previous chunk's scores).
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    int w0 = vPool.get((rowAt[slot * CHUNK + t0] >> 2) + dWord);
                    int w1 = vPool.get((rowAt[slot * CHUNK + t0 + 2] >> 2) + dWord);
                    int w2 = vPool.get((rowAt[slot * CHUNK + t0 + 4] >> 2) + dWord);
                    int w3 = vPool.get((rowAt[slot * CHUNK + t0 + 6] >> 2) + dWord);
                    int w4 = vPool.get((rowAt[slot * CHUNK + t0 + 8] >> 2) + dWord);
                    int w5 = vPool.get((rowAt[slot * CHUNK + t0 + 10] >> 2) + dWord);
                    int w6 = vPool.get((rowAt[slot * CHUNK + t0 + 12] >> 2) + dWord);
                    int w7 = vPool.get((rowAt[slot * CHUNK + t0 + 14] >> 2) + dWord);
                    tile[vIndex(t0, dPair)] = lut[(w0 >> sh) & 0xFF] | (lut[(w0 >> sh8) & 0xFF] << 16);
                    tile[vIndex(t0 + 2, dPair)] = lut[(w1 >> sh) & 0xFF] | (lut[(w1 >> sh8) & 0xFF] << 16);
                    tile[vIndex(t0 + 4, dPair)] = lut[(w2 >> sh) & 0xFF] | (lut[(w2 >> sh8) & 0xFF] << 16);
                    tile[vIndex(t0 + 6, dPair)] = lut[(w3 >> sh) & 0xFF] | (lut[(w3 >> sh8) & 0xFF] << 16);
                    tile[vIndex(t0 + 8, dPair)] = lut[(w4 >> sh) & 0xFF] | (lut[(w4 >> sh8) & 0xFF] << 16);
                    tile[vIndex(t0 + 10, dPair)] = lut[(w5 >> sh) & 0xFF] | (lut[(w5 >> sh8) & 0xFF] << 16);
                    tile[vIndex(t0 + 12, dPair)] = lut[(w6 >> sh) & 0xFF] | (lut[(w6 >> sh8) & 0xFF] << 16);
                    tile[vIndex(t0 + 14, dPair)] = lut[(w7 >> sh) & 0xFF] | (lut[(w7 >> sh8) & 0xFF] << 16);
                }
                for (int i = 0; i < 2; i++) {
                    int t0 = tFirst + 16 * i;
                    int w0 = kPool.get((rowAt[next * CHUNK + t0] >> 2) + dWord);
                    int w1 = kPool.get((rowAt[next * CHUNK + t0 + 2] >> 2) + dWord);
                    int w2 = kPool.get((rowAt[next * CHUNK + t0 + 4] >> 2) + dWord);
                    int w3 = kPool.get((rowAt[next * CHUNK + t0 + 6] >> 2) + dWord);
                    int w4 = kPool.get((rowAt[next * CHUNK + t0 + 8] >> 2) + dWord);
                    int w5 = kPool.get((rowAt[next * CHUNK + t0 + 10] >> 2) + dWord);
                    int w6 = kPool.get((rowAt[next * CHUNK + t0 + 12] >> 2) + dWord);
                    int w7 = kPool.get((rowAt[next * CHUNK + t0 + 14] >> 2) + dWord);
                    tile[kIndex(t0, dPair) + (1 - buf) * KV_INTS] = lut[(w0 >> sh) & 0xFF] | (lut[(w0 >> sh8) & 0xFF] << 16);
                    tile[kIndex(t0 + 2, dPair) + (1 - buf) * KV_INTS] = lut[(w1 >> sh) & 0xFF] | (lut[(w1 >> sh8) & 0xFF] << 16);
                    tile[kIndex(t0 + 4, dPair) + (1 - buf) * KV_INTS] = lut[(w2 >> sh) & 0xFF] | (lut[(w2 >> sh8) & 0xFF] << 16);
                    tile[kIndex(t0 + 6, dPair) + (1 - buf) * KV_INTS] = lut[(w3 >> sh) & 0xFF] | (lut[(w3 >> sh8) & 0xFF] << 16);
                    tile[kIndex(t0 + 8, dPair) + (1 - buf) * KV_INTS] = lut[(w4 >> sh) & 0xFF] | (lut[(w4 >> sh8) & 0xFF] << 16);
                    tile[kIndex(t0 + 10, dPair) + (1 - buf) * KV_INTS] = lut[(w5 >> sh) & 0xFF] | (lut[(w5 >> sh8) & 0xFF] << 16);
                    tile[kIndex(t0 + 12, dPair) + (1 - buf) * KV_INTS] = lut[(w6 >> sh) & 0xFF] | (lut[(w6 >> sh8) & 0xFF] << 16);
                    tile[kIndex(t0 + 14, dPair) + (1 - buf) * KV_INTS] = lut[(w7 >> sh) & 0xFF] | (lut[(w7 >> sh8) & 0xFF] << 16);
                }
                if (tid == 0) {
                    flag[0] = 0;                                      // read only after the score barriers below
                }
                if (tid < CHUNK) {                                    // the rows of the chunk after the next
                    rowAt[after * CHUNK + tid] = locate(blockTables, seq * maxBlocks, c0 + 2 * dir * CHUNK + tid, lo, hi, blockSize, layerBase,
                            blockStride, headStride, headDim, kvHead);
                }
                ctx.localBarrier();
                for (int mt = 0; mt < 2; mt++) {
                    float[] s0 = ctx.mmaFragment(0f);
                    float[] s1 = ctx.mmaFragment(0f);
                    for (int ks = 0; ks < 8; ks++) {
                        HalfFloat[] a = ctx.mmaLoadA(tile, 16, (K_AT + buf * KV_INTS + (mt * 8 + ks) * 128) * 4);
                        s0 = ctx.mma(a, ctx.mmaLoadB(tile, 16, (qB + ks * 64) * 4), s0, MMAShape.M16N8K16);
                        s1 = ctx.mma(a, ctx.mmaLoadB(tile, 16, (qB + (8 + ks) * 64) * 4), s1, MMAShape.M16N8K16);
                    }
                    ctx.mmaStore(s0, partials, mt * 16, region, 16);
                    ctx.mmaStore(s1, partials, mt * 16, region + 8, 16);
                }
                ctx.localBarrier();
                // this lane's 16 scores of its row (tokens half * 16 + j of the chunk), visible for tLo <= tt < tHi
                int rel = rowPos - c0;                                // the row's position relative to the chunk (< 0: none visible)
                int tHi = TornadoMath.min(n, rel + 1);
                int tLo = TornadoMath.max(-CHUNK, PrefillTile.visibleFrom(rowPos, slotWindow) - c0); // the row's window (or chunk), from c0
                // a masked row's chunks of cached tokens, which every new token sees whole when there is no window, take the
                // causal path: only ALiBi, a window, or a chunk that reaches the new tokens needs the scores finished
                int reaches = c0 + n > len - qLen ? 1 : 0;
                int fin = finish * TornadoMath.max(everyChunk, reaches);
                float rowScale = fin != 0 ? 1f : scale;
                float rowCap = fin != 0 ? 0f : cap;
                if (fin != 0) {
                    // ALiBi or a token-tree mask: this lane's 16 scores scaled, capped, biased and masked (-inf) in place,
                    // so that the loops below (which take them as they are: rowScale 1, rowCap 0) add nothing per score to
                    // a row without either
                    int bits = PrefillTile.maskBits(params, tree, row, heads, firstToken, tileTokens, qLen, len, c0, window);
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float x = alibiScore(partials.get(at), scale, cap, slope, half * 16 + j - rel);
                        partials.set(at, ((bits >> (half * 16 + j)) & 1) != 0 ? x : Float.NEGATIVE_INFINITY);
                    }
                }
                float t = Float.NEGATIVE_INFINITY;                    // this lane's half of the row's chunk max
                float cs = 0f;                                        // this lane's share of the chunk's probability sum
                if (c0 == seg0) {
                    // the segment's first chunk: its row maxima may raise the references before any probability
                    for (int j = 0; j < 16; j++) {
                        t = TornadoMath.max(t, visibleScore(partials, region + (half * 16 + j) * 16 + rr, half * 16 + j, tLo, tHi, rowScale, rowCap));
                    }
                    mPart[tid] = t;
                    ctx.localBarrier();
                    float rowMax = TornadoMath.max(mPart[warp * 32 + rr], mPart[warp * 32 + 16 + rr]);
                    if (rowMax > m + GROW) {
                        m = rowMax;                                   // nothing accumulated yet: raise the reference
                    }
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float p = TornadoMath.exp(visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap) - m);
                        cs += p;
                        partials.set(at, p);
                    }
                } else {
                    // later chunks: the probabilities against the fixed references in the same pass as the max; a
                    // lane whose max exceeds its reference ends the segment, and the chunk's probabilities are dropped
                    for (int j = 0; j < 16; j++) {
                        int at = region + (half * 16 + j) * 16 + rr;
                        float sc = visibleScore(partials, at, half * 16 + j, tLo, tHi, rowScale, rowCap);
                        t = TornadoMath.max(t, sc);
                        float p = TornadoMath.exp(sc - m);
                        cs += p;
                        partials.set(at, p);
                    }
                    int over = t > m + GROW ? 1 : 0;
                    if (over != 0) {
                        flag[0] = 1;                                  // every writer writes 1 (reset while staging)
                    }
                }
                ctx.localBarrier();
                grew = flag[0];
                int keep = 1 - grew;
                segL += grew != 0 ? 0f : cs;
                // the probabilities as one A tile row, two fp16 per int; 0 in a chunk that ends the segment (the
                // fragments add exact zeros)
                for (int j = 0; j < 16; j += 2) {
                    int at = region + (half * 16 + j) * 16 + rr;
                    tile[pB + half * 128 + rr * 8 + j / 2] = (halfBits(partials.get(at)) | (halfBits(partials.get(at + 16)) << 16)) * keep;
                }
                ctx.localBarrier();
                // (unrolled: each fragment's loop-carried value comes straight from an mma; TornadoVM 5.2 copies a
                // fragment that flows from one loop phi into another as a whole C array, which NVRTC rejects)
                HalfFloat[] a0 = ctx.mmaLoadA(tile, 16, (pB + 0) * 4);
                o0 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0) * 4), o0, MMAShape.M16N8K16);
                o1 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 1 * 64) * 4), o1, MMAShape.M16N8K16);
                o2 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 2 * 64) * 4), o2, MMAShape.M16N8K16);
                o3 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 3 * 64) * 4), o3, MMAShape.M16N8K16);
                o4 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 4 * 64) * 4), o4, MMAShape.M16N8K16);
                o5 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 5 * 64) * 4), o5, MMAShape.M16N8K16);
                o6 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 6 * 64) * 4), o6, MMAShape.M16N8K16);
                o7 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 7 * 64) * 4), o7, MMAShape.M16N8K16);
                o8 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 8 * 64) * 4), o8, MMAShape.M16N8K16);
                o9 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 9 * 64) * 4), o9, MMAShape.M16N8K16);
                o10 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 10 * 64) * 4), o10, MMAShape.M16N8K16);
                o11 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 11 * 64) * 4), o11, MMAShape.M16N8K16);
                o12 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 12 * 64) * 4), o12, MMAShape.M16N8K16);
                o13 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 13 * 64) * 4), o13, MMAShape.M16N8K16);
                o14 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 14 * 64) * 4), o14, MMAShape.M16N8K16);
                o15 = ctx.mma(a0, ctx.mmaLoadB(tile, 16, (V_AT + 0 + 15 * 64) * 4), o15, MMAShape.M16N8K16);
                HalfFloat[] a1 = ctx.mmaLoadA(tile, 16, (pB + 128) * 4);
                o0 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024) * 4), o0, MMAShape.M16N8K16);
                o1 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 1 * 64) * 4), o1, MMAShape.M16N8K16);
                o2 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 2 * 64) * 4), o2, MMAShape.M16N8K16);
                o3 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 3 * 64) * 4), o3, MMAShape.M16N8K16);
                o4 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 4 * 64) * 4), o4, MMAShape.M16N8K16);
                o5 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 5 * 64) * 4), o5, MMAShape.M16N8K16);
                o6 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 6 * 64) * 4), o6, MMAShape.M16N8K16);
                o7 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 7 * 64) * 4), o7, MMAShape.M16N8K16);
                o8 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 8 * 64) * 4), o8, MMAShape.M16N8K16);
                o9 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 9 * 64) * 4), o9, MMAShape.M16N8K16);
                o10 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 10 * 64) * 4), o10, MMAShape.M16N8K16);
                o11 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 11 * 64) * 4), o11, MMAShape.M16N8K16);
                o12 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 12 * 64) * 4), o12, MMAShape.M16N8K16);
                o13 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 13 * 64) * 4), o13, MMAShape.M16N8K16);
                o14 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 14 * 64) * 4), o14, MMAShape.M16N8K16);
                o15 = ctx.mma(a1, ctx.mmaLoadB(tile, 16, (V_AT + 1024 + 15 * 64) * 4), o15, MMAShape.M16N8K16);
                ctx.localBarrier();
                // advance, or end the segment at this chunk; branch-free, so that no merge lies between the
                // fragments' mma results and the loop's back edge (TornadoVM 5.2 routes fragments through a
                // merge as a whole C array, which NVRTC rejects)
                stop -= grew * (stop - k);
                c0 += keep * dir * CHUNK;
                k += keep;
                buf ^= keep;
                slot += keep * (next - slot);
            }
            // fold: acc = acc * exp(mAcc - m) + fragments, per row
            ctx.mmaStore(o0, partials, 0, region, HEAD_DIM);
            ctx.mmaStore(o1, partials, 0, region + 8, HEAD_DIM);
            ctx.mmaStore(o2, partials, 0, region + 2 * 8, HEAD_DIM);
            ctx.mmaStore(o3, partials, 0, region + 3 * 8, HEAD_DIM);
            ctx.mmaStore(o4, partials, 0, region + 4 * 8, HEAD_DIM);
            ctx.mmaStore(o5, partials, 0, region + 5 * 8, HEAD_DIM);
            ctx.mmaStore(o6, partials, 0, region + 6 * 8, HEAD_DIM);
            ctx.mmaStore(o7, partials, 0, region + 7 * 8, HEAD_DIM);
            ctx.mmaStore(o8, partials, 0, region + 8 * 8, HEAD_DIM);
            ctx.mmaStore(o9, partials, 0, region + 9 * 8, HEAD_DIM);
            ctx.mmaStore(o10, partials, 0, region + 10 * 8, HEAD_DIM);
            ctx.mmaStore(o11, partials, 0, region + 11 * 8, HEAD_DIM);
            ctx.mmaStore(o12, partials, 0, region + 12 * 8, HEAD_DIM);
            ctx.mmaStore(o13, partials, 0, region + 13 * 8, HEAD_DIM);
            ctx.mmaStore(o14, partials, 0, region + 14 * 8, HEAD_DIM);
            ctx.mmaStore(o15, partials, 0, region + 15 * 8, HEAD_DIM);
            float c = TornadoMath.exp(mAcc - m);
            if (half == 0) {
                mRow[row] = c;
            }
            l = l * c + segL;
            mAcc = m;
            ctx.localBarrier();
            for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) { // the warps' [16][HEAD_DIM] regions are [ROWS][HEAD_DIM]
                int r = idx / HEAD_DIM;
                float add = partials.get(regionBase + idx);
                float prev = 0f;
                if (folded != 0) {
                    prev = partials.get(accBase + idx) * mRow[r];
                }
                partials.set(accBase + idx, prev + add);
            }
            folded = 1;                                       // (the restart chunk raises its references as a first chunk)
            ctx.localBarrier();
        }
        if (half == 0) {
            mRow[row] = mAcc;
        }
        lPart[tid] = l;
        ctx.localBarrier();

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < ROWS * HEAD_DIM; idx += local) {
            int r = idx / HEAD_DIM;
            int e = idx - r * HEAD_DIM;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize && e < headDim) {
                int w = r / 16;
                int wr = r - w * 16;
                float acc = 0f;                               // 0 where the partition has no visible chunk
                if (folded != 0) {
                    acc = partials.get(accBase + idx);
                }
                float sum = lPart[w * 32 + wr] + lPart[w * 32 + 16 + wr];
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc * vScale / sum);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc * vScale);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, sum);
                    }
                }
            }
        }
    }
}
