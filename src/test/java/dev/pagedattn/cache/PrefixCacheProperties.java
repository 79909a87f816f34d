package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.statistics.StatisticsReport;

/**
 * Random admit / generate / fork / free / commit / reset under memory pressure (few blocks, prompts
 * sharing prefixes, two tenants). After every step: the invariants hold, every live sequence reads
 * back exactly the K/V of its own (salt, tokens), reused blocks are cached ones, and a refused or
 * failed call changes nothing.
 */
class PrefixCacheProperties {
    /** Prompts are cut from these, so admissions share prefixes of different lengths. */
    private static final int[][] BASES = {
            Tokens.range(1, 24),
            Tokens.concat(Tokens.range(1, 8), Tokens.range(100, 16)),
            Tokens.concat(Tokens.range(1, 3), Tokens.range(200, 21)),
            Tokens.range(300, 24),
    };
    private static final String[] SALTS = {null, "tenant-b"};

    sealed interface Op permits Admit, Generate, Fork, Free, Commit, Reset {
    }

    /** Admit a prefix of a base prompt plus a small random tail, write what was not reused, maybe commit. */
    record Admit(int base, int length, int tail, int salt, boolean commit) implements Op {
    }

    /** Generate {@code n} tokens for sequence #pick (PrefixCache.append + write). */
    record Generate(int pick, int n) implements Op {
    }

    record Fork(int pick) implements Op {
    }

    record Free(int pick) implements Op {
    }

    record Commit(int pick) implements Op {
    }

    record Reset() implements Op {
    }

    @Provide
    Arbitrary<List<Op>> operations() {
        Arbitrary<Integer> pick = Arbitraries.integers().between(0, 1_000);
        Arbitrary<Op> admit = Combinators.combine(
                Arbitraries.integers().between(0, BASES.length - 1),
                Arbitraries.integers().between(1, 16),
                Arbitraries.integers().between(0, 3),
                Arbitraries.integers().between(0, SALTS.length - 1),
                Arbitraries.of(true, true, false)).as(Admit::new);
        return Arbitraries.<Op>frequencyOf(
                Tuple.of(6, admit),
                Tuple.of(3, Combinators.combine(pick, Arbitraries.integers().between(1, 6)).as(Generate::new)),
                Tuple.of(2, pick.map(Fork::new)),
                Tuple.of(4, pick.map(Free::new)),
                Tuple.of(2, pick.map(Commit::new)),
                Tuple.of(1, Arbitraries.just(new Reset()))
        ).list().ofMinSize(15).ofMaxSize(50);
    }

