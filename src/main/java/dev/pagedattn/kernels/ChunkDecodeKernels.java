package dev.pagedattn.kernels;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.vectors.Half2;

/**
 * Decode attention in chunks of tokens, built for TornadoVM's CUDA (NVRTC) backend: wide loads, and
 * every softmax step done once per (token, head) instead of once per work-item.
 *
 * <p>Same arguments, grid (one work-group per sequence, KV head and partition) and partial format
 * as the other attention kernels (see {@link PagedDecodeKernels}). A work-group walks its partition
 * in chunks of {@code 8 * rows} tokens; each chunk takes three steps separated by barriers:
 * <ol>
 *   <li>every work-item loads 8 dims of two token rows at a time from the K pool and writes its
 *       partial dot products with four query heads to local memory;</li>
 *   <li>each (token, head) score is summed from its partials,
 *       the chunk's max per head moves the running max, and the probabilities go back to local memory
 *       (one {@code exp} per token and head, spread over the work-group);</li>
 *   <li>every work-item rescales its accumulators once and adds {@code p * v} for its 8 dims of the
 *       same rows, read from the V pool.</li>
 * </ol>
 * No warp operations, so the kernel compiles on every backend. The steps that touch only local
 * memory are written out in each body rather than shared through helpers: TornadoVM 5.2 addresses
 * a local array handed to a helper method as if it were a native array (byte offsets past a
 * header), which writes outside it. Three twins differ only in how they
 * load a pair of dims: {@link #attentionF16x2} with one 32-bit {@code HalfFloatArray.getHalf2} load
 * (CUDA backend only: the PTX and OpenCL backends of TornadoVM 5.2 cannot compile it),
 * {@link #attentionF16} with two 16-bit loads, {@link #attentionF32} over fp32 pools; a test keeps
 * the bodies identical apart from those loads.
 *
 * <pre>
 *  work-item -> (slot, quad, lane): lanes = headDim / 8, quads = ceil(groupSize / 4), rows = 128 / (quads * lanes)
 *    tid = (slot * quads + quad) * lanes + lane
 *    lane owns dims 2*lane + 2*lanes*j + {0, 1}, j = 0..3, of heads 4*quad .. 4*quad+3
 *    slot owns the chunk's token rows slot, slot + rows, ..., slot + 7 * rows
 * </pre>
 */
public final class ChunkDecodeKernels {
    /** Query heads per work-item. */
    private static final int HPT = 4;
    /** Local size: four warps. */
    public static final int LOCAL = 128;
    /**
     * Token rows each work-item loads per chunk, {@code -Dpagedattn.tornado.chunkRows} (2, 4 or 8;
     * default 8). TornadoVM reads it when it compiles the kernel; the local arrays are sized for 8.
     */
    public static final int ROWS_PER_THREAD = chunkRows(Integer.getInteger("pagedattn.tornado.chunkRows", 8));
    /** [chunk][heads][lanes + 1] = 4096 (lanes + 1) / lanes floats, at most 6144 (lanes >= 2). */
    static final int DOTS_SIZE = 6144;
    /** [chunk][heads] = 4096 / lanes floats. */
    static final int PROBS_SIZE = 2048;
    /** stats: [LOCAL] each work-item's max score of the current chunk. */
    private static final int STATS_CHUNK_MAX = 0;
    /** stats: [LOCAL] each work-item's running sum of probabilities (its head is tid % heads). */
    private static final int STATS_SUM = LOCAL;
    /** stats: [LOCAL] each work-item's copy of its head's running max. */
    private static final int STATS_MAX = 2 * LOCAL;
    /** stats: [heads] this chunk's rescale factor exp(oldMax - newMax) per head. */
    private static final int STATS_RESCALE = 3 * LOCAL;
    static final int STATS_SIZE = 3 * LOCAL + PagedDecodeKernels.MAX_HEADS_PER_TILE;

    private ChunkDecodeKernels() {
    }

    private static int chunkRows(int rows) {
        if (rows != 2 && rows != 4 && rows != 8) {
            throw new IllegalArgumentException("pagedattn.tornado.chunkRows=" + rows + " is not 2, 4 or 8");
        }
        return rows;
    }

    /** Query groups of 1 to 8 heads; head dims 16, 32, 64, 128 or 256 (headDim / 8 a power of two >= 2). */
    public static boolean supports(int groupSize, int headDim) {
        int lanes = headDim / 8;
        return groupSize >= 1 && groupSize <= PagedDecodeKernels.MAX_HEADS_PER_TILE && headDim % 8 == 0
                && lanes >= 2 && lanes <= 32 && Integer.bitCount(lanes) == 1;
    }

