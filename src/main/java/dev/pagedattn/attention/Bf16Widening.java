package dev.pagedattn.attention;

import dev.pagedattn.cache.Bf16;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * bf16 -> fp32 widening of a run of pool elements for the JVM kernels, bit-exact with {@link Bf16#toFloat}: with the
 * Vector API a vector of shorts is sign-extended to ints, shifted up 16 bits and reinterpreted as floats, a float vector
 * at a time; without it (or for the tail) {@link Bf16#widen}'s plain loop, which C2 did not vectorise (its
 * {@code Float.intBitsToFloat}): 1.43x fp16's decode time before this class (benchmarks/NOTES.md, thirty-sixth session).
 */
final class Bf16Widening {
    private static final VectorSpecies<Float> FLOATS = Fp16Widening.FLOATS;
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
    /** Shorts as many as the float lanes, or null where no vector shape holds them (the scalar loop then). */
    private static final VectorSpecies<Short> SHORTS = shorts();

    private Bf16Widening() {
    }

    private static VectorSpecies<Short> shorts() {
        try {
            return VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.length() * Short.SIZE));
        } catch (IllegalArgumentException e) { // a float shape whose half is no vector shape (scalable vectors)
            return null;
        }
    }

    /** {@code dst[dstOff + i] = Bf16.toFloat(bf16 at element index + i)} for {@code i < n}. */
    static void widen(MemorySegment pool, long index, float[] dst, int dstOff, int n, boolean vector) {
        int i = 0;
        if (vector && SHORTS != null) {
            int lanes = FLOATS.length();
            for (; i + lanes <= n; i += lanes) {
                ShortVector s = ShortVector.fromMemorySegment(SHORTS, pool, (index + i) * Short.BYTES, ByteOrder.nativeOrder());
                IntVector w = (IntVector) s.convertShape(VectorOperators.S2I, INTS, 0);
                ((FloatVector) w.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()).intoArray(dst, dstOff + i);
            }
        }
        Bf16.widen(pool, index + i, dst, dstOff + i, n - i);
    }
}
