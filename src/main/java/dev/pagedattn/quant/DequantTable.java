package dev.pagedattn.quant;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Dequantisation for kernels: an 8-bit code indexes a 256-entry table of the format's values,
 * and the product with the scale is the stored element. TornadoVM 5.2 kernels cannot call
 * {@code Float.intBitsToFloat} or {@code Float.float16ToFloat} on PTX, so the bit pattern is not
 * decoded in the kernel; one table lookup replaces it (INT8 could convert directly, but one code
 * path serves all three formats).
 *
 * <p>Where the table lives: for speed, in local (shared) memory, copied once per work-group.
 * Constant memory is the wrong place: it is fast only when a warp reads one address, and 32
 * different codes would serialise into up to 32 reads. Two TornadoVM 5.2 miscompilations, seen in
 * the OpenCL it generates (PoCL), decide how kernels must write it (see {@code DequantKernels}):
 * <ul>
 *   <li>a local array handed to a helper method is indexed there as a heap array
 *       ({@code lut[4 * i + 16]}: Java's array header and element size, out of bounds), so the
 *       copy loop and the lookup {@code lut[code & 0xFF] * scale} are written in the kernel body;
 *       the {@code dequant} helpers below are for tables in global memory only (a {@code float[]}
 *       or {@link FloatArray} kernel parameter), where the addressing is right;</li>
 *   <li>{@code word >>> 24} on an {@code int} becomes a signed {@code >>} in OpenCL C (and Graal
 *       drops a following {@code & 0xFF} as redundant), so packed codes are extracted with
 *       {@code >>} and a mask: {@link #code}.</li>
 * </ul>
 *
 * <pre>
 *  kernel:  float[] lut = ctx.allocateFloatLocalArray(DequantTable.SIZE);      // [256]
 *           for (int i = ctx.localIdx; i < DequantTable.SIZE; i += ctx.localGroupSizeX) {
 *               lut[i] = table.get(i);
 *           }
 *           ctx.localBarrier();
 *           int word = kPool.get(at >> 2);                                     // 4 codes, one load
 *           float k0 = lut[DequantTable.code(word, 0)] * kScale;  ...  k3 = lut[DequantTable.code(word, 3)] * kScale;
 * </pre>
 */
public final class DequantTable {
    /** Entries per table: one per 8-bit code. */
    public static final int SIZE = 256;

    private DequantTable() {
    }

    /** The table of {@code format} for a kernel parameter, on the heap: {@code [256]}, {@code table[code] = decode(code)}. */
    public static float[] of(QuantFormat format) {
        return format.table();
    }

    /** The table of {@code format} as a TornadoVM native array: {@code [256]}. */
    public static FloatArray nativeOf(QuantFormat format) {
        return FloatArray.fromArray(format.table());
    }

    /**
     * The element stored as {@code code} with {@code scale}. {@code code} may be the signed byte that
     * {@code ByteArray.get} returns or 0..255: only its low 8 bits count. Kernel-safe when
     * {@code table} is a kernel parameter (global memory), not a local array.
     */
    public static float dequant(int code, float[] table, float scale) {
        return table[code & 0xFF] * scale;
    }

    /** {@link #dequant(int, float[], float)} reading the table from global memory. Kernel-safe. */
    public static float dequant(int code, FloatArray table, float scale) {
        return table.get(code & 0xFF) * scale;
    }

    /**
     * Code {@code lane} (0..3) of a 32-bit word that packs four codes, lowest byte first (the byte
     * order a little-endian host writes them in). Kernel-safe: {@code >>} and a mask, never
     * {@code >>>} (see the class comment).
     */
    public static int code(int word, int lane) {
        return (word >> (lane << 3)) & 0xFF;
    }
}
