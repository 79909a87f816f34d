package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.pagedattn.cache.KvDtype;
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

    static Stream<PrefillCase> shapes() {
        return PrefillCase.issueShapes();
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
    void oneTokenPrefillMatchesDecode() {
        // Decode's JVM kernel has its own inner loop (split-K, vector exp, tree-folded dots), so the
        // two agree to fp32 rounding, not bit for bit.
        long seed = TestSeeds.fresh("oneTokenPrefillMatchesDecode");
        DecodeWorkload w = DecodeWorkload.create(new int[] {1, 16, 17, 100}, 8, 2, 64, 16, F16, seed);
        FloatArray a = w.poisonedOutput();
        FloatArray b = w.poisonedOutput();
        try (JvmDecodeAttention decode = new JvmDecodeAttention(w.cache(), w.spec());
             JvmPrefillAttention prefill = new JvmPrefillAttention(w.cache(), w.spec())) {
            decode.decode(w.batch(), 0, w.q(), a);
            prefill.prefill(PrefillBatch.of(w.batch(), new int[] {1, 1, 1, 1}, NONE), 0, w.q(), b);
        }
        double[] aD = new double[a.getSize()];
        for (int i = 0; i < aD.length; i++) {
            aD[i] = a.get(i);
        }
        double rel = ReferenceAttention.relativeL2(b, aD);
        assertTrue(rel < 1e-6, "seed=" + seed + ": one-token prefill vs decode, relative L2 " + rel);
    }

    @Test
    void lastRowsOfAWholePromptEqualAPrefillOfOnlyThoseTokens() {
        long seed = TestSeeds.fresh("lastRowsOfAWholePromptEqualAPrefillOfOnlyThoseTokens");
        int len = 77;
        int tail = 23; // not a multiple of the tile, so the two runs tile the rows differently
        PrefillWorkload whole = PrefillWorkload.create(new int[] {len}, new int[] {len}, 30, 8, 2, 32, 16, F32, seed);
        assertTailIsTheWholePromptsEnd(whole, tail, 30, "seed=" + seed);
    }

    /**
     * {@code whole} (one sequence prefilled as one prompt) and a prefill of only its last {@code tail} query tokens
     * through a window of {@code window}: the tail's rows must equal the prompt's last rows bit for bit (a row's result
     * does not depend on the tile it lands in). Returns the whole prompt's output.
     */
    static FloatArray assertTailIsTheWholePromptsEnd(PrefillWorkload whole, int tail, int window, String what) {
        AttentionSpec spec = whole.spec();
        int row = spec.numQHeads() * spec.headDim();
        int len = whole.batch().totalQueries();
        FloatArray qTail = new FloatArray(tail * row);
        for (int i = 0; i < qTail.getSize(); i++) {
            qTail.set(i, whole.q().get((len - tail) * row + i));
        }
        FloatArray a = whole.poisonedOutput();
        FloatArray b = new FloatArray(tail * row);
        b.init(Float.NaN);
        try (JvmPrefillAttention attention = new JvmPrefillAttention(whole.kv().cache(), spec)) {
            attention.prefill(whole.batch(), 0, whole.q(), a);
            attention.prefill(PrefillBatch.of(whole.kv().batch(), new int[] {tail}, window), 0, qTail, b);
        }
        assertBitEqual(a, (len - tail) * row, b, 0, tail * row, what);
        return a;
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
