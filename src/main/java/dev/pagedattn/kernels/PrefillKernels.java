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
 * them when the group is larger than a tile) for {@code rows / heads} consecutive query tokens.
 * It walks the context visible to any of its rows in chunks of {@link #KV_TILE} tokens: each
 * chunk's K rows are read once into local memory and scored against every row, masked to the
 * causal window of each row; the online softmax updates each row's max and sum while the V rows
 * replace K in local memory; then every row accumulates its weighted V. Local memory is
 * {@value #LOCAL_BYTES} bytes, fixed. With one partition the group writes the normalised output;
 * with several, each writes its state and {@link #mergePartitions} combines them (log-sum-exp).
 * Any local size works (every loop strides by it); 128 is what the plan uses.
 */
public final class PrefillKernels {
    /** Context tokens per chunk held in local memory. */
    public static final int KV_TILE = 16;
    /** Budget for one [rows][headDim] local array, in floats. */
    public static final int Q_ELEMENTS = 2048;
    /** Most (token, head) rows of a tile. */
    public static final int MAX_ROWS = 64;
    private static final int KV_ELEMENTS = KV_TILE * PagedDecodeKernels.MAX_HEAD_DIM;
    /** Local memory per work-group (fits the 48 KB of static shared memory). */
    public static final int LOCAL_BYTES = 4 * (2 * Q_ELEMENTS + KV_ELEMENTS + MAX_ROWS * KV_TILE + 3 * MAX_ROWS);

    private PrefillKernels() {
    }

    /** (token, head) rows of a tile for a head dimension: Q_ELEMENTS / headDim, at most MAX_ROWS. */
    public static int rowsPerTile(int headDim) {
        return TornadoMath.min(MAX_ROWS, Q_ELEMENTS / headDim);
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

        float[] qs = ctx.allocateFloatLocalArray(Q_ELEMENTS);          // [rows][headDim], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(Q_ELEMENTS);         // [rows][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);         // [KV_TILE][headDim]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(MAX_ROWS * KV_TILE);  // [rows][KV_TILE]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);          // [rows] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);          // [rows] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);          // [rows] this chunk's rescale factor

        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[idx] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows; r += local) {
            mRow[r] = Float.NEGATIVE_INFINITY;
            lRow[r] = 0f;
        }
        ctx.localBarrier();

        for (int c0 = lo; c0 < hi; c0 += KV_TILE) {
            int n = TornadoMath.min(KV_TILE, hi - c0);            // context tokens of this chunk
            // 1. the chunk's K rows, widened once for every row of the tile
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[idx] = kPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, idx - t * headDim)).getFloat32();
            }
            ctx.localBarrier();
            // 2. scores of (row, token); invisible ones (causal, window, padding) are -inf
            for (int idx = tid; idx < rows * KV_TILE; idx += local) {
                int r = idx / KV_TILE;
                int t = idx - r * KV_TILE;
                int token = r / heads;
                int h = headBase + r - token * heads;
                int p = firstPos + token;
                int pos = c0 + t;
                float s = Float.NEGATIVE_INFINITY;
                if (t < n && token < tileTokens && h < groupSize && pos <= p && pos >= p - window + 1) {
                    float dot = 0f;
                    for (int e = 0; e < headDim; e++) {
                        dot += qs[r * headDim + e] * kv[t * headDim + e];
                    }
                    s = dot;
                }
                sc[idx] = s;
            }
            ctx.localBarrier();
            // 3. online softmax per row, while the other work-items load the chunk's V rows
            for (int r = tid; r < rows; r += local) {
                float mOld = mRow[r];
                float blockMax = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < KV_TILE; t++) {
                    blockMax = TornadoMath.max(blockMax, sc[r * KV_TILE + t]);
                }
                float mNew = TornadoMath.max(mOld, blockMax);
                float corr = 1f;
                float sum = 0f;
                if (mNew > Float.NEGATIVE_INFINITY) {
                    corr = TornadoMath.exp(mOld - mNew);          // 0 on the row's first visible chunk
                    for (int t = 0; t < KV_TILE; t++) {
                        float x = TornadoMath.exp(sc[r * KV_TILE + t] - mNew);
                        sc[r * KV_TILE + t] = x;
                        sum += x;
                    }
                } else {
                    for (int t = 0; t < KV_TILE; t++) {           // nothing visible yet: weights 0, state kept
                        sc[r * KV_TILE + t] = 0f;
                    }
                }
                lRow[r] = lRow[r] * corr + sum;
                mRow[r] = mNew;
                cRow[r] = corr;
            }
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[idx] = vPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, idx - t * headDim)).getFloat32();
            }
            ctx.localBarrier();
            // 4. acc = acc * corr + P V
            for (int idx = tid; idx < rows * headDim; idx += local) {
                int r = idx / headDim;
                int e = idx - r * headDim;
                float a = acc[idx] * cRow[r];
                for (int t = 0; t < n; t++) {
                    a += sc[r * KV_TILE + t] * kv[t * headDim + e];
                }
                acc[idx] = a;
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

        float[] qs = ctx.allocateFloatLocalArray(Q_ELEMENTS);          // [rows][headDim], pre-scaled
        float[] acc = ctx.allocateFloatLocalArray(Q_ELEMENTS);         // [rows][headDim]
        float[] kv = ctx.allocateFloatLocalArray(KV_ELEMENTS);         // [KV_TILE][headDim]: K, then V of the chunk
        float[] sc = ctx.allocateFloatLocalArray(MAX_ROWS * KV_TILE);  // [rows][KV_TILE]: scores, then probabilities
        float[] mRow = ctx.allocateFloatLocalArray(MAX_ROWS);          // [rows] running max
        float[] lRow = ctx.allocateFloatLocalArray(MAX_ROWS);          // [rows] running sum
        float[] cRow = ctx.allocateFloatLocalArray(MAX_ROWS);          // [rows] this chunk's rescale factor

        for (int idx = tid; idx < rows * headDim; idx += local) {
            int r = idx / headDim;
            int e = idx - r * headDim;
            int token = r / heads;
            int h = headBase + r - token * heads;
            float x = 0f;
            if (token < tileTokens && h < groupSize) {
                x = q.get(((qStart + firstToken + token) * numQHeads + kvHead * groupSize + h) * headDim + e) * scale;
            }
            qs[idx] = x;
            acc[idx] = 0f;
        }
        for (int r = tid; r < rows; r += local) {
            mRow[r] = Float.NEGATIVE_INFINITY;
            lRow[r] = 0f;
        }
        ctx.localBarrier();

        for (int c0 = lo; c0 < hi; c0 += KV_TILE) {
            int n = TornadoMath.min(KV_TILE, hi - c0);            // context tokens of this chunk
            // 1. the chunk's K rows, widened once for every row of the tile
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[idx] = kPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, idx - t * headDim));
            }
            ctx.localBarrier();
            // 2. scores of (row, token); invisible ones (causal, window, padding) are -inf
            for (int idx = tid; idx < rows * KV_TILE; idx += local) {
                int r = idx / KV_TILE;
                int t = idx - r * KV_TILE;
                int token = r / heads;
                int h = headBase + r - token * heads;
                int p = firstPos + token;
                int pos = c0 + t;
                float s = Float.NEGATIVE_INFINITY;
                if (t < n && token < tileTokens && h < groupSize && pos <= p && pos >= p - window + 1) {
                    float dot = 0f;
                    for (int e = 0; e < headDim; e++) {
                        dot += qs[r * headDim + e] * kv[t * headDim + e];
                    }
                    s = dot;
                }
                sc[idx] = s;
            }
            ctx.localBarrier();
            // 3. online softmax per row, while the other work-items load the chunk's V rows
            for (int r = tid; r < rows; r += local) {
                float mOld = mRow[r];
                float blockMax = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < KV_TILE; t++) {
                    blockMax = TornadoMath.max(blockMax, sc[r * KV_TILE + t]);
                }
                float mNew = TornadoMath.max(mOld, blockMax);
                float corr = 1f;
                float sum = 0f;
                if (mNew > Float.NEGATIVE_INFINITY) {
                    corr = TornadoMath.exp(mOld - mNew);          // 0 on the row's first visible chunk
                    for (int t = 0; t < KV_TILE; t++) {
                        float x = TornadoMath.exp(sc[r * KV_TILE + t] - mNew);
                        sc[r * KV_TILE + t] = x;
                        sum += x;
                    }
                } else {
                    for (int t = 0; t < KV_TILE; t++) {           // nothing visible yet: weights 0, state kept
                        sc[r * KV_TILE + t] = 0f;
                    }
                }
                lRow[r] = lRow[r] * corr + sum;
                mRow[r] = mNew;
                cRow[r] = corr;
            }
            for (int idx = tid; idx < n * headDim; idx += local) {
                int t = idx / headDim;
                int pos = c0 + t;
                int block = blockTables.get(seq * maxBlocks + pos / blockSize);
                kv[idx] = vPool.get(KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                        pos % blockSize, idx - t * headDim));
            }
            ctx.localBarrier();
            // 4. acc = acc * corr + P V
            for (int idx = tid; idx < rows * headDim; idx += local) {
                int r = idx / headDim;
                int e = idx - r * headDim;
                float a = acc[idx] * cRow[r];
                for (int t = 0; t < n; t++) {
                    a += sc[r * KV_TILE + t] * kv[t * headDim + e];
                }
                acc[idx] = a;
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
