package dev.pagedattn.tornado;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvPool;
import java.lang.foreign.MemorySegment;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * Host side of the device-side scatter ({@link dev.pagedattn.kernels.ScatterKernels}): copies the
 * current host K/V of dirty token slots into the per-step staging arrays, one row per slot, and each
 * slot's pool offset into {@code slotOffsets}. Shared by the decode and prefill plans.
 */
final class StagingRows {
    private StagingRows() {
    }

    /**
     * Stages {@code rows} slots {@code dirty[from ..]} of {@code layer}.
     *
     * @param slotOffsets [stagingSlots] pool offset of each staged slot's first element
     * @param stageK      [stagingSlots][numKvHeads][headDim], the pool's dtype
     * @param stageV      same shape
     */
    static void stage(KvCache cache, int layer, int[] dirty, int from, int rows, IntArray slotOffsets,
                      TornadoNativeArray stageK, TornadoNativeArray stageV) {
        KvCacheConfig config = cache.config();
        int width = config.tokenWidth();
        int headDim = config.headDim();
        int headStride = cache.layout().headStride();
        long bytes = config.dtype().bytes();
        KvPool keys = cache.keys(layer);
        KvPool values = cache.values(layer);
        for (int r = 0; r < rows; r++) {
            int base = cache.layout().slotOffset(dirty[from + r]);
            slotOffsets.set(r, base);
            for (int h = 0; h < config.numKvHeads(); h++) {
                long src = (long) (base + h * headStride) * bytes;
                long dst = (long) (r * width + h * headDim) * bytes;
                MemorySegment.copy(keys.segment(), src, stageK.getSegment(), dst, headDim * bytes);
                MemorySegment.copy(values.segment(), src, stageV.getSegment(), dst, headDim * bytes);
            }
        }
    }
}
