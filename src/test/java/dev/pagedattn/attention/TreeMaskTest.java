package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Token-tree masks: their rows, their checks, and what a masked prefill means. The meaning is checked without the
 * reference's own mask: each draft token of a tree, verified in one masked prefill, must get what a plain causal prefill
 * gives the same token on a sequence holding only the prefix and the token's path through the tree.
 */
class TreeMaskTest {

    @Test
    void parentsGiveAncestorRows() {
        // 0 -> 1 -> 3, 0 -> 2 -> 4, 2 -> 5 (two branches from the root); 6 a second root
        TreeMask m = TreeMask.fromParents(-1, 0, 0, 1, 2, 2, -1);
        boolean[][] want = {
                {true, false, false, false, false, false, false},
                {true, true, false, false, false, false, false},
                {true, false, true, false, false, false, false},
                {true, true, false, true, false, false, false},
                {true, false, true, false, true, false, false},
                {true, false, true, false, false, true, false},
                {false, false, false, false, false, false, true}};
        for (int j = 0; j < want.length; j++) {
            for (int k = 0; k < want.length; k++) {
                assertEquals(want[j][k], m.sees(j, k), "row " + j + " token " + k);
            }
        }
        assertEquals(m, TreeMask.of(want));
        assertEquals(3, m.visibleCount(4));
        assertEquals(1, m.words());
        assertEquals(4, m.reach(4), "a tree row reaches itself");
    }

    @Test
    void rowsLongerThanOneIntArePackedAsFlashInferPacksThem() {
        int[] parents = new int[70];
        for (int j = 0; j < parents.length; j++) {
            parents[j] = j - 1;
        }
        TreeMask chain = TreeMask.fromParents(parents);
        assertEquals(TreeMask.causal(70), chain);
        assertEquals(3, chain.words());
        assertEquals(-1, chain.word(69, 0));
        assertEquals(-1, chain.word(69, 1));
        assertEquals(0b111111, chain.word(69, 2)); // tokens 64..69
        assertEquals(0, chain.word(31, 1));
        assertEquals(70, chain.visibleCount(69));
    }

