package dev.pagedattn.kernels;

import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.enums.MMAShape;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Decode over FP8 E4M3 pools on tensor cores (TornadoVM 5.2's {@code KernelContext.mma*}, the CUDA backend; opt-in,
 * {@code -Dpagedattn.tornado.tensorDecode=true}): the stream kernel's grid, arguments and output
 * ({@link StreamDecodeKernels#attentionE4M3} and its G8 twin), head dim {@value #HEAD_DIM}, with the products on the
 * tensor cores instead of the lanes' FMAs. Why: the stream kernel's 8-bit twins issue about as many instructions per
 * token as its fp16 body (decoding a code costs what loading an fp16 element saves; benchmarks/NOTES.md), so they take
 * 0.62-0.68x of the fp16 step where the bytes would allow 0.5x.
 *
 * <p>One warp per work-group, as the stream kernel: its (sequence, KV head, head tile) pieces, four query heads per tile
 * (eight for groups of five or more, the G8 grid). Per tile of {@value #TILE} tokens:
 * <ul>
 *   <li>each lane loads 16 K and 16 V code words (four codes each) and turns each word into two words of fp16 pairs by
 *   integer operations alone: an E4M3 code's fp16 pattern is its sign moved to bit 15 and its other seven bits to bits
 *   7..13, which is the code's value / 256 exactly, subnormals included (the 256 is folded into the scales). A word
 *   gives dims (0, 2) and (1, 3) as pairs, so every tile row holds its dims in the order {@link #physicalDim}: q is
 *   staged in that order, and the output is written back through it;</li>
 *   <li>scores {@code S^T = K q^T} (M = 16 tokens, N = 8 query heads, K = 16 dims per {@code mma}), with q split into
 *   an fp16 high and low part (two {@code mma} per step, about 22 bits of q), through a per-work-group scratch region of
 *   global memory ({@code mmaStore}: a TornadoVM 5.2 fragment is opaque);</li>
 *   <li>{@code P = exp(S - m)} against each head's reference {@code m}, split into fp16 high and low parts as the A tiles
 *   of {@code O += P V} (N = 8 dims per {@code mma}, 16 accumulator fragments for the 128 dims).</li>
 * </ul>
 * A fragment cannot be rescaled, so the references stay fixed in segments, as in {@link TensorPrefillKernels}: while
 * every score stays below {@code m + }{@value #GROW}; a tile where a head's score exceeds it ends the segment (its
 * probabilities set to 0), the fragments are folded, rescaled per head, into fp32 accumulators in the scratch, and the
 * next segment starts over at that tile with the larger references. q is scaled by a power-free factor so that its
 * largest element is {@value #Q_RANGE} (fp16's range holds it and its low part), and the scores are scaled back.
 *
 * <p>Global scratch ({@link DecodeParams#SCRATCH}): {@value #SCRATCH_PER_GROUP} floats per work-group: the fragments'
 * {@code [16][128]} rows, the folded {@code [8][128]} accumulators, a tile's {@code [16][8]} scores.
 */
public final class TensorDecodeKernels {
    /** Local size: one warp. */
    public static final int LOCAL = 32;
    /** Tokens per tile (one M tile of the scores). */
    public static final int TILE = 16;
    /** The head dim this kernel serves. */
    public static final int HEAD_DIM = 128;
    /** Headroom of a head's reference over the scores a segment accumulates (natural log): p < e^8 = 2981, fp16-safe. */
    public static final float GROW = 8f;
    /** The largest scaled query element: its fp16 high part and the low part's ulp stay in fp16's normal range. */
    public static final float Q_RANGE = 8192f;
    private static final int FRAG_ROWS = 16 * HEAD_DIM;
    private static final int ACC = FRAG_ROWS;
    private static final int SCORES = ACC + 8 * HEAD_DIM;
    /** Floats of global scratch per work-group. */
    public static final int SCRATCH_PER_GROUP = SCORES + TILE * 8;

    // The int local array: B tiles of q^T, high and low [ks 8][k 16][4 ints]; A tiles of K [ks 8][token 16][8 ints]; B
    // tiles of V [nt 16][token 16][4 ints]; A tiles of P, high and low [head 16][8 ints] (heads 8..15 zero)
    private static final int QH = 0;
    private static final int QL = 512;
    private static final int KA = 1024;
    private static final int VB = 2048;
    private static final int PH = 3072;
    private static final int PL = 3200;
    private static final int TILE_INTS = 3328;

    private TensorDecodeKernels() {
    }

    /** Query heads per work-group: four, or eight for groups of five or more (the stream kernel's G8 grid). */
    public static int headsPerTile(int groupSize) {
        return groupSize > 4 ? 8 : 4;
    }

    /** Work-groups per KV head. */
    public static int headTiles(int groupSize) {
        int heads = headsPerTile(groupSize);
        return (groupSize + heads - 1) / heads;
    }

    /** The pool dim that tile position {@code d} holds: bits 0 and 1 of {@code d} swapped (an involution). */
    public static int physicalDim(int d) {
        return (d & ~3) | ((d & 1) << 1) | ((d >> 1) & 1);
    }

    /** Codes 0 and 2 of a word as an fp16 pair (value / 256): signs to bits 15 and 31, the other bits to 7..13, 23..29. */
    static int e4m3Even(int w) {
        return ((w << 8) & 0x80008000) | ((w << 7) & 0x3F803F80);
    }

    /** Codes 1 and 3 of a word as an fp16 pair (value / 256). */
    static int e4m3Odd(int w) {
        return (w & 0x80008000) | ((w >>> 1) & 0x3F803F80);
    }

    /** The fp16 bit pattern of {@code x} (round to nearest even), in the low 16 bits. */
    static int halfBits(float x) {
        return new HalfFloat(x).getHalfFloatValue() & 0xFFFF;
    }

    /** The fp16 pattern of what {@link #halfBits} of {@code x} leaves out ({@code x} minus its fp16 value). */
    static int lowBits(float x) {
        return halfBits(x - new HalfFloat(x).getFloat32());
    }

    public static void tensorE4M3(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,
                                     IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                     FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                     float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lane = ctx.localIdx;
        int gid = ctx.groupIdx;
        int numSeqs = params.get(DecodeParams.NUM_SEQS);
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int heads = groupSize > 4 ? 8 : 4;                  // query heads per work-group (groupSize is a JIT-time constant)
        int headTiles = (groupSize + heads - 1) / heads;
        int pairHeads = numKvHeads * headTiles;             // the grid's "KV heads": (KV head, head tile)
        int[] tile = ctx.allocateIntLocalArray(TILE_INTS);  // first: 16-byte aligned for ldmatrix
        float[] red = ctx.allocateFloatLocalArray(8);       // [head] a tile's maxima, then the sums
        int[] flag = ctx.allocateIntLocalArray(1);          // 1: a head's score exceeds its reference (the segment ends)
        int region = params.get(DecodeParams.SCRATCH) + gid * SCRATCH_PER_GROUP;
        int acc = region + ACC;                             // [8][128] folded accumulators (tile positions)
        int scores = region + SCORES;                       // [16 tokens][8 heads] a tile's scores
        // this lane's parts: K words of tokens kTok, kTok + 8 (word kPart of each 16 dims); V words of token vTok (words
        // 2i + vPart); scores, probabilities and accumulators of head h (tokens t0..t0+3; tile dims 32 (lane & 3)..+31)
        int kTok = lane >> 2;
        int kPart = lane & 3;
        int vTok = (lane & 7) + ((lane >> 4) << 3);
        int vPart = (lane >> 3) & 1;
        int h = lane >> 2;
        int t0 = (lane & 3) << 2;
        int d0 = (lane & 3) << 5;
        // the P tiles' rows 8..15 stay zero
        tile[PH + 64 + lane] = 0;
        tile[PH + 96 + lane] = 0;
        tile[PL + 64 + lane] = 0;
        tile[PL + 96 + lane] = 0;

        // this work-group's pieces, as the stream kernel's: its (sequence, KV head, partition) in a partition grid; in a
        // balanced grid (DecodeParams.TILES_PER_GROUP) the pieces of the (sequence, KV head) pairs its range of tiles covers
        int seq = PagedDecodeKernels.seqOf(gid, params.get(DecodeParams.MAX_PARTITIONS), pairHeads);
        int pos = gid * params.get(DecodeParams.TILES_PER_GROUP);
        if (params.get(DecodeParams.TILES_PER_GROUP) != 0) {
            seq = pos < params.get(DecodeParams.TOTAL_TILES) ? params.get(params.get(DecodeParams.GROUP_SEQS) + gid) : numSeqs;
        }
        boolean more = seq < numSeqs;
        while (more) {
            int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
            int first = PagedDecodeKernels.windowFirst(len, params);
            int origin = PagedDecodeKernels.walkOrigin(first);
            int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
            int pair = PagedDecodeKernels.kvHeadOf(gid, maxParts, pairHeads);
            int partition = PagedDecodeKernels.partitionOf(gid, maxParts);
            int start = origin + partition * params.get(DecodeParams.PARTITION_TOKENS);
            int end = TornadoMath.min(len, start + params.get(DecodeParams.PARTITION_TOKENS));
            start = TornadoMath.max(first, start);
            int tilesPerGroup = params.get(DecodeParams.TILES_PER_GROUP);
            if (tilesPerGroup != 0) {
                int tiles = (len - origin + TILE - 1) / TILE;
                int seqStart = pairHeads * params.get(DecodeParams.PREFIX + seq);
                pair = (pos - seqStart) / tiles;
                int pairStart = seqStart + pair * tiles;
                int rangeEnd = TornadoMath.min(gid * tilesPerGroup + tilesPerGroup, params.get(DecodeParams.TOTAL_TILES));
                int pieceEnd = TornadoMath.min(rangeEnd - pairStart, tiles);
                start = TornadoMath.max(first, origin + (pos - pairStart) * TILE);
                end = TornadoMath.min(len, origin + pieceEnd * TILE);
                partition = gid - pairStart / tilesPerGroup;
                pos = pairStart + pieceEnd;
            }
            if (start < end) {
                int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)
                        - origin / blockSize;
                int kvHead = pair / headTiles;
                int head0 = pair % headTiles * heads;
                // E4M3 codes as fp16 read value / 256: the 256 joins the K scale (in q) and the V scale
                float qScale = scale * dequant.get(DequantTable.SIZE + kvHead) * 256f;
                float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead) * 256f;
                int qRow = (seq * numKvHeads + kvHead) * groupSize;

                // q^T as B tiles (tile order of dims), high and low fp16 parts, scaled so that its largest element is Q_RANGE:
                // lane's ints idx = lane + 32 i, (ks, k, heads 2 (idx & 3) and + 1)
                float big = 0f;
                for (int i = 0; i < 16; i++) {
                    int idx = lane + 32 * i;
                    int d = physicalDim(idx >> 2);
                    int ha = head0 + 2 * (idx & 3);
                    float xa = 2 * (idx & 3) < heads && ha < groupSize ? q.get((qRow + ha) * headDim + d) : 0f;
                    float xb = 2 * (idx & 3) + 1 < heads && ha + 1 < groupSize ? q.get((qRow + ha + 1) * headDim + d) : 0f;
                    big = TornadoMath.max(big, TornadoMath.max(TornadoMath.abs(xa), TornadoMath.abs(xb)));
                }
                big = TornadoMath.max(big, ctx.simdShuffleDown(big, 16));
                big = TornadoMath.max(big, ctx.simdShuffleDown(big, 8));
                big = TornadoMath.max(big, ctx.simdShuffleDown(big, 4));
                big = TornadoMath.max(big, ctx.simdShuffleDown(big, 2));
                big = TornadoMath.max(big, ctx.simdShuffleDown(big, 1));
                big = ctx.simdBroadcastFirst(big) * TornadoMath.abs(qScale);
                float qNorm = big > 0f ? Q_RANGE / big : 1f;
                float sInv = 1f / qNorm;                    // scores come back in units of 1 / qNorm
                float qMul = qScale * qNorm;
                for (int i = 0; i < 16; i++) {
                    int idx = lane + 32 * i;
                    int d = physicalDim(idx >> 2);
                    int ha = head0 + 2 * (idx & 3);
                    float xa = 2 * (idx & 3) < heads && ha < groupSize ? q.get((qRow + ha) * headDim + d) * qMul : 0f;
                    float xb = 2 * (idx & 3) + 1 < heads && ha + 1 < groupSize ? q.get((qRow + ha + 1) * headDim + d) * qMul : 0f;
                    tile[QH + idx] = halfBits(xa) | (halfBits(xb) << 16);
                    tile[QL + idx] = lowBits(xa) | (lowBits(xb) << 16);
                }

                int validHead = h < heads && head0 + h < groupSize ? 1 : 0;
                int alibi = params.get(DecodeParams.ALIBI);
                float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));
                int alibiHead = TornadoMath.min(kvHead * groupSize + head0 + h, kvHead * groupSize + groupSize - 1);
                float m = -Float.MAX_VALUE;                 // head h's reference (the same in its four lanes)
                float mAcc = -Float.MAX_VALUE;              // the reference of the folded accumulators
                float l = 0f;                               // this lane's share of head h's sum, relative to mAcc
                int folded = 0;
                int tiles = (end - start + TILE - 1) / TILE;
                int k = 0;
                int last = end - 1;                     // rows past the end are read from the last row and masked
                int loaded = -1;                        // the tile whose K and V words the registers hold
                int ka0 = 0;
                int ka1 = 0;
                int ka2 = 0;
                int ka3 = 0;
                int ka4 = 0;
                int ka5 = 0;
                int ka6 = 0;
                int ka7 = 0;
                int kb0 = 0;
                int kb1 = 0;
                int kb2 = 0;
                int kb3 = 0;
                int kb4 = 0;
                int kb5 = 0;
                int kb6 = 0;
                int kb7 = 0;
                int v0 = 0;
                int v1 = 0;
                int v2 = 0;
                int v3 = 0;
                int v4 = 0;
                int v5 = 0;
                int v6 = 0;
                int v7 = 0;
                int v8 = 0;
                int v9 = 0;
                int v10 = 0;
                int v11 = 0;
                int v12 = 0;
                int v13 = 0;
                int v14 = 0;
                int v15 = 0;
                while (k < tiles) {
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
                    int seg0 = k;
                    int stop = tiles;
                    float segL = 0f;
                    while (k < stop) {
                        int tileStart = start + k * TILE;
                        if (loaded != k) {                  // the piece's first tile, or a segment's restart: its words now
                            int tileAt = start + (k) * TILE;
                            int kRowA = PagedDecodeKernels.rowOffset(blockTables, tableRow, TornadoMath.min(tileAt + kTok, last), layerBase,
                                    blockStride, headStride, headDim, blockSize, kvHead) >> 2;
                            int kRowB = PagedDecodeKernels.rowOffset(blockTables, tableRow, TornadoMath.min(tileAt + kTok + 8, last), layerBase,
                                    blockStride, headStride, headDim, blockSize, kvHead) >> 2;
                            int vRow = (PagedDecodeKernels.rowOffset(blockTables, tableRow, TornadoMath.min(tileAt + vTok, last), layerBase,
                                    blockStride, headStride, headDim, blockSize, kvHead) >> 2) + vPart;
                            ka0 = kPool.get(kRowA + 0 + kPart);
                            ka1 = kPool.get(kRowA + 4 + kPart);
                            ka2 = kPool.get(kRowA + 8 + kPart);
                            ka3 = kPool.get(kRowA + 12 + kPart);
                            ka4 = kPool.get(kRowA + 16 + kPart);
                            ka5 = kPool.get(kRowA + 20 + kPart);
                            ka6 = kPool.get(kRowA + 24 + kPart);
                            ka7 = kPool.get(kRowA + 28 + kPart);
                            kb0 = kPool.get(kRowB + 0 + kPart);
                            kb1 = kPool.get(kRowB + 4 + kPart);
                            kb2 = kPool.get(kRowB + 8 + kPart);
                            kb3 = kPool.get(kRowB + 12 + kPart);
                            kb4 = kPool.get(kRowB + 16 + kPart);
                            kb5 = kPool.get(kRowB + 20 + kPart);
                            kb6 = kPool.get(kRowB + 24 + kPart);
                            kb7 = kPool.get(kRowB + 28 + kPart);
                            v0 = vPool.get(vRow + 0);
                            v1 = vPool.get(vRow + 2);
                            v2 = vPool.get(vRow + 4);
                            v3 = vPool.get(vRow + 6);
                            v4 = vPool.get(vRow + 8);
                            v5 = vPool.get(vRow + 10);
                            v6 = vPool.get(vRow + 12);
                            v7 = vPool.get(vRow + 14);
                            v8 = vPool.get(vRow + 16);
                            v9 = vPool.get(vRow + 18);
                            v10 = vPool.get(vRow + 20);
                            v11 = vPool.get(vRow + 22);
                            v12 = vPool.get(vRow + 24);
                            v13 = vPool.get(vRow + 26);
                            v14 = vPool.get(vRow + 28);
                            v15 = vPool.get(vRow + 30);
                        }
                        if (lane == 0) {
                            flag[0] = 0;                    // read only after the barriers below
                        }
                        // K rows kTok, kTok + 8 of A tile ks (dims 16 ks .. 16 ks + 15), ints 2 kPart, 2 kPart + 1
                        int ka = KA + kTok * 8 + 2 * kPart;
                        tile[ka] = e4m3Even(ka0);
                        tile[ka + 1] = e4m3Odd(ka0);
                        tile[ka + 128] = e4m3Even(ka1);
                        tile[ka + 129] = e4m3Odd(ka1);
                        tile[ka + 256] = e4m3Even(ka2);
                        tile[ka + 257] = e4m3Odd(ka2);
                        tile[ka + 384] = e4m3Even(ka3);
                        tile[ka + 385] = e4m3Odd(ka3);
                        tile[ka + 512] = e4m3Even(ka4);
                        tile[ka + 513] = e4m3Odd(ka4);
                        tile[ka + 640] = e4m3Even(ka5);
                        tile[ka + 641] = e4m3Odd(ka5);
                        tile[ka + 768] = e4m3Even(ka6);
                        tile[ka + 769] = e4m3Odd(ka6);
                        tile[ka + 896] = e4m3Even(ka7);
                        tile[ka + 897] = e4m3Odd(ka7);
                        int kb = ka + 64;
                        tile[kb] = e4m3Even(kb0);
                        tile[kb + 1] = e4m3Odd(kb0);
                        tile[kb + 128] = e4m3Even(kb1);
                        tile[kb + 129] = e4m3Odd(kb1);
                        tile[kb + 256] = e4m3Even(kb2);
                        tile[kb + 257] = e4m3Odd(kb2);
                        tile[kb + 384] = e4m3Even(kb3);
                        tile[kb + 385] = e4m3Odd(kb3);
                        tile[kb + 512] = e4m3Even(kb4);
                        tile[kb + 513] = e4m3Odd(kb4);
                        tile[kb + 640] = e4m3Even(kb5);
                        tile[kb + 641] = e4m3Odd(kb5);
                        tile[kb + 768] = e4m3Even(kb6);
                        tile[kb + 769] = e4m3Odd(kb6);
                        tile[kb + 896] = e4m3Even(kb7);
                        tile[kb + 897] = e4m3Odd(kb7);
                        // V row vTok of B tile nt = i (dims 8 i .. 8 i + 7), ints 2 vPart, 2 vPart + 1
                        int vb = VB + vTok * 4 + 2 * vPart;
                        tile[vb] = e4m3Even(v0);
                        tile[vb + 1] = e4m3Odd(v0);
                        tile[vb + 64] = e4m3Even(v1);
                        tile[vb + 65] = e4m3Odd(v1);
                        tile[vb + 128] = e4m3Even(v2);
                        tile[vb + 129] = e4m3Odd(v2);
                        tile[vb + 192] = e4m3Even(v3);
                        tile[vb + 193] = e4m3Odd(v3);
                        tile[vb + 256] = e4m3Even(v4);
                        tile[vb + 257] = e4m3Odd(v4);
                        tile[vb + 320] = e4m3Even(v5);
                        tile[vb + 321] = e4m3Odd(v5);
                        tile[vb + 384] = e4m3Even(v6);
                        tile[vb + 385] = e4m3Odd(v6);
                        tile[vb + 448] = e4m3Even(v7);
                        tile[vb + 449] = e4m3Odd(v7);
                        tile[vb + 512] = e4m3Even(v8);
                        tile[vb + 513] = e4m3Odd(v8);
                        tile[vb + 576] = e4m3Even(v9);
                        tile[vb + 577] = e4m3Odd(v9);
                        tile[vb + 640] = e4m3Even(v10);
                        tile[vb + 641] = e4m3Odd(v10);
                        tile[vb + 704] = e4m3Even(v11);
                        tile[vb + 705] = e4m3Odd(v11);
                        tile[vb + 768] = e4m3Even(v12);
                        tile[vb + 769] = e4m3Odd(v12);
                        tile[vb + 832] = e4m3Even(v13);
                        tile[vb + 833] = e4m3Odd(v13);
                        tile[vb + 896] = e4m3Even(v14);
                        tile[vb + 897] = e4m3Odd(v14);
                        tile[vb + 960] = e4m3Even(v15);
                        tile[vb + 961] = e4m3Odd(v15);
                        // the next tile's words (the last tile's again at the end), in flight during this tile's products; a
                        // segment that ends here restarts at this tile and loads it again
                        {
                            int tileAt = start + (TornadoMath.min(k + 1, tiles - 1)) * TILE;
                            int kRowA = PagedDecodeKernels.rowOffset(blockTables, tableRow, TornadoMath.min(tileAt + kTok, last), layerBase,
                                    blockStride, headStride, headDim, blockSize, kvHead) >> 2;
                            int kRowB = PagedDecodeKernels.rowOffset(blockTables, tableRow, TornadoMath.min(tileAt + kTok + 8, last), layerBase,
                                    blockStride, headStride, headDim, blockSize, kvHead) >> 2;
                            int vRow = (PagedDecodeKernels.rowOffset(blockTables, tableRow, TornadoMath.min(tileAt + vTok, last), layerBase,
                                    blockStride, headStride, headDim, blockSize, kvHead) >> 2) + vPart;
                            ka0 = kPool.get(kRowA + 0 + kPart);
                            ka1 = kPool.get(kRowA + 4 + kPart);
                            ka2 = kPool.get(kRowA + 8 + kPart);
                            ka3 = kPool.get(kRowA + 12 + kPart);
                            ka4 = kPool.get(kRowA + 16 + kPart);
                            ka5 = kPool.get(kRowA + 20 + kPart);
                            ka6 = kPool.get(kRowA + 24 + kPart);
                            ka7 = kPool.get(kRowA + 28 + kPart);
                            kb0 = kPool.get(kRowB + 0 + kPart);
                            kb1 = kPool.get(kRowB + 4 + kPart);
                            kb2 = kPool.get(kRowB + 8 + kPart);
                            kb3 = kPool.get(kRowB + 12 + kPart);
                            kb4 = kPool.get(kRowB + 16 + kPart);
                            kb5 = kPool.get(kRowB + 20 + kPart);
                            kb6 = kPool.get(kRowB + 24 + kPart);
                            kb7 = kPool.get(kRowB + 28 + kPart);
                            v0 = vPool.get(vRow + 0);
                            v1 = vPool.get(vRow + 2);
                            v2 = vPool.get(vRow + 4);
                            v3 = vPool.get(vRow + 6);
                            v4 = vPool.get(vRow + 8);
                            v5 = vPool.get(vRow + 10);
                            v6 = vPool.get(vRow + 12);
                            v7 = vPool.get(vRow + 14);
                            v8 = vPool.get(vRow + 16);
                            v9 = vPool.get(vRow + 18);
                            v10 = vPool.get(vRow + 20);
                            v11 = vPool.get(vRow + 22);
                            v12 = vPool.get(vRow + 24);
                            v13 = vPool.get(vRow + 26);
                            v14 = vPool.get(vRow + 28);
                            v15 = vPool.get(vRow + 30);
                        }
                        loaded = k + 1;
                        ctx.localBarrier();
                        // S^T = K q^T: q's high part, then its low part, into one fragment
                        float[] s = ctx.mmaFragment(0f);
                        for (int ks = 0; ks < 8; ks++) {
                            HalfFloat[] a = ctx.mmaLoadA(tile, 16, (KA + ks * 128) * 4);
                            s = ctx.mma(a, ctx.mmaLoadB(tile, 16, (QH + ks * 64) * 4), s, MMAShape.M16N8K16);
                            s = ctx.mma(a, ctx.mmaLoadB(tile, 16, (QL + ks * 64) * 4), s, MMAShape.M16N8K16);
                        }
                        ctx.mmaStore(s, partials, 0, scores, 8);
                        ctx.localBarrier();
                        // head h's scores of tokens t0..t0+3: scaled back, capped, biased, masked past the end
                        int visible = end - tileStart;
                        float x0 = PagedDecodeKernels.softCap(partials.get(scores + t0 * 8 + h) * sInv, cap)
                                + PagedDecodeKernels.alibiBias(partials, alibi, alibiHead, tileStart + t0, len - 1);
                        float x1 = PagedDecodeKernels.softCap(partials.get(scores + t0 * 8 + 8 + h) * sInv, cap)
                                + PagedDecodeKernels.alibiBias(partials, alibi, alibiHead, tileStart + t0 + 1, len - 1);
                        float x2 = PagedDecodeKernels.softCap(partials.get(scores + t0 * 8 + 16 + h) * sInv, cap)
                                + PagedDecodeKernels.alibiBias(partials, alibi, alibiHead, tileStart + t0 + 2, len - 1);
                        float x3 = PagedDecodeKernels.softCap(partials.get(scores + t0 * 8 + 24 + h) * sInv, cap)
                                + PagedDecodeKernels.alibiBias(partials, alibi, alibiHead, tileStart + t0 + 3, len - 1);
                        x0 = t0 < visible ? x0 : PagedDecodeKernels.MASKED;
                        x1 = t0 + 1 < visible ? x1 : PagedDecodeKernels.MASKED;
                        x2 = t0 + 2 < visible ? x2 : PagedDecodeKernels.MASKED;
                        x3 = t0 + 3 < visible ? x3 : PagedDecodeKernels.MASKED;
                        if (validHead == 0) {               // a head past the group: its row of P is never written out
                            x0 = 0f;
                            x1 = 0f;
                            x2 = 0f;
                            x3 = 0f;
                        }
                        float lmax = TornadoMath.max(TornadoMath.max(x0, x1), TornadoMath.max(x2, x3));
                        if (k == seg0) {
                            // the segment's first tile: its maxima may raise the references before any probability
                            float t = TornadoMath.max(lmax, ctx.simdShuffleDown(lmax, 2));
                            t = TornadoMath.max(t, ctx.simdShuffleDown(t, 1));
                            if ((lane & 3) == 0) {
                                red[h] = t;
                            }
                            ctx.localBarrier();
                            float headMax = red[h];
                            if (headMax > m + GROW) {
                                m = headMax;                // nothing accumulated in this segment yet
                            }
                        } else {
                            int over = lmax > m + GROW ? 1 : 0;
                            if (over != 0) {
                                flag[0] = 1;                // every writer writes 1
                            }
                        }
                        ctx.localBarrier();
                        int grew = flag[0];
                        int keep = 1 - grew;
                        float kept = (float) keep;
                        float p0 = TornadoMath.exp(x0 - m) * kept;
                        float p1 = TornadoMath.exp(x1 - m) * kept;
                        float p2 = TornadoMath.exp(x2 - m) * kept;
                        float p3 = TornadoMath.exp(x3 - m) * kept;
                        segL += p0 + p1 + p2 + p3;
                        // the probabilities over their scores, converted to fp16 as they are read back: TornadoVM 5.2's CUDA
                        // code for new HalfFloat(x).getFloat32() of a computed x took another float as x (the score before
                        // exp: relative L2 0.98 on an H100, fifty-ninth session); of a loaded x it is right
                        partials.set(scores + t0 * 8 + h, p0);
                        partials.set(scores + t0 * 8 + 8 + h, p1);
                        partials.set(scores + t0 * 8 + 16 + h, p2);
                        partials.set(scores + t0 * 8 + 24 + h, p3);
                        ctx.localBarrier();
                        float r0 = partials.get(scores + t0 * 8 + h);
                        float r1 = partials.get(scores + t0 * 8 + 8 + h);
                        float r2 = partials.get(scores + t0 * 8 + 16 + h);
                        float r3 = partials.get(scores + t0 * 8 + 24 + h);
                        // row h of the P tiles, tokens t0..t0+3: ints t0 / 2, t0 / 2 + 1
                        int pAt = h * 8 + (t0 >> 1);
                        tile[PH + pAt] = halfBits(r0) | (halfBits(r1) << 16);
                        tile[PH + pAt + 1] = halfBits(r2) | (halfBits(r3) << 16);
                        tile[PL + pAt] = lowBits(r0) | (lowBits(r1) << 16);
                        tile[PL + pAt + 1] = lowBits(r2) | (lowBits(r3) << 16);
                        ctx.localBarrier();
                        // O += P V, P's high part and its low part (unrolled: each fragment's loop-carried value comes straight
                        // from an mma; TornadoVM 5.2 copies a fragment that flows from one loop phi into another as a whole C
                        // array, which NVRTC rejects)
                        HalfFloat[] ah = ctx.mmaLoadA(tile, 16, PH * 4);
                        HalfFloat[] al = ctx.mmaLoadA(tile, 16, PL * 4);
                        HalfFloat[] b0 = ctx.mmaLoadB(tile, 16, (VB + 0 * 64) * 4);
                        o0 = ctx.mma(al, b0, ctx.mma(ah, b0, o0, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b1 = ctx.mmaLoadB(tile, 16, (VB + 1 * 64) * 4);
                        o1 = ctx.mma(al, b1, ctx.mma(ah, b1, o1, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b2 = ctx.mmaLoadB(tile, 16, (VB + 2 * 64) * 4);
                        o2 = ctx.mma(al, b2, ctx.mma(ah, b2, o2, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b3 = ctx.mmaLoadB(tile, 16, (VB + 3 * 64) * 4);
                        o3 = ctx.mma(al, b3, ctx.mma(ah, b3, o3, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b4 = ctx.mmaLoadB(tile, 16, (VB + 4 * 64) * 4);
                        o4 = ctx.mma(al, b4, ctx.mma(ah, b4, o4, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b5 = ctx.mmaLoadB(tile, 16, (VB + 5 * 64) * 4);
                        o5 = ctx.mma(al, b5, ctx.mma(ah, b5, o5, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b6 = ctx.mmaLoadB(tile, 16, (VB + 6 * 64) * 4);
                        o6 = ctx.mma(al, b6, ctx.mma(ah, b6, o6, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b7 = ctx.mmaLoadB(tile, 16, (VB + 7 * 64) * 4);
                        o7 = ctx.mma(al, b7, ctx.mma(ah, b7, o7, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b8 = ctx.mmaLoadB(tile, 16, (VB + 8 * 64) * 4);
                        o8 = ctx.mma(al, b8, ctx.mma(ah, b8, o8, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b9 = ctx.mmaLoadB(tile, 16, (VB + 9 * 64) * 4);
                        o9 = ctx.mma(al, b9, ctx.mma(ah, b9, o9, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b10 = ctx.mmaLoadB(tile, 16, (VB + 10 * 64) * 4);
                        o10 = ctx.mma(al, b10, ctx.mma(ah, b10, o10, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b11 = ctx.mmaLoadB(tile, 16, (VB + 11 * 64) * 4);
                        o11 = ctx.mma(al, b11, ctx.mma(ah, b11, o11, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b12 = ctx.mmaLoadB(tile, 16, (VB + 12 * 64) * 4);
                        o12 = ctx.mma(al, b12, ctx.mma(ah, b12, o12, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b13 = ctx.mmaLoadB(tile, 16, (VB + 13 * 64) * 4);
                        o13 = ctx.mma(al, b13, ctx.mma(ah, b13, o13, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b14 = ctx.mmaLoadB(tile, 16, (VB + 14 * 64) * 4);
                        o14 = ctx.mma(al, b14, ctx.mma(ah, b14, o14, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        HalfFloat[] b15 = ctx.mmaLoadB(tile, 16, (VB + 15 * 64) * 4);
                        o15 = ctx.mma(al, b15, ctx.mma(ah, b15, o15, MMAShape.M16N8K16), MMAShape.M16N8K16);
                        ctx.localBarrier();
                        // advance, or end the segment at this tile (branch-free: no merge between the fragments' mma results
                        // and the loop's back edge)
                        stop -= grew * (stop - k);
                        k += keep;
                    }
                    // fold: acc = acc * exp(mAcc - m) + fragments, per head
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
                    l = l * c + segL;
                    mAcc = m;
                    ctx.localBarrier();
                    for (int i = 0; i < 32; i++) {
                        int at = h * HEAD_DIM + d0 + i;
                        float prev = 0f;
                        if (folded != 0) {
                            prev = partials.get(acc + at) * c;
                        }
                        partials.set(acc + at, prev + partials.get(region + at));
                    }
                    folded = 1;
                    ctx.localBarrier();
                }

                // head h's sum over its four lanes, then write out: the normalised output (one partition) or the partition's
                // state for the merge, in pool dim order
                float sum = l + ctx.simdShuffleDown(l, 2);
                sum = sum + ctx.simdShuffleDown(sum, 1);
                if ((lane & 3) == 0) {
                    red[h] = sum;
                }
                ctx.localBarrier();
                float headSum = red[h];
                int writeFinal = params.get(DecodeParams.WRITE_FINAL);
                int numQHeads = numKvHeads * groupSize;
                int sinkOn = writeFinal != 0 ? params.get(DecodeParams.SINKS) : 0;
                int hq = seq * numQHeads + kvHead * groupSize + head0 + h;
                if (validHead != 0) {
                    float sink = sinkOn != 0 ? partials.get(params.get(DecodeParams.SINK_BASE) + kvHead * groupSize + head0 + h) : 0f;
                    float denominator = PagedDecodeKernels.withSink(headSum, m, sinkOn, sink);
                    int pBase = (hq * maxParts + partition) * (headDim + 2);
                    for (int i = 0; i < 32; i++) {
                        int d = physicalDim(d0 + i);
                        float x = partials.get(acc + h * HEAD_DIM + d0 + i) * vScale;
                        if (writeFinal != 0) {
                            out.set(hq * headDim + d, x / denominator);
                        } else {
                            partials.set(pBase + d, x);
                        }
                    }
                    if (writeFinal == 0 && (lane & 3) == 0) {
                        partials.set(pBase + headDim, m);
                        partials.set(pBase + headDim + 1, headSum);
                    }
                }
                ctx.localBarrier();
            }
            // a balanced range's next piece starts the next pair
            int r = params.get(DecodeParams.TILES_PER_GROUP);
            more = pos < (r == 0 ? 0 : TornadoMath.min(ctx.groupIdx * r + r, params.get(DecodeParams.TOTAL_TILES)));
            seq = pair == pairHeads - 1 ? seq + 1 : seq;
        }
    }
}
