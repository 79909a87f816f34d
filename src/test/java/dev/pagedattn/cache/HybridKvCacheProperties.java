package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Random appends, forks and frees on a small {@link HybridKvCache} (two windowed groups and a full one, each with a pool of
 * its own, or the windows' layers in groups of one or two on one shared pool): after every
 * operation the groups' invariants and lockstep hold ({@link HybridKvCache#verify}), {@code canAppend} predicts exactly
 * whether an append succeeds, a refused append changes nothing in any group, every sequence holds at most its window's
 * bound of blocks in each windowed group, and every token a layer can still read is the one written there (jqwik prints
 * its seed on failure).
 */
class HybridKvCacheProperties {
    private static final int F = DecodeBatch.NO_WINDOW;

    @Property(tries = 200)
    void randomRunsKeepTheGroupsInLockstep(
            @ForAll @IntRange(min = 1, max = 5) int blockSize,
            @ForAll @IntRange(min = 1, max = 12) int window,
            @ForAll @IntRange(min = 0, max = 2) int sharedPool,
            @ForAll("ops") List<int[]> ops) throws OutOfBlocksException {
        int[] windows = {window, F, window + 5, window, F};
        HybridKvCache cache = sharedPool == 0 ? HybridKvCache.of(windows, new int[] {12, 30, 14}, blockSize, 1, 2, KvDtype.FP32)
                : HybridKvCache.sharedPool(windows, 40, sharedPool, blockSize, 1, 2, KvDtype.FP32, null);
        KvCacheConfig c = cache.group(0).config();
        List<Integer> live = new ArrayList<>();
        Map<Integer, List<Integer>> tokens = new HashMap<>(); // seq -> token id at each position
        Map<Integer, Integer> lastAppend = new HashMap<>();   // seq -> tokens its last append brought (0: none yet)
        int nextToken = 1;
        for (int[] op : ops) {
            switch (op[0]) {
                case 0 -> {
                    int seq = cache.createSequence();
                    live.add(seq);
                    tokens.put(seq, new ArrayList<>());
                    lastAppend.put(seq, 0);
                }
                case 1 -> {
                    if (live.isEmpty()) {
                        continue;
                    }
                    int seq = live.get(op[1] % live.size());
                    int n = op[2];
                    boolean can = cache.canAppend(seq, n);
                    String before = snapshot(cache, seq);
                    try {
                        int pos = cache.append(seq, n);
                        assertTrue(can, "canAppend said no, append took " + n);
                        lastAppend.put(seq, n);
                        int[] ids = new int[n];
                        for (int i = 0; i < n; i++) {
                            ids[i] = nextToken++;
                            tokens.get(seq).add(ids[i]);
                        }
                        for (int layer = 0; layer < windows.length; layer++) {
                            cache.writeTokens(seq, layer, pos, n, Tokens.k(c, layer, ids), Tokens.v(c, layer, ids));
                        }
                    } catch (OutOfBlocksException e) {
                        assertTrue(!can, "canAppend said yes, append refused: " + e.getMessage());
                        assertEquals(before, snapshot(cache, seq), "a refused append changed the cache");
                    }
                }
                case 2 -> {
                    if (live.isEmpty()) {
                        continue;
                    }
                    int seq = live.get(op[1] % live.size());
                    int child = cache.fork(seq);
                    live.add(child);
                    tokens.put(child, new ArrayList<>(tokens.get(seq)));
                    lastAppend.put(child, lastAppend.get(seq));
                }
                default -> {
                    if (live.isEmpty()) {
                        continue;
                    }
                    int seq = live.remove(op[1] % live.size());
                    cache.free(seq);
                    tokens.remove(seq);
                }
            }
            cache.verify();
            for (int seq : live) {
                assertHolds(cache, windows, seq, tokens.get(seq), blockSize, lastAppend.get(seq));
            }
        }
    }

    /** Every position each layer can still read holds its token; windowed groups stay within their bound. */
    private static void assertHolds(HybridKvCache cache, int[] windows, int seq, List<Integer> ids, int blockSize, int lastN) {
        assertEquals(ids.size(), cache.length(seq));
        for (int layer = 0; layer < windows.length; layer++) {
            int g = cache.groupOf(layer);
            int from = cache.group(g).firstHeldPosition(seq);
            if (windows[layer] != F) {
                PageTable t = cache.group(g).pageTable(seq);
                // released before the last append: the window of the token before it, plus what that append opened
                assertTrue(from <= Math.max(0, ids.size() - windows[layer]), "layer " + layer + " released position "
                        + (from - 1) + " of " + ids.size() + " through a window of " + windows[layer]);
                int held = t.numBlocks() - t.numReleased();
                assertTrue(lastN == 0 || held <= HybridKvCache.windowBlocks(windows[layer], blockSize, lastN), "layer " + layer
                        + " holds " + held + " blocks after an append of " + lastN + " through a window of " + windows[layer]);
            } else {
                assertEquals(0, from, "a full layer released");
            }
            for (int p = from; p < ids.size(); p++) {
                assertEquals(Tokens.k(ids.get(p), layer, 0, 1), cache.readK(seq, layer, p, 0, 1),
                        "seq " + seq + " layer " + layer + " position " + p);
            }
        }
    }

    /** Lengths, page tables and used blocks of every group, as text. */
    private static String snapshot(HybridKvCache cache, int seq) {
        StringBuilder sb = new StringBuilder();
        for (int g = 0; g < cache.numGroups(); g++) {
            KvCache group = cache.group(g);
            sb.append(g).append(':').append(group.numUsedBlocks()).append(':')
                    .append(java.util.Arrays.toString(group.pageTable(seq).blocks())).append(';');
        }
        return sb.toString();
    }

    /** {op, pick, n}: 0 create, 1 append n (1..9), 2 fork, 3 free; appends weighted up. */
    @Provide
    Arbitrary<List<int[]>> ops() {
        Arbitrary<int[]> op = Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(2, Arbitraries.just(new int[] {0, 0, 0})),
                net.jqwik.api.Tuple.of(8, Arbitraries.integers().between(0, 99).flatMap(pick -> Arbitraries.integers().between(1, 9)
                        .map(n -> new int[] {1, pick, n}))),
                net.jqwik.api.Tuple.of(1, Arbitraries.integers().between(0, 99).map(pick -> new int[] {2, pick, 0})),
                net.jqwik.api.Tuple.of(1, Arbitraries.integers().between(0, 99).map(pick -> new int[] {3, pick, 0})));
        return op.list().ofMinSize(1).ofMaxSize(60);
    }
}