    @Test
    void badMasksAreNamed() {
        assertEquals("parents[2]=2 must be -1 or an earlier token (0..1): a tree's tokens come after their parents",
                assertThrows(IllegalArgumentException.class, () -> TreeMask.fromParents(-1, 0, 2)).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TreeMask.fromParents(-1, -2)).getMessage()
                .startsWith("parents[1]=-2 "));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TreeMask.fromParents()).getMessage().startsWith("parents=[]"));
        assertEquals("visible[1][1]=false: every token sees itself", assertThrows(IllegalArgumentException.class,
                () -> TreeMask.of(new boolean[][] {{true, false}, {true, false}})).getMessage());
        assertEquals("visible[0][1]=true: a token never sees a later one (TreeMask.custom takes such masks)",
                assertThrows(IllegalArgumentException.class,
                () -> TreeMask.of(new boolean[][] {{true, true}, {true, true}})).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TreeMask.of(new boolean[][] {{true}, {true}}))
                .getMessage().startsWith("visible[0].length=1 must be 2"));
        assertEquals("size=0 must be >= 1", assertThrows(IllegalArgumentException.class, () -> TreeMask.causal(0)).getMessage());
    }

    @Test
    void aBatchTakesOneMaskPerSequenceOfItsQueryLength() throws OutOfBlocksException {
        KvCache cache = new KvCache(KvCacheConfig.of(16, 4, 1, 8, KvDtype.FP32));
        int a = cache.createSequence();
        int b = cache.createSequence();
        cache.append(a, 10);
        cache.append(b, 6);
        PrefillBatch plain = PrefillBatch.of(cache.batch(a, b), new int[] {4, 3}, PrefillBatch.NO_WINDOW);
        assertEquals("masks[1] covers 4 tokens, but qLen[1]=3", assertThrows(IllegalArgumentException.class,
                () -> plain.withMasks(null, TreeMask.causal(4))).getMessage());
        assertEquals("masks.length=1 must be numSeqs=2", assertThrows(IllegalArgumentException.class,
                () -> plain.withMasks(TreeMask.causal(4))).getMessage());
        assertFalse(plain.withMasks(null, null).hasMasks());
        PrefillBatch masked = plain.withMasks(TreeMask.fromParents(-1, 0, 0, 1), null);
        assertTrue(masked.hasMasks());
        // sequence a: new tokens at 6..9; query 2 (position 8) sees 0..6 and 8, not 7 (its sibling)
        assertTrue(masked.sees(0, 2, 6));
        assertFalse(masked.sees(0, 2, 7));
        assertTrue(masked.sees(0, 2, 8));
        assertFalse(masked.sees(0, 2, 9));
        assertEquals(plain.attendedPairs() - 2, masked.attendedPairs()); // query 2 loses position 7, query 3 position 8
        assertArrayEquals(plain.qIndptr(), masked.qIndptr());
    }

    /**
     * Each token of a random tree over a random prefix, verified in one masked prefill (JVM backend), against a plain
     * causal prefill of the same token over the prefix and its path alone, written into another sequence: without a
     * window, and through windows of 1 to 40 (a draft's window counts from its tree position).
     */
    @Test
    void aMaskedPrefillGivesEachDraftWhatItsPathAloneGives() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("TreeMaskTest paths");
        SplittableRandom random = new SplittableRandom(seed);
        checkPaths(seed, random, PrefillBatch.NO_WINDOW);
        checkPaths(seed, random, 1 + random.nextInt(8));
        checkPaths(seed, random, 1 + random.nextInt(40));
    }

    @Test
    void bidirectionalSpansSeeTheirLaterTokensAndAreNamedWhenBad() throws OutOfBlocksException {
        // tokens 1..3 and 5..6 are spans (Gemma 3's image tokens); 0 and 4 text
        TreeMask m = TreeMask.bidirectional(7, 1, 4, 5, 7);
        for (int j = 0; j < 7; j++) {
            int reach = j >= 1 && j < 4 ? 3 : j >= 5 ? 6 : j; // the last token the row sees
            for (int k = 0; k < 7; k++) {
                assertEquals(k <= reach, m.sees(j, k), "row " + j + " token " + k);
            }
            assertEquals(j, m.depth(j), "a span row sits at its own slot");
            assertEquals(reach, m.reach(j), "row " + j);
        }
        assertEquals(TreeMask.causal(5), TreeMask.bidirectional(5), "no spans: causal");
        KvCache cache = new KvCache(KvCacheConfig.of(16, 4, 1, 8, KvDtype.FP32));
        int seq = cache.createSequence();
        cache.append(seq, 10); // 3 cached tokens, then the 7 new ones at 3..9
        PrefillBatch plain = PrefillBatch.of(cache.batch(seq), new int[] {7}, PrefillBatch.NO_WINDOW);
        PrefillBatch spans = plain.withMasks(m);
        assertTrue(spans.sees(0, 1, 6));   // token 1 (position 4) sees token 3 (position 6), later in its span
        assertFalse(spans.sees(0, 1, 7));  // not token 4 (after its span)
        assertFalse(spans.sees(0, 4, 8));  // a text token sees nothing later
        assertEquals(3, spans.lastVisible(0, 0));  // a text token: itself
        assertEquals(6, spans.lastVisible(0, 1));  // a span token: its span's last
        assertEquals(plain.attendedPairs() + 3 + 1, spans.attendedPairs()); // (1,2), (1,3), (2,3) and (5,6) added
        PrefillBatch windowed = PrefillBatch.of(cache.batch(seq), new int[] {7}, 2).withMasks(m);
        assertTrue(windowed.sees(0, 1, 6));   // a later span token is never behind the row
        assertFalse(windowed.sees(0, 3, 4));  // token 3 (position 6) through a window of 2: positions 5 and 6 only
        assertEquals("span [2, 2) must be non-empty, inside [0, 4) and after the previous one (ending at 0)",
                assertThrows(IllegalArgumentException.class, () -> TreeMask.bidirectional(4, 2, 2)).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TreeMask.bidirectional(4, 0, 3, 2, 4)).getMessage()
                .startsWith("span [2, 4) "));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TreeMask.bidirectional(4, 1, 5)).getMessage()
                .startsWith("span [1, 5) "));
        assertEquals("spans=[1]: pairs of start, end", assertThrows(IllegalArgumentException.class,
                () -> TreeMask.bidirectional(4, 1)).getMessage());
        assertEquals("size=0 must be >= 1", assertThrows(IllegalArgumentException.class, () -> TreeMask.bidirectional(0)).getMessage());
    }

    @Test
    void customMasksTakeAnyRowAtItsOwnSlot() {
        boolean[][] visible = {
                {true, false, true, false},
                {true, true, false, true},
                {false, false, true, false},
                {true, true, true, true}};
        TreeMask m = TreeMask.custom(visible);
        for (int j = 0; j < 4; j++) {
            for (int k = 0; k < 4; k++) {
                assertEquals(visible[j][k], m.sees(j, k), "row " + j + " token " + k);
            }
            assertEquals(j, m.depth(j));
        }
        assertEquals(2, m.reach(0));
        assertEquals(3, m.reach(1));
        assertEquals(2, m.reach(2));
        boolean[][] causal = new boolean[40][40];
        for (int j = 0; j < 40; j++) {
            java.util.Arrays.fill(causal[j], 0, j + 1, true);
        }
        assertEquals(TreeMask.causal(40), TreeMask.custom(causal));
        assertEquals("visible[1][1]=false: every token sees itself", assertThrows(IllegalArgumentException.class,
                () -> TreeMask.custom(new boolean[][] {{true, true}, {true, false}})).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TreeMask.custom(null)).getMessage().startsWith("visible=null"));
    }

    /**
     * Random spans over a random prefix, prefilled in one masked step (JVM backend), against decode steps written without
     * masks: each query must get what a plain decode of it gives over the context up to the last token it sees (its span's
     * last, or itself), the sequence's block table cut there. And one span over a whole prompt is a non-causal prefill.
     */
    @Test
    void aSpanRowGetsWhatADecodeUpToItsReachGives() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("TreeMaskTest spans");
        SplittableRandom random = new SplittableRandom(seed);
        for (int trial = 0; trial < 4; trial++) {
            int n = 2 + random.nextInt(60);
            PrefillWorkload w = PrefillCase.of("spans", new int[] {n + random.nextInt(50)}, new int[] {n}, 8, 2, 16,
                    1 + random.nextInt(16), KvDtype.FP32, PrefillBatch.NO_WINDOW).workload(random.nextLong());
            if (trial == 3) { // a whole prompt, one span: every query sees every token, as without causality
                w = w.withMasks(TreeMask.bidirectional(n, 0, n));
            } else {
                w = w.withRandomSpans(random.nextLong());
            }
            PrefillBatch batch = w.batch();
            KvCache cache = w.kv().cache();
            AttentionSpec spec = w.spec();
            int rowFloats = spec.numQHeads() * spec.headDim();
            FloatArray out = w.poisonedOutput();
            try (JvmPrefillAttention prefill = new JvmPrefillAttention(cache, spec);
                 JvmDecodeAttention decode = new JvmDecodeAttention(cache, spec)) {
                prefill.prefill(batch, 0, w.q(), out);
                int[] table = cache.pageTable(w.kv().seqs()[0]).blocks();
                int newStart = batch.contextLen(0) - n;
                for (int j = 0; j < n; j++) {
                    int reach = j;
                    while (reach + 1 < n && batch.mask(0).sees(j, reach + 1)) {
                        reach++;
                    }
                    DecodeBatch upTo = DecodeBatch.of(cache.config(), new int[][] {table}, new int[] {newStart + reach + 1});
                    FloatArray q1 = new FloatArray(rowFloats);
                    FloatArray o1 = new FloatArray(rowFloats);
                    for (int i = 0; i < rowFloats; i++) {
                        q1.set(i, w.q().get(j * rowFloats + i));
                    }
                    decode.decode(upTo, 0, q1, o1);
                    double[] got = new double[rowFloats];
                    double[] want = new double[rowFloats];
                    for (int i = 0; i < rowFloats; i++) {
                        got[i] = out.get(j * rowFloats + i);
                        want[i] = o1.get(i);
                    }
                    double rel = ReferenceAttention.relativeL2(got, want);
                    assertTrue(rel < 1e-6, "seed=" + seed + " trial " + trial + " query " + j + " (reach " + reach + "): relative L2 " + rel);
                }
                if (trial == 3) {
                    FloatArray nonCausal = w.poisonedOutput();
                    prefill.prefill(PrefillBatch.nonCausal(batch.kv(), new int[] {n}), 0, w.q(), nonCausal);
                    double[] want = new double[nonCausal.getSize()];
                    for (int i = 0; i < want.length; i++) {
                        want[i] = nonCausal.get(i);
                    }
                    Accuracy.assertClose(out, want, "seed=" + seed + " one span over the prompt vs non-causal");
                }
            }
            Accuracy.assertClose(out, w.reference(), "seed=" + seed + " trial " + trial);
        }
    }

    @Test
    void alibiWithMasksIsRefusedByName() throws OutOfBlocksException {
        KvCache cache = new KvCache(KvCacheConfig.of(8, 4, 1, 8, KvDtype.FP32));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 2).withAlibi(AlibiSlopes.standard(2));
        int seq = cache.createSequence();
        cache.append(seq, 6);
        PrefillBatch batch = PrefillBatch.of(cache.batch(seq), new int[] {3}, PrefillBatch.NO_WINDOW)
                .withMasks(TreeMask.fromParents(-1, 0, 0));
        FloatArray q = new FloatArray(3 * 2 * 8);
        try (JvmPrefillAttention attention = new JvmPrefillAttention(cache, spec)) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> attention.prefill(batch, 0, q, new FloatArray(q.getSize())))
                    .getMessage().startsWith("batch has token-tree masks and spec has ALiBi"));
        }
    }

    private static void checkPaths(long seed, SplittableRandom random, int window) throws OutOfBlocksException {
        int hkv = 2;
        int d = 16;
        int width = hkv * d;
        int prefix = 5 + random.nextInt(40);
        int n = 2 + random.nextInt(40);
        int[] parents = new int[n];
        parents[0] = -1;
        for (int j = 1; j < n; j++) {
            parents[j] = j - 1 - random.nextInt(Math.min(j, 3));
        }
        float[] k = new float[(prefix + n) * width];
        float[] v = new float[(prefix + n) * width];
        for (int i = 0; i < k.length; i++) {
            k[i] = (float) (random.nextDouble() * 2 - 1);
            v[i] = (float) (random.nextDouble() * 2 - 1);
        }
        KvCache cache = new KvCache(KvCacheConfig.of(64, 4, hkv, d, KvDtype.FP32));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 8);
        int tree = cache.createSequence();
        cache.appendTokens(tree, k, v);
        FloatArray q = new FloatArray(n * spec.numQHeads() * d);
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        PrefillBatch batch = PrefillBatch.of(cache.batch(tree), new int[] {n}, window).withMasks(TreeMask.fromParents(parents));
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        try (JvmPrefillAttention attention = new JvmPrefillAttention(cache, spec)) {
            attention.prefill(batch, 0, q, out);
            int rowFloats = spec.numQHeads() * d;
            for (int j = 0; j < n; j++) {
                List<Integer> path = new ArrayList<>(); // j's ancestors from the root, then j
                for (int a = j; a >= 0; a = parents[a]) {
                    path.add(0, a);
                }
                float[] pk = new float[(prefix + path.size()) * width];
                float[] pv = new float[pk.length];
                System.arraycopy(k, 0, pk, 0, prefix * width);
                System.arraycopy(v, 0, pv, 0, prefix * width);
                for (int i = 0; i < path.size(); i++) {
                    System.arraycopy(k, (prefix + path.get(i)) * width, pk, (prefix + i) * width, width);
                    System.arraycopy(v, (prefix + path.get(i)) * width, pv, (prefix + i) * width, width);
                }
                int alone = cache.createSequence();
                cache.appendTokens(alone, pk, pv);
                FloatArray q1 = new FloatArray(rowFloats);
                for (int i = 0; i < rowFloats; i++) {
                    q1.set(i, q.get(j * rowFloats + i));
                }
                FloatArray o1 = new FloatArray(rowFloats);
                o1.init(Float.NaN);
                attention.prefill(PrefillBatch.of(cache.batch(alone), new int[] {1}, window), 0, q1, o1);
                double[] got = new double[rowFloats];
                for (int i = 0; i < rowFloats; i++) {
                    got[i] = out.get(j * rowFloats + i);
                }
                double[] want = new double[rowFloats];
                for (int i = 0; i < rowFloats; i++) {
                    want[i] = o1.get(i);
                }
                double rel = ReferenceAttention.relativeL2(got, want);
                assertTrue(rel < 1e-6, "seed=" + seed + " window=" + window + " draft " + j + " (path " + path + "): relative L2 " + rel);
                cache.free(alone);
            }
        }
        Accuracy.assertClose(out, ReferencePrefill.prefill(cache, spec, 0, new int[] {tree}, batch, q), "seed=" + seed + " window=" + window);
    }
}
