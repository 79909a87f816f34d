package dev.pagedattn.attention;

import java.util.Arrays;

/**
 * Which of a sequence's new tokens each of its new tokens may attend to in a prefill step: the custom mask of
 * speculative decoding with a token tree (EAGLE, Medusa; FlashInfer's {@code custom_mask}, vLLM's tree attention). The
 * draft tokens of a tree are appended to the cache in an order where every token comes after its parent; query token
 * {@code j} then sees every cached position before the new tokens (as a causal query does) and, of the new tokens, only
 * those {@code k <= j} whose bit is set here: its ancestors and itself. Without a mask a new token sees every earlier
 * new token (causal).
 *
 * <p>A tree's mask is lower-triangular with its diagonal set (a token sees itself and never a later token), checked on
 * construction. Positions follow the tree, not the order of the slots: a sliding window measures a draft's reach from
 * its {@link #depth} (its path's length), as if the path had been decoded alone, both into the cached context and among
 * the drafts. {@link #bidirectional} masks are causal except inside spans whose tokens all see each other (Gemma 3's
 * image tokens, a prefix-LM's prefix): their rows may see later tokens, and their positions are the slots' own. Rows are
 * stored as FlashInfer packs them, 32 bits per int, bit {@code k % 32} of word {@code k / 32} for new token {@code k},
 * which is also what the TornadoVM kernels read.
 */
public final class TreeMask {
    private final int size;
    private final int words;     // ints per row
    private final int[] bits;    // [size][words]
    private final int[] depths;  // [size] each row's depth (a tree's: its visible new tokens besides itself)

    private TreeMask(int size, int[] bits) {
        this(size, bits, null);
    }

    /** {@code depths} null: a tree's, each row's visible new tokens besides itself. */
    private TreeMask(int size, int[] bits, int[] depths) {
        this.size = size;
        this.words = wordsPerRow(size);
        this.bits = bits;
        this.depths = depths != null ? depths : new int[size];
        for (int j = 0; depths == null && j < size; j++) {
            this.depths[j] = visibleCount(j) - 1;
        }
    }

    /** Ints per row of a mask over {@code size} tokens. */
    public static int wordsPerRow(int size) {
        return (size + 31) / 32;
    }

    /**
     * The mask of a token tree: {@code parents[j]} is the new token that token {@code j} follows (an index below
     * {@code j}), or -1 for a token whose parent is the cached context (the tree's root, or each of several roots).
     * Token {@code j} sees itself and its ancestors.
     */
    public static TreeMask fromParents(int... parents) {
        if (parents == null || parents.length == 0) {
            throw new IllegalArgumentException("parents=" + (parents == null ? "null" : "[]") + ": a tree has at least one token");
        }
        int n = parents.length;
        int w = wordsPerRow(n);
        int[] bits = new int[n * w];
        for (int j = 0; j < n; j++) {
            int parent = parents[j];
            if (parent < -1 || parent >= j) {
                throw new IllegalArgumentException("parents[" + j + "]=" + parent + " must be -1 or an earlier token (0.." + (j - 1)
                        + "): a tree's tokens come after their parents");
            }
            if (parent >= 0) {
                System.arraycopy(bits, parent * w, bits, j * w, w);
            }
            bits[j * w + j / 32] |= 1 << (j % 32);
        }
        return new TreeMask(n, bits);
    }

    /**
     * A mask from {@code visible[j][k]} (token {@code j} sees new token {@code k}); square, with {@code visible[j][j]} set
     * and nothing above the diagonal.
     */
    public static TreeMask of(boolean[][] visible) {
        return new TreeMask(visible == null ? 0 : visible.length, pack(visible, false));
    }

    /**
     * Causal attention among {@code size} new tokens, except that the tokens of each span see each other both ways: Gemma 3's
     * image tokens (HF's {@code token_type_ids} mask), PaliGemma's prefix-LM prefix. {@code spans} are pairs {@code start,
     * end} of new-token indices ({@code [start, end)}), ascending and disjoint; a token in a span sees every earlier token
     * and its span's later ones, a token outside sees every earlier token. Each token sits at its own slot's position
     * ({@link #depth} {@code j}), so a sliding window counts back from it as in a causal step (a span's later tokens are
     * never behind a row).
     */
    public static TreeMask bidirectional(int size, int... spans) {
        if (size < 1) {
            throw new IllegalArgumentException("size=" + size + " must be >= 1");
        }
        if (spans == null || spans.length % 2 != 0) {
            throw new IllegalArgumentException("spans=" + (spans == null ? "null" : java.util.Arrays.toString(spans))
                    + ": pairs of start, end");
        }
        boolean[][] visible = new boolean[size][size];
        for (int j = 0; j < size; j++) {
            java.util.Arrays.fill(visible[j], 0, j + 1, true);
        }
        for (int i = 0, previousEnd = 0; i < spans.length; i += 2) {
            int start = spans[i];
            int end = spans[i + 1];
            if (start < previousEnd || end <= start || end > size) {
                throw new IllegalArgumentException("span [" + start + ", " + end + ") must be non-empty, inside [0, " + size
                        + ") and after the previous one (ending at " + previousEnd + ")");
            }
            for (int j = start; j < end; j++) {
                java.util.Arrays.fill(visible[j], j, end, true);
            }
            previousEnd = end;
        }
        return custom(visible);
    }

