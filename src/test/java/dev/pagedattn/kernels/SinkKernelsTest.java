package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSinks;
import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Attention sinks ({@link AttentionSinks}, gpt-oss) through every GPU decode kernel variant and the merge, run by the
 * emulator as a plan of a layer with sinks runs them (the sinks after the partial rows; a fused step's kernel adds each
 * head's sink to its denominator, a split step's merge to the row's state), against the fp64
 * reference with the same sinks: fused and split grids, the stream kernels' balanced grid, both schedules, with and
 * without a sliding window, and layers split into KV-head shards (each shard's merge gets its own query heads' sinks).
 * The sinks must change the result (a kernel that drops them fails), and a sink far below every score must give the
 * result without sinks. Replay a failure with {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class SinkKernelsTest {
    private static final double TOLERANCE = 1e-5;

    record Shape(String covers, int batch, int minLen, int maxLen, int qHeads, int kvHeads, int headDim, int blockSize,
                 KvDtype dtype, int window, int headsPerArray) {
        @Override
        public String toString() {
            return String.format("%s: batch=%d ctx=%d..%d q=%d kv=%d d=%d bs=%d %s%s%s", covers, batch, minLen, maxLen, qHeads,
                    kvHeads, headDim, blockSize, dtype, window == DecodeBatch.NO_WINDOW ? "" : " window=" + window,
                    headsPerArray == 0 ? "" : " " + headsPerArray + " KV heads per array");
        }

        /** The shape's random workload for {@code seed} (its window applied, its layer split as {@code headsPerArray} says). */
        DecodeWorkload workload(long seed) {
            int[] lengths = DecodeWorkload.lengths(batch, minLen, maxLen, seed);
            int maxPoolElements = headsPerArray == 0 ? dev.pagedattn.cache.KvCacheConfig.MAX_POOL_ELEMENTS
                    : ShardedLayerTest.arrayOf(lengths, qHeads, kvHeads, headDim, blockSize, dtype, headsPerArray);
            DecodeWorkload w = DecodeWorkload.create(lengths, qHeads, kvHeads, headDim, blockSize, dtype, seed, 0L, 1, 0,
                    TestScales.perHead(dtype, kvHeads, seed), maxPoolElements);
            return window == DecodeBatch.NO_WINDOW ? w : w.windowed(window);
        }
    }

    static Stream<Shape> shapes() {
        int none = DecodeBatch.NO_WINDOW;
        return Stream.of(
                new Shape("GQA fp16, head dim 32", 2, 5, 60, 8, 2, 32, 16, KvDtype.FP16, none, 0),
                new Shape("stream fp16, head dim 128, block size 7, window 17", 2, 20, 70, 8, 2, 128, 7, KvDtype.FP16, 17, 0),
                new Shape("gpt-oss heads (64 / 8, head dim 64), window 9", 2, 1, 40, 64, 8, 64, 16, KvDtype.FP16, 9, 0),
                new Shape("8-bit E4M3, group of 8 (stream G8 twin)", 1, 30, 60, 8, 1, 128, 16, KvDtype.FP8_E4M3, none, 0),
                new Shape("8-bit INT8, group of 2, block size 32, window 33", 2, 40, 90, 4, 2, 128, 32, KvDtype.INT8, 33, 0),
                new Shape("fp32, two head tiles (group of 12)", 1, 10, 30, 12, 1, 8, 16, KvDtype.FP32, none, 0),
                new Shape("fp16 in 2 KV-head shards", 3, 1, 90, 32, 8, 128, 16, KvDtype.FP16, none, 4),
                new Shape("8-bit E5M2 in 4 KV-head shards, head dim 64", 2, 10, 50, 16, 8, 64, 7, KvDtype.FP8_E5M2, 12, 2));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void everyVariantAddsTheSinks(Shape shape) {
        long seed = TestSeeds.fresh("SinkKernelsTest " + shape);
        DecodeWorkload plain = shape.workload(seed);
        DecodeWorkload w = plain.withSinks(DecodeWorkload.randomSinks(1, shape.qHeads(), 1, seed));
        double[] ref = w.reference();
        double moved = ReferenceAttention.relativeL2(plain.reference(), ref);
        assertTrue(moved > 1000 * TOLERANCE, "the sinks must matter to the test: they move the result by " + moved);
        checkEveryVariant(w, ref, "seed=" + seed);
        // a sink far below every score takes nothing: the result without sinks
        float[] low = new float[shape.qHeads()];
        java.util.Arrays.fill(low, -1000f);
        DecodeWorkload silent = plain.withSinks(AttentionSinks.of(new float[][] {low}));
        DecodeGrid first = grids(silent).get(0);
        check(first + " sinks of -1000 seed=" + seed, plain.reference(), EmulatedDecode.attention(silent, first,
                KernelEmulator.Schedule.FORWARD));
    }

    /**
     * {@code w} through every kernel's fused and split grids ({@link #grids}) in both emulator schedules and, where the
     * stream kernels take its fp16 shape, their balanced grid, each against {@code want} ({@code what} names the case).
     */
    static void checkEveryVariant(DecodeWorkload w, double[] want, String what) {
        for (DecodeGrid grid : grids(w)) {
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                check(grid + " " + s + " " + what, want, EmulatedDecode.attention(w, grid, s));
            }
        }
        AttentionSpec shard = w.spec().shard(w.cache().config().poolShards());
        if (w.cache().config().dtype() == KvDtype.FP16 && StreamDecodeKernels.supports(shard.groupSize(), shard.headDim())) {
            DecodeGrid balanced = DecodeGrid.balanced(shard, w.batch(), 1 << 20, 2 * StreamDecodeKernels.TILE);
            assertTrue(balanced.balanced(), "the test wants a balanced grid: " + balanced);
            check(balanced + " balanced " + what, want, EmulatedDecode.attention(w, balanced, KernelEmulator.Schedule.FORWARD));
        }
    }

    /** Every kernel's fused and split grids for the workload's (shard) spec. */
    static List<DecodeGrid> grids(DecodeWorkload w) {
        int shards = w.cache().config().poolShards();
        if (shards == 1) {
            return new ArrayList<>(KernelVariantsTest.grids(w));
        }
        AttentionSpec shard = w.spec().shard(shards);
        KvDtype dtype = w.cache().config().dtype();
        int n = w.batch().numSeqs();
        int longest = java.util.Arrays.stream(DecodeGrid.spans(w.batch())).max().orElseThrow();
        List<DecodeGrid.Kernel> kernels = new ArrayList<>(List.of(DecodeGrid.Kernel.QUADS));
        if (WarpQuadDecodeKernels.supports(shard.groupSize(), shard.headDim())) {
            kernels.add(DecodeGrid.Kernel.WARP);
        }
        if (dtype.isQuantized() ? StreamDecodeKernels.supportsEightBit(shard.groupSize(), shard.headDim())
                : dtype == KvDtype.FP16 && StreamDecodeKernels.supports(shard.groupSize(), shard.headDim())) {
            kernels.add(DecodeGrid.Kernel.STREAM);
        }
        List<DecodeGrid> grids = new ArrayList<>();
        for (DecodeGrid.Kernel kernel : kernels) {
            grids.add(DecodeGrid.plan(shard, n, longest, false, 528, 256, kernel));
            grids.add(DecodeGrid.plan(shard, n, longest, true, 1 << 20, Math.max(1, longest / 2), kernel));
        }
        return grids;
    }

    static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < TOLERANCE, what + ": relative L2 error " + rel);
    }
}
