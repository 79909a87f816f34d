package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;

/** Running out of blocks: the failed call reports what it needed and changes nothing. */
class KvCacheExhaustionTest {

    @Test
    void appendNeedingMoreBlocksThanFreeThrowsAndChangesNothing() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(5, 4, 2, 2, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        int a = cache.createSequence();
        int b = cache.createSequence();
        Tokens.append(cache, a, Tokens.range(0, 6));
        Tokens.append(cache, b, Tokens.range(10, 4));
        CacheSnapshot before = CacheSnapshot.of(cache);
        assertEquals(3, cache.blocksNeeded(a, 11));
        assertFalse(cache.canAppend(a, 11));
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.append(a, 11));
        assertEquals(3, e.numNeeded());
        assertEquals(2, e.numAllocatable());
        assertTrue(e.getMessage().contains("needed=3") && e.getMessage().contains("allocatable=2"), e.getMessage());
        assertEquals(before, CacheSnapshot.of(cache));
        // the exact fit still works afterwards
        assertTrue(cache.canAppend(a, 10));
        assertEquals(6, Tokens.append(cache, a, Tokens.range(20, 10)));
        assertEquals(0, cache.numAllocatableBlocks());
        Tokens.assertHolds(cache, a, Tokens.concat(Tokens.range(0, 6), Tokens.range(20, 10)));
        Tokens.assertHolds(cache, b, Tokens.range(10, 4));
    }

    @Test
    void appendTokensThatDoNotFitStoreNothing() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(3, 2, 1, 3, KvDtype.FP16);
        KvCache cache = new KvCache(c);
        int a = cache.createSequence();
        Tokens.append(cache, a, 1, 2, 3);
        CacheSnapshot before = CacheSnapshot.of(cache);
        int[] ids = Tokens.range(50, 4); // slot 3 + two new blocks, one is left
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class,
                () -> cache.appendTokens(a, Tokens.k(c, 0, ids), Tokens.v(c, 0, ids)));
        assertEquals(2, e.numNeeded());
        assertEquals(1, e.numAllocatable());
        assertEquals(before, CacheSnapshot.of(cache));
    }

    @Test
    void copyOnWriteThatNeedsTheMissingBlockThrowsAndChangesNothing() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(3, 4, 1, 2, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        int parent = cache.createSequence();
        Tokens.append(cache, parent, Tokens.range(0, 6));
        int child = cache.fork(parent);
        int other = cache.createSequence();
        Tokens.append(cache, other, 99);
        assertEquals(0, cache.numAllocatableBlocks());
        cache.drainBlockCopies();
        CacheSnapshot before = CacheSnapshot.of(cache);

        // the token fits in a free slot of the shared last block, but the copy needs a block
        assertEquals(1, cache.blocksNeeded(child, 1));
        assertFalse(cache.canAppend(child, 2));
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.append(child, 2));
        assertEquals(1, e.numNeeded());
        assertEquals(0, e.numAllocatable());
        assertEquals(before, CacheSnapshot.of(cache));
        assertTrue(cache.drainBlockCopies().isEmpty(), "no copy was made");
        Tokens.assertHolds(cache, child, Tokens.range(0, 6));
    }

    @Test
    void copyPlusNewBlockBeyondFreeThrowsAndChangesNothing() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(4, 4, 1, 2, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        int parent = cache.createSequence();
        Tokens.append(cache, parent, Tokens.range(0, 6));
        int child = cache.fork(parent);
        int other = cache.createSequence();
        Tokens.append(cache, other, 99);
        assertEquals(1, cache.numAllocatableBlocks());
        CacheSnapshot before = CacheSnapshot.of(cache);
        // 6 + 3 tokens: one new block plus the copy, one block free
        assertEquals(2, cache.blocksNeeded(child, 3));
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> Tokens.append(cache, child, 7, 8, 9));
        assertEquals(2, e.numNeeded());
        assertEquals(1, e.numAllocatable());
        assertEquals(before, CacheSnapshot.of(cache));
        // two tokens need only the copy
        Tokens.append(cache, child, 7, 8);
        Tokens.assertHolds(cache, child, Tokens.concat(Tokens.range(0, 6), 7, 8));
        Tokens.assertHolds(cache, parent, Tokens.range(0, 6));
    }

    @RepeatedTest(5)
    void canAppendAgreesWithAppendUnderRandomLoad() throws Exception {
        Random random = TestRandom.create("KvCacheExhaustionTest.canAppendAgreesWithAppendUnderRandomLoad");
        KvCacheConfig c = KvCacheConfig.of(4 + random.nextInt(8), 1 + random.nextInt(5), 1, 1, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        java.util.List<Integer> live = new java.util.ArrayList<>();
        live.add(cache.createSequence());
        int failures = 0;
        for (int step = 0; step < 300; step++) {
            int seq = live.get(random.nextInt(live.size()));
            int r = random.nextInt(10);
            if (r < 6) {
                int n = random.nextInt(3 * c.blockSize() + 1);
                boolean can = cache.canAppend(seq, n);
                int needed = cache.blocksNeeded(seq, n);
                assertEquals(needed <= cache.numAllocatableBlocks(), can);
                CacheSnapshot before = can ? null : CacheSnapshot.of(cache);
                try {
                    cache.append(seq, n);
                    assertTrue(can, "append succeeded although canAppend was false");
                } catch (OutOfBlocksException e) {
                    assertFalse(can, "append failed although canAppend was true");
                    assertEquals(needed, e.numNeeded());
                    assertEquals(cache.numAllocatableBlocks(), e.numAllocatable());
                    assertEquals(before, CacheSnapshot.of(cache));
                    failures++;
                }
            } else if (r < 8) {
                live.add(cache.fork(seq));
            } else if (live.size() > 1) {
                cache.free(seq);
                live.remove((Integer) seq);
            }
        }
        cache.verify();
    }

    @Test
    void appendWhoseLengthWouldOverflowIntIsRefusedAndChangesNothing() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 16, 1, 1, KvDtype.FP32));
        int seq = cache.createSequence();
        Tokens.append(cache, seq, 1, 2, 3, 4, 5);
        CacheSnapshot before = CacheSnapshot.of(cache);
        for (int n : new int[] {Integer.MAX_VALUE, Integer.MAX_VALUE - 4}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.append(seq, n));
            assertTrue(e.getMessage().contains("numTokens=" + n), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cache.canAppend(seq, n));
            assertEquals(before, CacheSnapshot.of(cache));
        }
        // the largest legal length cannot fit either: that is plain exhaustion
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.append(seq, Integer.MAX_VALUE - 5));
        assertEquals((int) (((long) Integer.MAX_VALUE + 15) / 16) - 1, e.numNeeded());
        assertEquals(3, e.numAllocatable());
        assertFalse(cache.canAppend(seq, Integer.MAX_VALUE - 5));
        assertEquals(before, CacheSnapshot.of(cache));
    }
}
