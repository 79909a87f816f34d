package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Prefill attention over the paged cache: many query tokens per sequence, causal, optional
 * sliding window, GQA/MQA/MHA, fp32 accumulation, split along the context for long prefixes.
 *
 * <pre>
 *  kPool, vPool  [numBlocks][numKvHeads][blockSize][headDim]  one layer's pools, fp16 or fp32 (KvLayout)
 *  q, out        [totalQueries][numQHeads][headDim]  fp32, rows packed by qIndptr
 *  blockTables   [numSeqs][maxBlocksPerSeq]
 *  contextLens   [numSeqs]        tokens in the cache, including the new ones
 *  qIndptr       [numSeqs + 1]    query rows of sequence i: qIndptr[i] .. qIndptr[i+1]-1
 *  qSeq          [totalQueries]   sequence of each packed query row (for the merge)
 *  params        [PrefillParams.SIZE]
 *  partials      [totalQueries][numQHeads][maxPartitions][headDim + 2]  unnormalised acc, max, sum
 * </pre>
 *
 * <p>A work-group owns (sequence, KV head, head tile, query tile, partition). Its tile is
 * {@link #rowsPerTile} rows of (query token, query head): all heads of the group (or a slice of
 * them when the group is larger than a tile) for {@code rows / heads} consecutive query tokens
 * (head dim 128: 16 rows, the 4 heads of a Llama-3 group for 4 tokens). It walks the context
 * visible to any of its rows in chunks of {@link #chunkTokens} tokens (32 at head dim 128), five
 * barrier-separated phases per chunk:
 * <ol>
 *   <li>the chunk's K rows go to local memory, widened once for every row of the tile;</li>
 *   <li>every (row, token) score, masked to the row's causal window (-inf outside), 4 rows x 4
 *       tokens per work-item so that each local load feeds two multiply-adds;</li>
 *   <li>per row: the chunk's max, the new running max and the rescale factor;</li>
 *   <li>every probability {@code exp(s - max)}, while V replaces K in local memory;</li>
 *   <li>every (row, dim) accumulator: rescale, add P V, 4 rows x 4 dims per work-item held in
 *       registers through the chunk; the work-items of dim block 0 add the row sums.</li>
 * </ol>
 * Rows of q and of the chunk are padded to {@code headDim + 1} floats so that the score phase,
 * where a warp reads 8 token blocks and 4 row blocks at the same dim, hits different banks; the
 * tile's rows are rounded up to a multiple of 4 (the extra rows score -inf and add nothing). Local memory
 * is {@value #LOCAL_BYTES} bytes, fixed. With one partition the group writes the normalised output;
 * with several, each writes its state and {@link #mergePartitions} combines them (log-sum-exp).
 * Any local size works (every loop strides by it); the plan uses 128.
 */
public final class PrefillKernels {
    /** Most context tokens per chunk; partitions are multiples of it. */
    public static final int KV_TILE = 32;
    /** Budget for [rows][headDim], in floats. */
    public static final int Q_ELEMENTS = 2048;
    /** Most (token, head) rows of a tile. */
    public static final int MAX_ROWS = 64;
    /** [rows rounded up to 4][headDim]. */
    private static final int ACC_ELEMENTS = Q_ELEMENTS + 3 * PagedDecodeKernels.MAX_HEAD_DIM;
    /** [rows rounded up to 4][headDim + 1]. */
    private static final int Q_PADDED = ACC_ELEMENTS + MAX_ROWS + 8;
    /** [chunk][headDim + 1]: 32 tokens at head dim 128, 16 at 256. */
    private static final int KV_ELEMENTS = KV_TILE * (128 + 2);
    /** [rows rounded up to 4][chunk] */
    private static final int SCORE_ELEMENTS = MAX_ROWS * KV_TILE;
    /** Local memory per work-group (fits the 48 KB of static shared memory). */
    public static final int LOCAL_BYTES = 4 * (Q_PADDED + ACC_ELEMENTS + KV_ELEMENTS + SCORE_ELEMENTS + 3 * MAX_ROWS);

    private PrefillKernels() {
    }

    /** (token, head) rows of a tile for a head dimension: Q_ELEMENTS / headDim, at most MAX_ROWS. */
    public static int rowsPerTile(int headDim) {
        return TornadoMath.min(MAX_ROWS, Q_ELEMENTS / headDim);
    }

    /** Context tokens per chunk for a head dimension: as many padded rows as fit, a multiple of 4, at most KV_TILE. */
    public static int chunkTokens(int headDim) {
        return TornadoMath.min(KV_TILE, KV_ELEMENTS / (headDim + 1)) / 4 * 4;
    }

    /** Query heads per tile. */
    public static int headsPerTile(int groupSize, int headDim) {
        return Math.min(groupSize, rowsPerTile(headDim));
    }

    /** Query tokens per tile. */
    public static int tokensPerTile(int groupSize, int headDim) {
        return rowsPerTile(headDim) / headsPerTile(groupSize, headDim);
    }

    /** Head tiles per KV head. */
    public static int headTiles(int groupSize, int headDim) {
        int heads = headsPerTile(groupSize, headDim);
        return (groupSize + heads - 1) / heads;
    }

    public static void prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                  IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                  FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                  int blockSize, float scale) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int rows = rowsPerTile(headDim);                      // (token, head) rows of the tile
        int rows4 = (rows + 3) / 4 * 4;                       // rounded up for the 4-row blocks
        int heads = TornadoMath.min(groupSize, rows);         // query heads per tile
        int tokensPerTile = rows / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        int chunk = chunkTokens(headDim);                     // context tokens per chunk, a multiple of 4
        int pitch = headDim + 1;                              // padded row of qs and kv
        int dq = headDim / 4;                                 // a work-item's 4 dims are d0, d0+dq, d0+2dq, d0+3dq
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest
        int gid = ctx.groupIdx;
        int part = PrefillTile.part(gid, params);
        int qTile = PrefillTile.qTile(gid, params);
        int seq = PrefillTile.seq(gid, params, headTiles, numKvHeads);
        int tileTokens = PrefillTile.tileTokens(seq, qTile, part, tokensPerTile, params, qIndptr, contextLens);
        if (tileTokens == 0) {
            return;
        }
        int kvHead = PrefillTile.kvHead(gid, params, headTiles, numKvHeads);
        int headTile = PrefillTile.headTile(gid, params, headTiles);
        int qStart = qIndptr.get(seq);                        // packed row of the sequence's first query
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;               // first query token of the tile, within the sequence
        int len = contextLens.get(seq);
        int tree = PrefillTile.treeRows(params, seq);          // token-tree mask rows (0: causal)
        // position of the tile's first query token; without causality every row at the context's end or past it, and so
        // a masked sequence's (its mask bits decide among the new tokens, a bidirectional span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int lo = PrefillTile.lo(part, tree != 0 ? len - qLen : firstPos, params); // a tree: from its first new token's window
        int hi = TornadoMath.min(len, PrefillTile.hi(part, firstPos, tileTokens, params)); // visible context of the tile: [lo, hi)
        int window = params.get(PrefillParams.WINDOW);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int numParts = PrefillTile.parts(len, params);         // partitions of this sequence's context
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;                      // first head of the tile within the group
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int scoreBlocks = (rows4 / 4) * (chunk / 4);          // 4 x 4 score blocks of a chunk
        int accBlocks = (rows4 / 4) * dq;                     // 4 x 4 accumulator blocks

        float[] qs = ctx.allocateFloatLocalArray(Q_PADDED);           // [rows4][pitch], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(ACC_ELEMENTS);      // [rows4][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);        // [chunk][pitch]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(SCORE_ELEMENTS);     // [rows4][chunk]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] this chunk's rescale factor
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int alibi = params.get(PrefillParams.ALIBI);  // ALiBi slopes in partials (0: none)

        for (int idx = tid; idx < rows4 * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (r < rows && token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[r * pitch + e] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows4; r += local) {
            mRow[r] = Float.NEGATIVE_INFINITY;
            lRow[r] = 0f;
        }
        ctx.localBarrier();

        for (int c0 = lo; c0 < hi; c0 += chunk) {
            int n = TornadoMath.min(chunk, hi - c0);              // context tokens of this chunk
            // 1. the chunk's K rows
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = kPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, e)).getFloat32();
            }
            ctx.localBarrier();
            // 2. scores, 4 rows x 4 tokens per work-item; invisible ones are -inf
            for (int b = tid; b < scoreBlocks; b += local) {
                int r0 = b / (chunk / 4) * 4;
                int t0 = (b - r0 / 4 * (chunk / 4)) * 4;
                int qa = r0 * pitch;
                int ka = t0 * pitch;
                if (t0 < n) {
                    float s00 = 0f;
                    float s01 = 0f;
                    float s02 = 0f;
                    float s03 = 0f;
                    float s10 = 0f;
                    float s11 = 0f;
                    float s12 = 0f;
                    float s13 = 0f;
                    float s20 = 0f;
                    float s21 = 0f;
                    float s22 = 0f;
                    float s23 = 0f;
                    float s30 = 0f;
                    float s31 = 0f;
                    float s32 = 0f;
                    float s33 = 0f;
                    for (int e = 0; e < headDim; e++) {
                        float q0 = qs[qa + e];
                        float q1 = qs[qa + pitch + e];
                        float q2 = qs[qa + 2 * pitch + e];
                        float q3 = qs[qa + 3 * pitch + e];
                        float k0 = kv[ka + e];
                        float k1 = kv[ka + pitch + e];
                        float k2 = kv[ka + 2 * pitch + e];
                        float k3 = kv[ka + 3 * pitch + e];
                        s00 += q0 * k0;
                        s01 += q0 * k1;
                        s02 += q0 * k2;
                        s03 += q0 * k3;
                        s10 += q1 * k0;
                        s11 += q1 * k1;
                        s12 += q1 * k2;
                        s13 += q1 * k3;
                        s20 += q2 * k0;
                        s21 += q2 * k1;
                        s22 += q2 * k2;
                        s23 += q2 * k3;
                        s30 += q3 * k0;
                        s31 += q3 * k1;
                        s32 += q3 * k2;
                        s33 += q3 * k3;
                    }
                    int at0 = rowPosition(r0, heads, tileTokens, headBase, groupSize, firstPos);
                    int at1 = rowPosition(r0 + 1, heads, tileTokens, headBase, groupSize, firstPos);
                    int at2 = rowPosition(r0 + 2, heads, tileTokens, headBase, groupSize, firstPos);
                    int at3 = rowPosition(r0 + 3, heads, tileTokens, headBase, groupSize, firstPos);
                    float sl0 = rowSlope(partials, alibi, r0, heads, headBase, groupSize, kvHead);
                    float sl1 = rowSlope(partials, alibi, r0 + 1, heads, headBase, groupSize, kvHead);
                    float sl2 = rowSlope(partials, alibi, r0 + 2, heads, headBase, groupSize, kvHead);
                    float sl3 = rowSlope(partials, alibi, r0 + 3, heads, headBase, groupSize, kvHead);
                    int mb0 = PrefillTile.maskBits(params, tree, r0, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb1 = PrefillTile.maskBits(params, tree, r0 + 1, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb2 = PrefillTile.maskBits(params, tree, r0 + 2, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb3 = PrefillTile.maskBits(params, tree, r0 + 3, heads, firstToken, tileTokens, qLen, len, c0, window);
                    sc[r0 * chunk + t0] = masked(s00, t0, n, c0 + t0, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 1] = masked(s01, t0 + 1, n, c0 + t0 + 1, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 2] = masked(s02, t0 + 2, n, c0 + t0 + 2, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 3] = masked(s03, t0 + 3, n, c0 + t0 + 3, at0, slotWindow, cap, sl0, mb0);
                    sc[(r0 + 1) * chunk + t0] = masked(s10, t0, n, c0 + t0, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 1] = masked(s11, t0 + 1, n, c0 + t0 + 1, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 2] = masked(s12, t0 + 2, n, c0 + t0 + 2, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 3] = masked(s13, t0 + 3, n, c0 + t0 + 3, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 2) * chunk + t0] = masked(s20, t0, n, c0 + t0, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 1] = masked(s21, t0 + 1, n, c0 + t0 + 1, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 2] = masked(s22, t0 + 2, n, c0 + t0 + 2, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 3] = masked(s23, t0 + 3, n, c0 + t0 + 3, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 3) * chunk + t0] = masked(s30, t0, n, c0 + t0, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 1] = masked(s31, t0 + 1, n, c0 + t0 + 1, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 2] = masked(s32, t0 + 2, n, c0 + t0 + 2, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 3] = masked(s33, t0 + 3, n, c0 + t0 + 3, at3, slotWindow, cap, sl3, mb3);
                } else {
                    for (int i = 0; i < 16; i++) {
                        sc[(r0 + i / 4) * chunk + t0 + i % 4] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
            ctx.localBarrier();
            // 3. per row: new running max and the factor that rescales what came before
            for (int r = tid; r < rows4; r += local) {
                float mOld = mRow[r];
                float m = mOld;
                for (int t = 0; t < chunk; t++) {
                    m = TornadoMath.max(m, sc[r * chunk + t]);
                }
                float corr = 1f;
                if (m > Float.NEGATIVE_INFINITY) {
                    corr = TornadoMath.exp(mOld - m);                 // 0 on the row's first visible chunk
                }
                mRow[r] = m;
                cRow[r] = corr;
            }
            ctx.localBarrier();
            // 4. probabilities, while V replaces K
            for (int idx = tid; idx < rows4 * chunk; idx += local) {
                float s = sc[idx];
                float x = 0f;
                if (s > Float.NEGATIVE_INFINITY) {                    // then the row's max is finite too
                    x = TornadoMath.exp(s - mRow[idx / chunk]);
                }
                sc[idx] = x;
            }
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = vPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, e)).getFloat32();
            }
            ctx.localBarrier();
            // 5. acc = acc * corr + P V, 4 rows x 4 dims per work-item; dim block 0 also adds the row sums
            for (int b = tid; b < accBlocks; b += local) {
                int r0 = b / dq * 4;
                int d0 = b - r0 / 4 * dq;
                float f0 = cRow[r0];
                float f1 = cRow[r0 + 1];
                float f2 = cRow[r0 + 2];
                float f3 = cRow[r0 + 3];
                float a00 = acc[r0 * headDim + d0] * f0;
                float a01 = acc[r0 * headDim + d0 + dq] * f0;
                float a02 = acc[r0 * headDim + d0 + 2 * dq] * f0;
                float a03 = acc[r0 * headDim + d0 + 3 * dq] * f0;
                float a10 = acc[(r0 + 1) * headDim + d0] * f1;
                float a11 = acc[(r0 + 1) * headDim + d0 + dq] * f1;
                float a12 = acc[(r0 + 1) * headDim + d0 + 2 * dq] * f1;
                float a13 = acc[(r0 + 1) * headDim + d0 + 3 * dq] * f1;
                float a20 = acc[(r0 + 2) * headDim + d0] * f2;
                float a21 = acc[(r0 + 2) * headDim + d0 + dq] * f2;
                float a22 = acc[(r0 + 2) * headDim + d0 + 2 * dq] * f2;
                float a23 = acc[(r0 + 2) * headDim + d0 + 3 * dq] * f2;
                float a30 = acc[(r0 + 3) * headDim + d0] * f3;
                float a31 = acc[(r0 + 3) * headDim + d0 + dq] * f3;
                float a32 = acc[(r0 + 3) * headDim + d0 + 2 * dq] * f3;
                float a33 = acc[(r0 + 3) * headDim + d0 + 3 * dq] * f3;
                float l0 = 0f;
                float l1 = 0f;
                float l2 = 0f;
                float l3 = 0f;
                for (int t = 0; t < n; t++) {
                    float p0 = sc[r0 * chunk + t];
                    float p1 = sc[(r0 + 1) * chunk + t];
                    float p2 = sc[(r0 + 2) * chunk + t];
                    float p3 = sc[(r0 + 3) * chunk + t];
                    float v0 = kv[t * pitch + d0];
                    float v1 = kv[t * pitch + d0 + dq];
                    float v2 = kv[t * pitch + d0 + 2 * dq];
                    float v3 = kv[t * pitch + d0 + 3 * dq];
                    a00 += p0 * v0;
                    a01 += p0 * v1;
                    a02 += p0 * v2;
                    a03 += p0 * v3;
                    a10 += p1 * v0;
                    a11 += p1 * v1;
                    a12 += p1 * v2;
                    a13 += p1 * v3;
                    a20 += p2 * v0;
                    a21 += p2 * v1;
                    a22 += p2 * v2;
                    a23 += p2 * v3;
                    a30 += p3 * v0;
                    a31 += p3 * v1;
                    a32 += p3 * v2;
                    a33 += p3 * v3;
                    l0 += p0;
                    l1 += p1;
                    l2 += p2;
                    l3 += p3;
                }
                acc[r0 * headDim + d0] = a00;
                acc[r0 * headDim + d0 + dq] = a01;
                acc[r0 * headDim + d0 + 2 * dq] = a02;
                acc[r0 * headDim + d0 + 3 * dq] = a03;
                acc[(r0 + 1) * headDim + d0] = a10;
                acc[(r0 + 1) * headDim + d0 + dq] = a11;
                acc[(r0 + 1) * headDim + d0 + 2 * dq] = a12;
                acc[(r0 + 1) * headDim + d0 + 3 * dq] = a13;
                acc[(r0 + 2) * headDim + d0] = a20;
                acc[(r0 + 2) * headDim + d0 + dq] = a21;
                acc[(r0 + 2) * headDim + d0 + 2 * dq] = a22;
                acc[(r0 + 2) * headDim + d0 + 3 * dq] = a23;
                acc[(r0 + 3) * headDim + d0] = a30;
                acc[(r0 + 3) * headDim + d0 + dq] = a31;
                acc[(r0 + 3) * headDim + d0 + 2 * dq] = a32;
                acc[(r0 + 3) * headDim + d0 + 3 * dq] = a33;
                if (d0 == 0) {
                        lRow[r0] = lRow[r0] * f0 + l0;
                        lRow[r0 + 1] = lRow[r0 + 1] * f1 + l1;
                        lRow[r0 + 2] = lRow[r0 + 2] * f2 + l2;
                        lRow[r0 + 3] = lRow[r0 + 3] * f3 + l3;
                }
            }
            ctx.localBarrier();
        }

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize) {
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc[idx] / lRow[r]);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc[idx]);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, lRow[r]);
                    }
                }
            }
        }
    }

    /**
     * {@link #prefillF16} over bf16 pools, two elements per {@code IntArray} word ({@link Bf16Words#value}): the same body,
     * each K and V element read through its word (PrefillKernelSourceTest holds the two bodies to that rule). TornadoVM's
     * CUDA backend only: elsewhere {@code BFloat16.bf16ToFloat} is the API's software decoder.
     */
    public static void prefillBf16(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray q,
                                   IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                   FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                   int blockSize, float scale) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int rows = rowsPerTile(headDim);                      // (token, head) rows of the tile
        int rows4 = (rows + 3) / 4 * 4;                       // rounded up for the 4-row blocks
        int heads = TornadoMath.min(groupSize, rows);         // query heads per tile
        int tokensPerTile = rows / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        int chunk = chunkTokens(headDim);                     // context tokens per chunk, a multiple of 4
        int pitch = headDim + 1;                              // padded row of qs and kv
        int dq = headDim / 4;                                 // a work-item's 4 dims are d0, d0+dq, d0+2dq, d0+3dq
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest
        int gid = ctx.groupIdx;
        int part = PrefillTile.part(gid, params);
        int qTile = PrefillTile.qTile(gid, params);
        int seq = PrefillTile.seq(gid, params, headTiles, numKvHeads);
        int tileTokens = PrefillTile.tileTokens(seq, qTile, part, tokensPerTile, params, qIndptr, contextLens);
        if (tileTokens == 0) {
            return;
        }
        int kvHead = PrefillTile.kvHead(gid, params, headTiles, numKvHeads);
        int headTile = PrefillTile.headTile(gid, params, headTiles);
        int qStart = qIndptr.get(seq);                        // packed row of the sequence's first query
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;               // first query token of the tile, within the sequence
        int len = contextLens.get(seq);
        int tree = PrefillTile.treeRows(params, seq);          // token-tree mask rows (0: causal)
        // position of the tile's first query token; without causality every row at the context's end or past it, and so
        // a masked sequence's (its mask bits decide among the new tokens, a bidirectional span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int lo = PrefillTile.lo(part, tree != 0 ? len - qLen : firstPos, params); // a tree: from its first new token's window
        int hi = TornadoMath.min(len, PrefillTile.hi(part, firstPos, tileTokens, params)); // visible context of the tile: [lo, hi)
        int window = params.get(PrefillParams.WINDOW);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int numParts = PrefillTile.parts(len, params);         // partitions of this sequence's context
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;                      // first head of the tile within the group
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int scoreBlocks = (rows4 / 4) * (chunk / 4);          // 4 x 4 score blocks of a chunk
        int accBlocks = (rows4 / 4) * dq;                     // 4 x 4 accumulator blocks

        float[] qs = ctx.allocateFloatLocalArray(Q_PADDED);           // [rows4][pitch], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(ACC_ELEMENTS);      // [rows4][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);        // [chunk][pitch]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(SCORE_ELEMENTS);     // [rows4][chunk]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] this chunk's rescale factor
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int alibi = params.get(PrefillParams.ALIBI);  // ALiBi slopes in partials (0: none)

        for (int idx = tid; idx < rows4 * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (r < rows && token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[r * pitch + e] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows4; r += local) {
            mRow[r] = Float.NEGATIVE_INFINITY;
            lRow[r] = 0f;
        }
        ctx.localBarrier();

        for (int c0 = lo; c0 < hi; c0 += chunk) {
            int n = TornadoMath.min(chunk, hi - c0);              // context tokens of this chunk
            // 1. the chunk's K rows
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = Bf16Words.value(kPool, KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, e));
            }
            ctx.localBarrier();
            // 2. scores, 4 rows x 4 tokens per work-item; invisible ones are -inf
            for (int b = tid; b < scoreBlocks; b += local) {
                int r0 = b / (chunk / 4) * 4;
                int t0 = (b - r0 / 4 * (chunk / 4)) * 4;
                int qa = r0 * pitch;
                int ka = t0 * pitch;
                if (t0 < n) {
                    float s00 = 0f;
                    float s01 = 0f;
                    float s02 = 0f;
                    float s03 = 0f;
                    float s10 = 0f;
                    float s11 = 0f;
                    float s12 = 0f;
                    float s13 = 0f;
                    float s20 = 0f;
                    float s21 = 0f;
                    float s22 = 0f;
                    float s23 = 0f;
                    float s30 = 0f;
                    float s31 = 0f;
                    float s32 = 0f;
                    float s33 = 0f;
                    for (int e = 0; e < headDim; e++) {
                        float q0 = qs[qa + e];
                        float q1 = qs[qa + pitch + e];
                        float q2 = qs[qa + 2 * pitch + e];
                        float q3 = qs[qa + 3 * pitch + e];
                        float k0 = kv[ka + e];
                        float k1 = kv[ka + pitch + e];
                        float k2 = kv[ka + 2 * pitch + e];
                        float k3 = kv[ka + 3 * pitch + e];
                        s00 += q0 * k0;
                        s01 += q0 * k1;
                        s02 += q0 * k2;
                        s03 += q0 * k3;
                        s10 += q1 * k0;
                        s11 += q1 * k1;
                        s12 += q1 * k2;
                        s13 += q1 * k3;
                        s20 += q2 * k0;
                        s21 += q2 * k1;
                        s22 += q2 * k2;
                        s23 += q2 * k3;
                        s30 += q3 * k0;
                        s31 += q3 * k1;
                        s32 += q3 * k2;
                        s33 += q3 * k3;
                    }
                    int at0 = rowPosition(r0, heads, tileTokens, headBase, groupSize, firstPos);
                    int at1 = rowPosition(r0 + 1, heads, tileTokens, headBase, groupSize, firstPos);
                    int at2 = rowPosition(r0 + 2, heads, tileTokens, headBase, groupSize, firstPos);
                    int at3 = rowPosition(r0 + 3, heads, tileTokens, headBase, groupSize, firstPos);
                    float sl0 = rowSlope(partials, alibi, r0, heads, headBase, groupSize, kvHead);
                    float sl1 = rowSlope(partials, alibi, r0 + 1, heads, headBase, groupSize, kvHead);
                    float sl2 = rowSlope(partials, alibi, r0 + 2, heads, headBase, groupSize, kvHead);
                    float sl3 = rowSlope(partials, alibi, r0 + 3, heads, headBase, groupSize, kvHead);
                    int mb0 = PrefillTile.maskBits(params, tree, r0, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb1 = PrefillTile.maskBits(params, tree, r0 + 1, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb2 = PrefillTile.maskBits(params, tree, r0 + 2, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb3 = PrefillTile.maskBits(params, tree, r0 + 3, heads, firstToken, tileTokens, qLen, len, c0, window);
                    sc[r0 * chunk + t0] = masked(s00, t0, n, c0 + t0, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 1] = masked(s01, t0 + 1, n, c0 + t0 + 1, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 2] = masked(s02, t0 + 2, n, c0 + t0 + 2, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 3] = masked(s03, t0 + 3, n, c0 + t0 + 3, at0, slotWindow, cap, sl0, mb0);
                    sc[(r0 + 1) * chunk + t0] = masked(s10, t0, n, c0 + t0, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 1] = masked(s11, t0 + 1, n, c0 + t0 + 1, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 2] = masked(s12, t0 + 2, n, c0 + t0 + 2, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 3] = masked(s13, t0 + 3, n, c0 + t0 + 3, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 2) * chunk + t0] = masked(s20, t0, n, c0 + t0, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 1] = masked(s21, t0 + 1, n, c0 + t0 + 1, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 2] = masked(s22, t0 + 2, n, c0 + t0 + 2, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 3] = masked(s23, t0 + 3, n, c0 + t0 + 3, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 3) * chunk + t0] = masked(s30, t0, n, c0 + t0, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 1] = masked(s31, t0 + 1, n, c0 + t0 + 1, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 2] = masked(s32, t0 + 2, n, c0 + t0 + 2, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 3] = masked(s33, t0 + 3, n, c0 + t0 + 3, at3, slotWindow, cap, sl3, mb3);
                } else {
                    for (int i = 0; i < 16; i++) {
                        sc[(r0 + i / 4) * chunk + t0 + i % 4] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
            ctx.localBarrier();
            // 3. per row: new running max and the factor that rescales what came before
            for (int r = tid; r < rows4; r += local) {
                float mOld = mRow[r];
                float m = mOld;
                for (int t = 0; t < chunk; t++) {
                    m = TornadoMath.max(m, sc[r * chunk + t]);
                }
                float corr = 1f;
                if (m > Float.NEGATIVE_INFINITY) {
                    corr = TornadoMath.exp(mOld - m);                 // 0 on the row's first visible chunk
                }
                mRow[r] = m;
                cRow[r] = corr;
            }
            ctx.localBarrier();
            // 4. probabilities, while V replaces K
            for (int idx = tid; idx < rows4 * chunk; idx += local) {
                float s = sc[idx];
                float x = 0f;
                if (s > Float.NEGATIVE_INFINITY) {                    // then the row's max is finite too
                    x = TornadoMath.exp(s - mRow[idx / chunk]);
                }
                sc[idx] = x;
            }
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = Bf16Words.value(vPool, KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, e));
            }
            ctx.localBarrier();
            // 5. acc = acc * corr + P V, 4 rows x 4 dims per work-item; dim block 0 also adds the row sums
            for (int b = tid; b < accBlocks; b += local) {
                int r0 = b / dq * 4;
                int d0 = b - r0 / 4 * dq;
                float f0 = cRow[r0];
                float f1 = cRow[r0 + 1];
                float f2 = cRow[r0 + 2];
                float f3 = cRow[r0 + 3];
                float a00 = acc[r0 * headDim + d0] * f0;
                float a01 = acc[r0 * headDim + d0 + dq] * f0;
                float a02 = acc[r0 * headDim + d0 + 2 * dq] * f0;
                float a03 = acc[r0 * headDim + d0 + 3 * dq] * f0;
                float a10 = acc[(r0 + 1) * headDim + d0] * f1;
                float a11 = acc[(r0 + 1) * headDim + d0 + dq] * f1;
                float a12 = acc[(r0 + 1) * headDim + d0 + 2 * dq] * f1;
                float a13 = acc[(r0 + 1) * headDim + d0 + 3 * dq] * f1;
                float a20 = acc[(r0 + 2) * headDim + d0] * f2;
                float a21 = acc[(r0 + 2) * headDim + d0 + dq] * f2;
                float a22 = acc[(r0 + 2) * headDim + d0 + 2 * dq] * f2;
                float a23 = acc[(r0 + 2) * headDim + d0 + 3 * dq] * f2;
                float a30 = acc[(r0 + 3) * headDim + d0] * f3;
                float a31 = acc[(r0 + 3) * headDim + d0 + dq] * f3;
                float a32 = acc[(r0 + 3) * headDim + d0 + 2 * dq] * f3;
                float a33 = acc[(r0 + 3) * headDim + d0 + 3 * dq] * f3;
                float l0 = 0f;
                float l1 = 0f;
                float l2 = 0f;
                float l3 = 0f;
                for (int t = 0; t < n; t++) {
                    float p0 = sc[r0 * chunk + t];
                    float p1 = sc[(r0 + 1) * chunk + t];
                    float p2 = sc[(r0 + 2) * chunk + t];
                    float p3 = sc[(r0 + 3) * chunk + t];
                    float v0 = kv[t * pitch + d0];
                    float v1 = kv[t * pitch + d0 + dq];
                    float v2 = kv[t * pitch + d0 + 2 * dq];
                    float v3 = kv[t * pitch + d0 + 3 * dq];
                    a00 += p0 * v0;
                    a01 += p0 * v1;
                    a02 += p0 * v2;
                    a03 += p0 * v3;
                    a10 += p1 * v0;
                    a11 += p1 * v1;
                    a12 += p1 * v2;
                    a13 += p1 * v3;
                    a20 += p2 * v0;
                    a21 += p2 * v1;
                    a22 += p2 * v2;
                    a23 += p2 * v3;
                    a30 += p3 * v0;
                    a31 += p3 * v1;
                    a32 += p3 * v2;
                    a33 += p3 * v3;
                    l0 += p0;
                    l1 += p1;
                    l2 += p2;
                    l3 += p3;
                }
                acc[r0 * headDim + d0] = a00;
                acc[r0 * headDim + d0 + dq] = a01;
                acc[r0 * headDim + d0 + 2 * dq] = a02;
                acc[r0 * headDim + d0 + 3 * dq] = a03;
                acc[(r0 + 1) * headDim + d0] = a10;
                acc[(r0 + 1) * headDim + d0 + dq] = a11;
                acc[(r0 + 1) * headDim + d0 + 2 * dq] = a12;
                acc[(r0 + 1) * headDim + d0 + 3 * dq] = a13;
                acc[(r0 + 2) * headDim + d0] = a20;
                acc[(r0 + 2) * headDim + d0 + dq] = a21;
                acc[(r0 + 2) * headDim + d0 + 2 * dq] = a22;
                acc[(r0 + 2) * headDim + d0 + 3 * dq] = a23;
                acc[(r0 + 3) * headDim + d0] = a30;
                acc[(r0 + 3) * headDim + d0 + dq] = a31;
                acc[(r0 + 3) * headDim + d0 + 2 * dq] = a32;
                acc[(r0 + 3) * headDim + d0 + 3 * dq] = a33;
                if (d0 == 0) {
                        lRow[r0] = lRow[r0] * f0 + l0;
                        lRow[r0 + 1] = lRow[r0 + 1] * f1 + l1;
                        lRow[r0 + 2] = lRow[r0 + 2] * f2 + l2;
                        lRow[r0 + 3] = lRow[r0 + 3] * f3 + l3;
                }
            }
            ctx.localBarrier();
        }

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize) {
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc[idx] / lRow[r]);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc[idx]);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, lRow[r]);
                    }
                }
            }
        }
    }

    public static void prefillF32(KernelContext ctx, FloatArray kPool, FloatArray vPool, FloatArray q,
                                  IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                  FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                  int blockSize, float scale) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int rows = rowsPerTile(headDim);                      // (token, head) rows of the tile
        int rows4 = (rows + 3) / 4 * 4;                       // rounded up for the 4-row blocks
        int heads = TornadoMath.min(groupSize, rows);         // query heads per tile
        int tokensPerTile = rows / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        int chunk = chunkTokens(headDim);                     // context tokens per chunk, a multiple of 4
        int pitch = headDim + 1;                              // padded row of qs and kv
        int dq = headDim / 4;                                 // a work-item's 4 dims are d0, d0+dq, d0+2dq, d0+3dq
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest
        int gid = ctx.groupIdx;
        int part = PrefillTile.part(gid, params);
        int qTile = PrefillTile.qTile(gid, params);
        int seq = PrefillTile.seq(gid, params, headTiles, numKvHeads);
        int tileTokens = PrefillTile.tileTokens(seq, qTile, part, tokensPerTile, params, qIndptr, contextLens);
        if (tileTokens == 0) {
            return;
        }
        int kvHead = PrefillTile.kvHead(gid, params, headTiles, numKvHeads);
        int headTile = PrefillTile.headTile(gid, params, headTiles);
        int qStart = qIndptr.get(seq);                        // packed row of the sequence's first query
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;               // first query token of the tile, within the sequence
        int len = contextLens.get(seq);
        int tree = PrefillTile.treeRows(params, seq);          // token-tree mask rows (0: causal)
        // position of the tile's first query token; without causality every row at the context's end or past it, and so
        // a masked sequence's (its mask bits decide among the new tokens, a bidirectional span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int lo = PrefillTile.lo(part, tree != 0 ? len - qLen : firstPos, params); // a tree: from its first new token's window
        int hi = TornadoMath.min(len, PrefillTile.hi(part, firstPos, tileTokens, params)); // visible context of the tile: [lo, hi)
        int window = params.get(PrefillParams.WINDOW);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int numParts = PrefillTile.parts(len, params);         // partitions of this sequence's context
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;                      // first head of the tile within the group
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int scoreBlocks = (rows4 / 4) * (chunk / 4);          // 4 x 4 score blocks of a chunk
        int accBlocks = (rows4 / 4) * dq;                     // 4 x 4 accumulator blocks

        float[] qs = ctx.allocateFloatLocalArray(Q_PADDED);           // [rows4][pitch], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(ACC_ELEMENTS);      // [rows4][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);        // [chunk][pitch]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(SCORE_ELEMENTS);     // [rows4][chunk]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] this chunk's rescale factor
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int alibi = params.get(PrefillParams.ALIBI);  // ALiBi slopes in partials (0: none)

        for (int idx = tid; idx < rows4 * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (r < rows && token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[r * pitch + e] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows4; r += local) {
            mRow[r] = Float.NEGATIVE_INFINITY;
            lRow[r] = 0f;
        }
        ctx.localBarrier();

        for (int c0 = lo; c0 < hi; c0 += chunk) {
            int n = TornadoMath.min(chunk, hi - c0);              // context tokens of this chunk
            // 1. the chunk's K rows
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = kPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, e));
            }
            ctx.localBarrier();
            // 2. scores, 4 rows x 4 tokens per work-item; invisible ones are -inf
            for (int b = tid; b < scoreBlocks; b += local) {
                int r0 = b / (chunk / 4) * 4;
                int t0 = (b - r0 / 4 * (chunk / 4)) * 4;
                int qa = r0 * pitch;
                int ka = t0 * pitch;
                if (t0 < n) {
                    float s00 = 0f;
                    float s01 = 0f;
                    float s02 = 0f;
                    float s03 = 0f;
                    float s10 = 0f;
                    float s11 = 0f;
                    float s12 = 0f;
                    float s13 = 0f;
                    float s20 = 0f;
                    float s21 = 0f;
                    float s22 = 0f;
                    float s23 = 0f;
                    float s30 = 0f;
                    float s31 = 0f;
                    float s32 = 0f;
                    float s33 = 0f;
                    for (int e = 0; e < headDim; e++) {
                        float q0 = qs[qa + e];
                        float q1 = qs[qa + pitch + e];
                        float q2 = qs[qa + 2 * pitch + e];
                        float q3 = qs[qa + 3 * pitch + e];
                        float k0 = kv[ka + e];
                        float k1 = kv[ka + pitch + e];
                        float k2 = kv[ka + 2 * pitch + e];
                        float k3 = kv[ka + 3 * pitch + e];
                        s00 += q0 * k0;
                        s01 += q0 * k1;
                        s02 += q0 * k2;
                        s03 += q0 * k3;
                        s10 += q1 * k0;
                        s11 += q1 * k1;
                        s12 += q1 * k2;
                        s13 += q1 * k3;
                        s20 += q2 * k0;
                        s21 += q2 * k1;
                        s22 += q2 * k2;
                        s23 += q2 * k3;
                        s30 += q3 * k0;
                        s31 += q3 * k1;
                        s32 += q3 * k2;
                        s33 += q3 * k3;
                    }
                    int at0 = rowPosition(r0, heads, tileTokens, headBase, groupSize, firstPos);
                    int at1 = rowPosition(r0 + 1, heads, tileTokens, headBase, groupSize, firstPos);
                    int at2 = rowPosition(r0 + 2, heads, tileTokens, headBase, groupSize, firstPos);
                    int at3 = rowPosition(r0 + 3, heads, tileTokens, headBase, groupSize, firstPos);
                    float sl0 = rowSlope(partials, alibi, r0, heads, headBase, groupSize, kvHead);
                    float sl1 = rowSlope(partials, alibi, r0 + 1, heads, headBase, groupSize, kvHead);
                    float sl2 = rowSlope(partials, alibi, r0 + 2, heads, headBase, groupSize, kvHead);
                    float sl3 = rowSlope(partials, alibi, r0 + 3, heads, headBase, groupSize, kvHead);
                    int mb0 = PrefillTile.maskBits(params, tree, r0, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb1 = PrefillTile.maskBits(params, tree, r0 + 1, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb2 = PrefillTile.maskBits(params, tree, r0 + 2, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb3 = PrefillTile.maskBits(params, tree, r0 + 3, heads, firstToken, tileTokens, qLen, len, c0, window);
                    sc[r0 * chunk + t0] = masked(s00, t0, n, c0 + t0, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 1] = masked(s01, t0 + 1, n, c0 + t0 + 1, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 2] = masked(s02, t0 + 2, n, c0 + t0 + 2, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 3] = masked(s03, t0 + 3, n, c0 + t0 + 3, at0, slotWindow, cap, sl0, mb0);
                    sc[(r0 + 1) * chunk + t0] = masked(s10, t0, n, c0 + t0, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 1] = masked(s11, t0 + 1, n, c0 + t0 + 1, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 2] = masked(s12, t0 + 2, n, c0 + t0 + 2, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 3] = masked(s13, t0 + 3, n, c0 + t0 + 3, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 2) * chunk + t0] = masked(s20, t0, n, c0 + t0, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 1] = masked(s21, t0 + 1, n, c0 + t0 + 1, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 2] = masked(s22, t0 + 2, n, c0 + t0 + 2, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 3] = masked(s23, t0 + 3, n, c0 + t0 + 3, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 3) * chunk + t0] = masked(s30, t0, n, c0 + t0, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 1] = masked(s31, t0 + 1, n, c0 + t0 + 1, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 2] = masked(s32, t0 + 2, n, c0 + t0 + 2, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 3] = masked(s33, t0 + 3, n, c0 + t0 + 3, at3, slotWindow, cap, sl3, mb3);
                } else {
                    for (int i = 0; i < 16; i++) {
                        sc[(r0 + i / 4) * chunk + t0 + i % 4] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
            ctx.localBarrier();
            // 3. per row: new running max and the factor that rescales what came before
            for (int r = tid; r < rows4; r += local) {
                float mOld = mRow[r];
                float m = mOld;
                for (int t = 0; t < chunk; t++) {
                    m = TornadoMath.max(m, sc[r * chunk + t]);
                }
                float corr = 1f;
                if (m > Float.NEGATIVE_INFINITY) {
                    corr = TornadoMath.exp(mOld - m);                 // 0 on the row's first visible chunk
                }
                mRow[r] = m;
                cRow[r] = corr;
            }
            ctx.localBarrier();
            // 4. probabilities, while V replaces K
            for (int idx = tid; idx < rows4 * chunk; idx += local) {
                float s = sc[idx];
                float x = 0f;
                if (s > Float.NEGATIVE_INFINITY) {                    // then the row's max is finite too
                    x = TornadoMath.exp(s - mRow[idx / chunk]);
                }
                sc[idx] = x;
            }
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = vPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, e));
            }
            ctx.localBarrier();
            // 5. acc = acc * corr + P V, 4 rows x 4 dims per work-item; dim block 0 also adds the row sums
            for (int b = tid; b < accBlocks; b += local) {
                int r0 = b / dq * 4;
                int d0 = b - r0 / 4 * dq;
                float f0 = cRow[r0];
                float f1 = cRow[r0 + 1];
                float f2 = cRow[r0 + 2];
                float f3 = cRow[r0 + 3];
                float a00 = acc[r0 * headDim + d0] * f0;
                float a01 = acc[r0 * headDim + d0 + dq] * f0;
                float a02 = acc[r0 * headDim + d0 + 2 * dq] * f0;
                float a03 = acc[r0 * headDim + d0 + 3 * dq] * f0;
                float a10 = acc[(r0 + 1) * headDim + d0] * f1;
                float a11 = acc[(r0 + 1) * headDim + d0 + dq] * f1;
                float a12 = acc[(r0 + 1) * headDim + d0 + 2 * dq] * f1;
                float a13 = acc[(r0 + 1) * headDim + d0 + 3 * dq] * f1;
                float a20 = acc[(r0 + 2) * headDim + d0] * f2;
                float a21 = acc[(r0 + 2) * headDim + d0 + dq] * f2;
                float a22 = acc[(r0 + 2) * headDim + d0 + 2 * dq] * f2;
                float a23 = acc[(r0 + 2) * headDim + d0 + 3 * dq] * f2;
                float a30 = acc[(r0 + 3) * headDim + d0] * f3;
                float a31 = acc[(r0 + 3) * headDim + d0 + dq] * f3;
                float a32 = acc[(r0 + 3) * headDim + d0 + 2 * dq] * f3;
                float a33 = acc[(r0 + 3) * headDim + d0 + 3 * dq] * f3;
                float l0 = 0f;
                float l1 = 0f;
                float l2 = 0f;
                float l3 = 0f;
                for (int t = 0; t < n; t++) {
                    float p0 = sc[r0 * chunk + t];
                    float p1 = sc[(r0 + 1) * chunk + t];
                    float p2 = sc[(r0 + 2) * chunk + t];
                    float p3 = sc[(r0 + 3) * chunk + t];
                    float v0 = kv[t * pitch + d0];
                    float v1 = kv[t * pitch + d0 + dq];
                    float v2 = kv[t * pitch + d0 + 2 * dq];
                    float v3 = kv[t * pitch + d0 + 3 * dq];
                    a00 += p0 * v0;
                    a01 += p0 * v1;
                    a02 += p0 * v2;
                    a03 += p0 * v3;
                    a10 += p1 * v0;
                    a11 += p1 * v1;
                    a12 += p1 * v2;
                    a13 += p1 * v3;
                    a20 += p2 * v0;
                    a21 += p2 * v1;
                    a22 += p2 * v2;
                    a23 += p2 * v3;
                    a30 += p3 * v0;
                    a31 += p3 * v1;
                    a32 += p3 * v2;
                    a33 += p3 * v3;
                    l0 += p0;
                    l1 += p1;
                    l2 += p2;
                    l3 += p3;
                }
                acc[r0 * headDim + d0] = a00;
                acc[r0 * headDim + d0 + dq] = a01;
                acc[r0 * headDim + d0 + 2 * dq] = a02;
                acc[r0 * headDim + d0 + 3 * dq] = a03;
                acc[(r0 + 1) * headDim + d0] = a10;
                acc[(r0 + 1) * headDim + d0 + dq] = a11;
                acc[(r0 + 1) * headDim + d0 + 2 * dq] = a12;
                acc[(r0 + 1) * headDim + d0 + 3 * dq] = a13;
                acc[(r0 + 2) * headDim + d0] = a20;
                acc[(r0 + 2) * headDim + d0 + dq] = a21;
                acc[(r0 + 2) * headDim + d0 + 2 * dq] = a22;
                acc[(r0 + 2) * headDim + d0 + 3 * dq] = a23;
                acc[(r0 + 3) * headDim + d0] = a30;
                acc[(r0 + 3) * headDim + d0 + dq] = a31;
                acc[(r0 + 3) * headDim + d0 + 2 * dq] = a32;
                acc[(r0 + 3) * headDim + d0 + 3 * dq] = a33;
                if (d0 == 0) {
                        lRow[r0] = lRow[r0] * f0 + l0;
                        lRow[r0 + 1] = lRow[r0 + 1] * f1 + l1;
                        lRow[r0 + 2] = lRow[r0 + 2] * f2 + l2;
                        lRow[r0 + 3] = lRow[r0 + 3] * f3 + l3;
                }
            }
            ctx.localBarrier();
        }

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize) {
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc[idx] / lRow[r]);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc[idx]);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, lRow[r]);
                    }
                }
            }
        }
    }

    /** Position of tile row {@code r}'s query token, or -1 for a padding row (which then sees nothing). */
    static int rowPosition(int r, int heads, int tileTokens, int headBase, int groupSize, int firstPos) {
        int token = r / heads;
        return token < tileTokens && headBase + r - token * heads < groupSize ? firstPos + token : -1;
    }

    /**
     * {@code s}, soft-capped at {@code cap} ({@link PagedDecodeKernels#softCap}; 0: as it is) plus ALiBi's {@code slope *
     * (pos - p)} (0: none), when chunk token {@code t} (at {@code pos}) exists, lies in the causal window of a row at
     * {@code p} and bit {@code t} of the row's {@code mask} ({@link PrefillTile#maskBits}) is set, else -inf.
     */
    static float masked(float s, int t, int n, int pos, int p, int window, float cap, float slope, int mask) {
        return t < n && pos <= p && pos >= PrefillTile.visibleFrom(p, window) && ((mask >> t) & 1) != 0
                ? PagedDecodeKernels.softCap(s, cap) + slope * (float) (pos - p) : Float.NEGATIVE_INFINITY;
    }

    /** ALiBi's slope of tile row {@code r}'s query head ({@code partials[base + head]}); 0 where {@code base} is 0. */
    static float rowSlope(FloatArray partials, int base, int r, int heads, int headBase, int groupSize, int kvHead) {
        int token = r / heads;
        float slope = 0f;
        if (base != 0) {   // a padding row (a head past the group) reads the group's last head: its scores are unused
            slope = partials.get(base + kvHead * groupSize + TornadoMath.min(headBase + r - token * heads, groupSize - 1));
        }
        return slope;
    }

    /**
     * {@link #prefillF16} over 8-bit pools (FP8 E4M3, FP8 E5M2 or INT8 codes packed four per word;
     * a test keeps the body the fp16 body under one rewriting rule): each staged K/V element is a
     * code looked up in the table at the start of {@code dequant} ({@link PackedCodes}); the softmax
     * scale times the KV head's K scale scales the queries, the V scale each staged V element.
     *
     * @param dequant {@link PackedCodes#argument} with {@code kFactor} = the softmax scale
     */
    public static void prefillQ8(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,
                                  IntArray blockTables, IntArray contextLens, IntArray qIndptr, IntArray params,
                                  FloatArray out, FloatArray partials, int numKvHeads, int groupSize, int headDim,
                                  int blockSize) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int rows = rowsPerTile(headDim);                      // (token, head) rows of the tile
        int rows4 = (rows + 3) / 4 * 4;                       // rounded up for the 4-row blocks
        int heads = TornadoMath.min(groupSize, rows);         // query heads per tile
        int tokensPerTile = rows / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        int chunk = chunkTokens(headDim);                     // context tokens per chunk, a multiple of 4
        int pitch = headDim + 1;                              // padded row of qs and kv
        int dq = headDim / 4;                                 // a work-item's 4 dims are d0, d0+dq, d0+2dq, d0+3dq
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest
        int gid = ctx.groupIdx;
        int part = PrefillTile.part(gid, params);
        int qTile = PrefillTile.qTile(gid, params);
        int seq = PrefillTile.seq(gid, params, headTiles, numKvHeads);
        int tileTokens = PrefillTile.tileTokens(seq, qTile, part, tokensPerTile, params, qIndptr, contextLens);
        if (tileTokens == 0) {
            return;
        }
        int kvHead = PrefillTile.kvHead(gid, params, headTiles, numKvHeads);
        int headTile = PrefillTile.headTile(gid, params, headTiles);
        int qStart = qIndptr.get(seq);                        // packed row of the sequence's first query
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;               // first query token of the tile, within the sequence
        int len = contextLens.get(seq);
        int tree = PrefillTile.treeRows(params, seq);          // token-tree mask rows (0: causal)
        // position of the tile's first query token; without causality every row at the context's end or past it, and so
        // a masked sequence's (its mask bits decide among the new tokens, a bidirectional span's later ones included)
        int firstPos = params.get(PrefillParams.NON_CAUSAL) != 0 || tree != 0 ? len - 1 : len - qLen + firstToken;
        int lo = PrefillTile.lo(part, tree != 0 ? len - qLen : firstPos, params); // a tree: from its first new token's window
        int hi = TornadoMath.min(len, PrefillTile.hi(part, firstPos, tileTokens, params)); // visible context of the tile: [lo, hi)
        int window = params.get(PrefillParams.WINDOW);
        int slotWindow = tree != 0 ? Integer.MAX_VALUE : window; // a tree row's window is in its mask bits
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int numParts = PrefillTile.parts(len, params);         // partitions of this sequence's context
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;                      // first head of the tile within the group
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);
        int scoreBlocks = (rows4 / 4) * (chunk / 4);          // 4 x 4 score blocks of a chunk
        int accBlocks = (rows4 / 4) * dq;                     // 4 x 4 accumulator blocks

        float[] qs = ctx.allocateFloatLocalArray(Q_PADDED);           // [rows4][pitch], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(ACC_ELEMENTS);      // [rows4][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);        // [chunk][pitch]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(SCORE_ELEMENTS);     // [rows4][chunk]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows4] this chunk's rescale factor
        float scale = dequant.get(DequantTable.SIZE + kvHead);                // softmax scale x this head's K scale
        float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead);
        float cap = PagedDecodeKernels.softCapOf(partials, params.get(PrefillParams.SOFT_CAP));  // logit soft cap (0: none)
        int alibi = params.get(PrefillParams.ALIBI);  // ALiBi slopes in partials (0: none)

        for (int idx = tid; idx < rows4 * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (r < rows && token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[r * pitch + e] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows4; r += local) {
            mRow[r] = Float.NEGATIVE_INFINITY;
            lRow[r] = 0f;
        }
        ctx.localBarrier();

        for (int c0 = lo; c0 < hi; c0 += chunk) {
            int n = TornadoMath.min(chunk, hi - c0);              // context tokens of this chunk
            // 1. the chunk's K rows
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = PackedCodes.value(kPool, dequant,
                        KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, pos % blockSize, e));
            }
            ctx.localBarrier();
            // 2. scores, 4 rows x 4 tokens per work-item; invisible ones are -inf
            for (int b = tid; b < scoreBlocks; b += local) {
                int r0 = b / (chunk / 4) * 4;
                int t0 = (b - r0 / 4 * (chunk / 4)) * 4;
                int qa = r0 * pitch;
                int ka = t0 * pitch;
                if (t0 < n) {
                    float s00 = 0f;
                    float s01 = 0f;
                    float s02 = 0f;
                    float s03 = 0f;
                    float s10 = 0f;
                    float s11 = 0f;
                    float s12 = 0f;
                    float s13 = 0f;
                    float s20 = 0f;
                    float s21 = 0f;
                    float s22 = 0f;
                    float s23 = 0f;
                    float s30 = 0f;
                    float s31 = 0f;
                    float s32 = 0f;
                    float s33 = 0f;
                    for (int e = 0; e < headDim; e++) {
                        float q0 = qs[qa + e];
                        float q1 = qs[qa + pitch + e];
                        float q2 = qs[qa + 2 * pitch + e];
                        float q3 = qs[qa + 3 * pitch + e];
                        float k0 = kv[ka + e];
                        float k1 = kv[ka + pitch + e];
                        float k2 = kv[ka + 2 * pitch + e];
                        float k3 = kv[ka + 3 * pitch + e];
                        s00 += q0 * k0;
                        s01 += q0 * k1;
                        s02 += q0 * k2;
                        s03 += q0 * k3;
                        s10 += q1 * k0;
                        s11 += q1 * k1;
                        s12 += q1 * k2;
                        s13 += q1 * k3;
                        s20 += q2 * k0;
                        s21 += q2 * k1;
                        s22 += q2 * k2;
                        s23 += q2 * k3;
                        s30 += q3 * k0;
                        s31 += q3 * k1;
                        s32 += q3 * k2;
                        s33 += q3 * k3;
                    }
                    int at0 = rowPosition(r0, heads, tileTokens, headBase, groupSize, firstPos);
                    int at1 = rowPosition(r0 + 1, heads, tileTokens, headBase, groupSize, firstPos);
                    int at2 = rowPosition(r0 + 2, heads, tileTokens, headBase, groupSize, firstPos);
                    int at3 = rowPosition(r0 + 3, heads, tileTokens, headBase, groupSize, firstPos);
                    float sl0 = rowSlope(partials, alibi, r0, heads, headBase, groupSize, kvHead);
                    float sl1 = rowSlope(partials, alibi, r0 + 1, heads, headBase, groupSize, kvHead);
                    float sl2 = rowSlope(partials, alibi, r0 + 2, heads, headBase, groupSize, kvHead);
                    float sl3 = rowSlope(partials, alibi, r0 + 3, heads, headBase, groupSize, kvHead);
                    int mb0 = PrefillTile.maskBits(params, tree, r0, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb1 = PrefillTile.maskBits(params, tree, r0 + 1, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb2 = PrefillTile.maskBits(params, tree, r0 + 2, heads, firstToken, tileTokens, qLen, len, c0, window);
                    int mb3 = PrefillTile.maskBits(params, tree, r0 + 3, heads, firstToken, tileTokens, qLen, len, c0, window);
                    sc[r0 * chunk + t0] = masked(s00, t0, n, c0 + t0, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 1] = masked(s01, t0 + 1, n, c0 + t0 + 1, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 2] = masked(s02, t0 + 2, n, c0 + t0 + 2, at0, slotWindow, cap, sl0, mb0);
                    sc[r0 * chunk + t0 + 3] = masked(s03, t0 + 3, n, c0 + t0 + 3, at0, slotWindow, cap, sl0, mb0);
                    sc[(r0 + 1) * chunk + t0] = masked(s10, t0, n, c0 + t0, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 1] = masked(s11, t0 + 1, n, c0 + t0 + 1, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 2] = masked(s12, t0 + 2, n, c0 + t0 + 2, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 1) * chunk + t0 + 3] = masked(s13, t0 + 3, n, c0 + t0 + 3, at1, slotWindow, cap, sl1, mb1);
                    sc[(r0 + 2) * chunk + t0] = masked(s20, t0, n, c0 + t0, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 1] = masked(s21, t0 + 1, n, c0 + t0 + 1, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 2] = masked(s22, t0 + 2, n, c0 + t0 + 2, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 2) * chunk + t0 + 3] = masked(s23, t0 + 3, n, c0 + t0 + 3, at2, slotWindow, cap, sl2, mb2);
                    sc[(r0 + 3) * chunk + t0] = masked(s30, t0, n, c0 + t0, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 1] = masked(s31, t0 + 1, n, c0 + t0 + 1, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 2] = masked(s32, t0 + 2, n, c0 + t0 + 2, at3, slotWindow, cap, sl3, mb3);
                    sc[(r0 + 3) * chunk + t0 + 3] = masked(s33, t0 + 3, n, c0 + t0 + 3, at3, slotWindow, cap, sl3, mb3);
                } else {
                    for (int i = 0; i < 16; i++) {
                        sc[(r0 + i / 4) * chunk + t0 + i % 4] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
            ctx.localBarrier();
            // 3. per row: new running max and the factor that rescales what came before
            for (int r = tid; r < rows4; r += local) {
                float mOld = mRow[r];
                float m = mOld;
                for (int t = 0; t < chunk; t++) {
                    m = TornadoMath.max(m, sc[r * chunk + t]);
                }
                float corr = 1f;
                if (m > Float.NEGATIVE_INFINITY) {
                    corr = TornadoMath.exp(mOld - m);                 // 0 on the row's first visible chunk
                }
                mRow[r] = m;
                cRow[r] = corr;
            }
            ctx.localBarrier();
            // 4. probabilities, while V replaces K
            for (int idx = tid; idx < rows4 * chunk; idx += local) {
                float s = sc[idx];
                float x = 0f;
                if (s > Float.NEGATIVE_INFINITY) {                    // then the row's max is finite too
                    x = TornadoMath.exp(s - mRow[idx / chunk]);
                }
                sc[idx] = x;
            }
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int e = idx - t * headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[t * pitch + e] = PackedCodes.value(vPool, dequant,
                        KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, pos % blockSize, e)) * vScale;
            }
            ctx.localBarrier();
            // 5. acc = acc * corr + P V, 4 rows x 4 dims per work-item; dim block 0 also adds the row sums
            for (int b = tid; b < accBlocks; b += local) {
                int r0 = b / dq * 4;
                int d0 = b - r0 / 4 * dq;
                float f0 = cRow[r0];
                float f1 = cRow[r0 + 1];
                float f2 = cRow[r0 + 2];
                float f3 = cRow[r0 + 3];
                float a00 = acc[r0 * headDim + d0] * f0;
                float a01 = acc[r0 * headDim + d0 + dq] * f0;
                float a02 = acc[r0 * headDim + d0 + 2 * dq] * f0;
                float a03 = acc[r0 * headDim + d0 + 3 * dq] * f0;
                float a10 = acc[(r0 + 1) * headDim + d0] * f1;
                float a11 = acc[(r0 + 1) * headDim + d0 + dq] * f1;
                float a12 = acc[(r0 + 1) * headDim + d0 + 2 * dq] * f1;
                float a13 = acc[(r0 + 1) * headDim + d0 + 3 * dq] * f1;
                float a20 = acc[(r0 + 2) * headDim + d0] * f2;
                float a21 = acc[(r0 + 2) * headDim + d0 + dq] * f2;
                float a22 = acc[(r0 + 2) * headDim + d0 + 2 * dq] * f2;
                float a23 = acc[(r0 + 2) * headDim + d0 + 3 * dq] * f2;
                float a30 = acc[(r0 + 3) * headDim + d0] * f3;
                float a31 = acc[(r0 + 3) * headDim + d0 + dq] * f3;
                float a32 = acc[(r0 + 3) * headDim + d0 + 2 * dq] * f3;
                float a33 = acc[(r0 + 3) * headDim + d0 + 3 * dq] * f3;
                float l0 = 0f;
                float l1 = 0f;
                float l2 = 0f;
                float l3 = 0f;
                for (int t = 0; t < n; t++) {
                    float p0 = sc[r0 * chunk + t];
                    float p1 = sc[(r0 + 1) * chunk + t];
                    float p2 = sc[(r0 + 2) * chunk + t];
                    float p3 = sc[(r0 + 3) * chunk + t];
                    float v0 = kv[t * pitch + d0];
                    float v1 = kv[t * pitch + d0 + dq];
                    float v2 = kv[t * pitch + d0 + 2 * dq];
                    float v3 = kv[t * pitch + d0 + 3 * dq];
                    a00 += p0 * v0;
                    a01 += p0 * v1;
                    a02 += p0 * v2;
                    a03 += p0 * v3;
                    a10 += p1 * v0;
                    a11 += p1 * v1;
                    a12 += p1 * v2;
                    a13 += p1 * v3;
                    a20 += p2 * v0;
                    a21 += p2 * v1;
                    a22 += p2 * v2;
                    a23 += p2 * v3;
                    a30 += p3 * v0;
                    a31 += p3 * v1;
                    a32 += p3 * v2;
                    a33 += p3 * v3;
                    l0 += p0;
                    l1 += p1;
                    l2 += p2;
                    l3 += p3;
                }
                acc[r0 * headDim + d0] = a00;
                acc[r0 * headDim + d0 + dq] = a01;
                acc[r0 * headDim + d0 + 2 * dq] = a02;
                acc[r0 * headDim + d0 + 3 * dq] = a03;
                acc[(r0 + 1) * headDim + d0] = a10;
                acc[(r0 + 1) * headDim + d0 + dq] = a11;
                acc[(r0 + 1) * headDim + d0 + 2 * dq] = a12;
                acc[(r0 + 1) * headDim + d0 + 3 * dq] = a13;
                acc[(r0 + 2) * headDim + d0] = a20;
                acc[(r0 + 2) * headDim + d0 + dq] = a21;
                acc[(r0 + 2) * headDim + d0 + 2 * dq] = a22;
                acc[(r0 + 2) * headDim + d0 + 3 * dq] = a23;
                acc[(r0 + 3) * headDim + d0] = a30;
                acc[(r0 + 3) * headDim + d0 + dq] = a31;
                acc[(r0 + 3) * headDim + d0 + 2 * dq] = a32;
                acc[(r0 + 3) * headDim + d0 + 3 * dq] = a33;
                if (d0 == 0) {
                        lRow[r0] = lRow[r0] * f0 + l0;
                        lRow[r0 + 1] = lRow[r0 + 1] * f1 + l1;
                        lRow[r0 + 2] = lRow[r0 + 2] * f2 + l2;
                        lRow[r0 + 3] = lRow[r0 + 3] * f3 + l3;
                }
            }
            ctx.localBarrier();
        }

        // one partition: the normalised output; several: this partition's state for mergePartitions
        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            if (token < tileTokens && h < groupSize) {
                int qRow = (qStart + firstToken + token) * numQHeads + kvHead * groupSize + h; // [totalQueries][numQHeads]
                if (numParts == 1 && params.get(PrefillParams.MERGED) == 0) { // merged rows (sinks, lse): the merge writes them
                    out.set(qRow * headDim + e, acc[idx] / lRow[r]);
                } else {
                    int at = (qRow * maxParts + part) * (headDim + 2);
                    partials.set(at + e, acc[idx]);
                    if (e == 0) {
                        partials.set(at + headDim, mRow[r]);
                        partials.set(at + headDim + 1, lRow[r]);
                    }
                }
            }
        }
    }

    /**
     * Merges the partitions of every query row whose sequence was split: one output element per
     * work-item and round, grid-stride, so any global size works. With {@link PrefillParams#MERGED} every row
     * comes here (one partition or more) and head {@code h}'s sink {@code sinks[h]} ({@code [numQHeads]} of the
     * plan's layer and shard; -inf for none) joins its max and sum as a score without a value. With
     * {@link PrefillParams#LSE} each row's element 0 also writes the row's log-sum-exp.
     */
    public static void mergePartitions(KernelContext ctx, IntArray contextLens, IntArray qSeq, IntArray params,
                                       FloatArray partials, FloatArray sinks, FloatArray out, int numQHeads, int headDim) {
        int merged = params.get(PrefillParams.MERGED);
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0 || (params.get(PrefillParams.MAX_PARTITIONS) == 1 && merged == 0)) {
            return;
        }
        int lseAt = params.get(PrefillParams.LSE);
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int partTokens = params.get(PrefillParams.PARTITION_TOKENS);
        int total = params.get(PrefillParams.TOTAL_QUERIES) * numQHeads * headDim;
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int qRow = idx / headDim;                          // [totalQueries][numQHeads] row
            int d = idx - qRow * headDim;
            int seq = qSeq.get(qRow / numQHeads);
            int parts = (contextLens.get(seq) + partTokens - 1) / partTokens;
            if (parts > 1 || merged != 0) {
                int base = qRow * maxParts * (headDim + 2);
                // the head's sink: a score of weight exp(sink - mAll) and no value (-inf: none)
                float sink = merged != 0 ? sinks.get(qRow % numQHeads) : Float.NEGATIVE_INFINITY;
                float mAll = sink;
                for (int j = 0; j < parts; j++) {
                    mAll = TornadoMath.max(mAll, partials.get(base + j * (headDim + 2) + headDim));
                }
                float sum = TornadoMath.exp(sink - mAll);      // 0 without a sink
                float o = 0f;
                for (int j = 0; j < parts; j++) {
                    int pj = base + j * (headDim + 2);
                    float m = partials.get(pj + headDim);
                    if (m > Float.NEGATIVE_INFINITY) {         // a partition the row sees nothing of adds nothing
                        float w = TornadoMath.exp(m - mAll);
                        sum += partials.get(pj + headDim + 1) * w;
                        o += partials.get(pj + d) * w;
                    }
                }
                out.set(idx, o / sum);
                if (lseAt != 0 && d == 0) { // the row's log-sum-exp (PrefillParams.LSE)
                    out.set(lseAt + qRow, mAll + TornadoMath.log(sum));
                }
            }
        }
    }
}
