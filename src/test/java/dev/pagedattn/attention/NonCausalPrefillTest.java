package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Prefill without causality ({@link PrefillBatch#nonCausal}, FlashInfer's {@code causal=False}): cross-attention of a
 * decoder's tokens over encoders' K/V, more queries than the context has tokens included. Checked against decode, which
 * sees a whole context by its own code: each query row must get what a decode step of that query over the sequence gives.
 */
class NonCausalPrefillTest {

    @Test
    void eachQueryGetsWhatADecodeStepOverTheWholeContextGives() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("NonCausalPrefillTest cross-attention");
        SplittableRandom random = new SplittableRandom(seed);
        for (KvDtype dtype : new KvDtype[] {KvDtype.FP32, KvDtype.FP16}) {
            KvCache cache = new KvCache(KvCacheConfig.of(64, 16, 2, 32, dtype));
            AttentionSpec spec = AttentionSpec.of(cache.config(), 8);
            int[] encoders = {cache.createSequence(), cache.createSequence()};
            int[] lengths = {20, 150};                                   // the encoders' tokens
            int[] qLens = {40, 7};                                       // the decoders' (40 > 20: not tokens of the context)
            for (int i = 0; i < 2; i++) {
                float[] k = new float[lengths[i] * cache.config().tokenWidth()];
                float[] v = new float[k.length];
                for (int e = 0; e < k.length; e++) {
                    k[e] = (float) (random.nextDouble() * 2 - 1);
                    v[e] = (float) (random.nextDouble() * 2 - 1);
                }
                cache.appendTokens(encoders[i], k, v);
            }
            PrefillBatch batch = PrefillBatch.nonCausal(cache.batch(encoders), qLens);
            int row = spec.numQHeads() * spec.headDim();
            FloatArray q = new FloatArray(batch.totalQueries() * row);
            for (int e = 0; e < q.getSize(); e++) {
                q.set(e, (float) (random.nextDouble() * 2 - 1));
            }
            FloatArray out = new FloatArray(q.getSize());
            out.init(Float.NaN);
            try (JvmPrefillAttention prefill = new JvmPrefillAttention(cache, spec);
                 JvmDecodeAttention decode = new JvmDecodeAttention(cache, spec)) {
                prefill.prefill(batch, 0, q, out);
                for (int i = 0; i < 2; i++) {
                    for (int j = 0; j < qLens[i]; j++) {
                        int at = (batch.qStart(i) + j) * row;
                        FloatArray one = new FloatArray(row);
                        FloatArray want = new FloatArray(row);
                        for (int e = 0; e < row; e++) {
                            one.set(e, q.get(at + e));
                        }
                        decode.decode(cache.batch(encoders[i]), 0, one, want);
                        double[] got = new double[row];
                        double[] expected = new double[row];
                        for (int e = 0; e < row; e++) {
                            got[e] = out.get(at + e);
                            expected[e] = want.get(e);
                        }
                        double rel = ReferenceAttention.relativeL2(got, expected);
                        assertTrue(rel < 1e-5, dtype + " seed=" + seed + " seq " + i + " query " + j + ": relative L2 " + rel);
                    }
                }
            }
            Accuracy.assertClose(out, ReferencePrefill.prefill(cache, spec, 0, encoders, batch, q), dtype + " seed=" + seed);
            assertEquals(40L * 20 + 7L * 150, batch.attendedPairs());
        }
    }

    @Test
    void whatANonCausalBatchCannotHaveIsNamed() throws OutOfBlocksException {
        KvCache cache = new KvCache(KvCacheConfig.of(8, 4, 1, 8, KvDtype.FP32));
        int seq = cache.createSequence();
        cache.append(seq, 6);
        PrefillBatch batch = PrefillBatch.nonCausal(cache.batch(seq), new int[] {9});
        assertEquals("masks on a non-causal batch: its queries see whole contexts already",
                assertThrows(IllegalArgumentException.class, () -> batch.withMasks(TreeMask.causal(9))).getMessage());
        assertEquals("qLen[0]=0 must be >= 1", assertThrows(IllegalArgumentException.class,
                () -> PrefillBatch.nonCausal(cache.batch(seq), new int[] {0})).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> PrefillBatch.nonCausal(cache.batch(seq).window(3), new int[] {2}))
                .getMessage().startsWith("kv window=3"));
        AttentionSpec alibi = AttentionSpec.of(cache.config(), 2).withAlibi(AlibiSlopes.standard(2));
        try (JvmPrefillAttention attention = new JvmPrefillAttention(cache, alibi)) {
            FloatArray q = new FloatArray(9 * 2 * 8);
            assertTrue(assertThrows(IllegalArgumentException.class, () -> attention.prefill(batch, 0, q, new FloatArray(q.getSize())))
                    .getMessage().startsWith("batch is non-causal and spec has ALiBi"));
        }
        assertEquals(5, batch.position(0, 8), "every query at the context's last position");
        assertEquals(0, batch.firstVisible(0, 3));
        assertTrue(!batch.causal() && DecodeBatch.NO_WINDOW == batch.window());
    }
}
