package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PrefixCache;
import dev.pagedattn.cache.RandomKv;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The prefix-cache path end to end: {@code PrefixCache.admit} reuses a shared system prompt, the
 * new tokens' K/V are written, and prefill over cached + new tokens equals, bit for bit, prefill
 * over a cache written from scratch, with and without attention sinks and soft-capping. K/V are a fixed function of (token id, position,
 * layer).
 */
class PrefixCachedPrefillTest {
    private static final int LAYERS = 2;
    private static final int NUM_KV_HEADS = 2;
    private static final int HEAD_DIM = 40;
    private static final int NUM_Q_HEADS = 8;

    @ParameterizedTest(name = "blockSize={0} {1} window={2} sinks={3} softCap={4}")
    @CsvSource({"16, FP16, 2147483647, false, 0", "4, FP32, 2147483647, true, 0", "16, FP32, 7, false, 0", "5, FP16, 23, true, 0",
            "16, FP16, 2147483647, true, 0", "16, FP16, 2147483647, true, 50", "5, FP32, 23, false, 10"})
    void prefillAfterAPrefixHitEqualsPrefillOverACacheWrittenFromScratch(int blockSize, KvDtype dtype, int window, boolean sinks,
                                                                        float softCap) throws OutOfBlocksException {
        long seed = TestSeeds.fresh("prefillAfterAPrefixHit bs=" + blockSize + " " + dtype + " window=" + window + " sinks=" + sinks
                + " softCap=" + softCap);
        SplittableRandom random = new SplittableRandom(seed);
        int[] system = random.ints(5 * blockSize + random.nextInt(blockSize), 0, 128_000).toArray();
        int[] first = concat(system, random.ints(1 + random.nextInt(20), 0, 128_000).toArray());
        int[] second = concat(system, random.ints(1 + random.nextInt(3 * blockSize), 0, 128_000).toArray());
        KvCacheConfig config = new KvCacheConfig(4 * (second.length + first.length) / blockSize + 8, blockSize, NUM_KV_HEADS,
                HEAD_DIM, dtype, LAYERS);
        int layer = 1;

        KvCache cached = new KvCache(config);
        RandomKv.shuffleFreeBlocks(cached, seed);
        PrefixCache prefix = cached.enablePrefixCaching();
        PrefixCache.Admission a1 = prefix.admit(first, null);
        ModelKv.write(cached, a1.seq(), first, a1.numCachedTokens(), LAYERS);
        prefix.commit(a1.seq());
        PrefixCache.Admission a2 = prefix.admit(second, null);
        assertTrue(a2.numCachedTokens() >= blockSize, "the system prompt was not reused: " + a2);
        ModelKv.write(cached, a2.seq(), second, a2.numCachedTokens(), LAYERS);
        int newTokens = second.length - a2.numCachedTokens();

        KvCache plain = new KvCache(config);
        RandomKv.shuffleFreeBlocks(plain, ~seed);
        int seq = plain.createSequence();
        plain.append(seq, second.length);
        ModelKv.write(plain, seq, second, 0, LAYERS);

        AttentionSpec plainSpec = AttentionSpec.of(config, NUM_Q_HEADS);
        AttentionSpec spec = (sinks ? plainSpec.withSinks(DecodeWorkload.randomSinks(LAYERS, NUM_Q_HEADS, 1, seed)) : plainSpec)
                .withSoftCap(softCap);
        FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, newTokens * NUM_Q_HEADS * HEAD_DIM));
        if (softCap > 0) {
            SoftCapProperties.louder(q, softCap); // raw scores beyond the cap
        }
        PrefillBatch fromCache = PrefillBatch.of(cached.batch(a2.seq()), new int[] {newTokens}, window);
        PrefillBatch fromScratch = PrefillBatch.of(plain.batch(seq), new int[] {newTokens}, window);
        FloatArray a = poisoned(q.getSize());
        FloatArray b = poisoned(q.getSize());
        try (JvmPrefillAttention x = new JvmPrefillAttention(cached, spec); JvmPrefillAttention y = new JvmPrefillAttention(plain, spec)) {
            x.prefill(fromCache, layer, q, a);
            y.prefill(fromScratch, layer, q, b);
        }
        String what = "bs=" + blockSize + " " + dtype + " softCap=" + softCap + " cached=" + a2.numCachedTokens() + " new=" + newTokens + " seed=" + seed;
        JvmPrefillAttentionTest.assertBitEqual(a, 0, b, 0, a.getSize(), what);
        Accuracy.assertClose(a, ReferencePrefill.prefill(plain, spec, layer, new int[] {seq}, fromScratch, q), what);
    }


    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private static FloatArray poisoned(int n) {
        FloatArray out = new FloatArray(n);
        out.init(Float.NaN);
        return out;
    }
}
