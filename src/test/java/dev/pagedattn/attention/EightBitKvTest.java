package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.quant.KvScaleMode;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.quant.ScaleCalibrator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * 8-bit K/V through the JVM backends: (a) the kernels against the fp64 reference on the
 * dequantized values, (b) the end-to-end error of 8-bit K/V against the same K/V stored in fp16,
 * printed and bounded per format.
 */
class EightBitKvTest {
    private static final KvDtype[] EIGHT_BIT = {KvDtype.FP8_E4M3, KvDtype.FP8_E5M2, KvDtype.INT8};

    static Stream<Arguments> shapes() {
        List<Arguments> cases = new ArrayList<>();
        for (KvDtype dtype : EIGHT_BIT) {
            for (KvScaleMode mode : KvScaleMode.values()) {
                String tag = dtype + " " + mode + " ";
                cases.add(Arguments.argumentSet(tag + "ragged, block size 16, group 4, head dim 128",
                        Shape.of(new int[] {1, 15, 16, 17, 70}, 8, 2, 128, 16, dtype), mode));
                cases.add(Arguments.argumentSet(tag + "block size 1, MHA, head dim 64",
                        Shape.of(new int[] {1, 2, 37}, 3, 3, 64, 1, dtype), mode));
                cases.add(Arguments.argumentSet(tag + "block size 7, group 8, head dim 64, layer 1 of 2",
                        Shape.of(new int[] {5, 50, 13, 14}, 16, 2, 64, 7, dtype).withLayers(2, 1), mode));
            }
        }
        return cases.stream();
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void decodeMatchesTheReferenceOnTheDequantizedValues(Shape shape, KvScaleMode mode) {
        long seed = TestSeeds.fresh("decodeMatchesTheReferenceOnTheDequantizedValues " + shape + " " + mode);
        KvScales scales = TestScales.random(shape.dtype().format(), mode, shape.numLayers(), shape.numKvHeads(), new SplittableRandom(seed));
        DecodeProblem p = DecodeProblem.random(shape, seed, scales);
        Accuracy.assertClose(p.decodeJvm(), p.reference(), p.describe() + " " + mode);
    }

    @ParameterizedTest
    @EnumSource(value = KvDtype.class, names = {"FP8_E4M3", "FP8_E5M2", "INT8"})
    void prefillMatchesTheReferenceOnTheDequantizedValues(KvDtype dtype) {
        long seed = TestSeeds.fresh("prefillMatchesTheReferenceOnTheDequantizedValues " + dtype);
        PrefillWorkload w = PrefillWorkload.create(new int[] {40, 17, 5}, new int[] {20, 17, 1}, PrefillBatch.NO_WINDOW, 8, 2, 64, 7,
                dtype, seed);
        FloatArray out = w.poisonedOutput();
        try (JvmPrefillAttention attention = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
            attention.prefill(w.batch(), 0, w.q(), out);
        }
        Accuracy.assertClose(out, w.reference(), dtype + " seed=" + seed);
    }

    /**
     * Relative L2 error of the attention output with 8-bit K/V (scales calibrated on the K/V:
     * absmax / maxFinite) against the same K/V in fp16, both through the fp64 reference's inputs.
     * One batch's error has a long tail on outlier-heavy inputs (a score that a 20x outlier makes
     * dominant moves by a few percent, and the softmax follows it), so the test draws
     * {@value #TRIALS} independent batches and bounds the median, per format and input kind;
     * median and range are printed.
     */
    @Test
    void endToEndErrorAgainstFp16KvIsBoundedPerFormat() {
        long seed = TestSeeds.fresh("endToEndErrorAgainstFp16KvIsBoundedPerFormat");
        for (boolean outliers : new boolean[] {false, true}) {
            double[][][] errors = endToEndErrors(seed, outliers);
            for (KvDtype dtype : EIGHT_BIT) {
                for (KvScaleMode mode : KvScaleMode.values()) {
                    double[] trials = errors[dtype.ordinal()][mode.ordinal()].clone();
                    Arrays.sort(trials);
                    double median = trials[TRIALS / 2];
                    double bound = bound(dtype, outliers);
                    String what = String.format("%-8s %-10s %-8s", dtype, mode, outliers ? "outliers" : "uniform");
                    System.out.printf("8-bit K/V vs fp16 K/V: %s relative L2 median %.2e (%.2e..%.2e over %d batches; bound %.1e)%n",
                            what, median, trials[0], trials[TRIALS - 1], TRIALS, bound);
                    assertTrue(median <= bound, what + ": median relative L2 " + median + " > " + bound + " seed=" + seed);
                }
            }
        }
    }

    private static final int TRIALS = 5;

    /** {@code [dtype][scale mode][trial]} relative L2 errors against fp16 K/V. */
    private static double[][][] endToEndErrors(long seed, boolean outliers) {
        int[] lengths = {200, 77, 16, 1};
        int qHeads = 8;
        int kvHeads = 2;
        int headDim = 128;
        double[][][] errors = new double[KvDtype.values().length][KvScaleMode.values().length][TRIALS];
        SplittableRandom random = new SplittableRandom(seed + (outliers ? 1 : 0));
        for (int trial = 0; trial < TRIALS; trial++) {
            int width = kvHeads * headDim;
            float[][] k = new float[lengths.length][];
            float[][] v = new float[lengths.length][];
            for (int i = 0; i < lengths.length; i++) {
                k[i] = values(random, lengths[i] * width, headDim, outliers);
                v[i] = values(random, lengths[i] * width, headDim, outliers);
            }
            FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, lengths.length * qHeads * headDim));
            double[] want = decode(KvDtype.FP16, null, lengths, kvHeads, headDim, qHeads, k, v, q).reference;
            for (KvDtype dtype : EIGHT_BIT) {
                for (KvScaleMode mode : KvScaleMode.values()) {
                    ScaleCalibrator calibrator = new ScaleCalibrator(dtype.format(), 1, kvHeads, headDim);
                    for (int i = 0; i < lengths.length; i++) {
                        calibrator.observe(0, k[i], v[i]);
                    }
                    Run run = decode(dtype, calibrator.scales(mode), lengths, kvHeads, headDim, qHeads, k, v, q);
                    // outlier-heavy V reaches |out| ~ 10: the absolute bound scales with the output
                    double largest = Arrays.stream(run.reference).map(Math::abs).max().orElse(1);
                    Accuracy.assertClose(run.out, run.reference, Accuracy.REL_L2, Accuracy.MAX_ABS * Math.max(1, largest),
                            dtype + " " + mode + " trial " + trial + " seed=" + seed);
                    errors[dtype.ordinal()][mode.ordinal()][trial] = ReferenceAttention.relativeL2(run.out, want);
                }
            }
        }
        return errors;
    }

    private static double bound(KvDtype dtype, boolean outliers) {
        return switch (dtype) {
            case FP8_E4M3 -> outliers ? 8e-2 : 5e-2;
            case FP8_E5M2 -> outliers ? 1.5e-1 : 1e-1;
            default -> outliers ? 7.5e-1 : 1e-2; // INT8: uniform steps, so outliers cost the rest their resolution
        };
    }

    @Test
    void theParallelDecodeVariantRefusesEightBitCachesNamingTheDtype() {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 2, 64, KvDtype.FP8_E4M3));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 4);
        IllegalArgumentException parallel = assertThrows(IllegalArgumentException.class,
                () -> new dev.pagedattn.tornado.TornadoDecodeAttention(cache, spec, null, "parallel"));
        assertTrue(parallel.getMessage().startsWith("variant=parallel") && parallel.getMessage().contains("FP8_E4M3"),
                parallel.getMessage());
    }

    @Test
    void eightBitHoldsTwiceTheTokensOfFp16InTheSameBytes() {
        long bytes = 60_000_000_000L;
        KvCacheConfig fp16 = KvCacheConfig.forMemory(bytes, 16, 8, 128, 32, KvDtype.FP16);
        for (KvDtype dtype : EIGHT_BIT) {
            KvCacheConfig eight = KvCacheConfig.forMemory(bytes, 16, 8, 128, 32, dtype);
            assertEquals(fp16.bytesPerToken() / 2, eight.bytesPerToken(), dtype.toString());
            assertEquals(64 * 1024, eight.bytesPerToken(), dtype.toString());
            assertTrue(Math.abs(eight.numTokenSlots() - 2 * fp16.numTokenSlots()) <= 16, dtype + ": " + eight.numTokenSlots()
                    + " vs 2 x " + fp16.numTokenSlots());
            assertTrue(eight.totalBytes() <= bytes);
        }
    }

    private record Run(FloatArray out, double[] reference) {
    }

    private static Run decode(KvDtype dtype, KvScales scales, int[] lengths, int kvHeads, int headDim, int qHeads,
                              float[][] k, float[][] v, FloatArray q) {
        int blocks = 0;
        for (int len : lengths) {
            blocks += (len + 15) / 16;
        }
        KvCache cache = new KvCache(KvCacheConfig.of(blocks, 16, kvHeads, headDim, dtype), scales);
        int[] seqs = new int[lengths.length];
        try {
            for (int i = 0; i < lengths.length; i++) {
                seqs[i] = cache.createSequence();
                cache.appendTokens(seqs[i], k[i], v[i]);
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError(e);
        }
        AttentionSpec spec = AttentionSpec.of(cache.config(), qHeads);
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        try (JvmDecodeAttention attention = new JvmDecodeAttention(cache, spec)) {
            attention.decode(cache.batch(seqs), 0, q, out);
        }
        return new Run(out, ReferenceAttention.decode(cache, spec, 0, seqs, q));
    }

    /**
     * {@code n} K or V elements ({@code [tokens][kvHeads][headDim]}): uniform in [-1, 1), or
     * outlier-heavy: Gaussian, one channel per head 10x larger (the outlier channels of real K),
     * and 1 in 200 elements 20x larger.
     */
    private static float[] values(SplittableRandom r, int n, int headDim, boolean outliers) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            if (!outliers) {
                a[i] = (float) (r.nextDouble() * 2 - 1);
                continue;
            }
            double x = gaussian(r);
            if (i % headDim == 5) {
                x *= 10;
            }
            if (r.nextInt(200) == 0) {
                x *= 20;
            }
            a[i] = (float) x;
        }
        return a;
    }

    private static double gaussian(SplittableRandom r) {
        return Math.sqrt(-2 * Math.log(1 - r.nextDouble())) * Math.cos(2 * Math.PI * r.nextDouble());
    }
}
