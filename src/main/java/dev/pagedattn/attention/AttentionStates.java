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
            float a = lseA.get(r);
            float b = lseB.get(r);
            if (Float.isNaN(a) || Float.isNaN(b)) {
                throw new IllegalArgumentException("lse" + (Float.isNaN(a) ? "A" : "B") + "[" + r + "]=NaN: not a state");
            }
        }
        for (int r = 0; r < rows; r++) {
            double a = lseA.get(r);
            double b = lseB.get(r);
            double m = Math.max(a, b);
            if (m == Double.NEGATIVE_INFINITY) { // neither part saw anything
                for (int i = 0; i < headDim; i++) {
                    out.set(r * headDim + i, 0f);
                }
                lse.set(r, Float.NEGATIVE_INFINITY);
                continue;
            }
            double wa = Math.exp(a - m);      // 0 for an empty part
            double wb = Math.exp(b - m);
            double total = wa + wb;
            wa /= total;
            wb /= total;
            for (int i = 0, at = r * headDim; i < headDim; i++, at++) {
                double x = wa == 0 ? 0 : wa * outA.get(at);
                double y = wb == 0 ? 0 : wb * outB.get(at);
                out.set(at, (float) (x + y));
            }
            lse.set(r, (float) (m + Math.log(total)));
        }
    }

    private static void requireSize(String name, FloatArray a, long expected) {
        if (a == null || a.getSize() != expected) {
            throw new IllegalArgumentException(name + ".size=" + (a == null ? "null" : a.getSize()) + " expected " + expected);
        }
    }
}
