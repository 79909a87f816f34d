package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import dev.pagedattn.tornado.VSums;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Every GPU kernel variant, run on the JVM by the emulator, against the fp64 reference.
 *
 * <p>Table-driven: each {@link Shape} row runs every kernel of {@link DecodeGrid.Kernel} that can
 * take it (fused and split-K into two partitions, each in both emulator schedules) plus the
 * {@code @Parallel} variant. The emulator runs a virtual thread per
 * work-item and passes a baton at every barrier and warp operation, so rows are kept small (tens
 * of tokens, one or two KV heads and sequences: a few work-groups); together they cover
 * every kernel x dtype x fused/split x schedule (8-bit dtypes: the warp and quad kernels' twins,
 * per-head scales), block sizes 1, odd and 16, head dims 8 to 256
 * including ones whose headDim / 8 is not a power of two (24, 40, 48, 80, 96, 112: the warp kernel's idle lanes),
 * MHA, GQA, MQA and a group above 8 heads (two head tiles). A new
 * kernel joins {@link DecodeGrid.Kernel} and {@link EmulatedDecode}; a new shape is one more row.
 * Replay a failure with {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class KernelVariantsTest {
    private static final double TOLERANCE = 1e-5;

    /** One decode problem: {@code batch} sequences of lengths in {@code [minLen, maxLen]}; {@code covers} says why it is here. */
    record Shape(String covers, int batch, int minLen, int maxLen, int qHeads, int kvHeads, int headDim, int blockSize,
                 KvDtype dtype) {
        @Override
        public String toString() {
            return String.format("%s: batch=%d ctx=%d..%d q=%d kv=%d d=%d bs=%d %s", covers, batch, minLen, maxLen, qHeads,
                    kvHeads, headDim, blockSize, dtype);
        }
    }

    static Stream<Shape> shapes() {
        return Stream.of(
                new Shape("GQA fp16, ragged, block size 16", 2, 5, 40, 8, 2, 32, 16, KvDtype.FP16),
                new Shape("MQA fp32, odd block size", 1, 20, 40, 4, 1, 16, 3, KvDtype.FP32),
                new Shape("MQA fp16, head dim 80 (warp kernel: 10 of 16 lanes hold dims), block size 1", 1, 9, 20, 8, 1, 80, 1, KvDtype.FP16),
                new Shape("Phi-3-mini MHA fp16, head dim 96 (12 of 16 lanes), block size 7", 2, 5, 30, 2, 2, 96, 7, KvDtype.FP16),
                new Shape("group of 6 fp32, head dim 48 (two quads of 6 of 8 lanes), block size 16", 1, 20, 40, 6, 1, 48, 16, KvDtype.FP32),
                new Shape("group of 4 fp16, head dim 112 (14 of 16 lanes), ragged, block size 17", 2, 3, 40, 8, 2, 112, 17, KvDtype.FP16),
                new Shape("group of 3 fp32, head dim 24 (3 of 4 lanes), block size 5", 1, 10, 30, 3, 1, 24, 5, KvDtype.FP32),
                new Shape("8-bit E4M3, group of 4, head dim 40 (5 of 8 lanes), block size 16", 2, 5, 30, 4, 1, 40, 16, KvDtype.FP8_E4M3),
                new Shape("two head tiles (group of 12) fp32", 1, 5, 20, 12, 1, 8, 16, KvDtype.FP32),
                new Shape("head dim 256 fp16, group of 2", 1, 9, 20, 2, 1, 256, 16, KvDtype.FP16),
                new Shape("Llama-3 group of 4, head dim 128 fp16 (stream kernel), block size 7", 2, 5, 40, 8, 2, 128, 7, KvDtype.FP16),
                new Shape("Llama-3.2-1B group of 4, head dim 64 fp16 (stream kernel D64), block size 17", 2, 5, 40, 8, 2, 64, 17, KvDtype.FP16),
                new Shape("MHA fp32, one token", 1, 1, 1, 2, 2, 8, 16, KvDtype.FP32),
                new Shape("8-bit E4M3, GQA, ragged, block size 16", 2, 5, 40, 8, 2, 32, 16, KvDtype.FP8_E4M3),
                new Shape("8-bit E5M2, MQA, odd block size, head dim 64", 1, 9, 30, 4, 1, 64, 3, KvDtype.FP8_E5M2),
                new Shape("8-bit INT8, MHA, block size 1, head dim 8", 1, 5, 20, 2, 2, 8, 1, KvDtype.INT8),
                new Shape("8-bit E4M3, group of 8, head dim 128", 1, 5, 20, 8, 1, 128, 16, KvDtype.FP8_E4M3),
                new Shape("8-bit INT8, head dim 80 (warp twin: 10 of 16 lanes), block size 5", 2, 3, 25, 6, 2, 80, 5, KvDtype.INT8),
                new Shape("8-bit E5M2, Llama-3 group of 4, head dim 128 (stream twin), block size 7", 2, 5, 40, 8, 2, 128, 7, KvDtype.FP8_E5M2),
                new Shape("8-bit INT8, group of 2, head dim 128 (stream twin), block size 32", 1, 30, 70, 4, 2, 128, 32, KvDtype.INT8));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void everyVariantMatchesReference(Shape shape) {
        long seed = TestSeeds.fresh("KernelVariantsTest " + shape);
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(shape.batch(), shape.minLen(), shape.maxLen(), seed),
                shape.qHeads(), shape.kvHeads(), shape.headDim(), shape.blockSize(), shape.dtype(), seed, 0, 1, 0,
                TestScales.perHead(shape.dtype(), shape.kvHeads(), seed)); // 8-bit: per-head scales
        double[] ref = w.reference(); // 8-bit: on the dequantised values, exactly
        for (DecodeGrid grid : grids(w)) {
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                FloatArray out = EmulatedDecode.attention(w, grid, s);
                check(grid + " " + s, ref, out);
                if (s == KernelEmulator.Schedule.FORWARD) {
                    // tables and lengths inside params (a packed plan): the same arithmetic, so the same bits
                    assertArrayEquals(out.toHeapArray(), EmulatedDecode.attention(w, grid, s, false, VSums.FP32, true).toHeapArray(),
                            grid + " packed inputs");
                }
            }
        }
        if (!shape.dtype().isQuantized()) {
            FloatArray out = EmulatedDecode.parallel(w);
            check("parallel", ref, out);
            assertArrayEquals(out.toHeapArray(), EmulatedDecode.parallel(w, true).toHeapArray(), "parallel, packed inputs");
        }
    }

    /**
     * Fused, and split into two partitions (the boundary falls inside a block where the block size
     * allows), for every kernel that takes the shape; a one-token context has no split. A windowed workload's grids are
     * planned on the tokens its sequences are walked over ({@link DecodeGrid#spans}), as a plan's are.
     */
    static Set<DecodeGrid> grids(DecodeWorkload w) {
        int numSeqs = w.batch().numSeqs();
        int maxLen = java.util.Arrays.stream(DecodeGrid.spans(w.batch())).max().orElseThrow(); // a window's: its walked tokens
        Set<DecodeGrid> grids = new LinkedHashSet<>();
        for (DecodeGrid.Kernel kernel : DecodeGrid.Kernel.values()) {
            if (kernel == DecodeGrid.Kernel.AUTO || kernel == DecodeGrid.Kernel.LATENT // latent caches: LatentDecodeKernelsTest
                    || w.cache().config().dtype().isQuantized() && (kernel == DecodeGrid.Kernel.CHUNK || kernel == DecodeGrid.Kernel.PAIRS)
                    || kernel == DecodeGrid.Kernel.WARP && !WarpQuadDecodeKernels.supports(w.spec().groupSize(), w.spec().headDim())
                    || kernel == DecodeGrid.Kernel.CHUNK && !ChunkDecodeKernels.supports(w.spec().groupSize(), w.spec().headDim())
                    || kernel == DecodeGrid.Kernel.STREAM && !(w.cache().config().dtype().isQuantized()
                            ? StreamDecodeKernels.supportsEightBit(w.spec().groupSize(), w.spec().headDim())
                            : w.cache().config().dtype() == KvDtype.FP16 && StreamDecodeKernels.supports(w.spec().groupSize(), w.spec().headDim()))) {
                continue;
            }
            KvDtype dtype = w.cache().config().dtype();
            grids.add(DecodeGrid.plan(w.spec(), numSeqs, maxLen, false, 528, 256, kernel));
            grids.add(DecodeGrid.plan(w.spec(), numSeqs, maxLen, true, 1 << 20, Math.max(1, maxLen / 2), kernel));
        }
        return grids;
    }

    private static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < TOLERANCE, what + ": relative L2 error " + rel);
    }
}
