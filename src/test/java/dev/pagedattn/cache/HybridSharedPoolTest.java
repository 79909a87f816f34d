package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.quant.KvScales;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * A {@link HybridKvCache} whose groups share one block pool ({@link HybridKvCache#sharedPool}, vLLM's hybrid KV cache
 * manager): each window's layers cut into groups, blocks any group may take, capacity counted over the whole pool, a
 * prefix hit of one group safe from another group's evictions, and bad values named.
 */
class HybridSharedPoolTest {
    private static final int F = DecodeBatch.NO_WINDOW;

    @Test
    void eachWindowsLayersAreCutIntoGroupsOfOneSize() {
        int[] windows = {512, 512, 512, 512, 512, F, 512, 512, 512, 512, 512, F}; // Gemma 3's pattern: 10 windowed, 2 full
        assertEquals(2, HybridKvCache.defaultLayersPerGroup(windows));
        assertEquals(2, HybridKvCache.paddingFreeLayersPerGroup(windows));
        int[] gemma3 = new int[62];
        for (int l = 0; l < 62; l++) {
            gemma3[l] = l % 6 == 5 ? F : 1024;
        }
        assertEquals(10, HybridKvCache.defaultLayersPerGroup(gemma3), "10 full layers");
        assertEquals(2, HybridKvCache.paddingFreeLayersPerGroup(gemma3), "gcd(52, 10)");
        assertEquals(1, HybridKvCache.paddingFreeLayersPerGroup(new int[] {8, 8, 8, F, F}));
        HybridKvCache cache = HybridKvCache.sharedPool(windows, 10, 16, 2, 8, KvDtype.FP16);
        assertTrue(cache.sharesPool());
        assertEquals(6, cache.numGroups());
        assertArrayEquals(new int[] {0, 1}, cache.layers(0));
        assertArrayEquals(new int[] {4, 6}, cache.layers(2));
        assertArrayEquals(new int[] {9, 10}, cache.layers(4));
        assertArrayEquals(new int[] {5, 11}, cache.layers(5));
        assertEquals(512, cache.window(4));
        assertEquals(F, cache.window(5));
        assertEquals(5, cache.groupOf(11));
        assertEquals(1, cache.localLayer(11));
        for (int g = 0; g < cache.numGroups(); g++) {
            assertTrue(cache.group(g).sharesPool(), "group " + g);
            assertSame(cache.group(0).pool(), cache.group(g).pool(), "group " + g + "'s block pool");
            assertEquals(10, cache.group(g).config().numBlocks());
        }
        assertEquals(10L * 2 * 2 * 16 * 2 * 8 * 2, cache.totalBytes(), "10 blocks of 2 layers' K and V");

        HybridKvCache threes = HybridKvCache.sharedPool(windows, 10, 3, 16, 2, 8, KvDtype.FP16, null);
        assertEquals(5, threes.numGroups(), "windowed 3 + 3 + 3 + 1, full 2");
        assertArrayEquals(new int[] {3, 4, 6}, threes.layers(1));
        assertArrayEquals(new int[] {10}, threes.layers(3));
        assertArrayEquals(new int[] {5, 11}, threes.layers(4));
        assertEquals(10L * 3 * 2 * 16 * 2 * 8 * 2, threes.totalBytes(), "blocks of 3 layers; the short groups leave theirs unused");
        assertFalse(HybridKvCache.of(windows, new int[] {4, 4}, 16, 2, 8, KvDtype.FP16).sharesPool());
    }

    @Test
    void groupsOfOnePoolWriteTheSameArraysInBlocksOfTheirOwn() throws Exception {
        HybridKvCache cache = HybridKvCache.sharedPool(new int[] {4, F}, 8, 2, 1, 2, KvDtype.FP32);
        int seq = cache.createSequence();
        cache.append(seq, 3);
        assertSame(cache.group(0).keys(0).segment(), cache.group(1).keys(0).segment(), "local layer 0 of both groups");
        KvCacheConfig c = cache.group(0).config();
        for (int layer = 0; layer < 2; layer++) {
            cache.writeTokens(seq, layer, 0, 3, Tokens.k(c, layer, 10, 11, 12), Tokens.v(c, layer, 10, 11, 12));
        }
        for (int layer = 0; layer < 2; layer++) {
            for (int p = 0; p < 3; p++) {
                assertEquals(Tokens.k(10 + p, layer, 0, 1), cache.readK(seq, layer, p, 0, 1), "layer " + layer + " position " + p);
                assertEquals(Tokens.v(10 + p, layer, 0, 0), cache.readV(seq, layer, p, 0, 0), "layer " + layer + " position " + p);
            }
        }
        assertEquals(4, cache.numUsedBlocks(), "two blocks in each group, from one pool");
        int[] a = cache.group(0).pageTable(seq).blocks();
        int[] b = cache.group(1).pageTable(seq).blocks();
        for (int x : a) {
            for (int y : b) {
                assertNotEquals(x, y, "a block in both groups' tables");
            }
        }
        cache.verify();
    }

    /**
     * Many short sequences need as many windowed blocks as full ones; one long sequence needs few windowed blocks and many
     * full ones. One pool of 64 blocks serves both phases; no split of the same 64 blocks between the groups serves both.
     */
    @Test
    void blocksOneGroupGivesBackServeTheOther() throws Exception {
        int[] windows = {8, F};
        int blocks = 64;
        assertTrue(servesBothPhases(HybridKvCache.sharedPool(windows, blocks, 2, 1, 2, KvDtype.FP32)), "the shared pool");
        for (int w = 1; w < blocks; w++) {
            assertFalse(servesBothPhases(HybridKvCache.of(windows, new int[] {w, blocks - w}, 2, 1, 2, KvDtype.FP32)),
                    "split " + w + " + " + (blocks - w));
        }
    }

    /** 8 sequences of 8 tokens (32 + 32 blocks), freed; then one sequence grown a token at a time to 100 (50 + 6). */
    private static boolean servesBothPhases(HybridKvCache cache) throws OutOfBlocksException {
        List<Integer> shorts = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            int seq = cache.createSequence();
            shorts.add(seq);
            if (!cache.canAppend(seq, 8)) {
                return false;
            }
            cache.append(seq, 8);
            cache.verify();
        }
        for (int seq : shorts) {
            cache.free(seq);
        }
        assertEquals(0, cache.numUsedBlocks());
        int seq = cache.createSequence();
        for (int n = 0; n < 100; n++) {
            if (!cache.canAppend(seq, 1)) {
                return false;
            }
            cache.append(seq, 1);
        }
        cache.verify();
        return true;
    }

    @Test
    void aRefusedAppendNamesTheWholeNeedAndChangesNothing() throws Exception {
        HybridKvCache cache = HybridKvCache.sharedPool(new int[] {4, F}, 7, 2, 1, 2, KvDtype.FP32);
        int seq = cache.createSequence();
        cache.append(seq, 4);
        cache.append(seq, 2); // 3 + 3 blocks; 1 free, and the window of 4 no longer sees block 0 (positions 0 and 1)
        assertFalse(cache.canAppend(seq, 3), "4 more blocks (two a group) against 1 free and 1 the window releases");
        int[] before0 = cache.group(0).pageTable(seq).blocks();
        int[] before1 = cache.group(1).pageTable(seq).blocks();
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.append(seq, 3));
        assertTrue(e.getMessage().contains("4") && e.getMessage().contains("2"), e.getMessage());
        assertArrayEquals(before0, cache.group(0).pageTable(seq).blocks());
        assertArrayEquals(before1, cache.group(1).pageTable(seq).blocks());
        assertEquals(6, cache.length(seq));
        cache.verify();
        assertTrue(cache.canAppend(seq, 1), "one block a group: the free one and the one the window gives back");
        cache.append(seq, 1);
        assertEquals(PageTable.RELEASED, cache.group(0).pageTable(seq).block(0));
        assertEquals(7, cache.numUsedBlocks());
        cache.verify();
    }

    /**
     * The pool is full of cached blocks: prompt A's (two a group) and C's (one a group), evicted in that order. Prompt B
     * extends A: each group revives its two blocks of A and takes a new one. Group 0's new block must not evict group 1's
     * hits, next in the eviction order once group 0 revived its own; C's blocks go instead.
     */
    @Test
    void oneGroupsNewBlocksDoNotEvictAnotherGroupsHits() throws Exception {
        int bs = 4;
        HybridKvCache cache = HybridKvCache.sharedPool(new int[] {F, F}, 6, 1, bs, 1, 2, KvDtype.FP32, null);
        assertEquals(2, cache.numGroups());
        cache.enablePrefixCaching();
        int[] a = Tokens.range(100, 8);
        int[] c = Tokens.range(500, 4);
        int seqA = admitAndWrite(cache, a).seq();
        int seqC = admitAndWrite(cache, c).seq();
        cache.free(seqA);
        cache.free(seqC);
        assertEquals(0, cache.numUsedBlocks());
        int[] b = Arrays.copyOf(a, 12);
        for (int i = 8; i < 12; i++) {
            b[i] = 900 + i;
        }
        PrefixCache.Lookup[] look = cache.lookup(b, null);
        for (PrefixCache.Lookup l : look) {
            assertEquals(8, l.numCachedTokens());
            assertEquals(1, l.blocksNeeded());
            assertTrue(l.fits(), l.toString());
        }
        PrefixCache.Admission admitted = admitAndWrite(cache, b);
        assertEquals(8, admitted.numCachedTokens());
        cache.verify();
        for (int layer = 0; layer < 2; layer++) {
            for (int p = 0; p < 12; p++) {
                assertEquals(Tokens.k(b[p], layer, 0, 1), cache.readK(admitted.seq(), layer, p, 0, 1), "layer " + layer + " position " + p);
            }
        }
        assertEquals(2, cache.group(0).prefixCache().metrics().evictions() + cache.group(1).prefixCache().metrics().evictions(),
                "C's two blocks evicted, one in each group");
        assertFalse(cache.lookup(Arrays.copyOf(c, 8), null)[0].numCachedTokens() > 0, "C is no longer cached");
    }

    @Test
    void aLookupCountsTheOtherGroupsNeeds() throws Exception {
        HybridKvCache cache = HybridKvCache.sharedPool(new int[] {F, F}, 5, 1, 4, 1, 2, KvDtype.FP32, null);
        cache.enablePrefixCaching();
        int[] prompt = Tokens.range(100, 12); // 3 blocks a group: 6 of 5
        for (PrefixCache.Lookup l : cache.lookup(prompt, null)) {
            assertEquals(3, l.blocksNeeded());
            assertEquals(2, l.blocksAllocatable(), "5 blocks less the other group's 3");
            assertFalse(l.fits());
        }
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.admit(prompt, null));
        assertTrue(e.getMessage().contains("6") && e.getMessage().contains("5"), e.getMessage());
        assertEquals(0, cache.numSequences());
        assertEquals(0, cache.numUsedBlocks());
        cache.verify();
    }

    @Test
    void swapInAndCompactCountEveryGroupsBlocks() throws Exception {
        HybridKvCache cache = HybridKvCache.sharedPool(new int[] {F, F}, 6, 1, 2, 1, 2, KvDtype.FP32, null);
        cache.enableSwapSpace(1 << 20);
        int seq = cache.createSequence();
        cache.append(seq, 4); // 2 blocks a group
        HybridKvCache.Swapped swapped = cache.swapOut(seq);
        int other = cache.createSequence();
        cache.append(other, 4); // 4 of 6 used: swapping back needs 4
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.swapIn(swapped));
        assertTrue(e.getMessage().contains("4") && e.getMessage().contains("2"), e.getMessage());
        assertEquals(1, cache.numSequences());
        cache.free(other);
        int back = cache.swapIn(swapped);
        assertEquals(4, cache.length(back));
        int fork = cache.fork(back); // shares both groups' blocks: moving its token 3 to 1 copies its first block in each group
        int filler = cache.createSequence();
        cache.append(filler, 1); // the last 2 blocks
        e = assertThrows(OutOfBlocksException.class, () -> cache.compact(fork, 1, new int[] {3}));
        assertTrue(e.getMessage().contains("2") && e.getMessage().contains("0"), e.getMessage());
        assertEquals(4, cache.length(fork));
        cache.free(filler);
        assertEquals(2, cache.compact(fork, 1, new int[] {3}));
        cache.verify();
        swapped.close();
    }

    @Test
    void badValuesAreNamed() {
        int[] windows = {8, 8, 8, F};
        assertMessage("layersPerGroup=0", () -> HybridKvCache.sharedPool(windows, 4, 0, 16, 1, 8, KvDtype.FP16, null));
        assertMessage("layersPerGroup=4", () -> HybridKvCache.sharedPool(windows, 4, 4, 16, 1, 8, KvDtype.FP16, null));
        assertMessage("numBlocks=0", () -> HybridKvCache.sharedPool(windows, 0, 16, 1, 8, KvDtype.FP16));
        assertMessage("windows[3]=0", () -> HybridKvCache.sharedPool(new int[] {8, 8, 8, 0}, 4, 16, 1, 8, KvDtype.FP16));
        assertMessage("scales numLayers=2", () -> HybridKvCache.sharedPool(windows, 4, 1, 16, 1, 8, KvDtype.INT8,
                KvScales.unit(KvDtype.INT8.format(), 2, 1)));
        assertMessage("bytes=100", () -> HybridKvCache.sharedPoolForMemory(100, 1, 16, 1, 8, KvDtype.FP16, windows));
        HybridKvCache sized = HybridKvCache.sharedPoolForMemory(1 << 20, 1, 16, 1, 8, KvDtype.FP16, windows);
        assertEquals((1 << 20) / (2 * 16 * 8 * 2), sized.group(0).config().numBlocks());
    }

    @Test
    void eightBitGroupsKeepTheirOwnScalesOnOnePool() throws Exception {
        int[] windows = {4, F};
        KvScales scales = KvScales.perTensor(KvDtype.INT8.format(), 1, new float[] {0.5f, 4f}, new float[] {0.25f, 2f});
        HybridKvCache cache = HybridKvCache.sharedPool(windows, 4, 1, 2, 1, 2, KvDtype.INT8, scales);
        int seq = cache.createSequence();
        cache.append(seq, 1);
        float[] k = {10f, -20f};
        float[] v = {5f, -3f};
        cache.write(seq, 0, 0, k, v);
        cache.write(seq, 1, 0, k, v);
        assertEquals(0.5f, cache.group(0).keys(0).scale(0));
        assertEquals(4f, cache.group(1).keys(0).scale(0));
        assertEquals(10f, cache.readK(seq, 0, 0, 0, 0), 0.5f, "layer 0 at scale 0.5");
        assertEquals(-20f, cache.readK(seq, 1, 0, 0, 1), 4f, "layer 1 at scale 4");
        assertEquals(5f, cache.readV(seq, 1, 0, 0, 0), 2f);
    }

    private static PrefixCache.Admission admitAndWrite(HybridKvCache cache, int[] ids) throws OutOfBlocksException {
        PrefixCache.Admission a = cache.admit(ids, null);
        int from = a.numCachedTokens();
        int[] fresh = Arrays.copyOfRange(ids, from, ids.length);
        KvCacheConfig c = cache.group(0).config();
        for (int layer = 0; layer < cache.numLayers(); layer++) {
            cache.writeTokens(a.seq(), layer, from, fresh.length, Tokens.k(c, layer, fresh), Tokens.v(c, layer, fresh));
        }
        cache.commit(a.seq());
        return a;
    }

    private static void assertMessage(String fragment, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(fragment), "'" + e.getMessage() + "' does not name " + fragment);
    }
}
