package dev.pagedattn.tornado;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.kernels.PrefillKernels;
import dev.pagedattn.kernels.PrefillParams;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The launch shape of {@link PrefillKernels#prefillF16}: work-groups of {@link #LOCAL} work-items,
 * one per (sequence, KV head, head tile, query tile, partition), and the split rule.
 *
 * <p>Split along the context: when the batch's (sequence, KV head, head tile, query tile) groups
 * alone are fewer than {@link DecodeGrid#TARGET_GROUPS} (short query runs over long prefixes, e.g.
 * speculative verification), the context is cut into equal partitions of at least
 * {@link DecodeGrid#MIN_PARTITION_TOKENS} tokens, as many as it takes to reach the target; the
 * partials are merged by log-sum-exp. Long query runs fill the GPU on their own and are not split.
 *
 * @param headTiles       head tiles per KV head
 * @param maxQTiles       query tiles of the longest query run
 * @param partitionTokens context tokens per partition (a multiple of KV_TILE)
 * @param maxPartitions   partitions of the longest context
 * @param numGroups       work-groups of the launch
 */
public record PrefillGrid(int headTiles, int maxQTiles, int partitionTokens, int maxPartitions, int numGroups) {
    /** Work-items per work-group. */
    public static final int LOCAL = 128;
    /** Most partial elements a split may need (1 GiB of fp32); beyond it the split is coarser. */
    static final long MAX_PARTIAL_ELEMENTS = 1L << 28;

    public static PrefillGrid plan(AttentionSpec spec, PrefillBatch batch) {
        int maxContext = batch.kv().maxContextLen();
        int headTiles = PrefillKernels.headTiles(spec.groupSize(), spec.headDim());
        int tokensPerTile = PrefillKernels.tokensPerTile(spec.groupSize(), spec.headDim());
        int maxQTiles = (batch.maxQLen() + tokensPerTile - 1) / tokensPerTile;
        long unsplit = (long) batch.numSeqs() * spec.numKvHeads() * headTiles * maxQTiles;
        int parts = 1;
        if (unsplit < DecodeGrid.TARGET_GROUPS) {
            int byTarget = (int) ((DecodeGrid.TARGET_GROUPS + unsplit - 1) / unsplit);
            int byLength = Math.max(1, maxContext / DecodeGrid.MIN_PARTITION_TOKENS);
            long rowBytes = (long) batch.totalQueries() * spec.numQHeads() * (spec.headDim() + 2);
            int byMemory = (int) Math.max(1, MAX_PARTIAL_ELEMENTS / rowBytes);
            parts = Math.max(1, Math.min(byTarget, Math.min(byLength, byMemory)));
        }
        int partTokens = (maxContext + parts - 1) / parts;
        partTokens = (partTokens + PrefillKernels.KV_TILE - 1) / PrefillKernels.KV_TILE * PrefillKernels.KV_TILE;
        int maxParts = (maxContext + partTokens - 1) / partTokens;
        long groups = unsplit * maxParts;
        if (groups * LOCAL > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("groups=" + groups + " of the prefill grid exceed one launch");
        }
        return new PrefillGrid(headTiles, maxQTiles, partTokens, maxParts, (int) groups);
    }

    public int globalSize() {
        return numGroups * LOCAL;
    }

    /** Partial elements the launch writes: {@code [totalQueries][numQHeads][maxPartitions][headDim + 2]} (0 unsplit). */
    public long partialElements(AttentionSpec spec, int totalQueries) {
        return maxPartitions == 1 ? 0 : (long) totalQueries * spec.numQHeads() * maxPartitions * (spec.headDim() + 2);
    }

    /** Fills the per-step params. */
    public void writeParams(IntArray params, PrefillBatch batch, int layerBase, int maxBlocksPerSeq, boolean skipAttention) {
        params.set(PrefillParams.NUM_SEQS, batch.numSeqs());
        params.set(PrefillParams.LAYER_BASE, layerBase);
        params.set(PrefillParams.MAX_BLOCKS_PER_SEQ, maxBlocksPerSeq);
        params.set(PrefillParams.PARTITION_TOKENS, partitionTokens);
        params.set(PrefillParams.MAX_PARTITIONS, maxPartitions);
        params.set(PrefillParams.MAX_Q_TILES, maxQTiles);
        params.set(PrefillParams.WINDOW, batch.window());
        params.set(PrefillParams.SKIP_ATTENTION, skipAttention ? 1 : 0);
        params.set(PrefillParams.TOTAL_QUERIES, batch.totalQueries());
    }
}
