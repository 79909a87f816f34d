package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.RandomKv;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PrefixCache;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Attention over sequences assembled from prefix-cached blocks equals, bit for bit, attention
 * over the same sequences written from scratch into a cache without prefix caching. K/V are a
 * fixed function of (token id, position, layer), as a model's would be, so equal prefixes have
 * equal K/V and only the cache's bookkeeping can make the two differ.
 */
class PrefixCachedAttentionTest {
    private static final int NUM_KV_HEADS = 2;
    private static final int HEAD_DIM = 40;
    private static final int NUM_Q_HEADS = 8;

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(1, KvDtype.FP16, 1), Arguments.of(4, KvDtype.FP32, 1), Arguments.of(16, KvDtype.FP16, 1),
                Arguments.of(5, KvDtype.FP16, 2), Arguments.of(16, KvDtype.FP32, 3));
    }

    @ParameterizedTest(name = "blockSize={0} {1} layers={2}")
    @MethodSource("cases")
    void prefixCachedSequencesGiveBitIdenticalAttention(int blockSize, KvDtype dtype, int numLayers) throws OutOfBlocksException {
        long seed = TestSeeds.fresh("prefixCachedSequencesGiveBitIdenticalAttention bs=" + blockSize + " " + dtype + " layers=" + numLayers);
        SplittableRandom random = new SplittableRandom(seed);
        int[][] prompts = prompts(random, blockSize);
        int[][] generated = new int[prompts.length][];
        for (int r = 0; r < prompts.length; r++) {
            generated[r] = tokens(random, random.nextInt(2 * blockSize + 2));
        }
        int blocksPerRequest = 0;
        for (int r = 0; r < prompts.length; r++) {
            blocksPerRequest = Math.max(blocksPerRequest, (prompts[r].length + generated[r].length) / blockSize + 1);
        }
        KvCacheConfig config = new KvCacheConfig(blocksPerRequest * (prompts.length + 2), blockSize, NUM_KV_HEADS, HEAD_DIM,
                dtype, numLayers);

        // With prefix caching: admit, write only what is not cached, commit, then generate.
        KvCache cached = new KvCache(config);
        RandomKv.shuffleFreeBlocks(cached, seed);
        PrefixCache prefix = cached.enablePrefixCaching();
        int[] cachedSeqs = new int[prompts.length];
        for (int r = 0; r < prompts.length; r++) {
            if (r == 2) {
                // A request that finished: its published blocks stay cached (evictable) and are revived below.
                PrefixCache.Admission gone = prefix.admit(prompts[1], null);
                ModelKv.write(cached, gone.seq(), prompts[1], gone.numCachedTokens(), numLayers);
                prefix.commit(gone.seq());
                cached.free(gone.seq());
            }
            PrefixCache.Admission a = prefix.admit(prompts[r], null);
            assertEquals(0, a.numCachedTokens() % blockSize, "cached tokens are whole blocks");
            ModelKv.write(cached, a.seq(), prompts[r], a.numCachedTokens(), numLayers);
            prefix.commit(a.seq());
            cachedSeqs[r] = a.seq();
        }
        for (int r = 0; r < prompts.length; r++) {
            int first = prefix.append(cachedSeqs[r], generated[r]);
            int[] all = concat(prompts[r], generated[r]);
            ModelKv.write(cached, cachedSeqs[r], all, first, numLayers);
            prefix.commit(cachedSeqs[r]);
        }
        PrefixCache.Metrics m = prefix.metrics();
        assertTrue(m.blockHits() > 0, "no prefix block was reused, the comparison would be trivial: " + m);
        assertEquals(cached.pageTable(cachedSeqs[0]).block(0), cached.pageTable(cachedSeqs[3]).block(0),
                "requests 0 and 3 share a system prompt but not its first block");

        // Without prefix caching: every sequence written in full.
        KvCache plain = new KvCache(config);
        RandomKv.shuffleFreeBlocks(plain, ~seed);
        int[] plainSeqs = new int[prompts.length];
        for (int r = 0; r < prompts.length; r++) {
            int[] all = concat(prompts[r], generated[r]);
            plainSeqs[r] = plain.createSequence();
            plain.append(plainSeqs[r], all.length);
            ModelKv.write(plain, plainSeqs[r], all, 0, numLayers);
        }

        AttentionSpec spec = AttentionSpec.of(config, NUM_Q_HEADS);
        FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, (int) spec.queryElements(prompts.length)));
        int layer = numLayers - 1;
        FloatArray a = poisoned(q.getSize());
        FloatArray b = poisoned(q.getSize());
        try (JvmDecodeAttention x = new JvmDecodeAttention(cached, spec); JvmDecodeAttention y = new JvmDecodeAttention(plain, spec)) {
            x.decode(cached.batch(cachedSeqs), layer, q, a);
            y.decode(plain.batch(plainSeqs), layer, q, b);
        }
        String what = "bs=" + blockSize + " " + dtype + " layers=" + numLayers + " seed=" + seed + " " + m;
        for (int i = 0; i < a.getSize(); i++) {
            if (Float.isNaN(a.get(i)) || Float.floatToRawIntBits(a.get(i)) != Float.floatToRawIntBits(b.get(i))) {
                fail(what + ": element " + i + " prefix-cached " + a.get(i) + " from scratch " + b.get(i));
            }
        }
        Accuracy.assertClose(a, ReferenceAttention.decode(plain, spec, layer, plainSeqs, q), what);
    }

    /**
     * Six prompts: 0, 1, 3 and 5 share a system prompt of a few blocks plus a partial block;
     * 4 is the system prompt cut inside its second block; 2 is unrelated.
     */
    private static int[][] prompts(SplittableRandom random, int blockSize) {
        int[] system = tokens(random, 3 * blockSize + random.nextInt(blockSize) + 1);
        List<int[]> out = new ArrayList<>();
        out.add(concat(system, tokens(random, 1 + random.nextInt(2 * blockSize))));
        out.add(concat(system, tokens(random, 1 + random.nextInt(2 * blockSize))));
        out.add(tokens(random, 2 * blockSize + 3));
        out.add(concat(system, tokens(random, blockSize)));
        out.add(Arrays.copyOf(system, blockSize + 1 + random.nextInt(blockSize)));
        out.add(system.clone());
        return out.toArray(int[][]::new);
    }


    private static int[] tokens(SplittableRandom random, int n) {
        return random.ints(n, 0, 128_000).toArray();
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
