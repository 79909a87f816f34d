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
     * Merges split-K partitions: one output element {@code (seq, head, d)} per work-item and
     * round, grid-stride, so any global size works (a small grid keeps the launch cheap on fused
     * steps, where the kernel returns at once).
     */
    public static void mergePartitions(KernelContext ctx, IntArray contextLens, IntArray params, FloatArray partials,
                                       FloatArray out, int numQHeads, int headDim) {
        if (params.get(DecodeParams.WRITE_FINAL) != 0 || params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int numSeqs = params.get(DecodeParams.NUM_SEQS);
        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int total = numSeqs * numQHeads * headDim;
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int d = idx % headDim;
            int sh = idx / headDim; // seq * numQHeads + head
            int seq = sh / numQHeads;
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
}
