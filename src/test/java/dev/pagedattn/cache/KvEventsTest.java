package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.KvEvent.AllBlocksCleared;
import dev.pagedattn.cache.KvEvent.BlockRemoved;
import dev.pagedattn.cache.KvEvent.BlockStored;
import dev.pagedattn.cache.KvEvent.Medium;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

/**
 * The prefix cache's KV events ({@link PrefixCache#enableEvents}, vLLM's KV cache events): what a commit, an eviction to
 * host memory, a restore and a reset report, in order; and a router that only replays the events predicts, for any
 * prompt, exactly the hit {@link PrefixCache#lookup} finds, through random admissions, frees and evictions (jqwik prints
 * its seed on failure).
 */
class KvEventsTest {
    private static final KvCacheConfig C = new KvCacheConfig(8, 4, 2, 3, KvDtype.FP32, 2);

    @Test
    void commitsEvictionsRestoresAndResetsAreReportedInOrder() throws OutOfBlocksException {
        KvCache cache = new KvCache(C);
        PrefixCache prefix = cache.enablePrefixCaching();
        assertThrows(IllegalStateException.class, prefix::takeEvents);
        prefix.enableEvents();
        prefix.enableHostOffload(16 * 2L * 2 * 2 * 4 * 3 * 4);
        int[] prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9};                     // two full blocks and one token
        PrefixCache.Admission a = prefix.admit(prompt, "tenant");
        prefix.commit(a.seq());
        long seed = PrefixCache.seedFor("tenant");
        long h0 = PrefixCache.blockHash(seed, prompt, 0, 4);
        long h1 = PrefixCache.blockHash(h0, prompt, 4, 4);
        assertEquals(List.of(new BlockStored(h0, seed, new int[] {1, 2, 3, 4}, Medium.DEVICE),
                new BlockStored(h1, h0, new int[] {5, 6, 7, 8}, Medium.DEVICE)), prefix.takeEvents());
        assertEquals(List.of(), prefix.takeEvents(), "taken events are gone");
        cache.free(a.seq());
        int other = cache.createSequence();
        cache.append(other, 8 * 4);                                     // every block: both cached ones evicted, tail first
        assertEquals(List.of(new BlockRemoved(h1, Medium.DEVICE), new BlockStored(h1, h0, new int[] {5, 6, 7, 8}, Medium.HOST),
                new BlockRemoved(h0, Medium.DEVICE), new BlockStored(h0, seed, new int[] {1, 2, 3, 4}, Medium.HOST)),
                prefix.takeEvents());
        cache.free(other);
        PrefixCache.Admission b = prefix.admit(prompt, "tenant");       // both back from host memory
        assertEquals(8, b.numCachedTokens());
        assertEquals(List.of(new BlockRemoved(h0, Medium.HOST), new BlockStored(h0, seed, new int[] {1, 2, 3, 4}, Medium.DEVICE),
                new BlockRemoved(h1, Medium.HOST), new BlockStored(h1, h0, new int[] {5, 6, 7, 8}, Medium.DEVICE)),
                prefix.takeEvents());
        cache.free(b.seq());
        prefix.reset();
        assertEquals(List.of(new AllBlocksCleared()), prefix.takeEvents());
        BlockStored stored = new BlockStored(1, 2, new int[] {3}, Medium.HOST);
        int[] ids = stored.tokenIds();
        ids[0] = 99;
        assertArrayEquals(new int[] {3}, stored.tokenIds(), "an event's ids cannot be changed through it");
    }

    @Property(tries = 300)
    void aRouterReplayingTheEventsPredictsEveryHit(
            @ForAll @IntRange(min = 1, max = 4) int blockSize,
            @ForAll @IntRange(min = 4, max = 24) int numBlocks,
            @ForAll boolean hostTier,
            @ForAll("ops") List<int[]> ops) throws OutOfBlocksException {
        KvCache cache = new KvCache(new KvCacheConfig(numBlocks, blockSize, 1, 2, KvDtype.FP32, 1));
        PrefixCache prefix = cache.enablePrefixCaching();
        if (hostTier) {
            prefix.enableHostOffload(3 * 2L * blockSize * 2 * 4);   // 3 host blocks: full soon, then the oldest is dropped
        }
        prefix.enableEvents();
        Set<Long> device = new HashSet<>();
        Set<Long> host = new HashSet<>();
        List<Integer> live = new ArrayList<>();
        for (int[] op : ops) {
            int[] prompt = prompt(op[1], op[2]);
            String salt = op[1] % 4 == 3 ? "other tenant" : null;
            if (op[0] == 0) {
                int predicted = predictHit(device, host, prompt, salt, blockSize);
                PrefixCache.Lookup look = prefix.lookup(prompt, salt);
                assertEquals(look.numCachedTokens(), predicted * blockSize, "prompt " + Arrays.toString(prompt) + " salt " + salt);
                if (look.fits()) {
                    PrefixCache.Admission a = prefix.admit(prompt, salt);
                    prefix.commit(a.seq());
                    live.add(a.seq());
                }
            } else if (!live.isEmpty()) {
                cache.free(live.remove(op[1] % live.size()));
            }
            for (KvEvent e : prefix.takeEvents()) {
                switch (e) {
                    case BlockStored s -> assertTrue((s.medium() == Medium.DEVICE ? device : host).add(s.hash()), "stored twice: " + s);
                    case BlockRemoved r -> assertTrue((r.medium() == Medium.DEVICE ? device : host).remove(r.hash()), "not held: " + r);
                    case AllBlocksCleared c -> {
                        device.clear();
                        host.clear();
                    }
                }
            }
        }
    }

    /** Leading full blocks of {@code prompt} (not the one holding its last token) held on the device or in host memory. */
    private static int predictHit(Set<Long> device, Set<Long> host, int[] prompt, String salt, int blockSize) {
        long h = PrefixCache.seedFor(salt);
        int hits = 0;
        for (int b = 0; b < (prompt.length - 1) / blockSize; b++) {
            h = PrefixCache.blockHash(h, prompt, b * blockSize, blockSize);
            if (!device.contains(h) && !host.contains(h)) {
                break;
            }
            hits++;
        }
        return hits;
    }

    /** Prompt family {@code which % 3} (they share their first tokens), {@code n} tokens long. */
    private static int[] prompt(int which, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = i < 5 ? 7 + i : 100 * (which % 3) + i;
        }
        return out;
    }

    @net.jqwik.api.Provide
    net.jqwik.api.Arbitrary<List<int[]>> ops() {
        net.jqwik.api.Arbitrary<int[]> op = net.jqwik.api.Arbitraries.integers().between(0, 2).flatMap(kind ->
                net.jqwik.api.Arbitraries.integers().between(0, 99).flatMap(pick ->
                        net.jqwik.api.Arbitraries.integers().between(1, 20).map(n -> new int[] {kind == 2 ? 1 : 0, pick, n})));
        return op.list().ofMinSize(1).ofMaxSize(40);
    }
}
