package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** The fp64 reference on cases small enough to work out by hand, and its error measures. */
class ReferenceAttentionTest {

    @Test
    void oneTokenContextReturnsThatTokensValue() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("oneTokenContextReturnsThatTokensValue");
        SplittableRandom random = new SplittableRandom(seed);
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 2, 16, KvDtype.FP32));
        int seq = cache.createSequence();
        float[] k = DecodeProblem.uniform(random, 2 * 16);
        float[] v = DecodeProblem.uniform(random, 2 * 16);
        cache.appendTokens(seq, k, v);
        AttentionSpec spec = AttentionSpec.of(cache.config(), 4);
        FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, 4 * 16));
        double[] out = ReferenceAttention.decode(cache, spec, 0, new int[] {seq}, q);
        for (int h = 0; h < 4; h++) {
            for (int e = 0; e < 16; e++) {
                assertEquals(v[(h / 2) * 16 + e], out[h * 16 + e], 0.0, "head " + h + " dim " + e + " seed=" + seed);
            }
        }
    }

    /** Scores 0 and ln 3 give weights 1/4 and 3/4: values 4 and 8 average to 7. */
    @Test
    void twoTokensWithKnownScoresGiveTheTextbookWeights() throws OutOfBlocksException {
        int d = 8;
        KvCache cache = new KvCache(KvCacheConfig.of(2, 1, 1, d, KvDtype.FP32));
        int seq = cache.createSequence();
        float[] k = new float[2 * d]; // token 0: all zero (score 0); token 1: 2 ln 3 in dim 0
        float[] v = new float[2 * d];
        k[d] = (float) (2 * Math.log(3));
        for (int e = 0; e < d; e++) {
            v[e] = 4;
            v[d + e] = 8 + e;
        }
        cache.appendTokens(seq, k, v);
        AttentionSpec spec = new AttentionSpec(1, 1, d, 0.5f); // q.k1 = 2 ln 3, scaled to ln 3
        FloatArray q = new FloatArray(d);
        q.set(0, 1);
        double[] out = ReferenceAttention.decode(cache, spec, 0, new int[] {seq}, q);
        for (int e = 0; e < d; e++) {
            // (float) 2 ln 3 is within 2^-24 relative of 2 ln 3, so the weights are within ~1e-7.
            assertEquals(0.25 * 4 + 0.75 * (8 + e), out[e], 1e-6, "dim " + e);
        }
        FloatArray jvm = decodeJvm(cache, spec, seq, q);
        for (int e = 0; e < d; e++) {
            assertEquals(0.25 * 4 + 0.75 * (8 + e), jvm.get(e), 1e-5, "JVM backend dim " + e);
        }
    }

    /**
     * Soft-capped at 2, raw scores 0 and {@code 2 atanh(ln 3 / 2)} (1.23) become 0 and ln 3: weights 1/4 and 3/4 again
     * (uncapped they would be 0.225 and 0.775), in decode and prefill alike.
     */
    @Test
    void aSoftCapTurnsKnownScoresIntoTheTextbookWeights() throws OutOfBlocksException {
        int d = 8;
        KvCache cache = new KvCache(KvCacheConfig.of(2, 1, 1, d, KvDtype.FP32));
        int seq = cache.createSequence();
        float[] k = new float[2 * d]; // token 0: all zero (score 0); token 1: raw score 2 atanh(ln 3 / 2) after the scale 0.5
        float[] v = new float[2 * d];
        k[d] = (float) (2 * 2 * atanh(Math.log(3) / 2));
        for (int e = 0; e < d; e++) {
            v[e] = 4;
            v[d + e] = 8 + e;
        }
        cache.appendTokens(seq, k, v);
        AttentionSpec spec = new AttentionSpec(1, 1, d, 0.5f).withSoftCap(2f);
        FloatArray q = new FloatArray(d);
        q.set(0, 1);
        double[] out = ReferenceAttention.decode(cache, spec, 0, new int[] {seq}, q);
        double[] prefill = ReferencePrefill.prefill(cache, spec, 0, new int[] {seq},
                PrefillBatch.of(cache.batch(new int[] {seq}), new int[] {1}, PrefillBatch.NO_WINDOW), q);
        FloatArray jvm = decodeJvm(cache, spec, seq, q);
        for (int e = 0; e < d; e++) {
            assertEquals(0.25 * 4 + 0.75 * (8 + e), out[e], 1e-6, "dim " + e);
            assertEquals(0.25 * 4 + 0.75 * (8 + e), prefill[e], 1e-6, "prefill dim " + e);
            assertEquals(0.25 * 4 + 0.75 * (8 + e), jvm.get(e), 1e-5, "JVM backend dim " + e);
        }
    }

    private static double atanh(double x) {
        return 0.5 * Math.log((1 + x) / (1 - x));
    }

    /** A zero query scores every token 0: the output is the plain mean of V. */
    @Test
    void zeroQueryAveragesTheValues() throws OutOfBlocksException {
        int d = 8;
        int len = 5;
        KvCache cache = new KvCache(KvCacheConfig.of(3, 2, 1, d, KvDtype.FP16));
        int seq = cache.createSequence();
        long seed = TestSeeds.fresh("zeroQueryAveragesTheValues");
        float[] k = DecodeProblem.uniform(new SplittableRandom(seed), len * d);
        float[] v = new float[len * d];
        for (int t = 0; t < len; t++) {
            for (int e = 0; e < d; e++) {
                v[t * d + e] = t * 10 + e; // small integers: exact in fp16
            }
        }
        cache.appendTokens(seq, k, v);
        AttentionSpec spec = AttentionSpec.of(cache.config(), 2);
        double[] out = ReferenceAttention.decode(cache, spec, 0, new int[] {seq}, new FloatArray(2 * d));
        for (int h = 0; h < 2; h++) {
            for (int e = 0; e < d; e++) {
                assertEquals(20 + e, out[h * d + e], 0.0, "head " + h + " dim " + e + ": mean of 10t+e over t<5");
            }
        }
    }

    /** Query heads 0..g-1 read KV head 0, g..2g-1 read KV head 1 (consecutive grouping). */
    @Test
    void queryHeadsReadTheirGroupsKvHead() throws OutOfBlocksException {
        int d = 8;
        KvCache cache = new KvCache(KvCacheConfig.of(1, 4, 2, d, KvDtype.FP16));
        int seq = cache.createSequence();
        long seed = TestSeeds.fresh("queryHeadsReadTheirGroupsKvHead");
        SplittableRandom random = new SplittableRandom(seed);
        float[] k = DecodeProblem.uniform(random, 3 * 2 * d);
        float[] v = new float[3 * 2 * d]; // [token][kvHead][d]: head 0 holds 1, head 1 holds 2
        for (int t = 0; t < 3; t++) {
            java.util.Arrays.fill(v, (t * 2) * d, (t * 2 + 1) * d, 1f);
            java.util.Arrays.fill(v, (t * 2 + 1) * d, (t * 2 + 2) * d, 2f);
        }
        cache.appendTokens(seq, k, v);
        AttentionSpec spec = AttentionSpec.of(cache.config(), 6);
        FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, 6 * d));
        double[] ref = ReferenceAttention.decode(cache, spec, 0, new int[] {seq}, q);
        FloatArray jvm = decodeJvm(cache, spec, seq, q);
        for (int h = 0; h < 6; h++) {
            double want = h < 3 ? 1 : 2;
            for (int e = 0; e < d; e++) {
                assertEquals(want, ref[h * d + e], 1e-15, "reference head " + h + " seed=" + seed);
                assertEquals(want, jvm.get(h * d + e), 1e-6, "JVM backend head " + h + " seed=" + seed);
            }
        }
    }

    @Test
    void errorMeasuresGiveKnownValues() {
        FloatArray got = FloatArray.fromElements(3f, 4.5f);
        double[] want = {3, 4};
        assertEquals(0.1, ReferenceAttention.relativeL2(got, want), 1e-15); // |(0, .5)| / |(3, 4)|
        assertEquals(0.5, ReferenceAttention.maxAbsError(got, want), 0.0);
        assertEquals(0.0, ReferenceAttention.relativeL2(FloatArray.fromElements(0f, 0f), new double[2]), 0.0);
    }

    @Test
    void errorMeasuresAreNaNWhenTheOutputHoldsNaN() {
        double[] want = {1, 2, 3};
        for (int i = 0; i < 3; i++) {
            FloatArray got = FloatArray.fromElements(1f, 2f, 3f);
            got.set(i, Float.NaN);
            assertTrue(Double.isNaN(ReferenceAttention.relativeL2(got, want)), "relativeL2 with NaN at " + i);
            assertTrue(Double.isNaN(ReferenceAttention.maxAbsError(got, want)), "maxAbsError with NaN at " + i);
        }
    }

    @Test
    void errorMeasuresAreNaNWhenTheReferenceHoldsNaN() {
        FloatArray got = FloatArray.fromElements(1f, 2f, 3f);
        double[] want = {1, Double.NaN, 3};
        assertTrue(Double.isNaN(ReferenceAttention.relativeL2(got, want)));
        assertTrue(Double.isNaN(ReferenceAttention.maxAbsError(got, want)));
    }

    private static FloatArray decodeJvm(KvCache cache, AttentionSpec spec, int seq, FloatArray q) {
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        try (JvmDecodeAttention a = new JvmDecodeAttention(cache, spec)) {
            a.decode(cache.batch(seq), 0, q, out);
        }
        return out;
    }
}
