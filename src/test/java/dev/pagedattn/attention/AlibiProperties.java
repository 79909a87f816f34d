package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvDtype;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * ALiBi ({@link AttentionSpec#alibi()}) on the JVM backends: decode against the fp64 reference on random shapes long
 * enough to be cut into split-K chunks, every dtype, with and without a window, sinks and a soft cap, with the paper's
 * slopes or random ones; prefill against its reference; a one-token prefill against decode; the last rows of a prompt
 * equal a prefill of only those tokens, bit for bit; and each case checks that the slopes move the fp64 answer (jqwik
 * prints its seed on failure).
 */
class AlibiProperties extends DecodeShapeArbitraries {

    @Property(tries = 60)
    void decodeMatchesTheReferenceWithAlibi(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 1400) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("windowsOrNone") int window,
            @ForAll boolean sinks,
            @ForAll boolean capped,
            @ForAll boolean standard,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        Shape shape = Shape.of(lens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype);
        DecodeProblem plain = DecodeProblem.random(shape, seed, TestScales.perHead(dtype, numKvHeads, seed)).windowed(window);
        if (sinks) {
            plain = plain.withSinks(DecodeWorkload.randomSinks(1, shape.numQHeads(), 1, seed));
        }
        if (capped) {
            plain = plain.withSoftCap(0.5f);
        }
        DecodeProblem p = plain.withAlibi(slopes(shape.numQHeads(), standard, seed));
        double[] want = p.reference();
        Accuracy.assertClose(p.decodeJvm(), want, p.describe());
        assertAlibiMatters(want, plain.reference(), maxVisible(p.batch()), p.spec().alibi(), p.describe());
    }

    @Property(tries = 40)
    void prefillMatchesTheReferenceWithAlibi(
            @ForAll @Size(min = 1, max = 4) List<@IntRange(min = 1, max = 90) Integer> lengths,
            @ForAll @IntRange(min = 0, max = 1000) int qLenSeed,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("prefillWindows") int window,
            @ForAll boolean sinks,
            @ForAll boolean standard,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        int[] qLens = PrefillCase.queryLens(lens, qLenSeed);
        PrefillCase c = PrefillCase.of("alibi", lens, qLens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype, window);
        PrefillWorkload plain = c.workload(seed);
        if (sinks) {
            plain = plain.withSinks(DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed));
        }
        PrefillWorkload w = plain.withAlibi(slopes(c.numQHeads(), standard, seed));
        FloatArray out = w.poisonedOutput();
        try (JvmPrefillAttention attention = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
            attention.prefill(w.batch(), 0, w.q(), out);
        }
        String what = c + (standard ? " standard" : " random") + " slopes" + (sinks ? " sinks" : "") + " seed=" + seed;
        double[] want = w.reference();
        Accuracy.assertClose(out, want, what);
        int longest = Math.min(window, Arrays.stream(lens).max().orElseThrow()); // the last query token of the longest
        assertAlibiMatters(want, plain.reference(), longest, w.spec().alibi(), what);
    }

    @Property(tries = 30)
    void prefillOfOneTokenPerSequenceAgreesWithDecode(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 700) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll("windowsOrNone") int window,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeProblem p = DecodeProblem.random(Shape.of(lens, 8, 2, 64, blockSize, KvDtype.FP16), seed).windowed(window)
                .withSinks(DecodeWorkload.randomSinks(1, 8, 1, seed)).withAlibi(AlibiSlopes.standard(8));
        assertOneTokenPrefillIsDecode(p, window);
    }

    @Property(tries = 15)
    void theLastRowsOfAPromptEqualAPrefillOfOnlyThoseTokens(
            @ForAll @IntRange(min = 2, max = 120) int len,
            @ForAll @IntRange(min = 1, max = 119) int tailSeed,
            @ForAll("blockSizes") int blockSize,
            @ForAll("prefillWindows") int window,
            @ForAll long seed) {
        int tail = 1 + tailSeed % (len - 1); // fewer rows than the prompt: the two runs tile them differently
        PrefillWorkload whole = PrefillWorkload.create(new int[] {len}, new int[] {len}, window, 8, 2, 32, blockSize, KvDtype.FP32, seed)
                .withAlibi(AlibiSlopes.standard(8));
        String what = "len=" + len + " tail=" + tail + " bs=" + blockSize + " window=" + window + " alibi seed=" + seed;
        FloatArray a = JvmPrefillAttentionTest.assertTailIsTheWholePromptsEnd(whole, tail, window, what);
        Accuracy.assertClose(a, whole.reference(), what);
    }

    @Example
    void thePapersSlopesAndBadSlopes() {
        float[] eight = AlibiSlopes.standard(8).toArray();
        for (int h = 0; h < 8; h++) {
            assertEquals((float) Math.pow(2, -(h + 1)), eight[h], "8 heads: 2^-(h+1)");
        }
        float[] twelve = AlibiSlopes.standard(12).toArray();   // BLOOM-560m's 16 heads are a power of two; 12 is not
        assertArrayEquals(eight, Arrays.copyOf(twelve, 8));
        for (int j = 0; j < 4; j++) {
            assertEquals((float) Math.pow(2, -(2 * j + 1) / 2.0), twelve[8 + j], 1e-7, "12 heads: every second slope of 16");
        }
        assertEquals(0.25f, AlibiSlopes.standard(128).slope(31), "2^(-8 * 32 / 128)");
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class, () -> AlibiSlopes.of(new float[] {0.5f, Float.NaN}));
        assertEquals("slopes[1]=NaN must be finite", nan.getMessage());
        IllegalArgumentException size = assertThrows(IllegalArgumentException.class,
                () -> new AttentionSpec(8, 2, 64, 0.125f).withAlibi(AlibiSlopes.standard(4)));
        assertEquals("alibi slopes.length=4 does not match numQHeads=8", size.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AlibiSlopes.of(new float[0]));
        assertThrows(IllegalArgumentException.class, () -> AlibiSlopes.standard(0));
        AttentionSpec spec = new AttentionSpec(8, 4, 64, 0.125f).withAlibi(AlibiSlopes.standard(8));
        assertTrue(spec.hasAlibi());
        assertFalse(spec.shard(2).hasAlibi(), "a shard's spec: its backend gives each shard its heads' slopes");
        assertTrue(spec.withSoftCap(5f).withSinks(DecodeWorkload.randomSinks(1, 8, 1, 3)).hasAlibi());
        assertFalse(spec.withAlibi(AlibiSlopes.NONE).hasAlibi());
        assertEquals(8, AlibiSlopes.standard(8).numHeads());
    }

    /** The paper's slopes, or random ones in (0, 0.5] (a head's bias over 100 positions then up to 50). */
    static AlibiSlopes slopes(int numQHeads, boolean standard, long seed) {
        if (standard) {
            return AlibiSlopes.standard(numQHeads);
        }
        SplittableRandom r = new SplittableRandom(seed ^ 0xA11B1L);
        float[] s = new float[numQHeads];
        for (int h = 0; h < s.length; h++) {
            s[h] = (float) (0.5 * (1 - r.nextDouble()));
        }
        return AlibiSlopes.of(s);
    }

    /**
     * The slopes must change the answer: where some head's bias spans at least 4 across the longest visible context (so
     * at least 32 tokens at the paper's steepest slope for 8 heads, 1/2; a single head's paper slope, 1/256, needs 1025),
     * the biased reference is at least 5% (relative L2) from the unbiased one.
     */
    static void assertAlibiMatters(double[] biased, double[] plain, int longestVisible, AlibiSlopes slopes, String what) {
        float steepest = 0;
        for (int h = 0; h < slopes.numHeads(); h++) {
            steepest = Math.max(steepest, slopes.slope(h));
        }
        if (steepest * (longestVisible - 1) < 4) {
            return;
        }
        double rel = ReferenceAttention.relativeL2(plain, biased);
        assertTrue(rel > 0.05, what + ": ALiBi changed the fp64 answer by " + rel + " only");
    }
}
