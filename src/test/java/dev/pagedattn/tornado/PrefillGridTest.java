package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.kernels.PrefillKernels;
import dev.pagedattn.kernels.PrefillParams;
import dev.pagedattn.kernels.TensorPrefillKernels;
import java.util.Arrays;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import org.junit.jupiter.api.Test;

/** The prefill grid: tiles cover every query and head, and the context is split only when the GPU would idle. */
class PrefillGridTest {
    private static final KvCacheConfig LLAMA = KvCacheConfig.of(40_000, 16, 8, 128, KvDtype.FP16);
    private static final AttentionSpec SPEC = AttentionSpec.of(LLAMA, 32);

    private static PrefillBatch batch(int numSeqs, int context, int qLen) {
        int[][] tables = new int[numSeqs][LLAMA.blocksFor(context)];
        int[] lens = new int[numSeqs];
        Arrays.fill(lens, context);
        int[] qLens = new int[numSeqs];
        Arrays.fill(qLens, qLen);
        return PrefillBatch.of(DecodeBatch.of(LLAMA, tables, lens), qLens, PrefillBatch.NO_WINDOW);
    }

    @Test
    void chunkedPrefillOf512TokensFillsTheGpuWithoutASplit() {
        PrefillGrid g = PrefillGrid.plan(SPEC, batch(1, 8704, 512), PrefillGrid.Kernel.SCALAR);
        // head dim 128: 16 rows = 4 heads x 4 tokens; 128 query tiles x 8 KV heads
        assertEquals(1, g.headTiles());
        assertEquals(128, g.maxQTiles());
        assertEquals(1, g.maxPartitions(), g.toString());
        assertEquals(1024, g.numGroups());
    }

    @Test
    void fewQueriesOverALongPrefixAreSplitInWholeChunks() {
        PrefillGrid g = PrefillGrid.plan(SPEC, batch(1, 8192, 4), PrefillGrid.Kernel.SCALAR);
        assertTrue(g.maxPartitions() > 1 && g.maxPartitions() <= 8192 / 512, g.toString());
        assertEquals(0, g.partitionTokens() % PrefillKernels.KV_TILE, g.toString());
        assertTrue((long) g.partitionTokens() * g.maxPartitions() >= 8192, g.toString());
        assertEquals(8 * g.maxQTiles() * g.maxPartitions(), g.numGroups());
    }

    @Test
    void largeGroupsAreCutIntoHeadTiles() {
        KvCacheConfig mqa = KvCacheConfig.of(100, 16, 1, 128, KvDtype.FP16);
        PrefillGrid g = PrefillGrid.plan(AttentionSpec.of(mqa, 64), PrefillBatch.of(
                DecodeBatch.of(mqa, new int[][] {new int[4]}, new int[] {50}), new int[] {5}, PrefillBatch.NO_WINDOW), PrefillGrid.Kernel.SCALAR);
        assertEquals(4, g.headTiles(), g.toString()); // 16 rows of 128 dims: 16 heads x 1 token
        assertEquals(5, g.maxQTiles(), g.toString());
    }

