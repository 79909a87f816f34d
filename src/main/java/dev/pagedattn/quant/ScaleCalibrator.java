package dev.pagedattn.quant;

/**
 * Computes {@link KvScales} from calibration data: the largest magnitude seen per (layer, KV head)
 * for K and for V, divided by the format's largest finite value, so that the largest calibration
 * value is stored as {@code +-maxFinite} and nothing seen saturates. Per-tensor scales take the
 * maximum over the layer's heads. Feed it the K/V of representative prompts, layer by layer, in
 * the cache's own token layout; not thread-safe.
 */
public final class ScaleCalibrator {
    private final QuantFormat format;
    private final int numLayers;
    private final int numKvHeads;
    private final int headDim;
    private final float[] kAbsMax; // [numLayers][numKvHeads]
    private final float[] vAbsMax; // [numLayers][numKvHeads]

    public ScaleCalibrator(QuantFormat format, int numLayers, int numKvHeads, int headDim) {
        KvScales.checkShape(format, numLayers, numKvHeads);
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim=" + headDim + " must be >= 1");
        }
        this.format = format;
        this.numLayers = numLayers;
        this.numKvHeads = numKvHeads;
        this.headDim = headDim;
        this.kAbsMax = new float[numLayers * numKvHeads];
        this.vAbsMax = new float[numLayers * numKvHeads];
    }

    /**
     * Takes the K and V of some tokens of {@code layer}: {@code k, v: [numTokens][numKvHeads][headDim]},
     * as {@code KvCache.writeTokens} takes them. A non-finite value is named and nothing is taken.
     */
    public void observe(int layer, float[] k, float[] v) {
        if (layer < 0 || layer >= numLayers) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + numLayers + ")");
        }
        int width = numKvHeads * headDim;
        if (k == null || v == null || k.length % width != 0 || v.length != k.length) {
            throw new IllegalArgumentException("k.length=" + (k == null ? "null" : k.length) + " v.length="
                    + (v == null ? "null" : v.length) + " must be equal multiples of numKvHeads*headDim=" + width);
        }
        QuantFormat.requireFinite("k", k, 0, k.length);
        QuantFormat.requireFinite("v", v, 0, v.length);
        absMax(layer, k, kAbsMax);
        absMax(layer, v, vAbsMax);
    }

    /** Scales from everything observed so far; a (layer, head) never seen (or all zero) gets 1.0. */
    public KvScales scales(KvScaleMode mode) {
        if (mode == KvScaleMode.PER_TENSOR) {
            float[] k = new float[numLayers];
            float[] v = new float[numLayers];
            for (int layer = 0; layer < numLayers; layer++) {
                float kMax = 0f;
                float vMax = 0f;
                for (int head = 0; head < numKvHeads; head++) {
                    kMax = Math.max(kMax, kAbsMax[layer * numKvHeads + head]);
                    vMax = Math.max(vMax, vAbsMax[layer * numKvHeads + head]);
                }
                k[layer] = KvScales.fromAbsMax(format, kMax);
                v[layer] = KvScales.fromAbsMax(format, vMax);
            }
            return KvScales.perTensor(format, numKvHeads, k, v);
        }
        float[][] k = new float[numLayers][numKvHeads];
        float[][] v = new float[numLayers][numKvHeads];
        for (int layer = 0; layer < numLayers; layer++) {
            for (int head = 0; head < numKvHeads; head++) {
                k[layer][head] = KvScales.fromAbsMax(format, kAbsMax[layer * numKvHeads + head]);
                v[layer][head] = KvScales.fromAbsMax(format, vAbsMax[layer * numKvHeads + head]);
            }
        }
        return KvScales.perHead(format, k, v);
    }

    private void absMax(int layer, float[] tokens, float[] into) {
        for (int at = 0; at < tokens.length; at += headDim) {
            int slot = layer * numKvHeads + (at / headDim) % numKvHeads;
            float max = into[slot];
            for (int d = 0; d < headDim; d++) {
                max = Math.max(max, Math.abs(tokens[at + d]));
            }
            into[slot] = max;
        }
    }
}
