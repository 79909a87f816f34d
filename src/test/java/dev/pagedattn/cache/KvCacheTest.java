package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;

/** Sequences: create, append, load K/V, read back, free. */
class KvCacheTest {

    @Test
    void createdSequencesAreEmptyAndHaveDistinctIds() {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 4, 1, 2, KvDtype.FP32));
        Set<Integer> ids = new HashSet<>();
        for (int i = 0; i < 10; i++) {
            int seq = cache.createSequence();
            assertTrue(ids.add(seq));
            assertTrue(cache.contains(seq));
            assertEquals(0, cache.length(seq));
            assertEquals(0, cache.pageTable(seq).numBlocks());
        }
        assertEquals(10, cache.numSequences());
        assertEquals(0, cache.numUsedBlocks(), "an empty sequence holds no block");
        cache.verify();
    }

    @RepeatedTest(3)
    void appendingOneTokenAtATimeTakesABlockAtEachBoundary() throws Exception {
        Random random = TestRandom.create("KvCacheTest.appendingOneTokenAtATimeTakesABlockAtEachBoundary");
        int blockSize = 1 + random.nextInt(7);
        KvCache cache = new KvCache(KvCacheConfig.of(6, blockSize, 2, 3, KvDtype.FP32));
        int seq = cache.createSequence();
        for (int n = 0; n < 6 * blockSize; n++) {
            int expectedNew = n % blockSize == 0 ? 1 : 0;
            assertEquals(expectedNew, cache.blocksNeeded(seq, 1), "blockSize=" + blockSize + " n=" + n);
            assertEquals(n, Tokens.append(cache, seq, 1000 + n), "append returns the position of the token");
            assertEquals(n + 1, cache.length(seq));
            assertEquals(n / blockSize + 1, cache.pageTable(seq).numBlocks());
            assertEquals(n / blockSize + 1, cache.numUsedBlocks());
        }
        Tokens.assertHolds(cache, seq, Tokens.range(1000, 6 * blockSize));
        assertFalse(cache.canAppend(seq, 1), "pool is full");
    }

    @RepeatedTest(3)
    void appendingManyTokensReservesCeilOfBlocksAndReturnsTheFirstPosition() throws Exception {
        Random random = TestRandom.create("KvCacheTest.appendingManyTokensReservesCeilOfBlocksAndReturnsTheFirstPosition");
        int blockSize = 1 + random.nextInt(9);
        KvCache cache = new KvCache(KvCacheConfig.of(200, blockSize, 1, 1, KvDtype.FP32));
        int seq = cache.createSequence();
        int length = 0;
        for (int i = 0; i < 8; i++) {
            int n = random.nextInt(3 * blockSize + 2);
            assertEquals(length, cache.append(seq, n));
            length += n;
            assertEquals(length, cache.length(seq));
            assertEquals((length + blockSize - 1) / blockSize, cache.pageTable(seq).numBlocks());
        }
        cache.verify();
    }

    @Test
    void appendingZeroTokensChangesNothing() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 4, 1, 2, KvDtype.FP32));
        int seq = cache.createSequence();
        Tokens.append(cache, seq, 1, 2, 3);
        CacheSnapshot before = CacheSnapshot.of(cache);
        assertEquals(0, cache.blocksNeeded(seq, 0));
        assertEquals(3, cache.append(seq, 0));
        assertEquals(before, CacheSnapshot.of(cache));
    }

    @Test
    void writeStoresOneTokenForEveryKvHeadThroughThePageTable() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(8, 4, 3, 5, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        RandomKv.shuffleFreeBlocks(cache, 7);
        int seq = cache.createSequence();
        int pos = cache.append(seq, 6);
        cache.write(seq, 0, 5, Tokens.k(c, 0, 77), Tokens.v(c, 0, 77));
        assertEquals(0, pos);
        int block = cache.pageTable(seq).block(1);
        for (int h = 0; h < 3; h++) {
            for (int d = 0; d < 5; d++) {
                assertEquals(Tokens.k(77, 0, h, d), cache.readK(seq, 0, 5, h, d));
                assertEquals(Tokens.v(77, 0, h, d), cache.readV(seq, 0, 5, h, d));
                assertEquals(Tokens.k(77, 0, h, d), cache.keys(0).get(cache.layout().offset(block, h, 1, d)));
            }
        }
        for (int h = 0; h < 3; h++) {
            assertEquals(0f, cache.readK(seq, 0, 4, h, 0), "neighbouring slot untouched");
        }
    }

    @RepeatedTest(3)
    void bulkLoadedPromptReadsBackExactlyInFp32() throws Exception {
        Random random = TestRandom.create("KvCacheTest.bulkLoadedPromptReadsBackExactlyInFp32");
        KvCacheConfig c = KvCacheConfig.of(32, 1 + random.nextInt(8), 1 + random.nextInt(4), 1 + random.nextInt(16), KvDtype.FP32);
        KvCache cache = new KvCache(c);
        RandomKv.shuffleFreeBlocks(cache, random.nextLong());
        int seq = cache.createSequence();
        int n = 1 + random.nextInt(20 * c.blockSize());
        float[] k = randomFloats(random, n * c.tokenWidth());
        float[] v = randomFloats(random, n * c.tokenWidth());
        assertEquals(0, cache.appendTokens(seq, k, v));
        assertEquals(n, cache.length(seq));
        for (int p = 0; p < n; p++) {
            for (int h = 0; h < c.numKvHeads(); h++) {
                for (int d = 0; d < c.headDim(); d++) {
                    int i = p * c.tokenWidth() + h * c.headDim() + d;
                    assertEquals(k[i], cache.readK(seq, 0, p, h, d));
                    assertEquals(v[i], cache.readV(seq, 0, p, h, d));
                }
            }
        }
    }

    @RepeatedTest(3)
    void bulkLoadedPromptReadsBackRoundedInFp16() throws Exception {
        Random random = TestRandom.create("KvCacheTest.bulkLoadedPromptReadsBackRoundedInFp16");
        KvCacheConfig c = KvCacheConfig.of(32, 1 + random.nextInt(8), 1 + random.nextInt(4), 1 + random.nextInt(16), KvDtype.FP16);
        KvCache cache = new KvCache(c);
        RandomKv.shuffleFreeBlocks(cache, random.nextLong());
        int seq = cache.createSequence();
        // two loads: appendTokens for the prompt, append + writeTokens for the rest
        int n1 = 1 + random.nextInt(10 * c.blockSize());
        int n2 = 1 + random.nextInt(10 * c.blockSize());
        float[] k = randomFloats(random, (n1 + n2) * c.tokenWidth());
        float[] v = randomFloats(random, (n1 + n2) * c.tokenWidth());
        int w = c.tokenWidth();
        cache.appendTokens(seq, java.util.Arrays.copyOf(k, n1 * w), java.util.Arrays.copyOf(v, n1 * w));
        assertEquals(n1, cache.append(seq, n2));
        cache.writeTokens(seq, 0, n1, n2, java.util.Arrays.copyOfRange(k, n1 * w, k.length),
                java.util.Arrays.copyOfRange(v, n1 * w, v.length));
        for (int p = 0; p < n1 + n2; p++) {
            for (int h = 0; h < c.numKvHeads(); h++) {
                for (int d = 0; d < c.headDim(); d++) {
                    int i = p * w + h * c.headDim() + d;
                    assertEquals(Float.float16ToFloat(Float.floatToFloat16(k[i])), cache.readK(seq, 0, p, h, d), "k=" + k[i]);
                    assertEquals(Float.float16ToFloat(Float.floatToFloat16(v[i])), cache.readV(seq, 0, p, h, d), "v=" + v[i]);
                }
            }
        }
    }

    @Test
    void fp16RoundingIsVisible() throws Exception {
        // guards the fp16 test above against a pool that silently stores fp32
        KvCacheConfig c = KvCacheConfig.of(1, 1, 1, 1, KvDtype.FP16);
        KvCache cache = new KvCache(c);
        int seq = cache.createSequence();
        cache.appendTokens(seq, new float[] {0.1f}, new float[] {70000f});
        assertNotEquals(0.1f, cache.readK(seq, 0, 0, 0, 0));
        assertEquals(Float.float16ToFloat(Float.floatToFloat16(0.1f)), cache.readK(seq, 0, 0, 0, 0));
        assertEquals(Float.POSITIVE_INFINITY, cache.readV(seq, 0, 0, 0, 0));
    }

    @Test
    void layersOfOneSequenceAreStoredApart() throws Exception {
        KvCacheConfig c = new KvCacheConfig(6, 3, 2, 4, KvDtype.FP32, 3);
        KvCache cache = new KvCache(c);
        int a = cache.createSequence();
        int b = cache.createSequence();
        cache.append(a, 5);
        cache.append(b, 4);
        // write layer 1 first, then 0 and 2 of a, then b's layers: each write must leave the others alone
        int[] idsA = Tokens.range(10, 5);
        int[] idsB = Tokens.range(20, 4);
        for (int layer : new int[] {1, 0, 2}) {
            cache.writeTokens(a, layer, 0, 5, Tokens.k(c, layer, idsA), Tokens.v(c, layer, idsA));
        }
        for (int layer : new int[] {2, 1, 0}) {
            cache.writeTokens(b, layer, 0, 4, Tokens.k(c, layer, idsB), Tokens.v(c, layer, idsB));
        }
        Tokens.assertHolds(cache, a, idsA);
        Tokens.assertHolds(cache, b, idsB);
        // rewriting one layer of one token changes only that layer
        cache.write(a, 1, 2, Tokens.k(c, 1, 99), Tokens.v(c, 1, 99));
        for (int layer = 0; layer < 3; layer++) {
            int id = layer == 1 ? 99 : 12;
            assertEquals(Tokens.k(id, layer, 1, 3), cache.readK(a, layer, 2, 1, 3), "layer " + layer);
        }
        Tokens.assertHolds(cache, b, idsB);
    }

    @Test
    void freeGivesEveryBlockBackForReuse() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(5, 2, 1, 1, KvDtype.FP32));
        int a = cache.createSequence();
        Tokens.append(cache, a, Tokens.range(0, 10));
        assertEquals(5, cache.numUsedBlocks());
        assertEquals(0, cache.numAllocatableBlocks());
        int[] blocks = cache.pageTable(a).blocks();
        cache.free(a);
        assertFalse(cache.contains(a));
        assertEquals(0, cache.numSequences());
        assertEquals(0, cache.numUsedBlocks());
        assertEquals(5, cache.numAllocatableBlocks());
        for (int blk : blocks) {
            assertEquals(0, cache.pool().refCount(blk));
        }
        int b = cache.createSequence();
        Tokens.append(cache, b, Tokens.range(50, 10));
        Tokens.assertHolds(cache, b, Tokens.range(50, 10));
        assertEquals(new HashSet<>(CacheSnapshot.boxed(blocks)), new HashSet<>(CacheSnapshot.boxed(cache.pageTable(b).blocks())));
    }

    @Test
    void pageTableIsASnapshot() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(5, 2, 1, 1, KvDtype.FP32));
        int seq = cache.createSequence();
        cache.append(seq, 3);
        PageTable snapshot = cache.pageTable(seq);
        cache.append(seq, 3);
        assertEquals(2, snapshot.numBlocks());
        assertEquals(3, snapshot.numTokens());
        assertEquals(3, cache.pageTable(seq).numBlocks());
        assertArrayEquals(java.util.Arrays.copyOf(cache.pageTable(seq).blocks(), 2), snapshot.blocks());
    }

    private static float[] randomFloats(Random random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextGaussian() * (random.nextBoolean() ? 1 : 300));
        }
        return a;
    }
}
