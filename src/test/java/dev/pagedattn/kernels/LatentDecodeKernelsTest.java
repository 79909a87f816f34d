package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.tornado.Backend;
import dev.pagedattn.tornado.DecodeGrid;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The latent (MLA) GPU kernel ({@link LatentDecodeKernels}) run by the emulator as a plan runs it, against the fp64
 * reference over the same latent cache: fused and split grids, both schedules, fp16, fp32 and 8-bit pools, DeepSeek's shape (576
 * = 512 + 64, 16 and 128 query heads) and odd ones (head counts that leave a tile part-empty, value widths that leave
 * work-items without a dim, block sizes 1 to 64, rows shorter than a chunk), windows, sinks, soft caps, ALiBi, and
 * log-sum-exps.
 */
class LatentDecodeKernelsTest {
    private static final double TOLERANCE = 1e-5;
    private static final double LSE_TOLERANCE = 2e-5;

    record Shape(String covers, int batch, int minLen, int maxLen, int qHeads, int latentDim, int ropeDim, int blockSize,
                 KvDtype dtype, int window, boolean extras) {
        @Override
        public String toString() {
            return String.format("%s: batch=%d ctx=%d..%d q=%d latent=%d+%d bs=%d %s %s%s", covers, batch, minLen, maxLen, qHeads,
                    latentDim, ropeDim, blockSize, dtype, AttentionWindow.describe(window), extras ? " sinks+cap+ALiBi" : "");
        }

        DecodeWorkload workload(long seed) {
            int d = latentDim + ropeDim;
            // 8-bit: one scale for keys and values (a latent cache's), not 1, so that a kernel that drops it fails
            float scale = dtype.isQuantized() ? KvScales.fromAbsMax(dtype.format(), 1f) : 0f;
            KvScales scales = dtype.isQuantized() ? KvScales.perTensor(dtype.format(), 1, new float[] {scale}, new float[] {scale}) : null;
            DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(batch, minLen, maxLen, seed), qHeads, 1, d, blockSize,
                    dtype, seed, 0L, 1, 0, scales, KvCacheConfig.MAX_POOL_ELEMENTS, latentDim);
            if (window != DecodeBatch.NO_WINDOW) {
                w = w.windowed(window);
            }
            return extras ? w.withSinks(DecodeWorkload.randomSinks(1, qHeads, 1, seed)).withSoftCap(0.5f)
                    .withAlibi(AlibiSlopes.standard(qHeads)) : w;
        }
    }

    static Stream<Shape> shapes() {
        int none = DecodeBatch.NO_WINDOW;
        return Stream.of(
                new Shape("DeepSeek-V2-Lite's 16 heads", 3, 1, 140, 16, 512, 64, 16, KvDtype.FP16, none, false),
                new Shape("DeepSeek-V3's 128 heads, block 64", 2, 30, 90, 128, 512, 64, 64, KvDtype.FP16, none, false),
                new Shape("fp32, 3 heads (a part-empty tile)", 4, 1, 70, 3, 512, 64, 8, KvDtype.FP32, none, false),
                new Shape("value width 96 (dims without work)", 3, 5, 60, 10, 96, 32, 7, KvDtype.FP16, none, false),
                new Shape("block size 1, rows shorter than a chunk", 5, 1, 6, 9, 64, 16, 1, KvDtype.FP32, none, false),
                new Shape("window 37 across blocks of 16", 3, 20, 150, 16, 512, 64, 16, KvDtype.FP16, 37, true),
                new Shape("sinks, cap and ALiBi", 2, 1, 80, 12, 128, 64, 32, KvDtype.FP32, none, true),
                new Shape("FP8 E4M3, 16 heads", 3, 1, 100, 16, 512, 64, 16, KvDtype.FP8_E4M3, none, false),
                new Shape("FP8 E5M2, window 29 with sinks, cap and ALiBi", 2, 10, 90, 5, 96, 32, 8, KvDtype.FP8_E5M2, 29, true),
                new Shape("INT8, block size 1", 4, 1, 9, 8, 64, 16, 1, KvDtype.INT8, none, false));
    }

    /** A fused grid, and split grids in partitions of 16 and 40 tokens where the rows are long enough. */
    static List<DecodeGrid> grids(DecodeWorkload w) {
        AttentionSpec spec = w.spec();
        DecodeBatch b = w.batch();
        int span = Arrays.stream(DecodeGrid.spans(b)).max().orElse(1);
        return Stream.of(
                DecodeGrid.plan(spec, b.numSeqs(), span, false, DecodeGrid.TARGET_GROUPS, 512, DecodeGrid.Kernel.LATENT),
                DecodeGrid.plan(spec, b.numSeqs(), span, true, 100_000, 16, DecodeGrid.Kernel.LATENT),
                DecodeGrid.plan(spec, b.numSeqs(), span, true, 100_000, 40, DecodeGrid.Kernel.LATENT)).distinct().toList();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void latentKernelMatchesReference(Shape shape) {
        long seed = TestSeeds.fresh("LatentDecodeKernelsTest " + shape);
        DecodeWorkload w = shape.workload(seed);
        int rows = w.batch().numSeqs() * w.spec().numQHeads();
        double[] refLse = new double[rows];
        double[] ref = ReferenceAttention.decode(w.cache(), w.spec(), 0, w.seqs(), w.q(), w.batch().window(), refLse);
        assertEquals(rows * shape.latentDim(), ref.length, "the reference's rows are the value width");
        for (DecodeGrid grid : grids(w)) {
            assertEquals(DecodeGrid.Kernel.LATENT, grid.kernel());
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                double rel = ReferenceAttention.relativeL2(EmulatedDecode.latent(w, grid, s, null), ref);
                assertTrue(rel < TOLERANCE, grid + " " + s + ": relative L2 error " + rel + " seed=" + seed);
                FloatArray lse = new FloatArray(rows);
                lse.init(Float.NaN);
                rel = ReferenceAttention.relativeL2(EmulatedDecode.latent(w, grid, s, lse), ref);
                assertTrue(rel < TOLERANCE, grid + " " + s + " with lse: relative L2 error " + rel + " seed=" + seed);
                for (int i = 0; i < rows; i++) {
                    double err = Math.abs(lse.get(i) - refLse[i]);
                    assertTrue(err <= LSE_TOLERANCE * Math.max(1, Math.abs(refLse[i])),
                            grid + " " + s + ": lse[" + i + "] " + lse.get(i) + " against " + refLse[i] + " seed=" + seed);
                }
            }
        }
    }

    @Test
    void aLatentCacheRunsTheLatentKernelOnEveryBackendAndNoOtherCacheDoes() {
        AttentionSpec latent = AttentionSpec.of(KvCacheConfig.latent(8, 16, 512, 64, KvDtype.FP16, 1), 16);
        AttentionSpec kv = AttentionSpec.of(new KvCacheConfig(8, 16, 2, 128, KvDtype.FP16, 1), 8);
        for (Backend backend : Backend.values()) {
            assertEquals(DecodeGrid.Kernel.LATENT, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, latent, backend, KvDtype.FP16, true));
            assertTrue(DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, kv, backend, KvDtype.FP16, false) != DecodeGrid.Kernel.LATENT);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.CHUNK, latent, Backend.CUDA, KvDtype.FP16, true));
        assertTrue(e.getMessage().startsWith("pagedattn.tornado.kernel=chunk"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.LATENT, kv, Backend.CUDA, KvDtype.FP16, false));
        assertTrue(e.getMessage().startsWith("pagedattn.tornado.kernel=latent"), e.getMessage());
        AttentionSpec wide = AttentionSpec.of(KvCacheConfig.latent(8, 16, 640, 64, KvDtype.FP16, 1), 16);
        e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, wide, Backend.CUDA, KvDtype.FP16, true));
        assertTrue(e.getMessage().startsWith("headDim=704 valueDim=640"), e.getMessage());
        // 128 heads: sixteen tiles of eight per (sequence, partition)
        DecodeGrid grid = DecodeGrid.plan(AttentionSpec.of(KvCacheConfig.latent(8, 16, 512, 64, KvDtype.FP16, 1), 128), 2, 100,
                false, DecodeGrid.TARGET_GROUPS, 512, DecodeGrid.Kernel.LATENT);
        assertEquals(16, grid.headTiles());
        assertEquals(2 * 16, grid.numGroups());
        assertEquals(LatentDecodeKernels.LOCAL, grid.localSize());
        // a split step fills the card with its own rule: 8 x 8k at 16 heads (16 work-groups a partition) in 33 partitions
        // of 249 tokens, 528 work-groups (one wave of 132 SMs x 4); at 128 heads (128 a partition) in 4 of 2048, 512
        DecodeGrid split = DecodeGrid.plan(latent, 8, 8192, true, DecodeGrid.Kernel.LATENT, KvDtype.FP16);
        assertEquals(528, DecodeGrid.LATENT_TARGET_GROUPS);
        assertEquals(249, split.partitionTokens());
        assertEquals(8 * 2 * 33, split.numGroups());
        split = DecodeGrid.plan(AttentionSpec.of(KvCacheConfig.latent(8, 16, 512, 64, KvDtype.FP16, 1), 128), 8, 8192, true,
                DecodeGrid.Kernel.LATENT, KvDtype.FP16);
        assertEquals(2048, split.partitionTokens());
        assertEquals(8 * 16 * 4, split.numGroups());
        // a short context is cut no finer than the smallest partition: 1 x 1k at 16 heads, 8 partitions of 128
        split = DecodeGrid.plan(latent, 1, 1024, true, DecodeGrid.Kernel.LATENT, KvDtype.FP16);
        assertEquals(DecodeGrid.LATENT_MIN_PARTITION_TOKENS, split.partitionTokens());
        assertEquals(2 * 8, split.numGroups());
    }
}
