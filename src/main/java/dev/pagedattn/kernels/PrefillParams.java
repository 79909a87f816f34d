package dev.pagedattn.kernels;

/**
 * Slots of the per-step {@code params} IntArray the prefill kernels read (TornadoVM freezes
 * scalar arguments at JIT time, so everything that changes between steps travels here).
 */
public final class PrefillParams {
    /** Sequences in this step's batch. */
    public static final int NUM_SEQS = 0;
    /** Element offset where the data starts in the pools: 0, since every layer has its own pools (a plan binds one layer). */
    public static final int LAYER_BASE = 1;
    /** Columns of blockTables. */
    public static final int MAX_BLOCKS_PER_SEQ = 2;
    /** Context tokens per partition (split along the context), a multiple of {@link PrefillKernels#KV_TILE}. */
    public static final int PARTITION_TOKENS = 3;
    /** Partitions of the longest context; the grid's partition dimension. */
    public static final int MAX_PARTITIONS = 4;
    /** Query tiles of the longest query run; the grid's query-tile dimension. */
    public static final int MAX_Q_TILES = 5;
    /** Sliding window in tokens ({@code Integer.MAX_VALUE}: none). */
    public static final int WINDOW = 6;
    /** 1 to skip attention and merge (a scatter-only execution). */
    public static final int SKIP_ATTENTION = 7;
    /** Packed query rows (qIndptr[numSeqs]). */
    public static final int TOTAL_QUERIES = 8;
    /** Where the tensor-core kernel's global scratch starts in {@code partials} (after the partitions' states). */
    public static final int SCRATCH_BASE = 9;
    /**
     * 1 when every row goes through the merge: every row writes its partition states, one partition or more, and
     * {@link PrefillKernels#mergePartitions} adds the head's sink to the row's max and sum. So runs a layer with attention
     * sinks ({@code AttentionSinks}), and a step that writes log-sum-exps ({@link #LSE}; a layer without sinks then passes
     * sinks of -inf, which weigh nothing); 0 otherwise.
     */
    public static final int MERGED = 10;
    /**
     * Logit soft-capping ({@code AttentionSpec.softCap}): where the cap lies in {@code partials} (after everything the
     * kernels and the merge write there), or 0 when scores are not capped. The kernels read it once ({@code
     * PagedDecodeKernels.softCapOf}).
     */
    public static final int SOFT_CAP = 11;
    /**
     * ALiBi ({@code AttentionSpec.alibi}): where the shard's query heads' slopes start in {@code partials} (after the
     * cap, if any), or 0 without ALiBi; the kernels add {@code PagedDecodeKernels.alibiBias} to each score.
     */
    public static final int ALIBI = 12;
    /**
     * Token-tree masks ({@code TreeMask}): where, in {@code params} itself, a table of one int per sequence starts (the
     * start of that sequence's mask rows in {@code params}, 0 for a causal sequence), or 0 when the batch has no mask. A
     * sequence's rows follow one another, {@code 1 + (qLen + 31) / 32} ints each: the row's depth in its tree, then the
     * new tokens it sees ({@link PrefillTile#maskBits}); a masked sequence's window is in its rows, not in {@link #WINDOW}.
     */
    public static final int MASK = 13;
    /**
     * 1 when every query row sees its sequence's whole context (FlashInfer's {@code causal=False}: cross-attention, an
     * encoder): a tile's rows then sit at the context's last position and on, so the causal test passes every key.
     */
    public static final int NON_CAUSAL = 14;
    /**
     * Log-sum-exp outputs ({@code PrefillAttention.prefill(..., lse)}): where the step's {@code [totalQueries][numQHeads]}
     * row log-sum-exps start in the merge's {@code out} (after the plan's capacity of output rows), or 0 for none; a step
     * that writes them runs {@link #MERGED}.
     */
    public static final int LSE = 15;
    public static final int SIZE = 16;

    private PrefillParams() {
    }
}
