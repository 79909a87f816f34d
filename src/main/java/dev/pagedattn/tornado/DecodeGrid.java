package dev.pagedattn.tornado;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.kernels.DecodeParams;
import dev.pagedattn.kernels.HeadPairDecodeKernels;
import dev.pagedattn.kernels.HeadQuadDecodeKernels;
import dev.pagedattn.kernels.PagedDecodeKernels;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * How one decode step is cut into work-groups: the kernel tuning (dims per lane, tokens per
 * round), the head tiles, and the split-K partitions.
 *
 * <p>The rule (see benchmarks/NOTES.md for the measurements behind the constants): without
 * splitting there are {@code numSeqs * numKvHeads * headTiles} work-groups. When that is below
 * {@code targetGroups} (enough to fill every SM a few times over), each sequence is cut into
 * partitions of at least {@code minPartitionTokens} tokens so that the grid reaches the target;
 * long contexts at small batch (1 x 32k) then use the whole GPU, and the merge kernel combines the
 * partitions. With one partition the attention kernel writes the output itself (the fused variant).
 *
 * @param dimsPerLane     DS: head dims owned by each lane
 * @param tokensPerRound  U: tokens each token group takes per round
 * @param headTiles       query heads of a KV head are handled in tiles of up to 8
 * @param partitionTokens tokens per partition
 * @param maxPartitions   partitions of the longest sequence
 * @param numGroups       work-groups of the attention kernel
 */
public record DecodeGrid(Kernel kernel, int dimsPerLane, int tokensPerRound, int headTiles, int partitionTokens,
                         int maxPartitions, int numGroups, int localSize) {
    /** Which KernelContext attention kernel runs. */
    public enum Kernel {
        /** QUADS for groups of 3 or more query heads, PAIRS below. */
        AUTO,
        /** {@link dev.pagedattn.kernels.HeadQuadDecodeKernels}: four heads per work-item, all state in named registers. */
        QUADS,
        /** {@link dev.pagedattn.kernels.HeadPairDecodeKernels}: two heads per work-item, all state in named registers. */
        PAIRS,
        /** {@link PagedDecodeKernels}: every head of the tile per work-item, state in private arrays. */
        GROUPS;

        public static Kernel parse(String name) {
            for (Kernel k : values()) {
                if (k.name().equalsIgnoreCase(name)) {
                    return k;
                }
            }
            throw new IllegalArgumentException("pagedattn.tornado.kernel=" + name + " is not one of auto, quads, pairs, groups");
        }
    }

    /** The attention kernel, {@code -Dpagedattn.tornado.kernel=pairs|groups}. */
    public static final Kernel KERNEL = Kernel.parse(System.getProperty("pagedattn.tornado.kernel", "auto"));
    /** Work-groups that fill an H100 (132 SMs) about four times over. */
    public static final int TARGET_GROUPS = Integer.getInteger("pagedattn.tornado.targetGroups", 528);
    /** Smallest partition worth a work-group of its own. */
    public static final int MIN_PARTITION_TOKENS = Integer.getInteger("pagedattn.tornado.minPartitionTokens", 256);
    /** Tokens per round per token group, U. */
    public static final int TOKENS_PER_ROUND = Integer.getInteger("pagedattn.tornado.tokensPerRound", 2);

    /** The grid for a step; {@code split=false} forces one partition (the fused variant). */
    public static DecodeGrid plan(AttentionSpec spec, int numSeqs, int maxContextLen, boolean split) {
        return plan(spec, numSeqs, maxContextLen, split, TARGET_GROUPS, MIN_PARTITION_TOKENS, TOKENS_PER_ROUND, KERNEL);
    }

    public static DecodeGrid plan(AttentionSpec spec, int numSeqs, int maxContextLen, boolean split,
                                  int targetGroups, int minPartitionTokens, int tokensPerRound, Kernel kernel) {
        if (tokensPerRound < 1 || tokensPerRound > PagedDecodeKernels.MAX_TOKENS_PER_ROUND) {
            throw new IllegalArgumentException("tokensPerRound=" + tokensPerRound + " must be in [1, "
                    + PagedDecodeKernels.MAX_TOKENS_PER_ROUND + "]");
        }
        int ds = dimsPerLane(spec.headDim());
        int tiles = (spec.groupSize() + PagedDecodeKernels.MAX_HEADS_PER_TILE - 1) / PagedDecodeKernels.MAX_HEADS_PER_TILE;
        int base = numSeqs * spec.numKvHeads() * tiles;
        int parts = 1;
        if (split && base < targetGroups) {
            int wanted = (targetGroups + base - 1) / base;
            int most = Math.max(1, (maxContextLen + minPartitionTokens - 1) / minPartitionTokens);
            parts = Math.min(wanted, most);
        }
        int partitionTokens = (maxContextLen + parts - 1) / parts;
        int maxPartitions = (maxContextLen + partitionTokens - 1) / partitionTokens;
        if (kernel == Kernel.AUTO) {
            kernel = spec.groupSize() >= 3 ? Kernel.QUADS : Kernel.PAIRS;
        }
        int local = switch (kernel) {
            case QUADS -> HeadQuadDecodeKernels.localSize(spec.groupSize(), spec.headDim());
            case PAIRS -> HeadPairDecodeKernels.localSize(spec.groupSize(), spec.headDim());
            default -> PagedDecodeKernels.WORK_GROUP;
        };
        return new DecodeGrid(kernel, ds, tokensPerRound, tiles, partitionTokens, maxPartitions, base * maxPartitions, local);
    }

    /** The largest DS in {8, 4, 2, 1} that divides headDim and leaves >= 4 lanes per token group. */
    static int dimsPerLane(int headDim) {
        for (int ds = PagedDecodeKernels.MAX_DIMS_PER_LANE; ds > 1; ds /= 2) {
            if (headDim % ds == 0 && headDim / ds >= 4) {
                return ds;
            }
        }
        return 1;
    }

    /** The attention kernel's frozen {@code tuning} argument. */
    public int tuning() {
        return kernel == Kernel.GROUPS ? dimsPerLane * 16 + tokensPerRound : 2;
    }

    public int attentionGlobalSize() {
        return numGroups * localSize;
    }

    /** Rows of partial results this grid writes: numSeqs * maxPartitions. */
    public int partialRows(int numSeqs) {
        return numSeqs * maxPartitions;
    }

    /** Whether the attention kernel writes the normalised output itself. */
    public boolean fused() {
        return maxPartitions == 1;
    }

    /** Fills the per-step params the kernels read. */
    public void writeParams(IntArray params, int numSeqs, int layerBase, int maxBlocksPerSeq, int numNewSlots,
                            boolean skipAttention) {
        params.set(DecodeParams.NUM_SEQS, numSeqs);
        params.set(DecodeParams.PARTITION_TOKENS, partitionTokens);
        params.set(DecodeParams.MAX_PARTITIONS, maxPartitions);
        params.set(DecodeParams.LAYER_BASE, layerBase);
        params.set(DecodeParams.MAX_BLOCKS_PER_SEQ, maxBlocksPerSeq);
        params.set(DecodeParams.WRITE_FINAL, fused() ? 1 : 0);
        params.set(DecodeParams.NUM_NEW_SLOTS, numNewSlots);
        params.set(DecodeParams.SKIP_ATTENTION, skipAttention ? 1 : 0);
    }
}