    /**
     * Any mask among the new tokens, FlashInfer's {@code custom_mask} as it is: {@code visible[j][k]} (token {@code j} sees
     * new token {@code k}, later ones included), square, with {@code visible[j][j]} set. Each token sits at its own slot's
     * position ({@link #depth} {@code j}): a sliding window counts back from there, as in a causal step. (For a token
     * tree, whose rows sit at their paths' depths, take {@link #fromParents} or {@link #of}.)
     */
    public static TreeMask custom(boolean[][] visible) {
        int[] bits = pack(visible, true);
        int[] depths = new int[visible.length];
        for (int j = 0; j < depths.length; j++) {
            depths[j] = j;
        }
        return new TreeMask(visible.length, bits, depths);
    }

    /** {@code visible} packed into rows ({@link #word}), checked: square, diagonal set, nothing later unless {@code later}. */
    private static int[] pack(boolean[][] visible, boolean later) {
        if (visible == null || visible.length == 0) {
            throw new IllegalArgumentException("visible=" + (visible == null ? "null" : "[]") + ": a mask has at least one row");
        }
        int n = visible.length;
        int w = wordsPerRow(n);
        int[] bits = new int[n * w];
        for (int j = 0; j < n; j++) {
            if (visible[j] == null || visible[j].length != n) {
                throw new IllegalArgumentException("visible[" + j + "].length=" + (visible[j] == null ? "null" : visible[j].length)
                        + " must be " + n + " (a square mask)");
            }
            if (!visible[j][j]) {
                throw new IllegalArgumentException("visible[" + j + "][" + j + "]=false: every token sees itself");
            }
            for (int k = 0; k < n; k++) {
                if (visible[j][k]) {
                    if (k > j && !later) {
                        throw new IllegalArgumentException("visible[" + j + "][" + k + "]=true: a token never sees a later one"
                                + " (TreeMask.custom takes such masks)");
                    }
                    bits[j * w + k / 32] |= 1 << (k % 32);
                }
            }
        }
        return bits;
    }

    /** Plain causal attention among {@code size} new tokens, as a mask. */
    public static TreeMask causal(int size) {
        if (size < 1) {
            throw new IllegalArgumentException("size=" + size + " must be >= 1");
        }
        int[] parents = new int[size];
        for (int j = 0; j < size; j++) {
            parents[j] = j - 1;
        }
        return fromParents(parents);
    }

    /** New tokens the mask covers (the sequence's qLen). */
    public int size() {
        return size;
    }

    /**
     * Row {@code j}'s depth below the cached context: in a tree, the new tokens it sees besides itself; in a
     * {@link #bidirectional} mask, {@code j}. A row's position for the sliding window is {@code contextLen - qLen +
     * depth(j)}, where it would sit had its path been decoded token by token (for a chain, {@code j} itself).
     */
    public int depth(int j) {
        return depths[j];
    }

    /** Ints per row ({@link #wordsPerRow}). */
    public int words() {
        return words;
    }

    /** The last new token row {@code j} sees: {@code j} in a tree, its span's last token in a {@link #bidirectional} span. */
    public int reach(int j) {
        int w = words - 1;
        while (bits[j * words + w] == 0) {
            w--;                                   // the diagonal is set: some word is not 0
        }
        return 32 * w + 31 - Integer.numberOfLeadingZeros(bits[j * words + w]);
    }

    /** True when new token {@code j} sees new token {@code k} (a later one only in a {@link #bidirectional} span). */
    public boolean sees(int j, int k) {
        return (bits[j * words + k / 32] >>> (k % 32) & 1) != 0;
    }

    /** New tokens that token {@code j} sees (itself included). */
    public int visibleCount(int j) {
        int c = 0;
        for (int w = 0; w < words; w++) {
            c += Integer.bitCount(bits[j * words + w]);
        }
        return c;
    }

    /** Int {@code w} of row {@code j}: bit {@code k % 32} for new token {@code k = 32 w + bit}. */
    public int word(int j, int w) {
        return bits[j * words + w];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TreeMask m && m.size == size && Arrays.equals(m.bits, bits) && Arrays.equals(m.depths, depths);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * size + Arrays.hashCode(bits)) + Arrays.hashCode(depths);
    }

    @Override
    public String toString() {
        return "TreeMask[" + size + " tokens]";
    }
}
