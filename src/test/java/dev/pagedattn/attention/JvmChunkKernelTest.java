package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/** The kernel's vector exp and its fixed-order lane fold. */
class JvmChunkKernelTest {
    private static final int LANES = Fp16Widening.FLOATS.length();

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
            JvmChunkKernel.expNonPositive(FloatVector.fromArray(Fp16Widening.FLOATS, x, 0)).intoArray(e, 0);
            for (int i = 0; i < LANES; i++) {
                float want = (float) Math.exp(x[i]);
                double ulps = Math.abs(e[i] - (double) want) / Math.ulp(want);
                worstUlps = Math.max(worstUlps, ulps);
                assertTrue(ulps <= 2, "exp(" + x[i] + ") = " + e[i] + ", Math.exp gives " + want + " (" + ulps + " ulp) seed=" + seed);
            }
        }
        float[] zero = new float[LANES];
        JvmChunkKernel.expNonPositive(FloatVector.zero(Fp16Widening.FLOATS)).intoArray(zero, 0);
        assertEquals(1f, zero[0], "exp(0)");
        float[] low = {-88f, -100f, -1e6f, Float.NEGATIVE_INFINITY};
        for (float v : low) {
            float got = JvmChunkKernel.expNonPositive(FloatVector.broadcast(Fp16Widening.FLOATS, v)).lane(0);
            assertTrue(got >= 0 && got <= 1.3e-38f, "exp(" + v + ") = " + got);
        }
    }

    /** Lane 0 after the fold is the pairwise tree sum, whatever the values (checked with non-associative ones). */
    @Test
    void lanesFoldAsAFixedTree() {
        long seed = TestSeeds.fresh("lanesFoldAsAFixedTree");
        SplittableRandom random = new SplittableRandom(seed);
        float[] v = new float[LANES];
        for (int round = 0; round < 1000; round++) {
            for (int i = 0; i < LANES; i++) {
                v[i] = (float) ((random.nextDouble() - 0.5) * Math.pow(2, random.nextInt(40) - 20));
            }
            float got = JvmChunkKernel.foldLanes(FloatVector.fromArray(Fp16Widening.FLOATS, v, 0)).lane(0);
            assertEquals(Float.floatToRawIntBits(tree(v, 0, LANES)), Float.floatToRawIntBits(got), "round " + round + " seed=" + seed);
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