    @Test
    void aTensorCallWhoseScratchPassesOneDeviceArrayIsRefusedByName() {
        // 256 work-groups of scratch per sequence at 512 new tokens (8 KV heads x 32 query tiles): 512 sequences pass 2^31 floats
        IntArray params = new IntArray(PrefillParams.SIZE);
        PrefillBatch fits = batch(511, 1024, 512);
        PrefillGrid small = PrefillGrid.plan(SPEC, fits, PrefillGrid.Kernel.TENSOR);
        assertEquals(511L * 256 * TensorPrefillKernels.SCRATCH_PER_GROUP, small.bufferElements(SPEC, fits.totalQueries()), small.toString());
        small.writeParams(params, SPEC, fits, 0, LLAMA.blocksFor(1024), false);
        PrefillBatch tooMany = batch(512, 1024, 512);
        PrefillGrid large = PrefillGrid.plan(SPEC, tooMany, PrefillGrid.Kernel.TENSOR);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> large.writeParams(params, SPEC, tooMany, 0, LLAMA.blocksFor(1024), false));
        assertTrue(e.getMessage().contains(Long.toString(large.bufferElements(SPEC, tooMany.totalQueries()))), e.getMessage());
    }

    /**
     * bf16 pools on the CUDA backend: the scalar kernel by default (AUTO, SCALAR), the bf16 tensor-core kernel up to head dim
     * 128 when asked (TENSOR); PTX, OpenCL and latent caches are refused by name, naming the JVM backend that prefills them.
     */
    @Test
    void bf16PrefillRunsOnCudaOnly() {
        assertEquals(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, SPEC, KvDtype.BF16, Backend.CUDA));
        assertEquals(PrefillGrid.Kernel.TENSOR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.TENSOR, SPEC, KvDtype.BF16, Backend.CUDA));
        assertEquals(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.SCALAR, SPEC, KvDtype.BF16, Backend.CUDA));
        AttentionSpec wide = new AttentionSpec(16, 2, 256, 0.0625f);
        assertEquals(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, wide, KvDtype.BF16, Backend.CUDA));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.TENSOR, wide, KvDtype.BF16, Backend.CUDA));
        assertTrue(e.getMessage().contains("dtype=BF16") && e.getMessage().contains("headDim=256"), e.getMessage());
        for (Backend b : new Backend[] {Backend.PTX, Backend.OPENCL}) {
            e = assertThrows(IllegalArgumentException.class, () -> PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, SPEC, KvDtype.BF16, b));
            assertTrue(e.getMessage().startsWith("dtype=BF16: TornadoVM prefills bf16 K/V only on its CUDA backend")
                    && e.getMessage().contains("backend=" + b) && e.getMessage().contains("backend=jvm"), e.getMessage());
        }
        e = assertThrows(IllegalArgumentException.class,
                () -> PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, SPEC, KvDtype.BF16, null, true));
        assertTrue(e.getMessage().contains("latent"), e.getMessage());
    }

    /**
     * Head dims above 256 have no TornadoVM kernel: refused by name; head dim 256 passes. Latent (MLA) caches of every
     * kernel dtype pass (the latent kernel reads them for decode and prefill), and the prefill kernel resolves to LATENT
     * for them only: another named kernel is refused for a latent cache, and LATENT for a K/V cache.
     */
    @Test
    void wideHeadsAreRefusedByTheTornadoBackendsByNameAndLatentCachesRunTheLatentKernel() {
        for (KvDtype dtype : new KvDtype[] {KvDtype.FP16, KvDtype.FP32, KvDtype.FP8_E4M3}) {
            PlanParts.requireKernelShape(dev.pagedattn.cache.KvCacheConfig.latent(8, 16, 64, 16, dtype, 1));
        }
        AttentionSpec mla = AttentionSpec.of(KvCacheConfig.latent(8, 16, 64, 16, KvDtype.FP16, 1), 16);
        for (Backend backend : Backend.values()) {
            assertEquals(PrefillGrid.Kernel.LATENT, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, mla, KvDtype.FP16, backend, true));
            assertEquals(PrefillGrid.Kernel.LATENT, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.LATENT, mla, KvDtype.FP16, backend, true));
        }
        IllegalArgumentException tensor = assertThrows(IllegalArgumentException.class,
                () -> PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.TENSOR, mla, KvDtype.FP16, Backend.CUDA, true));
        assertEquals("prefill kernel=tensor: a latent (MLA) cache is prefilled by kernel latent only (use auto or latent)",
                tensor.getMessage());
        IllegalArgumentException latent = assertThrows(IllegalArgumentException.class, () -> PrefillGrid.Kernel.resolve(
                PrefillGrid.Kernel.LATENT, new AttentionSpec(32, 8, 128, 0.1f), KvDtype.FP16, Backend.CUDA, false));
        assertTrue(latent.getMessage().startsWith("prefill kernel=latent reads latent (MLA) caches only"), latent.getMessage());
        IllegalArgumentException wide = assertThrows(IllegalArgumentException.class,
                () -> PlanParts.requireKernelShape(dev.pagedattn.cache.KvCacheConfig.of(8, 16, 1, 264, KvDtype.FP16)));
        assertTrue(wide.getMessage().startsWith("headDim=264: the TornadoVM kernels take head dims up to 256"), wide.getMessage());
        PlanParts.requireKernelShape(dev.pagedattn.cache.KvCacheConfig.of(8, 16, 2, 256, KvDtype.FP16));
    }
}
