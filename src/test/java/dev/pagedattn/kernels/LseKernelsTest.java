package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Log-sum-exp outputs of the GPU decode kernels ({@code TornadoDecodeAttention.decode(..., lse)}), run by the emulator as
 * a plan's step with an {@code lse} array runs them: split even over one partition, the merge writing each row's
 * {@code max + ln(sum)} after the shard's output rows ({@link DecodeParams#LSE}). Every kernel variant on its fused and
 * split grids, both merges (one per schedule), against the fp64 reference's output and lse: sinks (which the lse
 * includes), sliding windows, chunks, soft caps, ALiBi and layers split into KV-head shards (each shard's heads land in
 * their own columns). Replay a failure with {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class LseKernelsTest {
    private static final double TOLERANCE = 1e-5;
    private static final double LSE_TOLERANCE = 2e-5; // relative to max(1, |lse|): fp32 sums of up to ~100 terms

    record Shape(String covers, int batch, int minLen, int maxLen, int qHeads, int kvHeads, int headDim, int blockSize,
                 KvDtype dtype, int window, int headsPerArray, boolean sinks, boolean capAndAlibi) {
        @Override
        public String toString() {
            return String.format("%s: batch=%d ctx=%d..%d q=%d kv=%d d=%d bs=%d %s %s%s%s%s", covers, batch, minLen, maxLen, qHeads,
                    kvHeads, headDim, blockSize, dtype, AttentionWindow.describe(window),
                    headsPerArray == 0 ? "" : " " + headsPerArray + " KV heads per array", sinks ? " sinks" : "",
                    capAndAlibi ? " cap+ALiBi" : "");
        }

        DecodeWorkload workload(long seed) {
            int[] lengths = DecodeWorkload.lengths(batch, minLen, maxLen, seed);
            int maxPoolElements = headsPerArray == 0 ? KvCacheConfig.MAX_POOL_ELEMENTS
                    : ShardedLayerTest.arrayOf(lengths, qHeads, kvHeads, headDim, blockSize, dtype, headsPerArray);
            DecodeWorkload w = DecodeWorkload.create(lengths, qHeads, kvHeads, headDim, blockSize, dtype, seed, 0L, 1, 0,
                    TestScales.perHead(dtype, kvHeads, seed), maxPoolElements);
            if (window != DecodeBatch.NO_WINDOW) {
                w = w.windowed(window);
            }
            if (sinks) {
                w = w.withSinks(DecodeWorkload.randomSinks(1, qHeads, 1, seed));
            }
            return capAndAlibi ? w.withSoftCap(0.5f).withAlibi(AlibiSlopes.standard(qHeads)) : w;
        }
    }

    static Stream<Shape> shapes() {
        int none = DecodeBatch.NO_WINDOW;
        return Stream.of(
                new Shape("GQA fp16, head dim 32", 3, 1, 60, 8, 2, 32, 16, KvDtype.FP16, none, 0, false, false),
                new Shape("stream fp16, head dim 128, window 17, sinks", 2, 20, 70, 8, 2, 128, 7, KvDtype.FP16, 17, 0, true, false),
                new Shape("fp32 MQA, chunks of 24, cap and ALiBi", 2, 10, 80, 4, 1, 16, 3, KvDtype.FP32, AttentionWindow.chunked(24), 0,
                        false, true),
                new Shape("8-bit E4M3, group of 8 (stream G8 twin), sinks", 1, 30, 60, 8, 1, 128, 16, KvDtype.FP8_E4M3, none, 0, true,
                        false),
                new Shape("8-bit INT8, group of 2, block size 32, window 33", 2, 40, 90, 4, 2, 128, 32, KvDtype.INT8, 33, 0, false,
                        false),
                new Shape("fp16 in 2 KV-head shards, sinks", 3, 1, 90, 16, 4, 64, 16, KvDtype.FP16, none, 2, true, false));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void everyVariantWritesTheRowsLogSumExp(Shape shape) {
        long seed = TestSeeds.fresh("LseKernelsTest " + shape);
        DecodeWorkload w = shape.workload(seed);
        int rows = w.batch().numSeqs() * shape.qHeads();
        double[] refLse = new double[rows];
        double[] ref = ReferenceAttention.decode(w.cache(), w.spec(), 0, w.seqs(), w.q(), w.batch().window(), refLse);
        for (DecodeGrid grid : KernelVariantsTest.grids(w)) {
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                boolean mergeRows = s == KernelEmulator.Schedule.REVERSE;
                String what = "seed=" + seed + " " + grid + " " + s + (mergeRows ? " mergeRows" : "");
                FloatArray lse = new FloatArray(rows);
                lse.init(Float.NaN);
                FloatArray out = EmulatedDecode.attentionLse(w, grid, s, lse, mergeRows);
                double rel = ReferenceAttention.relativeL2(out, ref);
                assertTrue(rel < TOLERANCE, what + ": relative L2 error " + rel);
                for (int i = 0; i < rows; i++) {
                    double err = Math.abs(lse.get(i) - refLse[i]);
                    assertTrue(err <= LSE_TOLERANCE * Math.max(1, Math.abs(refLse[i])),
                            what + ": lse[" + i + "]=" + lse.get(i) + " fp64 " + refLse[i]);
                }
            }
        }
    }
}
