package dev.pagedattn.attention;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.SplittableRandom;

/**
 * K/V as a model would produce them for the prefix-cache tests: a fixed function of (token id,
 * position, layer), so the same prompt written into two caches gives the same values.
 */
final class ModelKv {
    private ModelKv() {
    }

    /** Writes the K/V of {@code tokens[from..]} of {@code seq} into layers {@code 0 .. numLayers-1}. */
    static void write(KvCache cache, int seq, int[] tokens, int from, int numLayers) throws OutOfBlocksException {
        int n = tokens.length - from;
        if (n == 0) {
            return;
        }
        int width = cache.config().tokenWidth();
        for (int layer = 0; layer < numLayers; layer++) {
            float[] k = new float[n * width];
            float[] v = new float[n * width];
            for (int i = 0; i < n; i++) {
                int pos = from + i;
                SplittableRandom r = new SplittableRandom(tokens[pos] * 0x9E3779B97F4A7C15L + pos * 0xC2B2AE3D27D4EB4FL + layer);
                for (int e = 0; e < width; e++) {
                    k[i * width + e] = (float) (r.nextDouble() * 2 - 1);
                    v[i * width + e] = (float) (r.nextDouble() * 2 - 1);
                }
            }
            cache.writeTokens(seq, layer, from, n, k, v);
        }
    }
}
