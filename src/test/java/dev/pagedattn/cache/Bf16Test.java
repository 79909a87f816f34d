package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigDecimal;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * bfloat16 ({@link Bf16}): every one of the 65536 values widens exactly and rounds back to itself; fp32 values round to
 * the nearest bf16, ties to even, checked against exact decimal arithmetic; the pool stores and reads them.
 */
class Bf16Test {

    @Test
    void everyBf16WidensExactlyAndRoundsBackToItself() {
        MemorySegment pool = Arena.ofAuto().allocate(65536 * 2L, 2);
        for (int b = 0; b < 65536; b++) {
            pool.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, b, (short) b);
        }
        float[] wide = new float[65536];
        Bf16.widen(pool, 0, wide, 0, 65536);
        for (int b = 0; b < 65536; b++) {
            float x = Bf16.toFloat((short) b);
            assertEquals(Float.floatToRawIntBits(x), Float.floatToRawIntBits(wide[b]), "bits " + b);
            assertEquals(b << 16, Float.floatToRawIntBits(x), "bits " + b + " are the fp32's upper half");
            if (!Float.isNaN(x)) {
                assertEquals((short) b, Bf16.fromFloat(x), "bits " + b + " round back to themselves");
            } else {
                assertTrue(Float.isNaN(Bf16.toFloat(Bf16.fromFloat(x))), "a NaN stays a NaN");
            }
        }
    }

    @Test
    void fp32RoundsToTheNearestBf16TiesToEven() {
        Random random = TestRandom.create("Bf16Test.fp32RoundsToTheNearestBf16TiesToEven");
        for (int i = 0; i < 200_000; i++) {
            float x = Float.intBitsToFloat(random.nextInt());
            if (Float.isNaN(x) || Float.isInfinite(x)) {
                continue;
            }
            float r = Bf16.toFloat(Bf16.fromFloat(x));
            int bits = Float.floatToRawIntBits(x) & 0xFFFF0000;
            float down = Float.intBitsToFloat(bits);                      // toward zero
            float up = Float.intBitsToFloat(bits + 0x10000);              // away from zero (may be infinity)
            BigDecimal exact = new BigDecimal(x);
            BigDecimal dDown = exact.subtract(new BigDecimal(down)).abs();
            BigDecimal dUp = Float.isInfinite(up) ? null : exact.subtract(new BigDecimal(up)).abs();
            int c = dUp == null ? -1 : dDown.compareTo(dUp);
            float want = c < 0 ? down : c > 0 ? up : ((bits >>> 16) & 1) == 0 ? down : up;
            if (dUp == null && dDown.compareTo(new BigDecimal(Float.intBitsToFloat(bits | 0x8000)).subtract(new BigDecimal(down)).abs()) >= 0) {
                want = Float.intBitsToFloat((bits & 0x80000000) | 0x7F800000);  // past the largest finite: infinity
            }
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(r), "x=" + x);
        }
        assertEquals(1.0f, Bf16.toFloat(Bf16.fromFloat(1.00390625f)), "a tie rounds to the even neighbour");
        assertEquals(1.015625f, Bf16.toFloat(Bf16.fromFloat(1.01171875f)), "a tie rounds to the even neighbour (2 ulps, not 1)");
        assertEquals(Float.POSITIVE_INFINITY, Bf16.toFloat(Bf16.fromFloat(Float.MAX_VALUE)));
    }

    @Test
    void aBf16PoolStoresWhatItRounds() throws OutOfBlocksException {
        KvCacheConfig c = KvCacheConfig.of(4, 4, 2, 8, KvDtype.BF16);
        KvCache cache = new KvCache(c);
        int seq = cache.createSequence();
        cache.append(seq, 3);
        float[] k = new float[16];
        float[] v = new float[16];
        for (int i = 0; i < 16; i++) {
            k[i] = 1e30f * (i + 1) / 3;                              // past fp16's range: bf16 keeps it
            v[i] = -0.1f * i;
        }
        cache.write(seq, 0, 2, k, v);
        for (int h = 0; h < 2; h++) {
            for (int d = 0; d < 8; d++) {
                assertEquals(Bf16.toFloat(Bf16.fromFloat(k[h * 8 + d])), cache.readK(seq, 0, 2, h, d));
                assertEquals(Bf16.toFloat(Bf16.fromFloat(v[h * 8 + d])), cache.readV(seq, 0, 2, h, d));
            }
        }
        assertEquals(2, c.dtype().bytes());
    }
}
