package dev.pagedattn.attention;

import java.util.Arrays;

/**
 * ALiBi (attention with linear biases; Press et al., as BLOOM, MPT, Falcon-RW, Baichuan-13B and JAIS use it; vLLM's
 * {@code alibi_slopes}, FlashInfer's ALiBi position encoding): query head {@code h} at position {@code i} adds
 * {@code slope_h * (j - i)} to its score of the key at position {@code j <= i}, so keys further back weigh less, and the
 * model needs no position embedding. The bias is added after the softmax scale and after a soft cap (FlashInfer's
 * order), and the same slopes hold in every layer. A sink is not biased.
 *
 * <pre>
 *  slopes [numQHeads]  fp32, finite
 * </pre>
 */
public final class AlibiSlopes {
    /** No ALiBi. */
    public static final AlibiSlopes NONE = new AlibiSlopes(new float[0]);

    private final float[] slopes;   // [numQHeads]; a copy the caller cannot change

    private AlibiSlopes(float[] slopes) {
        this.slopes = slopes;
    }

    /** Slopes of every query head, copied; names the first non-finite value. */
    public static AlibiSlopes of(float[] slopes) {
        if (slopes == null || slopes.length == 0) {
            throw new IllegalArgumentException("slopes.length=" + (slopes == null ? "null" : 0) + " must be >= 1 (use AlibiSlopes.NONE)");
        }
        float[] copy = slopes.clone();
        for (int h = 0; h < copy.length; h++) {
            if (!Float.isFinite(copy[h])) {
                throw new IllegalArgumentException("slopes[" + h + "]=" + copy[h] + " must be finite");
            }
        }
        return new AlibiSlopes(copy);
    }

    /**
     * The slopes of the ALiBi paper for {@code numQHeads} heads, as BLOOM and MPT compute them: for {@code n} a power of
     * two, head {@code h} gets {@code 2^(-8 (h + 1) / n)}; otherwise the {@code m} heads of the largest power of two
     * {@code m < n} get those of {@code m} and the rest take every second slope of {@code 2m}.
     */
    public static AlibiSlopes standard(int numQHeads) {
        if (numQHeads < 1) {
            throw new IllegalArgumentException("numQHeads=" + numQHeads + " must be >= 1");
        }
        int m = Integer.highestOneBit(numQHeads);
        float[] s = new float[numQHeads];
        for (int h = 0; h < m; h++) {
            s[h] = (float) Math.pow(2, -8.0 * (h + 1) / m);
        }
        for (int h = m; h < numQHeads; h++) {
            s[h] = (float) Math.pow(2, -8.0 * (2 * (h - m) + 1) / (2 * m));
        }
        return new AlibiSlopes(s);
    }

    /** Whether there are slopes ({@link #NONE} has none). */
    public boolean any() {
        return slopes.length > 0;
    }

    /** Query heads these slopes are for (0 for {@link #NONE}). */
    public int numHeads() {
        return slopes.length;
    }

    /** The slope of query head {@code head}. */
    public float slope(int head) {
        return slopes[head];
    }

    /** A copy of the slopes ({@code [numQHeads]}). */
    public float[] toArray() {
        return slopes.clone();
    }

    /** Checks the slopes against a spec's {@code numQHeads}; names the bad size. {@link #NONE} fits every spec. */
    void requireFits(int numQHeads) {
        if (any() && slopes.length != numQHeads) {
            throw new IllegalArgumentException("alibi slopes.length=" + slopes.length + " does not match numQHeads=" + numQHeads);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AlibiSlopes other && Arrays.equals(slopes, other.slopes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(slopes);
    }

    @Override
    public String toString() {
        return any() ? "alibi(" + slopes.length + " heads)" : "no alibi";
    }
}
