package dev.pagedattn.attention;

import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;

/**
 * What a prefill step reads: the sequences' block tables and context lengths (a {@link DecodeBatch},
 * which already counts the new tokens, whose K/V are in the cache) plus the ragged query layout in
 * FlashInfer's form and an optional sliding window or chunks. Validated on construction.
 *
 * <pre>
 *  kv          block tables [numSeqs][maxBlocksPerSeq], contextLens [numSeqs]  (see DecodeBatch)
 *  qIndptr     [numSeqs + 1]  query rows of sequence i are qIndptr[i] .. qIndptr[i+1]-1 of the packed
 *                             q/out [totalQueries][numQHeads][headDim]; qIndptr[0] = 0
 *  qLen_i      qIndptr[i+1] - qIndptr[i], in [1, contextLen_i]
 *  query j of sequence i sits at position p = contextLen_i - qLen_i + j and attends to positions
 *  max(0, p - window + 1) .. p of its own sequence (causal; window = NO_WINDOW: all of 0 .. p); a chunked window
 *  (AttentionWindow.chunked(C), Llama 4's local layers): p - p % C .. p, the positions of its own chunk
 *  masks       optional, per sequence (withMasks): of the new tokens (positions contextLen_i - qLen_i ..), query j
 *              sees only those its TreeMask row sets (speculative decoding's token trees); null: causal. With a mask a
 *              query's window counts from its tree position contextLen_i - qLen_i + depth(j) (new token k at
 *              contextLen_i - qLen_i + depth(k)), as if its path had been decoded alone
 * </pre>
 * Decode is the case {@code qLen_i = 1} for every i without a window.
 */
public final class PrefillBatch {
    /** No sliding window: every query attends to its whole causal prefix. */
    public static final int NO_WINDOW = DecodeBatch.NO_WINDOW;

    private final DecodeBatch kv;
    private final int[] qIndptr;  // [numSeqs + 1]
    private final int window;
    private final TreeMask[] masks; // [numSeqs], null entries causal; null: no masks
    private final boolean causal;

    private PrefillBatch(DecodeBatch kv, int[] qIndptr, int window, TreeMask[] masks, boolean causal) {
        this.kv = kv;
        this.qIndptr = qIndptr;
        this.window = window;
        this.masks = masks;
        this.causal = causal;
    }

    /** A batch from per-sequence query counts. */
    public static PrefillBatch of(DecodeBatch kv, int[] qLens, int window) {
        if (kv == null || qLens == null) {
            throw new IllegalArgumentException("kv=" + kv + " qLens=" + (qLens == null ? "null" : qLens.length) + ": both are needed");
        }
        int[] indptr = new int[qLens.length + 1];
        for (int i = 0; i < qLens.length; i++) {
            if (qLens[i] < 1) {
                throw new IllegalArgumentException("qLen[" + i + "]=" + qLens[i] + " must be >= 1");
            }
            long next = (long) indptr[i] + qLens[i];
            if (next > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("qLen[" + i + "]=" + qLens[i] + " makes the total query count overflow an int");
            }
            indptr[i + 1] = (int) next;
        }
        return ofIndptr(kv, indptr, window);
    }

