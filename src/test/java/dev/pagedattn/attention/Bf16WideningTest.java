package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pagedattn.cache.Bf16;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** The JVM kernels' bf16 widening gives {@link Bf16#toFloat}'s bits for every bf16, vector path and scalar, at odd offsets. */
class Bf16WideningTest {

    @Test
    void everyBf16WidensToItsFloatOnBothPaths() {
        MemorySegment pool = Arena.ofAuto().allocate((65536 + 3) * 2L, 2);
        for (int b = 0; b < 65536; b++) {
            pool.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, b + 3, (short) b);
        }
        for (boolean vector : new boolean[] {true, false}) {
            float[] dst = new float[65536 + 5];
            Bf16Widening.widen(pool, 3, dst, 5, 65536, vector);             // odd element and destination offsets
            for (int b = 0; b < 65536; b++) {
                assertEquals(Float.floatToRawIntBits(Bf16.toFloat((short) b)), Float.floatToRawIntBits(dst[b + 5]),
                        "bits " + b + (vector ? " (vector)" : " (scalar)"));
            }
            float[] tail = new float[7];
            Bf16Widening.widen(pool, 3 + 100, tail, 0, 7, vector);          // shorter than a vector
            for (int i = 0; i < 7; i++) {
                assertEquals(Float.floatToRawIntBits(Bf16.toFloat((short) (100 + i))), Float.floatToRawIntBits(tail[i]));
            }
        }
    }
}
