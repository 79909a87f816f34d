package dev.pagedattn.kernels;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * What the attention kernels share: the limits of their shapes, the skeleton (work-group ->
 * sequence, KV head and partition; the row offset through the block table) and the split-K merge.
 *
 * <h2>Shapes</h2>
 * <pre>
 *  kPool, vPool  [numBlocks][numKvHeads][blockSize][headDim]  one layer's pools, fp16 or fp32 (KvLayout)
 *  q             [numSeqs][numQHeads][headDim]  fp32
 *  blockTables   [numSeqs][maxBlocksPerSeq]     physical block ids
 *  contextLens   [numSeqs]                      >= 1
 *  params        [DecodeParams.capacity]        per-step values (see DecodeParams; a balanced grid adds its tile prefix)
 *  out           [numSeqs][numQHeads][headDim]  fp32
 *  partials      [numSeqs][numQHeads][maxPartitions][headDim + 2]  unnormalised acc, then max, sum
 * </pre>
 * The attention kernels ({@link StreamDecodeKernels}, {@link ChunkDecodeKernels}, {@link WarpQuadDecodeKernels},
 * {@link HeadQuadDecodeKernels}, {@link HeadPairDecodeKernels}) give one
 * work-group to each (sequence, KV head, head tile of up to {@link #MAX_HEADS_PER_TILE} query
 * heads, partition). With one partition they write {@code out}; otherwise each writes its
 * partition's state to {@code partials} and {@link #mergePartitions} combines them by
 * log-sum-exp. The first version of the attention kernel, which kept every head of the tile per
 * work-item in private arrays, was removed: TornadoVM puts private arrays in local (stack) memory
 * (see benchmarks/NOTES.md, v1).
 */
public final class PagedDecodeKernels {
    /** Query heads one work-group handles; larger groups are cut into tiles. */
    public static final int MAX_HEADS_PER_TILE = 8;
    /** Largest head dimension the kernels' local arrays are sized for. */
    public static final int MAX_HEAD_DIM = 256;
    /** Local size of {@link #mergePartitions} (its local arrays are this size). */
    public static final int MERGE_LOCAL = 128;
    /** Most slices {@link #mergePartitions} spreads one output element's partitions over. */
    public static final int MAX_MERGE_SLICES = 32;
    /** Partitions one work-item of {@link #mergePartitions} loads per round (its unrolled load block). */
    public static final int MERGE_ROUND = 8;
    /**
     * The score of a token past the end in the decode kernels the CUDA backend runs (stream, chunk, latent): finite, so
     * that TornadoVM 5.2's CUDA backend prints a literal. It prints {@code Float.NEGATIVE_INFINITY} as
     * {@code -1.0F / 0.0F}, which NVRTC does not fold: a division on every tile whose slow path is a {@code CALL}, and a
     * call waits for every load in flight (benchmarks/NOTES.md, forty-ninth session, part two). Its probability is
     * still exactly 0: every tile of those kernels starts at a token before the end, so the running max is a finite
     * score and {@code exp(MASKED - max)} underflows.
     */
    public static final float MASKED = -Float.MAX_VALUE;

    private PagedDecodeKernels() {
    }

    // ---- the skeleton every attention kernel shares: work-group -> (sequence, KV head, partition) ----
    // grid: work-group gid = (seq * numKvHeads + kvHead) * maxPartitions + partition

    /** The split-K partition work-group {@code gid} reads. */
    public static int partitionOf(int gid, int maxPartitions) {
        return gid % maxPartitions;
    }

    /** The KV head work-group {@code gid} reads. */
    public static int kvHeadOf(int gid, int maxPartitions, int numKvHeads) {
        return (gid / maxPartitions) % numKvHeads;
    }

    /** The sequence work-group {@code gid} decodes. */
    public static int seqOf(int gid, int maxPartitions, int numKvHeads) {
        return gid / maxPartitions / numKvHeads;
    }

    /**
     * Pool offset of dim 0 of {@code token}'s row of {@code kvHead}: the block-table lookup plus the
     * {@link dev.pagedattn.cache.KvLayout} formula. {@code blockSize} is a JIT-time constant, so the
     * division is a multiply and shift.
     */
    public static int rowOffset(IntArray blockTables, int tableRow, int token, int layerBase, int blockStride,
                                int headStride, int headDim, int blockSize, int kvHead) {
        return blockRowOffset(blockTables.get(tableRow + token / blockSize), token, layerBase, blockStride, headStride, headDim,
                blockSize, kvHead);
    }

    /**
     * {@link #rowOffset} with the block that holds {@code token} already read from the table (the stream kernels read
     * each tile's block a tile ahead).
     */
    public static int blockRowOffset(int block, int token, int layerBase, int blockStride, int headStride, int headDim,
                                     int blockSize, int kvHead) {
        return dev.pagedattn.cache.KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead,
                token - token / blockSize * blockSize, 0);
    }

    /**
     * The first position a step's query sees in a context of {@code len} tokens: {@code max(0, len - params[WINDOW])}, 0
     * without a window (whose slot holds {@link Integer#MAX_VALUE}); with chunks of C (a slot of {@code -C},
     * {@code AttentionWindow.chunked}) the start of the query's chunk, {@code p - p % C} for {@code p = len - 1}
     * ({@code DecodeBatch.firstVisible} on the host).
     */
    public static int windowFirst(int len, IntArray params) {
        int window = params.get(DecodeParams.WINDOW);
        int last = len - 1;
        return window < 0 ? TornadoMath.max(0, last - last % (0 - window)) : TornadoMath.max(0, len - window);
    }

    /**
     * Where a sequence's partitions (and a balanced grid's tiles) are laid from: {@code first}, its first visible token,
     * rounded down to {@link DecodeParams#WALK_ALIGN}; partition {@code p} then reads {@code [max(first, origin + p P),
     * min(len, origin + (p + 1) P))}. Without a window both are 0, the walk it always was.
     */
    public static int walkOrigin(int first) {
        return first / DecodeParams.WALK_ALIGN * DecodeParams.WALK_ALIGN;
    }

    /**
     * The block-table column a sequence's row of the kernels' table starts at: the block of its walk origin
     * ({@link #walkOrigin} of {@code first}; 0 without a window). The host sends a windowed sequence's row from that
     * column on ({@code DecodeGrid.tables}), so a window over a long context sends a window's columns, not the context's;
     * a kernel's {@code tableRow} is then its row's start minus this.
     */
    public static int firstTableBlock(int first, int blockSize) {
        return walkOrigin(first) / blockSize;
    }

    /**
     * Partitions of sequence {@code seq}'s row of query head {@code head}: {@code ceil(span / partTokens)} in a
     * partition grid; in a balanced grid ({@code tilesPerGroup > 0}, {@link DecodeParams#TILES_PER_GROUP}) the
     * work-groups its (sequence, KV head, head tile) pair's tiles span; {@code span} is the tokens from {@link #walkOrigin}
     * to the sequence's end.
     */
    public static int partitionsOf(IntArray contextLens, IntArray params, int seq, int head, int numQHeads, int partTokens,
                                   int tilesPerGroup) {
        int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
        len -= walkOrigin(windowFirst(len, params));   // the tokens its partitions are laid over
        if (tilesPerGroup == 0) {
            return (len + partTokens - 1) / partTokens;
        }
        int pairHeads = params.get(DecodeParams.KV_HEADS);  // (KV head, head tile) pairs
        int headTiles = params.get(DecodeParams.HEAD_TILES);
        int groupSize = numQHeads / (pairHeads / headTiles);
        // query heads per work-group: four, or eight in the stream kernel's G8 bodies (groups of more than four heads,
        // whose ceil(groupSize / 8) tiles are then fewer than ceil(groupSize / 4))
        int perTile = headTiles == (groupSize + StreamDecodeKernels.HEADS - 1) / StreamDecodeKernels.HEADS
                ? StreamDecodeKernels.HEADS : StreamDecodeKernels.HEADS_8;
        int pair = head / groupSize * headTiles + head % groupSize / perTile;
        int tiles = (len + StreamDecodeKernels.TILE - 1) / StreamDecodeKernels.TILE;
        int pairStart = pairHeads * params.get(DecodeParams.PREFIX + seq) + pair * tiles;
        return (pairStart + tiles - 1) / tilesPerGroup - pairStart / tilesPerGroup + 1;
    }

    /**
     * Merges split-K partitions by log-sum-exp. Work-item {@code i} of a work-group of
     * {@link #MERGE_LOCAL} is slice {@code i / (MERGE_LOCAL / S)} of output element
     * {@code (seq, head, d)}, {@code S = params[MERGE_SLICES]} slices per element: slice {@code s} reads
     * partitions {@code s, s + S, ...}, eight at a time with all their loads issued before the first
     * is used (one L2 round trip for a slice of up to eight partitions), and slice 0 combines the
     * {@code S} (max, sum, accumulator) triples through local memory. Grid-stride over the
     * elements, so any whole number of work-groups works (a small grid keeps the launch cheap on
     * fused steps, where the kernel returns at once). With {@link DecodeParams#SINKS} head {@code h}'s sink
     * ({@code partials[params[SINK_BASE] + h]}, of the plan's layer and shard; {@code AttentionSinks}) starts slice 0's
     * state as a score without a value: max the sink, sum 1, accumulator 0. With {@link DecodeParams#LSE} each row's
     * element 0 also writes the row's log-sum-exp.
     */
    public static void mergePartitions(KernelContext ctx, IntArray contextLens, IntArray params, FloatArray partials,
                                       FloatArray out, int numQHeads, int headDim) {
        if (params.get(DecodeParams.WRITE_FINAL) != 0 || params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int numSeqs = params.get(DecodeParams.NUM_SEQS);
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int slices = params.get(DecodeParams.MERGE_SLICES);
        int tilesPerGroup = params.get(DecodeParams.TILES_PER_GROUP);
        float[] ms = ctx.allocateFloatLocalArray(MERGE_LOCAL);  // [slice][element]: a slice's max,
        float[] ls = ctx.allocateFloatLocalArray(MERGE_LOCAL);  // its sum
        float[] os = ctx.allocateFloatLocalArray(MERGE_LOCAL);  // and its accumulator
        int tid = ctx.localIdx;
        int width = MERGE_LOCAL / slices;   // elements per work-group and round
        int slice = tid / width;
        int lane = tid - slice * width;
        int stride = headDim + 2;
        int total = numSeqs * numQHeads * headDim;
        int groups = ctx.globalGroupSizeX / MERGE_LOCAL;
        int hasSinks = params.get(DecodeParams.SINKS);
        int sinkBase = params.get(DecodeParams.SINK_BASE);
        int lseAt = params.get(DecodeParams.LSE);
        for (int e0 = ctx.groupIdx * width; e0 < total; e0 += groups * width) { // uniform per work-group
            int idx = e0 + lane;
            float m = Float.NEGATIVE_INFINITY;
            float l = 0f;
            float o = 0f;
            if (idx < total) {
                int d = idx % headDim;
                int sh = idx / headDim; // seq * numQHeads + head
                if (hasSinks != 0 && slice == 0) { // the head's sink: a score of weight exp(sink - m) and no value
                    m = partials.get(sinkBase + sh % numQHeads);
                    l = 1f;
                }
                int parts = partitionsOf(contextLens, params, sh / numQHeads, sh % numQHeads, numQHeads, partTokens, tilesPerGroup);
                int base = sh * maxParts * stride;
                for (int first = slice; first < parts; first += MERGE_ROUND * slices) { // one round when parts <= 8 * slices
                    float m0 = Float.NEGATIVE_INFINITY;
                    float l0 = 0f;
                    float a0 = 0f;
                    if (first + 0 * slices < parts) {
                        int p = base + (first + 0 * slices) * stride;
                        m0 = partials.get(p + headDim);
                        l0 = partials.get(p + headDim + 1);
                        a0 = partials.get(p + d);
                    }
                    float m1 = Float.NEGATIVE_INFINITY;
                    float l1 = 0f;
                    float a1 = 0f;
                    if (first + 1 * slices < parts) {
                        int p = base + (first + 1 * slices) * stride;
                        m1 = partials.get(p + headDim);
                        l1 = partials.get(p + headDim + 1);
                        a1 = partials.get(p + d);
                    }
                    float m2 = Float.NEGATIVE_INFINITY;
                    float l2 = 0f;
                    float a2 = 0f;
                    if (first + 2 * slices < parts) {
                        int p = base + (first + 2 * slices) * stride;
                        m2 = partials.get(p + headDim);
                        l2 = partials.get(p + headDim + 1);
                        a2 = partials.get(p + d);
                    }
                    float m3 = Float.NEGATIVE_INFINITY;
                    float l3 = 0f;
                    float a3 = 0f;
                    if (first + 3 * slices < parts) {
                        int p = base + (first + 3 * slices) * stride;
                        m3 = partials.get(p + headDim);
                        l3 = partials.get(p + headDim + 1);
                        a3 = partials.get(p + d);
                    }
                    float m4 = Float.NEGATIVE_INFINITY;
                    float l4 = 0f;
                    float a4 = 0f;
                    if (first + 4 * slices < parts) {
                        int p = base + (first + 4 * slices) * stride;
                        m4 = partials.get(p + headDim);
                        l4 = partials.get(p + headDim + 1);
                        a4 = partials.get(p + d);
                    }
                    float m5 = Float.NEGATIVE_INFINITY;
                    float l5 = 0f;
                    float a5 = 0f;
                    if (first + 5 * slices < parts) {
                        int p = base + (first + 5 * slices) * stride;
                        m5 = partials.get(p + headDim);
                        l5 = partials.get(p + headDim + 1);
                        a5 = partials.get(p + d);
                    }
                    float m6 = Float.NEGATIVE_INFINITY;
                    float l6 = 0f;
                    float a6 = 0f;
                    if (first + 6 * slices < parts) {
                        int p = base + (first + 6 * slices) * stride;
                        m6 = partials.get(p + headDim);
                        l6 = partials.get(p + headDim + 1);
                        a6 = partials.get(p + d);
                    }
                    float m7 = Float.NEGATIVE_INFINITY;
                    float l7 = 0f;
                    float a7 = 0f;
                    if (first + 7 * slices < parts) {
                        int p = base + (first + 7 * slices) * stride;
                        m7 = partials.get(p + headDim);
                        l7 = partials.get(p + headDim + 1);
                        a7 = partials.get(p + d);
                    }
                    float mc = TornadoMath.max(TornadoMath.max(TornadoMath.max(m0, m1), TornadoMath.max(m2, m3)),
                            TornadoMath.max(TornadoMath.max(m4, m5), TornadoMath.max(m6, m7)));
                    float mNew = TornadoMath.max(m, mc);    // finite: partition `first` exists
                    float r = TornadoMath.exp(m - mNew);    // 0 in the first round (m = -inf), unless slice 0 holds a sink
                    float w0 = TornadoMath.exp(m0 - mNew);  // 0 for partitions past the row's end (-inf)
                    float w1 = TornadoMath.exp(m1 - mNew);
                    float w2 = TornadoMath.exp(m2 - mNew);
                    float w3 = TornadoMath.exp(m3 - mNew);
                    float w4 = TornadoMath.exp(m4 - mNew);
                    float w5 = TornadoMath.exp(m5 - mNew);
                    float w6 = TornadoMath.exp(m6 - mNew);
                    float w7 = TornadoMath.exp(m7 - mNew);
                    l = l * r + (l0 * w0 + l1 * w1 + l2 * w2 + l3 * w3) + (l4 * w4 + l5 * w5 + l6 * w6 + l7 * w7);
                    o = o * r + (a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3) + (a4 * w4 + a5 * w5 + a6 * w6 + a7 * w7);
                    m = mNew;
                }
            }
            ms[tid] = m;
            ls[tid] = l;
            os[tid] = o;
            ctx.localBarrier();
            if (slice == 0 && idx < total) {
                float mAll = m;
                for (int s = 1; s < slices; s++) {
                    mAll = TornadoMath.max(mAll, ms[s * width + lane]);
                }
                float sum = 0f;
                float acc = 0f;
                for (int s = 0; s < slices; s++) {
                    float ws = TornadoMath.exp(ms[s * width + lane] - mAll); // 0 for a slice without partitions (max -inf)
                    sum += ls[s * width + lane] * ws;
                    acc += os[s * width + lane] * ws;
                }
                out.set(idx, acc / sum);
                if (lseAt != 0 && idx % headDim == 0) { // the row's log-sum-exp (DecodeParams.LSE)
                    out.set(lseAt + idx / headDim, mAll + TornadoMath.log(sum));
                }
            }
            ctx.localBarrier();
        }
    }

    /**
     * The softmax denominator of a fused step's row (query head {@code head} of the layer or shard) whose scores have max
     * {@code max} and sum {@code sum} of {@code exp(s - max)}: {@code sum}, plus the head's sink's {@code exp(sink - max)}
     * where the plan's layer has sinks ({@link DecodeParams#SINKS}; the sinks lie in {@code partials} from {@link
     * DecodeParams#SINK_BASE}). Every attention kernel's "write the normalised output" divides by it; split steps add the
     * sink in the merge instead.
     */
    public static float finalSum(float sum, float max, FloatArray partials, IntArray params, int head) {
        int on = params.get(DecodeParams.SINKS);
        return withSink(sum, max, on, on != 0 ? partials.get(params.get(DecodeParams.SINK_BASE) + head) : 0f);
    }

    /**
     * {@code sum}, plus {@code exp(sink - max)} where {@code on != 0}: {@link #finalSum} with the sink already loaded (the
     * stream kernels load every head's sink before their first output store).
     */
    public static float withSink(float sum, float max, int on, float sink) {
        float withSink = sum;
        if (on != 0) {
            withSink = sum + TornadoMath.exp(sink - max);
        }
        return withSink;
    }

    /**
     * ALiBi's bias for the score of query head {@code head} (of the plan's shard) at position {@code query} for the key at
     * {@code key}: the head's slope, {@code partials[base + head]}, times {@code key - query}; 0 where {@code base} is 0
     * (no ALiBi: {@link DecodeParams#ALIBI}, {@link PrefillParams#ALIBI}). Kernels add it after the soft cap, before the
     * mask.
     */
    public static float alibiBias(FloatArray partials, int base, int head, int key, int query) {
        float bias = 0f;
        if (base != 0) {
            bias = partials.get(base + head) * (float) (key - query);
        }
        return bias;
    }

    /**
     * The plan's logit soft cap ({@code AttentionSpec.softCap}), or 0 when its scores are not capped: {@code slot} is
     * where the cap lies in {@code partials} ({@link DecodeParams#SOFT_CAP}, {@link PrefillParams#SOFT_CAP}; 0 for
     * none). Kernels read it once, before their loops.
     */
    public static float softCapOf(FloatArray partials, int slot) {
        float cap = 0f;
        if (slot != 0) {
            cap = partials.get(slot);
        }
        return cap;
    }

    /**
     * Score {@code s} soft-capped at {@code cap}: {@code cap * tanh(s / cap)} where {@code cap > 0} (Gemma 2's
     * {@code attn_logit_softcapping}), as {@code cap - 2 cap / (exp(2 s / cap) + 1)} (one {@code exp}; {@code +-cap} for
     * {@code s} far beyond it, within a few {@code cap * 1e-7} of fp64 elsewhere); {@code s} itself where {@code cap}
     * is 0. Kernels cap a score before they mask it: {@code -inf} would become {@code -cap}.
     */
    public static float softCap(float s, float cap) {
        float capped = s;
        if (cap > 0f) {
            capped = capScore(s, cap);
        }
        return capped;
    }

    /**
     * {@link #softCap} for {@code cap > 0}, without the test (a kernel that caps several scores tests once). One division
     * per score: {@code 2 / cap} is a constant where the cap is a kernel's scalar argument (TornadoVM compiles those in),
     * and a loop invariant elsewhere.
     */
    public static float capScore(float s, float cap) {
        return cap - 2f * cap / (TornadoMath.exp(s * (2f / cap)) + 1f);
    }

    /** Partitions of a row whose weights {@link #mergeRows} keeps in local memory (every slice's first round). */
    public static final int ROW_WEIGHTS = MAX_MERGE_SLICES * MERGE_ROUND;

    /**
     * {@link #mergePartitions} with each row's weights computed once per work-group (the CUDA backend's merge,
     * {@code -Dpagedattn.tornado.mergeRows}; benchmarks/NOTES.md, twenty-fourth and twenty-fifth sessions). A work-group takes one
     * (row, chunk) at a time, a chunk being {@code MERGE_LOCAL / S} dims of one (sequence, head) row, {@code S =
     * params[MERGE_SLICES]}. Its work-items first issue their slice's partials loads (as {@link #mergePartitions}), then
     * together find the row's largest partition max {@code M} and sum {@code L = sum_p l_p exp(m_p - M)} (local-memory
     * trees) and keep {@code w_p = exp(m_p - M)} for the first {@link #ROW_WEIGHTS} partitions in local memory; each
     * slice then sums {@code a_p w_p} over its partitions and slice 0 adds the slices and divides by {@code L}. So a row
     * costs one {@code exp} per partition and chunk instead of one per partition and element. With
     * {@link DecodeParams#SINKS} work-item 0 adds head {@code h}'s sink to {@code M} and {@code L}; with
     * {@link DecodeParams#LSE} the row's first chunk also writes {@code M + ln(L)}.
     */
    public static void mergeRows(KernelContext ctx, IntArray contextLens, IntArray params, FloatArray partials,
                                 FloatArray out, int numQHeads, int headDim) {
        if (params.get(DecodeParams.WRITE_FINAL) != 0 || params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int numSeqs = params.get(DecodeParams.NUM_SEQS);
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int slices = params.get(DecodeParams.MERGE_SLICES);
        int tilesPerGroup = params.get(DecodeParams.TILES_PER_GROUP);
        float[] red = ctx.allocateFloatLocalArray(MERGE_LOCAL);   // the trees' values, then each slice's sums
        float[] ws = ctx.allocateFloatLocalArray(ROW_WEIGHTS);    // w_p of the row's first partitions
        int tid = ctx.localIdx;
        int width = MERGE_LOCAL / slices;                       // dims per chunk
        int slice = tid / width;
        int j = tid - slice * width;
        int chunks = (headDim + width - 1) / width;
        int stride = headDim + 2;
        int units = numSeqs * numQHeads * chunks;
        int groups = ctx.globalGroupSizeX / MERGE_LOCAL;
        int hasSinks = params.get(DecodeParams.SINKS);
        int sinkBase = params.get(DecodeParams.SINK_BASE);
        int lseAt = params.get(DecodeParams.LSE);
        for (int unit = ctx.groupIdx; unit < units; unit += groups) { // uniform per work-group
            int row = unit / chunks;
            // the head's sink (a score of weight exp(sink - M) and no value) joins work-item 0's max and sum
            float sink = hasSinks != 0 && tid == 0 ? partials.get(sinkBase + row % numQHeads) : Float.NEGATIVE_INFINITY;
            int d = (unit - row * chunks) * width + j;
            int dd = TornadoMath.min(d, headDim - 1);            // lanes past the row's end load a valid dim, write nothing
            int parts = partitionsOf(contextLens, params, row / numQHeads, row % numQHeads, numQHeads, partTokens, tilesPerGroup);
            int base = row * maxParts * stride;
            // the slice's first round of partials, in flight while the weights are found
            float a0 = slice + 0 * slices < parts ? partials.get(base + (slice + 0 * slices) * stride + dd) : 0f;
            float a1 = slice + 1 * slices < parts ? partials.get(base + (slice + 1 * slices) * stride + dd) : 0f;
            float a2 = slice + 2 * slices < parts ? partials.get(base + (slice + 2 * slices) * stride + dd) : 0f;
            float a3 = slice + 3 * slices < parts ? partials.get(base + (slice + 3 * slices) * stride + dd) : 0f;
            float a4 = slice + 4 * slices < parts ? partials.get(base + (slice + 4 * slices) * stride + dd) : 0f;
            float a5 = slice + 5 * slices < parts ? partials.get(base + (slice + 5 * slices) * stride + dd) : 0f;
            float a6 = slice + 6 * slices < parts ? partials.get(base + (slice + 6 * slices) * stride + dd) : 0f;
            float a7 = slice + 7 * slices < parts ? partials.get(base + (slice + 7 * slices) * stride + dd) : 0f;
            // M: each work-item's partitions tid, tid + 128, ..., then a tree
            float mx = sink;
            for (int p = tid; p < parts; p += MERGE_LOCAL) {
                mx = TornadoMath.max(mx, partials.get(base + p * stride + headDim));
            }
            red[tid] = mx;
            ctx.localBarrier();
            for (int off = MERGE_LOCAL / 2; off > 0; off >>= 1) {
                if (tid < off) {
                    red[tid] = TornadoMath.max(red[tid], red[tid + off]);
                }
                ctx.localBarrier();
            }
            float rowMax = red[0];                               // finite: a row has at least one partition
            ctx.localBarrier();
            // L and the weights
            float sum = TornadoMath.exp(sink - rowMax);          // 0 without a sink
            for (int p = tid; p < parts; p += MERGE_LOCAL) {
                float w = TornadoMath.exp(partials.get(base + p * stride + headDim) - rowMax);
                if (p < ROW_WEIGHTS) {
                    ws[p] = w;
                }
                sum += partials.get(base + p * stride + headDim + 1) * w;
            }
            red[tid] = sum;
            ctx.localBarrier();
            for (int off = MERGE_LOCAL / 2; off > 0; off >>= 1) {
                if (tid < off) {
                    red[tid] += red[tid + off];
                }
                ctx.localBarrier();
            }
            float rowSum = red[0];
            ctx.localBarrier();
            // the slice's sums: the first round from registers and local weights, later rounds (rows of more than
            // ROW_WEIGHTS partitions) with their own exps
            // (no helper takes ws: TornadoVM 5.2 addresses a local array passed to a helper as a global one, NOTES t11)
            float w0 = slice + 0 * slices < parts ? ws[slice + 0 * slices] : 0f;
            float w1 = slice + 1 * slices < parts ? ws[slice + 1 * slices] : 0f;
            float w2 = slice + 2 * slices < parts ? ws[slice + 2 * slices] : 0f;
            float w3 = slice + 3 * slices < parts ? ws[slice + 3 * slices] : 0f;
            float w4 = slice + 4 * slices < parts ? ws[slice + 4 * slices] : 0f;
            float w5 = slice + 5 * slices < parts ? ws[slice + 5 * slices] : 0f;
            float w6 = slice + 6 * slices < parts ? ws[slice + 6 * slices] : 0f;
            float w7 = slice + 7 * slices < parts ? ws[slice + 7 * slices] : 0f;
            float acc = (a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3) + (a4 * w4 + a5 * w5 + a6 * w6 + a7 * w7);
            for (int p = slice + MERGE_ROUND * slices; p < parts; p += slices) {
                int at = base + p * stride;
                acc += partials.get(at + dd) * TornadoMath.exp(partials.get(at + headDim) - rowMax);
            }
            red[tid] = acc;
            ctx.localBarrier();
            if (slice == 0 && d < headDim) {
                float total = 0f;
                for (int s = 0; s < slices; s++) {
                    total += red[s * width + j];
                }
                out.set(row * headDim + d, total / rowSum);
                if (lseAt != 0 && d == 0) { // the row's log-sum-exp (DecodeParams.LSE)
                    out.set(lseAt + row, rowMax + TornadoMath.log(rowSum));
                }
            }
            ctx.localBarrier();
        }
    }
}
