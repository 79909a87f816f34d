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
 *  params        [DecodeParams.SIZE]            per-step values (see DecodeParams)
 *  out           [numSeqs][numQHeads][headDim]  fp32
 *  partials      [numSeqs][numQHeads][maxPartitions][headDim + 2]  unnormalised acc, then max, sum
 * </pre>
 * The attention kernels ({@link ChunkDecodeKernels}, {@link WarpQuadDecodeKernels},
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
        int block = token / blockSize;
        return dev.pagedattn.cache.KvLayout.offset(layerBase, blockStride, headStride, headDim,
                blockTables.get(tableRow + block), kvHead, token - block * blockSize, 0);
    }

    /**
     * Merges split-K partitions by log-sum-exp. Work-item {@code i} of a work-group of
     * {@link #MERGE_LOCAL} is slice {@code i / (MERGE_LOCAL / S)} of output element
     * {@code (seq, head, d)}, {@code S = params[MERGE_SLICES]} slices per element: slice {@code s} reads
     * partitions {@code s, s + S, ...} (first their maxima, then their sums and accumulators, with
     * two loads of each kind in flight), and slice 0 combines the {@code S} results through local
     * memory. Grid-stride over the elements, so any whole number of work-groups works (a small
     * grid keeps the launch cheap on fused steps, where the kernel returns at once). With one slice
     * and 200 partitions a work-item waited for 400 loads in a row; with 32 slices, for about 14.
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
        for (int first = ctx.groupIdx * width; first < total; first += groups * width) { // uniform per work-group
            int idx = first + lane;
            float m = Float.NEGATIVE_INFINITY;
            float l = 0f;
            float o = 0f;
            if (idx < total) {
                int d = idx % headDim;
                int sh = idx / headDim; // seq * numQHeads + head
                int parts = (contextLens.get(sh / numQHeads) + partTokens - 1) / partTokens;
                int base = sh * maxParts * stride + headDim;  // this row's first max
                float m2 = Float.NEGATIVE_INFINITY;
                int j = slice;
                for (; j + slices < parts; j += 2 * slices) {
                    m = TornadoMath.max(m, partials.get(base + j * stride));
                    m2 = TornadoMath.max(m2, partials.get(base + (j + slices) * stride));
                }
                if (j < parts) {
                    m = TornadoMath.max(m, partials.get(base + j * stride));
                }
                m = TornadoMath.max(m, m2);
                float l2 = 0f;
                float o2 = 0f;
                j = slice;
                for (; j + slices < parts; j += 2 * slices) {
                    int pj = base + j * stride;
                    int pk = pj + slices * stride;
                    float wj = TornadoMath.exp(partials.get(pj) - m);
                    float wk = TornadoMath.exp(partials.get(pk) - m);
                    l += partials.get(pj + 1) * wj;
                    l2 += partials.get(pk + 1) * wk;
                    o += partials.get(pj - headDim + d) * wj;
                    o2 += partials.get(pk - headDim + d) * wk;
                }
                if (j < parts) {
                    int pj = base + j * stride;
                    float wj = TornadoMath.exp(partials.get(pj) - m);
                    l += partials.get(pj + 1) * wj;
                    o += partials.get(pj - headDim + d) * wj;
                }
                l += l2;
                o += o2;
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
            }
            ctx.localBarrier();
        }
    }
}
