package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.RandomKv;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Multi-head latent attention (DeepSeek's MLA) on the JVM backend: a latent cache ({@link KvCacheConfig#latent}) holds one
 * vector per token, its compressed KV followed by its rotary key, and attention reads the whole vector as the key and its
 * first {@code latentDim} elements as the value. Checked against the fp64 reference, and bit for bit against the same
 * problem stored the ordinary way (a K pool and a V pool that holds the same vectors).
 */
class LatentAttentionTest {

    /** A latent cache and, when {@code twin}, an ordinary one of one KV head holding the same vectors as K and as V. */
    record Pair(KvCache latent, KvCache twin, int[] seqs, int[] twinSeqs, AttentionSpec spec, AttentionSpec twinSpec) {
    }

    static Pair build(int[] lengths, int latentDim, int ropeDim, int qHeads, int blockSize, KvDtype dtype, int layers, float scale,
                      boolean twin, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int blocks = 2;
        for (int len : lengths) {
            blocks += (len + blockSize - 1) / blockSize;
        }
        KvCacheConfig config = KvCacheConfig.latent(blocks, blockSize, latentDim, ropeDim, dtype, layers);
        KvCache latent = new KvCache(config);
        KvCache ordinary = twin ? new KvCache(new KvCacheConfig(blocks, blockSize, 1, config.headDim(), dtype, layers)) : null;
        RandomKv.shuffleFreeBlocks(latent, seed);
        if (twin) {
            RandomKv.shuffleFreeBlocks(ordinary, seed + 1);
        }
        int d = config.headDim();
        int[] seqs = new int[lengths.length];
        int[] twinSeqs = new int[lengths.length];
        try {
            for (int i = 0; i < lengths.length; i++) {
                seqs[i] = latent.createSequence();
                latent.append(seqs[i], lengths[i]);
                if (twin) {
                    twinSeqs[i] = ordinary.createSequence();
                    ordinary.append(twinSeqs[i], lengths[i]);
                }
                for (int layer = 0; layer < layers; layer++) {
                    float[] c = DecodeProblem.uniform(random, lengths[i] * d);
                    latent.writeTokens(seqs[i], layer, 0, lengths[i], c, null);
                    if (twin) {
                        ordinary.writeTokens(twinSeqs[i], layer, 0, lengths[i], c, c);
                    }
                }
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError("a pool sized for the problem ran out", e);
        }
        AttentionSpec spec = AttentionSpec.of(config, qHeads).withScale(scale);
        AttentionSpec twinSpec = twin ? AttentionSpec.of(ordinary.config(), qHeads).withScale(scale) : null;
        return new Pair(latent, ordinary, seqs, twinSeqs, spec, twinSpec);
    }

    static FloatArray poisoned(long n) {
        FloatArray out = new FloatArray(Math.toIntExact(n));
        out.init(Float.NaN);
        return out;
    }

    static FloatArray randomQueries(AttentionSpec spec, int rows, long seed) {
        return FloatArray.fromArray(DecodeProblem.uniform(new SplittableRandom(~seed), Math.toIntExact(spec.queryElements(rows))));
    }

    /** Element {@code e < dv} of output row {@code r} and head {@code h} of the ordinary twin (rows of headDim). */
    static void assertSameBitsAsTwin(FloatArray latentOut, FloatArray twinOut, int rows, int heads, int dv, int d, String what) {
        for (int r = 0; r < rows; r++) {
            for (int h = 0; h < heads; h++) {
                for (int e = 0; e < dv; e++) {
                    float a = latentOut.get((r * heads + h) * dv + e);
                    float b = twinOut.get((r * heads + h) * d + e);
                    if (Float.floatToRawIntBits(a) != Float.floatToRawIntBits(b)) {
                        throw new AssertionError(what + ": row " + r + " head " + h + " dim " + e + ": latent " + a + ", K/V twin " + b);
                    }
                }
            }
        }
    }

    /**
     * One decode of {@code layer} over the latent cache and over its K/V twin (through a window of {@code window} tokens,
     * or none), each into a poisoned output: the latent one against fp64, and bit for bit against the twin's first
     * {@code valueDim} dims.
     */
    static void decodeBoth(Pair p, AttentionSpec spec, AttentionSpec twinSpec, int layer, int window, long seed, String what) {
        int n = p.seqs().length;
        FloatArray q = randomQueries(spec, n, seed);
        FloatArray out = poisoned(spec.outputElements(n));
        FloatArray twinOut = poisoned(twinSpec.outputElements(n));
        try (JvmDecodeAttention a = new JvmDecodeAttention(p.latent(), spec);
             JvmDecodeAttention b = new JvmDecodeAttention(p.twin(), twinSpec)) {
            a.decode(p.latent().batch(p.seqs()).window(window), layer, q, out);
            b.decode(p.twin().batch(p.twinSeqs()).window(window), layer, q, twinOut);
        }
        Accuracy.assertClose(out, ReferenceAttention.decode(p.latent(), spec, layer, p.seqs(), q, window, x -> { }), what);
        assertSameBitsAsTwin(out, twinOut, n, spec.numQHeads(), spec.valueDim(), spec.headDim(), what);
    }

    @ParameterizedTest(name = "decode latent={1}+{2} qHeads={3} block={4} {5} layers={6}")
    @CsvSource({
            // DeepSeek-V2-Lite's 16 heads over latent 512 + rope 64, split-K over a long context and a short one
            "'700,33', 512, 64, 16, 16, FP16, 1",
            // DeepSeek-V3's 128 heads; MLA's block of 64
            "'200', 512, 64, 128, 64, FP32, 1",
            "'1,17,90', 24, 8, 6, 7, FP16, 2",
            "'40,3', 32, 0, 4, 1, BF16, 1",
            "'65,120', 40, 16, 5, 16, FP8_E4M3, 1",
            "'65,9', 40, 16, 8, 8, INT8, 3"})
    void decodeMatchesReferenceAndTheKvTwin(String lengths, int latentDim, int ropeDim, int qHeads, int blockSize, KvDtype dtype,
                                            int layers) {
        long seed = TestSeeds.fresh("latent decode " + lengths + " " + latentDim + "+" + ropeDim + " " + dtype);
        int[] lens = Arrays.stream(lengths.split(",")).mapToInt(Integer::parseInt).toArray();
        float scale = (float) (1 / Math.sqrt(128 + ropeDim)); // MLA's: qk_nope_head_dim + qk_rope_head_dim, not the latent's
        Pair p = build(lens, latentDim, ropeDim, qHeads, blockSize, dtype, layers, scale, true, seed);
        decodeBoth(p, p.spec(), p.twinSpec(), layers - 1, DecodeBatch.NO_WINDOW, seed, "latent decode seed=" + seed);
    }

    /** A window, sinks, a soft cap and ALiBi over a latent cache: decode and prefill against fp64 and the K/V twin. */
    @org.junit.jupiter.api.Test
    void windowsSinksCapsAndAlibiReadLatentCachesToo() {
        long seed = TestSeeds.fresh("latent window sinks cap alibi");
        int[] lens = {150, 61, 9};
        Pair p = build(lens, 64, 16, 8, 16, KvDtype.FP16, 1, 0.09f, true, seed);
        AttentionSinks sinks = DecodeWorkload.randomSinks(1, 8, 1, seed);
        AttentionSpec spec = p.spec().withSinks(sinks).withSoftCap(2f).withAlibi(AlibiSlopes.standard(8));
        AttentionSpec twinSpec = p.twinSpec().withSinks(sinks).withSoftCap(2f).withAlibi(AlibiSlopes.standard(8));
        decodeBoth(p, spec, twinSpec, 0, 40, seed, "latent decode, window 40, sinks, cap 2, ALiBi, seed=" + seed);

        int[] news = {30, 61, 4};
        PrefillBatch prefill = PrefillBatch.of(p.latent().batch(p.seqs()), news, 25);
        FloatArray pq = randomQueries(spec, prefill.totalQueries(), ~seed);
        FloatArray pout = poisoned(spec.outputElements(prefill.totalQueries()));
        FloatArray plse = poisoned((long) prefill.totalQueries() * 8);
        try (JvmPrefillAttention a = new JvmPrefillAttention(p.latent(), spec)) {
            a.prefill(prefill, 0, pq, pout, plse);
        }
        double[] refLse = new double[prefill.totalQueries() * 8];
        String what = "latent prefill, window 25, sinks, cap 2, ALiBi, seed=" + seed;
        Accuracy.assertClose(pout, ReferencePrefill.prefill(p.latent(), spec, 0, p.seqs(), prefill, pq, refLse), what);
        Accuracy.assertLseClose(plse, refLse, what);
    }

    /** A token tree's verification (speculative decoding) over a latent cache: prefill with a TreeMask against fp64. */
    @org.junit.jupiter.api.Test
    void aTokenTreeReadsALatentCache() {
        long seed = TestSeeds.fresh("latent token tree");
        int[] lens = {90, 40};
        Pair p = build(lens, 512, 64, 16, 64, KvDtype.FP16, 1, 0.07f, false, seed);
        PrefillBatch tree = PrefillBatch.of(p.latent().batch(p.seqs()), new int[] {6, 4}, PrefillBatch.NO_WINDOW)
                .withMasks(TreeMask.fromParents(-1, 0, 0, 1, 2, 2), TreeMask.fromParents(-1, 0, 1, 0));
        FloatArray q = randomQueries(p.spec(), tree.totalQueries(), seed);
        FloatArray out = poisoned(p.spec().outputElements(tree.totalQueries()));
        try (JvmPrefillAttention a = new JvmPrefillAttention(p.latent(), p.spec())) {
            a.prefill(tree, 0, q, out);
        }
        Accuracy.assertClose(out, ReferencePrefill.prefill(p.latent(), p.spec(), 0, p.seqs(), tree, q), "latent tree seed=" + seed);
    }

    /** Random latent shapes (jqwik prints its own seed on failure): decode against fp64 and bit for bit against the K/V twin. */
    @net.jqwik.api.Property(tries = 60)
    void decodeMatchesOnRandomLatentShapes(
            @net.jqwik.api.ForAll @net.jqwik.api.constraints.Size(min = 1, max = 4)
            java.util.List<@net.jqwik.api.constraints.IntRange(min = 1, max = 150) Integer> lengths,
            @net.jqwik.api.ForAll @net.jqwik.api.constraints.IntRange(min = 1, max = 40) int latentEighths,
            @net.jqwik.api.ForAll @net.jqwik.api.constraints.IntRange(min = 0, max = 8) int ropeEighths,
            @net.jqwik.api.ForAll @net.jqwik.api.constraints.IntRange(min = 1, max = 24) int qHeads,
            @net.jqwik.api.ForAll @net.jqwik.api.constraints.IntRange(min = 1, max = 33) int blockSize,
            @net.jqwik.api.ForAll KvDtype dtype,
            @net.jqwik.api.ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        int latentDim = 8 * latentEighths;
        int ropeDim = 8 * ropeEighths;
        Pair p = build(lens, latentDim, ropeDim, qHeads, blockSize, dtype, 1, 0.05f, true, seed);
        decodeBoth(p, p.spec(), p.twinSpec(), 0, DecodeBatch.NO_WINDOW, seed, "latent " + latentDim + "+" + ropeDim + " qHeads="
                + qHeads + " block=" + blockSize + " " + dtype + " lengths=" + lengths + " seed=" + seed);
    }

    @ParameterizedTest(name = "prefill latent={1}+{2} qHeads={3} block={4} {5}")
    @CsvSource({
            "'300,40', '60,40', 512, 64, 16, 16, FP16",
            "'17,5,33', '17,1,9', 24, 8, 6, 7, FP32",
            "'50', '50', 40, 16, 8, 16, FP8_E4M3"})
    void prefillMatchesReferenceAndTheKvTwin(String lengths, String qLens, int latentDim, int ropeDim, int qHeads, int blockSize,
                                             KvDtype dtype) {
        long seed = TestSeeds.fresh("latent prefill " + lengths + " " + latentDim + "+" + ropeDim + " " + dtype);
        int[] lens = Arrays.stream(lengths.split(",")).mapToInt(Integer::parseInt).toArray();
        int[] news = Arrays.stream(qLens.split(",")).mapToInt(Integer::parseInt).toArray();
        Pair p = build(lens, latentDim, ropeDim, qHeads, blockSize, dtype, 1, 0.07f, true, seed);
        PrefillBatch batch = PrefillBatch.of(p.latent().batch(p.seqs()), news, PrefillBatch.NO_WINDOW);
        PrefillBatch twinBatch = PrefillBatch.of(p.twin().batch(p.twinSeqs()), news, PrefillBatch.NO_WINDOW);
        int rows = batch.totalQueries();
        FloatArray q = randomQueries(p.spec(), rows, seed);
        FloatArray out = poisoned(p.spec().outputElements(rows));
        FloatArray twinOut = poisoned(p.twinSpec().outputElements(rows));
        try (JvmPrefillAttention a = new JvmPrefillAttention(p.latent(), p.spec());
             JvmPrefillAttention b = new JvmPrefillAttention(p.twin(), p.twinSpec())) {
            a.prefill(batch, 0, q, out);
            b.prefill(twinBatch, 0, q, twinOut);
        }
        String what = "latent prefill seed=" + seed;
        Accuracy.assertClose(out, ReferencePrefill.prefill(p.latent(), p.spec(), 0, p.seqs(), batch, q), what);
        assertSameBitsAsTwin(out, twinOut, rows, qHeads, latentDim, latentDim + ropeDim, what);
    }

    @org.junit.jupiter.api.Test
    void forksStepRowsAndTheLseFollowTheLatentWidth() throws Exception {
        long seed = TestSeeds.fresh("latent forks");
        Pair p = build(new int[] {100, 64}, 64, 16, 8, 16, KvDtype.FP16, 1, 0.1f, false, seed);
        KvCache cache = p.latent();
        float parentLast = cache.readK(p.seqs()[0], 0, 99, 0, 5);
        int child = cache.fork(p.seqs()[0]);          // shares every block; its new token copies the last one first
        cache.append(child, 1);
        float[] token = DecodeProblem.uniform(new SplittableRandom(seed), cache.config().tokenWidth());
        cache.write(child, 0, 100, token, null);
        int[] seqs = {p.seqs()[0], child, p.seqs()[1]};
        try (JvmDecodeAttention a = new JvmDecodeAttention(cache, p.spec())) {
            DecodeBatch batch = cache.batch(seqs);
            StepRows rows = a.stepRows(batch, 0);
            assertEquals(3L * 8 * 80, rows.q().getSize());
            assertEquals(3L * 8 * 64, rows.out().getSize());
            FloatArray q = randomQueries(p.spec(), 3, seed);
            for (int i = 0; i < q.getSize(); i++) {
                rows.q().set(i, q.get(i));
            }
            rows.out().init(Float.NaN);
            FloatArray lse = poisoned(3L * 8);
            a.decode(batch, 0, rows.q(), rows.out(), lse);
            double[] refLse = new double[3 * 8];
            double[] ref = ReferenceAttention.decode(cache, p.spec(), 0, seqs, q, batch.window(), refLse);
            Accuracy.assertClose(rows.out(), ref, "latent forks seed=" + seed);
            Accuracy.assertLseClose(lse, refLse, "latent forks seed=" + seed);
        }
        assertEquals(parentLast, cache.readK(p.seqs()[0], 0, 99, 0, 5), "the parent's block, copied before the child wrote");
        assertEquals(Float.float16ToFloat(Float.floatToFloat16(token[10])), cache.readV(child, 0, 100, 0, 10));
        assertEquals(cache.readK(child, 0, 100, 0, 63), cache.readV(child, 0, 100, 0, 63), "a value is its key's element");
    }

    @org.junit.jupiter.api.Test
    void badInputsAreNamedAndChangeNothing() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.latent(8, 4, 16, 8, KvDtype.FP16, 1));
        int seq = cache.createSequence();
        cache.append(seq, 2);
        float[] k = new float[2 * 24];
        Arrays.fill(k, 0.5f);
        IllegalArgumentException v = assertThrows(IllegalArgumentException.class,
                () -> cache.writeTokens(seq, 0, 0, 2, k, new float[2 * 24]));
        assertTrue(v.getMessage().startsWith("v.length=48: a latent cache (latentDim=16)"), v.getMessage());
        assertEquals(0f, cache.readK(seq, 0, 1, 0, 3), "nothing stored by the refused write");
        IllegalArgumentException dim = assertThrows(IllegalArgumentException.class, () -> cache.readV(seq, 0, 0, 0, 16));
        assertEquals("dim=16 is outside [0, valueDim=16)", dim.getMessage());

        AttentionSpec wide = new AttentionSpec(4, 1, 24, 0.2f); // values as wide as the keys: not this cache's
        IllegalArgumentException spec = assertThrows(IllegalArgumentException.class, () -> new JvmDecodeAttention(cache, wide));
        assertTrue(spec.getMessage().startsWith("spec valueDim=24 does not match the cache's valueDim=16 (its latentDim)"),
                spec.getMessage());
        AttentionSpec ok = AttentionSpec.of(cache.config(), 4);
        try (JvmDecodeAttention a = new JvmDecodeAttention(cache, ok)) {
            IllegalArgumentException out = assertThrows(IllegalArgumentException.class,
                    () -> a.decode(cache.batch(seq), 0, new FloatArray(4 * 24), new FloatArray(4 * 24)));
            assertEquals("out.size=96 expected numSeqs*numQHeads*valueDim=64", out.getMessage());
        }
        IllegalArgumentException cascade = assertThrows(IllegalArgumentException.class,
                () -> CascadeAttention.plan(cache, ok, new int[] {seq}, 4));
        assertTrue(cascade.getMessage().startsWith("latentDim=16: cascade plans"), cascade.getMessage());
    }
}
