package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvDtype;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Logit soft-capping ({@link AttentionSpec#softCap()}) on the JVM backends, with caps in [5, 50] (Gemma 2 uses 50) and
 * queries scaled so that raw scores spread over {@link #SPREAD} caps (most of a context's top scores are capped hard;
 * each case checks that the capped fp64 reference is far from the uncapped one): decode against the fp64 reference on
 * random shapes long enough to be cut into split-K chunks, every dtype, with and without a window and sinks; prefill
 * against its reference; a one-token prefill against decode; the last rows of a prompt equal a prefill of only those
 * tokens, bit for bit (jqwik prints its seed on failure). Over 3300 cases the worst errors against fp64 were relative
 * L2 1.9e-6 and max abs 4.1e-6, inside {@link Accuracy}'s bounds: logits of up to 50 in fp32, as its custom scales.
 */
class SoftCapProperties extends DecodeShapeArbitraries {
    /** Standard deviation of the raw scores, in caps. */
    static final double SPREAD = 1.5;

    /**
     * The relative L2 bound for a cap of {@code cap}: {@link Accuracy#REL_L2}, or {@code 1e-6 cap} where that is larger.
     * Raw scores spread over {@link #SPREAD} caps, so a few reach 4-5 caps (200 at a cap of 40), whose fp32 rounding
     * (about 1e-5 there) moves the capped score by as much; where a sink outweighs a row's one visible token (a window of
     * one) the output is that token's weight, and its relative error that score's error: 1.09e-5 at a cap of 37.5 in one
     * CI run. A dropped cap or sink moves outputs by 1e-3 and more.
     */
    static double relL2(float cap) {
        return Math.max(Accuracy.REL_L2, 1e-6 * cap);
    }

    @Property(tries = 60)
    void decodeMatchesTheReferenceWithASoftCap(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 1400) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("windowsOrNone") int window,
            @ForAll boolean sinks,
            @ForAll("caps") float cap,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        Shape shape = Shape.of(lens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype).withScale(scaleFor(cap, headDim));
        DecodeProblem plain = DecodeProblem.random(shape, seed, TestScales.perHead(dtype, numKvHeads, seed)).windowed(window);
        if (sinks) {
            plain = plain.withSinks(DecodeWorkload.randomSinks(1, shape.numQHeads(), 1, seed));
        }
        DecodeProblem p = plain.withSoftCap(cap);
        double[] want = p.reference();
        Accuracy.assertClose(p.decodeJvm(), want, relL2(cap), Accuracy.MAX_ABS, p.describe());
        assertCapMatters(want, plain.reference(), maxVisible(p.batch()), p.describe());
    }

    @Property(tries = 40)
    void prefillMatchesTheReferenceWithASoftCap(
            @ForAll @Size(min = 1, max = 4) List<@IntRange(min = 1, max = 90) Integer> lengths,
            @ForAll @IntRange(min = 0, max = 1000) int qLenSeed,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("prefillWindows") int window,
            @ForAll boolean sinks,
            @ForAll("caps") float cap,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        int[] qLens = PrefillCase.queryLens(lens, qLenSeed);
        PrefillCase c = PrefillCase.of("soft cap", lens, qLens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype, window);
        PrefillWorkload plain = c.workload(seed);
        louder(plain.q(), cap);
        if (sinks) {
            plain = plain.withSinks(DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed));
        }
        PrefillWorkload w = plain.withSoftCap(cap);
        FloatArray out = w.poisonedOutput();
        try (JvmPrefillAttention attention = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
            attention.prefill(w.batch(), 0, w.q(), out);
        }
        String what = c + " softCap=" + cap + (sinks ? " sinks" : "") + " seed=" + seed;
        double[] want = w.reference();
        Accuracy.assertClose(out, want, relL2(cap), Accuracy.MAX_ABS, what);
        int longest = Math.min(window, Arrays.stream(lens).max().orElseThrow()); // the last query token of the longest
        assertCapMatters(want, plain.reference(), longest, what);
    }

    @Property(tries = 30)
    void prefillOfOneTokenPerSequenceAgreesWithDecode(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 700) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll("windowsOrNone") int window,
            @ForAll("caps") float cap,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeProblem p = DecodeProblem.random(Shape.of(lens, 8, 2, 64, blockSize, KvDtype.FP16).withScale(scaleFor(cap, 64)), seed)
                .windowed(window).withSinks(DecodeWorkload.randomSinks(1, 8, 1, seed)).withSoftCap(cap);
        assertOneTokenPrefillIsDecode(p, window);
    }

    @Property(tries = 15)
    void theLastRowsOfAPromptEqualAPrefillOfOnlyThoseTokens(
            @ForAll @IntRange(min = 2, max = 120) int len,
            @ForAll @IntRange(min = 1, max = 119) int tailSeed,
            @ForAll("blockSizes") int blockSize,
            @ForAll("prefillWindows") int window,
            @ForAll("caps") float cap,
            @ForAll long seed) {
        int tail = 1 + tailSeed % (len - 1); // fewer rows than the prompt: the two runs tile them differently
        PrefillWorkload whole = PrefillWorkload.create(new int[] {len}, new int[] {len}, window, 8, 2, 32, blockSize, KvDtype.FP32, seed)
                .withSoftCap(cap);
        louder(whole.q(), cap);
        String what = "len=" + len + " tail=" + tail + " bs=" + blockSize + " window=" + window + " softCap=" + cap + " seed=" + seed;
        FloatArray a = JvmPrefillAttentionTest.assertTailIsTheWholePromptsEnd(whole, tail, window, what);
        Accuracy.assertClose(a, whole.reference(), relL2(cap), Accuracy.MAX_ABS, what);
    }

    @Example
    void theCapSurvivesShardingAndSinksAndZeroIsNone() {
        AttentionSpec capped = new AttentionSpec(8, 4, 64, 0.125f).withSoftCap(50f);
        assertTrue(capped.hasSoftCap());
        assertEquals(50f, capped.shard(2).softCap(), "a shard's spec");
        assertEquals(50f, capped.shard(4).softCap(), "a shard's spec");
        assertSame(capped, capped.shard(1));
        assertEquals(50f, capped.withSinks(DecodeWorkload.randomSinks(1, 8, 1, 3)).softCap(), "withSinks");
        assertFalse(capped.withSoftCap(0f).hasSoftCap(), "0 turns it off");
        assertFalse(new AttentionSpec(8, 4, 64, 0.125f).hasSoftCap(), "the default");
        assertFalse(capped.withSoftCap(-0f).hasSoftCap(), "-0 is 0");
    }

    /**
     * A softmax scale that spreads the raw scores of uniform [-1, 1) q and K (standard deviation {@code sqrt(headDim) / 3}
     * per unit of scale) over {@link #SPREAD} caps.
     */
    static float scaleFor(float cap, int headDim) {
        return (float) (SPREAD * cap * 3 / Math.sqrt(headDim));
    }

    /** Multiplies uniform [-1, 1) queries under the default scale so that their raw scores spread over {@link #SPREAD} caps. */
    static void louder(FloatArray q, float cap) {
        float factor = (float) (SPREAD * cap * 3);
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, q.get(i) * factor);
        }
    }

    /**
     * The cap must change the answer: with at least {@link #MATTERS_FROM} visible tokens somewhere, the capped reference
     * is at least 5% (relative L2) from the uncapped one (the smallest measured over 3000 such cases was 24%; with fewer
     * tokens one may take nearly all the weight, capped or not).
     */
    static void assertCapMatters(double[] capped, double[] uncapped, int longestVisible, String what) {
        if (longestVisible < MATTERS_FROM) {
            return;
        }
        double num = 0;
        double den = 0;
        for (int i = 0; i < capped.length; i++) {
            num += (capped[i] - uncapped[i]) * (capped[i] - uncapped[i]);
            den += uncapped[i] * uncapped[i];
        }
        double rel = Math.sqrt(num / den);
        assertTrue(rel > 0.05, what + ": the cap changed the fp64 answer by " + rel + " only");
    }

    private static final int MATTERS_FROM = 32;

    @Provide
    Arbitrary<Float> caps() {
        return Arbitraries.floats().between(5f, 50f);
    }
}
