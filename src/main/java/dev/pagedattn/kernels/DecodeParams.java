package dev.pagedattn.kernels;

/**
 * Slots of the per-step {@code params} IntArray the decode kernels read. Values that change
 * between steps travel here because TornadoVM freezes scalar arguments at JIT time.
 */
public final class DecodeParams {
    /** Sequences in this step's batch (rows of blockTables/contextLens that are live). */
    public static final int NUM_SEQS = 0;
    /** Tokens per split-K partition (a multiple of the block size). */
    public static final int PARTITION_TOKENS = 1;
    /** Partitions of the longest sequence; the grid's partition dimension. */
    public static final int MAX_PARTITIONS = 2;
    /** Element offset where the decoded data starts in the pools: 0, since every layer has its own pools (a plan binds one layer). */
    public static final int LAYER_BASE = 3;
    /** Columns of blockTables. */
    public static final int MAX_BLOCKS_PER_SEQ = 4;
    /** 1 when MAX_PARTITIONS == 1: the attention kernel writes the normalised output itself. */
    public static final int WRITE_FINAL = 5;
    /** New token slots to scatter into the pools this step. */
    public static final int NUM_NEW_SLOTS = 6;
    /** 1 to skip attention (a scatter-only step). */
    public static final int SKIP_ATTENTION = 7;
    /** Work-items that share one output element's partitions in the merge (a power of two, see DecodeGrid). */
    public static final int MERGE_SLICES = 8;
    public static final int SIZE = 9;

    private DecodeParams() {
    }
}
