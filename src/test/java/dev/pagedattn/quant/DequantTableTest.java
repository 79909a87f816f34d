package dev.pagedattn.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pagedattn.attention.TestSeeds;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

class DequantTableTest {

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void theTableHoldsEveryCodesValueAndTheHelperScalesIt(QuantFormat format) {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("dequantTable " + format));
        float[] table = DequantTable.of(format);
        FloatArray nativeTable = DequantTable.nativeOf(format);
        assertEquals(DequantTable.SIZE, table.length);
        assertEquals(DequantTable.SIZE, nativeTable.getSize());
        float scale = (float) Math.exp(random.nextDouble(-10, 10));
        for (int code = 0; code < 256; code++) {
            float value = format.decode(code);
            assertEquals(Float.floatToIntBits(value), Float.floatToIntBits(table[code]), format + " code=" + code);
            assertEquals(Float.floatToIntBits(value), Float.floatToIntBits(nativeTable.get(code)), format + " code=" + code);
            // kernels pass ByteArray.get(i), a signed byte: -128..127 must index like 0..255
            byte signed = (byte) code;
            assertEquals(value * scale, DequantTable.dequant(signed, table, scale), format + " code=" + signed);
            assertEquals(value * scale, DequantTable.dequant(code, nativeTable, scale), format + " code=" + code);
        }
        table[1] = 1e9f;
        assertEquals(format.decode(1), DequantTable.of(format)[1], "each call hands out its own copy");
    }

    @Test
    void packedCodesComeOutLowestByteFirst() {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("packedCodes"));
        IntArray words = new IntArray(64);
        byte[] bytes = new byte[256];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) random.nextInt(256);
            words.getSegment().set(ValueLayout.JAVA_BYTE, i, bytes[i]);  // how the host writes a pool
        }
        for (int i = 0; i < bytes.length; i++) {
            assertEquals(bytes[i] & 0xFF, DequantTable.code(words.get(i / 4), i % 4), "byte " + i);
        }
    }
}
