package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Paged decode attention as {@link KernelContext} kernels: the fused/split-K attention kernel (one
 * work-group per (sequence, KV head, head tile, partition)) and the log-sum-exp merge.
 *
 * <h2>Shapes</h2>
 * <pre>
 *  kPool, vPool  [numLayers][numBlocks][numKvHeads][blockSize][headDim]  fp16 or fp32 (KvLayout)
 *  q             [numSeqs][numQHeads][headDim]  fp32
 *  blockTables   [numSeqs][maxBlocksPerSeq]     physical block ids
 *  contextLens   [numSeqs]                      >= 1
 *  params        [DecodeParams.SIZE]            per-step values (see DecodeParams)
 *  out           [numSeqs][numQHeads][headDim]  fp32
 *  partials      [numSeqs][numQHeads][maxPartitions][headDim + 2]  unnormalised acc, then max, sum
 * </pre>
 *
 * <h2>Work decomposition of the attention kernel</h2>
 * A work-group of {@link #WORK_GROUP} work-items owns one (sequence, KV head) pair, up to
 * {@link #MAX_HEADS_PER_TILE} of its query heads (the head tile) and one partition of its tokens.
 * It reads every K and V element of that range exactly once for all heads of the tile (GQA reuse).
 * The work-items form {@code TP = WORK_GROUP / L} token groups of {@code L = headDim / DS} lanes;
 * lane {@code j} owns dims {@code j, j + L, j + 2L, ...} ({@code DS} of them), so the lanes of a
 * token group read one contiguous K row together (coalesced). The query slice of every head in
 * the tile stays in registers. Each round, every token group takes {@code U} tokens: lanes compute
 * partial dot products, a local-memory reduction turns them into scores, and each token group keeps
 * its own online-softmax state (max, sum, accumulator). At the end the token groups are merged by
 * log-sum-exp in local memory. Two barriers per round.
 *
 * <p>{@code tuning = DS * 16 + U} is frozen at JIT time, like every scalar argument, so the
 * register arrays are indexed by constants after unrolling.
 */
public final class PagedDecodeKernels {
    /** Work-items per work-group of the attention kernel. */
    public static final int WORK_GROUP = 128;
    public static final int MAX_HEADS_PER_TILE = 8;
    public static final int MAX_DIMS_PER_LANE = 8;
    public static final int MAX_TOKENS_PER_ROUND = 4;
    /** Token groups per work-group are at most this: lanes per token group {@code headDim / DS} >= 4. */
    public static final int MAX_TOKEN_GROUPS = 32;
    public static final int MAX_HEAD_DIM = 256;

    private static final int RED_SIZE = WORK_GROUP * MAX_TOKENS_PER_ROUND * MAX_HEADS_PER_TILE; // 4096 floats
    private static final int SCORE_SIZE = MAX_TOKEN_GROUPS * MAX_TOKENS_PER_ROUND * MAX_HEADS_PER_TILE; // 1024
    private static final int STATE_SIZE = MAX_TOKEN_GROUPS * MAX_HEADS_PER_TILE; // 256
    private static final int ACC_SIZE = MAX_HEADS_PER_TILE * MAX_HEAD_DIM; // 2048

    private PagedDecodeKernels() {
    }

    /** Attention over fp16 pools; see the class comment. Global size: groups x {@link #WORK_GROUP}. */
    public static void attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale, int tuning) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int ds = tuning >> 4;
        int u = tuning & 15;
        int lanes = headDim / ds;
        int tokenGroups = WORK_GROUP / lanes;
        int tid = ctx.localIdx;
        int tg = tid / lanes;
        int lane = tid - tg * lanes;
        boolean active = tg < tokenGroups;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int headTiles = (groupSize + MAX_HEADS_PER_TILE - 1) / MAX_HEADS_PER_TILE;
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int tile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        int numSeqs = params.get(DecodeParams.NUM_SEQS);
        if (seq >= numSeqs) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int start = part * partTokens;
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + partTokens);
        // A compile-time constant (groupSize is frozen), so loops over heads have constant trip
        // counts; heads past the group in a last, partial tile get a zero query and are not written.
        int heads = TornadoMath.min(MAX_HEADS_PER_TILE, groupSize);
        int headsLeft = groupSize - tile * MAX_HEADS_PER_TILE;
        int numQHeads = numKvHeads * groupSize;
        int firstHead = kvHead * groupSize + tile * MAX_HEADS_PER_TILE;
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);      // [tg][u][head][lane] partial dots
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE); // [tg][u][head]
        float[] groupMax = ctx.allocateFloatLocalArray(STATE_SIZE); // [tg][head]
        float[] groupSum = ctx.allocateFloatLocalArray(STATE_SIZE); // [tg][head]
        float[] accSum = ctx.allocateFloatLocalArray(ACC_SIZE);   // [head][headDim]

        float[] qr = new float[MAX_HEADS_PER_TILE * MAX_DIMS_PER_LANE];   // [head][i] pre-scaled query slice
        float[] acc = new float[MAX_HEADS_PER_TILE * MAX_DIMS_PER_LANE];  // [head][i]
        float[] kr = new float[MAX_TOKENS_PER_ROUND * MAX_DIMS_PER_LANE]; // [u][i]
        float[] vr = new float[MAX_DIMS_PER_LANE];
        float[] p = new float[MAX_TOKENS_PER_ROUND * MAX_HEADS_PER_TILE]; // [u][head]
        float[] m = new float[MAX_HEADS_PER_TILE];
        float[] l = new float[MAX_HEADS_PER_TILE];

        for (int g = 0; g < MAX_HEADS_PER_TILE; g++) {
            m[g] = Float.NEGATIVE_INFINITY;
            l[g] = 0f;
            for (int i = 0; i < ds; i++) {
                acc[g * MAX_DIMS_PER_LANE + i] = 0f;
                qr[g * MAX_DIMS_PER_LANE + i] = 0f;
            }
        }
        if (active) {
            for (int g = 0; g < heads; g++) {
                if (g < headsLeft) {
                    int qBase = (seq * numQHeads + firstHead + g) * headDim + lane;
                    for (int i = 0; i < ds; i++) {
                        qr[g * MAX_DIMS_PER_LANE + i] = q.get(qBase + i * lanes) * scale;
                    }
                }
            }
        }
        for (int idx = tid; idx < heads * headDim; idx += WORK_GROUP) {
            accSum[idx] = 0f;
        }

        int perRound = tokenGroups * u;
        int rounds = (end - start + perRound - 1) / perRound;
        for (int r = 0; r < rounds; r++) {
            int roundBase = start + r * perRound;
            // 1. partial dot products of this lane's dims for U tokens and every head of the tile
            for (int t = 0; t < u; t++) {
                int token = roundBase + t * tokenGroups + tg;
                if (active && token < end) {
                    int block = blockTables.get(seq * maxBlocks + token / blockSize);
                    int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, token % blockSize, lane);
                    for (int i = 0; i < ds; i++) {
                        kr[t * MAX_DIMS_PER_LANE + i] = kPool.get(row + i * lanes).getFloat32();
                    }
                } else {
                    for (int i = 0; i < ds; i++) {
                        kr[t * MAX_DIMS_PER_LANE + i] = 0f;
                    }
                }
            }
            if (active) {
                for (int t = 0; t < u; t++) {
                    for (int g = 0; g < heads; g++) {
                        float s = 0f;
                        for (int i = 0; i < ds; i++) {
                            s += qr[g * MAX_DIMS_PER_LANE + i] * kr[t * MAX_DIMS_PER_LANE + i];
                        }
                        red[((tg * u + t) * MAX_HEADS_PER_TILE + g) * lanes + lane] = s;
                    }
                }
            }
            ctx.localBarrier();
            // 2. sum the lanes' partials into scores; tokens past the end score -inf
            for (int idx = tid; idx < tokenGroups * u * MAX_HEADS_PER_TILE; idx += WORK_GROUP) {
                int g = idx % MAX_HEADS_PER_TILE;
                int tt = idx / MAX_HEADS_PER_TILE;
                int token = roundBase + (tt % u) * tokenGroups + tt / u;
                float s = Float.NEGATIVE_INFINITY;
                if (g < heads && token < end) {
                    s = 0f;
                    for (int j = 0; j < lanes; j++) {
                        s += red[idx * lanes + j];
                    }
                }
                scores[idx] = s;
            }
            ctx.localBarrier();
            // 3. online softmax per token group, then accumulate V
            if (active) {
                for (int g = 0; g < heads; g++) {
                    float newMax = m[g];
                    for (int t = 0; t < u; t++) {
                        newMax = TornadoMath.max(newMax, scores[(tg * u + t) * MAX_HEADS_PER_TILE + g]);
                    }
                    if (newMax != Float.NEGATIVE_INFINITY) {
                        float correction = TornadoMath.exp(m[g] - newMax);
                        l[g] = l[g] * correction;
                        for (int i = 0; i < ds; i++) {
                            acc[g * MAX_DIMS_PER_LANE + i] = acc[g * MAX_DIMS_PER_LANE + i] * correction;
                        }
                        m[g] = newMax;
                    }
                    for (int t = 0; t < u; t++) {
                        float s = scores[(tg * u + t) * MAX_HEADS_PER_TILE + g];
                        float e = s == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(s - newMax);
                        p[t * MAX_HEADS_PER_TILE + g] = e;
                        l[g] += e;
                    }
                }
                for (int t = 0; t < u; t++) {
                    int token = roundBase + t * tokenGroups + tg;
                    if (token < end) {
                        int block = blockTables.get(seq * maxBlocks + token / blockSize);
                        int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, token % blockSize, lane);
                        for (int i = 0; i < ds; i++) {
                            vr[i] = vPool.get(row + i * lanes).getFloat32();
                        }
                        for (int g = 0; g < heads; g++) {
                            float pg = p[t * MAX_HEADS_PER_TILE + g];
                            for (int i = 0; i < ds; i++) {
                                acc[g * MAX_DIMS_PER_LANE + i] += pg * vr[i];
                            }
                        }
                    }
                }
            }
        }
        // 4. merge the token groups by log-sum-exp
        if (active && lane == 0) {
            for (int g = 0; g < heads; g++) {
                groupMax[tg * MAX_HEADS_PER_TILE + g] = m[g];
                groupSum[tg * MAX_HEADS_PER_TILE + g] = l[g];
            }
        }
        ctx.localBarrier();
        for (int g = 0; g < heads; g++) {
            float mAll = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < tokenGroups; j++) {
                mAll = TornadoMath.max(mAll, groupMax[j * MAX_HEADS_PER_TILE + g]);
            }
            float w = m[g] == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(m[g] - mAll);
            for (int i = 0; i < ds; i++) {
                acc[g * MAX_DIMS_PER_LANE + i] = acc[g * MAX_DIMS_PER_LANE + i] * w;
            }
        }
        for (int j = 0; j < tokenGroups; j++) {
            if (active && tg == j) {
                for (int g = 0; g < heads; g++) {
                    for (int i = 0; i < ds; i++) {
                        accSum[g * headDim + lane + i * lanes] += acc[g * MAX_DIMS_PER_LANE + i];
                    }
                }
            }
            ctx.localBarrier();
        }
        // 5. write the result (normalised) or this partition's partial state
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < heads * headDim; idx += WORK_GROUP) {
            int g = idx / headDim;
            int d = idx - g * headDim;
            float mAll = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < tokenGroups; j++) {
                mAll = TornadoMath.max(mAll, groupMax[j * MAX_HEADS_PER_TILE + g]);
            }
            float sum = 0f;
            for (int j = 0; j < tokenGroups; j++) {
                float mj = groupMax[j * MAX_HEADS_PER_TILE + g];
                if (mj != Float.NEGATIVE_INFINITY) {
                    sum += groupSum[j * MAX_HEADS_PER_TILE + g] * TornadoMath.exp(mj - mAll);
                }
            }
            int h = firstHead + g;
            if (g >= headsLeft) {
                continue;
            }
            if (writeFinal != 0) {
                out.set((seq * numQHeads + h) * headDim + d, accSum[idx] / sum);
            } else {
                int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                partials.set(pBase + d, accSum[idx]);
                if (d == 0) {
                    partials.set(pBase + headDim, mAll);
                    partials.set(pBase + headDim + 1, sum);
                }
            }
        }
    }

    /** Attention over fp32 pools: the body of {@link #attentionF16} with FloatArray pools (a test keeps them identical). Global size: groups x {@link #WORK_GROUP}. */
    public static void attentionF32(KernelContext ctx, FloatArray kPool, FloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale, int tuning) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int ds = tuning >> 4;
        int u = tuning & 15;
        int lanes = headDim / ds;
        int tokenGroups = WORK_GROUP / lanes;
        int tid = ctx.localIdx;
        int tg = tid / lanes;
        int lane = tid - tg * lanes;
        boolean active = tg < tokenGroups;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int headTiles = (groupSize + MAX_HEADS_PER_TILE - 1) / MAX_HEADS_PER_TILE;
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int tile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        int numSeqs = params.get(DecodeParams.NUM_SEQS);
        if (seq >= numSeqs) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int start = part * partTokens;
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + partTokens);
        // A compile-time constant (groupSize is frozen), so loops over heads have constant trip
        // counts; heads past the group in a last, partial tile get a zero query and are not written.
        int heads = TornadoMath.min(MAX_HEADS_PER_TILE, groupSize);
        int headsLeft = groupSize - tile * MAX_HEADS_PER_TILE;
        int numQHeads = numKvHeads * groupSize;
        int firstHead = kvHead * groupSize + tile * MAX_HEADS_PER_TILE;
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);      // [tg][u][head][lane] partial dots
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE); // [tg][u][head]
        float[] groupMax = ctx.allocateFloatLocalArray(STATE_SIZE); // [tg][head]
        float[] groupSum = ctx.allocateFloatLocalArray(STATE_SIZE); // [tg][head]
        float[] accSum = ctx.allocateFloatLocalArray(ACC_SIZE);   // [head][headDim]

        float[] qr = new float[MAX_HEADS_PER_TILE * MAX_DIMS_PER_LANE];   // [head][i] pre-scaled query slice
        float[] acc = new float[MAX_HEADS_PER_TILE * MAX_DIMS_PER_LANE];  // [head][i]
        float[] kr = new float[MAX_TOKENS_PER_ROUND * MAX_DIMS_PER_LANE]; // [u][i]
        float[] vr = new float[MAX_DIMS_PER_LANE];
        float[] p = new float[MAX_TOKENS_PER_ROUND * MAX_HEADS_PER_TILE]; // [u][head]
        float[] m = new float[MAX_HEADS_PER_TILE];
        float[] l = new float[MAX_HEADS_PER_TILE];

        for (int g = 0; g < MAX_HEADS_PER_TILE; g++) {
            m[g] = Float.NEGATIVE_INFINITY;
            l[g] = 0f;
            for (int i = 0; i < ds; i++) {
                acc[g * MAX_DIMS_PER_LANE + i] = 0f;
                qr[g * MAX_DIMS_PER_LANE + i] = 0f;
            }
        }
        if (active) {
            for (int g = 0; g < heads; g++) {
                if (g < headsLeft) {
                    int qBase = (seq * numQHeads + firstHead + g) * headDim + lane;
                    for (int i = 0; i < ds; i++) {
                        qr[g * MAX_DIMS_PER_LANE + i] = q.get(qBase + i * lanes) * scale;
                    }
                }
            }
        }
        for (int idx = tid; idx < heads * headDim; idx += WORK_GROUP) {
            accSum[idx] = 0f;
        }

        int perRound = tokenGroups * u;
        int rounds = (end - start + perRound - 1) / perRound;
        for (int r = 0; r < rounds; r++) {
            int roundBase = start + r * perRound;
            // 1. partial dot products of this lane's dims for U tokens and every head of the tile
            for (int t = 0; t < u; t++) {
                int token = roundBase + t * tokenGroups + tg;
                if (active && token < end) {
                    int block = blockTables.get(seq * maxBlocks + token / blockSize);
                    int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, token % blockSize, lane);
                    for (int i = 0; i < ds; i++) {
                        kr[t * MAX_DIMS_PER_LANE + i] = kPool.get(row + i * lanes);
                    }
                } else {
                    for (int i = 0; i < ds; i++) {
                        kr[t * MAX_DIMS_PER_LANE + i] = 0f;
                    }
                }
            }
            if (active) {
                for (int t = 0; t < u; t++) {
                    for (int g = 0; g < heads; g++) {
                        float s = 0f;
                        for (int i = 0; i < ds; i++) {
                            s += qr[g * MAX_DIMS_PER_LANE + i] * kr[t * MAX_DIMS_PER_LANE + i];
                        }
                        red[((tg * u + t) * MAX_HEADS_PER_TILE + g) * lanes + lane] = s;
                    }
                }
            }
            ctx.localBarrier();
            // 2. sum the lanes' partials into scores; tokens past the end score -inf
            for (int idx = tid; idx < tokenGroups * u * MAX_HEADS_PER_TILE; idx += WORK_GROUP) {
                int g = idx % MAX_HEADS_PER_TILE;
                int tt = idx / MAX_HEADS_PER_TILE;
                int token = roundBase + (tt % u) * tokenGroups + tt / u;
                float s = Float.NEGATIVE_INFINITY;
                if (g < heads && token < end) {
                    s = 0f;
                    for (int j = 0; j < lanes; j++) {
                        s += red[idx * lanes + j];
                    }
                }
                scores[idx] = s;
            }
            ctx.localBarrier();
            // 3. online softmax per token group, then accumulate V
            if (active) {
                for (int g = 0; g < heads; g++) {
                    float newMax = m[g];
                    for (int t = 0; t < u; t++) {
                        newMax = TornadoMath.max(newMax, scores[(tg * u + t) * MAX_HEADS_PER_TILE + g]);
                    }
                    if (newMax != Float.NEGATIVE_INFINITY) {
                        float correction = TornadoMath.exp(m[g] - newMax);
                        l[g] = l[g] * correction;
                        for (int i = 0; i < ds; i++) {
                            acc[g * MAX_DIMS_PER_LANE + i] = acc[g * MAX_DIMS_PER_LANE + i] * correction;
                        }
                        m[g] = newMax;
                    }
                    for (int t = 0; t < u; t++) {
                        float s = scores[(tg * u + t) * MAX_HEADS_PER_TILE + g];
                        float e = s == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(s - newMax);
                        p[t * MAX_HEADS_PER_TILE + g] = e;
                        l[g] += e;
                    }
                }
                for (int t = 0; t < u; t++) {
                    int token = roundBase + t * tokenGroups + tg;
                    if (token < end) {
                        int block = blockTables.get(seq * maxBlocks + token / blockSize);
                        int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, token % blockSize, lane);
                        for (int i = 0; i < ds; i++) {
                            vr[i] = vPool.get(row + i * lanes);
                        }
                        for (int g = 0; g < heads; g++) {
                            float pg = p[t * MAX_HEADS_PER_TILE + g];
                            for (int i = 0; i < ds; i++) {
                                acc[g * MAX_DIMS_PER_LANE + i] += pg * vr[i];
                            }
                        }
                    }
                }
            }
        }
        // 4. merge the token groups by log-sum-exp
        if (active && lane == 0) {
            for (int g = 0; g < heads; g++) {
                groupMax[tg * MAX_HEADS_PER_TILE + g] = m[g];
                groupSum[tg * MAX_HEADS_PER_TILE + g] = l[g];
            }
        }
        ctx.localBarrier();
        for (int g = 0; g < heads; g++) {
            float mAll = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < tokenGroups; j++) {
                mAll = TornadoMath.max(mAll, groupMax[j * MAX_HEADS_PER_TILE + g]);
            }
            float w = m[g] == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(m[g] - mAll);
            for (int i = 0; i < ds; i++) {
                acc[g * MAX_DIMS_PER_LANE + i] = acc[g * MAX_DIMS_PER_LANE + i] * w;
            }
        }
        for (int j = 0; j < tokenGroups; j++) {
            if (active && tg == j) {
                for (int g = 0; g < heads; g++) {
                    for (int i = 0; i < ds; i++) {
                        accSum[g * headDim + lane + i * lanes] += acc[g * MAX_DIMS_PER_LANE + i];
                    }
                }
            }
            ctx.localBarrier();
        }
        // 5. write the result (normalised) or this partition's partial state
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < heads * headDim; idx += WORK_GROUP) {
            int g = idx / headDim;
            int d = idx - g * headDim;
            float mAll = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < tokenGroups; j++) {
                mAll = TornadoMath.max(mAll, groupMax[j * MAX_HEADS_PER_TILE + g]);
            }
            float sum = 0f;
            for (int j = 0; j < tokenGroups; j++) {
                float mj = groupMax[j * MAX_HEADS_PER_TILE + g];
                if (mj != Float.NEGATIVE_INFINITY) {
                    sum += groupSum[j * MAX_HEADS_PER_TILE + g] * TornadoMath.exp(mj - mAll);
                }
            }
            int h = firstHead + g;
            if (g >= headsLeft) {
                continue;
            }
            if (writeFinal != 0) {
                out.set((seq * numQHeads + h) * headDim + d, accSum[idx] / sum);
            } else {
                int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                partials.set(pBase + d, accSum[idx]);
                if (d == 0) {
                    partials.set(pBase + headDim, mAll);
                    partials.set(pBase + headDim + 1, sum);
                }
            }
        }
    }

    /**
     * Merges split-K partitions: one work-item per output element {@code (seq, head, d)}.
     * Global size: {@code numSeqs * numQHeads * headDim} rounded up to the local size.
     */
    public static void mergePartitions(KernelContext ctx, IntArray contextLens, IntArray params, FloatArray partials,
                                       FloatArray out, int numQHeads, int headDim) {
        if (params.get(DecodeParams.WRITE_FINAL) != 0 || params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int idx = ctx.globalIdx;
        int numSeqs = params.get(DecodeParams.NUM_SEQS);
        if (idx >= numSeqs * numQHeads * headDim) {
            return;
        }
        int d = idx % headDim;
        int sh = idx / headDim; // seq * numQHeads + head
        int seq = sh / numQHeads;
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int parts = (contextLens.get(seq) + partTokens - 1) / partTokens;
        int base = sh * maxParts * (headDim + 2);
        float mAll = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < parts; j++) {
            mAll = TornadoMath.max(mAll, partials.get(base + j * (headDim + 2) + headDim));
        }
        float sum = 0f;
        float o = 0f;
        for (int j = 0; j < parts; j++) {
            int pj = base + j * (headDim + 2);
            float w = TornadoMath.exp(partials.get(pj + headDim) - mAll);
            sum += partials.get(pj + headDim + 1) * w;
            o += partials.get(pj + d) * w;
        }
        out.set(idx, o / sum);
    }
}
