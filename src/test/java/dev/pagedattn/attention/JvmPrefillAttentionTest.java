package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.fail;

import dev.pagedattn.cache.KvDtype;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** The JVM prefill backend against the fp64 reference, and its exact agreement with decode. */
class JvmPrefillAttentionTest {
    private static final KvDtype F16 = KvDtype.FP16;
    private static final KvDtype F32 = KvDtype.FP32;
    private static final int NONE = PrefillBatch.NO_WINDOW;

    /** The shapes of issue 11, shared with the kernel emulator test. */
    public static Stream<PrefillCase> shapes() {
        List<PrefillCase> cases = new ArrayList<>();
        cases.add(PrefillCase.of("qLen 1 (decode)", new int[] {1, 17, 40}, new int[] {1, 1, 1}, 8, 2, 64, 16, F16, NONE));
        cases.add(PrefillCase.of("qLen = block size", new int[] {16, 50}, new int[] {16, 16}, 8, 2, 64, 16, F16, NONE));
        cases.add(PrefillCase.of("qLen = block size + 1", new int[] {17, 50}, new int[] {17, 17}, 4, 4, 32, 16, F32, NONE));
        cases.add(PrefillCase.of("whole prompt, ragged", new int[] {5, 33, 21}, new int[] {5, 33, 21}, 8, 2, 40, 8, F16, NONE));
        // a second chunk longer than the first: 40 new tokens over a 24-token prefix
        cases.add(PrefillCase.of("qLen > previous chunk", new int[] {64, 30}, new int[] {40, 29}, 8, 1, 32, 16, F32, NONE));
        cases.add(PrefillCase.of("window < block", new int[] {70, 9}, new int[] {20, 9}, 8, 2, 64, 16, F16, 5));
        cases.add(PrefillCase.of("window 1", new int[] {33}, new int[] {12}, 4, 2, 16, 4, F32, 1));
        cases.add(PrefillCase.of("window > context", new int[] {33, 12}, new int[] {3, 12}, 4, 2, 16, 4, F32, 100));
        cases.add(PrefillCase.of("window across blocks", new int[] {90}, new int[] {37}, 4, 1, 24, 8, F16, 19));
        cases.add(PrefillCase.of("MQA 64 heads", new int[] {40, 19}, new int[] {9, 19}, 64, 1, 32, 16, F16, NONE));
        cases.add(PrefillCase.of("MHA", new int[] {25}, new int[] {25}, 4, 4, 8, 1, F32, NONE));
        cases.add(PrefillCase.of("head dim 256", new int[] {20}, new int[] {18}, 2, 1, 256, 16, F16, 11));
        cases.add(PrefillCase.of("head dim 80 block 5", new int[] {31, 3}, new int[] {7, 2}, 6, 3, 80, 5, F32, NONE));
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void matchesTheFp64Reference(PrefillCase c) {
        long seed = TestSeeds.fresh("JvmPrefillAttentionTest " + c.name());
        PrefillWorkload w = c.workload(seed);
        FloatArray out = w.poisonedOutput();
        try (JvmPrefillAttention attention = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
            attention.prefill(w.batch(), 0, w.q(), out);
        }
        Accuracy.assertClose(out, w.reference(), c + " seed=" + seed);
    }

    @Test
    void oneTokenPrefillEqualsDecodeBitForBit() {
        long seed = TestSeeds.fresh("oneTokenPrefillEqualsDecodeBitForBit");
        DecodeWorkload w = DecodeWorkload.create(new int[] {1, 16, 17, 100}, 8, 2, 64, 16, F16, seed);
        FloatArray a = w.poisonedOutput();
        FloatArray b = w.poisonedOutput();
        try (JvmDecodeAttention decode = new JvmDecodeAttention(w.cache(), w.spec());
             JvmPrefillAttention prefill = new JvmPrefillAttention(w.cache(), w.spec())) {
            decode.decode(w.batch(), 0, w.q(), a);
            prefill.prefill(PrefillBatch.of(w.batch(), new int[] {1, 1, 1, 1}, NONE), 0, w.q(), b);
        }
        assertBitEqual(a, 0, b, 0, a.getSize(), "seed=" + seed);
    }

    @Test
    void lastRowsOfAWholePromptEqualAPrefillOfOnlyThoseTokens() {
        long seed = TestSeeds.fresh("lastRowsOfAWholePromptEqualAPrefillOfOnlyThoseTokens");
        int len = 77;
        int tail = 23; // not a multiple of the tile, so the two runs tile the rows differently
        PrefillWorkload whole = PrefillWorkload.create(new int[] {len}, new int[] {len}, 30, 8, 2, 32, 16, F32, seed);
        AttentionSpec spec = whole.spec();
        int row = spec.numQHeads() * spec.headDim();
        FloatArray qTail = new FloatArray(tail * row);
        for (int i = 0; i < qTail.getSize(); i++) {
            qTail.set(i, whole.q().get((len - tail) * row + i));
        }
        FloatArray a = whole.poisonedOutput();
        FloatArray b = new FloatArray(tail * row);
        b.init(Float.NaN);
        try (JvmPrefillAttention attention = new JvmPrefillAttention(whole.kv().cache(), spec)) {
            attention.prefill(whole.batch(), 0, whole.q(), a);
            attention.prefill(PrefillBatch.of(whole.kv().batch(), new int[] {tail}, 30), 0, qTail, b);
        }
        assertBitEqual(a, (len - tail) * row, b, 0, tail * row, "seed=" + seed);
    }

    static void assertBitEqual(FloatArray a, int aFrom, FloatArray b, int bFrom, int n, String what) {
        for (int i = 0; i < n; i++) {
            float x = a.get(aFrom + i);
            float y = b.get(bFrom + i);
            if (Float.isNaN(x) || Float.floatToRawIntBits(x) != Float.floatToRawIntBits(y)) {
                fail(what + ": element " + i + " is " + x + " vs " + y);
            }
        }
    }
}
