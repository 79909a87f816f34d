package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The kernel's vector exp and the fixed-order lane sums of {@link JvmLaneTree}. */
class JvmChunkKernelTest {
    private static final int LANES = JvmLaneTree.LANES;

    /**
     * Over [-87.3, 0] (every score minus its max that matters) within 2 ulp of Math.exp, exactly 1
     * at 0, and below -87.3 a value no larger than exp(-87.3) (about 1e-38, invisible next to the
     * max term 1 of every softmax sum).
     */
    @Test
    void expOfNonPositiveScoresIsWithinTwoUlp() {
        long seed = TestSeeds.fresh("expOfNonPositiveScoresIsWithinTwoUlp");
        SplittableRandom random = new SplittableRandom(seed);
        float[] x = new float[LANES];
        float[] e = new float[LANES];
        double worstUlps = 0;
        for (int round = 0; round < 20_000; round++) {
            for (int i = 0; i < LANES; i++) {
                x[i] = round == 0 && i == 0 ? 0f : (float) (-random.nextDouble() * (round % 10 == 0 ? 1 : 87.3));
            }
            System.arraycopy(x, 0, e, 0, LANES);
            JvmChunkKernel.expInPlace(e, 0, LANES, 0f);
            for (int i = 0; i < LANES; i++) {
                float want = (float) Math.exp(x[i]);
                double ulps = Math.abs(e[i] - (double) want) / Math.ulp(want);
                worstUlps = Math.max(worstUlps, ulps);
                assertTrue(ulps <= 2, "exp(" + x[i] + ") = " + e[i] + ", Math.exp gives " + want + " (" + ulps + " ulp) seed=" + seed);
            }
        }
        float[] shifted = new float[LANES];
        java.util.Arrays.fill(shifted, 3.5f);
        JvmChunkKernel.expInPlace(shifted, 0, 1, 3.5f); // one element asked for, a whole vector done
        for (float one : shifted) {
            assertEquals(1f, one, "exp(x - max) at x = max");
        }
        float[] low = {-88f, -100f, -1e6f, Float.NEGATIVE_INFINITY};
        for (float v : low) {
            float[] a = new float[LANES];
            java.util.Arrays.fill(a, v);
            JvmChunkKernel.expInPlace(a, 0, LANES, 0f);
            assertTrue(a[0] >= 0 && a[0] <= 1.3e-38f, "exp(" + v + ") = " + a[0]);
        }
    }

    /**
     * Lane r of the transposed tree is the sum of vector r's lanes, added in the tree's fixed order
     * (level w adds lane j + w to lane j within each vector, w = LANES/2 .. 1: the order a scalar
     * model gives, bit for bit, checked with non-associative values), for vectors at an offset in
     * a larger array; a vector of NaN spoils its own sum only.
     */
    @Test
    void transposedTreeSumsEachVectorInAFixedOrder() {
        long seed = TestSeeds.fresh("transposedTreeSumsEachVectorInAFixedOrder");
        SplittableRandom random = new SplittableRandom(seed);
        for (int round = 0; round < 300; round++) {
            int from = random.nextInt(3) * LANES;
            float[] p = new float[from + LANES * LANES + 5];
            float[][] vectors = new float[LANES][LANES];
            int poisoned = round % 3 == 0 ? random.nextInt(LANES) : -1;
            for (int r = 0; r < LANES; r++) {
                for (int j = 0; j < LANES; j++) {
                    float x = r == poisoned ? Float.NaN : (float) ((random.nextDouble() - 0.5) * Math.pow(2, random.nextInt(40) - 20));
                    vectors[r][j] = x;
                    p[from + r * LANES + j] = x;
                }
            }
            float[] out = new float[LANES + 2];
            java.util.Arrays.fill(out, Float.NaN);
            JvmLaneTree.sumOfEach(p, from, out, 1);
            for (int r = 0; r < LANES; r++) {
                float want = r == poisoned ? Float.NaN : tree(vectors[r], 0, LANES);
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(out[1 + r]),
                        "vector " + r + " round " + round + " seed=" + seed + ": want " + want + ", got " + out[1 + r]);
            }
            assertTrue(Float.isNaN(out[0]) && Float.isNaN(out[LANES + 1]), "written outside [1, LANES]");
        }
    }

    /** Lane i + width/2 is added to lane i, recursively: the sum of lanes [from, from + width). */
    private static float tree(float[] v, int from, int width) {
        if (width == 1) {
            return v[from];
        }
        float[] folded = new float[width / 2];
        for (int i = 0; i < width / 2; i++) {
            folded[i] = v[from + i] + v[from + i + width / 2];
        }
        return tree(folded, 0, width / 2);
    }
}
