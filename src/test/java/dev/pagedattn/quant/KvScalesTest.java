package dev.pagedattn.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class KvScalesTest {

    /** Random K or V of one layer: {@code [numTokens][numKvHeads][headDim]}, each head with its own magnitude. */
    private static float[] tokens(SplittableRandom random, int numTokens, int numKvHeads, int headDim, double[] headMagnitude) {
        float[] t = new float[numTokens * numKvHeads * headDim];
        for (int i = 0; i < t.length; i++) {
            int head = i / headDim % numKvHeads;
            double outlier = random.nextInt(64) == 0 ? 20 : 1;
            t[i] = (float) (random.nextGaussian() * headMagnitude[head] * outlier);
        }
        return t;
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void calibratedScalesAreAbsMaxOverFormatMaxPerHeadAndPerTensor(QuantFormat format) {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("calibratedScales " + format));
        int numLayers = 1 + random.nextInt(3);
        int numKvHeads = 1 + random.nextInt(4);
        int headDim = 8 * (1 + random.nextInt(4));
        ScaleCalibrator calibrator = new ScaleCalibrator(format, numLayers, numKvHeads, headDim);
        double[][] kMax = new double[numLayers][numKvHeads]; // the reference, in fp64
        double[][] vMax = new double[numLayers][numKvHeads];
        for (int batch = 0; batch < 3; batch++) {
            for (int layer = 0; layer < numLayers; layer++) {
                double[] magnitudes = random.doubles(numKvHeads, 1e-3, 1e3).toArray();
                int numTokens = 1 + random.nextInt(5);
                float[] k = tokens(random, numTokens, numKvHeads, headDim, magnitudes);
                float[] v = tokens(random, numTokens, numKvHeads, headDim, magnitudes);
                calibrator.observe(layer, k, v);
                for (int i = 0; i < k.length; i++) {
                    int head = i / headDim % numKvHeads;
                    kMax[layer][head] = Math.max(kMax[layer][head], Math.abs(k[i]));
                    vMax[layer][head] = Math.max(vMax[layer][head], Math.abs(v[i]));
                }
            }
        }
        KvScales perHead = calibrator.scales(KvScaleMode.PER_HEAD);
        KvScales perTensor = calibrator.scales(KvScaleMode.PER_TENSOR);
        assertEquals(KvScaleMode.PER_HEAD, perHead.mode());
        assertEquals(format, perTensor.format());
        for (int layer = 0; layer < numLayers; layer++) {
            double kLayer = 0;
            double vLayer = 0;
            for (int head = 0; head < numKvHeads; head++) {
                assertEquals((float) (kMax[layer][head] / format.maxFinite()), perHead.k(layer, head), 1e-6 * perHead.k(layer, head));
                assertEquals((float) (vMax[layer][head] / format.maxFinite()), perHead.v(layer, head), 1e-6 * perHead.v(layer, head));
                kLayer = Math.max(kLayer, kMax[layer][head]);
                vLayer = Math.max(vLayer, vMax[layer][head]);
            }
            for (int head = 0; head < numKvHeads; head++) {
                assertEquals((float) (kLayer / format.maxFinite()), perTensor.k(layer, head), 1e-6 * perTensor.k(layer, head));
                assertEquals((float) (vLayer / format.maxFinite()), perTensor.v(layer, head), 1e-6 * perTensor.v(layer, head));
                assertEquals(perTensor.k(layer, 0), perTensor.k(layer, head), "per tensor: one scale for every head");
            }
        }
        float[] expanded = perTensor.kPerHead();
        assertEquals(numLayers * numKvHeads, expanded.length);
        for (int i = 0; i < expanded.length; i++) {
            assertEquals(perTensor.k(i / numKvHeads, i % numKvHeads), expanded[i]);
            assertEquals(perHead.v(i / numKvHeads, i % numKvHeads), perHead.vPerHead()[i]);
        }
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void theLargestCalibrationValueIsStoredAsMaxAndNothingSaturates(QuantFormat format) {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("largestCalibrationValue " + format));
        int numKvHeads = 4;
        int headDim = 64;
        float[] k = tokens(random, 16, numKvHeads, headDim, new double[] {1e-4, 1, 30, 5e4});
        float[] v = tokens(random, 16, numKvHeads, headDim, new double[] {2, 2, 2, 2});
        ScaleCalibrator calibrator = new ScaleCalibrator(format, 1, numKvHeads, headDim);
        calibrator.observe(0, k, v);
        for (KvScaleMode mode : KvScaleMode.values()) {
            KvScales scales = calibrator.scales(mode);
            byte[] codes = new byte[headDim];
            int numAtMax = 0;
            for (int at = 0; at < k.length; at += headDim) {
                int head = at / headDim % numKvHeads;
                float scale = scales.k(0, head);
                format.quantize(k, at, headDim, scale, codes, 0);
                for (int d = 0; d < headDim; d++) {
                    assertTrue(Math.abs(k[at + d] / scale) <= format.maxFinite() * (1 + 0x1p-21),
                            mode + " k[" + (at + d) + "]=" + k[at + d] + " would saturate");
                    numAtMax += Math.abs(format.decode(codes[d])) == format.maxFinite() ? 1 : 0;
                }
            }
            assertTrue(numAtMax >= (mode == KvScaleMode.PER_HEAD ? numKvHeads : 1), mode + ": the absmax maps to max");
        }
    }

    @Test
    void unseenOrZeroTensorsGetScaleOne() {
        ScaleCalibrator calibrator = new ScaleCalibrator(QuantFormat.FP8_E4M3, 2, 2, 8);
        float[] k = new float[2 * 8];
        k[9] = -44.8f;                                     // layer 0, head 1
        calibrator.observe(0, k, new float[16]);
        KvScales s = calibrator.scales(KvScaleMode.PER_HEAD);
        assertEquals(1f, s.k(0, 0));
        assertEquals(0.1f, s.k(0, 1), 1e-7f);
        assertEquals(1f, s.v(0, 1));
        assertEquals(1f, s.k(1, 1), "layer 1 was never observed");
        KvScales unit = KvScales.unit(QuantFormat.INT8, 3, 2);
        assertEquals(KvScaleMode.PER_TENSOR, unit.mode());
        assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1}, unit.vPerHead());
        assertEquals(Float.MIN_NORMAL, KvScales.fromAbsMax(QuantFormat.FP8_E4M3, Float.MIN_VALUE));
    }

    @Test
    void givenScalesAreCheckedAndCopied() {
        float[] k = {0.5f, 2f};
        KvScales s = KvScales.perTensor(QuantFormat.FP8_E5M2, 8, k, new float[] {1f, 3f});
        k[0] = 7f;
        assertEquals(0.5f, s.k(0, 7), "the caller's array is copied");
        assertEquals(3f, s.v(1, 0));
        assertEquals(2, s.numLayers());
        assertEquals(8, s.numKvHeads());

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KvScales.perTensor(QuantFormat.FP8_E4M3, 8, new float[] {1f, 0f}, new float[] {1f, 1f}));
        assertTrue(e.getMessage().startsWith("k[layer=1]=0.0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> KvScales.perHead(QuantFormat.FP8_E4M3,
                new float[][] {{1f, 1f}, {1f, 1f}}, new float[][] {{1f, 1f}, {1f, Float.NaN}}));
        assertTrue(e.getMessage().startsWith("v[layer=1][kvHead=1]=NaN"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> KvScales.perHead(QuantFormat.FP8_E4M3,
                new float[][] {{1f, 1f}, {1f}}, new float[][] {{1f, 1f}, {1f, 1f}}));
        assertTrue(e.getMessage().startsWith("k[1].length=1 must be numKvHeads=2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> KvScales.perTensor(QuantFormat.FP8_E4M3, 8, new float[] {1f}, new float[] {1f, 1f}));
        assertTrue(e.getMessage().startsWith("k.length=1 v.length=2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> s.k(2, 0));
        assertTrue(e.getMessage().startsWith("layer=2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> s.v(0, 8));
        assertTrue(e.getMessage().startsWith("kvHead=8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> KvScales.unit(QuantFormat.INT8, 0, 1));
        assertTrue(e.getMessage().startsWith("numLayers=0"), e.getMessage());
    }

    @Test
    void calibrationRefusesNonFiniteDataAndBadShapesWithoutTakingAnything() {
        ScaleCalibrator calibrator = new ScaleCalibrator(QuantFormat.FP8_E4M3, 2, 2, 4);
        float[] k = new float[8];
        float[] v = new float[8];
        k[3] = 448f;
        v[6] = Float.NEGATIVE_INFINITY;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> calibrator.observe(0, k, v));
        assertTrue(e.getMessage().startsWith("v[6]=-Infinity"), e.getMessage());
        assertEquals(1f, calibrator.scales(KvScaleMode.PER_HEAD).k(0, 0), "k was not taken either");
        e = assertThrows(IllegalArgumentException.class, () -> calibrator.observe(2, k, k));
        assertTrue(e.getMessage().startsWith("layer=2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> calibrator.observe(0, new float[7], new float[7]));
        assertTrue(e.getMessage().contains("k.length=7"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new ScaleCalibrator(QuantFormat.INT8, 1, 1, 0));
        assertTrue(e.getMessage().startsWith("headDim=0"), e.getMessage());
    }
}
