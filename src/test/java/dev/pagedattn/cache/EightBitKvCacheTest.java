package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.quant.KvScaleMode;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.quant.QuantFormat;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** 8-bit pools in the cache: quantized writes with the (layer, head) scale, refusals that change nothing. */
class EightBitKvCacheTest {
    private static final int HEADS = 2;
    private static final int DIM = 8;
    private static final int WIDTH = HEADS * DIM;

    @ParameterizedTest
    @EnumSource(value = KvDtype.class, names = {"FP8_E4M3", "FP8_E5M2", "INT8"})
    void writesStoreTheCodeOfValueOverItsHeadScaleAndReadsDequantize(KvDtype dtype) throws OutOfBlocksException {
        long seed = dev.pagedattn.attention.TestSeeds.fresh("writesStoreTheCodeOfValueOverItsHeadScale " + dtype);
        SplittableRandom r = new SplittableRandom(seed);
        QuantFormat f = dtype.format();
        float[][] ks = {{0.01f, 0.5f}, {2f, 0.125f}}; // [layer][head]
        float[][] vs = {{0.25f, 1f}, {0.03f, 4f}};
        KvScales scales = KvScales.perHead(f, ks, vs);
        KvCache cache = new KvCache(new KvCacheConfig(4, 3, HEADS, DIM, dtype, 2), scales);
        int seq = cache.createSequence();
        cache.append(seq, 5);
        float[][] k = new float[2][];
        float[][] v = new float[2][];
        for (int layer = 0; layer < 2; layer++) {
            k[layer] = random(r, 5 * WIDTH, 3 * f.maxFinite() * ks[layer][1]); // some saturate
            v[layer] = random(r, 5 * WIDTH, vs[layer][0] * f.maxFinite());
            cache.writeTokens(seq, layer, 0, 5, k[layer], v[layer]);
        }
        for (int layer = 0; layer < 2; layer++) {
            for (int pos = 0; pos < 5; pos++) {
                for (int h = 0; h < HEADS; h++) {
                    for (int d = 0; d < DIM; d++) {
                        int i = pos * WIDTH + h * DIM + d;
                        float wantK = f.decode(f.encode(k[layer][i] / ks[layer][h])) * ks[layer][h];
                        float wantV = f.decode(f.encode(v[layer][i] / vs[layer][h])) * vs[layer][h];
                        assertEquals(wantK, cache.readK(seq, layer, pos, h, d), "K seed=" + seed + " at " + layer + "/" + pos + "/" + h + "/" + d);
                        assertEquals(wantV, cache.readV(seq, layer, pos, h, d), "V seed=" + seed);
                    }
                }
            }
        }
        float[] row = new float[DIM];
        cache.keys(1).read(cache.layout().offset(cache.pageTable(seq).block(1), 1, 1, 0), row, 0, DIM);
        for (int d = 0; d < DIM; d++) {
            assertEquals(cache.readK(seq, 1, 4, 1, d), row[d], "read() equals get() seed=" + seed);
        }
    }

    @ParameterizedTest
    @ValueSource(floats = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY})
    void nonFiniteWritesAreRefusedNamingTheValueAndNothingIsStored(float bad) throws OutOfBlocksException {
        KvCache cache = new KvCache(KvCacheConfig.of(4, 4, HEADS, DIM, KvDtype.FP8_E4M3));
        int seq = cache.createSequence();
        float[] k = new float[3 * WIDTH];
        float[] v = new float[3 * WIDTH];
        java.util.Arrays.fill(k, 1f);
        java.util.Arrays.fill(v, 2f);
        cache.appendTokens(seq, k, v);
        int child = cache.fork(seq); // a shared block: the write would copy it first
        int allocatable = cache.numAllocatableBlocks();
        cache.dirtySlots().track();
        cache.dirtySlots().drain(0);
        float[] k2 = new float[2 * WIDTH];
        float[] v2 = new float[2 * WIDTH];
        java.util.Arrays.fill(k2, 3f);
        java.util.Arrays.fill(v2, 3f);
        v2[2 * WIDTH - 1] = bad; // the last element: everything before it would be stored by a row-wise check
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.writeTokens(child, 0, 1, 2, k2, v2));
        assertTrue(e.getMessage().startsWith("v[" + (2 * WIDTH - 1) + "]=" + bad), e.getMessage());
        assertEquals(allocatable, cache.numAllocatableBlocks(), "no copy-on-write block taken");
        assertEquals(cache.pageTable(seq).block(0), cache.pageTable(child).block(0), "still shared");
        assertEquals(0, cache.dirtySlots().drain(0).length, "nothing marked dirty");
        for (int pos = 0; pos < 3; pos++) {
            assertEquals(1f, cache.readK(child, 0, pos, 1, 3));
            assertEquals(2f, cache.readV(child, 0, pos, 1, DIM - 1));
        }
        k[0] = bad;
        int before = cache.length(seq);
        assertThrows(IllegalArgumentException.class, () -> cache.appendTokens(seq, k, v));
        assertEquals(before, cache.length(seq), "a refused prompt reserves nothing");
        assertEquals(allocatable, cache.numAllocatableBlocks());
    }

    @Test
    void scalesMustMatchTheCache() {
        KvCacheConfig fp8 = new KvCacheConfig(4, 4, HEADS, DIM, KvDtype.FP8_E4M3, 2);
        IllegalArgumentException format = assertThrows(IllegalArgumentException.class,
                () -> new KvCache(fp8, KvScales.unit(QuantFormat.INT8, 2, HEADS)));
        assertTrue(format.getMessage().contains("format=INT8") && format.getMessage().contains("dtype=FP8_E4M3"), format.getMessage());
        IllegalArgumentException layers = assertThrows(IllegalArgumentException.class,
                () -> new KvCache(fp8, KvScales.unit(QuantFormat.FP8_E4M3, 1, HEADS)));
        assertTrue(layers.getMessage().contains("numLayers=1"), layers.getMessage());
        IllegalArgumentException fp16 = assertThrows(IllegalArgumentException.class,
                () -> new KvCache(KvCacheConfig.of(4, 4, HEADS, DIM, KvDtype.FP16), KvScales.unit(QuantFormat.INT8, 1, HEADS)));
        assertTrue(fp16.getMessage().startsWith("dtype=FP16"), fp16.getMessage());
        KvCache unit = new KvCache(fp8);
        assertEquals(KvScaleMode.PER_TENSOR, unit.scales().mode());
        assertArrayEquals(new float[] {1f, 1f, 1f, 1f}, unit.scales().kPerHead());
        assertNull(new KvCache(KvCacheConfig.of(4, 4, HEADS, DIM, KvDtype.FP16)).scales());
    }

    @Test
    void parsesTheEightBitDtypes() {
        assertEquals(KvDtype.FP8_E4M3, KvDtype.parse("fp8"));
        assertEquals(KvDtype.FP8_E4M3, KvDtype.parse("FP8-E4M3"));
        assertEquals(KvDtype.FP8_E5M2, KvDtype.parse("fp8-e5m2"));
        assertEquals(KvDtype.INT8, KvDtype.parse("int8"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvDtype.parse("int4"));
        assertTrue(e.getMessage().startsWith("dtype=int4"), e.getMessage());
        assertEquals(1, KvDtype.INT8.bytes());
    }

    private static float[] random(SplittableRandom r, int n, float absMax) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) ((r.nextDouble() * 2 - 1) * absMax);
        }
        return a;
    }
}
