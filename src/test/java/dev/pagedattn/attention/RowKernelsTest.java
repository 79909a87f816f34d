package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The JVM prefill's block kernels against the per-row calls they replace, bit for bit:
 * {@link JvmDecodeAttention#dots} (a query against a block's keys) against {@link JvmDecodeAttention#dot} per key,
 * {@link JvmDecodeAttention#axpyRows} against {@link JvmDecodeAttention#axpy} per value row in order. On 16-lane
 * machines head dims 64, 128 and 256 take the register paths (4, 8, 16 vectors), on 8-lane ones 64 (8 vectors);
 * the others take the per-row calls.
 */
class RowKernelsTest {

    @ParameterizedTest(name = "headDim={0}")
    @ValueSource(ints = {8, 64, 80, 128, 256})
    void blockKernelsEqualThePerRowCalls(int d) {
        long seed = TestSeeds.fresh("blockKernelsEqualThePerRowCalls headDim=" + d);
        SplittableRandom random = new SplittableRandom(seed);
        int rows = 17;
        float[] q = randoms(random, 3 + d);          // the query at offset 3
        float[] k = randoms(random, rows * d);
        float[] p = randoms(random, 5 + rows);       // the weights at offset 5
        int from = 2;
        int to = 15;
        float[] got = new float[rows];
        java.util.Arrays.fill(got, Float.NaN);
        JvmDecodeAttention.dots(q, 3, k, d, from, to, got, 0);
        for (int t = 0; t < rows; t++) {
            float want = t >= from && t < to ? JvmDecodeAttention.dot(q, 3, k, t * d, d) : Float.NaN;
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[t]), "score of row " + t + ", seed=" + seed);
        }
        float[] y = randoms(random, 7 + d);          // the accumulator at offset 7
        float[] want = y.clone();
        JvmDecodeAttention.axpyRows(y, 7, p, 5, k, d, from, to);
        for (int t = from; t < to; t++) {
            JvmDecodeAttention.axpy(want, 7, p[5 + t], k, t * d, d);
        }
        for (int i = 0; i < want.length; i++) {
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(y[i]), "accumulator element " + i + ", seed=" + seed);
        }
    }

    private static float[] randoms(SplittableRandom random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return a;
    }
}
