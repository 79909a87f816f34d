package dev.pagedattn.cache;

/**
 * What a decode step reads: padded block tables and context lengths for a batch of sequences.
 * Validated on construction against the cache shape, so a kernel indexing the pools through it
 * can never leave them.
 *
 * <pre>
 *  blockTables [numSeqs][maxBlocksPerSeq]  physical block of (sequence i, logical block j);
 *                                          columns past ceil(contextLens[i]/blockSize) hold NO_BLOCK
 *  contextLens [numSeqs]                    tokens of sequence i, >= 1
 * </pre>
 */
public final class DecodeBatch {
    private final int[] seqIds;       // [numSeqs]
    private final int maxBlocksPerSeq;
    private final int[] blockTables;  // [numSeqs][maxBlocksPerSeq]
    private final int[] contextLens;  // [numSeqs]
    private final int blockSize;

    DecodeBatch(int[] seqIds, int maxBlocksPerSeq, int[] blockTables, int[] contextLens, KvCacheConfig config) {
        this.seqIds = seqIds;
        this.maxBlocksPerSeq = maxBlocksPerSeq;
        this.blockTables = blockTables;
        this.contextLens = contextLens;
        this.blockSize = config.blockSize();
        requireFits(config);
    }

    /** A batch from caller-made tables ({@code tables[i]} lists sequence i's physical blocks). */
    public static DecodeBatch of(KvCacheConfig config, int[][] tables, int[] contextLens) {
        if (tables == null || contextLens == null || tables.length == 0 || tables.length != contextLens.length) {
            throw new IllegalArgumentException("tables.length=" + (tables == null ? "null" : tables.length)
                    + " contextLens.length=" + (contextLens == null ? "null" : contextLens.length)
                    + ": need one table per sequence and at least one sequence");
        }
        int max = 1;
        for (int[] t : tables) {
            max = Math.max(max, t.length);
        }
        int[] flat = new int[tables.length * max];
        java.util.Arrays.fill(flat, BlockPool.NO_BLOCK);
        int[] ids = new int[tables.length];
        for (int i = 0; i < tables.length; i++) {
            // columns past the length stay NO_BLOCK, as the class promises, whatever the caller passed
            int used = Math.max(0, Math.min(tables[i].length, config.blocksFor(contextLens[i])));
            System.arraycopy(tables[i], 0, flat, i * max, used);
            ids[i] = i;
        }
        return new DecodeBatch(ids, max, flat, contextLens.clone(), config);
    }

    /**
     * Checks that every table entry a decode will read names a block of {@code config}'s pool.
     * Backends call it before every launch, so a batch made for another cache can never make a
     * kernel read outside a pool.
     */
    public void requireFits(KvCacheConfig config) {
        if (config.blockSize() != blockSize) {
            throw new IllegalArgumentException("batch blockSize=" + blockSize + " does not match the cache's blockSize=" + config.blockSize());
        }
        for (int i = 0; i < contextLens.length; i++) {
            int len = contextLens[i];
            if (len < 1) {
                throw new IllegalArgumentException("contextLens[" + i + "]=" + len + " must be >= 1 (seq=" + seqIds[i] + ")");
            }
            int used = config.blocksFor(len);
            if (used > maxBlocksPerSeq) {
                throw new IllegalArgumentException("contextLens[" + i + "]=" + len + " needs " + used
                        + " blocks but the table has maxBlocksPerSeq=" + maxBlocksPerSeq);
            }
            for (int j = 0; j < used; j++) {
                int b = blockTables[i * maxBlocksPerSeq + j];
                if (b < 0 || b >= config.numBlocks()) {
                    throw new IllegalArgumentException("blockTables[" + i + "][" + j + "]=" + b + " is outside [0, "
                            + config.numBlocks() + ")");
                }
            }
        }
    }

    public int numSeqs() {
        return contextLens.length;
    }

    public int maxBlocksPerSeq() {
        return maxBlocksPerSeq;
    }

    public int blockSize() {
        return blockSize;
    }

    /** Sequence id of row {@code i}. */
    public int seqId(int i) {
        return seqIds[i];
    }

    /** Physical block of (row {@code i}, logical block {@code j}). */
    public int block(int i, int j) {
        return blockTables[i * maxBlocksPerSeq + j];
    }

    public int contextLen(int i) {
        return contextLens[i];
    }

    /** The longest context in the batch. */
    public int maxContextLen() {
        int m = 0;
        for (int len : contextLens) {
            m = Math.max(m, len);
        }
        return m;
    }

    /** Total tokens over all sequences. */
    public long totalTokens() {
        long s = 0;
        for (int len : contextLens) {
            s += len;
        }
        return s;
    }

    /** The flat table (a copy), {@code [numSeqs][maxBlocksPerSeq]}. */
    public int[] blockTables() {
        return blockTables.clone();
    }

    /** The lengths (a copy), {@code [numSeqs]}. */
    public int[] contextLens() {
        return contextLens.clone();
    }

    /** The sequence ids (a copy), {@code [numSeqs]}. */
    public int[] seqIds() {
        return seqIds.clone();
    }
}
