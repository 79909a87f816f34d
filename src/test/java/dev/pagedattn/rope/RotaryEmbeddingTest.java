package dev.pagedattn.rope;

import static dev.pagedattn.rope.RopeFrequenciesTest.assertNamed;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.rope.RotaryEmbedding.Style;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * {@link RotaryEmbedding} against the fp64 rotation of {@link ReferenceRotary} on fresh random rows, both styles, every
 * frequency rule, partial rotary dims and positions up to 2^31 - 1; vector lanes and scalar tails against the scalar
 * formula bit for bit; what it must not touch left untouched; bad input named, with nothing rotated.
 */
class RotaryEmbeddingTest {
    /**
     * Relative L2 of a rotated head against fp64: rounding cos and sin to fp32 and the fma give about 1e-7 (1.2e-7 ..
     * 1.8e-7 the worst of eleven runs); at positions near 2^31 both sides' fp64 angles carry up to 2.4e-7 rad of their
     * own rounding.
     */
    private static final double REL_L2 = 4e-7;

    private static final RopeFrequencies[] RULES = {
        RopeFrequencies.standard(128, 500000),
        RopeFrequencies.llama3(128, 500000, 8, 1, 4, 8192),
        RopeFrequencies.yarn(128, 1e6, 4, 32768),
        RopeFrequencies.standard(32, 10000),                   // Phi-2: 32 of 80 dims rotated
        RopeFrequencies.yarn(64, 10000, 40, 4096),             // YaRN at DeepSeek's factor, the paper's attention factor 1.37
        RopeFrequencies.custom(new double[] {0.9, 0.3, 0.1}, 1.0), // a tail of 6 rotated dims on any lane count
    };
    private static final int[] HEAD_DIMS = {128, 128, 256, 80, 64, 8};

    @Test
    void rotationMatchesFp64OnRandomRowsAndPositions() {
        long seed = TestSeeds.fresh("rotationMatchesFp64OnRandomRowsAndPositions");
        SplittableRandom random = new SplittableRandom(seed);
        double worst = 0;
        for (int r = 0; r < RULES.length; r++) {
            for (Style style : Style.values()) {
                RotaryEmbedding rope = new RotaryEmbedding(HEAD_DIMS[r], RULES[r], style);
                int numHeads = 1 + random.nextInt(6);
                int[] positions = randomPositions(random, 40);
                float[] rows = randomRows(random, positions.length * numHeads * rope.headDim());
                double[] want = ReferenceRotary.rotate(rope, rows, numHeads, positions);
                rope.apply(rows, numHeads, positions);
                for (int head = 0; head < positions.length * numHeads; head++) {
                    double e = relativeL2(rows, want, head * rope.headDim(), rope.headDim());
                    worst = Math.max(worst, e);
                    if (!(e <= REL_L2)) {
                        fail(rope + " position " + positions[head / numHeads] + ": relative L2 " + e + " seed=" + seed);
                    }
                }
            }
        }
        System.out.printf("rotationMatchesFp64OnRandomRowsAndPositions: worst relative L2 per head %.2e%n", worst);
        assertTrue(worst > 0, "no rounding at all: the fp64 reference was not what was compared");
    }

    /** Every element is fma(x, a cos, partner * (-+a sin)) in fp32 with {@link RotaryEmbedding#angles}'s values. */
    @Test
    void vectorLanesAndTailsGiveTheScalarFormulasBits() {
        long seed = TestSeeds.fresh("vectorLanesAndTailsGiveTheScalarFormulasBits");
        SplittableRandom random = new SplittableRandom(seed);
        for (int rotaryDim : new int[] {2, 6, 16, 34, 64, 128, 254}) {
            for (Style style : Style.values()) {
                RotaryEmbedding rope = new RotaryEmbedding(rotaryDim + 4, RopeFrequencies.standard(rotaryDim, 10000), style);
                int numHeads = 3;
                int[] positions = randomPositions(random, 5);
                float[] rows = randomRows(random, positions.length * numHeads * rope.headDim());
                float[] want = rows.clone();
                int half = rotaryDim / 2;
                float[] cos = new float[half];
                float[] sin = new float[half];
                for (int t = 0; t < positions.length; t++) {
                    rope.angles(positions[t], cos, sin);
                    for (int h = 0; h < numHeads; h++) {
                        int head = (t * numHeads + h) * rope.headDim();
                        for (int i = 0; i < half; i++) {
                            int xAt = head + (style == Style.NEOX ? i : 2 * i);
                            int yAt = head + (style == Style.NEOX ? half + i : 2 * i + 1);
                            float x = rows[xAt];
                            float y = rows[yAt];
                            want[xAt] = Math.fma(x, cos[i], y * -sin[i]);
                            want[yAt] = Math.fma(y, cos[i], x * sin[i]);
                        }
                    }
                }
                rope.apply(rows, numHeads, positions);
                assertArrayEquals(want, rows, rope + " seed=" + seed);
            }
        }
    }

