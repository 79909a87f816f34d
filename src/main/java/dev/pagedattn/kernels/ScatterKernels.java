package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Writes newly appended tokens' K/V from a small per-step staging array into the device-resident
 * pools, so that a pool is uploaded once and never again.
 *
 * <pre>
 *  slotOffsets  [capacity]                          KvLayout offset of (layer, block, head 0, slot, dim 0);
 *                                                   the layout is linear, so head h, dim d is that plus offset(0,..,h,0,d)
 *  stageK/V     [capacity][numKvHeads][headDim]     the tokens' K and V
 *  params[DecodeParams.NUM_NEW_SLOTS]               live rows of the staging arrays
 * </pre>
 * One work-item per staged element; global size {@code capacity * numKvHeads * headDim}.
 */
public final class ScatterKernels {
    private ScatterKernels() {
    }

    public static void scatterF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, HalfFloatArray stageK,
                                  HalfFloatArray stageV, IntArray slotOffsets, IntArray params,
                                  int numKvHeads, int headDim, int blockSize) {
        int idx = ctx.globalIdx;
        int width = numKvHeads * headDim;
        int row = idx / width;
        if (row < params.get(DecodeParams.NUM_NEW_SLOTS)) {
            int e = idx - row * width;
            int head = e / headDim;
            int at = slotOffsets.get(row) + KvLayout.offset(0, 0, blockSize * headDim, headDim, 0, head, 0, e - head * headDim);
            kPool.set(at, stageK.get(idx));
            vPool.set(at, stageV.get(idx));
        }
    }

    public static void scatterF32(KernelContext ctx, FloatArray kPool, FloatArray vPool, FloatArray stageK,
                                  FloatArray stageV, IntArray slotOffsets, IntArray params,
                                  int numKvHeads, int headDim, int blockSize) {
        int idx = ctx.globalIdx;
        int width = numKvHeads * headDim;
        int row = idx / width;
        if (row < params.get(DecodeParams.NUM_NEW_SLOTS)) {
            int e = idx - row * width;
            int head = e / headDim;
            int at = slotOffsets.get(row) + KvLayout.offset(0, 0, blockSize * headDim, headDim, 0, head, 0, e - head * headDim);
            kPool.set(at, stageK.get(idx));
            vPool.set(at, stageV.get(idx));
        }
    }
}
