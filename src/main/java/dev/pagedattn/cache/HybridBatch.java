package dev.pagedattn.cache;

/**
 * A decode step's tables in a {@link HybridKvCache}: one {@link DecodeBatch} per layer group, each through its group's
 * window. Take one per step ({@link HybridKvCache#batch}) and give each layer {@link #forLayer}; like a
 * {@link DecodeBatch}, it is refused once a sequence of it is freed, copied or has blocks released (take a new one).
 */
public final class HybridBatch {
    private final HybridKvCache cache;
    private final DecodeBatch[] groups;

    HybridBatch(HybridKvCache cache, DecodeBatch[] groups) {
        this.cache = cache;
        this.groups = groups;
    }

    /** The cache this batch was taken from. */
    public HybridKvCache cache() {
        return cache;
    }

    /** Group {@code g}'s tables, through its window: what a backend on {@code cache().group(g)} decodes. */
    public DecodeBatch group(int g) {
        cache.window(g); // names a bad group
        return groups[g];
    }

    /** Model layer {@code layer}'s tables: its group's, through its window. */
    public DecodeBatch forLayer(int layer) {
        return groups[cache.groupOf(layer)];
    }

    /** Sequences in the batch. */
    public int numSeqs() {
        return groups[0].numSeqs();
    }
}
