package dev.pagedattn.cli;

import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.OutOfBlocksException;

/**
 * Stand-in for a model's K/V projections: a token's K and V are a fixed pseudo-random function of
 * (token id, position), so equal prefixes give equal K/V, as they do in a real model.
 */
final class SyntheticKv {
    private SyntheticKv() {
    }

    /** Writes K/V of {@code tokens[from..]} into {@code seq} (positions already reserved). */
    static void write(KvCache cache, int seq, int[] tokens, int from) throws OutOfBlocksException {
        int n = tokens.length - from;
        if (n <= 0) {
            return;
        }
        int width = cache.config().tokenWidth();
        float[] k = new float[n * width];
        float[] v = new float[n * width];
        for (int i = 0; i < n; i++) {
            int pos = from + i;
            long base = tokens[pos] * 0x9E3779B97F4A7C15L + pos * 0xC2B2AE3D27D4EB4FL;
            for (int e = 0; e < width; e++) {
                k[i * width + e] = unit(base + 2L * e);
                v[i * width + e] = unit(base + 2L * e + 1);
            }
        }
        cache.writeTokens(seq, 0, from, n, k, v);
    }

    /** Writes K/V of {@code tokens[from..]} into {@code seq} in every layer of a hybrid cache, each layer its own. */
    static void write(HybridKvCache cache, int seq, int[] tokens, int from) throws OutOfBlocksException {
        int n = tokens.length - from;
        if (n <= 0) {
            return;
        }
        int width = cache.group(0).config().tokenWidth();
        float[] k = new float[n * width];
        float[] v = new float[n * width];
        for (int layer = 0; layer < cache.numLayers(); layer++) {
            for (int i = 0; i < n; i++) {
                int pos = from + i;
                long base = tokens[pos] * 0x9E3779B97F4A7C15L + pos * 0xC2B2AE3D27D4EB4FL + layer * 0x165667B19E3779F9L;
                for (int e = 0; e < width; e++) {
                    k[i * width + e] = unit(base + 2L * e);
                    v[i * width + e] = unit(base + 2L * e + 1);
                }
            }
            cache.writeTokens(seq, layer, from, n, k, v);
        }
    }

    private static float unit(long x) {
        x = (x ^ (x >>> 33)) * 0xFF51AFD7ED558CCDL;
        x = (x ^ (x >>> 33)) * 0xC4CEB9FE1A85EC53L;
        x ^= x >>> 33;
        return (x >>> 40) / (float) (1 << 24) * 2 - 1;
    }
}