    @Test
    void aTornadoArrayAndAJavaArrayGiveTheSameBits() {
        long seed = TestSeeds.fresh("aTornadoArrayAndAJavaArrayGiveTheSameBits");
        SplittableRandom random = new SplittableRandom(seed);
        for (Style style : Style.values()) {
            // rotary dims 128 (whole vectors) and 34 at an offset (a scalar tail on every lane count)
            for (RotaryEmbedding rope : new RotaryEmbedding[] {
                new RotaryEmbedding(128, RopeFrequencies.llama3(128, 500000, 8, 1, 4, 8192), style),
                new RotaryEmbedding(128, 90, RopeFrequencies.standard(34, 10000), style)}) {
                float[] rows = randomRows(random, 7 * 4 * 128 + 5); // 5 elements past the rows
                FloatArray array = FloatArray.fromArray(rows);
                int first = random.nextInt(1 << 20);
                rope.apply(rows, 4, first, 7);
                rope.apply(array, 4, first, 7);
                assertArrayEquals(rows, array.toHeapArray(), style + " seed=" + seed);
                int[] positions = randomPositions(random, 7);
                rope.apply(rows, 4, positions);
                rope.apply(array, 4, positions);
                assertArrayEquals(rows, array.toHeapArray(), rope + " seed=" + seed);
            }
        }
    }

    /**
     * DeepSeek's MLA: rotary dims 512..575 of a 576-wide row turn as a 64-wide row of the same rule would, bit for bit,
     * the 512 before them untouched; against fp64 too.
     */
    @Test
    void anOffsetTurnsTheDimsASliceWouldTurn() {
        long seed = TestSeeds.fresh("anOffsetTurnsTheDimsASliceWouldTurn");
        SplittableRandom random = new SplittableRandom(seed);
        RopeFrequencies deepSeek = RopeFrequencies.yarn(64, 10000, 40, 4096, 32, 1, 1.0); // DeepSeek V3's config
        for (Style style : Style.values()) {
            RotaryEmbedding latent = new RotaryEmbedding(576, 512, deepSeek, style);
            RotaryEmbedding slice = new RotaryEmbedding(64, deepSeek, style);
            int numHeads = 3;
            int[] positions = randomPositions(random, 6);
            float[] rows = randomRows(random, positions.length * numHeads * 576);
            float[] before = rows.clone();
            float[] tails = new float[positions.length * numHeads * 64];
            for (int r = 0; r < positions.length * numHeads; r++) {
                System.arraycopy(rows, r * 576 + 512, tails, r * 64, 64);
            }
            double[] want = ReferenceRotary.rotate(latent, rows, numHeads, positions);
            latent.apply(rows, numHeads, positions);
            slice.apply(tails, numHeads, positions);
            for (int r = 0; r < positions.length * numHeads; r++) {
                assertArrayEquals(Arrays.copyOfRange(before, r * 576, r * 576 + 512), Arrays.copyOfRange(rows, r * 576, r * 576 + 512),
                        style + " row " + r + ": the latent part moved");
                assertArrayEquals(Arrays.copyOfRange(tails, r * 64, r * 64 + 64), Arrays.copyOfRange(rows, r * 576 + 512, r * 576 + 576),
                        style + " row " + r + " seed=" + seed);
                double e = relativeL2(rows, want, r * 576 + 512, 64);
                assertTrue(e > 0 && e <= REL_L2, style + " row " + r + ": relative L2 " + e + " seed=" + seed);
            }
        }
    }

    /** A range of positions is the same as the array of those positions. */
    @Test
    void aRangeIsItsPositions() {
        long seed = TestSeeds.fresh("aRangeIsItsPositions");
        SplittableRandom random = new SplittableRandom(seed);
        RotaryEmbedding rope = new RotaryEmbedding(64, RopeFrequencies.standard(64, 10000), Style.GPTJ);
        float[] a = randomRows(random, 9 * 2 * 64);
        float[] b = a.clone();
        rope.apply(a, 2, 1000, 9);
        rope.apply(b, 2, new int[] {1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008});
        assertArrayEquals(b, a);
    }

