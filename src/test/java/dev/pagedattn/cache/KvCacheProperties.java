package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
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
import net.jqwik.api.statistics.Statistics;
import net.jqwik.api.statistics.StatisticsReport;

/**
 * Random operation sequences on a KvCache, checked after every step against the invariants
 * ({@link KvCache#verify}) and against a plain model: per sequence a list of model blocks (with
 * their own reference counts, so copy-on-write and exhaustion are predicted independently) and
 * the id of the token stored at each position. Every stored K/V is read back through the page
 * table after every step, so no sequence may ever see another's tokens.
 */
class KvCacheProperties {

    sealed interface Op permits Create, Append, Reserve, Write, Fork, Free, Exhaust {
    }

    /** New empty sequence. */
    record Create() implements Op {
    }

    /** Append {@code n} tokens to sequence #pick and write their K/V. */
    record Append(int pick, int n) implements Op {
    }

    /** Reserve {@code n} slots of sequence #pick without writing them. */
    record Reserve(int pick, int n) implements Op {
    }

    /** Write a fresh token at position #position of sequence #pick (refused in a shared block). */
    record Write(int pick, int position) implements Op {
    }

    record Fork(int pick) implements Op {
    }

    record Free(int pick) implements Op {
    }

    /** Append more tokens than the free blocks can hold. */
    record Exhaust(int pick, int extra) implements Op {
    }

    @Provide
    Arbitrary<List<Op>> operations() {
        Arbitrary<Integer> pick = Arbitraries.integers().between(0, 1_000);
        Arbitrary<Integer> few = Arbitraries.integers().between(0, 9);
        return Arbitraries.<Op>frequencyOf(
                Tuple.of(2, Arbitraries.just(new Create())),
                Tuple.of(5, pick.map(p -> new Append(p, 1))),
                Tuple.of(3, Combinators.combine(pick, few).as(Append::new)),
                Tuple.of(2, Combinators.combine(pick, few).as(Reserve::new)),
                Tuple.of(3, Combinators.combine(pick, pick).as(Write::new)),
                Tuple.of(3, pick.map(Fork::new)),
                Tuple.of(2, pick.map(Free::new)),
                Tuple.of(1, Combinators.combine(pick, few).as(Exhaust::new))
        ).list().ofMinSize(20).ofMaxSize(80);
    }

    @Property(tries = 500)
    @StatisticsReport(onFailureOnly = true) // the label counts matter when a run fails
    void randomOperationsAgreeWithTheModel(@ForAll @IntRange(min = 1, max = 5) int blockSize,
                                           @ForAll @IntRange(min = 3, max = 12) int numBlocks,
                                           @ForAll @IntRange(min = 1, max = 2) int numLayers,
                                           @ForAll long shuffleSeed,
                                           @ForAll("operations") List<Op> ops) throws Exception {
        KvCacheConfig c = new KvCacheConfig(numBlocks, blockSize, 2, 2, KvDtype.FP32, numLayers);
        KvCache cache = new KvCache(c);
        cache.shuffleFreeBlocks(shuffleSeed);
        Run run = new Run(cache);
        run.apply(ops);
        // the runs must reach the interesting states, or the property proves little
        cover("copy-on-write", run.copies > 0);
        cover("refused write into a shared block", run.refusedWrites > 0);
        cover("exhausted append", run.exhausted > 0);
    }

    static void cover(String label, boolean reached) {
        Statistics.label(label).collect(reached);
        Statistics.label(label).coverage(coverage -> coverage.check(true).count(n -> n > 0));
    }

    /** A model block: only its owner count matters. */
    private static final class ModelBlock {
        int refs = 1;
    }

    private static final class ModelSeq {
        final List<ModelBlock> blocks = new ArrayList<>();
        final List<Integer> tokens = new ArrayList<>(); // token id per position, null = reserved, not written
    }

