package dev.pagedattn.kernels;

import uk.ac.manchester.tornado.api.types.BFloat16;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The read of one element from a bf16 pool, whose {@code IntArray} words hold two elements each (element {@code 2w} in
 * the low half, {@code 2w + 1} in the high half: the bytes of the host's pool). On TornadoVM's CUDA backend
 * {@code BFloat16.bf16ToFloat} is {@code __int_as_float(bits << 16)}; the PTX and OpenCL backends inline the API's software
 * decoder instead, so the TornadoVM backends run bf16 kernels on CUDA only (DecodeGrid, PrefillGrid).
 */
public final class Bf16Words {
    private Bf16Words() {
    }

    /** Element {@code index} of the bf16 pool {@code words}, widened to fp32 (exact). */
    public static float value(IntArray words, int index) {
        return BFloat16.bf16ToFloat((short) (words.get(index >> 1) >>> ((index & 1) << 4)));
    }
}
