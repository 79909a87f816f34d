package dev.pagedattn.kernels;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * What the attention kernels share: the limits of their shapes and the split-K merge.
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
 * The attention kernels ({@link HeadQuadDecodeKernels}, {@link HeadPairDecodeKernels}) give one
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

    // ---- the chunked kernels' shared steps (ChunkDecodeKernels), over local memory only ----

    /** stats: [local] each work-item's max score of the current chunk. */
    public static final int STATS_CHUNK_MAX = 0;
    /** stats: [local] each work-item's running sum of probabilities (its head is tid % heads). */
    public static final int STATS_SUM = 128;
    /** stats: [local] each work-item's copy of its head's running max. */
    public static final int STATS_MAX = 256;
    /** stats: [heads] this chunk's rescale factor exp(oldMax - newMax) per head. */
    public static final int STATS_RESCALE = 384;
    /** Floats of the stats local array (local size 128). */
    public static final int STATS_SIZE = 392;

    /** Resets this work-item's running max and sum (its own slots only: no barrier needed). */
    public static void chunkInit(KernelContext ctx, float[] stats) {
        int tid = ctx.localIdx;
        stats[STATS_SUM + tid] = 0f;
        // finite: exp(oldMax - newMax) never sees -inf - -inf
        stats[STATS_MAX + tid] = -Float.MAX_VALUE;
    }

    /**
     * Scores, running max and probabilities of one chunk. Reads the partial dots
     * {@code dots[chunk][heads][lanes + 1]} (barrier before the call), writes the probabilities
     * {@code probs[chunk][heads]} and {@code stats[STATS_RESCALE + h]}, and ends with a barrier.
     * Work-item {@code tid} owns the (token, head) pairs {@code tid, tid + local, ...} of head
     * {@code tid % heads}; rows at or past {@code end} score -inf.
     */
    public static void chunkSoftmax(KernelContext ctx, float[] dots, float[] probs, float[] stats, int chunkStart,
                                    int end, int heads, int lanes, int chunk) {
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int pairs = chunk * heads;
        float chunkMax = Float.NEGATIVE_INFINITY;
        for (int idx = tid; idx < pairs; idx += local) {
            int base = idx * (lanes + 1);
            float s = 0f;
            for (int l = 0; l < lanes; l++) {
                s += dots[base + l];
            }
            if (chunkStart + idx / heads >= end) {
                s = Float.NEGATIVE_INFINITY;
            }
            probs[idx] = s;
            chunkMax = TornadoMath.max(chunkMax, s);
        }
        stats[STATS_CHUNK_MAX + tid] = chunkMax;
        ctx.localBarrier();
        float oldMax = stats[STATS_MAX + tid];
        float newMax = oldMax;
        for (int j = tid % heads; j < local; j += heads) {
            newMax = TornadoMath.max(newMax, stats[STATS_CHUNK_MAX + j]);
        }
        float rescale = TornadoMath.exp(oldMax - newMax);
        float sum = stats[STATS_SUM + tid] * rescale;
        for (int idx = tid; idx < pairs; idx += local) {
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
    }

    /**
     * Sums the row slots' accumulators {@code acc[rows][heads][headDim]} (written to {@code acc}
     * before the call) and the work-items' probability sums, then writes the normalised output, or
     * this partition's unnormalised output, max and sum to {@code partials}.
     */
    public static void chunkWrite(KernelContext ctx, float[] acc, float[] stats, IntArray params, FloatArray out,
                                  FloatArray partials, int seq, int kvHead, int part, int maxParts, int numKvHeads,
                                  int groupSize, int headDim, int heads, int rows) {
        ctx.localBarrier();
        int tid = ctx.localIdx;
        int local = ctx.localGroupSizeX;
        int numQHeads = numKvHeads * groupSize;
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < groupSize * headDim; idx += local) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            float o = 0f;
            for (int r = 0; r < rows; r++) {
                o += acc[(r * heads + hh) * headDim + d];
            }
            float sum = 0f;
            for (int j = hh; j < local; j += heads) {
                sum += stats[STATS_SUM + j];
            }
            int h = kvHead * groupSize + hh;
            if (writeFinal != 0) {
                out.set((seq * numQHeads + h) * headDim + d, o / sum);
            } else {
                int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                partials.set(pBase + d, o);
                if (d == 0) {
                    partials.set(pBase + headDim, stats[STATS_MAX + hh]);
                    partials.set(pBase + headDim + 1, sum);
                }
            }
        }
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