    /** A batch from FlashInfer's {@code qo_indptr}. */
    public static PrefillBatch ofIndptr(DecodeBatch kv, int[] qIndptr, int window) {
        if (kv == null || qIndptr == null) {
            throw new IllegalArgumentException("kv=" + kv + " qIndptr=" + (qIndptr == null ? "null" : qIndptr.length) + ": both are needed");
        }
        if (kv.selected()) {
            throw new IllegalArgumentException("kv of selected blocks (selectBlocks): a prefill's new tokens need their"
                    + " positions, which the selection renumbers; select blocks for decode steps");
        }
        if (kv.windowed()) {
            throw new IllegalArgumentException("kv window=" + kv.window() + ": a prefill batch takes its window as PrefillBatch's"
                    + " own argument (window=" + window + "), over a kv batch without one");
        }
        int n = kv.numSeqs();
        if (qIndptr.length != n + 1) {
            throw new IllegalArgumentException("qIndptr.length=" + qIndptr.length + " must be numSeqs + 1 = " + (n + 1));
        }
        if (qIndptr[0] != 0) {
            throw new IllegalArgumentException("qIndptr[0]=" + qIndptr[0] + " must be 0");
        }
        for (int i = 0; i < n; i++) {
            int qLen = qIndptr[i + 1] - qIndptr[i];
            if (qIndptr[i + 1] < qIndptr[i]) {
                throw new IllegalArgumentException("qIndptr[" + (i + 1) + "]=" + qIndptr[i + 1] + " < qIndptr[" + i + "]="
                        + qIndptr[i] + ": qIndptr must not decrease");
            }
            if (qLen < 1) {
                throw new IllegalArgumentException("qLen[" + i + "]=" + qLen + " must be >= 1 (qIndptr[" + i + "]=qIndptr["
                        + (i + 1) + "]=" + qIndptr[i] + ")");
            }
            if (qLen > kv.contextLen(i)) {
                throw new IllegalArgumentException("qLen[" + i + "]=" + qLen + " exceeds contextLen[" + i + "]=" + kv.contextLen(i)
                        + ": the new tokens' K/V must be in the cache before prefill");
            }
        }
        AttentionWindow.require("window", window);
        return new PrefillBatch(kv, qIndptr.clone(), window, null, true);
    }

    /**
     * A batch whose every query sees its sequence's whole context (FlashInfer's {@code causal=False}): a decoder's tokens
     * over an encoder's K/V (cross-attention: Whisper, T5), or an encoder's own tokens. The queries need not be tokens of
     * the context, so {@code qLens[i]} may exceed its length; no window, no {@link TreeMask}, and no ALiBi (its distances
     * are from the query's position, which the batch does not have).
     */
    public static PrefillBatch nonCausal(DecodeBatch kv, int[] qLens) {
        if (kv == null || qLens == null) {
            throw new IllegalArgumentException("kv=" + kv + " qLens=" + (qLens == null ? "null" : qLens.length) + ": both are needed");
        }
        if (kv.windowed()) {
            throw new IllegalArgumentException("kv window=" + kv.window() + ": a non-causal batch sees whole contexts");
        }
        if (kv.selected()) {
            throw new IllegalArgumentException("kv of selected blocks (selectBlocks): prefill reads whole contexts; select"
                    + " blocks for decode steps");
        }
        if (qLens.length != kv.numSeqs()) {
            throw new IllegalArgumentException("qLens.length=" + qLens.length + " must be numSeqs=" + kv.numSeqs());
        }
        int[] indptr = new int[qLens.length + 1];
        for (int i = 0; i < qLens.length; i++) {
            if (qLens[i] < 1) {
                throw new IllegalArgumentException("qLen[" + i + "]=" + qLens[i] + " must be >= 1");
            }
            if (kv.contextLen(i) < 1) {
                throw new IllegalArgumentException("contextLen[" + i + "]=0: a non-causal query needs a context to see");
            }
            long next = (long) indptr[i] + qLens[i];
            if (next > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("qLen[" + i + "]=" + qLens[i] + " makes the total query count overflow an int");
            }
            indptr[i + 1] = (int) next;
        }
        return new PrefillBatch(kv, indptr, NO_WINDOW, null, false);
    }

    /** False for a {@link #nonCausal} batch. */
    public boolean causal() {
        return causal;
    }

