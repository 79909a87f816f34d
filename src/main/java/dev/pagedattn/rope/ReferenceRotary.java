package dev.pagedattn.rope;

/**
 * The fp64 rotation that {@link RotaryEmbedding} is checked against: each pair's angle {@code position *
 * inverseFrequency} in one fp64 product, its cos and sin by {@link Math#cos} and {@link Math#sin}, nothing rounded to
 * fp32. Rows as {@link RotaryEmbedding} lays them out: [numTokens][numHeads][headDim].
 */
public final class ReferenceRotary {
    private ReferenceRotary() {
    }

    /** {@code rows} rotated as {@code rope} would, token t at {@code positions[t]}, in fp64; {@code rows} is unchanged. */
    public static double[] rotate(RotaryEmbedding rope, float[] rows, int numHeads, int[] positions) {
        return rotate(rope, null, rows, numHeads, new int[][] {positions});
    }

    /** {@code rows} rotated as {@code mrope} would, in fp64: pair i of token t at {@code positions[streamOf(i)][t]}. */
    public static double[] rotate(MultimodalRotaryEmbedding mrope, float[] rows, int numHeads, int[][] positions) {
        return rotate(mrope.rotation(), mrope, rows, numHeads, positions);
    }

    private static double[] rotate(RotaryEmbedding rope, MultimodalRotaryEmbedding mrope, float[] rows, int numHeads,
            int[][] streams) {
        int[] positions = streams[0];
        int headDim = rope.headDim();
        int half = rope.rotaryDim() / 2;
        RopeFrequencies f = rope.frequencies();
        double[] out = new double[positions.length * numHeads * headDim];
        for (int i = 0; i < out.length; i++) {
            out[i] = rows[i];
        }
        for (int t = 0; t < positions.length; t++) {
            for (int h = 0; h < numHeads; h++) {
                int head = (t * numHeads + h) * headDim + rope.rotaryOffset();
                for (int i = 0; i < half; i++) {
                    double angle = streams[mrope == null ? 0 : mrope.streamOf(i)][t] * f.inverseFrequency(i);
                    double c = f.attentionFactor() * Math.cos(angle);
                    double s = f.attentionFactor() * Math.sin(angle);
                    int xAt = head + (rope.style() == RotaryEmbedding.Style.NEOX ? i : 2 * i);
                    int yAt = head + (rope.style() == RotaryEmbedding.Style.NEOX ? half + i : 2 * i + 1);
                    double x = rows[xAt];
                    double y = rows[yAt];
                    out[xAt] = x * c - y * s;
                    out[yAt] = y * c + x * s;
                }
            }
        }
        return out;
    }
}
