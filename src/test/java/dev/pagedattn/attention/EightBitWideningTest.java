package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.quant.QuantFormat;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link EightBitWidening} against {@code QuantFormat.decode(code) * scale} bit for bit, for every
 * code the encoder writes, on the vector and the scalar path, at several scales (subnormal results
 * included), and for runs at random offsets and lengths inside poisoned buffers.
 */
class EightBitWideningTest {

    @ParameterizedTest(name = "{0} vector={1}")
    @CsvSource({"FP8_E4M3,true", "FP8_E4M3,false", "FP8_E5M2,true", "FP8_E5M2,false", "INT8,true", "INT8,false"})
    void everyWrittenCodeDequantizesExactly(QuantFormat format, boolean vector) {
        float[] table = format.table();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment codes = arena.allocate(256, 64);
            for (int c = 0; c < 256; c++) {
                codes.set(ValueLayout.JAVA_BYTE, c, (byte) c);
            }
            for (float scale : new float[] {1f, 0.0022321428f, 3.5f, 1e-30f, 1e20f}) {
                float[] got = new float[256];
                EightBitWidening.widen(format, table, codes, 0, scale, got, 0, 256, vector);
                for (int c = 0; c < 256; c++) {
                    if (!Float.isFinite(table[c]) || (format == QuantFormat.INT8 && c == 0x80)) {
                        continue; // reserved codes are never written
                    }
                    float want = table[c] * scale;
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[c]),
                            format + " code 0x" + Integer.toHexString(c) + " scale=" + scale + ": want " + want + ", got " + got[c]);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"FP8_E4M3", "FP8_E5M2", "INT8"})
    void runsAtAnyOffsetAndLengthWriteOnlyTheirRange(QuantFormat format) {
        long seed = TestSeeds.fresh("EightBitWidening runsAtAnyOffsetAndLengthWriteOnlyTheirRange " + format);
        SplittableRandom random = new SplittableRandom(seed);
        float[] table = format.table();
        try (Arena arena = Arena.ofConfined()) {
            int size = 4096;
            MemorySegment pool = arena.allocate(size, 64);
            for (int i = 0; i < size; i++) {
                pool.set(ValueLayout.JAVA_BYTE, i, format.encode((float) ((random.nextDouble() * 2 - 1) * format.maxFinite())));
            }
            for (int run = 0; run < 300; run++) {
                int n = random.nextInt(200);
                int from = random.nextInt(size - n);
                int dstOff = random.nextInt(7);
                float scale = (float) (0.01 + random.nextDouble());
                float[] dst = new float[dstOff + n + 5];
                Arrays.fill(dst, Float.NaN);
                EightBitWidening.widen(format, table, pool, from, scale, dst, dstOff, n, true);
                for (int i = 0; i < dst.length; i++) {
                    String what = "run " + run + " from=" + from + " n=" + n + " dstOff=" + dstOff + " element " + i + " seed=" + seed;
                    if (i < dstOff || i >= dstOff + n) {
                        assertTrue(Float.isNaN(dst[i]), what + " outside the run was written: " + dst[i]);
                    } else {
                        float want = format.decode(pool.get(ValueLayout.JAVA_BYTE, from + i - dstOff)) * scale;
                        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(dst[i]), what);
                    }
                }
            }
        }
    }
}