    private static final class Run {
        final KvCache cache;
        final KvCacheConfig c;
        final Map<Integer, ModelSeq> model = new TreeMap<>();
        int nextToken = 1;
        int copies;
        int refusedWrites;
        int exhausted;

        Run(KvCache cache) {
            this.cache = cache;
            this.c = cache.config();
        }

        void apply(List<Op> ops) throws Exception {
            model.put(cache.createSequence(), new ModelSeq());
            for (int step = 0; step < ops.size(); step++) {
                Op op = ops.get(step);
                try {
                    apply(op);
                    check();
                } catch (AssertionError | RuntimeException e) {
                    throw new AssertionError("step " + step + " " + op + " failed: " + e.getMessage(), e);
                }
            }
        }

        int pick(int p) {
            List<Integer> ids = new ArrayList<>(model.keySet());
            return ids.get(p % ids.size());
        }

        int numFree() {
            return c.numBlocks() - distinctBlocks();
        }

        int distinctBlocks() {
            Map<ModelBlock, Boolean> seen = new IdentityHashMap<>();
            for (ModelSeq s : model.values()) {
                for (ModelBlock b : s.blocks) {
                    seen.put(b, true);
                }
            }
            return seen.size();
        }

        boolean lastNeedsCopy(ModelSeq s) {
            return s.tokens.size() % c.blockSize() != 0 && s.blocks.getLast().refs > 1;
        }

        int needed(ModelSeq s, int n) {
            if (n == 0) {
                return 0;
            }
            return c.blocksFor(s.tokens.size() + n) - s.blocks.size() + (lastNeedsCopy(s) ? 1 : 0);
        }

        void apply(Op op) throws Exception {
            if (op instanceof Create) {
                int seq = cache.createSequence();
                assertTrue(model.put(seq, new ModelSeq()) == null, "id reused");
                return;
            }
            if (model.isEmpty()) {
                return;
            }
            switch (op) {
                case Append a -> grow(pick(a.pick()), a.n(), true);
                case Reserve r -> grow(pick(r.pick()), r.n(), false);
                case Exhaust e -> {
                    int seq = pick(e.pick());
                    int n = (numFree() + 1 + e.extra()) * c.blockSize();
                    expectOutOfBlocks(seq, n);
                }
                case Write w -> {
                    int seq = pick(w.pick());
                    ModelSeq s = model.get(seq);
                    if (s.tokens.isEmpty()) {
                        return;
                    }
                    int pos = w.position() % s.tokens.size();
                    int id = nextToken++;
                    if (s.blocks.get(pos / c.blockSize()).refs > 1) {
                        CacheSnapshot before = CacheSnapshot.of(cache);
                        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class,
                                () -> cache.write(seq, 0, pos, Tokens.k(c, 0, id), Tokens.v(c, 0, id)));
                        assertTrue(ex.getMessage().contains("shared"), ex.getMessage());
                        assertEquals(before, CacheSnapshot.of(cache));
                        refusedWrites++;
                    } else {
                        for (int layer = 0; layer < c.numLayers(); layer++) {
                            cache.write(seq, layer, pos, Tokens.k(c, layer, id), Tokens.v(c, layer, id));
                        }
                        s.tokens.set(pos, id);
                    }
                }
                case Fork f -> {
                    ModelSeq parent = model.get(pick(f.pick()));
                    int child = cache.fork(pick(f.pick()));
                    ModelSeq s = new ModelSeq();
                    for (ModelBlock b : parent.blocks) {
                        b.refs++;
                        s.blocks.add(b);
                    }
                    s.tokens.addAll(parent.tokens);
                    assertTrue(model.put(child, s) == null, "id reused");
                }
                case Free f -> {
                    int seq = pick(f.pick());
                    cache.free(seq);
                    for (ModelBlock b : model.remove(seq).blocks) {
                        b.refs--;
                    }
                }
                default -> fail("unknown op " + op);
            }
        }

