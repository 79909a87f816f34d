package dev.pagedattn.attention;

import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.quant.KvScaleMode;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.quant.QuantFormat;
import java.util.SplittableRandom;

/** 8-bit scales for tests over random K/V in [-1, 1). */
public final class TestScales {
    private TestScales() {
    }

    /** Scales near those of [-1, 1) data, jittered per layer (and head), so a wrong head's scale shows. */
    public static KvScales random(QuantFormat format, KvScaleMode mode, int numLayers, int numKvHeads, SplittableRandom r) {
        float base = KvScales.fromAbsMax(format, 1f);
        if (mode == KvScaleMode.PER_TENSOR) {
            float[] k = new float[numLayers];
            float[] v = new float[numLayers];
            for (int l = 0; l < numLayers; l++) {
                k[l] = base * (float) (0.5 + r.nextDouble());
                v[l] = base * (float) (0.5 + r.nextDouble());
            }
            return KvScales.perTensor(format, numKvHeads, k, v);
        }
        float[][] k = new float[numLayers][numKvHeads];
        float[][] v = new float[numLayers][numKvHeads];
        for (int l = 0; l < numLayers; l++) {
            for (int h = 0; h < numKvHeads; h++) {
                k[l][h] = base * (float) (0.5 + r.nextDouble());
                v[l][h] = base * (float) (0.5 + r.nextDouble());
            }
        }
        return KvScales.perHead(format, k, v);
    }

    /** One layer's per-head {@link #random} scales for an 8-bit {@code dtype}; null for fp16/fp32. */
    public static KvScales perHead(KvDtype dtype, int numKvHeads, long seed) {
        return dtype.isQuantized()
                ? random(dtype.format(), KvScaleMode.PER_HEAD, 1, numKvHeads, new SplittableRandom(seed ^ 0x5CA1EL))
                : null;
    }
}
