package dev.pagedattn.quant;

import java.util.Arrays;

/**
 * The fp32 scales of an 8-bit K/V cache: a stored element is {@code decode(code) * scale}, where
 * the scale belongs to the element's layer (per tensor) or to its layer and KV head (per head).
 * K and V have separate scales. Immutable.
 *
 * <pre>
 *  PER_TENSOR  k, v: [numLayers]              k(layer, anyHead) = k[layer]
 *  PER_HEAD    k, v: [numLayers][numKvHeads]  k(layer, head)    = k[layer * numKvHeads + head]
 *  kernels read kPerHead()/vPerHead(): [numLayers][numKvHeads] in both modes (per-tensor repeated),
 *  so one kernel body serves both
 * </pre>
 *
 * <p>How vLLM gets its scales ({@code kv_cache_dtype="fp8"}): (1) by default every
 * {@code k_scale}/{@code v_scale} is 1.0, so K/V are stored unscaled and E4M3 saturates at 448;
 * (2) scales calibrated offline (llm-compressor, ModelOpt) ship in the checkpoint, one per layer
 * ({@code [1]}) or, with the FlashAttention backend, per KV head ({@code [numKvHeads]}), computed as
 * {@code absmax / 448} over a calibration set; (3) {@code calculate_kv_scales=True} takes them from
 * the first batch as {@code max|k| / 200} and {@code max|v| / 100} (K_SCALE_CONSTANT,
 * V_SCALE_CONSTANT), leaving headroom for later tokens. The quantizer divides by the scale and the
 * kernels multiply by it, as here. {@link #unit} is (1), {@link #perTensor}/{@link #perHead} take (2)
 * or (3), and {@link ScaleCalibrator} computes (2) from calibration data.
 */
public final class KvScales {
    private final QuantFormat format;
    private final KvScaleMode mode;
    private final int numLayers;
    private final int numKvHeads;
    private final float[] k; // PER_TENSOR: [numLayers]; PER_HEAD: [numLayers][numKvHeads]
    private final float[] v; // the same shape as k

    private KvScales(QuantFormat format, KvScaleMode mode, int numLayers, int numKvHeads, float[] k, float[] v) {
        this.format = format;
        this.mode = mode;
        this.numLayers = numLayers;
        this.numKvHeads = numKvHeads;
        this.k = k;
        this.v = v;
    }

    /** Every scale 1.0, one per layer: vLLM's default without calibrated scales. */
    public static KvScales unit(QuantFormat format, int numLayers, int numKvHeads) {
        checkShape(format, numLayers, numKvHeads);
        float[] ones = new float[numLayers];
        Arrays.fill(ones, 1f);
        return new KvScales(format, KvScaleMode.PER_TENSOR, numLayers, numKvHeads, ones, ones.clone());
    }

    /** Given per-tensor scales, one per layer: {@code k, v: [numLayers]}. */
    public static KvScales perTensor(QuantFormat format, int numKvHeads, float[] k, float[] v) {
        if (k == null || v == null || k.length != v.length) {
            throw new IllegalArgumentException("k.length=" + (k == null ? "null" : k.length)
                    + " v.length=" + (v == null ? "null" : v.length) + " must both be numLayers");
        }
        checkShape(format, k.length, numKvHeads);
        checkScales("k", k, 0);
        checkScales("v", v, 0);
        return new KvScales(format, KvScaleMode.PER_TENSOR, k.length, numKvHeads, k.clone(), v.clone());
    }

    /** Given per-head scales: {@code k, v: [numLayers][numKvHeads]}. */
    public static KvScales perHead(QuantFormat format, float[][] k, float[][] v) {
        if (k == null || v == null || k.length != v.length || k.length == 0 || k[0] == null) {
            throw new IllegalArgumentException("k.length=" + (k == null ? "null" : k.length)
                    + " v.length=" + (v == null ? "null" : v.length) + " must both be numLayers >= 1");
        }
        int numKvHeads = k[0].length;
        checkShape(format, k.length, numKvHeads);
        float[] kFlat = flatten("k", k, numKvHeads);
        float[] vFlat = flatten("v", v, numKvHeads);
        checkScales("k", kFlat, numKvHeads);
        checkScales("v", vFlat, numKvHeads);
        return new KvScales(format, KvScaleMode.PER_HEAD, k.length, numKvHeads, kFlat, vFlat);
    }

    /**
     * The scale that maps {@code absMax} onto the format's largest finite value:
     * {@code absMax / maxFinite}, or 1.0 for an all-zero tensor (any scale stores zeros exactly).
     * Never below {@link Float#MIN_NORMAL}.
     */
    public static float fromAbsMax(QuantFormat format, float absMax) {
        if (!(absMax >= 0f) || absMax == Float.POSITIVE_INFINITY) {
            throw new IllegalArgumentException("absMax=" + absMax + " must be finite and >= 0");
        }
        return absMax == 0f ? 1f : Math.max(Float.MIN_NORMAL, absMax / format.maxFinite());
    }

