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
 *  window                                   sliding window W: the step's query (position contextLens[i] - 1)
 *                                           sees positions max(0, contextLens[i] - W) .. contextLens[i] - 1 only;
 *                                           or chunks of C (AttentionWindow.chunked(C), a negative value): only the
 *                                           positions of its own chunk, from p - p % C for p = contextLens[i] - 1
 * </pre>
 *
 * <p>A batch has no window ({@link #NO_WINDOW}) unless made with {@link #window(int)}, which returns a view of the same
 * tables: models that alternate windowed and full layers (Mistral, Gemma 2 and 3, gpt-oss) take one batch per step and
 * pass {@code batch.window(W)} to the windowed layers' decode calls.
 *
 * <p>A batch taken from a {@link KvCache} remembers each sequence's page-table generation: once a
 * sequence is freed or one of its blocks is replaced (copy-on-write), a decode of the batch is
 * refused, since its tables would point at blocks that may already hold another sequence's K/V.
 */
public final class DecodeBatch {
    /** No sliding window: the step's query sees its sequence's whole context. */
    public static final int NO_WINDOW = Integer.MAX_VALUE;

    private final int[] seqIds;       // [numSeqs]
    private final int maxBlocksPerSeq;
    private final int[] blockTables;  // [numSeqs][maxBlocksPerSeq]
    private final int[] contextLens;  // [numSeqs]
    private final int blockSize;
    private final KvCache source;     // null for caller-made tables
    private final int[] generations;  // [numSeqs] page-table generation when taken; null with source
    private final int[] heldFrom;     // [numSeqs] first position whose block is held (KvCache.releaseBefore); 0: all
    private final int window;
    private final boolean skipped;    // rows start after skipped blocks (skipBlocks): positions renumbered from there
    private final int[][] selection;  // [numSeqs] the logical blocks each row attends (selectBlocks), or null: all
    private volatile KvCacheConfig checkedFor; // the last cache shape requireFits checked the tables against

    DecodeBatch(int[] seqIds, int maxBlocksPerSeq, int[] blockTables, int[] contextLens, KvCacheConfig config,
                KvCache source, int[] generations, int[] heldFrom) {
        this(seqIds, maxBlocksPerSeq, blockTables, contextLens, config.blockSize(), source, generations, heldFrom, NO_WINDOW, false,
                null);
        requireTables(config, heldFrom); // every held entry; what a step may read is checked by requireFits
    }

    private DecodeBatch(int[] seqIds, int maxBlocksPerSeq, int[] blockTables, int[] contextLens, int blockSize,
                        KvCache source, int[] generations, int[] heldFrom, int window, boolean skipped, int[][] selection) {
        this.seqIds = seqIds;
        this.maxBlocksPerSeq = maxBlocksPerSeq;
        this.blockTables = blockTables;
        this.contextLens = contextLens;
        this.blockSize = blockSize;
        this.source = source;
        this.generations = generations;
        this.heldFrom = heldFrom;
        this.window = window;
        this.skipped = skipped;
        this.selection = selection;
    }

    /**
     * This batch with a sliding window of {@code window} tokens ({@link #NO_WINDOW}: none): the same tables and
     * sequences (no copy), each step's query seeing only its sequence's last {@code window} positions, as
     * {@code PrefillBatch}'s window does for a query at the end of its context; {@code AttentionWindow.chunked(C)}:
     * only the positions of the query's own chunk of {@code C} (Llama 4's chunked local attention).
     */
    public DecodeBatch window(int window) {
        AttentionWindow.require("window", window);
        if (selection != null && window != NO_WINDOW) {
            throw new IllegalArgumentException("window=" + AttentionWindow.describe(window) + " on a batch of selected blocks"
                    + " (selectBlocks): its positions count over the selection, not the sequence");
        }
        if (skipped && AttentionWindow.isChunked(window)) {
            throw new IllegalArgumentException("window=" + AttentionWindow.describe(window) + " on a batch whose rows skip blocks"
                    + " (skipBlocks): chunks count from position 0, which the skipped rows no longer start at");
        }
        return window == this.window ? this
                : new DecodeBatch(seqIds, maxBlocksPerSeq, blockTables, contextLens, blockSize, source, generations, heldFrom, window,
                        skipped, selection);
    }

    /**
     * This batch with row {@code i}'s first {@code skip[i]} blocks left out: its query attends only the positions from
     * {@code skip[i] * blockSize()} on, as if they were a sequence of their own (the same keys and values; what counts back
     * from the query, a sliding window or ALiBi's distance, is unchanged). Cascade attention decodes the tokens after a
     * shared prefix this way, every member in one step whatever its length. The tables are copied, shifted; a row keeps at
     * least one token; the sequences' staleness is still checked ({@link #requireFits}). Refused with a chunked window,
     * whose chunks count from position 0.
     */
    public DecodeBatch skipBlocks(int... skip) {
        if (skip == null || skip.length != contextLens.length) {
            throw new IllegalArgumentException("skip.length=" + (skip == null ? "null" : skip.length) + " expected numSeqs="
                    + contextLens.length);
        }
        if (AttentionWindow.isChunked(window)) {
            throw new IllegalArgumentException("skipBlocks on a batch with window=" + AttentionWindow.describe(window)
                    + ": chunks count from position 0, which the skipped rows would no longer start at");
        }
        if (selection != null) {
            throw new IllegalArgumentException("skipBlocks on a batch of selected blocks (selectBlocks): select from the whole"
                    + " batch instead");
        }
        int least = Integer.MAX_VALUE;
        for (int i = 0; i < skip.length; i++) {
            if (skip[i] < 0 || (long) skip[i] * blockSize >= contextLens[i]) {
                throw new IllegalArgumentException("skip[" + i + "]=" + skip[i] + " blocks of " + blockSize + " tokens: seq="
                        + seqIds[i] + " (row " + i + ") has " + contextLens[i] + " tokens and must keep at least one");
            }
            least = Math.min(least, skip[i]);
        }
        int width = Math.max(1, maxBlocksPerSeq - least);
        int[] flat = new int[contextLens.length * width];
        java.util.Arrays.fill(flat, BlockPool.NO_BLOCK);
        int[] lengths = new int[contextLens.length];
        int[] held = new int[contextLens.length];
        for (int i = 0; i < skip.length; i++) {
            System.arraycopy(blockTables, i * maxBlocksPerSeq + skip[i], flat, i * width, maxBlocksPerSeq - skip[i]);
            lengths[i] = contextLens[i] - skip[i] * blockSize;
            held[i] = Math.max(0, heldFrom[i] - skip[i] * blockSize);
        }
        return new DecodeBatch(seqIds, width, flat, lengths, blockSize, source, generations, held, window, true, null);
    }

    /**
     * Block-sparse decode (Quest's query-aware page selection; FlashInfer's block-sparse attention): row {@code i}'s query
     * attends only the tokens of its logical blocks {@code blocks[i]} (ascending, distinct, held, at least one), read as
     * one sequence of those tokens in that order: every block but the sequence's last holds {@code blockSize} tokens, its
     * last (if selected, necessarily the selection's last) its own count. The tables are copied; the sequences'
     * staleness is still checked ({@link #requireFits}). Positions count over the selection, so the batch takes no window
     * or chunks, the backends refuse ALiBi on it, and a prefill batch over it is refused (decode steps only). Every
     * backend reads it: it is only tables and lengths.
     */
    public DecodeBatch selectBlocks(int[]... blocks) {
        if (blocks == null || blocks.length != contextLens.length) {
            throw new IllegalArgumentException("blocks.length=" + (blocks == null ? "null" : blocks.length) + " expected numSeqs="
                    + contextLens.length);
        }
        if (window != NO_WINDOW || skipped || selection != null) {
            throw new IllegalArgumentException("selectBlocks on a batch " + (window != NO_WINDOW ? "with window="
                    + AttentionWindow.describe(window) : skipped ? "whose rows skip blocks (skipBlocks)" : "of selected blocks")
                    + ": select from a plain batch");
        }
        int width = 1;
        for (int[] row : blocks) {
            width = Math.max(width, row == null ? 0 : row.length);
        }
        int[] flat = new int[contextLens.length * width];
        java.util.Arrays.fill(flat, BlockPool.NO_BLOCK);
        int[] lengths = new int[contextLens.length];
        int[][] kept = new int[contextLens.length][];
        for (int i = 0; i < blocks.length; i++) {
            int[] row = blocks[i];
            int used = (contextLens[i] + blockSize - 1) / blockSize;
            if (row == null || row.length == 0) {
                throw new IllegalArgumentException("blocks[" + i + "]=" + (row == null ? "null" : "[]") + ": seq=" + seqIds[i]
                        + " (row " + i + ") must attend at least one block");
            }
            long tokens = 0;
            for (int k = 0; k < row.length; k++) {
                int j = row[k];
                if (j < heldFrom[i] / blockSize || j >= used || (k > 0 && j <= row[k - 1])) {
                    throw new IllegalArgumentException("blocks[" + i + "][" + k + "]=" + j + ": seq=" + seqIds[i] + " (row " + i
                            + ") selects ascending distinct blocks of its held " + heldFrom[i] / blockSize + ".." + (used - 1));
                }
                flat[i * width + k] = blockTables[i * maxBlocksPerSeq + j];
                tokens += j == used - 1 ? contextLens[i] - (long) j * blockSize : blockSize;
            }
            lengths[i] = (int) tokens;
            kept[i] = row.clone();
        }
        return new DecodeBatch(seqIds, width, flat, lengths, blockSize, source, generations, new int[contextLens.length], NO_WINDOW,
                false, kept);
    }

    /**
     * A prefill's query tokens as decode rows: row {@code r} is row {@code rowOf[r]} of this batch cut at {@code lens[r]}
     * tokens, so a decode of it gives the query at position {@code lens[r] - 1} what a causal prefill gives it (the
     * TornadoVM backend runs a prefill over a latent cache this way: {@code PrefillBatch.decodeRows}). The tables are
     * copied (a row's columns past its length hold NO_BLOCK); the window, skipped rows and the sequences' staleness check
     * carry over. Refused on a batch of selected blocks, and for a row or length outside the batch (named).
     */
    public DecodeBatch perQueryRows(int[] rowOf, int[] lens) {
        if (rowOf == null || lens == null || rowOf.length == 0 || rowOf.length != lens.length) {
            throw new IllegalArgumentException("rowOf.length=" + (rowOf == null ? "null" : rowOf.length) + " lens.length="
                    + (lens == null ? "null" : lens.length) + ": need one row and one length per query, at least one");
        }
        if (selection != null) {
            throw new IllegalArgumentException("perQueryRows on a batch of selected blocks (selectBlocks): decode steps only");
        }
        int n = rowOf.length;
        int width = Math.max(1, maxBlocksPerSeq);
        if ((long) n * width > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("queries=" + n + " x maxBlocksPerSeq=" + width + " table entries exceed one int array");
        }
        int[] flat = new int[n * width];
        java.util.Arrays.fill(flat, BlockPool.NO_BLOCK);
        int[] ids = new int[n];
        int[] gens = generations == null ? null : new int[n];
        int[] held = new int[n];
        for (int r = 0; r < n; r++) {
            int i = rowOf[r];
            if (i < 0 || i >= contextLens.length) {
                throw new IllegalArgumentException("rowOf[" + r + "]=" + i + ": the batch has rows 0.." + (contextLens.length - 1));
            }
            if (lens[r] < 1 || lens[r] > contextLens[i]) {
                throw new IllegalArgumentException("lens[" + r + "]=" + lens[r] + ": row " + i + " (seq=" + seqIds[i] + ") has "
                        + contextLens[i] + " tokens");
            }
            System.arraycopy(blockTables, i * maxBlocksPerSeq, flat, r * width, (lens[r] + blockSize - 1) / blockSize);
            ids[r] = seqIds[i];
            if (gens != null) {
                gens[r] = generations[i];
            }
            held[r] = heldFrom[i];
        }
        return new DecodeBatch(ids, width, flat, lens.clone(), blockSize, source, gens, held, window, skipped, null);
    }

    /**
     * The position of each row's query token, {@code contextLen - 1} ({@code [numSeqs]}): what
     * {@code RotaryEmbedding.apply} takes for a decode step's queries and its new keys.
     */
    public int[] queryPositions() {
        int[] positions = new int[contextLens.length];
        for (int i = 0; i < positions.length; i++) {
            positions[i] = contextLens[i] - 1;
        }
        return positions;
    }

    /** Whether this batch attends selected blocks only ({@link #selectBlocks}). */
    public boolean selected() {
        return selection != null;
    }

    /** The logical blocks row {@code i} attends ({@link #selectBlocks}); null for a batch that attends all of them. */
    public int[] selectedBlocks(int i) {
        return selection == null ? null : selection[i].clone();
    }

    /** The sliding window in tokens, a chunked window ({@link AttentionWindow#chunked}), or {@link #NO_WINDOW}. */
    public int window() {
        return window;
    }

    /** Whether the batch has a sliding window or chunks. */
    public boolean windowed() {
        return window != NO_WINDOW;
    }

    /** The first position row {@code i}'s query sees: {@code max(0, contextLen(i) - window())}, or its chunk's start. */
    public int firstVisible(int i) {
        return firstVisible(contextLens[i], window);
    }

    /**
     * The first position a query at position {@code len - 1} sees: {@code max(0, len - window)} without overflow for a
     * sliding window, its chunk's start for a chunked one ({@link AttentionWindow#visibleFrom}), 0 for {@code len <= 0}.
     */
    public static int firstVisible(int len, int window) {
        return len <= 0 ? 0 : AttentionWindow.visibleFrom(len - 1, window);
    }

    /** Tokens row {@code i}'s query sees: {@code min(contextLen(i), window())} for a sliding window. */
    public int visibleLen(int i) {
        return contextLens[i] - firstVisible(i);
    }

    /** {@link #take}'s width for "as many columns as the longest table needs". */
    static final int FIT = -1;

    /** The batch of {@code seqs}, {@code maxBlocksPerSeq} columns (or {@link #FIT}); under the cache's lock. */
    static DecodeBatch take(KvCache source, int[] seqs, int maxBlocksPerSeq) {
        if (seqs == null || seqs.length == 0) {
            throw new IllegalArgumentException("seqs is empty: a batch needs at least one sequence");
        }
        PageTable[] tables = new PageTable[seqs.length];
        int longest = 0;
        for (int i = 0; i < seqs.length; i++) {
            tables[i] = source.sequences().get(seqs[i]);
            longest = Math.max(longest, tables[i].numBlocks());
        }
        if (maxBlocksPerSeq == FIT) {
            maxBlocksPerSeq = longest;
        }
        int width = Math.max(1, maxBlocksPerSeq);
        if ((long) seqs.length * width > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("seqs.length=" + seqs.length + " x maxBlocksPerSeq=" + width
                    + " table entries exceed one int array");
        }
        int[] flat = new int[seqs.length * width];
        java.util.Arrays.fill(flat, BlockPool.NO_BLOCK);
        int[] lengths = new int[seqs.length];
        int[] generations = new int[seqs.length];
        int[] heldFrom = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            PageTable t = tables[i];
            if (t.numBlocks() > maxBlocksPerSeq) {
                throw new IllegalArgumentException("maxBlocksPerSeq=" + maxBlocksPerSeq + " < blocks=" + t.numBlocks()
                        + " of seq=" + seqs[i]);
            }
            t.copyTo(flat, i * width);
            lengths[i] = t.numTokens();
            generations[i] = t.generation();
            heldFrom[i] = t.numReleased() * source.config().blockSize();
        }
        return new DecodeBatch(seqs.clone(), width, flat, lengths, source.config(), source, generations, heldFrom);
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
        return new DecodeBatch(ids, max, flat, contextLens.clone(), config, null, null, new int[tables.length]);
    }

    /**
     * Checks that every table entry a decode will read (with a window: from each sequence's first visible token's
     * block on) names a block of {@code config}'s pool and,
     * for a batch taken from a cache, that no sequence of it was freed or had a block replaced
     * since. Backends call it before every launch, so a batch made for another cache can never make
     * a kernel read outside a pool, and a stale batch never reads another sequence's K/V.
     */
    public void requireFits(KvCacheConfig config) {
        // the tables never change after construction, so one pass per cache shape is enough (a step of 32 x 32k
        // tokens has 65k entries to check); staleness below is checked every time
        if (!config.equals(checkedFor)) {
            requireTables(config);
            checkedFor = config;
        }
        if (source != null) {
            requireCurrent();
        }
    }

    /**
     * {@link #requireFits(KvCacheConfig)} for a step whose row {@code i} reads positions from {@code firstRead[i]} on
     * instead of from its window's first (a prefill: its first query's window), checked on every call.
     */
    public void requireFits(KvCacheConfig config, int[] firstRead) {
        if (firstRead == null || firstRead.length != contextLens.length) {
            throw new IllegalArgumentException("firstRead.length=" + (firstRead == null ? "null" : firstRead.length)
                    + " expected numSeqs=" + contextLens.length);
        }
        requireTables(config, firstRead);
        if (source != null) {
            requireCurrent();
        }
    }

    /** Refuses the batch when a sequence of it was freed or had a block replaced since it was taken. */
    private void requireCurrent() {
        synchronized (source) {
            for (int i = 0; i < seqIds.length; i++) {
                PageTable t = source.sequences().getOrNull(seqIds[i]);
                if (t == null) {
                    throw new IllegalArgumentException("seq=" + seqIds[i] + " of this batch was freed after the batch was taken:"
                            + " its blocks may hold another sequence's K/V now; take a new batch");
                }
                if (t.generation() != generations[i]) {
                    throw new IllegalArgumentException("seq=" + seqIds[i] + " had a block replaced (copy-on-write) or released"
                            + " (releaseBefore) after the batch was taken; take a new batch");
                }
            }
        }
    }

    private void requireTables(KvCacheConfig config) {
        int[] firstRead = new int[contextLens.length];
        for (int i = 0; i < firstRead.length; i++) {
            firstRead[i] = firstVisible(Math.max(1, contextLens[i]), window);
        }
        requireTables(config, firstRead);
    }

    private void requireTables(KvCacheConfig config, int[] firstRead) {
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
            // a windowed step reads only the blocks from its first visible token's on (the rest are never indexed)
            int from = Math.max(0, firstRead[i]);
            if (from < heldFrom[i]) {
                throw new IllegalArgumentException("seq=" + seqIds[i] + " (row " + i + "): this step reads from position " + from
                        + " but positions < " + heldFrom[i] + " were released (releaseBefore): see them through a window that"
                        + " starts at or after " + heldFrom[i]);
            }
            for (int j = from / blockSize; j < used; j++) {
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

    /** Physical block of (row {@code i}, logical block {@code j}); {@code PageTable.RELEASED} below {@link #firstHeld}. */
    public int block(int i, int j) {
        return blockTables[i * maxBlocksPerSeq + j];
    }

    /** The first position of row {@code i} whose block is held ({@code KvCache.releaseBefore}); 0 when none was released. */
    public int firstHeld(int i) {
        return heldFrom[i];
    }

    /**
     * {@link #block}, but a released column reads as the row's first held block: what the GPU kernels get, since a kernel
     * loads whole tiles from a window's start rounded down (16 tokens in decode) and masks the positions before it, so
     * such a load may touch a released column's block; it then reads the row's own K/V, never an id outside the pool.
     */
    public int kernelBlock(int i, int j) {
        int b = blockTables[i * maxBlocksPerSeq + j];
        int held = heldFrom[i] / blockSize;
        return b != PageTable.RELEASED ? b : held < maxBlocksPerSeq ? blockTables[i * maxBlocksPerSeq + held] : BlockPool.NO_BLOCK;
    }

    /** The flat table of {@link #kernelBlock} (a copy), {@code [numSeqs][maxBlocksPerSeq]}. */
    public int[] kernelBlockTables() {
        int[] flat = blockTables.clone();
        for (int i = 0; i < contextLens.length; i++) {
            for (int j = 0; j < heldFrom[i] / blockSize; j++) {
                flat[i * maxBlocksPerSeq + j] = kernelBlock(i, j);
            }
        }
        return flat;
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

    /** Tokens the batch's queries see over all sequences ({@link #totalTokens()} without a window). */
    public long visibleTokens() {
        long s = 0;
        for (int i = 0; i < contextLens.length; i++) {
            s += visibleLen(i);
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
