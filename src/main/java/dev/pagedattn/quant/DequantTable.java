package dev.pagedattn.quant;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Dequantisation for kernels: an 8-bit code indexes a 256-entry table of the format's values,
 * and the product with the scale is the stored element. TornadoVM 5.2 kernels cannot call
 * {@code Float.intBitsToFloat} or {@code Float.float16ToFloat} on PTX, so the bit pattern is not
 * decoded in the kernel; one table lookup replaces it (INT8 could convert directly, but one code
 * path serves all three formats).
 *
 * <p>Where the table lives: copy it into local (shared) memory once per work-group with
 * {@link #loadLocal} and look up there. Constant memory is the wrong place: it is fast only when a
 * warp reads one address, and 32 different codes would serialise into up to 32 reads.
 *
 * <pre>
 *  kernel:  float[] lut = ctx.allocateFloatLocalArray(DequantTable.SIZE);
 *           DequantTable.loadLocal(ctx, table, lut);
 *           ctx.localBarrier();
 *           float k = DequantTable.dequant(kPool.get(at), lut, kScale);   // kPool: ByteArray
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
     * {@code ByteArray.get} returns or 0..255: only its low 8 bits count. Kernel-safe.
     */
    public static float dequant(int code, float[] table, float scale) {
        return table[code & 0xFF] * scale;
    }

    /** {@link #dequant(int, float[], float)} reading the table from global memory. Kernel-safe. */
    public static float dequant(int code, FloatArray table, float scale) {
        return table.get(code & 0xFF) * scale;
    }

    /**
     * Each work-item of the group copies its share of {@code table} ({@code [256]}, global) into
     * {@code local} ({@code [256]}, from {@code ctx.allocateFloatLocalArray(SIZE)}). Every
     * work-item must call it; the caller's {@code ctx.localBarrier()} after it publishes the copy
     * (kept in the kernel body, where a reader looks for barriers).
     */
    public static void loadLocal(KernelContext ctx, FloatArray table, float[] local) {
        for (int i = ctx.localIdx; i < SIZE; i += ctx.localGroupSizeX) {
            local[i] = table.get(i);
        }
    }
}