        void grow(int seq, int n, boolean write) throws Exception {
            ModelSeq s = model.get(seq);
            int needed = needed(s, n);
            assertEquals(needed, cache.blocksNeeded(seq, n), "blocksNeeded");
            assertEquals(needed <= numFree(), cache.canAppend(seq, n), "canAppend");
            if (needed > numFree()) {
                expectOutOfBlocks(seq, n);
                return;
            }
            cache.drainBlockCopies();
            int[] ids = new int[n];
            for (int i = 0; i < n; i++) {
                ids[i] = nextToken++;
            }
            int first = write ? Tokens.append(cache, seq, ids) : cache.append(seq, n);
            assertEquals(s.tokens.size(), first);
            List<KvCache.BlockCopy> copies = cache.drainBlockCopies();
            if (n > 0 && lastNeedsCopy(s)) {
                assertEquals(1, copies.size(), "copy-on-write of the shared last block");
                assertEquals(s.tokens.size() % c.blockSize(), copies.getFirst().numSlots());
                this.copies++;
                s.blocks.getLast().refs--;
                s.blocks.set(s.blocks.size() - 1, new ModelBlock());
            } else {
                assertEquals(List.of(), copies);
            }
            while (s.blocks.size() < c.blocksFor(s.tokens.size() + n)) {
                s.blocks.add(new ModelBlock());
            }
            for (int id : ids) {
                s.tokens.add(write ? id : null);
            }
        }

        void expectOutOfBlocks(int seq, int n) {
            CacheSnapshot before = CacheSnapshot.of(cache);
            int needed = needed(model.get(seq), n);
            OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.append(seq, n));
            assertEquals(needed, e.numNeeded());
            assertEquals(numFree(), e.numAllocatable());
            assertEquals(before, CacheSnapshot.of(cache), "a failed append changed the cache");
            assertEquals(List.of(), cache.drainBlockCopies());
            exhausted++;
        }

        void check() {
            cache.verify();
            assertEquals(model.size(), cache.numSequences());
            assertEquals(distinctBlocks(), cache.numUsedBlocks());
            assertEquals(numFree(), cache.numAllocatableBlocks());
            Map<ModelBlock, Integer> physical = new IdentityHashMap<>();
            Map<Integer, ModelBlock> logical = new HashMap<>();
            for (Map.Entry<Integer, ModelSeq> e : model.entrySet()) {
                int seq = e.getKey();
                ModelSeq s = e.getValue();
                assertEquals(s.tokens.size(), cache.length(seq));
                int[] table = cache.pageTable(seq).blocks();
                assertEquals(s.blocks.size(), table.length);
                for (int i = 0; i < table.length; i++) {
                    ModelBlock mb = s.blocks.get(i);
                    // sharing in the cache is exactly sharing in the model
                    Integer known = physical.putIfAbsent(mb, table[i]);
                    assertEquals(known == null ? table[i] : known, table[i], "seq " + seq + " logical block " + i);
                    ModelBlock other = logical.putIfAbsent(table[i], mb);
                    assertTrue(other == null || other == mb, "block " + table[i] + " shared in the cache but not in the model");
                    assertEquals(mb.refs, cache.pool().refCount(table[i]));
                }
                for (int p = 0; p < s.tokens.size(); p++) {
                    Integer id = s.tokens.get(p);
                    if (id == null) {
                        continue;
                    }
                    for (int layer = 0; layer < c.numLayers(); layer++) {
                        for (int h = 0; h < c.numKvHeads(); h++) {
                            for (int d = 0; d < c.headDim(); d++) {
                                if (cache.readK(seq, layer, p, h, d) != Tokens.k(id, layer, h, d)
                                        || cache.readV(seq, layer, p, h, d) != Tokens.v(id, layer, h, d)) {
                                    fail("seq " + seq + " position " + p + " layer " + layer + " head " + h + " dim " + d
                                            + ": expected token " + id + ", read K=" + cache.readK(seq, layer, p, h, d));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
