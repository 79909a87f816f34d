package dev.pagedattn.cache;

/**
 * What a query sees of its sequence, as one int that travels wherever a window does ({@code DecodeBatch.window},
 * {@code PrefillBatch.of}, {@code HybridKvCache}'s per-layer windows, the kernels' {@code params}):
 *
 * <pre>
 *  NONE (Integer.MAX_VALUE)   every position up to the query's own                (full attention)
 *  W >= 1 (W itself)          the last W positions: max(0, p - W + 1) .. p         (sliding window: Mistral, Gemma, gpt-oss)
 *  -C <= -1 (chunked(C))      the query's own chunk of C: p - p % C .. p           (chunked local attention: Llama 4)
 * </pre>
 *
 * <p>Chunked local attention (vLLM's {@code attention_chunk_size}, Llama 4's local layers with chunks of 8192) cuts a
 * sequence into chunks of {@code C} positions, and a query attends causally within its own chunk only: the first query
 * of a chunk sees itself alone, whatever came before. Both kinds see one contiguous run of positions ending at the
 * query, so every kernel that walks a window walks a chunk the same way: only where the run starts differs
 * ({@link #visibleFrom}). A chunked layer's blocks before the current chunk are never read again, so
 * {@code KvCache.releaseOutsideWindow} gives them back as it does a sliding window's.
 */
public final class AttentionWindow {
    /** No window: the query sees its whole causal context ({@code DecodeBatch.NO_WINDOW}). */
    public static final int NONE = Integer.MAX_VALUE;

    private AttentionWindow() {
    }

    /** Chunked local attention over chunks of {@code chunkSize >= 1} positions (the value is {@code -chunkSize}). */
    public static int chunked(int chunkSize) {
        if (chunkSize < 1 || chunkSize == Integer.MAX_VALUE) {
            throw new IllegalArgumentException("chunkSize=" + chunkSize + " must be in [1, " + (Integer.MAX_VALUE - 1) + "]");
        }
        return -chunkSize;
    }

    /** Whether {@code window} is chunked local attention ({@link #chunked}). */
    public static boolean isChunked(int window) {
        return window < 0;
    }

    /** The chunk size of a chunked {@code window}. */
    public static int chunkSize(int window) {
        if (!isChunked(window)) {
            throw new IllegalArgumentException("window=" + window + " is not chunked (AttentionWindow.chunked gives a negative value)");
        }
        return -window;
    }

    /**
     * The positions a window value spans at most: {@code W} for a sliding window, {@code C} for chunks (a query sees at
     * most its chunk), {@link #NONE} without a window. What block budgets size a window's run by.
     */
    public static int span(int window) {
        return isChunked(window) ? -window : window;
    }

    /**
     * Names a value that is neither {@link #NONE}, a sliding window {@code >= 1} nor chunks ({@code <= -1}):
     * {@code what=value must be ...}. Returns {@code window}.
     */
    public static int require(String what, int window) {
        if (window == 0 || window == Integer.MIN_VALUE) {
            throw new IllegalArgumentException(what + "=" + window + " must be >= 1 (a sliding window), AttentionWindow.chunked(C)"
                    + " (a negative value: chunks of C), or NO_WINDOW");
        }
        return window;
    }

    /**
     * The first position a query at {@code position} sees through {@code window}: {@code max(0, position - W + 1)} for
     * a sliding window (no overflow), {@code position - position % C} for chunks, 0 without a window.
     */
    public static int visibleFrom(int position, int window) {
        if (window < 0) {
            return position < 0 ? 0 : position - position % -window;
        }
        return Math.max(0, position - window + 1);
    }

    /** {@code "full"}, {@code "window W"} or {@code "chunks of C"}: how errors and reports name a window value. */
    public static String describe(int window) {
        if (window == NONE) {
            return "full";
        }
        return isChunked(window) ? "chunks of " + -window : "window " + window;
    }
}
