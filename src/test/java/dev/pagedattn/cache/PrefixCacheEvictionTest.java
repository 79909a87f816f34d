package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Freed prefix blocks stay cached and evictable; eviction order, reset, and exhaustion in admit. */
class PrefixCacheEvictionTest {
    private static final int BS = 4;
    private static final int NUM_BLOCKS = 8;

    private KvCache cache;
    private PrefixCache prefix;
    private final PromptKv kv = new PromptKv();

    @BeforeEach
    void create() {
        cache = new KvCache(KvCacheConfig.of(NUM_BLOCKS, BS, 2, 2, KvDtype.FP32));
        prefix = cache.enablePrefixCaching();
    }

    private static int[] prompt(int first, int length) {
        return Tokens.range(first, length);
    }

    @Test
    void freedSequenceLeavesCommittedBlocksCachedAndEvictableTailFirst() throws Exception {
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt(1, 13), null); // 3 full + 1 partial
        int[] t = cache.pageTable(a.seq()).blocks();
        cache.free(a.seq());
        for (int i = 0; i < 3; i++) {
            assertTrue(prefix.isCached(t[i]));
            assertTrue(cache.pool().isEvictable(t[i]));
            assertEquals(0, cache.pool().refCount(t[i]));
        }
        assertFalse(cache.pool().isEvictable(t[3]), "the uncached partial block is plain free");
        assertEquals(3, cache.pool().numEvictable());
        assertEquals(NUM_BLOCKS - 3, cache.pool().numFree());
        assertEquals(NUM_BLOCKS, cache.numAllocatableBlocks());
        assertEquals(0, cache.numUsedBlocks());
        assertArrayEquals(new int[] {t[2], t[1], t[0]}, prefix.evictionOrder(), "tail before head");
    }

    @Test
    void lruEvictsTheLongestReleasedSequenceFirst() throws Exception {
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt(1, 9), null);
        PrefixCache.Admission b = kv.admitWriteCommit(cache, prompt(100, 9), null);
        int[] ta = cache.pageTable(a.seq()).blocks();
        int[] tb = cache.pageTable(b.seq()).blocks();
        cache.free(b.seq());
        cache.free(a.seq());
        assertArrayEquals(new int[] {tb[1], tb[0], ta[1], ta[0]}, prefix.evictionOrder());
    }

    @Test
    void neverCachedBlocksGoFirstThenLeastRecentlyReleased() throws Exception {
        int[] p = prompt(1, 13);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, p, null); // caches 3 blocks
        int[] t = cache.pageTable(a.seq()).blocks();
        cache.free(a.seq());
        // 5 free blocks: a 20-token prompt takes them all without touching the cache
        PrefixCache.Admission b = kv.admitWriteCommit(cache, prompt(200, 20), null);
        assertEquals(0, prefix.metrics().evictions());
        for (int i = 0; i < 3; i++) {
            assertTrue(prefix.isCached(t[i]), "cached block " + t[i] + " was taken while free blocks were left");
        }
        // one more block: evicts a's tail
        PrefixCache.Admission c = kv.admitWriteCommit(cache, prompt(300, 1), null);
        assertEquals(t[2], cache.pageTable(c.seq()).block(0));
        assertEquals(1, prefix.metrics().evictions());
        assertFalse(prefix.isCached(t[2]));
        assertTrue(prefix.isCached(t[1]));
        assertArrayEquals(new int[] {t[1], t[0]}, prefix.evictionOrder());
        // a's prompt now finds only its head
        cache.free(b.seq());
        cache.free(c.seq());
        PrefixCache.Admission again = prefix.admit(p, null);
        assertEquals(8, again.numCachedTokens());
        assertArrayEquals(Arrays.copyOf(t, 2), Arrays.copyOf(cache.pageTable(again.seq()).blocks(), 2));
        kv.write(cache, again.seq(), null, p, 8);
        kv.assertHolds(cache, again.seq(), null, p);
    }

    @Test
    void hitOnAnEvictableBlockRevivesIt() throws Exception {
        int[] p = prompt(1, 9);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, p, null);
        int[] t = cache.pageTable(a.seq()).blocks();
        cache.free(a.seq());
        assertEquals(2, cache.pool().numEvictable());
        PrefixCache.Admission b = prefix.admit(p, null);
        assertEquals(8, b.numCachedTokens());
        assertEquals(0, cache.pool().numEvictable());
        assertEquals(1, cache.pool().refCount(t[0]));
        assertEquals(1, cache.pool().refCount(t[1]));
        assertEquals(0, prefix.evictionOrder().length);
        kv.write(cache, b.seq(), null, p, 8);
        kv.assertHolds(cache, b.seq(), null, p);
    }

    @Test
    void blockInUseIsNeverEvicted() throws Exception {
        int[] p = prompt(1, 9);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, p, null); // 3 blocks in use, 2 cached
        PrefixCache.Admission b = kv.admitWriteCommit(cache, prompt(100, 9), null);
        cache.free(b.seq());                                            // 2 evictable, 3 free
        // 5 allocatable: a 20-token prompt takes the 3 free and evicts both of b's cached blocks
        PrefixCache.Admission c = kv.admitWriteCommit(cache, prompt(200, 20), null);
        assertEquals(2, prefix.metrics().evictions());
        assertEquals(0, cache.numAllocatableBlocks());
        int[] ta = cache.pageTable(a.seq()).blocks();
        assertTrue(prefix.isCached(ta[0]) && prefix.isCached(ta[1]));
        // nothing left: the next admission fails instead of taking a's blocks
        CacheSnapshot before = CacheSnapshot.of(cache);
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> prefix.admit(prompt(300, 2), null));
        assertEquals(1, e.numNeeded());
        assertEquals(0, e.numAllocatable());
        assertEquals(before, CacheSnapshot.of(cache));
        kv.assertHolds(cache, a.seq(), null, p);
        kv.assertHolds(cache, c.seq(), null, prompt(200, 20));
        // a hit on a's blocks still needs a block for the last token
        OutOfBlocksException hit = assertThrows(OutOfBlocksException.class, () -> prefix.admit(p, null));
        assertEquals(1, hit.numNeeded());
        assertEquals(before, CacheSnapshot.of(cache));
        cache.free(c.seq());
        PrefixCache.Admission d = prefix.admit(p, null);
        assertEquals(8, d.numCachedTokens());
        assertEquals(2, cache.pool().refCount(ta[0]), "shared with a, which still runs");
    }

    @Test
    void admitThatDoesNotFitChangesNothingWhenItsHitsAreEvictable() throws Exception {
        // pool of 4: a 7-token prompt at block size 2 caches 3 blocks, then is freed
        KvCache small = new KvCache(KvCacheConfig.of(4, 2, 1, 2, KvDtype.FP32));
        PrefixCache p = small.enablePrefixCaching();
        int[] base = prompt(1, 7);
        PrefixCache.Admission a = kv.admitWriteCommit(small, base, null);
        small.free(a.seq());
        assertEquals(3, small.pool().numEvictable());
        assertEquals(4, small.numAllocatableBlocks());
        CacheSnapshot before = CacheSnapshot.of(small);
        // 9 tokens: 3 hits (revived, so no longer allocatable) + 2 new blocks; only 1 block is left
        int[] longer = Tokens.concat(Arrays.copyOf(base, 6), 50, 51, 52);
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> p.admit(longer, null));
        assertEquals(2, e.numNeeded());
        assertEquals(1, e.numAllocatable());
        assertEquals(before, CacheSnapshot.of(small));
        // 8 tokens: 3 hits + 1 new block fits exactly, and the new block must not be one of the hits
        int[] fits = Tokens.concat(Arrays.copyOf(base, 6), 50, 51);
        PrefixCache.Admission b = p.admit(fits, null);
        assertEquals(6, b.numCachedTokens());
        assertEquals(0, p.metrics().evictions());
        assertEquals(4, small.numUsedBlocks());
        kv.write(small, b.seq(), null, fits, 6);
        kv.assertHolds(small, b.seq(), null, fits);
    }

    @Test
    void appendThatDoesNotFitLeavesTheTokenHistoryUntouched() throws Exception {
        int[] p = prompt(1, 6);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, p, null);                // 2 blocks
        PrefixCache.Admission filler = kv.admitWriteCommit(cache, prompt(100, 24), null); // the other 6
        assertEquals(0, cache.numAllocatableBlocks());
        CacheSnapshot before = CacheSnapshot.of(cache);
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> prefix.append(a.seq(), new int[] {7, 8, 9}));
        assertEquals(1, e.numNeeded());
        assertEquals(before, CacheSnapshot.of(cache));
        // the failed tokens must not be remembered: after room is made, the real continuation is hashed
        cache.free(filler.seq());
        int[] all = Tokens.concat(p, 70, 71);
        prefix.append(a.seq(), new int[] {70, 71});
        kv.write(cache, a.seq(), null, all, 6);
        prefix.commit(a.seq());
        PrefixCache.Admission b = prefix.admit(Tokens.concat(all, 1), null);
        assertEquals(8, b.numCachedTokens());
        kv.write(cache, b.seq(), null, Tokens.concat(all, 1), 8);
        kv.assertHolds(cache, b.seq(), null, Tokens.concat(all, 1));
    }

    @Test
    void resetEmptiesTheCache() throws Exception {
        int[] p = prompt(1, 9);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, p, null);
        prefix.admit(p, null);
        cache.free(a.seq());
        cache.free(a.seq() + 1);
        assertEquals(2, prefix.metrics().numCachedBlocks());
        prefix.reset();
        PrefixCache.Metrics m = prefix.metrics();
        assertEquals(0, m.numCachedBlocks());
        assertEquals(0, m.requests());
        assertEquals(0, m.blockLookups());
        assertEquals(0, m.blockHits());
        assertEquals(0, m.tokensReused());
        assertEquals(0, m.evictions());
        assertEquals(0, cache.pool().numEvictable());
        assertEquals(NUM_BLOCKS, cache.pool().numFree());
        for (int b = 0; b < NUM_BLOCKS; b++) {
            assertFalse(prefix.isCached(b));
        }
        assertEquals(0, prefix.admit(p, null).numCachedTokens(), "nothing to reuse after reset");
    }

    @Test
    void resetIsRefusedWhileBlocksAreInUse() throws Exception {
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt(1, 9), null);
        kv.admitWriteCommit(cache, prompt(50, 5), null);
        cache.free(a.seq());
        CacheSnapshot before = CacheSnapshot.of(cache);
        IllegalStateException e = assertThrows(IllegalStateException.class, prefix::reset);
        assertTrue(e.getMessage().contains("numUsedBlocks=2"), e.getMessage());
        assertEquals(before, CacheSnapshot.of(cache));
    }
}
