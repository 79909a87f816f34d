package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Chunked local attention ({@link AttentionWindow#chunked}, Llama 4's local layers) in the bookkeeping: what a query
 * sees (against the definition, position by position), the blocks a chunked sequence gives back and keeps, a hybrid
 * cache of Llama 4's layout (three chunked layers of four) that never holds more than a chunk's blocks per sequence in
 * its chunked group, and prefix-cache admissions that need only the first recomputed token's chunk. Bad values are
 * refused by name and change nothing.
 */
class ChunkedWindowTest {
    private static final int BS = 4;

    @Test
    void aQuerySeesExactlyThePositionsOfItsOwnChunk() {
        for (int c = 1; c <= 40; c++) {
            int w = AttentionWindow.chunked(c);
            assertTrue(AttentionWindow.isChunked(w));
            assertEquals(c, AttentionWindow.chunkSize(w));
            for (int p = 0; p < 200; p++) {
                int first = p;
                while (first > 0 && (first - 1) / c == p / c) { // the definition: same chunk index, walked back
                    first--;
                }
                assertEquals(first, AttentionWindow.visibleFrom(p, w), "chunks of " + c + ", position " + p);
                assertEquals(first, DecodeBatch.firstVisible(p + 1, w), "a decode query at " + p);
            }
        }
        assertEquals(0, DecodeBatch.firstVisible(0, AttentionWindow.chunked(5)));
        assertEquals(Integer.MAX_VALUE - 1, AttentionWindow.visibleFrom(Integer.MAX_VALUE - 1, AttentionWindow.chunked(1)));
        assertEquals(0, AttentionWindow.visibleFrom(Integer.MAX_VALUE - 2, AttentionWindow.chunked(Integer.MAX_VALUE - 1)));
        assertEquals(Integer.MAX_VALUE - 1, AttentionWindow.visibleFrom(Integer.MAX_VALUE - 1, AttentionWindow.chunked(Integer.MAX_VALUE - 1)));
        // a sliding window keeps its meaning, and no window is no window
        assertEquals(95, AttentionWindow.visibleFrom(100, 6));
        assertEquals(0, AttentionWindow.visibleFrom(3, 6));
        assertEquals(0, AttentionWindow.visibleFrom(Integer.MAX_VALUE - 1, AttentionWindow.NONE));
        assertEquals("chunks of 8192", AttentionWindow.describe(AttentionWindow.chunked(8192)));
        assertEquals("window 4096", AttentionWindow.describe(4096));
        assertEquals("full", AttentionWindow.describe(AttentionWindow.NONE));
    }

    @Test
    void badValuesAreRefusedByName() {
        for (int bad : new int[] {0, -5, Integer.MAX_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AttentionWindow.chunked(bad));
            assertTrue(e.getMessage().startsWith("chunkSize=" + bad + " "), e.getMessage());
        }
        for (int bad : new int[] {0, Integer.MIN_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AttentionWindow.require("window", bad));
            assertTrue(e.getMessage().startsWith("window=" + bad + " "), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AttentionWindow.chunkSize(7));
        assertTrue(e.getMessage().startsWith("window=7 "), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> HybridKvCache.of(new int[] {AttentionWindow.chunked(8), 0},
                new int[] {4, 4}, BS, 1, 2, KvDtype.FP32));
        assertTrue(e.getMessage().startsWith("windows[1]=0 "), e.getMessage());
    }

    @Test
    void releaseKeepsTheLastTokensChunk() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(12, BS, 1, 2, KvDtype.FP32, 2));
        int seq = cache.createSequence();
        int chunks = AttentionWindow.chunked(10);
        Tokens.append(cache, seq, Tokens.range(1, 18));          // positions 0..17: the last token's chunk is 10..19
        assertEquals(2, cache.releaseOutsideWindow(seq, chunks)); // blocks 0, 1 (positions 0..7); block 2 holds 8..11
        assertEquals(8, cache.firstHeldPosition(seq));
        Tokens.append(cache, seq, Tokens.range(100, 4));         // positions 18..21: 20 starts a chunk
        assertEquals(3, cache.releaseOutsideWindow(seq, chunks)); // blocks 2, 3, 4 (positions 8..19)
        assertEquals(20, cache.firstHeldPosition(seq));
        assertEquals(Tokens.k(102, 1, 0, 1), cache.readK(seq, 1, 20, 0, 1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.readK(seq, 0, 19, 0, 0));
        assertTrue(e.getMessage().startsWith("position=19 "), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> cache.releaseOutsideWindow(seq, 0));
        assertEquals(20, cache.firstHeldPosition(seq), "a refused release changes nothing");
        // a decode batch through the chunks reads from 20 on; the same batch through no window would read released blocks
        DecodeBatch b = cache.batch(seq).window(chunks);
        b.requireFits(cache.config());
        assertEquals(20, b.firstVisible(0));
        assertThrows(IllegalArgumentException.class, () -> cache.batch(seq).requireFits(cache.config()));
        cache.verify();
    }

    /**
     * Llama 4's layout on a hybrid cache: chunked layers hold at most {@code windowBlocks(chunked(C), bs, n)} blocks per
     * sequence however long it grows, on split pools and on one shared pool, for random appends and forks.
     */
    @Test
    void aLlama4HybridCacheHoldsAChunksBlocksPerSequence() throws Exception {
        long seed = dev.pagedattn.attention.TestSeeds.fresh("aLlama4HybridCacheHoldsAChunksBlocksPerSequence");
        SplittableRandom random = new SplittableRandom(seed);
        int chunk = 24;
        int c = AttentionWindow.chunked(chunk);
        int f = DecodeBatch.NO_WINDOW;
        int[] windows = {c, c, c, f, c, c, c, f};
        for (boolean shared : new boolean[] {false, true}) {
            HybridKvCache cache = shared
                    ? HybridKvCache.sharedPool(windows, 400, BS, 1, 2, KvDtype.FP32)
                    : HybridKvCache.of(windows, new int[] {60, 200}, BS, 1, 2, KvDtype.FP32);
            assertEquals(c, cache.layerWindow(0));
            int[] seqs = {cache.createSequence(), cache.createSequence()};
            int maxNew = 7;
            for (int step = 0; step < 60; step++) {
                int s = seqs[random.nextInt(2)];
                int n = 1 + random.nextInt(maxNew);
                int pos = cache.append(s, n);
                int len = pos + n;
                for (int g = 0; g < cache.numGroups(); g++) {
                    if (cache.window(g) != c) {
                        continue;
                    }
                    KvCache group = cache.group(g);
                    int held = group.pageTable(s).numBlocks() - group.pageTable(s).numReleased();
                    assertTrue(held <= HybridKvCache.windowBlocks(c, BS, maxNew), "seed=" + seed + " shared=" + shared + " group "
                            + g + " holds " + held + " blocks at length " + len);
                    // what the first new token's chunk sees is still held
                    assertTrue(group.firstHeldPosition(s) <= AttentionWindow.visibleFrom(pos, c),
                            "seed=" + seed + " group " + g + " released what position " + pos + " sees");
                }
            }
            cache.verify();
        }
    }

    /** Prefix caching through chunks: a hit needs only the blocks of the first recomputed token's chunk. */
    @Test
    void aChunkedAdmissionNeedsOnlyTheFirstRecomputedTokensChunk() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(20, BS, 1, 2, KvDtype.FP32, 2));
        PrefixCache prefix = cache.enablePrefixCaching();
        PromptKv kv = new PromptKv();
        int[] prompt = Tokens.range(1, 41);                       // 10 reusable blocks, 11 in all
        PrefixCache.Admission a = prefix.admit(prompt, null);
        kv.write(cache, a.seq(), null, prompt, 0);
        prefix.commit(a.seq());
        assertEquals(9, cache.releaseBefore(a.seq(), 36));        // blocks 0..8 go back, cached and evictable
        prefix.admit(Tokens.range(1000, 64), null);               // 16 blocks: the 9 free ones, then 7 of the evictable
        int[] chain = prefix.cachedChain(prompt, null);
        assertTrue(java.util.Arrays.stream(chain, 0, 9).filter(b -> b == -1).count() >= 7, "7 of blocks 0..8 evicted");
        // chunks of 12: the first recomputed token (position 40) sees 36..40, block 9 alone
        int chunks = AttentionWindow.chunked(12);
        assertEquals(40, prefix.lookup(prompt, null, chunks).numCachedTokens(), "the lookup foretells the chunked hit");
        assertTrue(prefix.lookup(prompt, null).numCachedTokens() < 40, "the plain lookup stops at the first evicted block");
        PrefixCache.Admission again = prefix.admit(prompt, null, chunks);
        assertEquals(40, again.numCachedTokens());
        assertEquals(36, cache.firstHeldPosition(again.seq()));
        assertEquals(9, cache.pageTable(again.seq()).numReleased());
        int[] ids = kv.ids(null, prompt);
        for (int p = 36; p < 40; p++) {
            assertEquals(Tokens.k(ids[p], 1, 0, 1), cache.readK(again.seq(), 1, p, 0, 1), "position " + p);
        }
        // chunks of 8 start one at 40: the hit needs none of its blocks
        assertEquals(10, PrefixCache.firstNeeded(10, AttentionWindow.chunked(8), BS));
        assertEquals(9, PrefixCache.firstNeeded(10, chunks, BS));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> prefix.admit(prompt, null, 0));
        assertTrue(bad.getMessage().startsWith("window=0 "), bad.getMessage());
        cache.verify();
    }
}
