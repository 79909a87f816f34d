package dev.pagedattn.kernels;

import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The 8-bit read path on its own, before it goes into the attention kernels: a work-group copies
 * the format's value table into local memory, then work-items turn codes into fp32 elements. It is
 * exactly what an attention kernel adds per K/V element (a load, a mask, a local lookup, a
 * multiply) and the place to read a backend's generated code for it. The table copy and the
 * lookups stay in the kernel body: TornadoVM 5.2 mis-addresses a local array passed to a helper,
 * and turns {@code >>>} into a signed shift ({@link DequantTable} says more).
 */
public final class DequantKernels {
    private DequantKernels() {
    }

    /**
     * One code per work-item: {@code out[i] = table[codes[i] & 0xFF] * scales[i / rowLength]}.
     * Grid: 1-D, global size {@code numElements} rounded up to the local size; any local size.
     *
     * @param codes     [numElements] 8-bit codes (a slice of a K or V pool)
     * @param table     [256] the format's values ({@link DequantTable#nativeOf})
     * @param scales    [numElements / rowLength] one scale per row (per KV head: a row is a head's tile)
     * @param out       [numElements] fp32 elements
     * @param rowLength elements that share one scale
     */
    public static void dequantize(KernelContext ctx, ByteArray codes, FloatArray table, FloatArray scales,
                                  FloatArray out, int numElements, int rowLength) {
        float[] lut = ctx.allocateFloatLocalArray(DequantTable.SIZE);  // [256], 1 KB of local memory
        for (int t = ctx.localIdx; t < DequantTable.SIZE; t += ctx.localGroupSizeX) {
            lut[t] = table.get(t);
        }
        ctx.localBarrier();                                           // the table is complete
        int i = ctx.globalIdx;                                        // element
        if (i < numElements) {
            out.set(i, lut[codes.get(i) & 0xFF] * scales.get(i / rowLength));
        }
    }

    /**
     * Four codes per work-item from one 32-bit load: the pool as an {@link IntArray} whose words
     * pack four codes, lowest byte first, so a kernel issues a quarter of the loads that one byte
     * per load needs. Grid: 1-D, global size {@code numElements / 4} rounded up to the local size.
     *
     * @param words     [numElements / 4] packed codes (a slice of a K or V pool)
     * @param table     [256] the format's values
     * @param scales    [numElements / rowLength] one scale per row
     * @param out       [numElements] fp32 elements
     * @param rowLength elements that share one scale, a multiple of 4 (head dims are multiples of 8)
     */
    public static void dequantizePacked(KernelContext ctx, IntArray words, FloatArray table, FloatArray scales,
                                        FloatArray out, int numElements, int rowLength) {
        float[] lut = ctx.allocateFloatLocalArray(DequantTable.SIZE);  // [256]
        for (int t = ctx.localIdx; t < DequantTable.SIZE; t += ctx.localGroupSizeX) {
            lut[t] = table.get(t);
        }
        ctx.localBarrier();
        int w = ctx.globalIdx;                                        // word: elements 4w .. 4w+3, one row
        int e = w << 2;                                               // first element
        if (e < numElements) {
            int word = words.get(w);
            float scale = scales.get(e / rowLength);
            out.set(e, lut[DequantTable.code(word, 0)] * scale);
            out.set(e + 1, lut[DequantTable.code(word, 1)] * scale);
            out.set(e + 2, lut[DequantTable.code(word, 2)] * scale);
            out.set(e + 3, lut[DequantTable.code(word, 3)] * scale);
        }
    }
}
