package dev.pagedattn.attention;

import static dev.pagedattn.attention.AttentionBadInputTest.assertRejected;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** Bad prefill inputs are IllegalArgumentExceptions that name the value; nothing is written. */
class PrefillBadInputTest {
    private static DecodeWorkload w;   // two sequences of 10 and 20 tokens
    private static DecodeBatch kv;

    @BeforeAll
    static void cache() {
        w = DecodeWorkload.create(new int[] {10, 20}, 4, 2, 16, 4, KvDtype.FP32, 7);
        kv = w.batch();
    }

    @Test
    void zeroQueryTokensAreRejected() {
        assertRejected(() -> PrefillBatch.of(kv, new int[] {3, 0}, PrefillBatch.NO_WINDOW), "qLen[1]=0");
        assertRejected(() -> PrefillBatch.ofIndptr(kv, new int[] {0, 3, 3}, PrefillBatch.NO_WINDOW), "qLen[1]=0");
    }

    @Test
    void moreQueryTokensThanContextAreRejected() {
        assertRejected(() -> PrefillBatch.of(kv, new int[] {11, 1}, PrefillBatch.NO_WINDOW), "qLen[0]=11", "contextLen[0]=10");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, Integer.MIN_VALUE}) // -C is chunks of C (AttentionWindow.chunked)
    void windowsThatAreNeitherAWindowNorChunksAreRejected(int window) {
        assertRejected(() -> PrefillBatch.of(kv, new int[] {1, 1}, window), "window=" + window);
    }

    @Test
    void indptrThatDecreasesIsRejected() {
        assertRejected(() -> PrefillBatch.ofIndptr(kv, new int[] {0, 5, 4}, PrefillBatch.NO_WINDOW), "qIndptr[2]=4", "must not decrease");
    }

    @Test
    void indptrOfTheWrongLengthOrStartIsRejected() {
        assertRejected(() -> PrefillBatch.ofIndptr(kv, new int[] {0, 5}, PrefillBatch.NO_WINDOW), "qIndptr.length=2");
        assertRejected(() -> PrefillBatch.ofIndptr(kv, new int[] {1, 5, 6}, PrefillBatch.NO_WINDOW), "qIndptr[0]=1");
    }

    @Test
    void queryAndOutputOfTheWrongSizeAreRejectedBeforeAnyWrite() {
        PrefillBatch batch = PrefillBatch.of(kv, new int[] {2, 3}, PrefillBatch.NO_WINDOW);
        int n = 5 * 4 * 16;
        FloatArray out = new FloatArray(n);
        out.init(42f);
        try (JvmPrefillAttention a = new JvmPrefillAttention(w.cache(), w.spec())) {
            assertRejected(() -> a.prefill(batch, 0, new FloatArray(n - 1), out), "q.size=" + (n - 1));
            assertRejected(() -> a.prefill(batch, 0, new FloatArray(n), new FloatArray(n + 16)), "out.size=" + (n + 16));
            assertRejected(() -> a.prefill(batch, 1, new FloatArray(n), out), "layer=1");
        }
        for (int i = 0; i < n; i++) {
            if (out.get(i) != 42f) {
                throw new AssertionError("out[" + i + "] was written by a rejected call");
            }
        }
    }
}
