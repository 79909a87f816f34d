package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * Dropping and moving a sequence's last tokens, as speculative decoding does after verifying drafts: {@link
 * KvCache#truncate} (rejected drafts) and {@link KvCache#compact} (a token tree's accepted path), on plain, prefix-cached
 * and hybrid caches. {@code KvCacheRandomRunTest} runs both among a million random operations against a model.
 */
class KvCacheRollbackTest {
    private static final KvCacheConfig C = new KvCacheConfig(32, 4, 2, 3, KvDtype.FP32, 3);

    @Test
    void compactMovesEveryLayersTokensAndGivesBackTheTail() throws OutOfBlocksException {
        KvCache cache = new KvCache(C);
        int seq = cache.createSequence();
        int[] ids = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};      // 5 context + 8 drafts: 4 blocks
        write(cache, seq, ids);
        assertEquals(4, cache.numUsedBlocks());
        int free = cache.numAllocatableBlocks();
        assertEquals(9, cache.compact(seq, 5, new int[] {5, 7, 10, 12}));      // the accepted path 0 -> 2 -> 5 -> 7
        assertEquals(9, cache.length(seq));
        int[] want = {11, 12, 13, 14, 15, 16, 18, 21, 23};
        for (int p = 0; p < want.length; p++) {
            for (int layer = 0; layer < C.numLayers(); layer++) {
                for (int h = 0; h < 2; h++) {
                    assertEquals(Tokens.k(want[p], layer, h, 2), cache.readK(seq, layer, p, h, 2), "K at " + p + " layer " + layer);
                    assertEquals(Tokens.v(want[p], layer, h, 1), cache.readV(seq, layer, p, h, 1), "V at " + p + " layer " + layer);
                }
            }
        }
        assertEquals(free + 1, cache.numAllocatableBlocks(), "block 3 (positions 12..15) went back");
        assertEquals(9, cache.append(seq, 1), "the next token follows the path");
        cache.verify();
    }

    @Test
    void truncateLeavesAForkAndThePrefixCacheWhatTheySaw() throws OutOfBlocksException {
        KvCache cache = new KvCache(C);
        int seq = cache.createSequence();
        write(cache, seq, new int[] {1, 2, 3, 4, 5, 6});
        int fork = cache.fork(seq);                              // shares both blocks, the last partly filled
        assertEquals(0, cache.truncate(seq, 5), "block 1 still holds position 4");
        assertEquals(1, cache.truncate(seq, 3), "block 1 stays with the fork: a reference dropped, nothing freed");
        assertEquals(3, cache.length(seq));
        assertEquals(2, cache.numUsedBlocks());
        cache.append(seq, 2);                                    // into block 0, shared: copied first
        for (int layer = 0; layer < C.numLayers(); layer++) {
            cache.writeTokens(seq, layer, 3, 2, Tokens.k(C, layer, 40, 41), Tokens.v(C, layer, 40, 41));
        }
        assertEquals(Tokens.k(4, 1, 0, 0), cache.readK(fork, 1, 3, 0, 0), "the fork keeps its token 4");
        assertEquals(Tokens.k(6, 2, 1, 2), cache.readK(fork, 2, 5, 1, 2), "and its token 6");
        assertEquals(Tokens.k(41, 2, 1, 2), cache.readK(seq, 2, 4, 1, 2));
        assertEquals("length=7 is outside [0, 5] of seq=" + seq, assertThrows(IllegalArgumentException.class,
                () -> cache.truncate(seq, 7)).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> cache.compact(seq, 1, new int[] {3, 2})).getMessage()
                .startsWith("keep[1]=2: positions must ascend"));
        cache.releaseBefore(fork, 4);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> cache.truncate(fork, 3)).getMessage()
                .contains("(the positions before were released)"));
        cache.verify();
    }

    /**
     * A prompt admitted through the prefix cache, drafts appended with their ids, the accepted path compacted and
     * committed: the next request with the same prompt and accepted tokens hits every full block of them.
     */
    @Test
    void theAcceptedPathIsPublishedUnderItsOwnTokenIds() throws OutOfBlocksException {
        KvCache cache = new KvCache(C);
        PrefixCache prefix = cache.enablePrefixCaching();
        int[] prompt = {5, 6, 7, 8, 9, 10};
        PrefixCache.Admission a = prefix.admit(prompt, null);
        write(cache, a.seq(), 0, prompt);
        prefix.commit(a.seq());                                  // block 0 (5..8) published
        int[] drafts = {70, 71, 72, 73, 74};                     // a tree: 70 root, 71 and 72 its children, ...
        int first = prefix.append(a.seq(), drafts);
        write(cache, a.seq(), first, drafts);
        prefix.commit(a.seq());                                  // (an engine commits before it knows: 9, 10, 70, 71 published)
        cache.compact(a.seq(), first, new int[] {first, first + 2, first + 4});   // 70 -> 72 -> 74 accepted
        prefix.commit(a.seq());
        int[] accepted = {5, 6, 7, 8, 9, 10, 70, 72, 74};
        PrefixCache.Admission b = prefix.admit(Arrays.copyOf(accepted, 9), null);
        assertEquals(8, b.numCachedTokens(), "both full blocks of the accepted path hit");
        for (int p = 0; p < 8; p++) {
            assertEquals(Tokens.k(accepted[p], 0, 1, 1), cache.readK(b.seq(), 0, p, 1, 1), "position " + p);
        }
        cache.verify();
    }

    @Test
    void aHybridCacheRollsEveryGroupBackOrNone() throws OutOfBlocksException {
        int[] windows = {4, DecodeBatch.NO_WINDOW};
        HybridKvCache cache = HybridKvCache.of(windows, new int[] {16, 16}, 4, 1, 2, KvDtype.FP32);
        int seq = cache.createSequence();
        cache.append(seq, 12);
        cache.append(seq, 6);                                    // the windowed group released positions 0..7 first
        assertEquals(8, cache.group(0).firstHeldPosition(seq));
        assertEquals(0, cache.group(1).firstHeldPosition(seq));
        assertEquals("length=10: group 0 (window 4) released the positions before 8, which the next token's window would see",
                assertThrows(IllegalArgumentException.class, () -> cache.truncate(seq, 10)).getMessage());
        assertEquals(18, cache.length(seq));
        float[] k = {1f, 2f};
        for (int layer = 0; layer < 2; layer++) {
            cache.write(seq, layer, 16, k, k);
        }
        assertEquals(13, cache.compact(seq, 12, new int[] {16}));
        assertEquals(13, cache.length(seq));
        for (int layer = 0; layer < 2; layer++) {
            assertEquals(2f, cache.readK(seq, layer, 12, 0, 1), "layer " + layer + " moved");
            assertEquals(13, cache.group(layer).length(seq));
        }
        assertEquals(2, cache.truncate(seq, 12), "each group gives back its block 3 (positions 12..15)");
        cache.verify();
    }

    private static void write(KvCache cache, int seq, int[] ids) throws OutOfBlocksException {
        write(cache, seq, cache.append(seq, ids.length), ids);
    }

    private static void write(KvCache cache, int seq, int pos, int[] ids) throws OutOfBlocksException {
        for (int layer = 0; layer < C.numLayers(); layer++) {
            cache.writeTokens(seq, layer, pos, ids.length, Tokens.k(C, layer, ids), Tokens.v(C, layer, ids));
        }
    }
}
