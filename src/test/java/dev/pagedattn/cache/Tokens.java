package dev.pagedattn.cache;

/**
 * Test K/V whose every element names its origin, so a read through the page table shows exactly
 * which (token, layer, head, dim) it came from. Values stay exact in fp32 for token ids below 2^16;
 * fp16 pools round them ({@link #stored}), so fp16 tests compare rounded values.
 */
final class Tokens {
    private Tokens() {
    }

    /** K element of token {@code id}; V is its negation. */
    static float k(int id, int layer, int kvHead, int dim) {
        return id * 256f + layer * 64f + kvHead * 8f + dim + 0.5f;
    }

    static float v(int id, int layer, int kvHead, int dim) {
        return -k(id, layer, kvHead, dim);
    }

    /** K of tokens {@code ids} for one layer, {@code [ids.length][numKvHeads][headDim]}. */
    static float[] k(KvCacheConfig c, int layer, int... ids) {
        float[] out = new float[ids.length * c.tokenWidth()];
        for (int i = 0; i < ids.length; i++) {
            for (int h = 0; h < c.numKvHeads(); h++) {
                for (int d = 0; d < c.headDim(); d++) {
                    out[i * c.tokenWidth() + h * c.headDim() + d] = k(ids[i], layer, h, d);
                }
            }
        }
        return out;
    }

    static float[] v(KvCacheConfig c, int layer, int... ids) {
        float[] out = k(c, layer, ids);
        for (int i = 0; i < out.length; i++) {
            out[i] = -out[i];
        }
        return out;
    }

    /** Reserves and writes tokens {@code ids} in every layer; returns the first position. */
    static int append(KvCache cache, int seq, int... ids) throws OutOfBlocksException {
        KvCacheConfig c = cache.config();
        int first = cache.append(seq, ids.length);
        for (int layer = 0; layer < c.numLayers(); layer++) {
            cache.writeTokens(seq, layer, first, ids.length, k(c, layer, ids), v(c, layer, ids));
        }
        return first;
    }

    /** Asserts that {@code seq} holds exactly tokens {@code ids} (K and V, every layer, head and dim). */
    static void assertHolds(KvCache cache, int seq, int... ids) {
        KvCacheConfig c = cache.config();
        org.junit.jupiter.api.Assertions.assertEquals(ids.length, cache.length(seq), "length of seq=" + seq);
        for (int p = 0; p < ids.length; p++) {
            for (int layer = 0; layer < c.numLayers(); layer++) {
                for (int h = 0; h < c.numKvHeads(); h++) {
                    for (int d = 0; d < c.headDim(); d++) {
                        float gotK = cache.readK(seq, layer, p, h, d);
                        float gotV = cache.readV(seq, layer, p, h, d);
                        float wantK = stored(c, k(ids[p], layer, h, d));
                        if (gotK != wantK || gotV != -wantK) {
                            org.junit.jupiter.api.Assertions.fail("seq=" + seq + " position=" + p + " layer=" + layer
                                    + " kvHead=" + h + " dim=" + d + ": expected token " + ids[p] + " K=" + wantK
                                    + " but read K=" + gotK + " V=" + gotV);
                        }
                    }
                }
            }
        }
    }

    /** {@code x} as the pool stores it: fp16 rounds to nearest even. */
    static float stored(KvCacheConfig c, float x) {
        return c.dtype() == KvDtype.FP16 ? Float.float16ToFloat(Float.floatToFloat16(x)) : x;
    }

    static int[] range(int from, int count) {
        int[] out = new int[count];
        for (int i = 0; i < count; i++) {
            out[i] = from + i;
        }
        return out;
    }

    static int[] concat(int[] a, int... b) {
        int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
