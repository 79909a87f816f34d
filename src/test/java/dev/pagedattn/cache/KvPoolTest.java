package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;

class KvPoolTest {

    private static float[] randomFloats(Random random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = switch (random.nextInt(4)) {
                case 0 -> (float) random.nextGaussian();
                case 1 -> (float) (random.nextGaussian() * 1e4);  // beyond fp16's 65504 at times
                case 2 -> (float) (random.nextGaussian() * 1e-6); // fp16 subnormals
                default -> random.nextFloat() * 2 - 1;
            };
        }
        return a;
    }

    @Test
    void freshPoolsAreZero() {
        for (KvDtype dtype : KvDtype.values()) {
            KvPool pool = new KvPool(dtype, 64);
            assertEquals(64, pool.size());
            for (int i = 0; i < 64; i++) {
                assertEquals(0f, pool.get(i), dtype + " element " + i);
            }
        }
    }

    @Test
    void fp16PoolIsAHalfFloatArrayRoundingToNearestEven() {
        Random random = TestRandom.create("KvPoolTest.fp16PoolIsAHalfFloatArrayRoundingToNearestEven");
        KvPool pool = new KvPool(KvDtype.FP16, 300);
        assertInstanceOf(HalfFloatArray.class, pool.array());
        float[] src = randomFloats(random, 250);
        pool.write(20, src, 10, 240);
        float[] back = new float[240];
        pool.read(20, back, 0, 240);
        for (int i = 0; i < 240; i++) {
            float x = src[10 + i];
            float expected = Float.float16ToFloat(Float.floatToFloat16(x));
            assertEquals(expected, back[i], "x=" + x);
            assertEquals(expected, pool.get(20 + i), "x=" + x);
            assertEquals(Float.floatToFloat16(x), pool.halfArray().get(20 + i).getHalfFloatValue(), "native fp16 bits, x=" + x);
        }
        assertEquals(0f, pool.get(19), "write stays in its range");
        assertEquals(0f, pool.get(260));
    }

    @Test
    void fp32PoolIsAFloatArrayStoringExactly() {
        Random random = TestRandom.create("KvPoolTest.fp32PoolIsAFloatArrayStoringExactly");
        KvPool pool = new KvPool(KvDtype.FP32, 300);
        assertInstanceOf(FloatArray.class, pool.array());
        float[] src = randomFloats(random, 250);
        pool.write(20, src, 10, 240);
        float[] back = new float[250];
        pool.read(20, back, 5, 240);
        for (int i = 0; i < 240; i++) {
            assertEquals(src[10 + i], back[5 + i]);
            assertEquals(src[10 + i], pool.get(20 + i));
            assertEquals(src[10 + i], pool.floatArray().get(20 + i), "native array");
        }
        assertEquals(0f, pool.get(19));
        assertEquals(0f, pool.get(260));
    }

    @Test
    void accessorOfTheOtherDtypeIsRefused() {
        IllegalStateException half = assertThrows(IllegalStateException.class, () -> new KvPool(KvDtype.FP16, 4).floatArray());
        assertTrue(half.getMessage().contains("dtype=FP16"), half.getMessage());
        IllegalStateException full = assertThrows(IllegalStateException.class, () -> new KvPool(KvDtype.FP32, 4).halfArray());
        assertTrue(full.getMessage().contains("dtype=FP32"), full.getMessage());
    }

    @Test
    void copyMovesARunWithinThePool() {
        for (KvDtype dtype : KvDtype.values()) {
            KvPool pool = new KvPool(dtype, 32);
            float[] src = new float[32];
            for (int i = 0; i < 32; i++) {
                src[i] = i + 0.5f; // exact in fp16
            }
            pool.write(0, src, 0, 32);
            pool.copy(3, 20, 6);
            for (int i = 0; i < 32; i++) {
                float expected = stored(dtype, i >= 20 && i < 26 ? src[i - 17] : src[i]);
                assertEquals(expected, pool.get(i), dtype + " element " + i);
            }
        }
    }

    @Test
    void aPoolPastTheConstructorLimitLivesInItsOwnSegment() {
        // the path pools above 2 GiB take (the compile-time API's constructors compute bytes in int),
        // forced here at 64 bytes so the test allocates little
        for (KvDtype dtype : KvDtype.values()) {
            KvPool pool = new KvPool(dtype, 1000, 64);
            assertEquals(1000, pool.size());
            assertEquals(1000L * dtype.bytes(), pool.segment().byteSize());
            float[] x = {1.5f, -2.25f, 3f};
            pool.write(997, x, 0, 3);
            assertEquals(stored(dtype, -2.25f), pool.get(998));
            pool.copy(997, 10, 3);
            assertEquals(stored(dtype, 3f), pool.get(12));
            // the compile-time TornadoVM API has no fromSegmentShallow: no native array, and a clear message
            IllegalStateException e = assertThrows(IllegalStateException.class, pool::array);
            assertTrue(e.getMessage().contains("1000") && e.getMessage().contains("2 GiB"), e.getMessage());
        }
    }

    /** What a pool of {@code dtype} with scale 1 stores for {@code x} (exact in fp16/fp32 for these inputs). */
    private static float stored(KvDtype dtype, float x) {
        return dtype.isQuantized() ? dtype.format().decode(dtype.format().encode(x)) : x;
    }
}
