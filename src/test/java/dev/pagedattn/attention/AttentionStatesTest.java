package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvDtype;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Log-sum-exp outputs ({@code decode}/{@code prefill} with an {@code lse} array, FlashInfer's {@code return_lse}) on the JVM
 * backends against the fp64 reference's, and {@link AttentionStates#merge}: attention over a whole context equals the merge
 * of attention over its first {@code S} tokens (a fork truncated to them) and over the rest (the whole sequence through a
 * window of {@code L - S}), for random contexts, splits and dtypes. Seeds are printed and replayable
 * ({@code -Dpagedattn.test.seed}).
 */
class AttentionStatesTest {

    @Test
    void decodeLseMatchesTheFp64Reference() {
        long seed = TestSeeds.fresh("decodeLseMatchesTheFp64Reference");
        SplittableRandom random = new SplittableRandom(seed);
        for (int trial = 0; trial < 12; trial++) {
            KvDtype dtype = KvDtype.values()[random.nextInt(KvDtype.values().length)];
            int[] lens = DecodeWorkload.lengths(1 + random.nextInt(4), 1, 900, random.nextLong());
            DecodeWorkload w = DecodeWorkload.create(lens, 8, 2, 32, 1 + random.nextInt(20), dtype, random.nextLong(), 0, 1, 0,
                    TestScales.perHead(dtype, 2, seed));
            String what = "seed=" + seed + " trial " + trial + " " + dtype + " lens=" + java.util.Arrays.toString(lens);
            switch (trial % 4) {
                case 1 -> w = w.windowed(1 + random.nextInt(300));
                case 2 -> w = w.windowed(AttentionWindow.chunked(1 + random.nextInt(300))).withSoftCap(0.5f);
                case 3 -> w = w.withSinks(DecodeWorkload.randomSinks(1, 8, 1, seed)).withAlibi(AlibiSlopes.standard(8));
                default -> { }
            }
            FloatArray out = w.poisonedOutput();
            FloatArray lse = poisoned(lens.length * 8);
            try (JvmDecodeAttention attention = new JvmDecodeAttention(w.cache(), w.spec())) {
                attention.decode(w.batch(), 0, w.q(), out, lse);
            }
            double[] refLse = new double[lens.length * 8];
            double[] ref = ReferenceAttention.decode(w.cache(), w.spec(), 0, w.seqs(), w.q(), w.batch().window(), refLse);
            Accuracy.assertClose(out, ref, what);
            Accuracy.assertLseClose(lse, refLse, what);
        }
    }

    @Test
    void prefillLseMatchesTheFp64ReferenceAndDecodesOneTokenAlike() {
        long seed = TestSeeds.fresh("prefillLseMatchesTheFp64ReferenceAndDecodesOneTokenAlike");
        for (PrefillCase c : PrefillCase.issueShapes().toList()) {
            PrefillWorkload w = c.workload(seed);
            if (c.window() != PrefillBatch.NO_WINDOW && Math.abs(c.window()) > 1) {
                w = w.withRandomTrees(seed); // trees over windows and chunks too
            }
            FloatArray out = w.poisonedOutput();
            FloatArray lse = poisoned(w.batch().totalQueries() * c.numQHeads());
            try (JvmPrefillAttention attention = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
                attention.prefill(w.batch(), 0, w.q(), out, lse);
            }
            double[] refLse = new double[lse.getSize()];
            double[] ref = ReferencePrefill.prefill(w.kv().cache(), w.spec(), 0, w.kv().seqs(), w.batch(), w.q(), refLse);
            Accuracy.assertClose(out, ref, c + " seed=" + seed);
            Accuracy.assertLseClose(lse, refLse, c + " seed=" + seed);
        }
        // a one-token prefill's lse is decode's
        DecodeWorkload d = DecodeWorkload.create(new int[] {1, 16, 17, 300}, 8, 2, 64, 16, KvDtype.FP16, seed);
        FloatArray a = d.poisonedOutput();
        FloatArray b = d.poisonedOutput();
        FloatArray lseA = poisoned(32);
        FloatArray lseB = poisoned(32);
        try (JvmDecodeAttention decode = new JvmDecodeAttention(d.cache(), d.spec());
             JvmPrefillAttention prefill = new JvmPrefillAttention(d.cache(), d.spec())) {
            decode.decode(d.batch(), 0, d.q(), a, lseA);
            prefill.prefill(PrefillBatch.of(d.batch(), new int[] {1, 1, 1, 1}, PrefillBatch.NO_WINDOW), 0, d.q(), b, lseB);
        }
        for (int i = 0; i < 32; i++) {
            assertEquals(lseA.get(i), lseB.get(i), 1e-5 * Math.max(1, Math.abs(lseA.get(i))), "seed=" + seed + " row/head " + i);
        }
    }

    /**
     * Each sequence of L tokens split at a random S in [1, L): decode over a fork truncated to S (positions 0..S-1), decode
     * over the sequence through a window of L - S (positions S..L-1), merged: the whole decode's output and lse.
     */
    @Test
    void mergingTheStatesOfTwoPartsOfAContextGivesTheWhole() {
        long seed = TestSeeds.fresh("mergingTheStatesOfTwoPartsOfAContextGivesTheWhole");
        SplittableRandom random = new SplittableRandom(seed);
        for (int trial = 0; trial < 8; trial++) {
            KvDtype dtype = trial % 2 == 0 ? KvDtype.FP16 : KvDtype.FP32;
            int[] lens = DecodeWorkload.lengths(1 + random.nextInt(4), 2, 1500, random.nextLong());
            int heads = 8;
            DecodeWorkload w = DecodeWorkload.create(lens, heads, 2, 64, 1 + random.nextInt(32), dtype, random.nextLong());
            if (trial % 3 == 2) {
                w = w.withSoftCap(0.5f);
            }
            KvCache cache = w.cache();
            int n = lens.length;
            int[] prefixSeqs = new int[n];
            int[] splits = new int[n];
            for (int i = 0; i < n; i++) {
                splits[i] = 1 + random.nextInt(lens[i] - 1);
                prefixSeqs[i] = cache.fork(w.seqs()[i]);
                cache.truncate(prefixSeqs[i], splits[i]);
            }
            // the suffix of each sequence through a window of L - S: one window per step, so one sequence per call
            int rows = n * heads;
            int d = w.spec().headDim();
            FloatArray whole = new FloatArray(rows * d);
            FloatArray wholeLse = new FloatArray(rows);
            FloatArray head = new FloatArray(rows * d);
            FloatArray headLse = new FloatArray(rows);
            FloatArray tail = new FloatArray(rows * d);
            FloatArray tailLse = new FloatArray(rows);
            try (JvmDecodeAttention attention = new JvmDecodeAttention(cache, w.spec())) {
                attention.decode(cache.batch(w.seqs()), 0, w.q(), whole, wholeLse);
                attention.decode(cache.batch(prefixSeqs), 0, w.q(), head, headLse);
                for (int i = 0; i < n; i++) {
                    FloatArray qi = slice(w.q(), i * heads * d, heads * d);
                    FloatArray oi = new FloatArray(heads * d);
                    FloatArray li = new FloatArray(heads);
                    DecodeBatch one = cache.batch(new int[] {w.seqs()[i]}).window(lens[i] - splits[i]);
                    attention.decode(one, 0, qi, oi, li);
                    for (int e = 0; e < heads * d; e++) {
                        tail.set(i * heads * d + e, oi.get(e));
                    }
                    for (int h = 0; h < heads; h++) {
                        tailLse.set(i * heads + h, li.get(h));
                    }
                }
            }
            FloatArray merged = new FloatArray(rows * d);
            FloatArray mergedLse = new FloatArray(rows);
            AttentionStates.merge(head, headLse, tail, tailLse, rows, d, merged, mergedLse);
            String what = "seed=" + seed + " trial " + trial + " " + dtype + " lens=" + java.util.Arrays.toString(lens) + " splits="
                    + java.util.Arrays.toString(splits);
            double rel = ReferenceAttention.relativeL2(merged, WindowedDecodeProperties.toDoubles(whole));
            assertTrue(rel < 1e-5, what + ": merged vs whole, relative L2 " + rel);
            Accuracy.assertLseClose(mergedLse, WindowedDecodeProperties.toDoubles(wholeLse), what);
            // merging in place into the first state gives the same bits
            AttentionStates.merge(head, headLse, tail, tailLse, rows, d, head, headLse);
            for (int i = 0; i < rows * d; i++) {
                assertEquals(merged.get(i), head.get(i), what + " in place, element " + i);
            }
        }
    }

    /** Llama 4's layout on a HybridKvCache: each layer's lse (chunked or full) is its group's fp64 one. */
    @Test
    void aHybridModelsLayersWriteTheirGroupsLse() throws Exception {
        long seed = TestSeeds.fresh("aHybridModelsLayersWriteTheirGroupsLse");
        SplittableRandom random = new SplittableRandom(seed);
        int c = AttentionWindow.chunked(24);
        int[] windows = {c, c, c, DecodeBatch.NO_WINDOW};
        dev.pagedattn.cache.HybridKvCache cache = dev.pagedattn.cache.HybridKvCache.of(windows, new int[] {40, 40}, 8, 2, 16,
                KvDtype.FP32);
        int[] seqs = {cache.createSequence(), cache.createSequence()};
        int[] lens = {50 + random.nextInt(50), 1 + random.nextInt(60)};
        for (int i = 0; i < 2; i++) {
            cache.append(seqs[i], lens[i]);
            for (int layer = 0; layer < 4; layer++) {
                float[] k = new float[lens[i] * 32];
                float[] v = new float[lens[i] * 32];
                for (int e = 0; e < k.length; e++) {
                    k[e] = (float) random.nextDouble(-1, 1);
                    v[e] = (float) random.nextDouble(-1, 1);
                }
                cache.writeTokens(seqs[i], layer, 0, lens[i], k, v);
            }
        }
        AttentionSpec spec = AttentionSpec.of(cache.group(0).config(), 4);
        FloatArray q = new FloatArray(2 * 4 * 16);
        for (int e = 0; e < q.getSize(); e++) {
            q.set(e, (float) random.nextDouble(-1, 1));
        }
        try (HybridAttention attention = HybridAttention.create("jvm", cache, spec, null, "auto")) {
            dev.pagedattn.cache.HybridBatch batch = cache.batch(seqs);
            for (int layer = 0; layer < 4; layer++) {
                FloatArray out = new FloatArray(q.getSize());
                FloatArray lse = poisoned(8);
                attention.decode(batch, layer, q, out, lse);
                int g = cache.groupOf(layer);
                double[] refLse = new double[8];
                double[] ref = ReferenceAttention.decode(cache.group(g), spec.forLayers(cache.layers(g)), cache.localLayer(layer),
                        seqs, q, cache.window(g), refLse);
                String what = "seed=" + seed + " layer " + layer + " lens=" + java.util.Arrays.toString(lens);
                Accuracy.assertClose(out, ref, what);
                Accuracy.assertLseClose(lse, refLse, what);
            }
        }
    }

    @Test
    void anEmptyPartWeighsNothingAndBadStatesAreRefusedByName() {
        FloatArray a = FloatArray.fromElements(1f, 2f, 3f, 4f);
        FloatArray lseA = FloatArray.fromElements(0.5f, Float.NEGATIVE_INFINITY);
        FloatArray b = FloatArray.fromElements(Float.NaN, Float.NaN, 7f, 8f);
        FloatArray lseB = FloatArray.fromElements(Float.NEGATIVE_INFINITY, 2f);
        FloatArray out = new FloatArray(4);
        FloatArray lse = new FloatArray(2);
        AttentionStates.merge(a, lseA, b, lseB, 2, 2, out, lse);
        assertEquals(1f, out.get(0));
        assertEquals(2f, out.get(1));
        assertEquals(7f, out.get(2));
        assertEquals(8f, out.get(3));
        assertEquals(0.5f, lse.get(0));
        assertEquals(2f, lse.get(1));
        // two equal parts: the same row, lse + ln 2
        AttentionStates.merge(a, FloatArray.fromElements(1f, 1f), a, FloatArray.fromElements(1f, 1f), 2, 2, out, lse);
        assertEquals(3f, out.get(2), 1e-6);
        assertEquals(1 + Math.log(2), lse.get(0), 1e-6);
        // neither part saw anything: zeros and -inf
        AttentionStates.merge(a, FloatArray.fromElements(Float.NEGATIVE_INFINITY, 0f), b,
                FloatArray.fromElements(Float.NEGATIVE_INFINITY, 0f), 2, 2, out, lse);
        assertEquals(0f, out.get(0));
        assertEquals(Float.NEGATIVE_INFINITY, lse.get(0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AttentionStates.merge(a, FloatArray.fromElements(Float.NaN, 0f), b, lseB, 2, 2, out, lse));
        assertTrue(e.getMessage().startsWith("lseA[0]=NaN"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AttentionStates.merge(a, lseA, b, lseB, 2, 3, out, lse));
        assertTrue(e.getMessage().startsWith("outA.size=4 expected 6"), e.getMessage());
        DecodeWorkload w = DecodeWorkload.create(new int[] {5, 9}, 8, 2, 32, 4, KvDtype.FP32, 1);
        try (JvmDecodeAttention attention = new JvmDecodeAttention(w.cache(), w.spec())) {
            FloatArray out2 = w.poisonedOutput();
            e = assertThrows(IllegalArgumentException.class, () -> attention.decode(w.batch(), 0, w.q(), out2, new FloatArray(15)));
            assertTrue(e.getMessage().startsWith("lse.size=15 expected rows*numQHeads=16"), e.getMessage());
        }
    }

    /** mergeInto: rows of a part merged in place into chosen rows of a batch's states, as merge of the gathered rows does. */
    @Test
    void mergeIntoChosenRowsIsTheMergeOfThoseRows() {
        long seed = TestSeeds.fresh("mergeIntoChosenRowsIsTheMergeOfThoseRows");
        SplittableRandom random = new SplittableRandom(seed);
        int rows = 6;
        int heads = 3;
        int d = 4;
        FloatArray out = new FloatArray(rows * heads * d);
        FloatArray lse = new FloatArray(rows * heads);
        int[] rowsOf = {4, 0, 2};
        FloatArray partOut = new FloatArray(rowsOf.length * heads * d);
        FloatArray partLse = new FloatArray(rowsOf.length * heads);
        for (FloatArray a : new FloatArray[] {out, lse, partOut, partLse}) {
            for (int i = 0; i < a.getSize(); i++) {
                a.set(i, (float) random.nextGaussian());
            }
        }
        FloatArray before = FloatArray.fromArray(out.toHeapArray());
        FloatArray beforeLse = FloatArray.fromArray(lse.toHeapArray());
        AttentionStates.mergeInto(partOut, partLse, rowsOf, heads, d, out, lse);
        for (int k = 0; k < rowsOf.length; k++) { // each chosen row: merge of the two rows alone
            FloatArray want = new FloatArray(heads * d);
            FloatArray wantLse = new FloatArray(heads);
            AttentionStates.merge(slice(partOut, k * heads * d, heads * d), slice(partLse, k * heads, heads),
                    slice(before, rowsOf[k] * heads * d, heads * d), slice(beforeLse, rowsOf[k] * heads, heads), heads, d, want, wantLse);
            for (int i = 0; i < heads * d; i++) {
                assertEquals(want.get(i), out.get(rowsOf[k] * heads * d + i), 1e-6, "seed=" + seed + " row " + rowsOf[k]);
            }
            for (int h = 0; h < heads; h++) {
                assertEquals(wantLse.get(h), lse.get(rowsOf[k] * heads + h), 1e-6, "seed=" + seed + " row " + rowsOf[k]);
            }
        }
        for (int r : new int[] {1, 3, 5}) { // the others untouched
            for (int i = 0; i < heads * d; i++) {
                assertEquals(before.get(r * heads * d + i), out.get(r * heads * d + i), "seed=" + seed + " row " + r);
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AttentionStates.mergeInto(partOut, partLse, new int[] {4, 6, 2}, heads, d, out, lse));
        assertTrue(e.getMessage().startsWith("rowsOf[1]=6 is outside [0, 6)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AttentionStates.mergeInto(partOut, partLse, new int[] {4, 0}, heads, d, out, lse));
        assertTrue(e.getMessage().startsWith("outA.size=36 expected 24"), e.getMessage());
    }

    private static FloatArray poisoned(int n) {
        FloatArray a = new FloatArray(n);
        a.init(Float.NaN);
        return a;
    }

    private static FloatArray slice(FloatArray a, int from, int n) {
        FloatArray s = new FloatArray(n);
        for (int i = 0; i < n; i++) {
            s.set(i, a.get(from + i));
        }
        return s;
    }
}