    /**
     * This batch with a {@link TreeMask} per sequence ({@code masks[i]} null: sequence i stays causal): a mask's size must
     * be its sequence's qLen. {@code masks} null or all null: the plain batch.
     */
    public PrefillBatch withMasks(TreeMask... masks) {
        if (!causal && masks != null) {
            throw new IllegalArgumentException("masks on a non-causal batch: its queries see whole contexts already");
        }
        if (masks == null) {
            return new PrefillBatch(kv, qIndptr, window, null, causal);
        }
        if (masks.length != numSeqs()) {
            throw new IllegalArgumentException("masks.length=" + masks.length + " must be numSeqs=" + numSeqs());
        }
        boolean any = false;
        for (int i = 0; i < masks.length; i++) {
            if (masks[i] != null && masks[i].size() != qLen(i)) {
                throw new IllegalArgumentException("masks[" + i + "] covers " + masks[i].size() + " tokens, but qLen[" + i + "]="
                        + qLen(i));
            }
            any |= masks[i] != null;
        }
        return new PrefillBatch(kv, qIndptr, window, any ? masks.clone() : null, causal);
    }

    /** True when some sequence has a {@link TreeMask}. */
    public boolean hasMasks() {
        return masks != null;
    }

    /** Sequence {@code i}'s mask, or null (causal). */
    public TreeMask mask(int i) {
        return masks == null ? null : masks[i];
    }

    /** {@code [numSeqs]} masks (null entries causal), a copy; null when the batch has none. */
    public TreeMask[] masks() {
        return masks == null ? null : masks.clone();
    }

    /**
     * True when query {@code j} of sequence {@code i} sees position {@code pos}: inside its window, not after its last
     * visible position ({@link #lastVisible}), and, among the new tokens, where the sequence's mask lets it.
     */
    public boolean sees(int i, int j, int pos) {
        if (pos > lastVisible(i, j) || pos < firstVisible(i, j)) {
            return false;
        }
        int k = pos - (contextLen(i) - qLen(i));
        TreeMask m = mask(i);
        // k's tree position (contextLen - qLen + depth(k)) in the window (or chunk) of j's
        return k < 0 || m == null || m.sees(j, k) && contextLen(i) - qLen(i) + m.depth(k) >= firstVisible(i, j);
    }

    /**
     * This prefill as a decode batch of its query rows: row {@code r} (the packed query row {@code r}) is its sequence cut
     * after the last position the query sees ({@link DecodeBatch#perQueryRows}), with the batch's window, so a decode of
     * it with the packed queries gives this prefill's output and log-sum-exps row for row (each query's visible positions
     * are a prefix of its sequence within the window; the TornadoVM backend prefills a latent cache this way). Refused for
     * token-tree masks, whose rows may skip positions of their prefix.
     */
    public DecodeBatch decodeRows() {
        if (hasMasks()) {
            throw new IllegalArgumentException("token-tree masks: a masked row may skip positions of its prefix, so the batch has"
                    + " no decode form; masked batches run on the JVM backend (backend=jvm)");
        }
        int n = totalQueries();
        int[] rowOf = new int[n];
        int[] lens = new int[n];
        for (int i = 0; i < numSeqs(); i++) {
            for (int j = 0; j < qLen(i); j++) {
                rowOf[qStart(i) + j] = i;
                lens[qStart(i) + j] = lastVisible(i, j) + 1;
            }
        }
        return kv.perQueryRows(rowOf, lens).window(window);
    }

    /** Checks the batch against a cache; backends call it before every launch. */
    public void requireFits(KvCacheConfig config) {
        int[] firstRead = new int[numSeqs()];   // a row's first query sees the furthest back
        for (int i = 0; i < firstRead.length; i++) {
            firstRead[i] = firstVisible(i, 0);
        }
        kv.requireFits(config, firstRead);
    }

    /** Block tables and context lengths (which include the new tokens). */
    public DecodeBatch kv() {
        return kv;
    }

    public int numSeqs() {
        return kv.numSeqs();
    }

    /** Query rows in the packed q/out. */
    public int totalQueries() {
        return qIndptr[qIndptr.length - 1];
    }

    /** First packed query row of sequence {@code i}. */
    public int qStart(int i) {
        return qIndptr[i];
    }

