package dev.pagedattn.attention;

import dev.pagedattn.quant.QuantFormat;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * 8-bit code -> fp32 dequantisation of a run of pool elements ({@code decode(code) * scale}) with
 * the Vector API, bit-exact with {@link QuantFormat#decode} times the scale for every code the
 * encoder writes (the test checks all of them).
 *
 * <p>No table gather: the classic software half-widening recipe on int lanes. A code {@code c} (sign
 * s, exponent e, mantissa m) sign-extended to an int {@code i}: {@code (i & 0x7f) << (23 - manBits)}
 * is a float with exponent field e and the mantissa in place, i.e. the code's value times
 * 2^(bias - 127) (for subnormal codes an fp32 subnormal, so the multiplication by 2^(127 - bias)
 * is exact); {@code i & 0x80000000} is the sign. Then one multiplication by the scale, the same
 * rounding as the scalar path. INT8 is a plain byte -> float conversion. The reserved codes (E4M3's
 * NaN, E5M2's inf/NaN) are never written ({@link QuantFormat#encode} refuses non-finite input and
 * saturates), so the recipe does not treat them.
 */
final class EightBitWidening {
    private static final VectorSpecies<Float> FLOATS = Fp16Widening.FLOATS;
    /** As many bytes as {@link #FLOATS} has lanes; null where that shape does not exist (128-bit floats). */
    private static final VectorSpecies<Byte> BYTES = FLOATS.vectorBitSize() >= 256
            ? VectorSpecies.of(byte.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 4)) : null;
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;

    private EightBitWidening() {
    }

    /**
     * {@code dst[dstOff + i] = table[code at byte index + i] * scale} for {@code i < n}.
     *
     * @param table  {@code [256]} {@code format.table()}
     * @param vector false: the plain scalar loop (the {@code pagedattn.jvm.vector=false} path)
     */
    static void widen(QuantFormat format, float[] table, MemorySegment pool, long index, float scale,
                      float[] dst, int dstOff, int n, boolean vector) {
        int i = 0;
        if (vector && BYTES != null) {
            // One loop per format, the vector values inside it: a vector returned by a helper that C2
            // compiled on its own is a heap object per call (Fp16Widening, benchmarks/NOTES.md).
            int bound = FLOATS.loopBound(n);
            if (format == QuantFormat.INT8) {
                for (; i < bound; i += FLOATS.length()) {
                    ((FloatVector) ByteVector.fromMemorySegment(BYTES, pool, index + i, ByteOrder.nativeOrder()).convertShape(VectorOperators.B2F, FLOATS, 0)).mul(scale)
                            .intoArray(dst, dstOff + i);
                }
            } else {
                boolean e4m3 = format == QuantFormat.FP8_E4M3;
                int shift = e4m3 ? 20 : 21;
                float rebias = e4m3 ? 0x1p120f : 0x1p112f;
                for (; i < bound; i += FLOATS.length()) {
                    IntVector c = (IntVector) ByteVector.fromMemorySegment(BYTES, pool, index + i, ByteOrder.nativeOrder()).convertShape(VectorOperators.B2I, INTS, 0);
                    FloatVector unsigned = c.and(0x7f).lanewise(VectorOperators.LSHL, shift).reinterpretAsFloats().mul(rebias);
                    unsigned.reinterpretAsInts().or(c.and(0x80000000)).reinterpretAsFloats().mul(scale).intoArray(dst, dstOff + i);
                }
            }
        }
        for (; i < n; i++) {
            dst[dstOff + i] = table[pool.get(ValueLayout.JAVA_BYTE, index + i) & 0xFF] * scale;
        }
    }
}
