package dev.pagedattn.rope;

import static dev.pagedattn.rope.RopeFrequenciesTest.assertNamed;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.rope.RotaryEmbedding.Style;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * M-RoPE ({@link MultimodalRotaryEmbedding}): against a numpy transcription of Qwen2-VL's
 * {@code apply_multimodal_rotary_pos_emb}; text tokens (one position in every stream) as plain RoPE, bit for bit; random
 * rows and positions against fp64; a TornadoVM array as a Java array; bad input named, nothing turned.
 */
class MultimodalRotaryEmbeddingTest {
    /** Head dim 16, sections 2 / 3 / 3 pairs, theta 10000, NEOX; positions 5, 700, 90001 (numpy, fp64). */
    @Test
    void matchesQwen2VlsFormula() {
        MultimodalRotaryEmbedding mrope = new MultimodalRotaryEmbedding(
                new RotaryEmbedding(16, RopeFrequencies.standard(16, 10000), Style.NEOX), 2, 3, 3);
        float[] x = new float[16];
        for (int i = 0; i < 16; i++) {
            x[i] = (float) (0.1 * (i + 1) * (i % 2 == 0 ? 1 : -1));
        }
        double[] want = {0.8913980657431472, 1.0020149805706464, -0.661283988787788, 0.22266665151352563, -0.4771314511627735,
            1.5138018951330552, -1.6545993866161068, 0.4894864088323132, 0.1594035394505898, -0.1896469844527117,
            0.9288183278622966, 1.2451584486738043, 1.3085662300056904, -0.16853433564580034, -0.04796738276791146,
            1.7205821850665681};
        mrope.apply(x, 1, new int[][] {{5}, {700}, {90001}});
        for (int i = 0; i < 16; i++) {
            assertEquals(want[i], x[i], 4e-7, "dim " + i); // the float inputs differ from numpy's fp64 ones by 3e-8
        }
        assertEquals(0, mrope.streamOf(1));
        assertEquals(1, mrope.streamOf(2));
        assertEquals(2, mrope.streamOf(7));
    }

    @Test
    void textTokensTurnAsPlainRope() {
        long seed = TestSeeds.fresh("textTokensTurnAsPlainRope");
        SplittableRandom random = new SplittableRandom(seed);
        for (Style style : Style.values()) {
            RotaryEmbedding rope = new RotaryEmbedding(128, RopeFrequencies.standard(128, 1e6), style);
            MultimodalRotaryEmbedding mrope = new MultimodalRotaryEmbedding(rope, 16, 24, 24);
            int[] positions = RotaryEmbeddingTest.randomPositions(random, 9);
            float[] a = RotaryEmbeddingTest.randomRows(random, 9 * 4 * 128);
            float[] b = a.clone();
            rope.apply(a, 4, positions);
            mrope.apply(b, 4, new int[][] {positions, positions.clone(), positions.clone()});
            assertArrayEquals(a, b, style + " seed=" + seed);
        }
    }

    @Test
    void imageTokensMatchFp64AndATornadoArrayAJavaArray() {
        long seed = TestSeeds.fresh("imageTokensMatchFp64AndATornadoArrayAJavaArray");
        SplittableRandom random = new SplittableRandom(seed);
        for (Style style : Style.values()) {
            MultimodalRotaryEmbedding mrope = new MultimodalRotaryEmbedding(
                    new RotaryEmbedding(128, RopeFrequencies.standard(128, 1e6), style), 16, 24, 24);
            int n = 12;
            int[][] positions = {new int[n], new int[n], new int[n]};
            for (int t = 0; t < n; t++) {
                positions[0][t] = 40 + t / 4;              // a 3 x 4 grid of patches after 40 text tokens
                positions[1][t] = 40 + t / 4 + random.nextInt(3);
                positions[2][t] = 40 + t % 4 + random.nextInt(1 << 20);
            }
            float[] rows = RotaryEmbeddingTest.randomRows(random, n * 2 * 128);
            FloatArray array = FloatArray.fromArray(rows);
            double[] want = ReferenceRotary.rotate(mrope, rows, 2, positions);
            mrope.apply(rows, 2, positions);
            mrope.apply(array, 2, positions);
            assertArrayEquals(rows, array.toHeapArray(), style + " seed=" + seed);
            double rel = ReferenceAttention.relativeL2(array, want);
            assertTrue(rel > 0 && rel < 4e-7, style + ": relative L2 " + rel + " against fp64, seed=" + seed);
        }
    }

    @Test
    void badInputIsNamedAndTurnsNothing() {
        RotaryEmbedding rope = new RotaryEmbedding(128, RopeFrequencies.standard(128, 1e6), Style.NEOX);
        assertNamed("sections=[16, 24, 20] sum to 60, not rotaryDim / 2 = 64", () -> new MultimodalRotaryEmbedding(rope, 16, 24, 20));
        assertNamed("sections=[0, 32, 32]: each must be >= 1", () -> new MultimodalRotaryEmbedding(rope, 0, 32, 32));
        assertNamed("sections=[]", () -> new MultimodalRotaryEmbedding(rope));
        MultimodalRotaryEmbedding mrope = new MultimodalRotaryEmbedding(rope, 16, 24, 24);
        float[] rows = RotaryEmbeddingTest.randomRows(new SplittableRandom(3), 2 * 128);
        float[] before = rows.clone();
        assertNamed("positions.length=2 must be the number of sections, 3", () -> mrope.apply(rows, 1, new int[][] {{1, 2}, {1, 2}}));
        assertNamed("positions[2].length=1 must be positions[0].length=2",
                () -> mrope.apply(rows, 1, new int[][] {{1, 2}, {1, 2}, {1}}));
        assertNamed("positions[1][1]=-2 must be >= 0", () -> mrope.apply(rows, 1, new int[][] {{1, 2}, {1, -2}, {1, 2}}));
        assertNamed("rows.length=256 must be >= numTokens x numHeads x headDim = 2 x 2 x 128 = 512",
                () -> mrope.apply(rows, 2, new int[][] {{1, 2}, {1, 2}, {1, 2}}));
        assertArrayEquals(before, rows);
    }
}