    public QuantFormat format() {
        return format;
    }

    public KvScaleMode mode() {
        return mode;
    }

    public int numLayers() {
        return numLayers;
    }

    public int numKvHeads() {
        return numKvHeads;
    }

    /**
     * The scales of {@code layers} only, in that order (layer {@code i} of the result is {@code layers[i]} here): a
     * cache that holds some of a model's layers (a group of {@code HybridKvCache}) takes its rows.
     */
    public KvScales layers(int[] layers) {
        if (layers == null || layers.length == 0) {
            throw new IllegalArgumentException("layers=" + (layers == null ? "null" : "[]") + ": need at least one layer");
        }
        int width = mode == KvScaleMode.PER_HEAD ? numKvHeads : 1;
        float[] kSel = new float[layers.length * width];
        float[] vSel = new float[layers.length * width];
        for (int i = 0; i < layers.length; i++) {
            if (layers[i] < 0 || layers[i] >= numLayers) {
                throw new IllegalArgumentException("layers[" + i + "]=" + layers[i] + " is outside [0, " + numLayers + ")");
            }
            System.arraycopy(k, layers[i] * width, kSel, i * width, width);
            System.arraycopy(v, layers[i] * width, vSel, i * width, width);
        }
        return new KvScales(format, mode, layers.length, numKvHeads, kSel, vSel);
    }

    /** K scale of {@code kvHead} in {@code layer} (per tensor: the layer's one scale). */
    public float k(int layer, int kvHead) {
        return k[index(layer, kvHead)];
    }

    /** V scale of {@code kvHead} in {@code layer} (per tensor: the layer's one scale). */
    public float v(int layer, int kvHead) {
        return v[index(layer, kvHead)];
    }

    /** K scales for kernels, a copy: {@code [numLayers][numKvHeads]} in both modes. */
    public float[] kPerHead() {
        return perHead(k);
    }

    /** V scales for kernels, a copy: {@code [numLayers][numKvHeads]} in both modes. */
    public float[] vPerHead() {
        return perHead(v);
    }

    @Override
    public String toString() {
        return format + " " + mode + " scales [numLayers=" + numLayers + "][numKvHeads=" + numKvHeads + "] k="
                + Arrays.toString(k) + " v=" + Arrays.toString(v);
    }

    private float[] perHead(float[] scales) {
        float[] out = new float[numLayers * numKvHeads];
        for (int layer = 0; layer < numLayers; layer++) {
            for (int head = 0; head < numKvHeads; head++) {
                out[layer * numKvHeads + head] = scales[index(layer, head)];
            }
        }
        return out;
    }

    private int index(int layer, int kvHead) {
        if (layer < 0 || layer >= numLayers) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + numLayers + ")");
        }
        if (kvHead < 0 || kvHead >= numKvHeads) {
            throw new IllegalArgumentException("kvHead=" + kvHead + " is outside [0, " + numKvHeads + ")");
        }
        return mode == KvScaleMode.PER_TENSOR ? layer : layer * numKvHeads + kvHead;
    }

    static void checkShape(QuantFormat format, int numLayers, int numKvHeads) {
        if (format == null) {
            throw new IllegalArgumentException("format=null");
        }
        if (numLayers < 1) {
            throw new IllegalArgumentException("numLayers=" + numLayers + " must be >= 1");
        }
        if (numKvHeads < 1) {
            throw new IllegalArgumentException("numKvHeads=" + numKvHeads + " must be >= 1");
        }
    }

    private static float[] flatten(String name, float[][] scales, int numKvHeads) {
        float[] flat = new float[scales.length * numKvHeads];
        for (int layer = 0; layer < scales.length; layer++) {
            if (scales[layer] == null || scales[layer].length != numKvHeads) {
                throw new IllegalArgumentException(name + "[" + layer + "].length="
                        + (scales[layer] == null ? "null" : scales[layer].length) + " must be numKvHeads=" + numKvHeads);
            }
            System.arraycopy(scales[layer], 0, flat, layer * numKvHeads, numKvHeads);
        }
        return flat;
    }

    /** {@code numKvHeads = 0}: per-tensor scales, {@code [numLayers]}. */
    private static void checkScales(String name, float[] scales, int numKvHeads) {
        for (int i = 0; i < scales.length; i++) {
            float s = scales[i];
            if (!(s >= Float.MIN_NORMAL) || s == Float.POSITIVE_INFINITY) {
                String at = numKvHeads == 0 ? "[layer=" + i + "]" : "[layer=" + i / numKvHeads + "][kvHead=" + i % numKvHeads + "]";
                throw new IllegalArgumentException(name + at + "=" + s + " must be finite and >= " + Float.MIN_NORMAL);
            }
        }
    }
}