    public int qLen(int i) {
        return qIndptr[i + 1] - qIndptr[i];
    }

    /** The longest query run in the batch. */
    public int maxQLen() {
        int m = 0;
        for (int i = 0; i < numSeqs(); i++) {
            m = Math.max(m, qLen(i));
        }
        return m;
    }

    public int contextLen(int i) {
        return kv.contextLen(i);
    }

    /** Sliding window in tokens, or {@link #NO_WINDOW}. */
    public int window() {
        return window;
    }

    /** {@code [numSeqs + 1]}, a copy. */
    public int[] qIndptr() {
        return qIndptr.clone();
    }

    /**
     * Position of query {@code j} of sequence {@code i}: {@code contextLen - qLen + j}, or in a {@link #nonCausal} batch the
     * context's last position (it sees all of it).
     */
    public int position(int i, int j) {
        return causal ? contextLen(i) - qLen(i) + j : contextLen(i) - 1;
    }

    /**
     * The position of every query row, in the packed rows' order ({@code [totalQueries]}): a row's {@link #treePosition},
     * so a token tree's drafts sit at {@code contextLen - qLen + depth}, as speculative decoding turns them. What
     * {@code RotaryEmbedding.apply} takes for the new tokens' queries and keys. Refused for a {@link #nonCausal} batch,
     * whose queries (an encoder's or a decoder's across) have no place in its context.
     */
    public int[] queryPositions() {
        if (!causal) {
            throw new IllegalArgumentException("causal=false: a non-causal batch's queries have no positions in its context");
        }
        int[] positions = new int[totalQueries()];
        for (int i = 0; i < numSeqs(); i++) {
            for (int j = 0; j < qLen(i); j++) {
                positions[qStart(i) + j] = treePosition(i, j);
            }
        }
        return positions;
    }

    /**
     * Where query {@code j} of sequence {@code i} sits for its sliding window: its position, or with a mask its tree
     * position {@code contextLen - qLen + depth(j)} (at most its position).
     */
    public int treePosition(int i, int j) {
        TreeMask m = mask(i);
        return m == null ? position(i, j) : contextLen(i) - qLen(i) + m.depth(j);
    }

    /**
     * The last position query {@code j} of sequence {@code i} may see: its {@link #position}, or with a mask the new token
     * its row reaches ({@link TreeMask#reach}: itself in a tree, its span's last token in a bidirectional span).
     */
    public int lastVisible(int i, int j) {
        TreeMask m = mask(i);
        return m == null ? position(i, j) : contextLen(i) - qLen(i) + m.reach(j);
    }

    /** First position query {@code j} of sequence {@code i} attends to (its window counted from {@link #treePosition}). */
    public int firstVisible(int i, int j) {
        return visibleFrom(treePosition(i, j), window);
    }

    /**
     * The first position a query at {@code position} sees: {@code max(0, p - window + 1)} without overflow, or its chunk's
     * start for a chunked window ({@link AttentionWindow#visibleFrom}).
     */
    public static int visibleFrom(int position, int window) {
        return AttentionWindow.visibleFrom(position, window);
    }

    /**
     * Score-carrying (query, key) pairs of the batch: the FLOPs of a prefill are {@code 4 * this *
     * numQHeads * headDim} (QK^T and PV, a multiply-add each).
     */
    public long attendedPairs() {
        long s = 0;
        for (int i = 0; i < numSeqs(); i++) {
            int newStart = contextLen(i) - qLen(i);
            for (int j = 0; j < qLen(i); j++) {
                if (mask(i) == null) {
                    s += position(i, j) - firstVisible(i, j) + 1;
                    continue;
                }
                s += Math.max(0, newStart - firstVisible(i, j));              // the cached positions in its window
                for (int k = 0; k < qLen(i); k++) {
                    s += sees(i, j, newStart + k) ? 1 : 0;
                }
            }
        }
        return s;
    }
}
