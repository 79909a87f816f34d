package dev.pagedattn.attention;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * fp16 -> fp32 widening of a run of pool elements, bit-exact with {@link Float#float16ToFloat} for
 * every one of the 65536 half values (the test checks them all).
 *
 * <p>A plain loop over {@link Float#float16ToFloat}: C2 turns it into the hardware conversion
 * ({@code vcvtph2ps}, F16C / AVX-512; SuperWord vectorises the intrinsic since JDK 21), 16 halves
 * per instruction. That beat the Vector API bit recipe this class had before (JDK 25's Vector API
 * has no float16 lanes: sign-extend, shift, rescale by 2^112, blend Inf/NaN, about nine vector
 * operations per 16 halves): a 16 x 128 tile widens in 75 ns instead of 129 ns on one core here,
 * and no Vector API value is left to box when C2 compiles a helper on its own
 * (benchmarks/NOTES.md, issue 13). Exact in the interpreter too, so the bits do not depend on
 * which tier ran.
 */
final class Fp16Widening {
    /** The float species of the JVM kernels. */
    static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Fp16Widening() {
    }

    /**
     * {@code dst[dstOff + i] = float16ToFloat(half at element index + i)} for {@code i < n}, where
     * {@code pool} holds halves in native order ({@code [poolElements]} fp16).
     *
     * @param vector ignored: the loop is the same on both paths (C2 vectorises it on the vector
     *               path's machines and the scalar path's alike)
     */
    static void widen(MemorySegment pool, long index, float[] dst, int dstOff, int n, boolean vector) {
        for (int i = 0; i < n; i++) {
            dst[dstOff + i] = Float.float16ToFloat(pool.getAtIndex(HALF, index + i));
        }
    }
}
