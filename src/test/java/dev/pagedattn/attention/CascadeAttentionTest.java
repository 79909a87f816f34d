package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvDtype;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * {@link CascadeAttention} through the JVM backends (the same calls a TornadoVM pair gets): forks of shared prompts,
 * ragged and lockstep, with sequences that share nothing between them, against the fp64 reference's output and
 * log-sum-exp; the plan outlives appends to its members, frees its views, and refuses what it cannot split by name.
 * Replay a failure with {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class CascadeAttentionTest {

    @Test
    void sharedPrefixesAttendedOnceMatchTheFp64Reference() throws Exception {
        long seed = TestSeeds.fresh("sharedPrefixesAttendedOnceMatchTheFp64Reference");
        SplittableRandom random = new SplittableRandom(seed);
        for (int trial = 0; trial < 8; trial++) {
            KvDtype dtype = trial % 2 == 0 ? KvDtype.FP16 : KvDtype.FP32;
            int bs = 1 + random.nextInt(20);
            int prefix = bs + random.nextInt(200);
            int sharers = 2 + random.nextInt(4);
            int batch = 2 + random.nextInt(9);          // the last run may be a lone sequence: it shares nothing
            int[] lens = new int[batch];
            boolean lockstep = trial % 4 < 2;         // forks decoded together have one length
            int common = prefix + 1 + random.nextInt(60);
            for (int i = 0; i < batch; i++) {
                lens[i] = lockstep ? common : prefix + 1 + random.nextInt(60);
            }
            DecodeWorkload w = DecodeWorkload.sharedPrefix(lens, sharers, prefix, 8, 2, 32, bs, dtype, random.nextLong());
            if (trial % 3 == 2) {
                w = w.withSoftCap(0.5f);
            }
            String what = "seed=" + seed + " trial " + trial + " " + dtype + " bs=" + bs + " prefix=" + prefix + " runs of "
                    + sharers + " lens=" + java.util.Arrays.toString(lens);
            KvCache cache = w.cache();
            int sequences = cache.numSequences();
            int used = cache.numUsedBlocks();
            FloatArray out = w.poisonedOutput();
            FloatArray lse = new FloatArray(batch * 8);
            lse.init(Float.NaN);
            try (CascadeAttention plan = CascadeAttention.plan(cache, w.spec(), w.seqs(), bs);
                 JvmDecodeAttention decode = new JvmDecodeAttention(cache, w.spec());
                 JvmPrefillAttention prefill = new JvmPrefillAttention(cache, w.spec())) {
                int last = batch - (batch - 1) / sharers * sharers; // the last run's forks
                assertEquals((batch - 1) / sharers + (last > 1 ? 1 : 0), plan.groups(), what + ": every run of two or more is a group");
                for (int g = 0; g < plan.groups(); g++) {
                    assertEquals(prefix / bs * bs, plan.sharedTokens(g), what + ": the prompt's full blocks");
                    assertEquals(g < (batch - 1) / sharers ? sharers : last, plan.members(g).length, what);
                }
                plan.decode(decode, prefill, 0, w.q(), out, lse);
            }
            double[] refLse = new double[batch * 8];
            double[] ref = ReferenceAttention.decode(cache, w.spec(), 0, w.seqs(), w.q(), dev.pagedattn.cache.DecodeBatch.NO_WINDOW, refLse);
            Accuracy.assertClose(out, ref, what);
            Accuracy.assertLseClose(lse, refLse, what);
            assertEquals(sequences, cache.numSequences(), what + ": the views are freed");
            assertEquals(used, cache.numUsedBlocks(), what + ": the views took no block of their own");
        }
    }

    /**
     * What the cascade's own-token step rests on: a batch whose rows skip their first blocks ({@code DecodeBatch.skipBlocks})
     * decodes exactly the tokens after them, with a sliding window, ALiBi and a soft cap counting back from the query as
     * before: each row against the fp64 reference of its sequence seen through a window that starts at the skip.
     */
    @Test
    void skippedBlocksLeaveEachRowTheTokensAfterThem() throws Exception {
        long seed = TestSeeds.fresh("skippedBlocksLeaveEachRowTheTokensAfterThem");
        SplittableRandom random = new SplittableRandom(seed);
        for (int trial = 0; trial < 6; trial++) {
            int bs = 1 + random.nextInt(20);
            int batch = 1 + random.nextInt(6);
            int[] lens = new int[batch];
            int[] skip = new int[batch];
            for (int i = 0; i < batch; i++) {
                lens[i] = 1 + random.nextInt(300);
                skip[i] = random.nextInt((lens[i] - 1) / bs + 1); // 0 .. every block that leaves a token
            }
            DecodeWorkload w = DecodeWorkload.create(lens, 8, 2, 32, bs, trial % 2 == 0 ? KvDtype.FP16 : KvDtype.FP32, random.nextLong());
            if (trial % 3 == 1) {
                w = w.withAlibi(AlibiSlopes.standard(8));
            } else if (trial % 3 == 2) {
                w = w.withSoftCap(0.5f);
            }
            int window = trial >= 4 ? 1 + random.nextInt(100) : dev.pagedattn.cache.DecodeBatch.NO_WINDOW;
            String what = "seed=" + seed + " trial " + trial + " bs=" + bs + " lens=" + java.util.Arrays.toString(lens) + " skip="
                    + java.util.Arrays.toString(skip) + " window=" + window;
            FloatArray out = w.poisonedOutput();
            FloatArray lse = new FloatArray(batch * 8);
            lse.init(Float.NaN);
            try (JvmDecodeAttention decode = new JvmDecodeAttention(w.cache(), w.spec())) {
                decode.decode(w.batch().skipBlocks(skip).window(window), 0, w.q(), out, lse);
            }
            int row = 8 * 32;
            double[] ref = new double[batch * row];
            double[] refLse = new double[batch * 8];
            for (int i = 0; i < batch; i++) {
                FloatArray q = new FloatArray(row);
                for (int k = 0; k < row; k++) {
                    q.set(k, w.q().get(i * row + k));
                }
                double[] rowLse = new double[8];
                double[] one = ReferenceAttention.decode(w.cache(), w.spec(), 0, new int[] {w.seqs()[i]}, q,
                        Math.min(window, lens[i] - skip[i] * bs), rowLse);
                System.arraycopy(one, 0, ref, i * row, row);
                System.arraycopy(rowLse, 0, refLse, i * 8, 8);
            }
            Accuracy.assertClose(out, ref, what);
            Accuracy.assertLseClose(lse, refLse, what);
        }
    }

    @Test
    void aPlanServesLaterStepsAndRefusesAMemberTruncatedIntoItsPrefix() throws Exception {
        long seed = TestSeeds.fresh("aPlanServesLaterStepsAndRefusesAMemberTruncatedIntoItsPrefix");
        int[] lens = {70, 70, 70, 90};
        DecodeWorkload w = DecodeWorkload.sharedPrefix(lens, 4, 40, 8, 2, 32, 16, KvDtype.FP32, seed);
        KvCache cache = w.cache();
        SplittableRandom random = new SplittableRandom(seed);
        try (CascadeAttention plan = CascadeAttention.plan(cache, w.spec(), w.seqs(), 16);
             JvmDecodeAttention decode = new JvmDecodeAttention(cache, w.spec());
             JvmPrefillAttention prefill = new JvmPrefillAttention(cache, w.spec())) {
            assertEquals(1, plan.groups());
            assertEquals(32, plan.sharedTokens(0));
            for (int step = 0; step < 3; step++) { // every member one token longer, the same plan
                for (int s : w.seqs()) {
                    float[] k = new float[2 * 32];
                    float[] v = new float[2 * 32];
                    for (int i = 0; i < k.length; i++) {
                        k[i] = (float) random.nextGaussian();
                        v[i] = (float) random.nextGaussian();
                    }
                    cache.appendTokens(s, k, v);
                }
                FloatArray out = w.poisonedOutput();
                plan.decode(decode, prefill, 0, w.q(), out);
                Accuracy.assertClose(out, ReferenceAttention.decode(cache, w.spec(), 0, w.seqs(), w.q(), dev.pagedattn.cache.DecodeBatch.NO_WINDOW,
                        new double[lens.length * 8]), "seed=" + seed + " step " + step);
            }
            cache.truncate(w.seqs()[2], 20);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> plan.decode(decode, prefill, 0, w.q(), w.poisonedOutput()));
            assertTrue(e.getMessage().contains("seq=" + w.seqs()[2]), e.getMessage());
        }
    }

    @Test
    void aBatchThatSharesNothingIsThePlainStep() throws Exception {
        long seed = TestSeeds.fresh("aBatchThatSharesNothingIsThePlainStep");
        DecodeWorkload w = DecodeWorkload.create(new int[] {1, 17, 40, 300}, 8, 2, 32, 16, KvDtype.FP16, seed);
        FloatArray plain = w.poisonedOutput();
        FloatArray cascade = w.poisonedOutput();
        try (CascadeAttention plan = CascadeAttention.plan(w.cache(), w.spec(), w.seqs(), 16);
             JvmDecodeAttention decode = new JvmDecodeAttention(w.cache(), w.spec());
             JvmPrefillAttention prefill = new JvmPrefillAttention(w.cache(), w.spec())) {
            assertEquals(0, plan.groups());
            decode.decode(w.batch(), 0, w.q(), plain);
            plan.decode(decode, prefill, 0, w.q(), cascade);
        }
        assertArrayEquals(plain.toHeapArray(), cascade.toHeapArray(), "seed=" + seed);
    }

    @Test
    void refusesWhatItCannotSplitByName() throws Exception {
        long seed = TestSeeds.fresh("refusesWhatItCannotSplitByName");
        DecodeWorkload w = DecodeWorkload.sharedPrefix(new int[] {50, 50}, 2, 40, 8, 2, 32, 16, KvDtype.FP32, seed);
        IllegalArgumentException small = assertThrows(IllegalArgumentException.class,
                () -> CascadeAttention.plan(w.cache(), w.spec(), w.seqs(), 15));
        assertTrue(small.getMessage().contains("minSharedTokens=15"), small.getMessage());
        int s = w.seqs()[0];
        IllegalArgumentException twice = assertThrows(IllegalArgumentException.class,
                () -> CascadeAttention.plan(w.cache(), w.spec(), new int[] {s, s}, 16));
        assertTrue(twice.getMessage().contains("seq=" + s), twice.getMessage());
        for (DecodeWorkload odd : new DecodeWorkload[] {w.withSinks(DecodeWorkload.randomSinks(1, 8, 1, seed)),
                w.withAlibi(AlibiSlopes.standard(8))}) {
            try (CascadeAttention plan = CascadeAttention.plan(odd.cache(), odd.spec(), odd.seqs(), 16);
                 JvmDecodeAttention decode = new JvmDecodeAttention(odd.cache(), odd.spec());
                 JvmPrefillAttention prefill = new JvmPrefillAttention(odd.cache(), odd.spec())) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> plan.decode(decode, prefill, 0, odd.q(), odd.poisonedOutput()));
                assertTrue(e.getMessage().contains(odd.spec().hasAlibi() ? "ALiBi" : "sinks"), e.getMessage());
            }
        }
        CascadeAttention plan = CascadeAttention.plan(w.cache(), w.spec(), w.seqs(), 16);
        plan.close();
        try (JvmDecodeAttention decode = new JvmDecodeAttention(w.cache(), w.spec());
             JvmPrefillAttention prefill = new JvmPrefillAttention(w.cache(), w.spec())) {
            assertThrows(IllegalStateException.class, () -> plan.decode(decode, prefill, 0, w.q(), w.poisonedOutput()));
        }
    }
}
