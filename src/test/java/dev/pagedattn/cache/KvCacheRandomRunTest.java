package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A million random operations (create, append, reserve, write, fork, free, prefix admit and
 * commit, release of leading blocks as a sliding window does, truncation and compaction as speculative decoding drops
 * and moves drafts, exhaustion) on a small cache with prefix caching, checked against an independent model:
 * per sequence the physical blocks it should hold and the token stored at every position, per
 * block its reference count and whether it is published (keyed by the token ids of the whole
 * prefix it ends). The cache verifies its own invariants after every operation (checked mode);
 * after every operation the touched sequence is compared with the model, and every
 * {@value #FULL_CHECK_EVERY} operations all of it, every stored token of every layer included.
 */
class KvCacheRandomRunTest {
    private static final int OPS = 1_000_000;
    private static final int FULL_CHECK_EVERY = 5_000;
    private static final int BS = 4;
    private static final int NUM_BLOCKS = 40;
    private static final KvCacheConfig C = new KvCacheConfig(NUM_BLOCKS, BS, 1, 1, KvDtype.FP32, 2);
    private static final int[][] PROMPT_BASES = new int[6][16]; // prompts share prefixes of these

    private final KvCache cache = new KvCache(C);
    private final PrefixCache prefix = cache.enablePrefixCaching();
    private final Map<Integer, Seq> seqs = new HashMap<>();
    private final List<Integer> ids = new ArrayList<>();            // live ids, for picking
    private final int[] refs = new int[NUM_BLOCKS];                 // model reference counts
    private final Map<List<Integer>, Integer> published = new HashMap<>(); // token prefix -> block
    private final List<?>[] keyOf = new List<?>[NUM_BLOCKS];       // block -> its published prefix, null
    private int live;                                               // blocks with refs > 0
    private int nextId = 1;
    private final int[] counts = new int[11]; // copies at append, copies at write, refusals, hits, evictions, ...

    /** A model sequence. Admitted ones (and their forks) carry token ids the prefix cache tracks. */
    private static final class Seq {
        int[] blocks = new int[0];
        int[] tokens = new int[0]; // token id per position; -1: reserved, not written
        boolean admitted;
        int numPublished;          // leading blocks the prefix cache has hashed for this sequence
        int numReleased;           // leading blocks given back (KvCache.releaseBefore); PageTable.RELEASED in blocks

        Seq copy() {
            Seq s = new Seq();
            s.blocks = blocks.clone();
            s.tokens = tokens.clone();
            s.admitted = admitted;
            s.numPublished = numPublished;
            s.numReleased = numReleased;
            return s;
        }
    }

    @Test
    @Timeout(120)
    void aMillionRandomOperationsAgreeWithTheModel() throws Exception {
        assertTrue(Checks.CHECKED, "this run is meant for checked mode (-Dpagedattn.checked=true), as the build runs tests");
        Random random = TestRandom.create("KvCacheRandomRunTest.aMillionRandomOperationsAgreeWithTheModel");
        for (int[] base : PROMPT_BASES) {
            for (int i = 0; i < base.length; i++) {
                base[i] = 1 + random.nextInt(3); // a small vocabulary: prompts often share their first blocks
            }
        }
        RandomKv.shuffleFreeBlocks(cache, random.nextLong());
        for (int op = 0; op < OPS; op++) {
            int kind = random.nextInt(100);
            try {
                int seq = step(kind, random);
                checkCounters();
                if (seq >= 0 && seqs.containsKey(seq)) {
                    checkSequence(seq, false);
                }
                if (op % FULL_CHECK_EVERY == 0) {
                    checkAll();
                }
            } catch (AssertionError | Exception e) {
                throw new AssertionError("operation " + op + " (kind " + kind + ") failed: " + e, e);
            }
        }
        checkAll();
        // the run must reach the interesting states, or it proves little
        String[] names = {"copy at append", "copy at write", "refused for lack of blocks", "prefix hits", "evictions",
                "admissions", "commits", "forks", "releases", "truncations", "compactions with copies"};
        for (int i = 0; i < names.length; i++) {
            assertTrue(counts[i] > 100, names[i] + " happened only " + counts[i] + " times");
        }
    }

    /** Applies one random operation; returns the sequence it touched, or -1. */
    private int step(int kind, Random random) throws Exception {
        if (ids.isEmpty() || kind < 8) {
            return ids.size() > 30 ? free(pick(random)) : create();
        }
        int seq = pick(random);
        if (kind < 30) {
            return append(seq, random.nextInt(7), random);
        } else if (kind < 45) {
            return write(seq, random);
        } else if (kind < 55) {
            return fork(seq);
        } else if (kind < 70) {
            return free(seq);
        } else if (kind < 90) {
            return admit(random);
        } else if (kind < 93) {
            return commit(seq);
        } else if (kind < 95) {
            return releaseBefore(seq, random);
        } else if (kind < 97) {
            return truncate(seq, random);
        } else if (kind < 99) {
            return compact(seq, random);
        }
        return exhaust(seq);
    }

    private int pick(Random random) {
        return ids.get(random.nextInt(ids.size()));
    }

    private int create() {
        int seq = cache.createSequence();
        add(seq, new Seq());
        return seq;
    }

    private int append(int seq, int n, Random random) throws Exception {
        Seq s = seqs.get(seq);
        int len = s.tokens.length;
        boolean copyLast = n > 0 && len % BS != 0 && shared(s.blocks[s.blocks.length - 1]);
        int needed = n == 0 ? 0 : C.blocksFor(len + n) - s.blocks.length + (copyLast ? 1 : 0);
        int[] newIds = new int[n];
        for (int i = 0; i < n; i++) {
            newIds[i] = s.admitted ? 1 + random.nextInt(3) : freshId();
        }
        if (needed > NUM_BLOCKS - live) {
            int[] before = cache.pageTable(seq).blocks();
            assertThrows(OutOfBlocksException.class, () -> {
                if (s.admitted) {
                    prefix.append(seq, newIds);
                } else {
                    cache.append(seq, n);
                }
            });
            assertArrayEquals(before, cache.pageTable(seq).blocks());
            counts[2]++;
            return seq;
        }
        int first = s.admitted ? prefix.append(seq, newIds) : cache.append(seq, n);
        assertEquals(len, first);
        int[] table = cache.pageTable(seq).blocks();
        if (copyLast) {
            int last = s.blocks.length - 1;
            assertTrue(table[last] != s.blocks[last], "copy-on-write of the shared, partly filled last block");
            release(s.blocks[last]);
            allocated(table[last]);
            counts[0]++;
        }
        for (int i = s.blocks.length; i < table.length; i++) {
            allocated(table[i]);
        }
        s.blocks = table;
        s.tokens = Arrays.copyOf(s.tokens, len + n);
        Arrays.fill(s.tokens, len, len + n, -1);
        // admitted sequences always write what they reserve (their ids get published); others sometimes not
        if (s.admitted || random.nextBoolean()) {
            writeRun(seq, s, len, newIds);
        }
        return seq;
    }

    private int write(int seq, Random random) throws Exception {
        Seq s = seqs.get(seq);
        if (s.tokens.length == 0) {
            return seq;
        }
        int pos = random.nextInt(s.tokens.length);
        int logical = pos / BS;
        int id = s.admitted ? admittedId(s, pos, random) : freshId();
        if (logical < s.numReleased) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> cache.write(seq, 0, pos, Tokens.k(C, 0, id), Tokens.v(C, 0, id)));
            assertTrue(e.getMessage().contains("released"), e.getMessage());
            assertArrayEquals(s.blocks, cache.pageTable(seq).blocks());
            return seq;
        }
        boolean copy = shared(s.blocks[logical]);
        if (copy && live == NUM_BLOCKS) {
            assertThrows(OutOfBlocksException.class, () -> cache.write(seq, 0, pos, Tokens.k(C, 0, id), Tokens.v(C, 0, id)));
            assertArrayEquals(s.blocks, cache.pageTable(seq).blocks());
            counts[2]++;
            return seq;
        }
        writeRun(seq, s, pos, new int[] {id});
        int now = cache.pageTable(seq).block(logical);
        if (copy) {
            assertTrue(now != s.blocks[logical], "copy-on-write at write");
            release(s.blocks[logical]);
            allocated(now);
            s.blocks[logical] = now;
            counts[1]++;
        } else {
            assertEquals(s.blocks[logical], now, "an unshared block is written in place");
        }
        return seq;
    }

    /** The id an admitted sequence may write at {@code pos}: its own (its K/V is published by id), or any while reserved. */
    private static int admittedId(Seq s, int pos, Random random) {
        return s.tokens[pos] >= 0 ? s.tokens[pos] : 1 + random.nextInt(3);
    }

    private int fork(int seq) {
        Seq parent = seqs.get(seq);
        int child = cache.fork(seq);
        for (int i = parent.numReleased; i < parent.blocks.length; i++) {
            retain(parent.blocks[i]);
        }
        add(child, parent.copy());
        counts[7]++;
        return child;
    }

    private int free(int seq) {
        cache.free(seq);
        Seq s = seqs.remove(seq);
        ids.remove(Integer.valueOf(seq));
        for (int i = s.blocks.length - 1; i >= s.numReleased; i--) {
            release(s.blocks[i]);
        }
        return -1;
    }

    /** Gives back the blocks wholly before a random position (sometimes one past the length: refused, nothing changes). */
    private int releaseBefore(int seq, Random random) {
        Seq s = seqs.get(seq);
        int position = random.nextInt(s.tokens.length + 2);
        if (position > s.tokens.length) {
            CacheSnapshot before = CacheSnapshot.of(cache);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.releaseBefore(seq, position));
            assertTrue(e.getMessage().startsWith("position=" + position + " "), e.getMessage());
            assertEquals(before, CacheSnapshot.of(cache));
            return seq;
        }
        int upTo = Math.max(s.numReleased, position / BS);
        assertEquals(upTo - s.numReleased, cache.releaseBefore(seq, position), "blocks released before " + position);
        for (int i = upTo - 1; i >= s.numReleased; i--) {
            release(s.blocks[i]);
            s.blocks[i] = PageTable.RELEASED;
        }
        s.numReleased = upTo;
        assertEquals(upTo * BS, cache.firstHeldPosition(seq));
        counts[8]++;
        return seq;
    }

    /** Drops the tokens from a random length on (sometimes one past the length or before the held run: refused). */
    private int truncate(int seq, Random random) {
        Seq s = seqs.get(seq);
        int held = s.numReleased * BS;
        int length = held - 1 + random.nextInt(s.tokens.length - held + 3);
        if (length < held || length > s.tokens.length) {
            CacheSnapshot before = CacheSnapshot.of(cache);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.truncate(seq, length));
            assertTrue(e.getMessage().startsWith("length=" + length + " "), e.getMessage());
            assertEquals(before, CacheSnapshot.of(cache));
            return seq;
        }
        int keepBlocks = Math.max(s.numReleased, C.blocksFor(length));
        assertEquals(s.blocks.length - keepBlocks, cache.truncate(seq, length), "blocks given back");
        dropTo(s, length);
        counts[9]++;
        return seq;
    }

    /**
     * Keeps a random ascending subset of the positions from a random first one on, moved down to it (a token tree's
     * accepted path); refused for lack of blocks where its copies need more than are free.
     */
    private int compact(int seq, Random random) {
        Seq s = seqs.get(seq);
        int held = s.numReleased * BS;
        int first = held + random.nextInt(s.tokens.length - held + 1);
        List<Integer> kept = new ArrayList<>();
        for (int p = first; p < s.tokens.length; p++) {
            if (random.nextInt(3) > 0) {
                kept.add(p);
            }
        }
        int[] keep = kept.stream().mapToInt(Integer::intValue).toArray();
        int moved = 0;
        while (moved < keep.length && keep[moved] == first + moved) {
            moved++;
        }
        int copies = 0;
        for (int b = (first + moved) / BS; moved < keep.length && b <= (first + keep.length - 1) / BS; b++) {
            copies += shared(s.blocks[b]) ? 1 : 0;
        }
        if (copies > NUM_BLOCKS - live) {
            CacheSnapshot before = CacheSnapshot.of(cache);
            assertThrows(OutOfBlocksException.class, () -> cache.compact(seq, first, keep));
            assertEquals(before, CacheSnapshot.of(cache));
            counts[2]++;
            return seq;
        }
        int[] blocksBefore = s.blocks.clone();
        try {
            assertEquals(first + keep.length, cache.compact(seq, first, keep));
        } catch (OutOfBlocksException e) {
            throw new AssertionError("compact refused with " + (NUM_BLOCKS - live) + " free blocks for " + copies + " copies", e);
        }
        int[] table = cache.pageTable(seq).blocks();
        for (int b = 0; b < table.length; b++) {
            if (table[b] != blocksBefore[b]) { // copied before its slots changed
                assertTrue(shared(blocksBefore[b]), "block " + blocksBefore[b] + " copied though not shared");
                release(blocksBefore[b]);
                allocated(table[b]);
                s.blocks[b] = table[b];
            }
        }
        for (int i = 0; i < keep.length; i++) {
            s.tokens[first + i] = s.tokens[keep[i]];
        }
        s.numPublished = Math.min(s.numPublished, first / BS);
        dropTo(s, first + keep.length);
        counts[10] += copies > 0 ? 1 : 0;
        return seq;
    }

    /** The model of {@link KvCache#truncate}: blocks past the one holding the last token given back, tail first. */
    private void dropTo(Seq s, int length) {
        int keepBlocks = Math.max(s.numReleased, C.blocksFor(length));
        for (int i = s.blocks.length - 1; i >= keepBlocks; i--) {
            release(s.blocks[i]);
        }
        s.blocks = Arrays.copyOf(s.blocks, keepBlocks);
        s.tokens = Arrays.copyOf(s.tokens, length);
        s.numPublished = Math.min(s.numPublished, length / BS);
    }

    private int admit(Random random) throws Exception {
        int[] base = PROMPT_BASES[random.nextInt(PROMPT_BASES.length)];
        int[] prompt = Arrays.copyOf(base, 1 + random.nextInt(base.length));
        for (int i = random.nextInt(3); i > 0; i--) {
            prompt = Tokens.concat(prompt, 1 + random.nextInt(3));
        }
        List<Integer> hits = new ArrayList<>();
        int revived = 0;
        for (int i = 0; i < (prompt.length - 1) / BS; i++) {
            Integer b = published.get(key(prompt, (i + 1) * BS));
            if (b == null) {
                break;
            }
            hits.add(b);
            revived += refs[b] == 0 ? 1 : 0;
        }
        int needed = C.blocksFor(prompt.length) - hits.size();
        if (needed > NUM_BLOCKS - live - revived) {
            int[] p = prompt;
            int numSeqs = cache.numSequences();
            assertThrows(OutOfBlocksException.class, () -> prefix.admit(p, null));
            assertEquals(numSeqs, cache.numSequences());
            counts[2]++;
            return -1;
        }
        PrefixCache.Admission a = prefix.admit(prompt, null);
        assertEquals(hits.size() * BS, a.numCachedTokens(), "prefix hits");
        int[] table = cache.pageTable(a.seq()).blocks();
        for (int i = 0; i < hits.size(); i++) {
            assertEquals(hits.get(i), table[i], "hit block " + i);
            retain(table[i]);
        }
        for (int i = hits.size(); i < table.length; i++) {
            allocated(table[i]);
        }
        Seq s = new Seq();
        s.admitted = true;
        s.blocks = table;
        s.tokens = prompt.clone();
        s.numPublished = hits.size();
        add(a.seq(), s);
        writeRun(a.seq(), s, a.numCachedTokens(), Arrays.copyOfRange(prompt, a.numCachedTokens(), prompt.length));
        counts[3] += hits.size();
        counts[5]++;
        if (random.nextInt(4) > 0) {
            commit(a.seq());
        }
        return a.seq();
    }

    private int commit(int seq) {
        Seq s = seqs.get(seq);
        if (!s.admitted) {
            assertThrows(IllegalArgumentException.class, () -> prefix.commit(seq));
            return seq;
        }
        prefix.commit(seq);
        for (int i = s.numPublished; i < s.tokens.length / BS; i++) {
            List<Integer> k = key(s.tokens, (i + 1) * BS);
            int b = s.blocks[i];
            if (b != PageTable.RELEASED && keyOf[b] == null && !published.containsKey(k)) {
                published.put(k, b);
                keyOf[b] = k;
            }
        }
        s.numPublished = s.tokens.length / BS;
        counts[6]++;
        return seq;
    }

    private int exhaust(int seq) {
        int n = (NUM_BLOCKS + 1) * BS;
        int before = cache.numAllocatableBlocks();
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.append(seq, n));
        assertEquals(before, e.numAllocatable());
        return seq;
    }

    /** Writes ids from {@code pos} in every layer (K/V named by the id, see {@link Tokens}). */
    private void writeRun(int seq, Seq s, int pos, int[] tokenIds) throws Exception {
        for (int layer = 0; layer < C.numLayers(); layer++) {
            cache.writeTokens(seq, layer, pos, tokenIds.length, Tokens.k(C, layer, tokenIds), Tokens.v(C, layer, tokenIds));
        }
        System.arraycopy(tokenIds, 0, s.tokens, pos, tokenIds.length);
    }

    private boolean shared(int block) {
        return refs[block] > 1 || keyOf[block] != null;
    }

    /** A block the cache just handed out: it must have been unreferenced; a published one was evicted. */
    private void allocated(int block) {
        assertEquals(0, refs[block], "block " + block + " handed out while in use");
        if (keyOf[block] != null) {
            published.remove(keyOf[block]);
            keyOf[block] = null;
            counts[4]++;
        }
        retain(block);
    }

    private void retain(int block) {
        if (refs[block]++ == 0) {
            live++;
        }
    }

    private void release(int block) {
        if (--refs[block] == 0) {
            live--;
        }
    }

    private void add(int seq, Seq s) {
        assertTrue(seqs.put(seq, s) == null, "seq id " + seq + " reused");
        ids.add(seq);
    }

    private int freshId() {
        nextId = nextId % 60_000 + 1; // ids stay exact in fp32 K/V (Tokens)
        return 1000 + nextId;
    }

    private static List<Integer> key(int[] tokens, int length) {
        List<Integer> k = new ArrayList<>(length);
        for (int i = 0; i < length; i++) {
            k.add(tokens[i]);
        }
        return k;
    }

    private void checkCounters() {
        assertEquals(seqs.size(), cache.numSequences(), "sequences");
        assertEquals(live, cache.numUsedBlocks(), "used blocks");
        assertEquals(NUM_BLOCKS - live, cache.numAllocatableBlocks(), "allocatable blocks");
    }

    private void checkSequence(int seq, boolean everyToken) {
        Seq s = seqs.get(seq);
        assertEquals(s.tokens.length, cache.length(seq), "length of seq " + seq);
        assertArrayEquals(s.blocks, cache.pageTable(seq).blocks(), "page table of seq " + seq);
        for (int i = s.numReleased; i < s.blocks.length; i++) {
            assertEquals(refs[s.blocks[i]], cache.pool().refCount(s.blocks[i]), "refCount of block " + s.blocks[i]);
        }
        int held = s.numReleased * BS;
        if (everyToken && held > 0) {
            assertThrows(IllegalArgumentException.class, () -> cache.readK(seq, 0, held - 1, 0, 0), "a released position");
        }
        for (int p = Math.max(held, everyToken ? 0 : s.tokens.length - 3); p < s.tokens.length; p++) {
            if (s.tokens[p] < 0) {
                continue;
            }
            for (int layer = 0; layer < C.numLayers(); layer++) {
                float k = cache.readK(seq, layer, p, 0, 0);
                if (k != Tokens.k(s.tokens[p], layer, 0, 0) || cache.readV(seq, layer, p, 0, 0) != -k) {
                    fail("seq " + seq + " position " + p + " layer " + layer + ": expected token " + s.tokens[p] + ", read K=" + k);
                }
            }
        }
    }

    private void checkAll() {
        for (int seq : ids) {
            checkSequence(seq, true);
        }
        for (int b = 0; b < NUM_BLOCKS; b++) {
            assertEquals(refs[b], cache.pool().refCount(b), "refCount of block " + b);
            assertEquals(keyOf[b] != null, prefix.isCached(b), "published state of block " + b);
        }
    }
}
