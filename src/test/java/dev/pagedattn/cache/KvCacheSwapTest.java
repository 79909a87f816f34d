package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.ReferenceAttention;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Swapping a sequence to host memory and back ({@link KvCache#swapOut}, {@link KvCache#swapIn}): the K/V come back bit
 * for bit in blocks of its own (every dtype, released runs kept, shared blocks left with their other owners), decode
 * gives the same bits, device mirrors are told, and refusals change nothing.
 */
class KvCacheSwapTest {
    private static final int BS = 4;

    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void aSwappedSequenceComesBackBitForBitAndDecodesTheSame(KvDtype dtype) throws Exception {
        Random random = TestRandom.create("KvCacheSwapTest " + dtype);
        KvCache cache = new KvCache(new KvCacheConfig(24, BS, 2, 8, dtype, 2));
        int a = cache.createSequence();
        int b = cache.createSequence();
        appendRandom(cache, a, 30, random);
        appendRandom(cache, b, 13, random);
        AttentionSpec spec = AttentionSpec.of(cache.config(), 4);
        FloatArray q = uniform(random, (int) spec.queryElements(1));
        FloatArray before = decode(cache, spec, new int[] {a}, q);
        float[][] stored = read(cache, a);
        int used = cache.numUsedBlocks();
        SwappedSequence s = cache.swapOut(a);
        assertFalse(cache.contains(a));
        assertEquals(used - 8, cache.numUsedBlocks(), "its 8 blocks went back");
        assertEquals(8, s.numBlocks());
        assertEquals(30, s.numTokens());
        appendRandom(cache, b, 32, random);                      // b takes the freed blocks and overwrites them
        int back = cache.swapIn(s);
        assertNotEquals(a, back, "a new id");
        assertArrayEquals(stored[0], read(cache, back)[0], "K, bit for bit");
        assertArrayEquals(stored[1], read(cache, back)[1], "V, bit for bit");
        FloatArray after = decode(cache, spec, new int[] {back}, q);
        assertArrayEquals(before.toHeapArray(), after.toHeapArray(), "the same bits through the decode");
        double rel = ReferenceAttention.relativeL2(after, ReferenceAttention.decode(cache, spec, 0, new int[] {back}, q));
        assertTrue(rel < 1e-5, "against fp64: " + rel);
        cache.verify();
    }

    @Test
    void releasedRunsStayReleasedAndSharedBlocksStayWithTheirOtherOwners() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(20, BS, 1, 2, KvDtype.FP32, 2));
        int a = cache.createSequence();
        Tokens.append(cache, a, Tokens.range(1, 22));            // 6 blocks
        int child = cache.fork(a);
        assertEquals(2, cache.releaseBefore(child, 9));
        SwappedSequence s = cache.swapOut(child);
        assertEquals(4, s.numBlocks(), "the 4 held blocks, not the released 2");
        assertEquals(6, cache.numUsedBlocks(), "every block is still a's");
        Tokens.assertHolds(cache, a, Tokens.range(1, 22));
        int back = cache.swapIn(s);
        assertEquals(8, cache.firstHeldPosition(back));
        assertEquals(22, cache.length(back));
        assertEquals(10, cache.numUsedBlocks(), "4 private copies");
        for (int p = 8; p < 22; p++) {
            for (int layer = 0; layer < 2; layer++) {
                assertEquals(Tokens.k(1 + p, layer, 0, 1), cache.readK(back, layer, p, 0, 1), "position " + p);
            }
        }
        cache.write(back, 0, 21, new float[] {5, 6}, new float[] {7, 8}); // its own block: no copy, a untouched
        assertEquals(10, cache.numUsedBlocks());
        Tokens.assertHolds(cache, a, Tokens.range(1, 22));
        cache.verify();
    }

    @Test
    void refusalsChangeNothingAndTheSwappedSequenceStaysUsable() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(6, BS, 1, 2, KvDtype.FP32, 1));
        int a = cache.createSequence();
        Tokens.append(cache, a, Tokens.range(1, 16));            // 4 blocks
        SwappedSequence s = cache.swapOut(a);
        int b = cache.createSequence();
        Tokens.append(cache, b, Tokens.range(100, 12));          // 3 of the 6 blocks
        assertFalse(cache.canSwapIn(s));
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.swapIn(s));
        assertEquals(4, e.numNeeded());
        assertEquals(3, e.numAllocatable());
        assertEquals(1, cache.numSequences());
        assertEquals(3, cache.numUsedBlocks());
        cache.free(b);
        assertTrue(cache.canSwapIn(s));
        int back = cache.swapIn(s);
        Tokens.assertHolds(cache, back, Tokens.range(1, 16));
        cache.free(back);
        int again = cache.swapIn(s);                             // the swapped sequence stays valid
        Tokens.assertHolds(cache, again, Tokens.range(1, 16));
        SwappedSequence closed = cache.swapOut(again);
        closed.close();
        closed.close(); // idempotent
        IllegalArgumentException gone = assertThrows(IllegalArgumentException.class, () -> cache.swapIn(closed));
        assertTrue(gone.getMessage().contains("closed"), gone.getMessage());
        KvCache other = new KvCache(cache.config());
        IllegalArgumentException foreign = assertThrows(IllegalArgumentException.class, () -> other.swapIn(s));
        assertTrue(foreign.getMessage().contains("another cache"), foreign.getMessage());
        assertThrows(IllegalArgumentException.class, () -> cache.swapOut(a), "a was freed by its swap-out");
        cache.verify();
    }

    @Test
    void aSwapSpaceHoldsSwappedSequencesInHostBlocksSetAsideOnce() throws Exception {
        Random random = TestRandom.create("KvCacheSwapTest.aSwapSpaceHoldsSwappedSequencesInHostBlocksSetAsideOnce");
        KvCache cache = new KvCache(new KvCacheConfig(24, BS, 2, 8, KvDtype.FP16, 2));
        assertEquals(-1, cache.numFreeSwapBlocks());
        long blockBytes = cache.swapBlockBytes();
        assertEquals(2L * 2 * 2 * BS * 8 * 2, blockBytes, "K and V of 2 layers x 2 heads x 4 slots x 8 dims, 2 bytes each");
        assertEquals(10, cache.enableSwapSpace(10 * blockBytes + 7));
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> cache.enableSwapSpace(blockBytes));
        assertTrue(twice.getMessage().contains("10 host blocks"), twice.getMessage());
        int a = cache.createSequence();
        int b = cache.createSequence();
        appendRandom(cache, a, 30, random);                      // 8 blocks
        appendRandom(cache, b, 13, random);                      // 4 blocks
        float[][] storedA = read(cache, a);
        SwappedSequence sa = cache.swapOut(a);
        assertEquals(2, cache.numFreeSwapBlocks());
        assertEquals(8 * blockBytes, sa.bytes());
        assertFalse(cache.canSwapOut(b));
        int used = cache.numUsedBlocks();
        OutOfBlocksException full = assertThrows(OutOfBlocksException.class, () -> cache.swapOut(b));
        assertEquals(4, full.numNeeded());
        assertEquals(2, full.numAllocatable());
        assertTrue(cache.contains(b), "a refused swap-out keeps the sequence");
        assertEquals(used, cache.numUsedBlocks());
        int back = cache.swapIn(sa);
        assertArrayEquals(storedA[0], read(cache, back)[0]);
        assertArrayEquals(storedA[1], read(cache, back)[1]);
        sa.close();
        assertEquals(10, cache.numFreeSwapBlocks(), "closed: its host blocks are free again");
        SwappedSequence sb = cache.swapOut(b);                   // fits now
        assertEquals(6, cache.numFreeSwapBlocks());
        sb.close();
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> new KvCache(cache.config()).enableSwapSpace(blockBytes - 1));
        assertTrue(none.getMessage().startsWith("bytes=" + (blockBytes - 1)), none.getMessage());
        cache.verify();
    }

    @Test
    void aTrackedPrefixSequenceKeepsItsTokenIdsAndMirrorsHearOfTheSwapIn() throws Exception {
        KvCache cache = new KvCache(new KvCacheConfig(20, BS, 1, 2, KvDtype.FP32, 1));
        PrefixCache prefix = cache.enablePrefixCaching();
        PromptKv kv = new PromptKv();
        int[] prompt = Tokens.range(1, 10);
        PrefixCache.Admission a = prefix.admit(prompt, null);
        kv.write(cache, a.seq(), null, prompt, 0);
        prefix.commit(a.seq());
        SwappedSequence s = cache.swapOut(a.seq());
        try (DirtySlotJournal.Reader mirror = cache.dirtySlots().reader()) {
            int back = cache.swapIn(s);
            int[] slots = mirror.drain(0);
            assertEquals(10, slots.length, "the 10 slots of its 3 blocks: " + java.util.Arrays.toString(slots));
            prefix.append(back, new int[] {77, 78});
            kv.write(cache, back, null, new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 77, 78}, 10);
            prefix.commit(back);                                 // its third block is full now, and published
            assertEquals(3, prefix.metrics().numCachedBlocks());
        }
        cache.verify();
    }

    private static void appendRandom(KvCache cache, int seq, int n, Random random) throws OutOfBlocksException {
        int width = cache.config().tokenWidth();
        int first = cache.append(seq, n);
        for (int layer = 0; layer < cache.config().numLayers(); layer++) {
            float[] k = new float[n * width];
            float[] v = new float[n * width];
            for (int i = 0; i < k.length; i++) {
                k[i] = random.nextFloat() * 2 - 1;
                v[i] = random.nextFloat() * 2 - 1;
            }
            cache.writeTokens(seq, layer, first, n, k, v);
        }
    }

    /** Every K (row 0) and V (row 1) element of {@code seq} as stored, every layer. */
    private static float[][] read(KvCache cache, int seq) {
        KvCacheConfig c = cache.config();
        int n = cache.length(seq) * c.numLayers() * c.numKvHeads() * c.headDim();
        float[][] out = new float[2][n];
        int i = 0;
        for (int layer = 0; layer < c.numLayers(); layer++) {
            for (int p = 0; p < cache.length(seq); p++) {
                for (int h = 0; h < c.numKvHeads(); h++) {
                    for (int d = 0; d < c.headDim(); d++) {
                        out[0][i] = cache.readK(seq, layer, p, h, d);
                        out[1][i++] = cache.readV(seq, layer, p, h, d);
                    }
                }
            }
        }
        return out;
    }

    private static FloatArray decode(KvCache cache, AttentionSpec spec, int[] seqs, FloatArray q) {
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        try (JvmDecodeAttention attention = new JvmDecodeAttention(cache, spec)) {
            attention.decode(cache.batch(seqs), 0, q, out);
        }
        return out;
    }

    private static FloatArray uniform(Random random, int n) {
        FloatArray out = new FloatArray(n);
        for (int i = 0; i < n; i++) {
            out.set(i, random.nextFloat() * 2 - 1);
        }
        return out;
    }
}
