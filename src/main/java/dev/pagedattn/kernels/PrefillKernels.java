package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
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
 *  kPool, vPool  [numLayers][numBlocks][numKvHeads][blockSize][headDim]  fp16 or fp32 (KvLayout)
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
 *   <li>every (row, token) score, masked to the row's causal window (-inf outside);</li>
 *   <li>per row: the chunk's max, the new running max and the rescale factor;</li>
 *   <li>every probability {@code exp(s - max)}, while V replaces K in local memory;</li>
 *   <li>every (row, dim) accumulator: rescale, add P V; one work-item per row adds the row sum.</li>
 * </ol>
 * Rows of q and of the chunk are padded to {@code headDim + 1} floats so that the score phase,
 * where a warp reads 32 tokens (or two rows) at the same dim, hits 32 different banks. Local memory
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
    /** [rows][headDim + 1]: the budget plus one pad per row. */
    private static final int Q_PADDED = Q_ELEMENTS + MAX_ROWS;
    /** [chunk][headDim + 1]: 32 tokens at head dim 128, 16 at 256. */
    private static final int KV_ELEMENTS = KV_TILE * (128 + 2);
    /** [rows][chunk] */
    private static final int SCORE_ELEMENTS = MAX_ROWS * KV_TILE;
    /** Local memory per work-group (fits the 48 KB of static shared memory). */
    public static final int LOCAL_BYTES = 4 * (Q_PADDED + Q_ELEMENTS + KV_ELEMENTS + SCORE_ELEMENTS + 3 * MAX_ROWS);

    private PrefillKernels() {
    }

    /** (token, head) rows of a tile for a head dimension: Q_ELEMENTS / headDim, at most MAX_ROWS. */
    public static int rowsPerTile(int headDim) {
        return TornadoMath.min(MAX_ROWS, Q_ELEMENTS / headDim);
    }

    /** Context tokens per chunk for a head dimension: as many padded rows as fit, at most KV_TILE. */
    public static int chunkTokens(int headDim) {
        return TornadoMath.min(KV_TILE, KV_ELEMENTS / (headDim + 1));
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
        int heads = TornadoMath.min(groupSize, rows);         // query heads per tile
        int tokensPerTile = rows / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        int chunk = chunkTokens(headDim);                     // context tokens per chunk
        int pitch = headDim + 1;                              // padded row of qs and kv
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest
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
        int qStart = qIndptr.get(seq);                        // packed row of the sequence's first query
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;               // first query token of the tile, within the sequence
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
        int firstPos = len - qLen + firstToken;               // position of the tile's first query token
        int window = params.get(PrefillParams.WINDOW);
        int lo = TornadoMath.max(part * partTokens, TornadoMath.max(0, firstPos - window + 1));
        int hi = TornadoMath.min((part + 1) * partTokens, firstPos + tileTokens); // visible context of the tile: [lo, hi)
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;                      // first head of the tile within the group
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);

        float[] qs = ctx.allocateFloatLocalArray(Q_PADDED);           // [rows][pitch], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(Q_ELEMENTS);        // [rows][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);        // [chunk][pitch]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(SCORE_ELEMENTS);     // [rows][chunk]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows] this chunk's rescale factor

        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[r * pitch + e] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows; r += local) {
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
            // 2. scores of (row, token); invisible ones (causal, window, past the chunk, padding rows) are -inf
            for (int idx = tid; idx < rows * chunk; idx += local) {
                int r = idx / chunk;
                int t = idx - r * chunk;
                int token = r / heads;
                int h = headBase + r - token * heads;
                int p = firstPos + token;
                int pos = c0 + t;
                float s = Float.NEGATIVE_INFINITY;
                if (t < n && token < tileTokens && h < groupSize && pos <= p && pos >= p - window + 1) {
                    int qa = r * pitch;
                    int ka = t * pitch;
                    float s0 = 0f;
                    float s1 = 0f;
                    for (int e = 0; e < headDim; e += 8) {
                        s0 += qs[qa + e] * kv[ka + e] + qs[qa + e + 1] * kv[ka + e + 1]
                                + qs[qa + e + 2] * kv[ka + e + 2] + qs[qa + e + 3] * kv[ka + e + 3];
                        s1 += qs[qa + e + 4] * kv[ka + e + 4] + qs[qa + e + 5] * kv[ka + e + 5]
                                + qs[qa + e + 6] * kv[ka + e + 6] + qs[qa + e + 7] * kv[ka + e + 7];
                    }
                    s = s0 + s1;
                }
                sc[idx] = s;
            }
            ctx.localBarrier();
            // 3. per row: new running max and the factor that rescales what came before
            for (int r = tid; r < rows; r += local) {
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
            for (int idx = tid; idx < rows * chunk; idx += local) {
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
            // 5. acc = acc * corr + P V; the dim-0 work-item of each row also updates the row sum
            for (int idx = tid; idx < rows * headDim; idx += local) {
                int r = idx / headDim;
                int e = idx - r * headDim;
                float corr = cRow[r];
                float a = acc[idx] * corr;
                float sum = 0f;
                for (int t = 0; t < n; t++) {
                    float x = sc[r * chunk + t];
                    a += x * kv[t * pitch + e];
                    sum += x;
                }
                acc[idx] = a;
                if (e == 0) {
                    lRow[r] = lRow[r] * corr + sum;
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
                if (numParts == 1) {
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
        int heads = TornadoMath.min(groupSize, rows);         // query heads per tile
        int tokensPerTile = rows / heads;                     // query tokens per tile
        int headTiles = (groupSize + heads - 1) / heads;
        int chunk = chunkTokens(headDim);                     // context tokens per chunk
        int pitch = headDim + 1;                              // padded row of qs and kv
        // work-group -> (seq, kvHead, headTile, qTile, part), part fastest
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
        int qStart = qIndptr.get(seq);                        // packed row of the sequence's first query
        int qLen = qIndptr.get(seq + 1) - qStart;
        int firstToken = qTile * tokensPerTile;               // first query token of the tile, within the sequence
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
        int firstPos = len - qLen + firstToken;               // position of the tile's first query token
        int window = params.get(PrefillParams.WINDOW);
        int lo = TornadoMath.max(part * partTokens, TornadoMath.max(0, firstPos - window + 1));
        int hi = TornadoMath.min((part + 1) * partTokens, firstPos + tileTokens); // visible context of the tile: [lo, hi)
        int numQHeads = numKvHeads * groupSize;
        int headBase = headTile * heads;                      // first head of the tile within the group
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(PrefillParams.LAYER_BASE);
        int maxBlocks = params.get(PrefillParams.MAX_BLOCKS_PER_SEQ);

        float[] qs = ctx.allocateFloatLocalArray(Q_PADDED);           // [rows][pitch], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(Q_ELEMENTS);        // [rows][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);        // [chunk][pitch]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(SCORE_ELEMENTS);     // [rows][chunk]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);         // [rows] this chunk's rescale factor

        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[r * pitch + e] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows; r += local) {
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
            // 2. scores of (row, token); invisible ones (causal, window, past the chunk, padding rows) are -inf
            for (int idx = tid; idx < rows * chunk; idx += local) {
                int r = idx / chunk;
                int t = idx - r * chunk;
                int token = r / heads;
                int h = headBase + r - token * heads;
                int p = firstPos + token;
                int pos = c0 + t;
                float s = Float.NEGATIVE_INFINITY;
                if (t < n && token < tileTokens && h < groupSize && pos <= p && pos >= p - window + 1) {
                    int qa = r * pitch;
                    int ka = t * pitch;
                    float s0 = 0f;
                    float s1 = 0f;
                    for (int e = 0; e < headDim; e += 8) {
                        s0 += qs[qa + e] * kv[ka + e] + qs[qa + e + 1] * kv[ka + e + 1]
                                + qs[qa + e + 2] * kv[ka + e + 2] + qs[qa + e + 3] * kv[ka + e + 3];
                        s1 += qs[qa + e + 4] * kv[ka + e + 4] + qs[qa + e + 5] * kv[ka + e + 5]
                                + qs[qa + e + 6] * kv[ka + e + 6] + qs[qa + e + 7] * kv[ka + e + 7];
                    }
                    s = s0 + s1;
                }
                sc[idx] = s;
            }
            ctx.localBarrier();
            // 3. per row: new running max and the factor that rescales what came before
            for (int r = tid; r < rows; r += local) {
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
            for (int idx = tid; idx < rows * chunk; idx += local) {
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
            // 5. acc = acc * corr + P V; the dim-0 work-item of each row also updates the row sum
            for (int idx = tid; idx < rows * headDim; idx += local) {
                int r = idx / headDim;
                int e = idx - r * headDim;
                float corr = cRow[r];
                float a = acc[idx] * corr;
                float sum = 0f;
                for (int t = 0; t < n; t++) {
                    float x = sc[r * chunk + t];
                    a += x * kv[t * pitch + e];
                    sum += x;
                }
                acc[idx] = a;
                if (e == 0) {
                    lRow[r] = lRow[r] * corr + sum;
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
                if (numParts == 1) {
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
     * work-item and round, grid-stride, so any global size works.
     */
    public static void mergePartitions(KernelContext ctx, IntArray contextLens, IntArray qSeq, IntArray params,
                                       FloatArray partials, FloatArray out, int numQHeads, int headDim) {
        if (params.get(PrefillParams.SKIP_ATTENTION) != 0 || params.get(PrefillParams.MAX_PARTITIONS) == 1) {
            return;
        }
        int maxParts = params.get(PrefillParams.MAX_PARTITIONS);
        int partTokens = params.get(PrefillParams.PARTITION_TOKENS);
        int total = params.get(PrefillParams.TOTAL_QUERIES) * numQHeads * headDim;
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int qRow = idx / headDim;                          // [totalQueries][numQHeads] row
            int d = idx - qRow * headDim;
            int seq = qSeq.get(qRow / numQHeads);
            int parts = (contextLens.get(seq) + partTokens - 1) / partTokens;
            if (parts > 1) {
                int base = qRow * maxParts * (headDim + 2);
                float mAll = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < parts; j++) {
                    mAll = TornadoMath.max(mAll, partials.get(base + j * (headDim + 2) + headDim));
                }
                float sum = 0f;
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
            }
        }
    }
}
