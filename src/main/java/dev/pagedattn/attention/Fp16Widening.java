package dev.pagedattn.attention;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * fp16 -> fp32 widening of a run of pool elements with the Vector API, bit-exact with
 * {@link Float#float16ToFloat} for every one of the 65536 half values (the test checks them all).
 *
 * <p>JDK 25's Vector API has no float16 lane type or half conversion, so the conversion is the
 * classic bit recipe on int lanes: for a half {@code h} (sign s, exponent e, mantissa m),
 * {@code ((h & 0x7fff) << 13)} is a float with exponent field e and the mantissa in place, which is
 * the half's value times 2^-112 (for subnormal halves too: it is then an fp32 subnormal, and the
 * multiplication by 2^112 is exact); the sign is or-ed back in; e = 31 (Inf/NaN) takes exponent
 * 255 instead. Eight or sixteen shorts are loaded as one {@link ShortVector} and sign-extended to
 * ints in one conversion (vpmovsxwd on x86), so a 4 KB fp16 tile costs about six vector
 * instructions per 16 elements instead of 16 scalar conversions.
 */
final class Fp16Widening {
    static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    /** As many shorts as {@link #FLOATS} has lanes (half the bits). */
    private static final VectorSpecies<Short> HALVES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 2));
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Fp16Widening() {
    }

    /**
     * {@code dst[dstOff + i] = float16ToFloat(half at element index + i)} for {@code i < n}, where
     * {@code pool} holds halves in native order ({@code [poolElements]} fp16).
     *
     * @param vector false: the plain scalar loop (the {@code pagedattn.jvm.vector=false} path)
     */
    static void widen(MemorySegment pool, long index, float[] dst, int dstOff, int n, boolean vector) {
        int i = 0;
        if (vector) {
            for (int bound = FLOATS.loopBound(n); i < bound; i += FLOATS.length()) {
                widenLanes(pool, (index + i) * Short.BYTES).intoArray(dst, dstOff + i);
            }
        }
        for (; i < n; i++) {
            dst[dstOff + i] = Float.float16ToFloat(pool.getAtIndex(HALF, index + i));
        }
    }

    /** {@code FLOATS.length()} halves from {@code byteOffset} of {@code pool}, widened. */
    static FloatVector widenLanes(MemorySegment pool, long byteOffset) {
        IntVector h = (IntVector) ShortVector.fromMemorySegment(HALVES, pool, byteOffset, ByteOrder.nativeOrder())
                .convertShape(VectorOperators.S2I, INTS, 0);
        IntVector magnitude = h.and(0x7fff).lanewise(VectorOperators.LSHL, 13);
        IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        FloatVector finite = magnitude.reinterpretAsFloats().mul(0x1p112f);
        VectorMask<Integer> infOrNaN = h.and(0x7c00).compare(VectorOperators.EQ, 0x7c00);
        IntVector bits = finite.reinterpretAsInts().blend(magnitude.or(0x7f800000), infOrNaN).or(sign);
        return bits.reinterpretAsFloats();
    }
}
