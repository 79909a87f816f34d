package dev.pagedattn.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pagedattn.attention.TestSeeds;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

class DequantTableTest {

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
