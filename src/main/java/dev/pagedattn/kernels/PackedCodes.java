package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * What the 8-bit kernels share: the {@code dequant} argument (the format's value of every code
 * and the layer's scales in one array, so a kernel keeps within TornadoVM's 15 task parameters)
 * and the read of one element from a pool of codes packed four per 32-bit word.
 *
 * <pre>
 *  dequant  [256 + 2 * numKvHeads]   value of code c at [c]; K scale of KV head h (times the caller's
 *                                    factor) at [256 + h]; V scale of KV head h at [256 + numKvHeads + h]
 * </pre>
 */
public final class PackedCodes {
    private PackedCodes() {
    }

    /**
     * The {@code dequant} argument for {@code layer} of an 8-bit cache. {@code kFactor} multiplies
     * the K scales: a kernel that scales its queries by the K scale can fold the softmax scale in.
     */
    public static FloatArray argument(KvCache cache, int layer, float kFactor) {
        return argument(cache, layer, 0, kFactor);
    }

    /**
     * The {@code dequant} argument of one shard of a layer split by KV head
     * ({@link dev.pagedattn.cache.KvCacheConfig#poolShards()}): its {@code headsPerShard} heads,
     * numbered from 0 as the shard's kernels see them.
     */
    public static FloatArray argument(KvCache cache, int layer, int shard, float kFactor) {
        int heads = cache.config().headsPerShard();
        int first = shard * heads;
        float[] table = cache.keys(layer, shard).format().table();
        FloatArray a = new FloatArray(DequantTable.SIZE + 2 * heads);
        for (int i = 0; i < DequantTable.SIZE; i++) {
            a.set(i, table[i]);
        }
        for (int h = 0; h < heads; h++) {
            a.set(DequantTable.SIZE + h, cache.keys(layer, shard).scale(first + h) * kFactor);
            a.set(DequantTable.SIZE + heads + h, cache.values(layer, shard).scale(first + h));
        }
        return a;
    }

    /**
     * Element {@code index} of a pool of packed codes, decoded but not scaled: byte {@code index & 3}
     * of word {@code index >> 2} looked up in the table at the start of {@code dequant}. Kernel-safe
     * (global arrays only; {@code >>} and a mask, see {@link DequantTable#code}).
     */
    public static float value(IntArray words, FloatArray dequant, int index) {
        return dequant.get(DequantTable.code(words.get(index >> 2), index & 3));
    }
}
