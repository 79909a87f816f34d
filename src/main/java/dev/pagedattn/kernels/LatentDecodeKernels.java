package dev.pagedattn.kernels;

import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Decode attention over a latent cache (multi-head latent attention, DeepSeek's MLA; {@code KvCacheConfig.latent}): one
 * pool per layer whose rows of {@code headDim} elements (512 compressed KV + 64 rotary key) are every query head's key,
 * and whose first {@code valueDim} elements are its value. Every query head shares the one KV head, so a work-group takes
 * a tile of {@link #HEADS} query heads and loads each token's row once into local memory, for the tile's scores and for
 * its values (FlashMLA's shape, without tensor cores).
 *
 * <pre>
 *  pool      [numBlocks][1][blockSize][headDim]     one layer's latent pool, fp16 or fp32 (KvLayout)
 *  q         [numSeqs][numQHeads][headDim]          fp32
 *  out       [numSeqs][numQHeads][valueDim]         fp32 (a split step: partials [numSeqs][numQHeads][maxPartitions][valueDim + 2])
 *  grid      work-group gid = (seq * headTiles + tile) * maxPartitions + partition  (PagedDecodeKernels' skeleton, with the
 *            head tiles in the place of KV heads), {@link #LOCAL} work-items each
 * </pre>
 * A work-group walks its partition in chunks of {@link #CHUNK} tokens, five barriers a chunk:
 * <ol>
 *   <li>the chunk's rows into local memory ({@code ks}, fp32), coalesced: the eight rows located, then all of a
 *       work-item's forty loads in flight at once, issued before the barrier (one round trip to memory a chunk);</li>
 *   <li>work-item (tokens {@code 4 tq ..}, heads {@code 4 hq ..}, slice {@code s}) with {@code tid = 32 (2 tq + hq) + s}
 *       sums its slice's dims {@code s, s + 32, ...} of sixteen (token, head) dot products with the queries
 *       (pre-scaled, in local memory {@code qs}) into {@code dots}: eight local loads per sixteen fmas;</li>
 *   <li>work-item (token, head) &lt; 64 adds the 32 slices (four independent sums), caps, biases and masks the score;</li>
 *   <li>work-item h &lt; 8 moves its head's running max and turns the eight scores into probabilities (eight exps);</li>
 *   <li>every work-item rescales and adds {@code p * v} for all eight heads at its four value dims
 *       {@code tid + 128 j}, reading {@code v} from the same local rows: 32 accumulators in registers.</li>
 * </ol>
 * The split-K partials and their merge ({@link PagedDecodeKernels#mergePartitions} with {@code headDim = valueDim}),
 * windows, sinks, soft caps, ALiBi and log-sum-exps are the other kernels'. The three twins (fp16, fp32, and 8-bit codes
 * packed four per word, decoded by the format's table in {@code dequant} and scaled by the layer's one scale as they are
 * staged: {@link PackedCodes}) differ only in how they load an element ({@code KernelSourceTest}); no warp operations, so
 * every backend compiles them.
 */
public final class LatentDecodeKernels {
    /** Local size: four warps. */
    public static final int LOCAL = 128;
    /** Query heads one work-group handles. */
    public static final int HEADS = 8;
    /** Tokens per chunk. */
    public static final int CHUNK = 8;
    /** Groups of four heads in a tile (step 2 gives a work-item four tokens by four heads). */
    private static final int HEAD_QUADS = HEADS / 4;
    /** Slices of the dims each score's dot product is summed over: work-items per (four tokens, four heads). */
    public static final int SLICES = LOCAL / (CHUNK / 4 * HEAD_QUADS);
    /** Head dims (keys) are multiples of this. */
    public static final int DIM_MULTIPLE = 16;
    /**
     * Largest row (keys) the local arrays hold: DeepSeek's 512 + 64. Step 1 stages dims {@code tid + 128 k}, k &lt; 5, so
     * this must stay at most {@code 5 * LOCAL}.
     */
    public static final int MAX_HEAD_DIM = 576;
    /** Largest value width: four dims per work-item. */
    public static final int MAX_VALUE_DIM = 4 * LOCAL;
    /** Row stride of ks. */
    private static final int ROW = MAX_HEAD_DIM;
    /** Row stride of qs. */
    private static final int Q_ROW = MAX_HEAD_DIM + 16;
    /** Row stride of dots: one past the chunk's 64 (token, head) pairs, so a warp's 32 slices hit 32 banks. */
    private static final int D_ROW = CHUNK * HEADS + 1;
    private static final int STATS_MAX = 0;
    private static final int STATS_SUM = HEADS;
    private static final int STATS_RESCALE = 2 * HEADS;
    private static final int STATS_SIZE = 3 * HEADS;

    private LatentDecodeKernels() {
    }

    /** Head dims (keys) that are multiples of 16 up to 576 and value widths from 1 up to min(headDim, 512). */
    public static boolean supports(int headDim, int valueDim) {
        return headDim >= DIM_MULTIPLE && headDim <= MAX_HEAD_DIM && headDim % DIM_MULTIPLE == 0 && valueDim >= 1
                && valueDim <= Math.min(headDim, MAX_VALUE_DIM);
    }

    /** Head tiles of a step: work-groups per (sequence, partition). */
    public static int headTiles(int numQHeads) {
        return (numQHeads + HEADS - 1) / HEADS;
    }

    public static void latentF16(KernelContext ctx, HalfFloatArray pool, FloatArray q, IntArray blockTables, IntArray contextLens,
                                    IntArray params, FloatArray out, FloatArray partials, int numQHeads, int headDim,
                                    int valueDim, int blockSize, float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int gid = ctx.groupIdx;
        int tiles = (numQHeads + HEADS - 1) / HEADS;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int part = PagedDecodeKernels.partitionOf(gid, maxParts);
        int tile = PagedDecodeKernels.kvHeadOf(gid, maxParts, tiles);
        int seq = PagedDecodeKernels.seqOf(gid, maxParts, tiles);
        if (seq >= params.get(DecodeParams.NUM_SEQS)) {
            return;
        }
        int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
        int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)
        int start = PagedDecodeKernels.walkOrigin(first) + part * params.get(DecodeParams.PARTITION_TOKENS);
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + params.get(DecodeParams.PARTITION_TOKENS));
        start = TornadoMath.max(first, start);
        int headStride = blockSize * headDim;   // one KV head
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        int tileHead = tile * HEADS;
        int alibi = params.get(DecodeParams.ALIBI);
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)

        float[] qs = ctx.allocateFloatLocalArray(HEADS * Q_ROW);    // [head][Q_ROW] the tile's queries, pre-scaled
        float[] ks = ctx.allocateFloatLocalArray(CHUNK * ROW);      // [token][ROW] the chunk's rows
        float[] dots = ctx.allocateFloatLocalArray(SLICES * D_ROW); // [slice][token][head] partial dot products
        float[] probs = ctx.allocateFloatLocalArray(CHUNK * HEADS); // [token][head] probabilities
        float[] stats = ctx.allocateFloatLocalArray(STATS_SIZE);    // see STATS_*
        // the tile's queries, pre-scaled; heads past numQHeads are copies of the last head (the same sums, bit for bit, so
        // their rows may be written to the last head's: no branch on the head count, which TornadoVM may fold to a constant
        // that its OpenCL backend cannot emit)
        for (int e = tid; e < HEADS * headDim; e += LOCAL) {
            int h = e / headDim;
            int d = e - h * headDim;
            qs[h * Q_ROW + d] = q.get((seq * numQHeads + TornadoMath.min(tileHead + h, numQHeads - 1)) * headDim + d) * scale;
        }
        if (tid < HEADS) {
            stats[STATS_MAX + tid] = -Float.MAX_VALUE; // finite: exp(old - new) never sees -inf - -inf
            stats[STATS_SUM + tid] = 0f;
        }
        int quad = tid / SLICES;                // step 2: this work-item's four tokens (4 tq ..), four heads (4 hq ..), slice
        int slice = tid - quad * SLICES;
        int tq = quad / HEAD_QUADS;
        int hq = quad - HEAD_QUADS * tq;
        int qBase = 4 * hq * Q_ROW;
        int kBase = 4 * tq * ROW;
        int dBase = slice * D_ROW + 4 * tq * HEADS + 4 * hq;
        int e0 = TornadoMath.min(tid, headDim - 1);                 // step 1: the dims this work-item stages (clamped)
        int e1 = TornadoMath.min(tid + LOCAL, headDim - 1);
        int e2 = TornadoMath.min(tid + 2 * LOCAL, headDim - 1);
        int e3 = TornadoMath.min(tid + 3 * LOCAL, headDim - 1);
        int e4 = TornadoMath.min(tid + 4 * LOCAL, headDim - 1);
        int d0 = tid;                           // step 5: this work-item's value dims
        int d1 = tid + LOCAL;
        int d2 = tid + 2 * LOCAL;
        int d3 = tid + 3 * LOCAL;
        float a00 = 0f; float a01 = 0f; float a02 = 0f; float a03 = 0f;
        float a10 = 0f; float a11 = 0f; float a12 = 0f; float a13 = 0f;
        float a20 = 0f; float a21 = 0f; float a22 = 0f; float a23 = 0f;
        float a30 = 0f; float a31 = 0f; float a32 = 0f; float a33 = 0f;
        float a40 = 0f; float a41 = 0f; float a42 = 0f; float a43 = 0f;
        float a50 = 0f; float a51 = 0f; float a52 = 0f; float a53 = 0f;
        float a60 = 0f; float a61 = 0f; float a62 = 0f; float a63 = 0f;
        float a70 = 0f; float a71 = 0f; float a72 = 0f; float a73 = 0f;

        for (int chunkStart = start; chunkStart < end; chunkStart += CHUNK) {
            // 1. the chunk's rows: the eight rows located, then all forty loads of this work-item issued before the
            //    barrier and before any store (one round trip to memory a chunk, overlapping the other warps' step 5; dims
            //    past the row repeat its last dim, stored again where it already is). Tokens past the end load the
            //    partition's first token; step 3 masks them.
            int r0 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 0 < end ? chunkStart + 0 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r1 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 1 < end ? chunkStart + 1 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r2 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 2 < end ? chunkStart + 2 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r3 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 3 < end ? chunkStart + 3 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r4 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 4 < end ? chunkStart + 4 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r5 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 5 < end ? chunkStart + 5 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r6 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 6 < end ? chunkStart + 6 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r7 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 7 < end ? chunkStart + 7 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            float x00 = pool.get(r0 + e0).getFloat32();
            float x01 = pool.get(r0 + e1).getFloat32();
            float x02 = pool.get(r0 + e2).getFloat32();
            float x03 = pool.get(r0 + e3).getFloat32();
            float x04 = pool.get(r0 + e4).getFloat32();
            float x10 = pool.get(r1 + e0).getFloat32();
            float x11 = pool.get(r1 + e1).getFloat32();
            float x12 = pool.get(r1 + e2).getFloat32();
            float x13 = pool.get(r1 + e3).getFloat32();
            float x14 = pool.get(r1 + e4).getFloat32();
            float x20 = pool.get(r2 + e0).getFloat32();
            float x21 = pool.get(r2 + e1).getFloat32();
            float x22 = pool.get(r2 + e2).getFloat32();
            float x23 = pool.get(r2 + e3).getFloat32();
            float x24 = pool.get(r2 + e4).getFloat32();
            float x30 = pool.get(r3 + e0).getFloat32();
            float x31 = pool.get(r3 + e1).getFloat32();
            float x32 = pool.get(r3 + e2).getFloat32();
            float x33 = pool.get(r3 + e3).getFloat32();
            float x34 = pool.get(r3 + e4).getFloat32();
            float x40 = pool.get(r4 + e0).getFloat32();
            float x41 = pool.get(r4 + e1).getFloat32();
            float x42 = pool.get(r4 + e2).getFloat32();
            float x43 = pool.get(r4 + e3).getFloat32();
            float x44 = pool.get(r4 + e4).getFloat32();
            float x50 = pool.get(r5 + e0).getFloat32();
            float x51 = pool.get(r5 + e1).getFloat32();
            float x52 = pool.get(r5 + e2).getFloat32();
            float x53 = pool.get(r5 + e3).getFloat32();
            float x54 = pool.get(r5 + e4).getFloat32();
            float x60 = pool.get(r6 + e0).getFloat32();
            float x61 = pool.get(r6 + e1).getFloat32();
            float x62 = pool.get(r6 + e2).getFloat32();
            float x63 = pool.get(r6 + e3).getFloat32();
            float x64 = pool.get(r6 + e4).getFloat32();
            float x70 = pool.get(r7 + e0).getFloat32();
            float x71 = pool.get(r7 + e1).getFloat32();
            float x72 = pool.get(r7 + e2).getFloat32();
            float x73 = pool.get(r7 + e3).getFloat32();
            float x74 = pool.get(r7 + e4).getFloat32();
            ctx.localBarrier();  // the previous chunk's step 5 has read ks and probs
            ks[e0] = x00;
            ks[e1] = x01;
            ks[e2] = x02;
            ks[e3] = x03;
            ks[e4] = x04;
            ks[ROW + e0] = x10;
            ks[ROW + e1] = x11;
            ks[ROW + e2] = x12;
            ks[ROW + e3] = x13;
            ks[ROW + e4] = x14;
            ks[2 * ROW + e0] = x20;
            ks[2 * ROW + e1] = x21;
            ks[2 * ROW + e2] = x22;
            ks[2 * ROW + e3] = x23;
            ks[2 * ROW + e4] = x24;
            ks[3 * ROW + e0] = x30;
            ks[3 * ROW + e1] = x31;
            ks[3 * ROW + e2] = x32;
            ks[3 * ROW + e3] = x33;
            ks[3 * ROW + e4] = x34;
            ks[4 * ROW + e0] = x40;
            ks[4 * ROW + e1] = x41;
            ks[4 * ROW + e2] = x42;
            ks[4 * ROW + e3] = x43;
            ks[4 * ROW + e4] = x44;
            ks[5 * ROW + e0] = x50;
            ks[5 * ROW + e1] = x51;
            ks[5 * ROW + e2] = x52;
            ks[5 * ROW + e3] = x53;
            ks[5 * ROW + e4] = x54;
            ks[6 * ROW + e0] = x60;
            ks[6 * ROW + e1] = x61;
            ks[6 * ROW + e2] = x62;
            ks[6 * ROW + e3] = x63;
            ks[6 * ROW + e4] = x64;
            ks[7 * ROW + e0] = x70;
            ks[7 * ROW + e1] = x71;
            ks[7 * ROW + e2] = x72;
            ks[7 * ROW + e3] = x73;
            ks[7 * ROW + e4] = x74;
            ctx.localBarrier();
            // 2. partial dot products: work-item (tq, hq, slice) sums dims slice, slice + 32, ... of its sixteen (token,
            //    head) pairs, eight local loads per sixteen fmas, into dots[slice][token][head] (a row of 65: no bank conflicts)
            float s00 = 0f; float s01 = 0f; float s02 = 0f; float s03 = 0f;
            float s10 = 0f; float s11 = 0f; float s12 = 0f; float s13 = 0f;
            float s20 = 0f; float s21 = 0f; float s22 = 0f; float s23 = 0f;
            float s30 = 0f; float s31 = 0f; float s32 = 0f; float s33 = 0f;
            for (int d = slice; d < headDim; d += SLICES) {
                float y0 = qs[qBase + d];
                float y1 = qs[qBase + 1 * Q_ROW + d];
                float y2 = qs[qBase + 2 * Q_ROW + d];
                float y3 = qs[qBase + 3 * Q_ROW + d];
                float w0 = ks[kBase + d];
                float w1 = ks[kBase + 1 * ROW + d];
                float w2 = ks[kBase + 2 * ROW + d];
                float w3 = ks[kBase + 3 * ROW + d];
                s00 += w0 * y0; s01 += w0 * y1; s02 += w0 * y2; s03 += w0 * y3;
                s10 += w1 * y0; s11 += w1 * y1; s12 += w1 * y2; s13 += w1 * y3;
                s20 += w2 * y0; s21 += w2 * y1; s22 += w2 * y2; s23 += w2 * y3;
                s30 += w3 * y0; s31 += w3 * y1; s32 += w3 * y2; s33 += w3 * y3;
            }
            dots[dBase] = s00;
            dots[dBase + 1] = s01;
            dots[dBase + 2] = s02;
            dots[dBase + 3] = s03;
            dots[dBase + 1 * HEADS] = s10;
            dots[dBase + 1 * HEADS + 1] = s11;
            dots[dBase + 1 * HEADS + 2] = s12;
            dots[dBase + 1 * HEADS + 3] = s13;
            dots[dBase + 2 * HEADS] = s20;
            dots[dBase + 2 * HEADS + 1] = s21;
            dots[dBase + 2 * HEADS + 2] = s22;
            dots[dBase + 2 * HEADS + 3] = s23;
            dots[dBase + 3 * HEADS] = s30;
            dots[dBase + 3 * HEADS + 1] = s31;
            dots[dBase + 3 * HEADS + 2] = s32;
            dots[dBase + 3 * HEADS + 3] = s33;
            ctx.localBarrier();
            // 3. work-item (token tid / 8, head tid % 8) < 64 adds its pair's 32 slices in four independent sums, caps,
            //    biases and masks the score
            if (tid < CHUNK * HEADS) {
                int t = tid / HEADS;
                int h = tid - t * HEADS;
                float s = 0f;
                float sb = 0f;
                float sc = 0f;
                float sd = 0f;
                for (int at = tid; at < SLICES * D_ROW; at += 4 * D_ROW) {
                    s += dots[at];
                    sb += dots[at + D_ROW];
                    sc += dots[at + 2 * D_ROW];
                    sd += dots[at + 3 * D_ROW];
                }
                s = (s + sb) + (sc + sd);
                s = PagedDecodeKernels.softCap(s, cap);
                s = s + PagedDecodeKernels.alibiBias(partials, alibi, TornadoMath.min(tileHead + h, numQHeads - 1),
                        chunkStart + t, len - 1);
                if (chunkStart + t >= end) {  // finite: see PagedDecodeKernels.MASKED
                    s = PagedDecodeKernels.MASKED;
                }
                probs[tid] = s;
            }
            ctx.localBarrier();
            // 4. work-item h < 8: head h's chunk max, probabilities and running sum
            if (tid < HEADS) {
                float oldMax = stats[STATS_MAX + tid];
                float newMax = oldMax;
                for (int t = 0; t < CHUNK; t++) {
                    newMax = TornadoMath.max(newMax, probs[t * HEADS + tid]);
                }
                float rescale = TornadoMath.exp(oldMax - newMax);
                float sum = stats[STATS_SUM + tid] * rescale;
                for (int t = 0; t < CHUNK; t++) {
                    float p = TornadoMath.exp(probs[t * HEADS + tid] - newMax);
                    probs[t * HEADS + tid] = p;
                    sum += p;
                }
                stats[STATS_SUM + tid] = sum;
                stats[STATS_MAX + tid] = newMax;
                stats[STATS_RESCALE + tid] = rescale;
            }
            ctx.localBarrier();
            // 5. rescale to the new running max, then p * v for the eight heads at this work-item's four value dims
            float c0 = stats[STATS_RESCALE + 0];
            float c1 = stats[STATS_RESCALE + 1];
            float c2 = stats[STATS_RESCALE + 2];
            float c3 = stats[STATS_RESCALE + 3];
            float c4 = stats[STATS_RESCALE + 4];
            float c5 = stats[STATS_RESCALE + 5];
            float c6 = stats[STATS_RESCALE + 6];
            float c7 = stats[STATS_RESCALE + 7];
            a00 = a00 * c0; a01 = a01 * c0; a02 = a02 * c0; a03 = a03 * c0;
            a10 = a10 * c1; a11 = a11 * c1; a12 = a12 * c1; a13 = a13 * c1;
            a20 = a20 * c2; a21 = a21 * c2; a22 = a22 * c2; a23 = a23 * c2;
            a30 = a30 * c3; a31 = a31 * c3; a32 = a32 * c3; a33 = a33 * c3;
            a40 = a40 * c4; a41 = a41 * c4; a42 = a42 * c4; a43 = a43 * c4;
            a50 = a50 * c5; a51 = a51 * c5; a52 = a52 * c5; a53 = a53 * c5;
            a60 = a60 * c6; a61 = a61 * c6; a62 = a62 * c6; a63 = a63 * c6;
            a70 = a70 * c7; a71 = a71 * c7; a72 = a72 * c7; a73 = a73 * c7;
            for (int t = 0; t < CHUNK; t++) {
                float p0 = probs[t * HEADS + 0];
                float p1 = probs[t * HEADS + 1];
                float p2 = probs[t * HEADS + 2];
                float p3 = probs[t * HEADS + 3];
                float p4 = probs[t * HEADS + 4];
                float p5 = probs[t * HEADS + 5];
                float p6 = probs[t * HEADS + 6];
                float p7 = probs[t * HEADS + 7];
                float v0 = ks[t * ROW + d0];
                float v1 = ks[t * ROW + d1];
                float v2 = ks[t * ROW + d2];
                float v3 = ks[t * ROW + d3];
                a00 = a00 + p0 * v0; a01 = a01 + p0 * v1; a02 = a02 + p0 * v2; a03 = a03 + p0 * v3;
                a10 = a10 + p1 * v0; a11 = a11 + p1 * v1; a12 = a12 + p1 * v2; a13 = a13 + p1 * v3;
                a20 = a20 + p2 * v0; a21 = a21 + p2 * v1; a22 = a22 + p2 * v2; a23 = a23 + p2 * v3;
                a30 = a30 + p3 * v0; a31 = a31 + p3 * v1; a32 = a32 + p3 * v2; a33 = a33 + p3 * v3;
                a40 = a40 + p4 * v0; a41 = a41 + p4 * v1; a42 = a42 + p4 * v2; a43 = a43 + p4 * v3;
                a50 = a50 + p5 * v0; a51 = a51 + p5 * v1; a52 = a52 + p5 * v2; a53 = a53 + p5 * v3;
                a60 = a60 + p6 * v0; a61 = a61 + p6 * v1; a62 = a62 + p6 * v2; a63 = a63 + p6 * v3;
                a70 = a70 + p7 * v0; a71 = a71 + p7 * v1; a72 = a72 + p7 * v2; a73 = a73 + p7 * v3;
            }
        }
        // 6. the tile's rows: normalised output, or the partition's sums, max and sum
        ctx.localBarrier();
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 0, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a00, a01, a02, a03, stats[STATS_MAX + 0], stats[STATS_SUM + 0], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 1, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a10, a11, a12, a13, stats[STATS_MAX + 1], stats[STATS_SUM + 1], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 2, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a20, a21, a22, a23, stats[STATS_MAX + 2], stats[STATS_SUM + 2], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 3, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a30, a31, a32, a33, stats[STATS_MAX + 3], stats[STATS_SUM + 3], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 4, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a40, a41, a42, a43, stats[STATS_MAX + 4], stats[STATS_SUM + 4], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 5, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a50, a51, a52, a53, stats[STATS_MAX + 5], stats[STATS_SUM + 5], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 6, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a60, a61, a62, a63, stats[STATS_MAX + 6], stats[STATS_SUM + 6], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 7, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a70, a71, a72, a73, stats[STATS_MAX + 7], stats[STATS_SUM + 7], writeFinal);
    }

    public static void latentF32(KernelContext ctx, FloatArray pool, FloatArray q, IntArray blockTables, IntArray contextLens,
                                    IntArray params, FloatArray out, FloatArray partials, int numQHeads, int headDim,
                                    int valueDim, int blockSize, float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int gid = ctx.groupIdx;
        int tiles = (numQHeads + HEADS - 1) / HEADS;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int part = PagedDecodeKernels.partitionOf(gid, maxParts);
        int tile = PagedDecodeKernels.kvHeadOf(gid, maxParts, tiles);
        int seq = PagedDecodeKernels.seqOf(gid, maxParts, tiles);
        if (seq >= params.get(DecodeParams.NUM_SEQS)) {
            return;
        }
        int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
        int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)
        int start = PagedDecodeKernels.walkOrigin(first) + part * params.get(DecodeParams.PARTITION_TOKENS);
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + params.get(DecodeParams.PARTITION_TOKENS));
        start = TornadoMath.max(first, start);
        int headStride = blockSize * headDim;   // one KV head
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        int tileHead = tile * HEADS;
        int alibi = params.get(DecodeParams.ALIBI);
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)

        float[] qs = ctx.allocateFloatLocalArray(HEADS * Q_ROW);    // [head][Q_ROW] the tile's queries, pre-scaled
        float[] ks = ctx.allocateFloatLocalArray(CHUNK * ROW);      // [token][ROW] the chunk's rows
        float[] dots = ctx.allocateFloatLocalArray(SLICES * D_ROW); // [slice][token][head] partial dot products
        float[] probs = ctx.allocateFloatLocalArray(CHUNK * HEADS); // [token][head] probabilities
        float[] stats = ctx.allocateFloatLocalArray(STATS_SIZE);    // see STATS_*
        // the tile's queries, pre-scaled; heads past numQHeads are copies of the last head (the same sums, bit for bit, so
        // their rows may be written to the last head's: no branch on the head count, which TornadoVM may fold to a constant
        // that its OpenCL backend cannot emit)
        for (int e = tid; e < HEADS * headDim; e += LOCAL) {
            int h = e / headDim;
            int d = e - h * headDim;
            qs[h * Q_ROW + d] = q.get((seq * numQHeads + TornadoMath.min(tileHead + h, numQHeads - 1)) * headDim + d) * scale;
        }
        if (tid < HEADS) {
            stats[STATS_MAX + tid] = -Float.MAX_VALUE; // finite: exp(old - new) never sees -inf - -inf
            stats[STATS_SUM + tid] = 0f;
        }
        int quad = tid / SLICES;                // step 2: this work-item's four tokens (4 tq ..), four heads (4 hq ..), slice
        int slice = tid - quad * SLICES;
        int tq = quad / HEAD_QUADS;
        int hq = quad - HEAD_QUADS * tq;
        int qBase = 4 * hq * Q_ROW;
        int kBase = 4 * tq * ROW;
        int dBase = slice * D_ROW + 4 * tq * HEADS + 4 * hq;
        int e0 = TornadoMath.min(tid, headDim - 1);                 // step 1: the dims this work-item stages (clamped)
        int e1 = TornadoMath.min(tid + LOCAL, headDim - 1);
        int e2 = TornadoMath.min(tid + 2 * LOCAL, headDim - 1);
        int e3 = TornadoMath.min(tid + 3 * LOCAL, headDim - 1);
        int e4 = TornadoMath.min(tid + 4 * LOCAL, headDim - 1);
        int d0 = tid;                           // step 5: this work-item's value dims
        int d1 = tid + LOCAL;
        int d2 = tid + 2 * LOCAL;
        int d3 = tid + 3 * LOCAL;
        float a00 = 0f; float a01 = 0f; float a02 = 0f; float a03 = 0f;
        float a10 = 0f; float a11 = 0f; float a12 = 0f; float a13 = 0f;
        float a20 = 0f; float a21 = 0f; float a22 = 0f; float a23 = 0f;
        float a30 = 0f; float a31 = 0f; float a32 = 0f; float a33 = 0f;
        float a40 = 0f; float a41 = 0f; float a42 = 0f; float a43 = 0f;
        float a50 = 0f; float a51 = 0f; float a52 = 0f; float a53 = 0f;
        float a60 = 0f; float a61 = 0f; float a62 = 0f; float a63 = 0f;
        float a70 = 0f; float a71 = 0f; float a72 = 0f; float a73 = 0f;

        for (int chunkStart = start; chunkStart < end; chunkStart += CHUNK) {
            // 1. the chunk's rows: the eight rows located, then all forty loads of this work-item issued before the
            //    barrier and before any store (one round trip to memory a chunk, overlapping the other warps' step 5; dims
            //    past the row repeat its last dim, stored again where it already is). Tokens past the end load the
            //    partition's first token; step 3 masks them.
            int r0 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 0 < end ? chunkStart + 0 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r1 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 1 < end ? chunkStart + 1 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r2 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 2 < end ? chunkStart + 2 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r3 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 3 < end ? chunkStart + 3 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r4 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 4 < end ? chunkStart + 4 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r5 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 5 < end ? chunkStart + 5 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r6 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 6 < end ? chunkStart + 6 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r7 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 7 < end ? chunkStart + 7 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            float x00 = pool.get(r0 + e0);
            float x01 = pool.get(r0 + e1);
            float x02 = pool.get(r0 + e2);
            float x03 = pool.get(r0 + e3);
            float x04 = pool.get(r0 + e4);
            float x10 = pool.get(r1 + e0);
            float x11 = pool.get(r1 + e1);
            float x12 = pool.get(r1 + e2);
            float x13 = pool.get(r1 + e3);
            float x14 = pool.get(r1 + e4);
            float x20 = pool.get(r2 + e0);
            float x21 = pool.get(r2 + e1);
            float x22 = pool.get(r2 + e2);
            float x23 = pool.get(r2 + e3);
            float x24 = pool.get(r2 + e4);
            float x30 = pool.get(r3 + e0);
            float x31 = pool.get(r3 + e1);
            float x32 = pool.get(r3 + e2);
            float x33 = pool.get(r3 + e3);
            float x34 = pool.get(r3 + e4);
            float x40 = pool.get(r4 + e0);
            float x41 = pool.get(r4 + e1);
            float x42 = pool.get(r4 + e2);
            float x43 = pool.get(r4 + e3);
            float x44 = pool.get(r4 + e4);
            float x50 = pool.get(r5 + e0);
            float x51 = pool.get(r5 + e1);
            float x52 = pool.get(r5 + e2);
            float x53 = pool.get(r5 + e3);
            float x54 = pool.get(r5 + e4);
            float x60 = pool.get(r6 + e0);
            float x61 = pool.get(r6 + e1);
            float x62 = pool.get(r6 + e2);
            float x63 = pool.get(r6 + e3);
            float x64 = pool.get(r6 + e4);
            float x70 = pool.get(r7 + e0);
            float x71 = pool.get(r7 + e1);
            float x72 = pool.get(r7 + e2);
            float x73 = pool.get(r7 + e3);
            float x74 = pool.get(r7 + e4);
            ctx.localBarrier();  // the previous chunk's step 5 has read ks and probs
            ks[e0] = x00;
            ks[e1] = x01;
            ks[e2] = x02;
            ks[e3] = x03;
            ks[e4] = x04;
            ks[ROW + e0] = x10;
            ks[ROW + e1] = x11;
            ks[ROW + e2] = x12;
            ks[ROW + e3] = x13;
            ks[ROW + e4] = x14;
            ks[2 * ROW + e0] = x20;
            ks[2 * ROW + e1] = x21;
            ks[2 * ROW + e2] = x22;
            ks[2 * ROW + e3] = x23;
            ks[2 * ROW + e4] = x24;
            ks[3 * ROW + e0] = x30;
            ks[3 * ROW + e1] = x31;
            ks[3 * ROW + e2] = x32;
            ks[3 * ROW + e3] = x33;
            ks[3 * ROW + e4] = x34;
            ks[4 * ROW + e0] = x40;
            ks[4 * ROW + e1] = x41;
            ks[4 * ROW + e2] = x42;
            ks[4 * ROW + e3] = x43;
            ks[4 * ROW + e4] = x44;
            ks[5 * ROW + e0] = x50;
            ks[5 * ROW + e1] = x51;
            ks[5 * ROW + e2] = x52;
            ks[5 * ROW + e3] = x53;
            ks[5 * ROW + e4] = x54;
            ks[6 * ROW + e0] = x60;
            ks[6 * ROW + e1] = x61;
            ks[6 * ROW + e2] = x62;
            ks[6 * ROW + e3] = x63;
            ks[6 * ROW + e4] = x64;
            ks[7 * ROW + e0] = x70;
            ks[7 * ROW + e1] = x71;
            ks[7 * ROW + e2] = x72;
            ks[7 * ROW + e3] = x73;
            ks[7 * ROW + e4] = x74;
            ctx.localBarrier();
            // 2. partial dot products: work-item (tq, hq, slice) sums dims slice, slice + 32, ... of its sixteen (token,
            //    head) pairs, eight local loads per sixteen fmas, into dots[slice][token][head] (a row of 65: no bank conflicts)
            float s00 = 0f; float s01 = 0f; float s02 = 0f; float s03 = 0f;
            float s10 = 0f; float s11 = 0f; float s12 = 0f; float s13 = 0f;
            float s20 = 0f; float s21 = 0f; float s22 = 0f; float s23 = 0f;
            float s30 = 0f; float s31 = 0f; float s32 = 0f; float s33 = 0f;
            for (int d = slice; d < headDim; d += SLICES) {
                float y0 = qs[qBase + d];
                float y1 = qs[qBase + 1 * Q_ROW + d];
                float y2 = qs[qBase + 2 * Q_ROW + d];
                float y3 = qs[qBase + 3 * Q_ROW + d];
                float w0 = ks[kBase + d];
                float w1 = ks[kBase + 1 * ROW + d];
                float w2 = ks[kBase + 2 * ROW + d];
                float w3 = ks[kBase + 3 * ROW + d];
                s00 += w0 * y0; s01 += w0 * y1; s02 += w0 * y2; s03 += w0 * y3;
                s10 += w1 * y0; s11 += w1 * y1; s12 += w1 * y2; s13 += w1 * y3;
                s20 += w2 * y0; s21 += w2 * y1; s22 += w2 * y2; s23 += w2 * y3;
                s30 += w3 * y0; s31 += w3 * y1; s32 += w3 * y2; s33 += w3 * y3;
            }
            dots[dBase] = s00;
            dots[dBase + 1] = s01;
            dots[dBase + 2] = s02;
            dots[dBase + 3] = s03;
            dots[dBase + 1 * HEADS] = s10;
            dots[dBase + 1 * HEADS + 1] = s11;
            dots[dBase + 1 * HEADS + 2] = s12;
            dots[dBase + 1 * HEADS + 3] = s13;
            dots[dBase + 2 * HEADS] = s20;
            dots[dBase + 2 * HEADS + 1] = s21;
            dots[dBase + 2 * HEADS + 2] = s22;
            dots[dBase + 2 * HEADS + 3] = s23;
            dots[dBase + 3 * HEADS] = s30;
            dots[dBase + 3 * HEADS + 1] = s31;
            dots[dBase + 3 * HEADS + 2] = s32;
            dots[dBase + 3 * HEADS + 3] = s33;
            ctx.localBarrier();
            // 3. work-item (token tid / 8, head tid % 8) < 64 adds its pair's 32 slices in four independent sums, caps,
            //    biases and masks the score
            if (tid < CHUNK * HEADS) {
                int t = tid / HEADS;
                int h = tid - t * HEADS;
                float s = 0f;
                float sb = 0f;
                float sc = 0f;
                float sd = 0f;
                for (int at = tid; at < SLICES * D_ROW; at += 4 * D_ROW) {
                    s += dots[at];
                    sb += dots[at + D_ROW];
                    sc += dots[at + 2 * D_ROW];
                    sd += dots[at + 3 * D_ROW];
                }
                s = (s + sb) + (sc + sd);
                s = PagedDecodeKernels.softCap(s, cap);
                s = s + PagedDecodeKernels.alibiBias(partials, alibi, TornadoMath.min(tileHead + h, numQHeads - 1),
                        chunkStart + t, len - 1);
                if (chunkStart + t >= end) {  // finite: see PagedDecodeKernels.MASKED
                    s = PagedDecodeKernels.MASKED;
                }
                probs[tid] = s;
            }
            ctx.localBarrier();
            // 4. work-item h < 8: head h's chunk max, probabilities and running sum
            if (tid < HEADS) {
                float oldMax = stats[STATS_MAX + tid];
                float newMax = oldMax;
                for (int t = 0; t < CHUNK; t++) {
                    newMax = TornadoMath.max(newMax, probs[t * HEADS + tid]);
                }
                float rescale = TornadoMath.exp(oldMax - newMax);
                float sum = stats[STATS_SUM + tid] * rescale;
                for (int t = 0; t < CHUNK; t++) {
                    float p = TornadoMath.exp(probs[t * HEADS + tid] - newMax);
                    probs[t * HEADS + tid] = p;
                    sum += p;
                }
                stats[STATS_SUM + tid] = sum;
                stats[STATS_MAX + tid] = newMax;
                stats[STATS_RESCALE + tid] = rescale;
            }
            ctx.localBarrier();
            // 5. rescale to the new running max, then p * v for the eight heads at this work-item's four value dims
            float c0 = stats[STATS_RESCALE + 0];
            float c1 = stats[STATS_RESCALE + 1];
            float c2 = stats[STATS_RESCALE + 2];
            float c3 = stats[STATS_RESCALE + 3];
            float c4 = stats[STATS_RESCALE + 4];
            float c5 = stats[STATS_RESCALE + 5];
            float c6 = stats[STATS_RESCALE + 6];
            float c7 = stats[STATS_RESCALE + 7];
            a00 = a00 * c0; a01 = a01 * c0; a02 = a02 * c0; a03 = a03 * c0;
            a10 = a10 * c1; a11 = a11 * c1; a12 = a12 * c1; a13 = a13 * c1;
            a20 = a20 * c2; a21 = a21 * c2; a22 = a22 * c2; a23 = a23 * c2;
            a30 = a30 * c3; a31 = a31 * c3; a32 = a32 * c3; a33 = a33 * c3;
            a40 = a40 * c4; a41 = a41 * c4; a42 = a42 * c4; a43 = a43 * c4;
            a50 = a50 * c5; a51 = a51 * c5; a52 = a52 * c5; a53 = a53 * c5;
            a60 = a60 * c6; a61 = a61 * c6; a62 = a62 * c6; a63 = a63 * c6;
            a70 = a70 * c7; a71 = a71 * c7; a72 = a72 * c7; a73 = a73 * c7;
            for (int t = 0; t < CHUNK; t++) {
                float p0 = probs[t * HEADS + 0];
                float p1 = probs[t * HEADS + 1];
                float p2 = probs[t * HEADS + 2];
                float p3 = probs[t * HEADS + 3];
                float p4 = probs[t * HEADS + 4];
                float p5 = probs[t * HEADS + 5];
                float p6 = probs[t * HEADS + 6];
                float p7 = probs[t * HEADS + 7];
                float v0 = ks[t * ROW + d0];
                float v1 = ks[t * ROW + d1];
                float v2 = ks[t * ROW + d2];
                float v3 = ks[t * ROW + d3];
                a00 = a00 + p0 * v0; a01 = a01 + p0 * v1; a02 = a02 + p0 * v2; a03 = a03 + p0 * v3;
                a10 = a10 + p1 * v0; a11 = a11 + p1 * v1; a12 = a12 + p1 * v2; a13 = a13 + p1 * v3;
                a20 = a20 + p2 * v0; a21 = a21 + p2 * v1; a22 = a22 + p2 * v2; a23 = a23 + p2 * v3;
                a30 = a30 + p3 * v0; a31 = a31 + p3 * v1; a32 = a32 + p3 * v2; a33 = a33 + p3 * v3;
                a40 = a40 + p4 * v0; a41 = a41 + p4 * v1; a42 = a42 + p4 * v2; a43 = a43 + p4 * v3;
                a50 = a50 + p5 * v0; a51 = a51 + p5 * v1; a52 = a52 + p5 * v2; a53 = a53 + p5 * v3;
                a60 = a60 + p6 * v0; a61 = a61 + p6 * v1; a62 = a62 + p6 * v2; a63 = a63 + p6 * v3;
                a70 = a70 + p7 * v0; a71 = a71 + p7 * v1; a72 = a72 + p7 * v2; a73 = a73 + p7 * v3;
            }
        }
        // 6. the tile's rows: normalised output, or the partition's sums, max and sum
        ctx.localBarrier();
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 0, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a00, a01, a02, a03, stats[STATS_MAX + 0], stats[STATS_SUM + 0], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 1, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a10, a11, a12, a13, stats[STATS_MAX + 1], stats[STATS_SUM + 1], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 2, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a20, a21, a22, a23, stats[STATS_MAX + 2], stats[STATS_SUM + 2], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 3, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a30, a31, a32, a33, stats[STATS_MAX + 3], stats[STATS_SUM + 3], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 4, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a40, a41, a42, a43, stats[STATS_MAX + 4], stats[STATS_SUM + 4], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 5, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a50, a51, a52, a53, stats[STATS_MAX + 5], stats[STATS_SUM + 5], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 6, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a60, a61, a62, a63, stats[STATS_MAX + 6], stats[STATS_SUM + 6], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 7, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a70, a71, a72, a73, stats[STATS_MAX + 7], stats[STATS_SUM + 7], writeFinal);
    }

    public static void latentQ8(KernelContext ctx, IntArray pool, FloatArray dequant, FloatArray q, IntArray blockTables,
                                    IntArray contextLens,
                                    IntArray params, FloatArray out, FloatArray partials, int numQHeads, int headDim,
                                    int valueDim, int blockSize, float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int gid = ctx.groupIdx;
        int tiles = (numQHeads + HEADS - 1) / HEADS;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int part = PagedDecodeKernels.partitionOf(gid, maxParts);
        int tile = PagedDecodeKernels.kvHeadOf(gid, maxParts, tiles);
        int seq = PagedDecodeKernels.seqOf(gid, maxParts, tiles);
        if (seq >= params.get(DecodeParams.NUM_SEQS)) {
            return;
        }
        int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
        int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)
        int start = PagedDecodeKernels.walkOrigin(first) + part * params.get(DecodeParams.PARTITION_TOKENS);
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + params.get(DecodeParams.PARTITION_TOKENS));
        start = TornadoMath.max(first, start);
        int headStride = blockSize * headDim;   // one KV head
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        int tileHead = tile * HEADS;
        int alibi = params.get(DecodeParams.ALIBI);
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)
        float kScale = dequant.get(DequantTable.SIZE);  // the one KV head's scale (keys and values alike)

        float[] qs = ctx.allocateFloatLocalArray(HEADS * Q_ROW);    // [head][Q_ROW] the tile's queries, pre-scaled
        float[] ks = ctx.allocateFloatLocalArray(CHUNK * ROW);      // [token][ROW] the chunk's rows
        float[] dots = ctx.allocateFloatLocalArray(SLICES * D_ROW); // [slice][token][head] partial dot products
        float[] probs = ctx.allocateFloatLocalArray(CHUNK * HEADS); // [token][head] probabilities
        float[] stats = ctx.allocateFloatLocalArray(STATS_SIZE);    // see STATS_*
        // the tile's queries, pre-scaled; heads past numQHeads are copies of the last head (the same sums, bit for bit, so
        // their rows may be written to the last head's: no branch on the head count, which TornadoVM may fold to a constant
        // that its OpenCL backend cannot emit)
        for (int e = tid; e < HEADS * headDim; e += LOCAL) {
            int h = e / headDim;
            int d = e - h * headDim;
            qs[h * Q_ROW + d] = q.get((seq * numQHeads + TornadoMath.min(tileHead + h, numQHeads - 1)) * headDim + d) * scale;
        }
        if (tid < HEADS) {
            stats[STATS_MAX + tid] = -Float.MAX_VALUE; // finite: exp(old - new) never sees -inf - -inf
            stats[STATS_SUM + tid] = 0f;
        }
        int quad = tid / SLICES;                // step 2: this work-item's four tokens (4 tq ..), four heads (4 hq ..), slice
        int slice = tid - quad * SLICES;
        int tq = quad / HEAD_QUADS;
        int hq = quad - HEAD_QUADS * tq;
        int qBase = 4 * hq * Q_ROW;
        int kBase = 4 * tq * ROW;
        int dBase = slice * D_ROW + 4 * tq * HEADS + 4 * hq;
        int e0 = TornadoMath.min(tid, headDim - 1);                 // step 1: the dims this work-item stages (clamped)
        int e1 = TornadoMath.min(tid + LOCAL, headDim - 1);
        int e2 = TornadoMath.min(tid + 2 * LOCAL, headDim - 1);
        int e3 = TornadoMath.min(tid + 3 * LOCAL, headDim - 1);
        int e4 = TornadoMath.min(tid + 4 * LOCAL, headDim - 1);
        int d0 = tid;                           // step 5: this work-item's value dims
        int d1 = tid + LOCAL;
        int d2 = tid + 2 * LOCAL;
        int d3 = tid + 3 * LOCAL;
        float a00 = 0f; float a01 = 0f; float a02 = 0f; float a03 = 0f;
        float a10 = 0f; float a11 = 0f; float a12 = 0f; float a13 = 0f;
        float a20 = 0f; float a21 = 0f; float a22 = 0f; float a23 = 0f;
        float a30 = 0f; float a31 = 0f; float a32 = 0f; float a33 = 0f;
        float a40 = 0f; float a41 = 0f; float a42 = 0f; float a43 = 0f;
        float a50 = 0f; float a51 = 0f; float a52 = 0f; float a53 = 0f;
        float a60 = 0f; float a61 = 0f; float a62 = 0f; float a63 = 0f;
        float a70 = 0f; float a71 = 0f; float a72 = 0f; float a73 = 0f;

        for (int chunkStart = start; chunkStart < end; chunkStart += CHUNK) {
            // 1. the chunk's rows: the eight rows located, then all forty loads of this work-item issued before the
            //    barrier and before any store (one round trip to memory a chunk, overlapping the other warps' step 5; dims
            //    past the row repeat its last dim, stored again where it already is). Tokens past the end load the
            //    partition's first token; step 3 masks them.
            int r0 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 0 < end ? chunkStart + 0 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r1 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 1 < end ? chunkStart + 1 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r2 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 2 < end ? chunkStart + 2 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r3 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 3 < end ? chunkStart + 3 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r4 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 4 < end ? chunkStart + 4 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r5 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 5 < end ? chunkStart + 5 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r6 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 6 < end ? chunkStart + 6 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            int r7 = PagedDecodeKernels.rowOffset(blockTables, tableRow, chunkStart + 7 < end ? chunkStart + 7 : start, layerBase,
                    headStride, headStride, headDim, blockSize, 0);
            float x00 = PackedCodes.value(pool, dequant, r0 + e0) * kScale;
            float x01 = PackedCodes.value(pool, dequant, r0 + e1) * kScale;
            float x02 = PackedCodes.value(pool, dequant, r0 + e2) * kScale;
            float x03 = PackedCodes.value(pool, dequant, r0 + e3) * kScale;
            float x04 = PackedCodes.value(pool, dequant, r0 + e4) * kScale;
            float x10 = PackedCodes.value(pool, dequant, r1 + e0) * kScale;
            float x11 = PackedCodes.value(pool, dequant, r1 + e1) * kScale;
            float x12 = PackedCodes.value(pool, dequant, r1 + e2) * kScale;
            float x13 = PackedCodes.value(pool, dequant, r1 + e3) * kScale;
            float x14 = PackedCodes.value(pool, dequant, r1 + e4) * kScale;
            float x20 = PackedCodes.value(pool, dequant, r2 + e0) * kScale;
            float x21 = PackedCodes.value(pool, dequant, r2 + e1) * kScale;
            float x22 = PackedCodes.value(pool, dequant, r2 + e2) * kScale;
            float x23 = PackedCodes.value(pool, dequant, r2 + e3) * kScale;
            float x24 = PackedCodes.value(pool, dequant, r2 + e4) * kScale;
            float x30 = PackedCodes.value(pool, dequant, r3 + e0) * kScale;
            float x31 = PackedCodes.value(pool, dequant, r3 + e1) * kScale;
            float x32 = PackedCodes.value(pool, dequant, r3 + e2) * kScale;
            float x33 = PackedCodes.value(pool, dequant, r3 + e3) * kScale;
            float x34 = PackedCodes.value(pool, dequant, r3 + e4) * kScale;
            float x40 = PackedCodes.value(pool, dequant, r4 + e0) * kScale;
            float x41 = PackedCodes.value(pool, dequant, r4 + e1) * kScale;
            float x42 = PackedCodes.value(pool, dequant, r4 + e2) * kScale;
            float x43 = PackedCodes.value(pool, dequant, r4 + e3) * kScale;
            float x44 = PackedCodes.value(pool, dequant, r4 + e4) * kScale;
            float x50 = PackedCodes.value(pool, dequant, r5 + e0) * kScale;
            float x51 = PackedCodes.value(pool, dequant, r5 + e1) * kScale;
            float x52 = PackedCodes.value(pool, dequant, r5 + e2) * kScale;
            float x53 = PackedCodes.value(pool, dequant, r5 + e3) * kScale;
            float x54 = PackedCodes.value(pool, dequant, r5 + e4) * kScale;
            float x60 = PackedCodes.value(pool, dequant, r6 + e0) * kScale;
            float x61 = PackedCodes.value(pool, dequant, r6 + e1) * kScale;
            float x62 = PackedCodes.value(pool, dequant, r6 + e2) * kScale;
            float x63 = PackedCodes.value(pool, dequant, r6 + e3) * kScale;
            float x64 = PackedCodes.value(pool, dequant, r6 + e4) * kScale;
            float x70 = PackedCodes.value(pool, dequant, r7 + e0) * kScale;
            float x71 = PackedCodes.value(pool, dequant, r7 + e1) * kScale;
            float x72 = PackedCodes.value(pool, dequant, r7 + e2) * kScale;
            float x73 = PackedCodes.value(pool, dequant, r7 + e3) * kScale;
            float x74 = PackedCodes.value(pool, dequant, r7 + e4) * kScale;
            ctx.localBarrier();  // the previous chunk's step 5 has read ks and probs
            ks[e0] = x00;
            ks[e1] = x01;
            ks[e2] = x02;
            ks[e3] = x03;
            ks[e4] = x04;
            ks[ROW + e0] = x10;
            ks[ROW + e1] = x11;
            ks[ROW + e2] = x12;
            ks[ROW + e3] = x13;
            ks[ROW + e4] = x14;
            ks[2 * ROW + e0] = x20;
            ks[2 * ROW + e1] = x21;
            ks[2 * ROW + e2] = x22;
            ks[2 * ROW + e3] = x23;
            ks[2 * ROW + e4] = x24;
            ks[3 * ROW + e0] = x30;
            ks[3 * ROW + e1] = x31;
            ks[3 * ROW + e2] = x32;
            ks[3 * ROW + e3] = x33;
            ks[3 * ROW + e4] = x34;
            ks[4 * ROW + e0] = x40;
            ks[4 * ROW + e1] = x41;
            ks[4 * ROW + e2] = x42;
            ks[4 * ROW + e3] = x43;
            ks[4 * ROW + e4] = x44;
            ks[5 * ROW + e0] = x50;
            ks[5 * ROW + e1] = x51;
            ks[5 * ROW + e2] = x52;
            ks[5 * ROW + e3] = x53;
            ks[5 * ROW + e4] = x54;
            ks[6 * ROW + e0] = x60;
            ks[6 * ROW + e1] = x61;
            ks[6 * ROW + e2] = x62;
            ks[6 * ROW + e3] = x63;
            ks[6 * ROW + e4] = x64;
            ks[7 * ROW + e0] = x70;
            ks[7 * ROW + e1] = x71;
            ks[7 * ROW + e2] = x72;
            ks[7 * ROW + e3] = x73;
            ks[7 * ROW + e4] = x74;
            ctx.localBarrier();
            // 2. partial dot products: work-item (tq, hq, slice) sums dims slice, slice + 32, ... of its sixteen (token,
            //    head) pairs, eight local loads per sixteen fmas, into dots[slice][token][head] (a row of 65: no bank conflicts)
            float s00 = 0f; float s01 = 0f; float s02 = 0f; float s03 = 0f;
            float s10 = 0f; float s11 = 0f; float s12 = 0f; float s13 = 0f;
            float s20 = 0f; float s21 = 0f; float s22 = 0f; float s23 = 0f;
            float s30 = 0f; float s31 = 0f; float s32 = 0f; float s33 = 0f;
            for (int d = slice; d < headDim; d += SLICES) {
                float y0 = qs[qBase + d];
                float y1 = qs[qBase + 1 * Q_ROW + d];
                float y2 = qs[qBase + 2 * Q_ROW + d];
                float y3 = qs[qBase + 3 * Q_ROW + d];
                float w0 = ks[kBase + d];
                float w1 = ks[kBase + 1 * ROW + d];
                float w2 = ks[kBase + 2 * ROW + d];
                float w3 = ks[kBase + 3 * ROW + d];
                s00 += w0 * y0; s01 += w0 * y1; s02 += w0 * y2; s03 += w0 * y3;
                s10 += w1 * y0; s11 += w1 * y1; s12 += w1 * y2; s13 += w1 * y3;
                s20 += w2 * y0; s21 += w2 * y1; s22 += w2 * y2; s23 += w2 * y3;
                s30 += w3 * y0; s31 += w3 * y1; s32 += w3 * y2; s33 += w3 * y3;
            }
            dots[dBase] = s00;
            dots[dBase + 1] = s01;
            dots[dBase + 2] = s02;
            dots[dBase + 3] = s03;
            dots[dBase + 1 * HEADS] = s10;
            dots[dBase + 1 * HEADS + 1] = s11;
            dots[dBase + 1 * HEADS + 2] = s12;
            dots[dBase + 1 * HEADS + 3] = s13;
            dots[dBase + 2 * HEADS] = s20;
            dots[dBase + 2 * HEADS + 1] = s21;
            dots[dBase + 2 * HEADS + 2] = s22;
            dots[dBase + 2 * HEADS + 3] = s23;
            dots[dBase + 3 * HEADS] = s30;
            dots[dBase + 3 * HEADS + 1] = s31;
            dots[dBase + 3 * HEADS + 2] = s32;
            dots[dBase + 3 * HEADS + 3] = s33;
            ctx.localBarrier();
            // 3. work-item (token tid / 8, head tid % 8) < 64 adds its pair's 32 slices in four independent sums, caps,
            //    biases and masks the score
            if (tid < CHUNK * HEADS) {
                int t = tid / HEADS;
                int h = tid - t * HEADS;
                float s = 0f;
                float sb = 0f;
                float sc = 0f;
                float sd = 0f;
                for (int at = tid; at < SLICES * D_ROW; at += 4 * D_ROW) {
                    s += dots[at];
                    sb += dots[at + D_ROW];
                    sc += dots[at + 2 * D_ROW];
                    sd += dots[at + 3 * D_ROW];
                }
                s = (s + sb) + (sc + sd);
                s = PagedDecodeKernels.softCap(s, cap);
                s = s + PagedDecodeKernels.alibiBias(partials, alibi, TornadoMath.min(tileHead + h, numQHeads - 1),
                        chunkStart + t, len - 1);
                if (chunkStart + t >= end) {  // finite: see PagedDecodeKernels.MASKED
                    s = PagedDecodeKernels.MASKED;
                }
                probs[tid] = s;
            }
            ctx.localBarrier();
            // 4. work-item h < 8: head h's chunk max, probabilities and running sum
            if (tid < HEADS) {
                float oldMax = stats[STATS_MAX + tid];
                float newMax = oldMax;
                for (int t = 0; t < CHUNK; t++) {
                    newMax = TornadoMath.max(newMax, probs[t * HEADS + tid]);
                }
                float rescale = TornadoMath.exp(oldMax - newMax);
                float sum = stats[STATS_SUM + tid] * rescale;
                for (int t = 0; t < CHUNK; t++) {
                    float p = TornadoMath.exp(probs[t * HEADS + tid] - newMax);
                    probs[t * HEADS + tid] = p;
                    sum += p;
                }
                stats[STATS_SUM + tid] = sum;
                stats[STATS_MAX + tid] = newMax;
                stats[STATS_RESCALE + tid] = rescale;
            }
            ctx.localBarrier();
            // 5. rescale to the new running max, then p * v for the eight heads at this work-item's four value dims
            float c0 = stats[STATS_RESCALE + 0];
            float c1 = stats[STATS_RESCALE + 1];
            float c2 = stats[STATS_RESCALE + 2];
            float c3 = stats[STATS_RESCALE + 3];
            float c4 = stats[STATS_RESCALE + 4];
            float c5 = stats[STATS_RESCALE + 5];
            float c6 = stats[STATS_RESCALE + 6];
            float c7 = stats[STATS_RESCALE + 7];
            a00 = a00 * c0; a01 = a01 * c0; a02 = a02 * c0; a03 = a03 * c0;
            a10 = a10 * c1; a11 = a11 * c1; a12 = a12 * c1; a13 = a13 * c1;
            a20 = a20 * c2; a21 = a21 * c2; a22 = a22 * c2; a23 = a23 * c2;
            a30 = a30 * c3; a31 = a31 * c3; a32 = a32 * c3; a33 = a33 * c3;
            a40 = a40 * c4; a41 = a41 * c4; a42 = a42 * c4; a43 = a43 * c4;
            a50 = a50 * c5; a51 = a51 * c5; a52 = a52 * c5; a53 = a53 * c5;
            a60 = a60 * c6; a61 = a61 * c6; a62 = a62 * c6; a63 = a63 * c6;
            a70 = a70 * c7; a71 = a71 * c7; a72 = a72 * c7; a73 = a73 * c7;
            for (int t = 0; t < CHUNK; t++) {
                float p0 = probs[t * HEADS + 0];
                float p1 = probs[t * HEADS + 1];
                float p2 = probs[t * HEADS + 2];
                float p3 = probs[t * HEADS + 3];
                float p4 = probs[t * HEADS + 4];
                float p5 = probs[t * HEADS + 5];
                float p6 = probs[t * HEADS + 6];
                float p7 = probs[t * HEADS + 7];
                float v0 = ks[t * ROW + d0];
                float v1 = ks[t * ROW + d1];
                float v2 = ks[t * ROW + d2];
                float v3 = ks[t * ROW + d3];
                a00 = a00 + p0 * v0; a01 = a01 + p0 * v1; a02 = a02 + p0 * v2; a03 = a03 + p0 * v3;
                a10 = a10 + p1 * v0; a11 = a11 + p1 * v1; a12 = a12 + p1 * v2; a13 = a13 + p1 * v3;
                a20 = a20 + p2 * v0; a21 = a21 + p2 * v1; a22 = a22 + p2 * v2; a23 = a23 + p2 * v3;
                a30 = a30 + p3 * v0; a31 = a31 + p3 * v1; a32 = a32 + p3 * v2; a33 = a33 + p3 * v3;
                a40 = a40 + p4 * v0; a41 = a41 + p4 * v1; a42 = a42 + p4 * v2; a43 = a43 + p4 * v3;
                a50 = a50 + p5 * v0; a51 = a51 + p5 * v1; a52 = a52 + p5 * v2; a53 = a53 + p5 * v3;
                a60 = a60 + p6 * v0; a61 = a61 + p6 * v1; a62 = a62 + p6 * v2; a63 = a63 + p6 * v3;
                a70 = a70 + p7 * v0; a71 = a71 + p7 * v1; a72 = a72 + p7 * v2; a73 = a73 + p7 * v3;
            }
        }
        // 6. the tile's rows: normalised output, or the partition's sums, max and sum
        ctx.localBarrier();
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 0, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a00, a01, a02, a03, stats[STATS_MAX + 0], stats[STATS_SUM + 0], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 1, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a10, a11, a12, a13, stats[STATS_MAX + 1], stats[STATS_SUM + 1], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 2, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a20, a21, a22, a23, stats[STATS_MAX + 2], stats[STATS_SUM + 2], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 3, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a30, a31, a32, a33, stats[STATS_MAX + 3], stats[STATS_SUM + 3], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 4, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a40, a41, a42, a43, stats[STATS_MAX + 4], stats[STATS_SUM + 4], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 5, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a50, a51, a52, a53, stats[STATS_MAX + 5], stats[STATS_SUM + 5], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 6, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a60, a61, a62, a63, stats[STATS_MAX + 6], stats[STATS_SUM + 6], writeFinal);
        writeRow(out, partials, params, seq, TornadoMath.min(tileHead + 7, numQHeads - 1), part, maxParts, numQHeads, valueDim,
                d0, d1, d2, d3, a70, a71, a72, a73, stats[STATS_MAX + 7], stats[STATS_SUM + 7], writeFinal);
    }

    /**
     * Query head {@code head}'s four value dims of this work-item: the normalised output of a fused step, or the
     * partition's unnormalised sums (and, once per row, its max and sum) of a split one. Dims at or past {@code valueDim}
     * are not written.
     */
    private static void writeRow(FloatArray out, FloatArray partials, IntArray params, int seq, int head, int part, int maxParts,
                                 int numQHeads, int valueDim, int d0, int d1, int d2, int d3, float a0, float a1, float a2,
                                 float a3, float max, float sum, int writeFinal) {
        if (writeFinal != 0) {
            float inv = 1f / PagedDecodeKernels.finalSum(sum, max, partials, params, head);
            int o = (seq * numQHeads + head) * valueDim;
            if (d0 < valueDim) {
                out.set(o + d0, a0 * inv);
            }
            if (d1 < valueDim) {
                out.set(o + d1, a1 * inv);
            }
            if (d2 < valueDim) {
                out.set(o + d2, a2 * inv);
            }
            if (d3 < valueDim) {
                out.set(o + d3, a3 * inv);
            }
        } else {
            int p = ((seq * numQHeads + head) * maxParts + part) * (valueDim + 2);
            if (d0 < valueDim) {
                partials.set(p + d0, a0);
            }
            if (d1 < valueDim) {
                partials.set(p + d1, a1);
            }
            if (d2 < valueDim) {
                partials.set(p + d2, a2);
            }
            if (d3 < valueDim) {
                partials.set(p + d3, a3);
            }
            if (d0 == 0) {
                partials.set(p + valueDim, max);
                partials.set(p + valueDim + 1, sum);
            }
        }
    }
}
