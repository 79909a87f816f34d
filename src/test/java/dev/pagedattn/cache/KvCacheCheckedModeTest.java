package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Checked mode: verify() after every operation. State can only be broken from inside the package
 * (the tests corrupt it through package-private or reflective access), and verify() must notice.
 */
class KvCacheCheckedModeTest {

    @Test
    void suiteRunsWithCheckedModeAndAssertionsOn() {
        assertTrue(Checks.CHECKED, "surefire must pass -Dpagedattn.checked=true");
        boolean assertionsOn = false;
        assert assertionsOn = true;
        assertTrue(assertionsOn, "surefire must pass -ea");
    }

    @Test
    void verifyHoldsAfterALongRandomRun() throws Exception {
        Random random = TestRandom.create("KvCacheCheckedModeTest.verifyHoldsAfterALongRandomRun");
        KvCacheConfig c = new KvCacheConfig(24, 1 + random.nextInt(5), 2, 2, KvDtype.FP16, 1 + random.nextInt(2));
        KvCache cache = new KvCache(c);
        PrefixCache prefix = random.nextBoolean() ? cache.enablePrefixCaching() : null;
        List<Integer> live = new ArrayList<>();
        int exhausted = 0;
        for (int step = 0; step < 3_000; step++) {
            int r = random.nextInt(10);
            try {
                if (live.isEmpty() || r == 0) {
                    if (prefix != null) {
                        int[] prompt = new int[1 + random.nextInt(12)];
                        for (int i = 0; i < prompt.length; i++) {
                            prompt[i] = random.nextInt(3);
                        }
                        int seq = prefix.admit(prompt, null).seq();
                        prefix.commit(seq);
                        live.add(seq);
                    } else {
                        live.add(cache.createSequence());
                    }
                } else if (r < 6) {
                    cache.append(live.get(random.nextInt(live.size())), random.nextInt(2 * c.blockSize() + 1));
                } else if (r < 8) {
                    live.add(cache.fork(live.get(random.nextInt(live.size()))));
                } else {
                    cache.free(live.remove(random.nextInt(live.size())));
                }
            } catch (OutOfBlocksException e) {
                exhausted++;
            }
            cache.verify();
        }
        for (int seq : live) {
            cache.free(seq);
        }
        cache.verify();
        assertEquals(0, cache.numUsedBlocks());
        assertEquals(c.numBlocks(), cache.numAllocatableBlocks());
    }

    private static KvCache twoSequences() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(8, 4, 1, 1, KvDtype.FP32));
        Tokens.append(cache, cache.createSequence(), 1, 2, 3, 4, 5);
        Tokens.append(cache, cache.createSequence(), 6, 7);
        cache.verify();
        return cache;
    }

    @Test
    void verifyCatchesATableTooShortForItsLength() throws Exception {
        KvCache cache = twoSequences();
        cache.table(1).setNumTokens(5);
        AssertionError e = assertThrows(AssertionError.class, cache::verify);
        assertTrue(e.getMessage().contains("seq 1 has 1 blocks for 5 tokens"), e.getMessage());
    }

    @Test
    void verifyCatchesAReferenceTheCountDoesNotKnow() throws Exception {
        KvCache cache = twoSequences();
        int stolen = cache.table(0).block(0);
        int lost = cache.table(1).block(0);
        cache.table(1).replace(0, stolen);
        AssertionError e = assertThrows(AssertionError.class, cache::verify);
        assertTrue(e.getMessage().contains("block " + Math.min(stolen, lost) + " has refCount=1 but "
                + (stolen < lost ? 2 : 0) + " page-table references"), e.getMessage());
    }

    @Test
    void verifyCatchesATableThatPointsAtAFreeBlock() throws Exception {
        KvCache cache = twoSequences();
        cache.table(1).add(7); // never allocated
        cache.table(1).setNumTokens(6);
        AssertionError e = assertThrows(AssertionError.class, cache::verify);
        assertTrue(e.getMessage().contains("block 7 has refCount=0 but 1 page-table references"), e.getMessage());
    }

    @Test
    void everyMutationVerifiesInCheckedMode() throws Exception {
        KvCache cache = twoSequences();
        cache.table(1).setNumTokens(9); // broken behind the cache's back
        assertThrows(AssertionError.class, () -> cache.fork(0));
        assertThrows(AssertionError.class, () -> cache.append(0, 1));
        assertThrows(AssertionError.class, () -> cache.free(0));
    }

    @Test
    void verifyCatchesABrokenBlockPool() throws Exception {
        KvCache cache = twoSequences();
        int[] refCounts = (int[]) BlockPoolTest.field(cache.blockPool(), "refCounts");
        refCounts[cache.table(0).block(1)]++;
        AssertionError e = assertThrows(AssertionError.class, cache::verify);
        assertTrue(e.getMessage().contains("has refCount=2 but 1 page-table references"), e.getMessage());
    }

    private static PrefixCache cachedPrompt(KvCache cache) throws Exception {
        PrefixCache prefix = cache.enablePrefixCaching();
        PrefixCache.Admission a = prefix.admit(new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9}, null);
        prefix.commit(a.seq());
        cache.free(a.seq());
        cache.verify();
        return prefix;
    }

    @Test
    void verifyCatchesCachedContentThatNoLongerMatchesItsHash() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(8, 4, 1, 1, KvDtype.FP32));
        PrefixCache prefix = cachedPrompt(cache);
        int block = prefix.evictionOrder()[0];
        ((int[]) BlockPoolTest.field(prefix, "tokensOf"))[block * 4 + 2]++;
        AssertionError e = assertThrows(AssertionError.class, cache::verify);
        assertTrue(e.getMessage().contains("cached block " + block + " content does not hash to its key"), e.getMessage());
    }

    @Test
    void verifyCatchesAnEvictableBlockThatIsNotCached() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(8, 4, 1, 1, KvDtype.FP32));
        PrefixCache prefix = cachedPrompt(cache);
        int block = prefix.evictionOrder()[0];
        ((boolean[]) BlockPoolTest.field(prefix, "cached"))[block] = false;
        AssertionError e = assertThrows(AssertionError.class, cache::verify);
        assertTrue(e.getMessage().contains("block " + block), e.getMessage());
    }

    @Test
    void verifyCatchesAFreeBlockMarkedCached() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(8, 4, 1, 1, KvDtype.FP32));
        PrefixCache prefix = cachedPrompt(cache);
        ((boolean[]) BlockPoolTest.field(prefix, "cached"))[7] = true;
        AssertionError e = assertThrows(AssertionError.class, cache::verify);
        assertTrue(e.getMessage().contains("cached flags 3 != map size 2"), e.getMessage());
    }
}
