package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The JVM backends' soft-capping function, {@link JvmChunkKernel#softCapInPlace} and its scalar twin
 * {@link JvmChunkKernel#softCap}: against fp64 {@code cap * Math.tanh(s / cap)}, the same bits on every lane and in the
 * tail, masked scores left masked.
 */
class SoftCapTest {
    private static final int LANES = JvmLaneTree.LANES;
    /** Relative error of a capped score against fp64 tanh; the worst measured over 1.3e7 scores was 1.8e-7. */
    private static final double REL = 2.5e-7;

    /**
     * Over caps in [1, 100] and scores from 1e-30 to 1e30 of either sign (around the polynomial's edge at 0.625 cap and
     * the exp's clamp too), every capped score within {@link #REL} of fp64, and from |s| = cap on (capped scores near the
     * cap, the ones a softmax weighs most) within 2 ulp (measured: 1.44); 0 exactly 0; a score of 3 cap gives 0.995
     * cap, not itself.
     */
    @Test
    void capsWithinAFewUlpOfFp64Tanh() {
        long seed = TestSeeds.fresh("capsWithinAFewUlpOfFp64Tanh");
        SplittableRandom random = new SplittableRandom(seed);
        float[] a = new float[4 * LANES + 3];
        float[] s = new float[a.length];
        double worst = 0;
        for (int round = 0; round < 4000; round++) {
            float cap = round % 4 == 0 ? new float[] {1f, 50f, 100f, 30f}[round / 4 % 4] : (float) (1 + 99 * random.nextDouble());
            for (int i = 0; i < s.length; i++) {
                double x = switch (random.nextInt(4)) {
                    case 0 -> (random.nextDouble() * 2 - 1) * 3 * cap;                    // around the cap
                    case 1 -> (0.5 + 0.25 * random.nextDouble()) * cap;                  // the branches' edge
                    case 2 -> Math.pow(10, random.nextDouble() * 60 - 30);               // 1e-30 .. 1e30
                    default -> (40 + 10 * random.nextDouble()) * cap;                    // the exp's clamp (43.65 cap)
                };
                s[i] = (float) (random.nextBoolean() ? x : -x);
            }
            s[0] = round == 0 ? 0f : s[0];
            System.arraycopy(s, 0, a, 0, s.length);
            JvmChunkKernel.softCapInPlace(a, 0, a.length, cap);
            for (int i = 0; i < s.length; i++) {
                double want = cap * Math.tanh((double) s[i] / cap);
                double rel = want == 0 ? Math.abs(a[i]) : Math.abs(a[i] - want) / Math.abs(want);
                worst = Math.max(worst, rel);
                double ulps = Math.abs(a[i] - want) / Math.ulp((float) want);
                if (!(rel <= REL) || Math.abs(s[i]) >= cap && !(ulps <= 2)) {
                    fail("softCap(" + s[i] + ", cap=" + cap + ") = " + a[i] + ", fp64 tanh gives " + want + " (relative " + rel
                            + ", " + ulps + " ulp) seed=" + seed);
                }
            }
        }
        assertTrue(worst > 0, "no rounding at all: the fp64 reference was not what was compared");
        for (float cap : new float[] {1f, 50f}) {
            float c = JvmChunkKernel.softCap(3 * cap, cap);
            assertEquals(cap * Math.tanh(3), c, 2e-7 * cap, "softCap(3 cap, cap=" + cap + ")");
            assertEquals(-c, JvmChunkKernel.softCap(-3 * cap, cap), "odd");
        }
    }

    /** -inf (a masked score) stays -inf; +inf and huge scores give exactly the cap; NaN stays NaN; +-0 give +0. */
    @Test
    void masksStayMaskedAndHugeScoresGiveTheCap() {
        float cap = 50f;
        float[] s = {Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, 1e30f, -1e30f, Float.MAX_VALUE, Float.NaN, 0f, -0f,
            -3e3f};
        float[] want = {Float.NEGATIVE_INFINITY, cap, cap, -cap, cap, Float.NaN, 0f, 0f, -cap};
        float[] a = new float[2 * LANES + s.length];
        for (int from : new int[] {0, 1, LANES, 2 * LANES}) {
            Arrays.fill(a, Float.NEGATIVE_INFINITY);
            System.arraycopy(s, 0, a, from, s.length);
            JvmChunkKernel.softCapInPlace(a, from, s.length, cap); // from 0: vector lanes; from 2 LANES: the tail too
            for (int i = 0; i < s.length; i++) {
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(a[from + i]),
                        "softCap(" + s[i] + ") at " + (from + i) + " = " + a[from + i] + ", want " + want[i]);
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(JvmChunkKernel.softCap(s[i], cap)),
                        "scalar softCap(" + s[i] + ")");
            }
        }
    }

    /**
     * Every element of {@code [from, from + n)} is bit for bit the scalar {@link JvmChunkKernel#softCap}, whether it
     * lands in a vector or in the tail (decode caps whole padded rows, prefill a row's slots), and nothing outside it
     * changes.
     */
    @Test
    void everyLaneAndTheTailGiveTheScalarBits() {
        long seed = TestSeeds.fresh("everyLaneAndTheTailGiveTheScalarBits");
        SplittableRandom random = new SplittableRandom(seed);
        for (int round = 0; round < 2000; round++) {
            float cap = (float) (0.5 + 80 * random.nextDouble());
            int from = random.nextInt(2 * LANES);
            int n = random.nextInt(3 * LANES + 2);
            float[] s = new float[from + n + LANES];
            for (int i = 0; i < s.length; i++) {
                s[i] = (float) ((random.nextDouble() * 2 - 1) * cap * Math.pow(2, random.nextInt(8) - 4));
            }
            float[] a = s.clone();
            JvmChunkKernel.softCapInPlace(a, from, n, cap);
            for (int i = 0; i < s.length; i++) {
                float want = i >= from && i < from + n ? JvmChunkKernel.softCap(s[i], cap) : s[i];
                if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(a[i])) {
                    fail("element " + i + " of [" + from + ", " + (from + n) + ") cap=" + cap + ": " + a[i] + ", scalar " + want
                            + " seed=" + seed);
                }
            }
        }
    }
}