    @Property(tries = 500)
    @StatisticsReport(onFailureOnly = true) // the label counts matter when a run fails
    void randomPrefixTrafficUnderMemoryPressureKeepsInvariantsAndContent(
            @ForAll @IntRange(min = 1, max = 4) int blockSize,
            @ForAll @IntRange(min = 5, max = 16) int numBlocks,
            @ForAll long shuffleSeed,
            @ForAll("operations") List<Op> ops) throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(numBlocks, blockSize, 1, 2, KvDtype.FP32, 1));
        cache.shuffleFreeBlocks(shuffleSeed);
        Run run = new Run(cache);
        run.apply(ops);
        KvCacheProperties.cover("admission reusing cached blocks", run.hits > 0);
        KvCacheProperties.cover("eviction", run.evicted);
        KvCacheProperties.cover("exhausted admit or append", run.exhausted > 0);
        KvCacheProperties.cover("reset", run.resets > 0);
    }

    private record Live(String salt, List<Integer> tokens) {
        int[] array() {
            return tokens.stream().mapToInt(Integer::intValue).toArray();
        }
    }

    private static final class Run {
        final KvCache cache;
        final PrefixCache prefix;
        final int bs;
        final PromptKv kv = new PromptKv();
        final Map<Integer, Live> live = new TreeMap<>();
        int nextGenerated = 10_000;
        long evictions;
        int hits;
        int exhausted;
        int resets;
        boolean evicted;

        Run(KvCache cache) {
            this.cache = cache;
            this.prefix = cache.enablePrefixCaching();
            this.bs = cache.config().blockSize();
        }

        void apply(List<Op> ops) throws Exception {
            for (int step = 0; step < ops.size(); step++) {
                Op op = ops.get(step);
                try {
                    apply(op);
                    check();
                } catch (AssertionError | RuntimeException e) {
                    throw new AssertionError("step " + step + " " + op + " failed: " + e.getMessage(), e);
                }
            }
            for (int seq : live.keySet()) {
                cache.free(seq);
            }
            cache.verify();
            assertEquals(0, cache.numUsedBlocks());
            assertEquals(cache.config().numBlocks(), cache.numAllocatableBlocks());
        }

        int pick(int p) {
            List<Integer> ids = new ArrayList<>(live.keySet());
            return ids.get(p % ids.size());
        }

        void apply(Op op) throws Exception {
            switch (op) {
                case Admit a -> admit(a);
                case Reset r -> {
                    if (cache.numUsedBlocks() > 0) {
                        CacheSnapshot before = CacheSnapshot.of(cache);
                        IllegalStateException e = assertThrows(IllegalStateException.class, prefix::reset);
                        assertTrue(e.getMessage().contains("numUsedBlocks=" + cache.numUsedBlocks()), e.getMessage());
                        assertEquals(before, CacheSnapshot.of(cache));
                    } else {
                        prefix.reset();
                        assertEquals(0, prefix.metrics().numCachedBlocks());
                        assertEquals(cache.config().numBlocks(), cache.pool().numFree());
                        evictions = 0;
                        resets++;
                    }
                }
                default -> {
                    if (live.isEmpty()) {
                        return;
                    }
                    switch (op) {
                        case Generate g -> generate(pick(g.pick()), g.n());
                        case Fork f -> {
                            int parent = pick(f.pick());
                            int child = cache.fork(parent);
                            live.put(child, new Live(live.get(parent).salt(), new ArrayList<>(live.get(parent).tokens())));
                        }
                        case Free f -> {
                            int seq = pick(f.pick());
                            cache.free(seq);
                            live.remove(seq);
                        }
                        case Commit c -> prefix.commit(pick(c.pick()));
                        default -> throw new AssertionError(op);
                    }
                }
            }
        }

        void admit(Admit a) throws Exception {
            int[] base = BASES[a.base()];
            int[] tokens = Arrays.copyOf(base, Math.min(a.length(), base.length) + a.tail());
            for (int i = Math.min(a.length(), base.length); i < tokens.length; i++) {
                tokens[i] = 5_000 + (i * 7 + a.tail()) % 11;
            }
            String salt = SALTS[a.salt()];
            CacheSnapshot before = CacheSnapshot.of(cache);
            PrefixCache.Admission ad;
            try {
                ad = prefix.admit(tokens, salt);
            } catch (OutOfBlocksException e) {
                exhausted++;
                assertTrue(e.numNeeded() > e.numAllocatable());
                assertEquals(before, CacheSnapshot.of(cache), "a failed admission changed the cache");
                return;
            }
            int cached = ad.numCachedTokens();
            hits += cached > 0 ? 1 : 0;
            assertEquals(tokens.length, ad.numPromptTokens());
            assertEquals(0, cached % bs);
            assertTrue(cached <= (tokens.length - 1) / bs * bs, "the block of the last token is never reused");
            int[] table = cache.pageTable(ad.seq()).blocks();
            assertEquals(cache.config().blocksFor(tokens.length), table.length);
            for (int i = 0; i < table.length; i++) {
                assertEquals(i < cached / bs, prefix.isCached(table[i]), "block " + i + " of the admission");
                if (i >= cached / bs) {
                    assertEquals(1, cache.pool().refCount(table[i]), "a fresh block is owned alone");
                }
            }
            kv.write(cache, ad.seq(), salt, tokens, cached);
            if (a.commit()) {
                prefix.commit(ad.seq());
            }
            List<Integer> list = new ArrayList<>();
            for (int t : tokens) {
                list.add(t);
            }
            live.put(ad.seq(), new Live(salt, list));
        }

        void generate(int seq, int n) throws Exception {
            int[] ids = new int[n];
            for (int i = 0; i < n; i++) {
                ids[i] = nextGenerated++ % 20_000;
            }
            CacheSnapshot before = CacheSnapshot.of(cache);
            Live l = live.get(seq);
            int first;
            try {
                first = prefix.append(seq, ids);
            } catch (OutOfBlocksException e) {
                exhausted++;
                assertEquals(before, CacheSnapshot.of(cache), "a failed append changed the cache");
                return;
            }
            assertEquals(l.tokens().size(), first);
            for (int id : ids) {
                l.tokens().add(id);
            }
            kv.write(cache, seq, l.salt(), l.array(), first);
        }

        void check() {
            cache.verify();
            PrefixCache.Metrics m = prefix.metrics();
            assertTrue(m.evictions() >= evictions, "evictions went down");
            evicted |= m.evictions() > evictions;
            evictions = m.evictions();
            assertTrue(m.blockHits() <= m.blockLookups());
            assertEquals(m.blockHits() * bs, m.tokensReused());
            assertEquals(cache.numUsedBlocks(), m.numUsedBlocks());
            assertEquals(live.size(), cache.numSequences());
            for (Map.Entry<Integer, Live> e : live.entrySet()) {
                kv.assertHolds(cache, e.getKey(), e.getValue().salt(), e.getValue().array());
            }
        }
    }
}
