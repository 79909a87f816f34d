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
 * Grid-stride over the staged elements: any global size works. A small grid keeps the launch cheap
 * on the many steps that stage nothing (a grid of one work-item per staging element cost 20-30 us
 * per step on the H100 just to exit).
 */
public final class ScatterKernels {
    private ScatterKernels() {
    }

    public static void scatterF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, HalfFloatArray stageK,
                                  HalfFloatArray stageV, IntArray slotOffsets, IntArray params,
                                  int numKvHeads, int headDim, int blockSize) {
        int width = numKvHeads * headDim;
        int total = params.get(DecodeParams.NUM_NEW_SLOTS) * width;
        int slots = params.get(DecodeParams.SLOTS);  // 0, or their start in a packed plan's params
        int vBase = params.get(DecodeParams.STAGE_V);
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int row = idx / width;
            int e = idx - row * width;
            int head = e / headDim;
            int at = slotOffsets.get(slots + row) + KvLayout.offset(0, 0, blockSize * headDim, headDim, 0, head, 0, e - head * headDim);
            kPool.set(at, stageK.get(idx));
            vPool.set(at, stageV.get(vBase + idx));
        }
    }

    public static void scatterF32(KernelContext ctx, FloatArray kPool, FloatArray vPool, FloatArray stageK,
                                  FloatArray stageV, IntArray slotOffsets, IntArray params,
                                  int numKvHeads, int headDim, int blockSize) {
        int width = numKvHeads * headDim;
        int total = params.get(DecodeParams.NUM_NEW_SLOTS) * width;
        int slots = params.get(DecodeParams.SLOTS);  // 0, or their start in a packed plan's params
        int vBase = params.get(DecodeParams.STAGE_V);
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int row = idx / width;
            int e = idx - row * width;
            int head = e / headDim;
            int at = slotOffsets.get(slots + row) + KvLayout.offset(0, 0, blockSize * headDim, headDim, 0, head, 0, e - head * headDim);
            kPool.set(at, stageK.get(idx));
            vPool.set(at, stageV.get(vBase + idx));
        }
    }

    /**
     * {@link #scatterF16} for a latent cache ({@code KvCacheConfig.latent}): one pool per layer, one KV head, rows of
     * {@code headDim} (the staged K rows; the values are inside them).
     */
    public static void scatterLatentF16(KernelContext ctx, HalfFloatArray pool, HalfFloatArray stage, IntArray slotOffsets,
                                        IntArray params, int headDim) {
        int total = params.get(DecodeParams.NUM_NEW_SLOTS) * headDim;
        int slots = params.get(DecodeParams.SLOTS);
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int row = idx / headDim;
            pool.set(slotOffsets.get(slots + row) + idx - row * headDim, stage.get(idx));
        }
    }

    public static void scatterLatentF32(KernelContext ctx, FloatArray pool, FloatArray stage, IntArray slotOffsets,
                                        IntArray params, int headDim) {
        int total = params.get(DecodeParams.NUM_NEW_SLOTS) * headDim;
        int slots = params.get(DecodeParams.SLOTS);
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int row = idx / headDim;
            pool.set(slotOffsets.get(slots + row) + idx - row * headDim, stage.get(idx));
        }
    }

    /** {@link #scatterLatentF16} for an 8-bit latent cache: a row is {@code headDim / 4} words of codes. */
    public static void scatterLatentWords(KernelContext ctx, IntArray pool, IntArray stage, IntArray slotOffsets, IntArray params,
                                          int headDim) {
        int rowWords = headDim >> 2;
        int total = params.get(DecodeParams.NUM_NEW_SLOTS) * rowWords;
        int slots = params.get(DecodeParams.SLOTS);
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int row = idx / rowWords;
            pool.set((slotOffsets.get(slots + row) >> 2) + idx - row * rowWords, stage.get(idx));
        }
    }

    /**
     * {@link #scatterF16} for pools packed in 32-bit words: 8-bit codes four per word ({@code perWordShift} 2) or bf16
     * elements two per word ({@code perWordShift} 1). A head's row of {@code headDim} elements is {@code headDim >>
     * perWordShift} whole words (head dims are multiples of 8), so staged rows go over word by word. The host quantised
     * (or rounded) the elements when the tokens were written.
     *
     * <pre>
     *  stageK/V  [capacity][numKvHeads][headDim >> perWordShift]   words
     * </pre>
     */
    public static void scatterWords(KernelContext ctx, IntArray kPool, IntArray vPool, IntArray stageK, IntArray stageV,
                                    IntArray slotOffsets, IntArray params, int numKvHeads, int headDim, int blockSize,
                                    int perWordShift) {
        int headWords = headDim >> perWordShift;
        int width = numKvHeads * headWords;
        int total = params.get(DecodeParams.NUM_NEW_SLOTS) * width;
        int slots = params.get(DecodeParams.SLOTS);  // 0, or their start in a packed plan's params
        int vBase = params.get(DecodeParams.STAGE_V);
        for (int idx = ctx.globalIdx; idx < total; idx += ctx.globalGroupSizeX) {
            int row = idx / width;
            int e = idx - row * width;
            int head = e / headWords;
            int at = (slotOffsets.get(slots + row) >> perWordShift) + KvLayout.offset(0, 0, blockSize * headWords, headWords, 0, head, 0,
                    e - head * headWords);
            kPool.set(at, stageK.get(idx));
            vPool.set(at, stageV.get(vBase + idx));
        }
    }
}
