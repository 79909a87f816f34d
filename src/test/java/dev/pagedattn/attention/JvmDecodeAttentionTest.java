package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvDtype;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** The JVM backend against the fp64 reference over a sweep of shapes that hit every edge. */
class JvmDecodeAttentionTest {
    private static final KvDtype F16 = KvDtype.FP16;
    private static final KvDtype F32 = KvDtype.FP32;

    static Stream<Arguments> shapes() {
        List<Arguments> cases = new ArrayList<>();
        // Block size 1: every token is its own block.
        cases.add(named("block size 1", Shape.of(new int[] {1, 2, 37}, 4, 4, 64, 1, F32)));
        // Head dim 80 (not a power of two, not a multiple of 16 or 32).
        cases.add(named("head dim 80", Shape.of(new int[] {16, 17, 1}, 8, 2, 80, 16, F16)));
        cases.add(named("head dim 80 fp32", Shape.of(new int[] {40}, 4, 1, 80, 16, F32)));
        // Every legal head dim from 64 to 256.
        for (int d = 64; d <= 256; d += 8) {
            cases.add(named("head dim " + d, Shape.of(new int[] {21, 5}, 2, 1, d, 8, d % 16 == 0 ? F16 : F32)));
        }
        cases.add(named("head dim 8", Shape.of(new int[] {9, 30}, 4, 2, 8, 4, F16)));
        // Group sizes: MHA, GQA 4 and 8, MQA.
        cases.add(named("MHA", Shape.of(new int[] {33, 7}, 4, 4, 64, 16, F16)));
        cases.add(named("GQA group 4", Shape.of(new int[] {33, 7}, 8, 2, 64, 16, F16)));
        cases.add(named("GQA group 8", Shape.of(new int[] {33, 7}, 16, 2, 64, 16, F32)));
        cases.add(named("MQA", Shape.of(new int[] {33, 7}, 8, 1, 64, 16, F16)));
        cases.add(named("MQA 32 query heads", Shape.of(new int[] {20}, 32, 1, 32, 16, F32)));
        cases.add(named("3 KV heads", Shape.of(new int[] {18, 2}, 6, 3, 24, 16, F16)));
        // Context lengths 1, blockSize, blockSize + 1 for several block sizes.
        for (int bs : new int[] {1, 3, 16, 32}) {
            for (KvDtype dtype : KvDtype.values()) {
                cases.add(named("contexts 1, bs, bs+1 at block size " + bs,
                        Shape.of(new int[] {1, bs, bs + 1, 2 * bs}, 4, 2, 64, bs, dtype)));
            }
        }
        // Ragged lengths in one batch.
        cases.add(named("ragged", Shape.of(new int[] {1, 15, 16, 17, 100, 3, 64}, 8, 2, 64, 16, F16)));
        cases.add(named("ragged odd block size", Shape.of(new int[] {5, 77, 13, 14, 1}, 4, 1, 48, 7, F32)));
        // Custom softmax scales.
        for (float scale : new float[] {0.01f, 1f, 3.7f}) {
            cases.add(named("scale " + scale, Shape.of(new int[] {30, 9}, 4, 2, 64, 16, F16).withScale(scale)));
        }
        // Multi-layer caches: each layer holds its own K/V.
        for (int layer = 0; layer < 3; layer++) {
            cases.add(named("layer " + layer + " of 3", Shape.of(new int[] {19, 33}, 4, 2, 32, 8, F16).withLayers(3, layer)));
        }
        cases.add(named("layer 1 of 2 fp32 MQA", Shape.of(new int[] {17}, 8, 1, 80, 16, F32).withLayers(2, 1)));
        return cases.stream();
    }

