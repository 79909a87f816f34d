package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Sliding-window block release ({@link KvCache#releaseBefore}, {@link KvCache#releaseOutsideWindow}): which blocks go
 * back, what a sequence keeps, and what is refused afterwards (writes and reads of released positions, batches that
 * would read them, batches taken before the release), each refusal naming the value and changing nothing.
 */
class KvCacheReleaseTest {
    private static final int BS = 4;

    private static KvCache cache(int numBlocks) {
        return new KvCache(new KvCacheConfig(numBlocks, BS, 1, 2, KvDtype.FP32, 2));
    }

    @Test
    void releasesTheBlocksWhollyBeforeThePositionAndKeepsTheRest() throws Exception {
        KvCache cache = cache(8);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, Tokens.range(1, 18));        // 5 blocks, the last holding 2 tokens
        int[] table = cache.pageTable(seq).blocks();
        assertEquals(0, cache.releaseBefore(seq, 3), "position 3 lies in block 0: nothing wholly before it");
        assertEquals(2, cache.releaseBefore(seq, 9), "blocks 0 and 1 hold positions 0..7");
        assertEquals(8, cache.firstHeldPosition(seq));
        assertEquals(18, cache.length(seq), "the sequence keeps its length and positions");
        assertEquals(3, cache.numUsedBlocks());
        assertEquals(0, cache.pool().refCount(table[0]));
        assertEquals(0, cache.pool().refCount(table[1]));
        assertArrayEquals(new int[] {PageTable.RELEASED, PageTable.RELEASED, table[2], table[3], table[4]},
                cache.pageTable(seq).blocks());
        assertEquals(2, cache.pageTable(seq).numReleased());
        assertEquals(0, cache.releaseBefore(seq, 5), "releasing less than before changes nothing");
        for (int p = 8; p < 18; p++) {
            assertEquals(Tokens.k(1 + p, 1, 0, 1), cache.readK(seq, 1, p, 0, 1), "position " + p);
        }
        // a window of 6 over 18 tokens sees 12..17: blocks 0..2 (positions 0..11) go
        assertEquals(1, cache.releaseOutsideWindow(seq, 6));
        assertEquals(12, cache.firstHeldPosition(seq));
        cache.verify();
    }

    @Test
    void releasingTheWholeOfAFullSequenceLetsItGrowAgain() throws Exception {
        KvCache cache = cache(4);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, Tokens.range(1, 8));
        assertEquals(2, cache.releaseBefore(seq, 8));
        assertEquals(0, cache.numUsedBlocks());
        assertEquals(8, cache.firstHeldPosition(seq));
        int first = Tokens.append(cache, seq, 40, 41);
        assertEquals(8, first);
        assertEquals(Tokens.k(41, 0, 0, 0), cache.readK(seq, 0, 9, 0, 0));
        assertEquals(1, cache.numUsedBlocks());
        cache.verify();
    }

    @Test
    void writesAndReadsOfReleasedPositionsAreRefusedAndChangeNothing() throws Exception {
        KvCache cache = cache(8);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, Tokens.range(1, 10));
        cache.releaseBefore(seq, 8);
        CacheSnapshot before = CacheSnapshot.of(cache);
        IllegalArgumentException w = assertThrows(IllegalArgumentException.class,
                () -> cache.writeTokens(seq, 0, 6, 3, Tokens.k(cache.config(), 0, 1, 2, 3), Tokens.v(cache.config(), 0, 1, 2, 3)));
        assertTrue(w.getMessage().startsWith("position=6 of seq=" + seq + " is in a released block"), w.getMessage());
        IllegalArgumentException r = assertThrows(IllegalArgumentException.class, () -> cache.readV(seq, 1, 7, 0, 0));
        assertTrue(r.getMessage().startsWith("position=7 of seq=" + seq + " is in a released block"), r.getMessage());
        assertEquals(before, CacheSnapshot.of(cache));
        cache.write(seq, 0, 8, Tokens.k(cache.config(), 0, 99), Tokens.v(cache.config(), 0, 99)); // held: fine
        assertEquals(Tokens.k(99, 0, 0, 0), cache.readK(seq, 0, 8, 0, 0));
    }

    @Test
    void badArgumentsAreNamedAndChangeNothing() throws Exception {
        KvCache cache = cache(8);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, Tokens.range(1, 10));
        CacheSnapshot before = CacheSnapshot.of(cache);
        for (int bad : new int[] {-1, 11, Integer.MIN_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.releaseBefore(seq, bad));
            assertEquals("position=" + bad + " is outside [0, 10] of seq=" + seq, e.getMessage());
        }
        for (int bad : new int[] {0, Integer.MIN_VALUE}) { // -4 is chunks of 4 (AttentionWindow.chunked)
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.releaseOutsideWindow(seq, bad));
            assertTrue(e.getMessage().startsWith("window=" + bad + " must be >= 1 (a sliding window)"), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.releaseBefore(77, 0));
        assertEquals("seq=77 does not exist", e.getMessage());
        assertEquals(before, CacheSnapshot.of(cache));
    }

    @Test
    void aSharedBlockStaysWithItsOtherOwnersAndAForkKeepsTheReleasedRun() throws Exception {
        KvCache cache = cache(8);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, Tokens.range(1, 12));
        int child = cache.fork(seq);
        int[] table = cache.pageTable(seq).blocks();
        assertEquals(2, cache.releaseBefore(child, 8));
        assertEquals(1, cache.pool().refCount(table[0]), "the parent still holds block 0");
        assertEquals(3, cache.numUsedBlocks());
        Tokens.assertHolds(cache, seq, Tokens.range(1, 12));
        int grandChild = cache.fork(child);
        assertEquals(8, cache.firstHeldPosition(grandChild));
        assertEquals(3, cache.pool().refCount(table[2]), "parent, child and grandchild hold block 2");
        assertEquals(1, cache.pool().refCount(table[0]), "the grandchild does not hold a block its parent released");
        cache.free(seq);
        assertEquals(1, cache.numUsedBlocks(), "blocks 0 and 1 had no other owner");
        cache.free(child);
        cache.free(grandChild);
        assertEquals(0, cache.numUsedBlocks());
        cache.verify();
    }

    @Test
    void aBatchTakenBeforeAReleaseIsStaleAndAStepThatWouldReadReleasedPositionsIsRefused() throws Exception {
        KvCache cache = cache(8);
        KvCacheConfig c = cache.config();
        int seq = cache.createSequence();
        Tokens.append(cache, seq, Tokens.range(1, 14));
        DecodeBatch before = cache.batch(seq);
        cache.releaseOutsideWindow(seq, 5);                      // sees 9..13: blocks 0, 1 (0..7) go
        IllegalArgumentException stale = assertThrows(IllegalArgumentException.class, () -> before.window(5).requireFits(c));
        assertTrue(stale.getMessage().contains("released (releaseBefore) after the batch was taken"), stale.getMessage());

        DecodeBatch now = cache.batch(seq);
        assertEquals(8, now.firstHeld(0));
        assertEquals(PageTable.RELEASED, now.block(0, 1));
        assertEquals(now.block(0, 2), now.kernelBlock(0, 0), "a kernel reads the row's first held block for a released column");
        int[] kernelTables = now.kernelBlockTables();
        assertEquals(now.block(0, 2), kernelTables[1]);
        assertEquals(now.block(0, 3), kernelTables[3]);
        for (int w : new int[] {DecodeBatch.NO_WINDOW, 14, 7}) {
            DecodeBatch b = now.window(w);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.requireFits(c), "window " + w);
            assertEquals("seq=" + seq + " (row 0): this step reads from position " + Math.max(0, 14 - w) + " but positions < 8"
                    + " were released (releaseBefore): see them through a window that starts at or after 8", e.getMessage());
        }
        now.window(6).requireFits(c);                            // sees 8..13
        now.window(1).requireFits(c);
        now.requireFits(c, new int[] {8});
        assertThrows(IllegalArgumentException.class, () -> now.requireFits(c, new int[] {7}));
        assertThrows(IllegalArgumentException.class, () -> now.requireFits(c, new int[] {8, 8}));
        CsrPageTable csr = cache.csr(seq);
        assertEquals(PageTable.RELEASED, csr.indices()[0], "the CSR export names released pages as such");
        assertEquals(now.block(0, 2), csr.indices()[2]);
    }

    @Test
    void aBlockReleasedBeforeItsCommitIsNotPublishedAndTheChainGoesOn() throws Exception {
        KvCache cache = cache(16);
        PrefixCache prefix = cache.enablePrefixCaching();
        int[] prompt = Tokens.range(1, 13);
        PrefixCache.Admission a = prefix.admit(prompt, null);
        new PromptKv().write(cache, a.seq(), null, prompt, 0);
        cache.releaseBefore(a.seq(), 4);                         // block 0, not yet published
        prefix.commit(a.seq());
        assertEquals(2, prefix.metrics().numCachedBlocks(), "blocks 1 and 2 are published, block 0 is not");
        PrefixCache.Admission again = prefix.admit(prompt, null);
        assertEquals(0, again.numCachedTokens(), "a chain starts at block 0, which was released unpublished");

        // published first, released after: the block stays cached (evictable once no one holds it) and a later prompt hits it
        int[] other = Tokens.range(50, 9);
        PrefixCache.Admission b = prefix.admit(other, null);
        new PromptKv().write(cache, b.seq(), null, other, 0);
        prefix.commit(b.seq());
        int published = cache.pageTable(b.seq()).block(0);
        cache.releaseBefore(b.seq(), 8);
        assertTrue(cache.pool().isEvictable(published) && prefix.isCached(published));
        PrefixCache.Admission hit = prefix.admit(other, null);
        assertEquals(8, hit.numCachedTokens());
        assertEquals(published, cache.pageTable(hit.seq()).block(0));
        cache.verify();
    }
}
