package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Prefix caching on a {@link HybridKvCache}: a hit is what every group can serve (the full layers every block of it, a
 * windowed group only the blocks its window sees, starting without the rest), appends and commits reach every group, and
 * refusals change nothing.
 */
class HybridPrefixCacheTest {
    private static final int F = DecodeBatch.NO_WINDOW;
    private static final int BS = 4;

    private static HybridKvCache cache(int window, int windowBlocks, int fullBlocks) {
        HybridKvCache cache = HybridKvCache.of(new int[] {window, F}, new int[] {windowBlocks, fullBlocks}, BS, 1, 2, KvDtype.FP32);
        cache.enablePrefixCaching();
        return cache;
    }

    /** Admits {@code ids}, writes the K/V of its uncached tokens in both layers and commits; returns the admission. */
    private static PrefixCache.Admission admitAndWrite(HybridKvCache cache, int[] ids) throws OutOfBlocksException {
        PrefixCache.Admission a = cache.admit(ids, null);
        KvCacheConfig c = cache.group(0).config();
        int from = a.numCachedTokens();
        int[] fresh = java.util.Arrays.copyOfRange(ids, from, ids.length);
        for (int layer = 0; layer < 2; layer++) {
            cache.writeTokens(a.seq(), layer, from, fresh.length, Tokens.k(c, layer, fresh), Tokens.v(c, layer, fresh));
        }
        cache.commit(a.seq());
        return a;
    }

    @Test
    void aRepeatedPromptHitsInBothGroupsAndTheWindowedOneStartsAtItsWindow() throws Exception {
        HybridKvCache cache = cache(6, 20, 20);
        int[] prompt = Tokens.range(100, 30);                    // 7 full blocks and a half one
        PrefixCache.Admission first = admitAndWrite(cache, prompt);
        assertEquals(0, first.numCachedTokens());
        PrefixCache.Admission second = admitAndWrite(cache, prompt);
        assertEquals(28, second.numCachedTokens(), "7 blocks before the one holding the last token");
        // the first recomputed token, at 28, sees 23..28 through a window of 6: blocks 5 and 6 of the windowed group
        assertEquals(20, cache.group(0).firstHeldPosition(second.seq()));
        assertEquals(0, cache.group(1).firstHeldPosition(second.seq()));
        int[] windowed = cache.group(0).pageTable(second.seq()).blocks();
        int[] firstWindowed = cache.group(0).pageTable(first.seq()).blocks();
        assertEquals(PageTable.RELEASED, windowed[4]);
        assertArrayEquals(java.util.Arrays.copyOfRange(firstWindowed, 5, 7), java.util.Arrays.copyOfRange(windowed, 5, 7),
                "blocks 5 and 6 shared");
        assertArrayEquals(java.util.Arrays.copyOfRange(cache.group(1).pageTable(first.seq()).blocks(), 0, 7),
                java.util.Arrays.copyOfRange(cache.group(1).pageTable(second.seq()).blocks(), 0, 7), "the full layer shares all 7");
        for (int p = 20; p < 30; p++) {
            assertEquals(Tokens.k(100 + p, 0, 0, 1), cache.readK(second.seq(), 0, p, 0, 1), "windowed layer, position " + p);
        }
        for (int p = 0; p < 30; p++) {
            assertEquals(Tokens.k(100 + p, 1, 0, 0), cache.readK(second.seq(), 1, p, 0, 0), "full layer, position " + p);
        }
        cache.verify();
    }