    private static Arguments named(String name, Shape shape) {
        return Arguments.argumentSet(name, shape);
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void matchesReference(Shape shape) {
        DecodeProblem p = DecodeProblem.random(shape, TestSeeds.fresh("matchesReference " + shape));
        Accuracy.assertClose(p.decodeJvm(), p.reference(), p.describe());
    }

    @Test
    void readsTheLayerItIsAskedFor() {
        Shape shape = Shape.of(new int[] {12, 25}, 4, 2, 32, 8, F32).withLayers(3, 2);
        DecodeProblem p = DecodeProblem.random(shape, TestSeeds.fresh("readsTheLayerItIsAskedFor"));
        FloatArray out = p.decodeJvm();
        Accuracy.assertClose(out, p.reference(), p.describe());
        // The other layers hold different data, so reading one of them would be far off.
        for (int other = 0; other < 2; other++) {
            double[] wrong = ReferenceAttention.decode(p.cache(), p.spec(), other, p.seqs(), p.q());
            double rel = ReferenceAttention.relativeL2(out, wrong);
            assertTrue(rel > 0.1, "layer 2 output is close to layer " + other + "'s attention: relativeL2=" + rel);
        }
    }

    @Test
    void honoursACustomScale() {
        Shape shape = Shape.of(new int[] {40}, 4, 2, 64, 16, F32).withScale(2.5f);
        DecodeProblem p = DecodeProblem.random(shape, TestSeeds.fresh("honoursACustomScale"));
        FloatArray out = p.decodeJvm();
        Accuracy.assertClose(out, p.reference(), p.describe());
        // The default scale (1/8 here) gives a visibly different answer, so the scale was applied.
        AttentionSpec defaults = AttentionSpec.of(p.cache().config(), 4);
        double[] unscaled = ReferenceAttention.decode(p.cache(), defaults, 0, p.seqs(), p.q());
        double rel = ReferenceAttention.relativeL2(out, unscaled);
        assertTrue(rel > 0.05, "output with scale=2.5 is close to the default-scale attention: relativeL2=" + rel);
    }

    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void contextOfOneTokenReturnsItsValueExactly(KvDtype dtype) {
        Shape shape = Shape.of(new int[] {1, 1, 1}, 8, 2, 40, 16, dtype);
        DecodeProblem p = DecodeProblem.random(shape, TestSeeds.fresh("contextOfOneTokenReturnsItsValueExactly"));
        FloatArray out = p.decodeJvm();
        int d = shape.headDim();
        for (int s = 0; s < 3; s++) {
            for (int h = 0; h < 8; h++) {
                for (int e = 0; e < d; e++) {
                    float v = p.cache().readV(p.seqs()[s], 0, 0, h / 4, e);
                    assertEquals(Float.floatToRawIntBits(v), Float.floatToRawIntBits(out.get((s * 8 + h) * d + e)),
                            "seq " + s + " head " + h + " dim " + e + " " + p.describe());
                }
            }
        }
    }

    /**
     * Scores around +-1000 (exp overflows fp32 above ~88 and underflows to 0 below ~-103): keys
     * are one direction u plus small noise and q is a multiple of u, so that every score is
     * +-1000 give or take a few and the softmax still mixes many tokens.
     */
    @ParameterizedTest
    @MethodSource("largeScoreCases")
    void largeScoresNeitherOverflowNorLoseAccuracy(KvDtype dtype, double target) {
        long seed = TestSeeds.fresh("largeScoresNeitherOverflowNorLoseAccuracy " + dtype + " target=" + target);
        Shape shape = Shape.of(new int[] {50, 17, 1}, 4, 2, 64, 16, dtype);
        DecodeProblem p = LargeScores.problem(shape, target, seed);
        double[] ref = p.reference();
        double maxScore = LargeScores.maxAbsScore(p);
        assertTrue(maxScore > 0.9 * Math.abs(target), "the case did not make large scores: max |score|=" + maxScore);
        // A score of 1000 carries an fp32 rounding error of order 1000 * 2^-24 * sqrt(headDim)
        // ~ 5e-4 before the exp, which becomes a relative error of each weight: the bound is
        // looser than the default for that reason alone (measured over 200 seeds: relative L2
        // up to 3.8e-5, max abs up to 7.4e-5). An overflowing exp gives NaN or Inf instead.
        Accuracy.assertClose(p.decodeJvm(), ref, 5e-4, 5e-4, p.describe() + " target=" + target);
    }

    static Stream<Arguments> largeScoreCases() {
        return Stream.of(
                Arguments.of(KvDtype.FP32, 1000.0), Arguments.of(KvDtype.FP32, -1000.0),
                Arguments.of(KvDtype.FP16, 1000.0), Arguments.of(KvDtype.FP16, -1000.0));
    }

    @Test
    void concurrentDecodesOnOneInstanceDoNotInterfere() throws Exception {
        long seed = TestSeeds.fresh("concurrentDecodesOnOneInstanceDoNotInterfere");
        Shape shape = Shape.of(new int[] {30, 5, 64, 17}, 8, 2, 64, 16, F16);
        DecodeProblem p = DecodeProblem.random(shape, seed);
        double[] ref = p.reference();
        try (JvmDecodeAttention attention = new JvmDecodeAttention(p.cache(), p.spec())) {
            List<CompletableFuture<FloatArray>> runs = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                runs.add(CompletableFuture.supplyAsync(() -> {
                    FloatArray out = p.poisonedOutput();
                    for (int r = 0; r < 5; r++) {
                        attention.decode(p.batch(), 0, p.q(), out);
                    }
                    return out;
                }));
            }
            for (CompletableFuture<FloatArray> run : runs) {
                Accuracy.assertClose(run.get(), ref, p.describe());
            }
        }
    }
}
