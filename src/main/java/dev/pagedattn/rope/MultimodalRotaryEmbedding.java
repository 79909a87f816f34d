package dev.pagedattn.rope;

import java.util.Arrays;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Multimodal RoPE (M-RoPE; Qwen2-VL and Qwen2.5-VL, {@code rope_scaling.mrope_section}): each token has one position
 * per stream (time, height, width), and the rotary pairs are cut into contiguous sections, section {@code s} turned by
 * stream {@code s}'s position. A text token has the same position in every stream, so it turns as plain RoPE does, bit
 * for bit. The positions come from the model's processor (Qwen2-VL's {@code get_rope_index}); the cache slots stay
 * the tokens' order.
 *
 * <pre>
 *  sections   [numStreams]                pairs per stream, summing to rotaryDim / 2 (Qwen2-VL: 16, 24, 24 of 64)
 *  positions  [numStreams][numTokens]     0 .. 2^31 - 1
 *  pair i     turned by positions[s][t] * inverseFrequency(i), s the section holding i
 * </pre>
 *
 * Qwen3-VL's interleaved sections are not this layout.
 */
public final class MultimodalRotaryEmbedding {
    private final RotaryEmbedding rope;
    private final int[] sections;       // [numStreams], a copy
    private final int[] streamOfPair;   // [rotaryDim / 2]

    /** {@code rope}'s frequencies and style, its pairs cut into {@code sections} (pair counts, in stream order). */
    public MultimodalRotaryEmbedding(RotaryEmbedding rope, int... sections) {
        if (rope == null || sections == null || sections.length == 0) {
            throw new IllegalArgumentException("rope=" + rope + ", sections=" + Arrays.toString(sections)
                    + ": a rotation and at least one section are needed");
        }
        int half = rope.rotaryDim() / 2;
        long sum = 0;
        for (int s : sections) {
            if (s < 1) {
                throw new IllegalArgumentException("sections=" + Arrays.toString(sections) + ": each must be >= 1");
            }
            sum += s;
        }
        if (sum != half) {
            throw new IllegalArgumentException("sections=" + Arrays.toString(sections) + " sum to " + sum
                    + ", not rotaryDim / 2 = " + half);
        }
        this.rope = rope;
        this.sections = sections.clone();
        this.streamOfPair = new int[half];
        for (int s = 0, i = 0; s < sections.length; s++) {
            for (int k = 0; k < sections[s]; k++) {
                streamOfPair[i++] = s;
            }
        }
    }

    public RotaryEmbedding rotation() {
        return rope;
    }

    public int[] sections() {
        return sections.clone();
    }

    /** The stream whose position turns pair {@code i}. */
    public int streamOf(int i) {
        return streamOfPair[i];
    }

    /** Rotates {@code positions[0].length} tokens of {@code numHeads} heads in {@code rows}; see the class. */
    public void apply(float[] rows, int numHeads, int[][] positions) {
        int[][] p = requirePositions(positions);
        rope.rotate(RotaryEmbedding.heap(rows), null, rows.length, numHeads, p[0].length, angles(p));
    }

    /** As {@link #apply(float[], int, int[][])}, on a TornadoVM array (the rows a backend's {@code decode} reads). */
    public void apply(FloatArray rows, int numHeads, int[][] positions) {
        int[][] p = requirePositions(positions);
        rope.rotate(null, RotaryEmbedding.segment(rows), rows.getSize(), numHeads, p[0].length, angles(p));
    }

    @Override
    public String toString() {
        return "MultimodalRotaryEmbedding(sections=" + Arrays.toString(sections) + ", " + rope + ")";
    }

    /** Each stream's angles at its position (once where the streams agree), merged pair by pair. */
    private RotaryEmbedding.TokenAngles angles(int[][] positions) {
        RotaryAngles tables = rope.angleTables();
        int half = streamOfPair.length;
        float[][] cos = new float[sections.length][half];
        float[][] sin = new float[sections.length][half];
        return (t, c, s) -> {
            boolean text = true;
            for (int stream = 1; stream < positions.length; stream++) {
                text &= positions[stream][t] == positions[0][t];
            }
            if (text) {
                tables.of(positions[0][t], c, s);
                return;
            }
            for (int stream = 0; stream < positions.length; stream++) {
                tables.of(positions[stream][t], cos[stream], sin[stream]);
            }
            for (int i = 0; i < half; i++) {
                c[i] = cos[streamOfPair[i]][i];
                s[i] = sin[streamOfPair[i]][i];
            }
        };
    }

    /** One array per stream, all of one length, every position >= 0: checked before any row turns. */
    private int[][] requirePositions(int[][] positions) {
        if (positions == null || positions.length != sections.length) {
            throw new IllegalArgumentException("positions.length=" + (positions == null ? "null" : positions.length)
                    + " must be the number of sections, " + sections.length);
        }
        for (int stream = 0; stream < positions.length; stream++) {
            if (positions[stream] == null || positions[stream].length != positions[0].length) {
                throw new IllegalArgumentException("positions[" + stream + "].length=" + (positions[stream] == null ? "null"
                        : positions[stream].length) + " must be positions[0].length=" + positions[0].length);
            }
            for (int t = 0; t < positions[stream].length; t++) {
                if (positions[stream][t] < 0) {
                    throw new IllegalArgumentException("positions[" + stream + "][" + t + "]=" + positions[stream][t]
                            + " must be >= 0");
                }
            }
        }
        return positions;
    }
}
