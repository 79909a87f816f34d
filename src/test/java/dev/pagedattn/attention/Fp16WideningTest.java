package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Fp16Widening} against {@link Float#float16ToFloat} for every one of the 65536 half values
 * (bit for bit; any NaN for a NaN, whose payload the JDK's own conversion may quiet), on the vector
 * and the scalar path, and for runs at random offsets and lengths (vector part plus scalar tail)
 * inside poisoned buffers, so that a lane written out of range shows.
 */
class Fp16WideningTest {

    @ParameterizedTest(name = "vector={0}")
    @ValueSource(booleans = {true, false})
    void everyHalfWidensExactly(boolean vector) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment halves = arena.allocate(65536L * Short.BYTES, 64);
            for (int h = 0; h < 65536; h++) {
                halves.setAtIndex(ValueLayout.JAVA_SHORT, h, (short) h);
            }
            float[] got = new float[65536];
            Fp16Widening.widen(halves, 0, got, 0, 65536, vector);
            for (int h = 0; h < 65536; h++) {
                assertSame(Float.float16ToFloat((short) h), got[h], "half 0x" + Integer.toHexString(h) + " vector=" + vector);
            }
        }
    }

    @ParameterizedTest(name = "vector={0}")
    @ValueSource(booleans = {true, false})
    void runsAtAnyOffsetAndLengthWriteOnlyTheirRange(boolean vector) {
        long seed = TestSeeds.fresh("runsAtAnyOffsetAndLengthWriteOnlyTheirRange vector=" + vector);
        SplittableRandom random = new SplittableRandom(seed);
        try (Arena arena = Arena.ofConfined()) {
            int size = 4096;
            MemorySegment pool = arena.allocate((long) size * Short.BYTES, 64);
            for (int i = 0; i < size; i++) {
                pool.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) random.nextInt(65536));
            }
            for (int run = 0; run < 300; run++) {
                int n = random.nextInt(200);
                int from = random.nextInt(size - n);
                int dstOff = random.nextInt(7);
                float[] dst = new float[dstOff + n + 5];
                Arrays.fill(dst, Float.NaN);
                Fp16Widening.widen(pool, from, dst, dstOff, n, vector);
                for (int i = 0; i < dst.length; i++) {
                    String what = "run " + run + " from=" + from + " n=" + n + " dstOff=" + dstOff + " element " + i + " seed=" + seed;
                    if (i < dstOff || i >= dstOff + n) {
                        assertTrue(Float.isNaN(dst[i]) && Float.floatToRawIntBits(dst[i]) == Float.floatToRawIntBits(Float.NaN),
                                what + " outside the run was written: " + dst[i]);
                    } else {
                        assertSame(Float.float16ToFloat(pool.getAtIndex(ValueLayout.JAVA_SHORT, from + i - dstOff)), dst[i], what);
                    }
                }
            }
        }
    }

    private static void assertSame(float want, float got, String what) {
        if (Float.isNaN(want)) {
            assertTrue(Float.isNaN(got), what + ": want NaN, got " + got);
        } else {
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got), what + ": want " + want + ", got " + got);
        }
    }
}
