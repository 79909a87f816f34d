package dev.pagedattn.cache;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * bfloat16, the upper half of an fp32: 8 exponent bits (fp32's range) and 8 significant bits. A bf16 widens to fp32
 * exactly by a shift; an fp32 rounds to bf16 to nearest even (values past bf16's largest finite round to infinity, as
 * IEEE rounding does; a NaN stays a quiet NaN of the same sign).
 */
public final class Bf16 {
    private static final ValueLayout.OfShort BITS = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Bf16() {
    }

    /** The fp32 of bf16 {@code bits}. */
    public static float toFloat(short bits) {
        return Float.intBitsToFloat(bits << 16);
    }

    /** {@code x} rounded to the nearest bf16 (ties to even). */
    public static short fromFloat(float x) {
        int bits = Float.floatToRawIntBits(x);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((bits >>> 16) | 0x0040); // a NaN: quiet, its sign kept
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    /**
     * {@code dst[dstOff + i] = toFloat(bf16 at element index + i)} for {@code i < n}: a plain loop of a sign extension and
     * a shift, which C2 vectorises.
     */
    public static void widen(MemorySegment pool, long index, float[] dst, int dstOff, int n) {
        for (int i = 0; i < n; i++) {
            dst[dstOff + i] = Float.intBitsToFloat(pool.getAtIndex(BITS, index + i) << 16);
        }
    }
}
