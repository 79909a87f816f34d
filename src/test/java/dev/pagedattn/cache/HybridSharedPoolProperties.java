package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
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
 * Prefix caching on a {@link HybridKvCache} whose groups share one pool (with a host tier in half the runs), under random
 * admissions of prompts that share prefixes, generated tokens, commits, forks and frees in a pool too small to keep
 * everything cached: after every
 * operation the pool's invariants hold across the groups ({@link HybridKvCache#verify}), a lookup that says it fits is
 * admitted and one that says it does not is refused with nothing changed, and every position a layer can still read
 * holds the K/V written for its token there, whichever group's blocks another group's evictions reused (jqwik prints
 * its seed on failure).
 */
class HybridSharedPoolProperties {
    private static final int F = DecodeBatch.NO_WINDOW;

    @Property(tries = 400)
    void prefixHitsSurviveEveryGroupsEvictionsOnOnePool(
            @ForAll @IntRange(min = 1, max = 4) int blockSize,
            @ForAll @IntRange(min = 2, max = 9) int window,
            @ForAll @IntRange(min = 1, max = 2) int layersPerGroup,
            @ForAll @IntRange(min = 12, max = 60) int numBlocks,
            @ForAll boolean hostTier,
            @ForAll("ops") List<int[]> ops) throws OutOfBlocksException {
        int[] windows = {window, F, window, F};
        HybridKvCache cache = HybridKvCache.sharedPool(windows, numBlocks, layersPerGroup, blockSize, 1, 2, KvDtype.FP32, null);
        cache.enablePrefixCaching();
        if (hostTier) { // evicted blocks to host memory; a hit there comes back into a fresh block of its group
            cache.enableHostOffload(numBlocks * cache.blockBytes(0));
        }
        KvCacheConfig c = cache.group(0).config();
        List<Integer> live = new ArrayList<>();
        Map<Integer, int[]> ids = new HashMap<>(); // seq -> token id at each position
        int nextToken = 10_000;
        for (int[] op : ops) {
            switch (op[0]) {
                case 0 -> { // admit a prompt: one of three shared prefixes, then a suffix of its own
                    int[] prompt = prompt(op[1] % 3, op[2], nextToken);
                    nextToken += op[2];
                    PrefixCache.Lookup[] look = cache.lookup(prompt, null);
                    boolean fits = Arrays.stream(look).allMatch(PrefixCache.Lookup::fits);
                    long used = cache.numUsedBlocks();
                    try {
                        PrefixCache.Admission a = cache.admit(prompt, null);
                        assertTrue(fits, "the lookup said no, the admission went through: " + Arrays.toString(look));
                        int from = a.numCachedTokens();
                        int[] fresh = Arrays.copyOfRange(prompt, from, prompt.length);
                        for (int layer = 0; layer < windows.length; layer++) {
                            cache.writeTokens(a.seq(), layer, from, fresh.length, Tokens.k(c, layer, fresh), Tokens.v(c, layer, fresh));
                        }
                        cache.commit(a.seq());
                        live.add(a.seq());
                        ids.put(a.seq(), prompt);
                    } catch (OutOfBlocksException e) {
                        assertTrue(!fits, "the lookup said yes, the admission was refused: " + e.getMessage());
                        assertEquals(used, cache.numUsedBlocks(), "a refused admission changed the pool");
                    }
                }
                case 1 -> { // generated tokens
                    if (live.isEmpty()) {
                        continue;
                    }
                    int seq = live.get(op[1] % live.size());
                    int[] gen = new int[op[2] % 5 + 1];
                    for (int i = 0; i < gen.length; i++) {
                        gen[i] = nextToken++;
                    }
                    if (!cache.canAppend(seq, gen.length)) {
                        continue;
                    }
                    int pos = cache.append(seq, gen);
                    for (int layer = 0; layer < windows.length; layer++) {
                        cache.writeTokens(seq, layer, pos, gen.length, Tokens.k(c, layer, gen), Tokens.v(c, layer, gen));
                    }
                    cache.commit(seq);
                    int[] all = Arrays.copyOf(ids.get(seq), pos + gen.length);
                    System.arraycopy(gen, 0, all, pos, gen.length);
                    ids.put(seq, all);
                }
                case 2 -> { // fork
                    if (live.isEmpty()) {
                        continue;
                    }
                    int seq = live.get(op[1] % live.size());
                    int child = cache.fork(seq);
                    live.add(child);
                    ids.put(child, ids.get(seq));
                }
                default -> {
                    if (live.isEmpty()) {
                        continue;
                    }
                    int seq = live.remove(op[1] % live.size());
                    cache.free(seq);
                    ids.remove(seq);
                }
            }
            cache.verify();
            for (int seq : live) {
                int[] tokens = ids.get(seq);
                assertEquals(tokens.length, cache.length(seq));
                for (int layer = 0; layer < windows.length; layer++) {
                    int from = cache.group(cache.groupOf(layer)).firstHeldPosition(seq);
                    for (int p = from; p < tokens.length; p++) {
                        assertEquals(Tokens.k(tokens[p], layer, 0, 1), cache.readK(seq, layer, p, 0, 1),
                                "seq " + seq + " layer " + layer + " position " + p);
                    }
                }
            }
        }
    }

    /** Shared prefix {@code which} (6, 9 or 13 tokens) followed by {@code suffix} fresh tokens from {@code first}. */
    private static int[] prompt(int which, int suffix, int first) {
        int prefix = new int[] {6, 9, 13}[which];
        int[] out = new int[prefix + suffix];
        for (int i = 0; i < prefix; i++) {
            out[i] = 100 * (which + 1) + i;
        }
        for (int i = 0; i < suffix; i++) {
            out[prefix + i] = first + i;
        }
        return out;
    }

    /** {op, pick, n}: 0 admit (suffix n in 0..7), 1 generate, 2 fork, 3 free. */
    @Provide
    Arbitrary<List<int[]>> ops() {
        Arbitrary<int[]> op = Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(4, Arbitraries.integers().between(0, 99).flatMap(pick -> Arbitraries.integers().between(0, 7)
                        .map(n -> new int[] {0, pick, n}))),
                net.jqwik.api.Tuple.of(4, Arbitraries.integers().between(0, 99).flatMap(pick -> Arbitraries.integers().between(0, 9)
                        .map(n -> new int[] {1, pick, n}))),
                net.jqwik.api.Tuple.of(1, Arbitraries.integers().between(0, 99).map(pick -> new int[] {2, pick, 0})),
                net.jqwik.api.Tuple.of(3, Arbitraries.integers().between(0, 99).map(pick -> new int[] {3, pick, 0})));
        return op.list().ofMinSize(1).ofMaxSize(50);
    }
}