    @Test
    void aHitIsWhatEveryGroupCanServe() throws Exception {
        HybridKvCache cache = cache(6, 20, 40);
        int[] prompt = Tokens.range(1, 41);                      // 10 reusable blocks (the 11th holds the last token)
        PrefixCache.Admission a = admitAndWrite(cache, prompt);
        cache.free(a.seq());                                     // tail first: block 9 is the next the pools evict
        // another prompt takes every free block of the windowed group's pool and one more: block 9 of the first prompt
        // goes there, the full group (twice the pool) evicts nothing
        PrefixCache.Admission other = cache.admit(Tokens.range(500, 41), null);
        assertEquals(0, other.numCachedTokens());
        PrefixCache.Admission again = cache.admit(prompt, null);
        // the full layer could serve all 10 blocks; the windowed one lacks block 9, which a hit of 10 needs (positions
        // 35..39); a hit of 9 needs blocks 7 and 8 (positions 31..35), both cached
        assertEquals(36, again.numCachedTokens());
        assertEquals(28, cache.group(0).firstHeldPosition(again.seq()));
        assertEquals(0, cache.group(1).firstHeldPosition(again.seq()));
        PrefixCache.Metrics windowed = cache.group(0).prefixCache().metrics();
        assertEquals(2, windowed.blockHits(), "the windowed group reused blocks 7 and 8");
        assertEquals(9, cache.group(1).prefixCache().metrics().blockHits(), "the full group reused blocks 0..8");
        cache.verify();
    }

    /**
     * {@link #aHitIsWhatEveryGroupCanServe} with host memory behind both groups: the block the windowed group evicted
     * comes back from host memory, so the hit is the whole reusable prompt again.
     */
    @Test
    void aBlockAGroupEvictedComesBackFromHostMemory() throws Exception {
        HybridKvCache cache = cache(6, 20, 40);
        assertEquals("host offload backs the prefix cache: call enablePrefixCaching() first", assertThrows(
                IllegalStateException.class, () -> HybridKvCache.of(new int[] {6, F}, new int[] {4, 4}, BS, 1, 2, KvDtype.FP32)
                        .enableHostOffload(1 << 20)).getMessage());
        int[] blocks = cache.enableHostOffload(60 * 2L * 2 * BS * 4);         // 60 blocks' bytes of one layer's K and V
        assertEquals(20, blocks[0], "a third to the windowed group, whose pool is a third of the bytes");
        assertEquals(40, blocks[1]);
        int[] prompt = Tokens.range(1, 41);
        PrefixCache.Admission a = admitAndWrite(cache, prompt);
        cache.free(a.seq());
        cache.admit(Tokens.range(500, 41), null);
        assertEquals(1, cache.group(0).prefixCache().hostMetrics().offloaded());
        PrefixCache.Lookup[] look = cache.lookup(prompt, null);
        assertEquals(40, look[0].numCachedTokens());
        assertEquals(1, look[0].numHostBlocks(), "the windowed group brings block 9 back");
        assertEquals(40, look[1].numCachedTokens());
        assertEquals(0, look[1].numHostBlocks());
        PrefixCache.Admission again = cache.admit(prompt, null);
        assertEquals(40, again.numCachedTokens(), "block 9 from host memory: every reusable block hits");
        assertEquals(1, cache.group(0).prefixCache().hostMetrics().restored());
        for (int p = 35; p < 40; p++) {
            assertEquals(Tokens.k(1 + p, 0, 0, 1), cache.readK(again.seq(), 0, p, 0, 1), "windowed layer, position " + p);
        }
        cache.verify();
    }

    @Test
    void refusedAdmissionsAndAppendsChangeNothing() throws Exception {
        HybridKvCache cache = cache(6, 20, 9);
        int[] prompt = Tokens.range(1, 30);
        admitAndWrite(cache, prompt);                            // 8 full-group blocks used
        long used = cache.numUsedBlocks();
        int sequences = cache.numSequences();
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.admit(Tokens.range(500, 30), null));
        assertEquals(8, e.numNeeded());
        assertEquals(used, cache.numUsedBlocks());
        assertEquals(sequences, cache.numSequences());
        cache.verify();
        int plain = cache.createSequence();
        IllegalArgumentException notAdmitted = assertThrows(IllegalArgumentException.class, () -> cache.append(plain, new int[] {1}));
        assertTrue(notAdmitted.getMessage().contains("was not created by PrefixCache.admit"), notAdmitted.getMessage());
        assertEquals(0, cache.length(plain));
        HybridKvCache off = HybridKvCache.of(new int[] {6, F}, new int[] {4, 4}, BS, 1, 2, KvDtype.FP32);
        IllegalStateException noCaching = assertThrows(IllegalStateException.class, () -> off.admit(prompt, null));
        assertTrue(noCaching.getMessage().contains("enablePrefixCaching"), noCaching.getMessage());
    }
}
