package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The prefix cache's host tier ({@link PrefixCache#enableHostOffload}): blocks the pool evicts go to host memory and
 * come back for a prompt that finds them there, bit for bit, counted as hits; the oldest host block makes room; a random
 * run keeps every admitted sequence's K/V the one its tokens were written with, and {@link PrefixCache#lookup} foretells
 * every admission (hit and refusal) without changing anything.
 */
class HostOffloadTest {
    private static final KvCacheConfig C = new KvCacheConfig(8, 4, 2, 3, KvDtype.FP32, 2);

    @Test
    void anEvictedPromptComesBackFromHostMemory() throws OutOfBlocksException {
        KvCache cache = new KvCache(C);
        PrefixCache prefix = cache.enablePrefixCaching();
        assertNull(prefix.hostMetrics());
        assertEquals(16, prefix.enableHostOffload(16 * 2L * 2 * 2 * 4 * 3 * 4)); // 16 blocks of 2 layers' K and V
        int[] prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};           // three full blocks and one token
        PrefixCache.Admission a = prefix.admit(prompt, null);
        write(cache, a.seq(), prompt, 0);
        prefix.commit(a.seq());
        cache.free(a.seq());
        int other = cache.createSequence();
        cache.append(other, 8 * 4);                                            // every block: the three cached ones evicted
        assertEquals(3, prefix.hostMetrics().offloaded());
        assertEquals(3, prefix.hostMetrics().numHeld());
        cache.free(other);
        PrefixCache.Metrics before = prefix.metrics();
        assertEquals(new PrefixCache.Lookup(12, 3, 4, 8), prefix.lookup(prompt, null), "three host blocks, each a fresh block");
        assertEquals(before, prefix.metrics(), "a lookup counts nothing");
        assertEquals(0, prefix.hostMetrics().restored());
        PrefixCache.Admission b = prefix.admit(prompt, null);
        assertEquals(12, b.numCachedTokens(), "the three blocks from host memory");
        assertEquals(3, prefix.hostMetrics().restored());
        assertEquals(0, prefix.hostMetrics().numHeld(), "restored blocks leave host memory (they are on the device again)");
        for (int p = 0; p < 12; p++) {
            for (int layer = 0; layer < 2; layer++) {
                assertEquals(Tokens.k(prompt[p] * 100 + p, layer, 1, 2), cache.readK(b.seq(), layer, p, 1, 2), "K at " + p);
                assertEquals(Tokens.v(prompt[p] * 100 + p, layer, 0, 1), cache.readV(b.seq(), layer, p, 0, 1), "V at " + p);
            }
        }
        PrefixCache.Admission c = prefix.admit(prompt, null);
        assertEquals(12, c.numCachedTokens(), "published again: the next prompt shares them on the device");
        assertArrayEquals(Arrays.copyOf(cache.pageTable(b.seq()).blocks(), 3), Arrays.copyOf(cache.pageTable(c.seq()).blocks(), 3));
        cache.verify();
        assertThrows(IllegalStateException.class, () -> prefix.enableHostOffload(1 << 20));
    }

    @Test
    void theOldestHostBlockMakesRoom() throws OutOfBlocksException {
        KvCache cache = new KvCache(C);
        PrefixCache prefix = cache.enablePrefixCaching();
        long blockBytes = 2L * 2 * 2 * 4 * 3 * 4;
        assertEquals(2, prefix.enableHostOffload(2 * blockBytes + blockBytes / 2));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new KvCache(C).enablePrefixCaching()
                .enableHostOffload(blockBytes - 1)).getMessage().startsWith("bytes=" + (blockBytes - 1) + " must hold at least one"));
        int[] prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
        PrefixCache.Admission a = prefix.admit(prompt, null);
        write(cache, a.seq(), prompt, 0);
        prefix.commit(a.seq());
        cache.free(a.seq());                                                   // tail first: block 2 evicted first
        int other = cache.createSequence();
        cache.append(other, 8 * 4);
        assertEquals(3, prefix.hostMetrics().offloaded());
        assertEquals(1, prefix.hostMetrics().dropped(), "block 2 made room for block 0");
        cache.free(other);
        assertEquals(8, prefix.admit(prompt, null).numCachedTokens(), "blocks 0 and 1 from host memory, block 2 recomputed");
        cache.verify();
    }

    /** Random prompts over shared prefixes on a pool too small for them, with host memory behind it. */
    @Test
    void randomPromptsKeepTheirKvThroughEvictionsAndRestores() throws OutOfBlocksException {
        Random random = TestRandom.create("HostOffloadTest.randomPromptsKeepTheirKvThroughEvictionsAndRestores");
        KvCache cache = new KvCache(new KvCacheConfig(24, 4, 2, 3, KvDtype.FP32, 2));
        PrefixCache prefix = cache.enablePrefixCaching();
        prefix.enableHostOffload(8 * 2L * 2 * 2 * 4 * 3 * 4);
        int[][] bases = new int[5][24];
        for (int[] base : bases) {
            for (int i = 0; i < base.length; i++) {
                base[i] = 1 + random.nextInt(3);
            }
        }
        List<int[]> live = new ArrayList<>();                                  // {seq, prompt...}
        for (int op = 0; op < 20_000; op++) {
            if (live.size() > 4 || (!live.isEmpty() && random.nextInt(3) == 0)) {
                int[] s = live.remove(random.nextInt(live.size()));
                cache.free(s[0]);
                continue;
            }
            int[] prompt = Arrays.copyOf(bases[random.nextInt(bases.length)], 1 + random.nextInt(24));
            PrefixCache.Lookup look = prefix.lookup(prompt, null);
            PrefixCache.Admission a;
            try {
                a = prefix.admit(prompt, null);
            } catch (OutOfBlocksException e) {
                assertTrue(!look.fits(), "op " + op + ": the lookup said " + look + " but the admission was refused");
                continue;
            }
            assertTrue(look.fits(), "op " + op + ": the lookup said " + look + " but the admission went through");
            assertEquals(look.numCachedTokens(), a.numCachedTokens(), "op " + op + ": the lookup's hit");
            for (int p = 0; p < a.numCachedTokens(); p++) {
                assertEquals(Tokens.k(prompt[p] * 100 + p, 1, 1, 2), cache.readK(a.seq(), 1, p, 1, 2),
                        "op " + op + ": cached position " + p + " of " + Arrays.toString(prompt));
            }
            write(cache, a.seq(), prompt, a.numCachedTokens());
            if (random.nextBoolean()) {
                prefix.commit(a.seq());
            }
            int[] entry = new int[prompt.length + 1];
            entry[0] = a.seq();
            System.arraycopy(prompt, 0, entry, 1, prompt.length);
            live.add(entry);
        }
        cache.verify();
        PrefixCache.HostMetrics m = prefix.hostMetrics();
        assertTrue(m.offloaded() > 100 && m.restored() > 100 && m.dropped() > 10, "the run reached the host tier: " + m);
    }

    /** Writes {@code prompt[from ..]} in every layer, K/V named by (token id, position). */
    private static void write(KvCache cache, int seq, int[] prompt, int from) throws OutOfBlocksException {
        int[] ids = new int[prompt.length - from];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = prompt[from + i] * 100 + from + i;
        }
        for (int layer = 0; layer < cache.config().numLayers(); layer++) {
            cache.writeTokens(seq, layer, from, ids.length, Tokens.k(cache.config(), layer, ids), Tokens.v(cache.config(), layer, ids));
        }
    }
}
