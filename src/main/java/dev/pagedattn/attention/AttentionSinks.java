package dev.pagedattn.attention;

import java.util.Arrays;

/**
 * Attention sinks: one learned logit per (layer, query head), as gpt-oss has them (vLLM's {@code sinks}, FlashInfer's
 * {@code sinks} argument). A sink joins the softmax as a score with no value: query head {@code h} of a layer with
 * sinks computes
 * <pre>
 *  out = sum_i exp(s_i - M) v_i / (sum_i exp(s_i - M) + exp(sink_h - M)),   M = max(max_i s_i, sink_h)
 * </pre>
 * where {@code s_i = scale * q.k_i} are the scores of the positions the query sees (its window, if any), so a sink takes
 * a share of the attention and gives back nothing. Sinks are in the scores' units (after the softmax scale). A layer
 * without sinks ({@code null} row) attends as before.
 *
 * <pre>
 *  sinks [numLayers][numQHeads]  fp32, finite; a row may be null (that layer has none)
 * </pre>
 */
public final class AttentionSinks {
    /** No sinks in any layer. */
    public static final AttentionSinks NONE = new AttentionSinks(new float[0][]);

    private final float[][] perLayer;   // [numLayers][numQHeads] or null rows; a copy the caller cannot change

    private AttentionSinks(float[][] perLayer) {
        this.perLayer = perLayer;
    }

    /**
     * Sinks of every layer, copied: {@code perLayer[layer]} holds one logit per query head, or null for a layer without
     * sinks. Names the first non-finite value.
     */
    public static AttentionSinks of(float[][] perLayer) {
        if (perLayer == null) {
            throw new IllegalArgumentException("sinks=null (use AttentionSinks.NONE)");
        }
        float[][] copy = new float[perLayer.length][];
        for (int layer = 0; layer < perLayer.length; layer++) {
            if (perLayer[layer] == null) {
                continue;
            }
            copy[layer] = perLayer[layer].clone();
            for (int h = 0; h < copy[layer].length; h++) {
                if (!Float.isFinite(copy[layer][h])) {
                    throw new IllegalArgumentException("sinks[" + layer + "][" + h + "]=" + copy[layer][h] + " must be finite");
                }
            }
        }
        return new AttentionSinks(copy);
    }

    /** Layers these sinks were given for (0 for {@link #NONE}). */
    public int numLayers() {
        return perLayer.length;
    }

    /** Whether {@code layer} has sinks. */
    public boolean has(int layer) {
        return layer >= 0 && layer < perLayer.length && perLayer[layer] != null;
    }

    /** Whether any layer has sinks. */
    public boolean any() {
        return Arrays.stream(perLayer).anyMatch(row -> row != null);
    }

    /** A copy of {@code layer}'s sinks ({@code [numQHeads]}), or null where it has none. */
    public float[] row(int layer) {
        return has(layer) ? perLayer[layer].clone() : null;
    }

    /** {@link #row} of every layer of a cache of {@code numLayers}: a backend's per-step lookup. */
    float[][] rows(int numLayers) {
        float[][] rows = new float[numLayers][];
        for (int layer = 0; layer < numLayers; layer++) {
            rows[layer] = row(layer);
        }
        return rows;
    }

    /**
     * The sinks of {@code layers} only, in that order (layer {@code i} of the result is {@code layers[i]} here): the
     * spec of a cache that holds some of a model's layers (a group of {@code HybridKvCache}). {@link #NONE} stays NONE.
     */
    public AttentionSinks layers(int[] layers) {
        if (!any()) {
            return this;
        }
        float[][] rows = new float[layers.length][];
        for (int i = 0; i < layers.length; i++) {
            if (layers[i] < 0 || layers[i] >= perLayer.length) {
                throw new IllegalArgumentException("layers[" + i + "]=" + layers[i] + " is outside the sinks' [0, "
                        + perLayer.length + ")");
            }
            rows[i] = perLayer[layers[i]];
        }
        return new AttentionSinks(rows);
    }

    /** The sink of query head {@code head} in {@code layer}; the layer must have sinks ({@link #has}). */
    public float sink(int layer, int head) {
        return perLayer[layer][head];
    }

    /**
     * Checks these sinks against a spec's {@code numQHeads} and, where {@code numLayers >= 0}, a cache's layers; names
     * the bad size. Sinks without any layer's row ({@link #NONE}) fit everything.
     */
    void requireFits(int numQHeads, int numLayers) {
        if (!any()) {
            return;
        }
        if (numLayers >= 0 && perLayer.length != numLayers) {
            throw new IllegalArgumentException("sinks layers=" + perLayer.length + " does not match the cache's numLayers=" + numLayers);
        }
        for (int layer = 0; layer < perLayer.length; layer++) {
            if (perLayer[layer] != null && perLayer[layer].length != numQHeads) {
                throw new IllegalArgumentException("sinks[" + layer + "].length=" + perLayer[layer].length
                        + " does not match numQHeads=" + numQHeads);
            }
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttentionSinks other && Arrays.deepEquals(perLayer, other.perLayer);
    }

    @Override
    public int hashCode() {
        return Arrays.deepHashCode(perLayer);
    }

    @Override
    public String toString() {
        return any() ? "sinks(" + Arrays.stream(perLayer).filter(row -> row != null).count() + " of " + perLayer.length + " layers)"
                : "no sinks";
    }
}
