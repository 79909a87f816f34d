package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** The shared random workload of the CLI, tests and benchmarks. */
class DecodeWorkloadTest {

    /**
     * K/V are written in chunks of 4096 tokens (for block size 64); a short sequence before a
     * long one must not shrink the long one's chunks.
     */
    @Test
    void everySequenceGetsItsRequestedLengthWhateverComesBefore() {
        long seed = TestSeeds.fresh("everySequenceGetsItsRequestedLengthWhateverComesBefore");
        int[] lengths = {5, 4096 + 7, 3, 2 * 4096, 1};
        DecodeWorkload w = DecodeWorkload.create(lengths, 2, 1, 8, 64, KvDtype.FP16, seed);
        assertArrayEquals(lengths, w.batch().contextLens(), "context lengths of the batch");
        for (int i = 0; i < lengths.length; i++) {
            assertEquals(lengths[i], w.cache().length(w.seqs()[i]), "length of seq " + i);
        }
        try (JvmDecodeAttention attention = new JvmDecodeAttention(w.cache(), w.spec())) {
            FloatArray out = w.poisonedOutput();
            attention.decode(w.batch(), 0, w.q(), out);
            Accuracy.assertClose(out, w.reference(), "seed=" + seed);
        }
    }

    @Test
    void sequencesOwnDisjointShuffledBlocks() {
        long seed = TestSeeds.fresh("sequencesOwnDisjointShuffledBlocks");
        int[] lengths = {100, 37, 64, 1};
        DecodeWorkload w = DecodeWorkload.create(lengths, 4, 2, 16, 4, KvDtype.FP32, seed);
        DecodeBatch b = w.batch();
        Set<Integer> seen = new HashSet<>();
        int ascendingNeighbours = 0;
        int pairs = 0;
        for (int i = 0; i < b.numSeqs(); i++) {
            int blocks = (b.contextLen(i) + 3) / 4;
            for (int j = 0; j < blocks; j++) {
                assertTrue(seen.add(b.block(i, j)), "block " + b.block(i, j) + " is used twice");
                if (j > 0) {
                    pairs++;
                    ascendingNeighbours += b.block(i, j) == b.block(i, j - 1) + 1 ? 1 : 0;
                }
            }
        }
        // the pool holds the workload plus 4 spare blocks per sequence for later appends
        assertEquals(w.cache().config().numBlocks(), seen.size() + 4 * b.numSeqs(), "the pool is sized for the workload");
        assertEquals(4 * b.numSeqs(), w.cache().numAllocatableBlocks(), "spare blocks stay free");
        // 51 blocks in a random order: consecutive physical blocks are rare (P(all) ~ 1/50!).
        assertTrue(ascendingNeighbours < pairs, "blocks were handed out in order: not shuffled");
    }

    @Test
    void isDeterministicForASeed() {
        long seed = TestSeeds.fresh("isDeterministicForASeed");
        int[] lengths = {20, 3};
        DecodeWorkload a = DecodeWorkload.create(lengths, 4, 2, 16, 8, KvDtype.FP16, seed);
        DecodeWorkload b = DecodeWorkload.create(lengths, 4, 2, 16, 8, KvDtype.FP16, seed);
        assertArrayEquals(a.q().toHeapArray(), b.q().toHeapArray());
        assertArrayEquals(a.reference(), b.reference());
    }

    @Test
    void poisonedOutputIsAllNaNAndSizedForTheQuery() {
        DecodeWorkload w = DecodeWorkload.create(new int[] {4, 9}, 8, 2, 24, 16, KvDtype.FP16, 1);
        FloatArray out = w.poisonedOutput();
        assertEquals(2 * 8 * 24, out.getSize());
        for (int i = 0; i < out.getSize(); i++) {
            assertTrue(Float.isNaN(out.get(i)), "element " + i);
        }
        assertTrue(Double.isNaN(ReferenceAttention.relativeL2(out, w.reference())), "a poisoned output never passes");
    }

    @Test
    void lengthsStayInTheirRange() {
        long seed = TestSeeds.fresh("lengthsStayInTheirRange");
        int[] lengths = DecodeWorkload.lengths(500, 5, 40, seed);
        int min = Integer.MAX_VALUE;
        int max = 0;
        for (int len : lengths) {
            min = Math.min(min, len);
            max = Math.max(max, len);
        }
        assertEquals(5, min, "500 draws from [5, 40] reach 5");
        assertEquals(40, max, "500 draws from [5, 40] reach 40");
        assertArrayEquals(new int[] {7, 7, 7}, DecodeWorkload.lengths(3, 7, 7, seed));
    }

    @Test
    void rejectsAnEmptyBatchAndEmptyContexts() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeWorkload.create(new int[0], 4, 2, 16, 16, KvDtype.FP16, 1));
        assertTrue(e.getMessage().contains("batch=0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> DecodeWorkload.create(new int[] {3, 0}, 4, 2, 16, 16, KvDtype.FP16, 1));
        assertTrue(e.getMessage().contains("context=0"), e.getMessage());
    }
}
