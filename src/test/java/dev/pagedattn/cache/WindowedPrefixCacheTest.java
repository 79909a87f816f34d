package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * {@link PrefixCache#admit(int[], String, int)}: a model whose every layer attends through a window needs only the blocks
 * its window sees, so a prompt whose early blocks were evicted still hits, and the new sequence starts without them.
 */
class WindowedPrefixCacheTest {
    private static final int BS = 4;

    @Test
    void aWindowedAdmissionNeedsOnlyTheBlocksItsWindowSees() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(20, BS, 1, 2, KvDtype.FP32, 2));
        PrefixCache prefix = cache.enablePrefixCaching();
        PromptKv kv = new PromptKv();
        int[] prompt = Tokens.range(1, 41);                       // 10 reusable blocks, 11 in all
        PrefixCache.Admission a = prefix.admit(prompt, null);
        kv.write(cache, a.seq(), null, prompt, 0);
        prefix.commit(a.seq());
        assertEquals(5, cache.releaseBefore(a.seq(), 20));        // blocks 0..4 go back, cached: evictable 4, 3, 2, 1, 0
        PrefixCache.Admission other = prefix.admit(Tokens.range(1000, 48), null); // 12 blocks: the 9 free ones and 4, 3, 2
        assertEquals(0, other.numCachedTokens());
        int[] chain = prefix.cachedChain(prompt, null);
        assertTrue(chain[0] >= 0 && chain[1] >= 0, "blocks 0 and 1 cached");
        for (int i = 2; i < 5; i++) {
            assertEquals(-1, chain[i], "block " + i + " evicted");
        }
        for (int i = 5; i < 10; i++) {
            assertTrue(chain[i] >= 0, "block " + i + " still held by the first sequence");
        }
        // through a window of 6 the first recomputed token (position 40) sees 35..40: blocks 8 and 9
        PrefixCache.Lookup look = prefix.lookup(prompt, null, 6);
        assertEquals(40, look.numCachedTokens(), "the lookup foretells the windowed hit");
        assertTrue(prefix.lookup(prompt, null).numCachedTokens() < 40, "the plain lookup stops at the first evicted block");
        PrefixCache.Admission again = prefix.admit(prompt, null, 6);
        assertEquals(40, again.numCachedTokens());
        assertEquals(32, cache.firstHeldPosition(again.seq()));
        assertEquals(8, cache.pageTable(again.seq()).numReleased());
        int[] ids = kv.ids(null, prompt);
        for (int p = 32; p < 40; p++) {
            for (int layer = 0; layer < 2; layer++) {
                assertEquals(Tokens.k(ids[p], layer, 0, 1), cache.readK(again.seq(), layer, p, 0, 1), "position " + p);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> cache.readK(again.seq(), 0, 31, 0, 0));
        assertEquals(0, prefix.admit(Tokens.range(5000, 1), null, 6).numCachedTokens(), "a one-token prompt reuses nothing");
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> prefix.admit(prompt, null, 0));
        assertTrue(bad.getMessage().startsWith("window=0"), bad.getMessage());
        cache.verify();
    }

    @Test
    void withoutAWindowItIsThePlainAdmission() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(30, BS, 1, 2, KvDtype.FP32, 1));
        PrefixCache prefix = cache.enablePrefixCaching();
        int[] prompt = Tokens.range(1, 25);
        PrefixCache.Admission a = prefix.admit(prompt, null);
        new PromptKv().write(cache, a.seq(), null, prompt, 0);
        prefix.commit(a.seq());
        PrefixCache.Admission full = prefix.admit(prompt, null, DecodeBatch.NO_WINDOW);
        assertEquals(24, full.numCachedTokens());
        assertEquals(0, cache.firstHeldPosition(full.seq()));
        assertArrayEquals(java.util.Arrays.copyOf(cache.pageTable(a.seq()).blocks(), 6),
                java.util.Arrays.copyOf(cache.pageTable(full.seq()).blocks(), 6));
    }
}
