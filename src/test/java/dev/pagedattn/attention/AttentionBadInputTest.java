package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** Caller mistakes throw IllegalArgumentException whose message names the bad value. */
class AttentionBadInputTest {

    static void assertRejected(Executable call, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message '" + e.getMessage() + "' does not name " + f);
        }
    }

    @ParameterizedTest(name = "numQHeads={0} numKvHeads={1}")
    @CsvSource({"12, 8", "0, 1", "-4, 2", "3, 2", "1, 2"})
    void specRejectsQueryHeadsThatAreNotAMultiple(int numQHeads, int numKvHeads) {
        assertRejected(() -> new AttentionSpec(numQHeads, numKvHeads, 64, 0.125f),
                "numQHeads=" + numQHeads, "numKvHeads=" + numKvHeads);
    }

    @ParameterizedTest
    @ValueSource(ints = {0, -1})
    void specRejectsNoKvHeads(int numKvHeads) {
        assertRejected(() -> new AttentionSpec(8, numKvHeads, 64, 0.125f), "numKvHeads=" + numKvHeads);
    }

    @ParameterizedTest
    @ValueSource(ints = {81, 4, 0, -8, 100, 1032, 2048, 580})
    void specRejectsHeadDimsOutsideMultiplesOf8UpTo1024(int headDim) {
        assertRejected(() -> new AttentionSpec(8, 2, headDim, 0.125f), "headDim=" + headDim);
    }

    @ParameterizedTest
    @ValueSource(ints = {8, 80, 256, 576, 1024})
    void specAcceptsHeadDimsAtTheEdges(int headDim) {
        AttentionSpec spec = new AttentionSpec(8, 2, headDim, 0.125f);
        assertTrue(spec.groupSize() == 4 && spec.queryElements(3) == 3L * 8 * headDim, spec.toString());
    }

    @ParameterizedTest
    @ValueSource(floats = {0f, -0f, -1f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY})
    void specRejectsScalesThatAreNotFiniteAndPositive(float scale) {
        assertRejected(() -> new AttentionSpec(8, 2, 64, scale), "scale=" + scale);
    }

    @ParameterizedTest
    @ValueSource(floats = {-1f, -1e-30f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY})
    void specRejectsSoftCapsThatAreNotZeroOrFiniteAndPositive(float softCap) {
        AttentionSpec spec = new AttentionSpec(8, 2, 64, 0.125f);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> spec.withSoftCap(softCap));
        assertEquals("softCap=" + softCap + " must be 0 (none) or finite and > 0", e.getMessage());
        assertRejected(() -> new AttentionSpec(8, 2, 64, 0.125f, AttentionSinks.NONE, softCap), "softCap=" + softCap);
    }

    @Test
    void backendRejectsASpecThatDoesNotMatchTheCache() {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 2, 64, KvDtype.FP16));
        assertRejected(() -> new JvmDecodeAttention(cache, new AttentionSpec(8, 1, 64, 0.125f)).close(),
                "numKvHeads=1", "numKvHeads=2");
        assertRejected(() -> new JvmDecodeAttention(cache, new AttentionSpec(8, 2, 32, 0.125f)).close(),
                "headDim=32", "headDim=64");
        assertRejected(() -> Backends.create("jvm", cache, new AttentionSpec(8, 2, 128, 0.125f), null, "auto").close(),
                "headDim=128", "headDim=64");
        assertRejected(() -> ReferenceAttention.decode(cache, new AttentionSpec(4, 4, 64, 0.125f), 0, new int[0], new FloatArray(1)),
                "numKvHeads=4", "numKvHeads=2");
    }

    @Test
    void decodeRejectsQueriesAndOutputsOfTheWrongSize() {
        DecodeWorkload w = DecodeWorkload.create(new int[] {5, 9}, 8, 2, 16, 4, KvDtype.FP16, 1);
        long n = 2 * 8 * 16;
        try (JvmDecodeAttention a = new JvmDecodeAttention(w.cache(), w.spec())) {
            assertRejected(() -> a.decode(w.batch(), 0, new FloatArray((int) n - 1), w.poisonedOutput()), "q.size=" + (n - 1), "" + n);
            assertRejected(() -> a.decode(w.batch(), 0, new FloatArray((int) n + 16), w.poisonedOutput()), "q.size=" + (n + 16));
            assertRejected(() -> a.decode(w.batch(), 0, null, w.poisonedOutput()), "q.size=null");
            assertRejected(() -> a.decode(w.batch(), 0, w.q(), new FloatArray(8 * 16)), "out.size=" + 8 * 16, "" + n);
            assertRejected(() -> a.decode(w.batch(), 0, w.q(), null), "out.size=null");
        }
    }

    @Test
    void stepRowsHoldExactlyTheBatchAndNameABadLayerOrBatch() {
        DecodeWorkload w = DecodeWorkload.create(new int[] {5, 9}, 8, 2, 16, 4, KvDtype.FP16, 1);
        try (JvmDecodeAttention a = new JvmDecodeAttention(w.cache(), w.spec())) {
            StepRows rows = a.stepRows(w.batch(), 0);
            assertTrue(rows.q().getSize() == 2 * 8 * 16 && rows.out().getSize() == 2 * 8 * 16, "the batch's rows, no more");
            assertTrue(rows == a.stepRows(w.batch(), 0), "the same arrays while the batch's size stays");
            StepRows first = a.stepRows(w.cache().batch(w.seqs()[0]), 0);
            assertTrue(first.q().getSize() == 8 * 16 && first != rows, "new arrays for another size");
            assertRejected(() -> a.stepRows(w.batch(), 1), "layer=1");
            assertRejected(() -> a.stepRows(null, 0), "batch=null");
        }
    }

    @Test
    void decodeOfNoBatchNamesTheArgument() {
        DecodeWorkload w = DecodeWorkload.create(new int[] {3}, 8, 2, 16, 4, KvDtype.FP32, 1);
        try (JvmDecodeAttention a = new JvmDecodeAttention(w.cache(), w.spec())) {
            assertRejected(() -> a.decode(null, 0, w.q(), w.poisonedOutput()), "batch=null");
        }
    }

    @Test
    void decodeAfterCloseIsAnIllegalStateWithAMessage() {
        DecodeWorkload w = DecodeWorkload.create(new int[] {3}, 8, 2, 16, 4, KvDtype.FP32, 1);
        JvmDecodeAttention a = new JvmDecodeAttention(w.cache(), w.spec());
        a.decode(w.batch(), 0, w.q(), w.poisonedOutput());
        a.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> a.decode(w.batch(), 0, w.q(), w.poisonedOutput()));
        assertTrue(e.getMessage().contains("close()"), e.getMessage());
    }

    @Test
    void decodeOfABatchTakenBeforeFreeIsRefused() throws Exception {
        // the defect: the stale batch decoded the next owner's K/V (7.0 instead of 5.0) without a word
        KvCache cache = new KvCache(KvCacheConfig.of(2, 4, 1, 8, KvDtype.FP32));
        int seq = cache.createSequence();
        cache.write(seq, 0, appendOne(cache, seq), filled(5), filled(5));
        dev.pagedattn.cache.DecodeBatch stale = cache.batch(seq);
        cache.free(seq);
        int next = cache.createSequence();
        cache.write(next, 0, appendOne(cache, next), filled(7), filled(7));
        try (JvmDecodeAttention a = new JvmDecodeAttention(cache, AttentionSpec.of(cache.config(), 1))) {
            FloatArray out = new FloatArray(8);
            out.init(Float.NaN);
            assertRejected(() -> a.decode(stale, 0, new FloatArray(8), out), "seq=" + seq, "freed");
            assertTrue(Float.isNaN(out.get(0)), "nothing was decoded");
        }
    }

    private static float[] filled(float x) {
        float[] a = new float[8];
        java.util.Arrays.fill(a, x);
        return a;
    }

    @Test
    void decodeRejectsALayerOutsideTheCache() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(4, 4, 1, 8, KvDtype.FP32, 3));
        int seq = cache.createSequence();
        cache.write(seq, 0, appendOne(cache, seq), new float[8], new float[8]);
        AttentionSpec spec = AttentionSpec.of(cache.config(), 2);
        try (JvmDecodeAttention a = new JvmDecodeAttention(cache, spec)) {
            FloatArray q = new FloatArray(16);
            assertRejected(() -> a.decode(cache.batch(seq), 3, q, new FloatArray(16)), "layer=3", "[0, 3)");
            assertRejected(() -> a.decode(cache.batch(seq), -1, q, new FloatArray(16)), "layer=-1");
        }
    }

    @Test
    void backendsRejectAnUnknownName() {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 2, 64, KvDtype.FP16));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 4);
        assertRejected(() -> Backends.create("cuda", cache, spec, null, "auto"), "backend=cuda", "jvm", "tornado");
        assertRejected(() -> Backends.create("JVM", cache, spec, null, "auto"), "backend=JVM");
    }

    /** The test JVM has TornadoVM's API but not its runtime, as a plain {@code java} launch does. */
    @Test
    void tornadoBackendWithoutTheRuntimePointsToTheTornadoLauncher() {
        assertFalse(Backends.tornadoRuntimePresent(), "this test expects a JVM without the TornadoVM runtime");
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 2, 64, KvDtype.FP16));
        assertRejected(() -> Backends.create("tornado", cache, AttentionSpec.of(cache.config(), 4), null, "auto"),
                "backend=tornado", "tornado launcher");
    }

    private static int appendOne(KvCache cache, int seq) {
        try {
            return cache.append(seq, 1);
        } catch (dev.pagedattn.cache.OutOfBlocksException e) {
            throw new AssertionError(e);
        }
    }
}