    public static void attentionF16x2(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;                 // work-items per token row and quad: 8 dims (4 pairs) each
        int quads = (groupSize + HPT - 1) / HPT;  // units of HPT query heads per work-item
        int heads = HPT * quads;                 // query heads, padded to whole units
        int rowThreads = quads * lanes;
        int rows = LOCAL / rowThreads;           // token rows one pass covers
        int chunk = ROWS_PER_THREAD * rows;      // tokens per chunk
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;             // token row of this work-item within a pass
        int quad = (tid - slot * rowThreads) / lanes;
        int lane = tid - slot * rowThreads - quad * lanes;
        int gid = ctx.groupIdx;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int part = PagedDecodeKernels.partitionOf(gid, maxParts);
        int kvHead = PagedDecodeKernels.kvHeadOf(gid, maxParts, numKvHeads);
        int seq = PagedDecodeKernels.seqOf(gid, maxParts, numKvHeads);
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
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block

        float[] dots = ctx.allocateFloatLocalArray(DOTS_SIZE);    // [chunk][heads][lanes + 1] partial dots; at the end [rows][heads][headDim]
        float[] probs = ctx.allocateFloatLocalArray(PROBS_SIZE);  // [chunk][heads] scores, then probabilities
        float[] stats = ctx.allocateFloatLocalArray(STATS_SIZE);  // see STATS_* offsets
        stats[STATS_SUM + tid] = 0f;                 // this work-item's running sum of probabilities
        stats[STATS_MAX + tid] = -Float.MAX_VALUE;   // its copy of its head's running max; finite: exp(old - new) never sees -inf - -inf

        // this work-item's query values: heads 4*quad .. 4*quad+3 of the KV head's group, dims
        // 2*lane + 2*lanes*j + {0, 1} for j = 0..3, pre-scaled; heads past the group read head 0 with scale 0
        boolean validA = HPT * quad + 0 < groupSize;
        float sa = validA ? scale : 0f;
        int qa = (seq * numKvHeads * groupSize + kvHead * groupSize + (validA ? HPT * quad + 0 : 0)) * headDim + 2 * lane;
        float qa0 = q.get(qa) * sa;
        float qa1 = q.get(qa + 1) * sa;
        float qa2 = q.get(qa + 2 * lanes) * sa;
        float qa3 = q.get(qa + 2 * lanes + 1) * sa;
        float qa4 = q.get(qa + 4 * lanes) * sa;
        float qa5 = q.get(qa + 4 * lanes + 1) * sa;
        float qa6 = q.get(qa + 6 * lanes) * sa;
        float qa7 = q.get(qa + 6 * lanes + 1) * sa;
        boolean validB = HPT * quad + 1 < groupSize;
        float sb = validB ? scale : 0f;
        int qb = (seq * numKvHeads * groupSize + kvHead * groupSize + (validB ? HPT * quad + 1 : 0)) * headDim + 2 * lane;
        float qb0 = q.get(qb) * sb;
        float qb1 = q.get(qb + 1) * sb;
        float qb2 = q.get(qb + 2 * lanes) * sb;
        float qb3 = q.get(qb + 2 * lanes + 1) * sb;
        float qb4 = q.get(qb + 4 * lanes) * sb;
        float qb5 = q.get(qb + 4 * lanes + 1) * sb;
        float qb6 = q.get(qb + 6 * lanes) * sb;
        float qb7 = q.get(qb + 6 * lanes + 1) * sb;
        boolean validC = HPT * quad + 2 < groupSize;
        float sc = validC ? scale : 0f;
        int qc = (seq * numKvHeads * groupSize + kvHead * groupSize + (validC ? HPT * quad + 2 : 0)) * headDim + 2 * lane;
        float qc0 = q.get(qc) * sc;
        float qc1 = q.get(qc + 1) * sc;
        float qc2 = q.get(qc + 2 * lanes) * sc;
        float qc3 = q.get(qc + 2 * lanes + 1) * sc;
        float qc4 = q.get(qc + 4 * lanes) * sc;
        float qc5 = q.get(qc + 4 * lanes + 1) * sc;
        float qc6 = q.get(qc + 6 * lanes) * sc;
        float qc7 = q.get(qc + 6 * lanes + 1) * sc;
        boolean validD = HPT * quad + 3 < groupSize;
        float sd = validD ? scale : 0f;
        int qd = (seq * numKvHeads * groupSize + kvHead * groupSize + (validD ? HPT * quad + 3 : 0)) * headDim + 2 * lane;
        float qd0 = q.get(qd) * sd;
        float qd1 = q.get(qd + 1) * sd;
        float qd2 = q.get(qd + 2 * lanes) * sd;
        float qd3 = q.get(qd + 2 * lanes + 1) * sd;
        float qd4 = q.get(qd + 4 * lanes) * sd;
        float qd5 = q.get(qd + 4 * lanes + 1) * sd;
        float qd6 = q.get(qd + 6 * lanes) * sd;
        float qd7 = q.get(qd + 6 * lanes + 1) * sd;
        float aa0 = 0f; float aa1 = 0f; float aa2 = 0f; float aa3 = 0f; float aa4 = 0f; float aa5 = 0f; float aa6 = 0f; float aa7 = 0f;
        float ab0 = 0f; float ab1 = 0f; float ab2 = 0f; float ab3 = 0f; float ab4 = 0f; float ab5 = 0f; float ab6 = 0f; float ab7 = 0f;
        float ac0 = 0f; float ac1 = 0f; float ac2 = 0f; float ac3 = 0f; float ac4 = 0f; float ac5 = 0f; float ac6 = 0f; float ac7 = 0f;
        float ad0 = 0f; float ad1 = 0f; float ad2 = 0f; float ad3 = 0f; float ad4 = 0f; float ad5 = 0f; float ad6 = 0f; float ad7 = 0f;

        for (int chunkStart = start; chunkStart < end; chunkStart += chunk) {
            // 1. partial dots of this work-item's 8 dims with four heads, two token rows at a time
            //    (tokens past the end read the partition's first token; the softmax masks them)
            for (int i = 0; i < ROWS_PER_THREAD; i += 2) {
                int rA = i * rows + slot;
                int rB = rA + rows;
                int tA = chunkStart + rA < end ? chunkStart + rA : start;
                int tB = chunkStart + rB < end ? chunkStart + rB : start;
                int kA = PagedDecodeKernels.rowOffset(blockTables, tableRow, tA, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                int kB = PagedDecodeKernels.rowOffset(blockTables, tableRow, tB, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                Half2 xh0 = kPool.getHalf2(kA);
                Half2 xh1 = kPool.getHalf2(kA + 2 * lanes);
                Half2 xh2 = kPool.getHalf2(kA + 4 * lanes);
                Half2 xh3 = kPool.getHalf2(kA + 6 * lanes);
                float x0 = Half2.lowFloat(xh0);
                float x1 = Half2.highFloat(xh0);
                float x2 = Half2.lowFloat(xh1);
                float x3 = Half2.highFloat(xh1);
                float x4 = Half2.lowFloat(xh2);
                float x5 = Half2.highFloat(xh2);
                float x6 = Half2.lowFloat(xh3);
                float x7 = Half2.highFloat(xh3);
                Half2 yh0 = kPool.getHalf2(kB);
                Half2 yh1 = kPool.getHalf2(kB + 2 * lanes);
                Half2 yh2 = kPool.getHalf2(kB + 4 * lanes);
                Half2 yh3 = kPool.getHalf2(kB + 6 * lanes);
                float y0 = Half2.lowFloat(yh0);
                float y1 = Half2.highFloat(yh0);
                float y2 = Half2.lowFloat(yh1);
                float y3 = Half2.highFloat(yh1);
                float y4 = Half2.lowFloat(yh2);
                float y5 = Half2.highFloat(yh2);
                float y6 = Half2.lowFloat(yh3);
                float y7 = Half2.highFloat(yh3);
                dots[(rA * heads + HPT * quad + 0) * (lanes + 1) + lane] = qa0 * x0 + qa1 * x1 + qa2 * x2 + qa3 * x3 + qa4 * x4 + qa5 * x5 + qa6 * x6 + qa7 * x7;
                dots[(rB * heads + HPT * quad + 0) * (lanes + 1) + lane] = qa0 * y0 + qa1 * y1 + qa2 * y2 + qa3 * y3 + qa4 * y4 + qa5 * y5 + qa6 * y6 + qa7 * y7;
                dots[(rA * heads + HPT * quad + 1) * (lanes + 1) + lane] = qb0 * x0 + qb1 * x1 + qb2 * x2 + qb3 * x3 + qb4 * x4 + qb5 * x5 + qb6 * x6 + qb7 * x7;
                dots[(rB * heads + HPT * quad + 1) * (lanes + 1) + lane] = qb0 * y0 + qb1 * y1 + qb2 * y2 + qb3 * y3 + qb4 * y4 + qb5 * y5 + qb6 * y6 + qb7 * y7;
                dots[(rA * heads + HPT * quad + 2) * (lanes + 1) + lane] = qc0 * x0 + qc1 * x1 + qc2 * x2 + qc3 * x3 + qc4 * x4 + qc5 * x5 + qc6 * x6 + qc7 * x7;
                dots[(rB * heads + HPT * quad + 2) * (lanes + 1) + lane] = qc0 * y0 + qc1 * y1 + qc2 * y2 + qc3 * y3 + qc4 * y4 + qc5 * y5 + qc6 * y6 + qc7 * y7;
                dots[(rA * heads + HPT * quad + 3) * (lanes + 1) + lane] = qd0 * x0 + qd1 * x1 + qd2 * x2 + qd3 * x3 + qd4 * x4 + qd5 * x5 + qd6 * x6 + qd7 * x7;
                dots[(rB * heads + HPT * quad + 3) * (lanes + 1) + lane] = qd0 * y0 + qd1 * y1 + qd2 * y2 + qd3 * y3 + qd4 * y4 + qd5 * y5 + qd6 * y6 + qd7 * y7;
            }
            ctx.localBarrier();
            // 2. scores, chunk max, probabilities: work-item tid owns the (row, head) pairs tid, tid + LOCAL,
            //    ... of head tid % heads; rows at or past the end score MASKED; one exp per pair
            float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)
            float chunkMax = PagedDecodeKernels.MASKED;  // finite, as the masked scores
            for (int idx = tid; idx < chunk * heads; idx += LOCAL) {
                float s = 0f;
                for (int l = 0; l < lanes; l++) {
                    s += dots[idx * (lanes + 1) + l];
                }
                s = PagedDecodeKernels.softCap(s, cap);
                s = s + PagedDecodeKernels.alibiBias(partials, params.get(DecodeParams.ALIBI),   // ALiBi
                        kvHead * groupSize + TornadoMath.min(idx % heads, groupSize - 1), chunkStart + idx / heads, len - 1);
                if (chunkStart + idx / heads >= end) {  // finite: see PagedDecodeKernels.MASKED
                    s = PagedDecodeKernels.MASKED;
                }
                probs[idx] = s;
                chunkMax = TornadoMath.max(chunkMax, s);
            }
            stats[STATS_CHUNK_MAX + tid] = chunkMax;
            ctx.localBarrier();
            float oldMax = stats[STATS_MAX + tid];
            float newMax = oldMax;
            for (int j = tid % heads; j < LOCAL; j += heads) {
                newMax = TornadoMath.max(newMax, stats[STATS_CHUNK_MAX + j]);
            }
            float rescale = TornadoMath.exp(oldMax - newMax);
            float sum = stats[STATS_SUM + tid] * rescale;
            for (int idx = tid; idx < chunk * heads; idx += LOCAL) {
                float p = TornadoMath.exp(probs[idx] - newMax);
                probs[idx] = p;
                sum += p;
            }
            stats[STATS_SUM + tid] = sum;
            stats[STATS_MAX + tid] = newMax;
            if (tid < heads) {
                stats[STATS_RESCALE + tid] = rescale;
            }
            ctx.localBarrier();
            // 3. rescale to the new running max, then V weighted by the probabilities, two rows at a time
            float ca = stats[STATS_RESCALE + HPT * quad + 0];
            float cb = stats[STATS_RESCALE + HPT * quad + 1];
            float cc = stats[STATS_RESCALE + HPT * quad + 2];
            float cd = stats[STATS_RESCALE + HPT * quad + 3];
            aa0 = aa0 * ca;
            aa1 = aa1 * ca;
            aa2 = aa2 * ca;
            aa3 = aa3 * ca;
            aa4 = aa4 * ca;
            aa5 = aa5 * ca;
            aa6 = aa6 * ca;
            aa7 = aa7 * ca;
            ab0 = ab0 * cb;
            ab1 = ab1 * cb;
            ab2 = ab2 * cb;
            ab3 = ab3 * cb;
            ab4 = ab4 * cb;
            ab5 = ab5 * cb;
            ab6 = ab6 * cb;
            ab7 = ab7 * cb;
            ac0 = ac0 * cc;
            ac1 = ac1 * cc;
            ac2 = ac2 * cc;
            ac3 = ac3 * cc;
            ac4 = ac4 * cc;
            ac5 = ac5 * cc;
            ac6 = ac6 * cc;
            ac7 = ac7 * cc;
            ad0 = ad0 * cd;
            ad1 = ad1 * cd;
            ad2 = ad2 * cd;
            ad3 = ad3 * cd;
            ad4 = ad4 * cd;
            ad5 = ad5 * cd;
            ad6 = ad6 * cd;
            ad7 = ad7 * cd;
            for (int i = 0; i < ROWS_PER_THREAD; i += 2) {
                int rA = i * rows + slot;
                int rB = rA + rows;
                int tA = chunkStart + rA < end ? chunkStart + rA : start;
                int tB = chunkStart + rB < end ? chunkStart + rB : start;
                int vA = PagedDecodeKernels.rowOffset(blockTables, tableRow, tA, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                int vB = PagedDecodeKernels.rowOffset(blockTables, tableRow, tB, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                Half2 xh0 = vPool.getHalf2(vA);
                Half2 xh1 = vPool.getHalf2(vA + 2 * lanes);
                Half2 xh2 = vPool.getHalf2(vA + 4 * lanes);
                Half2 xh3 = vPool.getHalf2(vA + 6 * lanes);
                float x0 = Half2.lowFloat(xh0);
                float x1 = Half2.highFloat(xh0);
                float x2 = Half2.lowFloat(xh1);
                float x3 = Half2.highFloat(xh1);
                float x4 = Half2.lowFloat(xh2);
                float x5 = Half2.highFloat(xh2);
                float x6 = Half2.lowFloat(xh3);
                float x7 = Half2.highFloat(xh3);
                Half2 yh0 = vPool.getHalf2(vB);
                Half2 yh1 = vPool.getHalf2(vB + 2 * lanes);
                Half2 yh2 = vPool.getHalf2(vB + 4 * lanes);
                Half2 yh3 = vPool.getHalf2(vB + 6 * lanes);
                float y0 = Half2.lowFloat(yh0);
                float y1 = Half2.highFloat(yh0);
                float y2 = Half2.lowFloat(yh1);
                float y3 = Half2.highFloat(yh1);
                float y4 = Half2.lowFloat(yh2);
                float y5 = Half2.highFloat(yh2);
                float y6 = Half2.lowFloat(yh3);
                float y7 = Half2.highFloat(yh3);
                float pa = probs[rA * heads + HPT * quad + 0];
                float oa = probs[rB * heads + HPT * quad + 0];
                float pb = probs[rA * heads + HPT * quad + 1];
                float ob = probs[rB * heads + HPT * quad + 1];
                float pc = probs[rA * heads + HPT * quad + 2];
                float oc = probs[rB * heads + HPT * quad + 2];
                float pd = probs[rA * heads + HPT * quad + 3];
                float od = probs[rB * heads + HPT * quad + 3];
                aa0 = aa0 + pa * x0 + oa * y0;
                aa1 = aa1 + pa * x1 + oa * y1;
                aa2 = aa2 + pa * x2 + oa * y2;
                aa3 = aa3 + pa * x3 + oa * y3;
                aa4 = aa4 + pa * x4 + oa * y4;
                aa5 = aa5 + pa * x5 + oa * y5;
                aa6 = aa6 + pa * x6 + oa * y6;
                aa7 = aa7 + pa * x7 + oa * y7;
                ab0 = ab0 + pb * x0 + ob * y0;
                ab1 = ab1 + pb * x1 + ob * y1;
                ab2 = ab2 + pb * x2 + ob * y2;
                ab3 = ab3 + pb * x3 + ob * y3;
                ab4 = ab4 + pb * x4 + ob * y4;
                ab5 = ab5 + pb * x5 + ob * y5;
                ab6 = ab6 + pb * x6 + ob * y6;
                ab7 = ab7 + pb * x7 + ob * y7;
                ac0 = ac0 + pc * x0 + oc * y0;
                ac1 = ac1 + pc * x1 + oc * y1;
                ac2 = ac2 + pc * x2 + oc * y2;
                ac3 = ac3 + pc * x3 + oc * y3;
                ac4 = ac4 + pc * x4 + oc * y4;
                ac5 = ac5 + pc * x5 + oc * y5;
                ac6 = ac6 + pc * x6 + oc * y6;
                ac7 = ac7 + pc * x7 + oc * y7;
                ad0 = ad0 + pd * x0 + od * y0;
                ad1 = ad1 + pd * x1 + od * y1;
                ad2 = ad2 + pd * x2 + od * y2;
                ad3 = ad3 + pd * x3 + od * y3;
                ad4 = ad4 + pd * x4 + od * y4;
                ad5 = ad5 + pd * x5 + od * y5;
                ad6 = ad6 + pd * x6 + od * y6;
                ad7 = ad7 + pd * x7 + od * y7;
            }
        }
        // 4. every row slot's accumulators to local memory, then sum the slots and write out
        ctx.localBarrier();
        int wa = (slot * heads + HPT * quad + 0) * headDim + 2 * lane;
        dots[wa] = aa0;
        dots[wa + 1] = aa1;
        dots[wa + 2 * lanes] = aa2;
        dots[wa + 2 * lanes + 1] = aa3;
        dots[wa + 4 * lanes] = aa4;
        dots[wa + 4 * lanes + 1] = aa5;
        dots[wa + 6 * lanes] = aa6;
        dots[wa + 6 * lanes + 1] = aa7;
        int wb = (slot * heads + HPT * quad + 1) * headDim + 2 * lane;
        dots[wb] = ab0;
        dots[wb + 1] = ab1;
        dots[wb + 2 * lanes] = ab2;
        dots[wb + 2 * lanes + 1] = ab3;
        dots[wb + 4 * lanes] = ab4;
        dots[wb + 4 * lanes + 1] = ab5;
        dots[wb + 6 * lanes] = ab6;
        dots[wb + 6 * lanes + 1] = ab7;
        int wc = (slot * heads + HPT * quad + 2) * headDim + 2 * lane;
        dots[wc] = ac0;
        dots[wc + 1] = ac1;
        dots[wc + 2 * lanes] = ac2;
        dots[wc + 2 * lanes + 1] = ac3;
        dots[wc + 4 * lanes] = ac4;
        dots[wc + 4 * lanes + 1] = ac5;
        dots[wc + 6 * lanes] = ac6;
        dots[wc + 6 * lanes + 1] = ac7;
        int wd = (slot * heads + HPT * quad + 3) * headDim + 2 * lane;
        dots[wd] = ad0;
        dots[wd + 1] = ad1;
        dots[wd + 2 * lanes] = ad2;
        dots[wd + 2 * lanes + 1] = ad3;
        dots[wd + 4 * lanes] = ad4;
        dots[wd + 4 * lanes + 1] = ad5;
        dots[wd + 6 * lanes] = ad6;
        dots[wd + 6 * lanes + 1] = ad7;
        ctx.localBarrier();
        // 5. sum the row slots and the work-items' probability sums; write the normalised output, or this
        //    partition's unnormalised output, max and sum
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        int numQHeads = numKvHeads * groupSize;
        for (int idx = tid; idx < groupSize * headDim; idx += LOCAL) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            float o = 0f;
            for (int r = 0; r < rows; r++) {
                o += dots[(r * heads + hh) * headDim + d];
            }
            float total = 0f;
            for (int j = hh; j < LOCAL; j += heads) {
                total += stats[STATS_SUM + j];
            }
            int h = kvHead * groupSize + hh;
            if (writeFinal != 0) {
                out.set((seq * numQHeads + h) * headDim + d, o / PagedDecodeKernels.finalSum(total, stats[STATS_MAX + hh], partials, params, h));
            } else {
                int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                partials.set(pBase + d, o);
                if (d == 0) {
                    partials.set(pBase + headDim, stats[STATS_MAX + hh]);
                    partials.set(pBase + headDim + 1, total);
                }
            }
        }
    }

    public static void attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;                 // work-items per token row and quad: 8 dims (4 pairs) each
        int quads = (groupSize + HPT - 1) / HPT;  // units of HPT query heads per work-item
        int heads = HPT * quads;                 // query heads, padded to whole units
        int rowThreads = quads * lanes;
        int rows = LOCAL / rowThreads;           // token rows one pass covers
        int chunk = ROWS_PER_THREAD * rows;      // tokens per chunk
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;             // token row of this work-item within a pass
        int quad = (tid - slot * rowThreads) / lanes;
        int lane = tid - slot * rowThreads - quad * lanes;
        int gid = ctx.groupIdx;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int part = PagedDecodeKernels.partitionOf(gid, maxParts);
        int kvHead = PagedDecodeKernels.kvHeadOf(gid, maxParts, numKvHeads);
        int seq = PagedDecodeKernels.seqOf(gid, maxParts, numKvHeads);
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
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block

        float[] dots = ctx.allocateFloatLocalArray(DOTS_SIZE);    // [chunk][heads][lanes + 1] partial dots; at the end [rows][heads][headDim]
        float[] probs = ctx.allocateFloatLocalArray(PROBS_SIZE);  // [chunk][heads] scores, then probabilities
        float[] stats = ctx.allocateFloatLocalArray(STATS_SIZE);  // see STATS_* offsets
        stats[STATS_SUM + tid] = 0f;                 // this work-item's running sum of probabilities
        stats[STATS_MAX + tid] = -Float.MAX_VALUE;   // its copy of its head's running max; finite: exp(old - new) never sees -inf - -inf

        // this work-item's query values: heads 4*quad .. 4*quad+3 of the KV head's group, dims
        // 2*lane + 2*lanes*j + {0, 1} for j = 0..3, pre-scaled; heads past the group read head 0 with scale 0
        boolean validA = HPT * quad + 0 < groupSize;
        float sa = validA ? scale : 0f;
        int qa = (seq * numKvHeads * groupSize + kvHead * groupSize + (validA ? HPT * quad + 0 : 0)) * headDim + 2 * lane;
        float qa0 = q.get(qa) * sa;
        float qa1 = q.get(qa + 1) * sa;
        float qa2 = q.get(qa + 2 * lanes) * sa;
        float qa3 = q.get(qa + 2 * lanes + 1) * sa;
        float qa4 = q.get(qa + 4 * lanes) * sa;
        float qa5 = q.get(qa + 4 * lanes + 1) * sa;
        float qa6 = q.get(qa + 6 * lanes) * sa;
        float qa7 = q.get(qa + 6 * lanes + 1) * sa;
        boolean validB = HPT * quad + 1 < groupSize;
        float sb = validB ? scale : 0f;
        int qb = (seq * numKvHeads * groupSize + kvHead * groupSize + (validB ? HPT * quad + 1 : 0)) * headDim + 2 * lane;
        float qb0 = q.get(qb) * sb;
        float qb1 = q.get(qb + 1) * sb;
        float qb2 = q.get(qb + 2 * lanes) * sb;
        float qb3 = q.get(qb + 2 * lanes + 1) * sb;
        float qb4 = q.get(qb + 4 * lanes) * sb;
        float qb5 = q.get(qb + 4 * lanes + 1) * sb;
        float qb6 = q.get(qb + 6 * lanes) * sb;
        float qb7 = q.get(qb + 6 * lanes + 1) * sb;
        boolean validC = HPT * quad + 2 < groupSize;
        float sc = validC ? scale : 0f;
        int qc = (seq * numKvHeads * groupSize + kvHead * groupSize + (validC ? HPT * quad + 2 : 0)) * headDim + 2 * lane;
        float qc0 = q.get(qc) * sc;
        float qc1 = q.get(qc + 1) * sc;
        float qc2 = q.get(qc + 2 * lanes) * sc;
        float qc3 = q.get(qc + 2 * lanes + 1) * sc;
        float qc4 = q.get(qc + 4 * lanes) * sc;
        float qc5 = q.get(qc + 4 * lanes + 1) * sc;
        float qc6 = q.get(qc + 6 * lanes) * sc;
        float qc7 = q.get(qc + 6 * lanes + 1) * sc;
        boolean validD = HPT * quad + 3 < groupSize;
        float sd = validD ? scale : 0f;
        int qd = (seq * numKvHeads * groupSize + kvHead * groupSize + (validD ? HPT * quad + 3 : 0)) * headDim + 2 * lane;
        float qd0 = q.get(qd) * sd;
        float qd1 = q.get(qd + 1) * sd;
        float qd2 = q.get(qd + 2 * lanes) * sd;
        float qd3 = q.get(qd + 2 * lanes + 1) * sd;
        float qd4 = q.get(qd + 4 * lanes) * sd;
        float qd5 = q.get(qd + 4 * lanes + 1) * sd;
        float qd6 = q.get(qd + 6 * lanes) * sd;
        float qd7 = q.get(qd + 6 * lanes + 1) * sd;
        float aa0 = 0f; float aa1 = 0f; float aa2 = 0f; float aa3 = 0f; float aa4 = 0f; float aa5 = 0f; float aa6 = 0f; float aa7 = 0f;
        float ab0 = 0f; float ab1 = 0f; float ab2 = 0f; float ab3 = 0f; float ab4 = 0f; float ab5 = 0f; float ab6 = 0f; float ab7 = 0f;
        float ac0 = 0f; float ac1 = 0f; float ac2 = 0f; float ac3 = 0f; float ac4 = 0f; float ac5 = 0f; float ac6 = 0f; float ac7 = 0f;
        float ad0 = 0f; float ad1 = 0f; float ad2 = 0f; float ad3 = 0f; float ad4 = 0f; float ad5 = 0f; float ad6 = 0f; float ad7 = 0f;

        for (int chunkStart = start; chunkStart < end; chunkStart += chunk) {
            // 1. partial dots of this work-item's 8 dims with four heads, two token rows at a time
            //    (tokens past the end read the partition's first token; the softmax masks them)
            for (int i = 0; i < ROWS_PER_THREAD; i += 2) {
                int rA = i * rows + slot;
                int rB = rA + rows;
                int tA = chunkStart + rA < end ? chunkStart + rA : start;
                int tB = chunkStart + rB < end ? chunkStart + rB : start;
                int kA = PagedDecodeKernels.rowOffset(blockTables, tableRow, tA, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                int kB = PagedDecodeKernels.rowOffset(blockTables, tableRow, tB, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                float x0 = kPool.get(kA).getFloat32();
                float x1 = kPool.get(kA + 1).getFloat32();
                float x2 = kPool.get(kA + 2 * lanes).getFloat32();
                float x3 = kPool.get(kA + 2 * lanes + 1).getFloat32();
                float x4 = kPool.get(kA + 4 * lanes).getFloat32();
                float x5 = kPool.get(kA + 4 * lanes + 1).getFloat32();
                float x6 = kPool.get(kA + 6 * lanes).getFloat32();
                float x7 = kPool.get(kA + 6 * lanes + 1).getFloat32();
                float y0 = kPool.get(kB).getFloat32();
                float y1 = kPool.get(kB + 1).getFloat32();
                float y2 = kPool.get(kB + 2 * lanes).getFloat32();
                float y3 = kPool.get(kB + 2 * lanes + 1).getFloat32();
                float y4 = kPool.get(kB + 4 * lanes).getFloat32();
                float y5 = kPool.get(kB + 4 * lanes + 1).getFloat32();
                float y6 = kPool.get(kB + 6 * lanes).getFloat32();
                float y7 = kPool.get(kB + 6 * lanes + 1).getFloat32();
                dots[(rA * heads + HPT * quad + 0) * (lanes + 1) + lane] = qa0 * x0 + qa1 * x1 + qa2 * x2 + qa3 * x3 + qa4 * x4 + qa5 * x5 + qa6 * x6 + qa7 * x7;
                dots[(rB * heads + HPT * quad + 0) * (lanes + 1) + lane] = qa0 * y0 + qa1 * y1 + qa2 * y2 + qa3 * y3 + qa4 * y4 + qa5 * y5 + qa6 * y6 + qa7 * y7;
                dots[(rA * heads + HPT * quad + 1) * (lanes + 1) + lane] = qb0 * x0 + qb1 * x1 + qb2 * x2 + qb3 * x3 + qb4 * x4 + qb5 * x5 + qb6 * x6 + qb7 * x7;
                dots[(rB * heads + HPT * quad + 1) * (lanes + 1) + lane] = qb0 * y0 + qb1 * y1 + qb2 * y2 + qb3 * y3 + qb4 * y4 + qb5 * y5 + qb6 * y6 + qb7 * y7;
                dots[(rA * heads + HPT * quad + 2) * (lanes + 1) + lane] = qc0 * x0 + qc1 * x1 + qc2 * x2 + qc3 * x3 + qc4 * x4 + qc5 * x5 + qc6 * x6 + qc7 * x7;
                dots[(rB * heads + HPT * quad + 2) * (lanes + 1) + lane] = qc0 * y0 + qc1 * y1 + qc2 * y2 + qc3 * y3 + qc4 * y4 + qc5 * y5 + qc6 * y6 + qc7 * y7;
                dots[(rA * heads + HPT * quad + 3) * (lanes + 1) + lane] = qd0 * x0 + qd1 * x1 + qd2 * x2 + qd3 * x3 + qd4 * x4 + qd5 * x5 + qd6 * x6 + qd7 * x7;
                dots[(rB * heads + HPT * quad + 3) * (lanes + 1) + lane] = qd0 * y0 + qd1 * y1 + qd2 * y2 + qd3 * y3 + qd4 * y4 + qd5 * y5 + qd6 * y6 + qd7 * y7;
            }
            ctx.localBarrier();
            // 2. scores, chunk max, probabilities: work-item tid owns the (row, head) pairs tid, tid + LOCAL,
            //    ... of head tid % heads; rows at or past the end score MASKED; one exp per pair
            float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)
            float chunkMax = PagedDecodeKernels.MASKED;  // finite, as the masked scores
            for (int idx = tid; idx < chunk * heads; idx += LOCAL) {
                float s = 0f;
                for (int l = 0; l < lanes; l++) {
                    s += dots[idx * (lanes + 1) + l];
                }
                s = PagedDecodeKernels.softCap(s, cap);
                s = s + PagedDecodeKernels.alibiBias(partials, params.get(DecodeParams.ALIBI),   // ALiBi
                        kvHead * groupSize + TornadoMath.min(idx % heads, groupSize - 1), chunkStart + idx / heads, len - 1);
                if (chunkStart + idx / heads >= end) {  // finite: see PagedDecodeKernels.MASKED
                    s = PagedDecodeKernels.MASKED;
                }
                probs[idx] = s;
                chunkMax = TornadoMath.max(chunkMax, s);
            }
            stats[STATS_CHUNK_MAX + tid] = chunkMax;
            ctx.localBarrier();
            float oldMax = stats[STATS_MAX + tid];
            float newMax = oldMax;
            for (int j = tid % heads; j < LOCAL; j += heads) {
                newMax = TornadoMath.max(newMax, stats[STATS_CHUNK_MAX + j]);
            }
            float rescale = TornadoMath.exp(oldMax - newMax);
            float sum = stats[STATS_SUM + tid] * rescale;
            for (int idx = tid; idx < chunk * heads; idx += LOCAL) {
                float p = TornadoMath.exp(probs[idx] - newMax);
                probs[idx] = p;
                sum += p;
            }
            stats[STATS_SUM + tid] = sum;
            stats[STATS_MAX + tid] = newMax;
            if (tid < heads) {
                stats[STATS_RESCALE + tid] = rescale;
            }
            ctx.localBarrier();
            // 3. rescale to the new running max, then V weighted by the probabilities, two rows at a time
            float ca = stats[STATS_RESCALE + HPT * quad + 0];
            float cb = stats[STATS_RESCALE + HPT * quad + 1];
            float cc = stats[STATS_RESCALE + HPT * quad + 2];
            float cd = stats[STATS_RESCALE + HPT * quad + 3];
            aa0 = aa0 * ca;
            aa1 = aa1 * ca;
            aa2 = aa2 * ca;
            aa3 = aa3 * ca;
            aa4 = aa4 * ca;
            aa5 = aa5 * ca;
            aa6 = aa6 * ca;
            aa7 = aa7 * ca;
            ab0 = ab0 * cb;
            ab1 = ab1 * cb;
            ab2 = ab2 * cb;
            ab3 = ab3 * cb;
            ab4 = ab4 * cb;
            ab5 = ab5 * cb;
            ab6 = ab6 * cb;
            ab7 = ab7 * cb;
            ac0 = ac0 * cc;
            ac1 = ac1 * cc;
            ac2 = ac2 * cc;
            ac3 = ac3 * cc;
            ac4 = ac4 * cc;
            ac5 = ac5 * cc;
            ac6 = ac6 * cc;
            ac7 = ac7 * cc;
            ad0 = ad0 * cd;
            ad1 = ad1 * cd;
            ad2 = ad2 * cd;
            ad3 = ad3 * cd;
            ad4 = ad4 * cd;
            ad5 = ad5 * cd;
            ad6 = ad6 * cd;
            ad7 = ad7 * cd;
            for (int i = 0; i < ROWS_PER_THREAD; i += 2) {
                int rA = i * rows + slot;
                int rB = rA + rows;
                int tA = chunkStart + rA < end ? chunkStart + rA : start;
                int tB = chunkStart + rB < end ? chunkStart + rB : start;
                int vA = PagedDecodeKernels.rowOffset(blockTables, tableRow, tA, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                int vB = PagedDecodeKernels.rowOffset(blockTables, tableRow, tB, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                float x0 = vPool.get(vA).getFloat32();
                float x1 = vPool.get(vA + 1).getFloat32();
                float x2 = vPool.get(vA + 2 * lanes).getFloat32();
                float x3 = vPool.get(vA + 2 * lanes + 1).getFloat32();
                float x4 = vPool.get(vA + 4 * lanes).getFloat32();
                float x5 = vPool.get(vA + 4 * lanes + 1).getFloat32();
                float x6 = vPool.get(vA + 6 * lanes).getFloat32();
                float x7 = vPool.get(vA + 6 * lanes + 1).getFloat32();
                float y0 = vPool.get(vB).getFloat32();
                float y1 = vPool.get(vB + 1).getFloat32();
                float y2 = vPool.get(vB + 2 * lanes).getFloat32();
                float y3 = vPool.get(vB + 2 * lanes + 1).getFloat32();
                float y4 = vPool.get(vB + 4 * lanes).getFloat32();
                float y5 = vPool.get(vB + 4 * lanes + 1).getFloat32();
                float y6 = vPool.get(vB + 6 * lanes).getFloat32();
                float y7 = vPool.get(vB + 6 * lanes + 1).getFloat32();
                float pa = probs[rA * heads + HPT * quad + 0];
                float oa = probs[rB * heads + HPT * quad + 0];
                float pb = probs[rA * heads + HPT * quad + 1];
                float ob = probs[rB * heads + HPT * quad + 1];
                float pc = probs[rA * heads + HPT * quad + 2];
                float oc = probs[rB * heads + HPT * quad + 2];
                float pd = probs[rA * heads + HPT * quad + 3];
                float od = probs[rB * heads + HPT * quad + 3];
                aa0 = aa0 + pa * x0 + oa * y0;
                aa1 = aa1 + pa * x1 + oa * y1;
                aa2 = aa2 + pa * x2 + oa * y2;
                aa3 = aa3 + pa * x3 + oa * y3;
                aa4 = aa4 + pa * x4 + oa * y4;
                aa5 = aa5 + pa * x5 + oa * y5;
                aa6 = aa6 + pa * x6 + oa * y6;
                aa7 = aa7 + pa * x7 + oa * y7;
                ab0 = ab0 + pb * x0 + ob * y0;
                ab1 = ab1 + pb * x1 + ob * y1;
                ab2 = ab2 + pb * x2 + ob * y2;
                ab3 = ab3 + pb * x3 + ob * y3;
                ab4 = ab4 + pb * x4 + ob * y4;
                ab5 = ab5 + pb * x5 + ob * y5;
                ab6 = ab6 + pb * x6 + ob * y6;
                ab7 = ab7 + pb * x7 + ob * y7;
                ac0 = ac0 + pc * x0 + oc * y0;
                ac1 = ac1 + pc * x1 + oc * y1;
                ac2 = ac2 + pc * x2 + oc * y2;
                ac3 = ac3 + pc * x3 + oc * y3;
                ac4 = ac4 + pc * x4 + oc * y4;
                ac5 = ac5 + pc * x5 + oc * y5;
                ac6 = ac6 + pc * x6 + oc * y6;
                ac7 = ac7 + pc * x7 + oc * y7;
                ad0 = ad0 + pd * x0 + od * y0;
                ad1 = ad1 + pd * x1 + od * y1;
                ad2 = ad2 + pd * x2 + od * y2;
                ad3 = ad3 + pd * x3 + od * y3;
                ad4 = ad4 + pd * x4 + od * y4;
                ad5 = ad5 + pd * x5 + od * y5;
                ad6 = ad6 + pd * x6 + od * y6;
                ad7 = ad7 + pd * x7 + od * y7;
            }
        }
        // 4. every row slot's accumulators to local memory, then sum the slots and write out
        ctx.localBarrier();
        int wa = (slot * heads + HPT * quad + 0) * headDim + 2 * lane;
        dots[wa] = aa0;
        dots[wa + 1] = aa1;
        dots[wa + 2 * lanes] = aa2;
        dots[wa + 2 * lanes + 1] = aa3;
        dots[wa + 4 * lanes] = aa4;
        dots[wa + 4 * lanes + 1] = aa5;
        dots[wa + 6 * lanes] = aa6;
        dots[wa + 6 * lanes + 1] = aa7;
        int wb = (slot * heads + HPT * quad + 1) * headDim + 2 * lane;
        dots[wb] = ab0;
        dots[wb + 1] = ab1;
        dots[wb + 2 * lanes] = ab2;
        dots[wb + 2 * lanes + 1] = ab3;
        dots[wb + 4 * lanes] = ab4;
        dots[wb + 4 * lanes + 1] = ab5;
        dots[wb + 6 * lanes] = ab6;
        dots[wb + 6 * lanes + 1] = ab7;
        int wc = (slot * heads + HPT * quad + 2) * headDim + 2 * lane;
        dots[wc] = ac0;
        dots[wc + 1] = ac1;
        dots[wc + 2 * lanes] = ac2;
        dots[wc + 2 * lanes + 1] = ac3;
        dots[wc + 4 * lanes] = ac4;
        dots[wc + 4 * lanes + 1] = ac5;
        dots[wc + 6 * lanes] = ac6;
        dots[wc + 6 * lanes + 1] = ac7;
        int wd = (slot * heads + HPT * quad + 3) * headDim + 2 * lane;
        dots[wd] = ad0;
        dots[wd + 1] = ad1;
        dots[wd + 2 * lanes] = ad2;
        dots[wd + 2 * lanes + 1] = ad3;
        dots[wd + 4 * lanes] = ad4;
        dots[wd + 4 * lanes + 1] = ad5;
        dots[wd + 6 * lanes] = ad6;
        dots[wd + 6 * lanes + 1] = ad7;
        ctx.localBarrier();
        // 5. sum the row slots and the work-items' probability sums; write the normalised output, or this
        //    partition's unnormalised output, max and sum
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        int numQHeads = numKvHeads * groupSize;
        for (int idx = tid; idx < groupSize * headDim; idx += LOCAL) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            float o = 0f;
            for (int r = 0; r < rows; r++) {
                o += dots[(r * heads + hh) * headDim + d];
            }
            float total = 0f;
            for (int j = hh; j < LOCAL; j += heads) {
                total += stats[STATS_SUM + j];
            }
            int h = kvHead * groupSize + hh;
            if (writeFinal != 0) {
                out.set((seq * numQHeads + h) * headDim + d, o / PagedDecodeKernels.finalSum(total, stats[STATS_MAX + hh], partials, params, h));
            } else {
                int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                partials.set(pBase + d, o);
                if (d == 0) {
                    partials.set(pBase + headDim, stats[STATS_MAX + hh]);
                    partials.set(pBase + headDim + 1, total);
                }
            }
        }
    }

    public static void attentionF32(KernelContext ctx, FloatArray kPool, FloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;                 // work-items per token row and quad: 8 dims (4 pairs) each
        int quads = (groupSize + HPT - 1) / HPT;  // units of HPT query heads per work-item
        int heads = HPT * quads;                 // query heads, padded to whole units
        int rowThreads = quads * lanes;
        int rows = LOCAL / rowThreads;           // token rows one pass covers
        int chunk = ROWS_PER_THREAD * rows;      // tokens per chunk
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;             // token row of this work-item within a pass
        int quad = (tid - slot * rowThreads) / lanes;
        int lane = tid - slot * rowThreads - quad * lanes;
        int gid = ctx.groupIdx;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int part = PagedDecodeKernels.partitionOf(gid, maxParts);
        int kvHead = PagedDecodeKernels.kvHeadOf(gid, maxParts, numKvHeads);
        int seq = PagedDecodeKernels.seqOf(gid, maxParts, numKvHeads);
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
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block

        float[] dots = ctx.allocateFloatLocalArray(DOTS_SIZE);    // [chunk][heads][lanes + 1] partial dots; at the end [rows][heads][headDim]
        float[] probs = ctx.allocateFloatLocalArray(PROBS_SIZE);  // [chunk][heads] scores, then probabilities
        float[] stats = ctx.allocateFloatLocalArray(STATS_SIZE);  // see STATS_* offsets
        stats[STATS_SUM + tid] = 0f;                 // this work-item's running sum of probabilities
        stats[STATS_MAX + tid] = -Float.MAX_VALUE;   // its copy of its head's running max; finite: exp(old - new) never sees -inf - -inf

        // this work-item's query values: heads 4*quad .. 4*quad+3 of the KV head's group, dims
        // 2*lane + 2*lanes*j + {0, 1} for j = 0..3, pre-scaled; heads past the group read head 0 with scale 0
        boolean validA = HPT * quad + 0 < groupSize;
        float sa = validA ? scale : 0f;
        int qa = (seq * numKvHeads * groupSize + kvHead * groupSize + (validA ? HPT * quad + 0 : 0)) * headDim + 2 * lane;
        float qa0 = q.get(qa) * sa;
        float qa1 = q.get(qa + 1) * sa;
        float qa2 = q.get(qa + 2 * lanes) * sa;
        float qa3 = q.get(qa + 2 * lanes + 1) * sa;
        float qa4 = q.get(qa + 4 * lanes) * sa;
        float qa5 = q.get(qa + 4 * lanes + 1) * sa;
        float qa6 = q.get(qa + 6 * lanes) * sa;
        float qa7 = q.get(qa + 6 * lanes + 1) * sa;
        boolean validB = HPT * quad + 1 < groupSize;
        float sb = validB ? scale : 0f;
        int qb = (seq * numKvHeads * groupSize + kvHead * groupSize + (validB ? HPT * quad + 1 : 0)) * headDim + 2 * lane;
        float qb0 = q.get(qb) * sb;
        float qb1 = q.get(qb + 1) * sb;
        float qb2 = q.get(qb + 2 * lanes) * sb;
        float qb3 = q.get(qb + 2 * lanes + 1) * sb;
        float qb4 = q.get(qb + 4 * lanes) * sb;
        float qb5 = q.get(qb + 4 * lanes + 1) * sb;
        float qb6 = q.get(qb + 6 * lanes) * sb;
        float qb7 = q.get(qb + 6 * lanes + 1) * sb;
        boolean validC = HPT * quad + 2 < groupSize;
        float sc = validC ? scale : 0f;
        int qc = (seq * numKvHeads * groupSize + kvHead * groupSize + (validC ? HPT * quad + 2 : 0)) * headDim + 2 * lane;
        float qc0 = q.get(qc) * sc;
        float qc1 = q.get(qc + 1) * sc;
        float qc2 = q.get(qc + 2 * lanes) * sc;
        float qc3 = q.get(qc + 2 * lanes + 1) * sc;
        float qc4 = q.get(qc + 4 * lanes) * sc;
        float qc5 = q.get(qc + 4 * lanes + 1) * sc;
        float qc6 = q.get(qc + 6 * lanes) * sc;
        float qc7 = q.get(qc + 6 * lanes + 1) * sc;
        boolean validD = HPT * quad + 3 < groupSize;
        float sd = validD ? scale : 0f;
        int qd = (seq * numKvHeads * groupSize + kvHead * groupSize + (validD ? HPT * quad + 3 : 0)) * headDim + 2 * lane;
        float qd0 = q.get(qd) * sd;
        float qd1 = q.get(qd + 1) * sd;
        float qd2 = q.get(qd + 2 * lanes) * sd;
        float qd3 = q.get(qd + 2 * lanes + 1) * sd;
        float qd4 = q.get(qd + 4 * lanes) * sd;
        float qd5 = q.get(qd + 4 * lanes + 1) * sd;
        float qd6 = q.get(qd + 6 * lanes) * sd;
        float qd7 = q.get(qd + 6 * lanes + 1) * sd;
        float aa0 = 0f; float aa1 = 0f; float aa2 = 0f; float aa3 = 0f; float aa4 = 0f; float aa5 = 0f; float aa6 = 0f; float aa7 = 0f;
        float ab0 = 0f; float ab1 = 0f; float ab2 = 0f; float ab3 = 0f; float ab4 = 0f; float ab5 = 0f; float ab6 = 0f; float ab7 = 0f;
        float ac0 = 0f; float ac1 = 0f; float ac2 = 0f; float ac3 = 0f; float ac4 = 0f; float ac5 = 0f; float ac6 = 0f; float ac7 = 0f;
        float ad0 = 0f; float ad1 = 0f; float ad2 = 0f; float ad3 = 0f; float ad4 = 0f; float ad5 = 0f; float ad6 = 0f; float ad7 = 0f;

        for (int chunkStart = start; chunkStart < end; chunkStart += chunk) {
            // 1. partial dots of this work-item's 8 dims with four heads, two token rows at a time
            //    (tokens past the end read the partition's first token; the softmax masks them)
            for (int i = 0; i < ROWS_PER_THREAD; i += 2) {
                int rA = i * rows + slot;
                int rB = rA + rows;
                int tA = chunkStart + rA < end ? chunkStart + rA : start;
                int tB = chunkStart + rB < end ? chunkStart + rB : start;
                int kA = PagedDecodeKernels.rowOffset(blockTables, tableRow, tA, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                int kB = PagedDecodeKernels.rowOffset(blockTables, tableRow, tB, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                float x0 = kPool.get(kA);
                float x1 = kPool.get(kA + 1);
                float x2 = kPool.get(kA + 2 * lanes);
                float x3 = kPool.get(kA + 2 * lanes + 1);
                float x4 = kPool.get(kA + 4 * lanes);
                float x5 = kPool.get(kA + 4 * lanes + 1);
                float x6 = kPool.get(kA + 6 * lanes);
                float x7 = kPool.get(kA + 6 * lanes + 1);
                float y0 = kPool.get(kB);
                float y1 = kPool.get(kB + 1);
                float y2 = kPool.get(kB + 2 * lanes);
                float y3 = kPool.get(kB + 2 * lanes + 1);
                float y4 = kPool.get(kB + 4 * lanes);
                float y5 = kPool.get(kB + 4 * lanes + 1);
                float y6 = kPool.get(kB + 6 * lanes);
                float y7 = kPool.get(kB + 6 * lanes + 1);
                dots[(rA * heads + HPT * quad + 0) * (lanes + 1) + lane] = qa0 * x0 + qa1 * x1 + qa2 * x2 + qa3 * x3 + qa4 * x4 + qa5 * x5 + qa6 * x6 + qa7 * x7;
                dots[(rB * heads + HPT * quad + 0) * (lanes + 1) + lane] = qa0 * y0 + qa1 * y1 + qa2 * y2 + qa3 * y3 + qa4 * y4 + qa5 * y5 + qa6 * y6 + qa7 * y7;
                dots[(rA * heads + HPT * quad + 1) * (lanes + 1) + lane] = qb0 * x0 + qb1 * x1 + qb2 * x2 + qb3 * x3 + qb4 * x4 + qb5 * x5 + qb6 * x6 + qb7 * x7;
                dots[(rB * heads + HPT * quad + 1) * (lanes + 1) + lane] = qb0 * y0 + qb1 * y1 + qb2 * y2 + qb3 * y3 + qb4 * y4 + qb5 * y5 + qb6 * y6 + qb7 * y7;
                dots[(rA * heads + HPT * quad + 2) * (lanes + 1) + lane] = qc0 * x0 + qc1 * x1 + qc2 * x2 + qc3 * x3 + qc4 * x4 + qc5 * x5 + qc6 * x6 + qc7 * x7;
                dots[(rB * heads + HPT * quad + 2) * (lanes + 1) + lane] = qc0 * y0 + qc1 * y1 + qc2 * y2 + qc3 * y3 + qc4 * y4 + qc5 * y5 + qc6 * y6 + qc7 * y7;
                dots[(rA * heads + HPT * quad + 3) * (lanes + 1) + lane] = qd0 * x0 + qd1 * x1 + qd2 * x2 + qd3 * x3 + qd4 * x4 + qd5 * x5 + qd6 * x6 + qd7 * x7;
                dots[(rB * heads + HPT * quad + 3) * (lanes + 1) + lane] = qd0 * y0 + qd1 * y1 + qd2 * y2 + qd3 * y3 + qd4 * y4 + qd5 * y5 + qd6 * y6 + qd7 * y7;
            }
            ctx.localBarrier();
            // 2. scores, chunk max, probabilities: work-item tid owns the (row, head) pairs tid, tid + LOCAL,
            //    ... of head tid % heads; rows at or past the end score MASKED; one exp per pair
            float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)
            float chunkMax = PagedDecodeKernels.MASKED;  // finite, as the masked scores
            for (int idx = tid; idx < chunk * heads; idx += LOCAL) {
                float s = 0f;
                for (int l = 0; l < lanes; l++) {
                    s += dots[idx * (lanes + 1) + l];
                }
                s = PagedDecodeKernels.softCap(s, cap);
                s = s + PagedDecodeKernels.alibiBias(partials, params.get(DecodeParams.ALIBI),   // ALiBi
                        kvHead * groupSize + TornadoMath.min(idx % heads, groupSize - 1), chunkStart + idx / heads, len - 1);
                if (chunkStart + idx / heads >= end) {  // finite: see PagedDecodeKernels.MASKED
                    s = PagedDecodeKernels.MASKED;
                }
                probs[idx] = s;
                chunkMax = TornadoMath.max(chunkMax, s);
            }
            stats[STATS_CHUNK_MAX + tid] = chunkMax;
            ctx.localBarrier();
            float oldMax = stats[STATS_MAX + tid];
            float newMax = oldMax;
            for (int j = tid % heads; j < LOCAL; j += heads) {
                newMax = TornadoMath.max(newMax, stats[STATS_CHUNK_MAX + j]);
            }
            float rescale = TornadoMath.exp(oldMax - newMax);
            float sum = stats[STATS_SUM + tid] * rescale;
            for (int idx = tid; idx < chunk * heads; idx += LOCAL) {
                float p = TornadoMath.exp(probs[idx] - newMax);
                probs[idx] = p;
                sum += p;
            }
            stats[STATS_SUM + tid] = sum;
            stats[STATS_MAX + tid] = newMax;
            if (tid < heads) {
                stats[STATS_RESCALE + tid] = rescale;
            }
            ctx.localBarrier();
            // 3. rescale to the new running max, then V weighted by the probabilities, two rows at a time
            float ca = stats[STATS_RESCALE + HPT * quad + 0];
            float cb = stats[STATS_RESCALE + HPT * quad + 1];
            float cc = stats[STATS_RESCALE + HPT * quad + 2];
            float cd = stats[STATS_RESCALE + HPT * quad + 3];
            aa0 = aa0 * ca;
            aa1 = aa1 * ca;
            aa2 = aa2 * ca;
            aa3 = aa3 * ca;
            aa4 = aa4 * ca;
            aa5 = aa5 * ca;
            aa6 = aa6 * ca;
            aa7 = aa7 * ca;
            ab0 = ab0 * cb;
            ab1 = ab1 * cb;
            ab2 = ab2 * cb;
            ab3 = ab3 * cb;
            ab4 = ab4 * cb;
            ab5 = ab5 * cb;
            ab6 = ab6 * cb;
            ab7 = ab7 * cb;
            ac0 = ac0 * cc;
            ac1 = ac1 * cc;
            ac2 = ac2 * cc;
            ac3 = ac3 * cc;
            ac4 = ac4 * cc;
            ac5 = ac5 * cc;
            ac6 = ac6 * cc;
            ac7 = ac7 * cc;
            ad0 = ad0 * cd;
            ad1 = ad1 * cd;
            ad2 = ad2 * cd;
            ad3 = ad3 * cd;
            ad4 = ad4 * cd;
            ad5 = ad5 * cd;
            ad6 = ad6 * cd;
            ad7 = ad7 * cd;
            for (int i = 0; i < ROWS_PER_THREAD; i += 2) {
                int rA = i * rows + slot;
                int rB = rA + rows;
                int tA = chunkStart + rA < end ? chunkStart + rA : start;
                int tB = chunkStart + rB < end ? chunkStart + rB : start;
                int vA = PagedDecodeKernels.rowOffset(blockTables, tableRow, tA, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                int vB = PagedDecodeKernels.rowOffset(blockTables, tableRow, tB, layerBase, blockStride, headStride, headDim, blockSize, kvHead) + 2 * lane;
                float x0 = vPool.get(vA);
                float x1 = vPool.get(vA + 1);
                float x2 = vPool.get(vA + 2 * lanes);
                float x3 = vPool.get(vA + 2 * lanes + 1);
                float x4 = vPool.get(vA + 4 * lanes);
                float x5 = vPool.get(vA + 4 * lanes + 1);
                float x6 = vPool.get(vA + 6 * lanes);
                float x7 = vPool.get(vA + 6 * lanes + 1);
                float y0 = vPool.get(vB);
                float y1 = vPool.get(vB + 1);
                float y2 = vPool.get(vB + 2 * lanes);
                float y3 = vPool.get(vB + 2 * lanes + 1);
                float y4 = vPool.get(vB + 4 * lanes);
                float y5 = vPool.get(vB + 4 * lanes + 1);
                float y6 = vPool.get(vB + 6 * lanes);
                float y7 = vPool.get(vB + 6 * lanes + 1);
                float pa = probs[rA * heads + HPT * quad + 0];
                float oa = probs[rB * heads + HPT * quad + 0];
                float pb = probs[rA * heads + HPT * quad + 1];
                float ob = probs[rB * heads + HPT * quad + 1];
                float pc = probs[rA * heads + HPT * quad + 2];
                float oc = probs[rB * heads + HPT * quad + 2];
                float pd = probs[rA * heads + HPT * quad + 3];
                float od = probs[rB * heads + HPT * quad + 3];
                aa0 = aa0 + pa * x0 + oa * y0;
                aa1 = aa1 + pa * x1 + oa * y1;
                aa2 = aa2 + pa * x2 + oa * y2;
                aa3 = aa3 + pa * x3 + oa * y3;
                aa4 = aa4 + pa * x4 + oa * y4;
                aa5 = aa5 + pa * x5 + oa * y5;
                aa6 = aa6 + pa * x6 + oa * y6;
                aa7 = aa7 + pa * x7 + oa * y7;
                ab0 = ab0 + pb * x0 + ob * y0;
                ab1 = ab1 + pb * x1 + ob * y1;
                ab2 = ab2 + pb * x2 + ob * y2;
                ab3 = ab3 + pb * x3 + ob * y3;
                ab4 = ab4 + pb * x4 + ob * y4;
                ab5 = ab5 + pb * x5 + ob * y5;
                ab6 = ab6 + pb * x6 + ob * y6;
                ab7 = ab7 + pb * x7 + ob * y7;
                ac0 = ac0 + pc * x0 + oc * y0;
                ac1 = ac1 + pc * x1 + oc * y1;
                ac2 = ac2 + pc * x2 + oc * y2;
                ac3 = ac3 + pc * x3 + oc * y3;
                ac4 = ac4 + pc * x4 + oc * y4;
                ac5 = ac5 + pc * x5 + oc * y5;
                ac6 = ac6 + pc * x6 + oc * y6;
                ac7 = ac7 + pc * x7 + oc * y7;
                ad0 = ad0 + pd * x0 + od * y0;
                ad1 = ad1 + pd * x1 + od * y1;
                ad2 = ad2 + pd * x2 + od * y2;
                ad3 = ad3 + pd * x3 + od * y3;
                ad4 = ad4 + pd * x4 + od * y4;
                ad5 = ad5 + pd * x5 + od * y5;
                ad6 = ad6 + pd * x6 + od * y6;
                ad7 = ad7 + pd * x7 + od * y7;
            }
        }
        // 4. every row slot's accumulators to local memory, then sum the slots and write out
        ctx.localBarrier();
        int wa = (slot * heads + HPT * quad + 0) * headDim + 2 * lane;
        dots[wa] = aa0;
        dots[wa + 1] = aa1;
        dots[wa + 2 * lanes] = aa2;
        dots[wa + 2 * lanes + 1] = aa3;
        dots[wa + 4 * lanes] = aa4;
        dots[wa + 4 * lanes + 1] = aa5;
        dots[wa + 6 * lanes] = aa6;
        dots[wa + 6 * lanes + 1] = aa7;
        int wb = (slot * heads + HPT * quad + 1) * headDim + 2 * lane;
        dots[wb] = ab0;
        dots[wb + 1] = ab1;
        dots[wb + 2 * lanes] = ab2;
        dots[wb + 2 * lanes + 1] = ab3;
        dots[wb + 4 * lanes] = ab4;
        dots[wb + 4 * lanes + 1] = ab5;
        dots[wb + 6 * lanes] = ab6;
        dots[wb + 6 * lanes + 1] = ab7;
        int wc = (slot * heads + HPT * quad + 2) * headDim + 2 * lane;
        dots[wc] = ac0;
        dots[wc + 1] = ac1;
        dots[wc + 2 * lanes] = ac2;
        dots[wc + 2 * lanes + 1] = ac3;
        dots[wc + 4 * lanes] = ac4;
        dots[wc + 4 * lanes + 1] = ac5;
        dots[wc + 6 * lanes] = ac6;
        dots[wc + 6 * lanes + 1] = ac7;
        int wd = (slot * heads + HPT * quad + 3) * headDim + 2 * lane;
        dots[wd] = ad0;
        dots[wd + 1] = ad1;
        dots[wd + 2 * lanes] = ad2;
        dots[wd + 2 * lanes + 1] = ad3;
        dots[wd + 4 * lanes] = ad4;
        dots[wd + 4 * lanes + 1] = ad5;
        dots[wd + 6 * lanes] = ad6;
        dots[wd + 6 * lanes + 1] = ad7;
        ctx.localBarrier();
        // 5. sum the row slots and the work-items' probability sums; write the normalised output, or this
        //    partition's unnormalised output, max and sum
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        int numQHeads = numKvHeads * groupSize;
        for (int idx = tid; idx < groupSize * headDim; idx += LOCAL) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            float o = 0f;
            for (int r = 0; r < rows; r++) {
                o += dots[(r * heads + hh) * headDim + d];
            }
            float total = 0f;
            for (int j = hh; j < LOCAL; j += heads) {
                total += stats[STATS_SUM + j];
            }
            int h = kvHead * groupSize + hh;
            if (writeFinal != 0) {
                out.set((seq * numQHeads + h) * headDim + d, o / PagedDecodeKernels.finalSum(total, stats[STATS_MAX + hh], partials, params, h));
            } else {
                int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                partials.set(pBase + d, o);
                if (d == 0) {
                    partials.set(pBase + headDim, stats[STATS_MAX + hh]);
                    partials.set(pBase + headDim + 1, total);
                }
            }
        }
    }

}
