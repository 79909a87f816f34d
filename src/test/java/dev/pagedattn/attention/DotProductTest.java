package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * {@link JvmDecodeAttention#dot} (lanes folded by a fixed tree) against exact sums and plain loops, for
 * every length up to three vector widths and beyond (multiples of the width and not), at
 * offsets inside larger arrays whose other elements are NaN, so that a read out of range shows.
 * This JVM runs whichever path {@link JvmDecodeAttention#VECTOR} selects; {@link VectorFlagTest}
 * runs the same checks in JVMs started with the flag on and off.
 */
class DotProductTest {
    /** The lane count the kernel uses. */
    static final int WIDTH = FloatVector.SPECIES_PREFERRED.length();

    static int[] lengths() {
        return IntStream.concat(IntStream.rangeClosed(0, 3 * WIDTH + 1), IntStream.of(80, 127, 128, 256, 257)).toArray();
    }

    @Test
    void dotMatchesAPlainLoop() {
        checkDot(TestSeeds.fresh("dotMatchesAPlainLoop (VECTOR=" + JvmDecodeAttention.VECTOR + ", width=" + WIDTH + ")"));
    }

    /**
     * Against the exact (fp64) dot product within the standard bound for n fp32 roundings,
     * {@code n * 2^-24 * sum|a_i b_i|} (plus one rounding for the lane sum). Where the kernel
     * runs plain loops only (scalar path, or fewer elements than a vector), it must equal the
     * plain fp32 loop bit for bit.
     */
    static void checkDot(long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        for (int n : lengths()) {
            int aOff = random.nextInt(5);
            int bOff = random.nextInt(5);
            float[] a = poisoned(aOff + n + 3);
            float[] b = poisoned(bOff + n + 3);
            double exact = 0;
            double magnitude = 0;
            float plain = 0;
            for (int i = 0; i < n; i++) {
                a[aOff + i] = (float) (random.nextDouble() * 2 - 1);
                b[bOff + i] = (float) (random.nextDouble() * 2 - 1);
                exact += (double) a[aOff + i] * b[bOff + i];
                magnitude += Math.abs((double) a[aOff + i] * b[bOff + i]);
                plain += a[aOff + i] * b[bOff + i];
            }
            float got = JvmDecodeAttention.dot(a, aOff, b, bOff, n);
            String what = "dot n=" + n + " aOff=" + aOff + " bOff=" + bOff + " VECTOR=" + JvmDecodeAttention.VECTOR + " seed=" + seed;
            double bound = (n + WIDTH + 1) * 0x1p-24 * magnitude;
            assertTrue(Math.abs(got - exact) <= bound, what + ": got " + got + " exact " + exact + " bound " + bound);
            if (!JvmDecodeAttention.VECTOR || n < WIDTH) {
                assertEquals(Float.floatToRawIntBits(plain), Float.floatToRawIntBits(got), what + ": plain loop gives " + plain);
            }
        }
    }

    private static float[] poisoned(int n) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, Float.NaN);
        return a;
    }
}