    /** Dims past rotaryDim, elements past the rows and (attention factor 1) position 0 stay as they were, bit for bit. */
    @Test
    void leavesUntouchedWhatItMustNotTurn() {
        long seed = TestSeeds.fresh("leavesUntouchedWhatItMustNotTurn");
        SplittableRandom random = new SplittableRandom(seed);
        for (Style style : Style.values()) {
            RotaryEmbedding rope = new RotaryEmbedding(80, RopeFrequencies.standard(32, 10000), style);
            float[] rows = randomRows(random, 3 * 2 * 80 + 80);
            Arrays.fill(rows, 3 * 2 * 80, rows.length, Float.NaN); // poison past the rows
            float[] before = rows.clone();
            rope.apply(rows, 2, new int[] {0, 5, 123456});
            for (int i = 0; i < rows.length; i++) {
                boolean turned = i < 3 * 2 * 80 && i % 80 < 32 && i / 160 > 0;
                if (!turned) {
                    assertEquals(Float.floatToRawIntBits(before[i]), Float.floatToRawIntBits(rows[i]), style + " element " + i);
                }
            }
            assertTrue(rows[160] != before[160] || rows[161] != before[161], "position 5 turned nothing");
        }
    }

    @Test
    void badInputIsNamedAndTurnsNothing() {
        RotaryEmbedding rope = new RotaryEmbedding(64, RopeFrequencies.standard(64, 10000), Style.NEOX);
        float[] rows = randomRows(new SplittableRandom(1), 3 * 2 * 64);
        float[] before = rows.clone();
        assertNamed("positions[2]=-4", () -> rope.apply(rows, 2, new int[] {10, 11, -4}));
        assertNamed("rows.length=384 must be >= numTokens x numHeads x headDim = 4 x 2 x 64 = 512",
                () -> rope.apply(rows, 2, new int[] {1, 2, 3, 4}));
        assertNamed("numHeads=0", () -> rope.apply(rows, 0, 0, 3));
        assertNamed("firstPosition=-1", () -> rope.apply(rows, 2, -1, 3));
        assertNamed("firstPosition=2147483647, numTokens=2", () -> rope.apply(rows, 2, Integer.MAX_VALUE, 2));
        assertNamed("rows.getSize()=384", () -> rope.apply(FloatArray.fromArray(rows), 3, 0, 3));
        assertNamed("rows=null", () -> rope.apply((float[]) null, 2, 0, 1));
        assertNamed("positions=null", () -> rope.apply(rows, 2, null));
        assertArrayEquals(before, rows);
        assertNamed("headDim=32 must be >= rotaryOffset=0 + rotaryDim=64",
                () -> new RotaryEmbedding(32, RopeFrequencies.standard(64, 10000), Style.NEOX));
        assertNamed("headDim=576 must be >= rotaryOffset=520 + rotaryDim=64",
                () -> new RotaryEmbedding(576, 520, RopeFrequencies.standard(64, 10000), Style.GPTJ));
        assertNamed("rotaryOffset=-1", () -> new RotaryEmbedding(576, -1, RopeFrequencies.standard(64, 10000), Style.GPTJ));
        assertNamed("position=-1", () -> rope.angles(-1, new float[32], new float[32]));
        assertNamed("cos.length=31", () -> rope.angles(0, new float[31], new float[32]));
        rope.apply(rows, 2, Integer.MAX_VALUE, 1); // the last position is one
    }

    static int[] randomPositions(SplittableRandom random, int n) {
        int[] p = new int[n];
        for (int t = 0; t < n; t++) {
            p[t] = switch (t % 4) {
                case 0 -> random.nextInt(4096);                      // the low table alone
                case 1 -> random.nextInt(1 << 22);                   // two tables
                case 2 -> Integer.MAX_VALUE - random.nextInt(1000);  // all three, near the end
                default -> random.nextInt(Integer.MAX_VALUE);
            };
        }
        return p;
    }

    static float[] randomRows(SplittableRandom random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextDouble() * 4 - 2);
        }
        return a;
    }

    private static double relativeL2(float[] got, double[] want, int from, int n) {
        double num = 0;
        double den = 0;
        for (int i = from; i < from + n; i++) {
            num += (got[i] - want[i]) * (got[i] - want[i]);
            den += want[i] * want[i];
        }
        return Math.sqrt(num / den);
    }
}
