package dev.pagedattn.rope;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.rope.RotaryEmbedding.Style;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * What makes RoPE a position embedding, on random rows, positions and rules (jqwik prints its seed on failure): a score
 * depends only on how far apart its query and key are, a rotation keeps each pair's length (times the attention
 * factor), and turning by a then by b is turning by a + b.
 */
class RotaryProperties {
    private static final Style[] STYLES = Style.values();

    private static RotaryEmbedding rope(int rule, int style) {
        RopeFrequencies f = switch (rule) {
            case 0 -> RopeFrequencies.standard(128, 10000);
            case 1 -> RopeFrequencies.llama3(128, 500000, 8, 1, 4, 8192);
            case 2 -> RopeFrequencies.yarn(128, 1e6, 4, 32768);
            default -> RopeFrequencies.standard(32, 10000);
        };
        return new RotaryEmbedding(128, f, STYLES[style]);
    }

    @Property(tries = 200)
    void aScoreDependsOnlyOnTheDistanceBetweenQueryAndKey(
            @ForAll @IntRange(min = 0, max = 3) int rule,
            @ForAll @IntRange(min = 0, max = 1) int style,
            @ForAll @IntRange(min = 0, max = 1 << 20) int queryPosition,
            @ForAll @IntRange(min = 0, max = 1 << 20) int keyPosition,
            @ForAll @IntRange(min = 0, max = Integer.MAX_VALUE - (1 << 20)) int shift,
            @ForAll long seed) {
        RotaryEmbedding rope = rope(rule, style);
        SplittableRandom random = new SplittableRandom(seed);
        float[] q = RotaryEmbeddingTest.randomRows(random, 128);
        float[] k = RotaryEmbeddingTest.randomRows(random, 128);
        double bound = 1e-6 * norm(q) * norm(k) * Math.pow(rope.frequencies().attentionFactor(), 2);
        double near = score(rope, q, queryPosition, k, keyPosition);
        double far = score(rope, q, queryPosition + shift, k, keyPosition + shift);
        assertTrue(Math.abs(near - far) <= bound, rope + ": score " + near + " at (" + queryPosition + ", " + keyPosition
                + "), " + far + " shifted by " + shift + "; bound " + bound);
    }

    @Property(tries = 200)
    void aRotationKeepsEachPairsLengthTimesTheAttentionFactor(
            @ForAll @IntRange(min = 0, max = 3) int rule,
            @ForAll @IntRange(min = 0, max = 1) int style,
            @ForAll @IntRange(min = 0) int position,
            @ForAll long seed) {
        RotaryEmbedding rope = rope(rule, style);
        float[] x = RotaryEmbeddingTest.randomRows(new SplittableRandom(seed), 128);
        float[] y = x.clone();
        rope.apply(y, 1, position, 1);
        int half = rope.rotaryDim() / 2;
        double a = rope.frequencies().attentionFactor();
        for (int i = 0; i < half; i++) {
            int xi = STYLES[style] == Style.NEOX ? i : 2 * i;
            int yi = STYLES[style] == Style.NEOX ? half + i : 2 * i + 1;
            double before = a * Math.hypot(x[xi], x[yi]);
            double after = Math.hypot(y[xi], y[yi]);
            assertTrue(Math.abs(after - before) <= 3e-7 * before + 1e-30, rope + " pair " + i + " at " + position + ": length "
                    + before + " became " + after);
        }
    }

    @Property(tries = 200)
    void turningByAThenByBIsTurningByTheirSum(
            @ForAll @IntRange(min = 0, max = 3) int rule,
            @ForAll @IntRange(min = 0, max = 1) int style,
            @ForAll @IntRange(min = 0, max = (1 << 30) - 1) int a,
            @ForAll @IntRange(min = 0, max = (1 << 30) - 1) int b,
            @ForAll long seed) {
        RotaryEmbedding rope = rope(rule == 2 ? 0 : rule, style); // YaRN's attention factor would apply twice
        float[] x = RotaryEmbeddingTest.randomRows(new SplittableRandom(seed), 128);
        float[] twice = x.clone();
        rope.apply(twice, 1, a, 1);
        rope.apply(twice, 1, b, 1);
        float[] once = x.clone();
        rope.apply(once, 1, a + b, 1);
        double diff = 0;
        for (int i = 0; i < 128; i++) {
            diff += (twice[i] - once[i]) * (twice[i] - once[i]);
        }
        assertTrue(Math.sqrt(diff) <= 6e-7 * norm(x), rope + ": " + a + " then " + b + " differs from " + (a + b) + " by "
                + Math.sqrt(diff) + " of " + norm(x));
    }

    private static double score(RotaryEmbedding rope, float[] q, int queryPosition, float[] k, int keyPosition) {
        float[] rq = q.clone();
        float[] rk = k.clone();
        rope.apply(rq, 1, queryPosition, 1);
        rope.apply(rk, 1, keyPosition, 1);
        double dot = 0;
        for (int i = 0; i < rq.length; i++) {
            dot += rq[i] * rk[i];
        }
        return dot;
    }

    private static double norm(float[] x) {
        double s = 0;
        for (float f : x) {
            s += f * f;
        }
        return Math.sqrt(s);
    }
}
