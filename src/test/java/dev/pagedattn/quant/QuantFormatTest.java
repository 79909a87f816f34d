package dev.pagedattn.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import java.math.BigDecimal;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;

class QuantFormatTest {

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void everyCodeDecodesToTheValueItsBitsSpell(QuantFormat format) {
        FormatReference spec = new FormatReference(format);
        for (int code = 0; code < 256; code++) {
            float got = format.decode(code);
            BigDecimal expected = spec.value(code);
            if (expected == null) {
                boolean inf = format == QuantFormat.FP8_E5M2 && (code & 0x7F) == 0x7C;
                assertTrue(inf ? Float.isInfinite(got) && (got < 0) == (code >= 0x80) : Float.isNaN(got),
                        format + " code=0x" + Integer.toHexString(code) + " decoded to " + got);
            } else {
                assertEquals(0, expected.compareTo(new BigDecimal(got)), format + " code=0x" + Integer.toHexString(code));
                assertEquals(got, format.decode((byte) code), "a signed byte decodes like its low 8 bits");
            }
        }
    }

    @Test
    void theFormatsHaveTheirSpecifiedExtremes() {
        assertEquals(448f, QuantFormat.FP8_E4M3.maxFinite());
        assertEquals(57344f, QuantFormat.FP8_E5M2.maxFinite());
        assertEquals(127f, QuantFormat.INT8.maxFinite());
        assertEquals(0x1p-9f, QuantFormat.FP8_E4M3.decode(0x01));
        assertEquals(0x1p-6f, QuantFormat.FP8_E4M3.decode(0x08));
        assertEquals(0x1p-16f, QuantFormat.FP8_E5M2.decode(0x01));
        assertEquals(0x1p-14f, QuantFormat.FP8_E5M2.decode(0x04));
        assertTrue(Float.isNaN(QuantFormat.FP8_E4M3.decode(0x7F)) && Float.isNaN(QuantFormat.FP8_E4M3.decode(0xFF)));
        assertEquals(-448f, QuantFormat.FP8_E4M3.decode(0xFE));
        assertEquals(Float.POSITIVE_INFINITY, QuantFormat.FP8_E5M2.decode(0x7C));
        assertEquals(-128f, QuantFormat.INT8.decode(0x80), "decodable, but never written");
        for (QuantFormat f : QuantFormat.values()) {
            assertEquals(1, f.bytes());
        }
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void everyRepresentableValueRoundTripsExactly(QuantFormat format) {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("everyRepresentableValueRoundTripsExactly " + format));
        float scale = (float) Math.exp(random.nextDouble(-12, 12));
        int n = 0;
        for (int code = 0; code < 256; code++) {
            float value = format.decode(code);
            if (!Float.isFinite(value) || format == QuantFormat.INT8 && code == 0x80) {
                continue;
            }
            assertEquals(code, format.encode(value) & 0xFF, format + " value=" + value);
            byte[] stored = new byte[1];
            format.quantize(new float[] {value * scale}, 0, 1, scale, stored, 0);
            assertEquals(code, stored[0] & 0xFF, format + " value=" + value + " scale=" + scale);
            float[] back = new float[1];
            format.dequantize(stored, 0, 1, scale, back, 0);
            assertEquals(value * scale, back[0], format + " dequantize is decode times scale");
            n++;
        }
        assertEquals(format == QuantFormat.FP8_E4M3 ? 254 : format == QuantFormat.FP8_E5M2 ? 248 : 255, n);
        assertEquals(0x81, QuantFormat.INT8.encode(-128f) & 0xFF, "INT8 is symmetric: -128 saturates to -127");
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void tiesGoToTheEvenCodeAndEverythingElseToTheNearest(QuantFormat format) {
        FormatReference spec = new FormatReference(format);
        Map.Entry<Double, Integer> lo = spec.finiteValues().ceilingEntry(0.0);
        for (Map.Entry<Double, Integer> hi = spec.finiteValues().higherEntry(lo.getKey()); hi != null;
             lo = hi, hi = spec.finiteValues().higherEntry(hi.getKey())) {
            BigDecimal exactMid = new BigDecimal(lo.getKey()).add(new BigDecimal(hi.getKey())).divide(BigDecimal.valueOf(2));
            float mid = exactMid.floatValue();
            assertEquals(0, exactMid.compareTo(new BigDecimal(mid)), "the tie is exact in fp32");
            int even = lo.getValue() % 2 == 0 ? lo.getValue() : hi.getValue();
            assertEquals((byte) even, format.encode(mid), format + " tie " + mid + " between " + lo + " and " + hi);
            byte negative = format == QuantFormat.INT8 ? (byte) -even : (byte) (even | 0x80);
            assertEquals(negative, format.encode(-mid), format + " tie " + -mid);
            assertEquals((int) lo.getValue(), format.encode(Math.nextDown(mid)), format + " just below " + mid);
            assertEquals((int) hi.getValue(), format.encode(Math.nextUp(mid)), format + " just above " + mid);
        }
        float max = format.maxFinite();
        float beyondTie = (float) (max + spec.ulp(max) / 2);
        assertEquals(format.encode(max), format.encode(beyondTie), format + ": the tie above max saturates");
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void beyondMaxSaturatesToPlusMinusMax(QuantFormat format) {
        byte max = format.encode(format.maxFinite());
        byte min = format.encode(-format.maxFinite());
        for (float x : new float[] {Math.nextUp(format.maxFinite()), format.maxFinite() * 1.07f, 1e6f, 1e30f, Float.MAX_VALUE}) {
            assertEquals(max, format.encode(x), format + " x=" + x);
            assertEquals(min, format.encode(-x), format + " x=" + -x);
        }
        byte[] out = new byte[2];
        format.quantize(new float[] {3e38f, -3e38f}, 0, 2, 1e-30f, out, 0); // the quotient overflows to inf
        assertArrayEquals(new byte[] {max, min}, out);
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void nonFiniteValuesAreRefusedByIndexAndNothingIsWritten(QuantFormat format) {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("nonFiniteValuesAreRefused " + format));
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            float[] row = new float[128];
            for (int i = 0; i < row.length; i++) {
                row[i] = (float) random.nextGaussian();
            }
            int at = random.nextInt(row.length);
            row[at] = bad;
            byte[] dst = new byte[130];
            Arrays.fill(dst, (byte) 0x55);
            ByteArray pool = new ByteArray(130);
            pool.init((byte) 0x55);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> format.quantize(row, 0, row.length, 1f, dst, 2));
            assertTrue(e.getMessage().contains("src[" + at + "]=" + bad), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> format.quantize(row, 0, row.length, 1f, pool, 1));
            for (int i = 0; i < dst.length; i++) {
                assertEquals(0x55, dst[i], "dst[" + i + "] was written");
                assertEquals(0x55, pool.get(i), "pool[" + i + "] was written");
            }
            e = assertThrows(IllegalArgumentException.class, () -> format.encode(bad));
            assertTrue(e.getMessage().contains("value=" + bad), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantFormat.requireFinite("k", new float[] {1f, 2f, Float.NaN}, 1, 2));
        assertTrue(e.getMessage().startsWith("k[2]=NaN"), e.getMessage());
    }

    @Test
    void badScalesAndRangesAreNamed() {
        QuantFormat f = QuantFormat.FP8_E4M3;
        for (float scale : new float[] {0f, -1f, Float.NaN, Float.POSITIVE_INFINITY, 1e-40f}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> f.quantize(new float[4], 0, 4, scale, new byte[4], 0));
            assertTrue(e.getMessage().startsWith("scale=" + scale), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> f.dequantize(new byte[4], 0, 4, scale, new float[4], 0));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> f.quantize(new float[8], 4, 8, 1f, new byte[8], 0));
        assertTrue(e.getMessage().contains("src offset=4 length=8") && e.getMessage().contains("src.length=8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> f.quantize(new float[8], 0, 8, 1f, new byte[8], 1));
        assertTrue(e.getMessage().contains("dst offset=1 length=8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> f.dequantize(new byte[8], 0, 8, 1f, new float[4], 0));
        assertTrue(e.getMessage().contains("dst.length=4"), e.getMessage());
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void randomRowsRoundTripWithinHalfAnUlpOfTheFormat(QuantFormat format) {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("randomRowsRoundTrip " + format));
        FormatReference spec = new FormatReference(format);
        double worstUlps = 0;
        for (int trial = 0; trial < 200; trial++) {
            int headDim = 64 << random.nextInt(3);
            float[] row = new float[headDim];
            double magnitude = Math.exp(random.nextDouble(-20, 20));
            for (int i = 0; i < headDim; i++) {
                double outlier = random.nextInt(16) == 0 ? random.nextDouble(5, 50) : 1;
                row[i] = (float) (random.nextGaussian() * magnitude * outlier);
            }
            float absMax = 0f;
            for (float x : row) {
                absMax = Math.max(absMax, Math.abs(x));
            }
            // every third row uses a scale that leaves headroom, some a scale that makes outliers saturate
            float scale = KvScales.fromAbsMax(format, absMax) * (trial % 3 == 0 ? 1f : trial % 3 == 1 ? 4f : 0.25f);
            byte[] codes = new byte[headDim + 3];
            format.quantize(row, 0, headDim, scale, codes, 3);
            float[] back = new float[headDim];
            format.dequantize(codes, 3, headDim, scale, back, 0);
            ByteArray pool = new ByteArray(headDim + 5);
            format.quantize(row, 0, headDim, scale, pool, 5);
            float[] backFromPool = new float[headDim];
            format.dequantize(pool, 5, headDim, scale, backFromPool, 0);
            assertArrayEquals(back, backFromPool, "the ByteArray path stores and reads the same");
            for (int i = 0; i < headDim; i++) {
                double y = (double) row[i] / scale;
                double err = Math.abs((double) back[i] - row[i]);
                String where = format + " trial=" + trial + " x=" + row[i] + " scale=" + scale + " got=" + back[i];
                if (Math.abs(y) > format.maxFinite() * (1 + 0x1p-20)) {
                    assertEquals(Math.copySign(format.maxFinite(), row[i]) * scale, back[i], where + ": saturated");
                    continue;
                }
                double bound = spec.ulp(y) / 2 * scale + 0x1p-22 * (Math.abs(row[i]) + Math.abs(back[i]));
                assertTrue(err <= bound, where + " err=" + err + " bound=" + bound);
                double nearest = spec.round(row[i] / scale) + (format == QuantFormat.INT8 ? 0.0 : -0.0); // INT8 has no -0
                assertEquals(nearest, format.decode(codes[3 + i]), where + ": not the nearest");
                worstUlps = Math.max(worstUlps, err / (spec.ulp(y) * scale));
            }
        }
        assertTrue(worstUlps > 0.3 && worstUlps <= 0.5 + 1e-5, format + " worst error " + worstUlps + " ulp");
    }

    @Test
    void parseNamesTheBadValue() {
        assertEquals(QuantFormat.FP8_E4M3, QuantFormat.parse("fp8"));
        assertEquals(QuantFormat.FP8_E4M3, QuantFormat.parse("FP8-e4m3"));
        assertEquals(QuantFormat.FP8_E5M2, QuantFormat.parse("fp8_e5m2"));
        assertEquals(QuantFormat.INT8, QuantFormat.parse("int8"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> QuantFormat.parse("fp4"));
        assertTrue(e.getMessage().startsWith("format=fp4 "), e.getMessage());
        assertEquals(KvScaleMode.PER_HEAD, KvScaleMode.parse("per-head"));
        assertEquals(KvScaleMode.PER_TENSOR, KvScaleMode.parse("PER_TENSOR"));
        e = assertThrows(IllegalArgumentException.class, () -> KvScaleMode.parse("per-token"));
        assertTrue(e.getMessage().startsWith("kv-scale=per-token "), e.getMessage());
    }
}
