package dev.pagedattn.rope;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.JvmPrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.rope.RotaryEmbedding.Style;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Rotary embeddings through the paged cache, as an engine uses them: keys rotated by their positions and written, the
 * new tokens' queries rotated and given to the JVM backend's decode and prefill. The outputs match fp64 attention over
 * the fp64-rotated rows, and shifting every position by the same amount leaves them unchanged (RoPE's scores depend on
 * relative positions only), on fresh random rows with a printed seed.
 */
class RotaryAttentionTest {
    private static final int NUM_Q_HEADS = 8;
    private static final int NUM_KV_HEADS = 2;
    private static final int HEAD_DIM = 64;
    /** fp32 attention over fp32-rotated rows against fp64: 3e-7 .. 5e-7 measured; the library's decode bound. */
    private static final double REL_L2 = 1e-5;

    @Test
    void decodeAndPrefillOverRotatedKeysMatchFp64AndOnlyRelativePositionsCount() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("decodeAndPrefillOverRotatedKeysMatchFp64AndOnlyRelativePositionsCount");
        SplittableRandom random = new SplittableRandom(seed);
        double worst = 0;
        for (Style style : Style.values()) {
            RotaryEmbedding rope = new RotaryEmbedding(HEAD_DIM, RopeFrequencies.llama3(HEAD_DIM, 500000, 8, 1, 4, 8192), style);
            int length = 200 + random.nextInt(500);
            int qLen = 1 + random.nextInt(40);
            int shift = random.nextInt(1 << 24);
            float[] k = RotaryEmbeddingTest.randomRows(random, length * NUM_KV_HEADS * HEAD_DIM);
            float[] v = RotaryEmbeddingTest.randomRows(random, length * NUM_KV_HEADS * HEAD_DIM);
            float[] q = RotaryEmbeddingTest.randomRows(random, qLen * NUM_Q_HEADS * HEAD_DIM);
            String what = style + " length=" + length + " qLen=" + qLen + " shift=" + shift + " seed=" + seed;

            float[][] unshifted = attend(rope, k, v, q, length, qLen, 0);
            float[][] shifted = attend(rope, k, v, q, length, qLen, shift);
            double[] want = fp64(rope, k, v, q, length, qLen);
            double[] wantLast = java.util.Arrays.copyOfRange(want, (qLen - 1) * NUM_Q_HEADS * HEAD_DIM, want.length);
            worst = Math.max(worst, check("prefill", unshifted[0], want, what));
            worst = Math.max(worst, check("decode", unshifted[1], wantLast, what));
            worst = Math.max(worst, check("prefill shifted", shifted[0], want, what));
            worst = Math.max(worst, check("decode shifted", shifted[1], wantLast, what));
        }
        System.out.printf("rotary prefill and decode, positions as written and shifted: worst relative L2 vs fp64 %.2e%n", worst);
    }

    /** Prefill of the last {@code qLen} tokens and decode of the last, every position plus {@code shift}. */
    private static float[][] attend(RotaryEmbedding rope, float[] k, float[] v, float[] q, int length, int qLen, int shift)
            throws OutOfBlocksException {
        KvCache cache = new KvCache(KvCacheConfig.of(64, 16, NUM_KV_HEADS, HEAD_DIM, KvDtype.FP32));
        float[] rotatedK = k.clone();
        rope.apply(rotatedK, NUM_KV_HEADS, shift, length);
        int seq = cache.createSequence();
        cache.appendTokens(seq, rotatedK, v);
        FloatArray rotatedQ = FloatArray.fromArray(q);
        rope.apply(rotatedQ, NUM_Q_HEADS, shift + length - qLen, qLen);
        AttentionSpec spec = AttentionSpec.of(cache.config(), NUM_Q_HEADS);
        FloatArray prefillOut = poisoned(qLen * NUM_Q_HEADS * HEAD_DIM);
        FloatArray decodeQ = FloatArray.fromArray(java.util.Arrays.copyOfRange(rotatedQ.toHeapArray(),
                (qLen - 1) * NUM_Q_HEADS * HEAD_DIM, qLen * NUM_Q_HEADS * HEAD_DIM));
        FloatArray decodeOut = poisoned(NUM_Q_HEADS * HEAD_DIM);
        try (JvmPrefillAttention prefill = new JvmPrefillAttention(cache, spec);
                JvmDecodeAttention decode = new JvmDecodeAttention(cache, spec)) {
            prefill.prefill(PrefillBatch.of(cache.batch(seq), new int[] {qLen}, AttentionWindow.NONE), 0, rotatedQ, prefillOut);
            decode.decode(cache.batch(seq), 0, decodeQ, decodeOut);
        }
        return new float[][] {prefillOut.toHeapArray(), decodeOut.toHeapArray()};
    }

    /** Causal attention of the last {@code qLen} tokens in fp64, rows rotated by {@link ReferenceRotary}. */
    private static double[] fp64(RotaryEmbedding rope, float[] k, float[] v, float[] q, int length, int qLen) {
        int[] kPositions = new int[length];
        for (int p = 0; p < length; p++) {
            kPositions[p] = p;
        }
        int[] qPositions = java.util.Arrays.copyOfRange(kPositions, length - qLen, length);
        double[] rk = ReferenceRotary.rotate(rope, k, NUM_KV_HEADS, kPositions);
        double[] rq = ReferenceRotary.rotate(rope, q, NUM_Q_HEADS, qPositions);
        double[] out = new double[qLen * NUM_Q_HEADS * HEAD_DIM];
        double scale = 1 / Math.sqrt(HEAD_DIM);
        for (int t = 0; t < qLen; t++) {
            int position = length - qLen + t;
            for (int h = 0; h < NUM_Q_HEADS; h++) {
                int kvHead = h / (NUM_Q_HEADS / NUM_KV_HEADS);
                int qAt = (t * NUM_Q_HEADS + h) * HEAD_DIM;
                double[] scores = new double[position + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p <= position; p++) {
                    int kAt = (p * NUM_KV_HEADS + kvHead) * HEAD_DIM;
                    double dot = 0;
                    for (int d = 0; d < HEAD_DIM; d++) {
                        dot += rq[qAt + d] * (float) rk[kAt + d]; // the cache holds fp32-rotated keys; rounding them here
                    }                                               // keeps the comparison to attention alone
                    scores[p] = dot * scale;
                    max = Math.max(max, scores[p]);
                }
                double sum = 0;
                for (int p = 0; p <= position; p++) {
                    scores[p] = Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                for (int p = 0; p <= position; p++) {
                    int vAt = (p * NUM_KV_HEADS + kvHead) * HEAD_DIM;
                    for (int d = 0; d < HEAD_DIM; d++) {
                        out[qAt + d] += scores[p] / sum * v[vAt + d];
                    }
                }
            }
        }
        return out;
    }

    private static double check(String call, float[] got, double[] want, String what) {
        double e = ReferenceAttention.relativeL2(FloatArray.fromArray(got), want);
        if (!(e <= REL_L2)) {
            fail(call + " " + what + ": relative L2 " + e + " > " + REL_L2);
        }
        assertTrue(e > 0, call + ": bit-exact against fp64 means the reference was not what was compared");
        return e;
    }

    /** {@code n} floats of NaN: an output a call must overwrite. */
    static FloatArray poisoned(int n) {
        FloatArray a = new FloatArray(n);
        a.init(Float.NaN);
        return a;
    }
}
