package dev.pagedattn.attention;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Attention states: an attention output row with its log-sum-exp ({@code lse}, natural log; what {@code decode} and
 * {@code prefill} write when given an {@code lse} array), and their merge (FlashInfer's {@code merge_state}). Attention
 * over a context cut into disjoint parts A and B equals the merge of the attention over A and the attention over B:
 *
 * <pre>
 *  lse = ln(e^lseA + e^lseB) = m + ln(e^(lseA - m) + e^(lseB - m)),  m = max(lseA, lseB)
 *  out = (e^(lseA - lse) outA + e^(lseB - lse) outB)
 * </pre>
 *
 * so a context split across caches, devices or processes, or a prefix shared by many sequences and attended once, can
 * be put back together. A part that saw nothing has {@code lse = -inf} and weight 0 (its output row is ignored, NaN or
 * not). A layer with attention sinks counts its sink in each part's {@code lse}: compute the parts of such a layer with
 * the sink in one part only.
 */
public final class AttentionStates {
    private AttentionStates() {
    }

    /**
     * Merges {@code rows} states of {@code headDim} each: {@code (outA, lseA)} and {@code (outB, lseB)}
     * ({@code [rows][headDim]} and {@code [rows]}, e.g. rows = numSeqs * numQHeads) into {@code (out, lse)}, which may be
     * {@code outA}/{@code lseA} themselves. Sizes are checked first and named; NaN in an lse is refused.
     */
    public static void merge(FloatArray outA, FloatArray lseA, FloatArray outB, FloatArray lseB, int rows, int headDim,
                             FloatArray out, FloatArray lse) {
        if (rows < 1 || headDim < 1) {
            throw new IllegalArgumentException("rows=" + rows + " headDim=" + headDim + " must be >= 1");
        }
        long n = (long) rows * headDim;
        requireSize("outA", outA, n);
        requireSize("outB", outB, n);
        requireSize("out", out, n);
        requireSize("lseA", lseA, rows);
        requireSize("lseB", lseB, rows);
        requireSize("lse", lse, rows);
        for (int r = 0; r < rows; r++) {
            requireState(lseA.get(r), lseB.get(r), r);
        }
        for (int r = 0; r < rows; r++) {
            mergeState(outA, lseA, r, outB, lseB, r, headDim, out, lse, r);
        }
    }

    /**
     * Merges, in place, {@code rowsOf.length} rows of {@code heads} states each from {@code (outA, lseA)}
     * ({@code [rowsOf.length][heads][headDim]}, {@code [rowsOf.length][heads]}) into rows {@code rowsOf[k]} of
     * {@code (out, lse)} ({@code [rows][heads][headDim]}, {@code [rows][heads]}): what a part computed for a subset of a
     * batch's rows (a cascade's shared prefix for the sequences that share it) merged into the batch's states, without
     * gathering them. Sizes and row indices are checked first and named; NaN in an lse is refused.
     */
    public static void mergeInto(FloatArray outA, FloatArray lseA, int[] rowsOf, int heads, int headDim, FloatArray out,
                                 FloatArray lse) {
        if (rowsOf == null || heads < 1 || headDim < 1) {
            throw new IllegalArgumentException("rowsOf=" + (rowsOf == null ? "null" : rowsOf.length) + " heads=" + heads
                    + " headDim=" + headDim + ": need rows, heads >= 1, headDim >= 1");
        }
        long rowsA = rowsOf.length;
        requireSize("outA", outA, rowsA * heads * headDim);
        requireSize("lseA", lseA, rowsA * heads);
        long rows = lse == null ? 0 : lse.getSize() / heads;
        requireSize("lse", lse, rows * heads);
        requireSize("out", out, rows * heads * headDim);
        for (int k = 0; k < rowsOf.length; k++) {
            if (rowsOf[k] < 0 || rowsOf[k] >= rows) {
                throw new IllegalArgumentException("rowsOf[" + k + "]=" + rowsOf[k] + " is outside [0, " + rows + ")");
            }
            for (int h = 0; h < heads; h++) {
                requireState(lseA.get(k * heads + h), lse.get(rowsOf[k] * heads + h), k * heads + h);
            }
        }
        for (int k = 0; k < rowsOf.length; k++) {
            for (int h = 0; h < heads; h++) {
                int to = rowsOf[k] * heads + h;
                mergeState(outA, lseA, k * heads + h, out, lse, to, headDim, out, lse, to);
            }
        }
    }

    private static void requireState(float a, float b, int r) {
        if (Float.isNaN(a) || Float.isNaN(b)) {
            throw new IllegalArgumentException("lse" + (Float.isNaN(a) ? "A" : "B") + "[" + r + "]=NaN: not a state");
        }
    }

    /** State {@code a} of (outA, lseA) merged with state {@code b} of (outB, lseB) into state {@code to} of (out, lse). */
    private static void mergeState(FloatArray outA, FloatArray lseA, int a, FloatArray outB, FloatArray lseB, int b, int headDim,
                                   FloatArray out, FloatArray lse, int to) {
        double la = lseA.get(a);
        double lb = lseB.get(b);
        double m = Math.max(la, lb);
        if (m == Double.NEGATIVE_INFINITY) { // neither part saw anything
            for (int i = 0; i < headDim; i++) {
                out.set(to * headDim + i, 0f);
            }
            lse.set(to, Float.NEGATIVE_INFINITY);
            return;
        }
        double wa = Math.exp(la - m);      // 0 for an empty part
        double wb = Math.exp(lb - m);
        double total = wa + wb;
        wa /= total;
        wb /= total;
        for (int i = 0; i < headDim; i++) {
            double x = wa == 0 ? 0 : wa * outA.get(a * headDim + i);
            double y = wb == 0 ? 0 : wb * outB.get(b * headDim + i);
            out.set(to * headDim + i, (float) (x + y));
        }
        lse.set(to, (float) (m + Math.log(total)));
    }

    private static void requireSize(String name, FloatArray a, long expected) {
        if (a == null || a.getSize() != expected) {
            throw new IllegalArgumentException(name + ".size=" + (a == null ? "null" : a.getSize()) + " expected " + expected);
        }
    }
}
