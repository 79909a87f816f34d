package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Provide;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The shape generators the decode properties share (jqwik finds a superclass's providers): query groups of 1..8, head
 * dims from 8 to 128 with a padded one (80), and block sizes around the 16-token tile (1, 3, 7, 16, 17, 32).
 */
abstract class DecodeShapeArbitraries {

    @Provide
    Arbitrary<Integer> groupSizes() {
        return Arbitraries.of(1, 3, 4, 8);
    }

    @Provide
    Arbitrary<Integer> headDims() {
        return Arbitraries.of(8, 64, 80, 128);
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return Arbitraries.of(1, 3, 7, 16, 17, 32);
    }

    /** No window, or windows of one token, inside a block, around block sizes and longer than most contexts. */
    @Provide
    Arbitrary<Integer> windowsOrNone() {
        return Arbitraries.oneOf(Arbitraries.of(DecodeBatch.NO_WINDOW, DecodeBatch.NO_WINDOW, 1, 15, 17, 33),
                Arbitraries.integers().between(1, 1500));
    }

    /** No window, or a prefill window of 1..40 tokens. */
    @Provide
    Arbitrary<Integer> prefillWindows() {
        return Arbitraries.oneOf(Arbitraries.just(PrefillBatch.NO_WINDOW), Arbitraries.integers().between(1, 40));
    }

    /** The most tokens any row of {@code batch} sees (its window's, or its context's). */
    static int maxVisible(DecodeBatch batch) {
        int m = 0;
        for (int i = 0; i < batch.numSeqs(); i++) {
            m = Math.max(m, batch.contextLen(i) - batch.firstVisible(i));
        }
        return m;
    }

    /**
     * One query token per sequence through the JVM prefill backend (the batch's sequences, a window of {@code window})
     * against the JVM decode of the same problem and against fp64: decode and prefill have their own dot products
     * (JvmPrefillAttentionTest), so they agree to fp32 rounding.
     */
    static void assertOneTokenPrefillIsDecode(DecodeProblem p, int window) {
        FloatArray out = p.poisonedOutput();
        int[] ones = new int[p.batch().numSeqs()];
        Arrays.fill(ones, 1);
        try (PrefillAttention prefill = new JvmPrefillAttention(p.cache(), p.spec())) {
            prefill.prefill(PrefillBatch.of(p.batch().window(DecodeBatch.NO_WINDOW), ones, window), 0, p.q(), out);
        }
        double[] want = new double[out.getSize()];
        FloatArray decoded = p.decodeJvm();
        for (int i = 0; i < want.length; i++) {
            want[i] = decoded.get(i);
        }
        Accuracy.assertClose(out, want, p.describe() + ": prefill against decode");
        Accuracy.assertClose(out, p.reference(), p.describe() + ": prefill against fp64");
    }
}
