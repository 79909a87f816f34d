package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.quant.KvScales;
import dev.pagedattn.quant.QuantFormat;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * A latent cache ({@link KvCacheConfig#latent}, DeepSeek's MLA): one pool per layer whose vectors are the keys and whose
 * first {@code latentDim} elements are the values; half the bytes of the same vectors in a K and a V pool. Every path that
 * moves blocks (copy-on-write, swap, host offload, export and import) moves the one pool bit for bit.
 */
class LatentKvCacheTest {

    @Test
    void oneVectorPerTokenHalvesTheBytes() {
        KvCacheConfig latent = KvCacheConfig.latent(100, 64, 512, 64, KvDtype.FP16, 61); // DeepSeek-V3: 61 layers
        assertEquals(1, latent.numKvHeads());
        assertEquals(576, latent.headDim());
        assertEquals(512, latent.valueDim());
        assertEquals(1, latent.poolsPerLayer());
        assertEquals(61L * 576 * 2, latent.bytesPerToken(), "one 576-element fp16 vector per layer");
        KvCacheConfig twin = new KvCacheConfig(100, 64, 1, 576, KvDtype.FP16, 61);
        assertEquals(2 * latent.bytesPerToken(), twin.bytesPerToken());
        assertEquals(2 * latent.totalBytes(), twin.totalBytes());
        assertEquals(576, twin.valueDim());
        assertFalse(twin.isLatent());
        long budget = 10L << 30;
        KvCacheConfig sized = KvCacheConfig.latentForMemory(budget, 64, 512, 64, 61, KvDtype.FP8_E4M3);
        assertEquals(budget / (61L * 64 * 576), sized.numBlocks(), "blocks of one 576-byte vector per token and layer");
        assertTrue(sized.isLatent());
        assertEquals(2 * KvCacheConfig.forMemory(budget, 64, 1, 576, 61, KvDtype.FP8_E4M3).numBlocks(), sized.numBlocks(), 1);

        KvCache cache = new KvCache(KvCacheConfig.latent(4, 2, 8, 4, KvDtype.FP32, 2));
        assertSame(cache.keys(1), cache.values(1), "the values are read from the keys' pool");
    }

    @Test
    void badShapesAndScalesAreNamed() {
        assertEquals("latentDim=13 is outside [0, headDim=12]", assertThrows(IllegalArgumentException.class,
                () -> new KvCacheConfig(4, 2, 1, 12, KvDtype.FP16, 1, KvCacheConfig.MAX_POOL_ELEMENTS, 13)).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> new KvCacheConfig(4, 2, 2, 12, KvDtype.FP16, 1, KvCacheConfig.MAX_POOL_ELEMENTS, 8)).getMessage()
                .startsWith("numKvHeads=2 with latentDim=8: a latent cache holds one KV head"));
        assertEquals("ropeDim=-1 must be >= 0 and fit an int next to latentDim=8", assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.latent(4, 2, 8, -1, KvDtype.FP16, 1)).getMessage());
        assertEquals("latentDim=0 must be >= 1", assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.latent(4, 2, 0, 8, KvDtype.FP16, 1)).getMessage());
        KvCacheConfig int8 = KvCacheConfig.latent(4, 2, 8, 4, KvDtype.INT8, 2);
        IllegalArgumentException scales = assertThrows(IllegalArgumentException.class, () -> new KvCache(int8,
                KvScales.perTensor(QuantFormat.INT8, 1, new float[] {0.5f, 0.25f}, new float[] {0.5f, 0.125f})));
        assertTrue(scales.getMessage().startsWith("scales of layer 1 are K 0.25 V 0.125: a latent cache's values are its keys'"),
                scales.getMessage());
        new KvCache(int8, KvScales.perTensor(QuantFormat.INT8, 1, new float[] {0.5f, 0.25f}, new float[] {0.5f, 0.25f}));
    }

    @Test
    void copiesSwapsAndTransfersMoveTheOnePoolBitForBit() throws Exception {
        Random random = TestRandom.create("LatentKvCacheTest.copiesSwapsAndTransfersMoveTheOnePoolBitForBit");
        for (KvDtype dtype : KvDtype.values()) {
            KvCacheConfig c = KvCacheConfig.latent(12, 4, 6, 2, dtype, 3);
            KvScales scales = dtype.isQuantized() ? KvScales.unit(dtype.format(), 3, 1) : null;
            KvCache from = new KvCache(c, scales);
            int seq = from.createSequence();
            int n = 15;
            from.append(seq, n);
            for (int layer = 0; layer < 3; layer++) {
                float[] k = new float[n * 8];
                for (int i = 0; i < k.length; i++) {
                    k[i] = (float) random.nextGaussian();
                }
                from.writeTokens(seq, layer, 0, n, k, null);
            }
            float[][][] want = snapshot(from, seq, n);
            int fork = from.fork(seq);
            from.append(fork, 1);
            from.write(fork, 2, n, new float[8], null);               // copies the shared last block first
            assertSameVectors(want, snapshot(from, seq, n), dtype + ": the parent after its fork wrote");
            assertSameVectors(want, snapshot(from, fork, n), dtype + ": the fork's copy");

            from.enableSwapSpace(8 * from.swapBlockBytes());
            assertEquals(3L * 4 * 8 * dtype.bytes(), from.swapBlockBytes(), dtype + ": one tile per layer, no V tile");
            SwappedSequence swapped = from.swapOut(seq);
            int back = from.swapIn(swapped);
            assertSameVectors(want, snapshot(from, back, n), dtype + ": swapped out and in");

            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            from.export(back, bytes);
            KvCache to = new KvCache(c, scales);
            to.append(to.createSequence(), 5);
            int imported = to.importSequence(new ByteArrayInputStream(bytes.toByteArray()));
            assertSameVectors(want, snapshot(to, imported, n), dtype + ": exported and imported");
            IllegalArgumentException other = assertThrows(IllegalArgumentException.class, () -> new KvCache(
                    new KvCacheConfig(12, 4, 1, 8, dtype, 3)).importSequence(new ByteArrayInputStream(bytes.toByteArray())));
            assertEquals("latentDim=6 in the stream, but this cache has 0", other.getMessage());
            from.verify();
            to.verify();
        }
    }

    @Test
    void aLatentPromptComesBackFromHostMemory() throws OutOfBlocksException {
        KvCacheConfig c = KvCacheConfig.latent(6, 4, 6, 2, KvDtype.FP16, 2);
        KvCache cache = new KvCache(c);
        PrefixCache prefix = cache.enablePrefixCaching();
        assertEquals(4, prefix.enableHostOffload(4 * 2L * 4 * 8 * 2)); // 4 blocks of 2 layers' one tile
        int[] prompt = {5, 6, 7, 8, 9, 10, 11, 12, 13};
        PrefixCache.Admission a = prefix.admit(prompt, null);
        for (int layer = 0; layer < 2; layer++) {
            float[] k = new float[prompt.length * 8];
            for (int i = 0; i < k.length; i++) {
                k[i] = prompt[i / 8] + layer * 0.5f + (i % 8) / 16f;
            }
            cache.writeTokens(a.seq(), layer, 0, prompt.length, k, null);
        }
        float[][][] want = snapshot(cache, a.seq(), 8);
        prefix.commit(a.seq());
        cache.free(a.seq());
        int other = cache.createSequence();
        cache.append(other, 6 * 4);                                      // every block: the cached ones go to host memory
        assertEquals(2, prefix.hostMetrics().offloaded());
        cache.free(other);
        PrefixCache.Admission b = prefix.admit(prompt, null);
        assertEquals(8, b.numCachedTokens());
        assertSameVectors(want, snapshot(cache, b.seq(), 8), "restored from host memory");
        cache.verify();
    }

    @Test
    void aVersionOneRecordStillImports() throws Exception {
        KvCacheConfig c = new KvCacheConfig(8, 4, 2, 8, KvDtype.FP32, 1);
        KvCache from = new KvCache(c);
        int seq = from.createSequence();
        from.append(seq, 6);
        float[] k = new float[6 * 16];
        for (int i = 0; i < k.length; i++) {
            k[i] = i * 0.25f;
        }
        from.writeTokens(seq, 0, 0, 6, k, k);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        from.export(seq, bytes);
        // version 1 (before latent caches): the same record without the latent dim after the head dim
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()));
        ByteArrayOutputStream v1 = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(v1);
        out.writeInt(in.readInt());
        assertEquals(2, in.readInt());
        out.writeInt(1);
        for (int i = 0; i < 3; i++) {
            out.writeInt(in.readInt());                                   // layers, KV heads, head dim
        }
        assertEquals(0, in.readInt(), "latent dim");
        in.transferTo(out);
        out.flush();
        KvCache to = new KvCache(c);
        int back = to.importSequence(new ByteArrayInputStream(v1.toByteArray()));
        assertEquals(Float.floatToRawIntBits(from.readV(seq, 0, 5, 1, 7)), Float.floatToRawIntBits(to.readV(back, 0, 5, 1, 7)));
    }

    /**
     * Random runs of the operations that move K/V between blocks (appends that copy a shared last block, forks, rewrites,
     * truncation, a token tree's compaction, swap out and in, frees) over a latent cache, against a model of each
     * sequence's vectors: every held position reads back its vector in every layer, its values the vector's first elements.
     */
    @net.jqwik.api.Property(tries = 40)
    void randomOperationsKeepEveryVector(@net.jqwik.api.ForAll long seed) throws Exception {
        Random random = new Random(seed);
        KvCacheConfig c = KvCacheConfig.latent(48, 4, 8, 4, KvDtype.FP32, 2);
        KvCache cache = new KvCache(c);
        cache.enableSwapSpace(16 * cache.swapBlockBytes());
        java.util.Map<Integer, java.util.List<float[][]>> model = new java.util.HashMap<>(); // seq -> positions of [layer][dim]
        for (int op = 0; op < 60; op++) {
            java.util.List<Integer> seqs = new java.util.ArrayList<>(model.keySet());
            java.util.Collections.sort(seqs);
            int seq = seqs.isEmpty() ? -1 : seqs.get(random.nextInt(seqs.size()));
            int kind = seqs.isEmpty() ? 0 : random.nextInt(7);
            try {
                switch (kind) {
                    case 0, 1 -> { // a new sequence, or more tokens on one (copy-on-write where its last block is shared)
                        int target = kind == 0 || seq < 0 ? cache.createSequence() : seq;
                        model.putIfAbsent(target, new java.util.ArrayList<>());
                        int n = 1 + random.nextInt(6);
                        int first = cache.length(target);
                        cache.append(target, n);
                        float[][][] rows = new float[n][2][];
                        for (int layer = 0; layer < 2; layer++) {
                            float[] k = new float[n * 12];
                            for (int i = 0; i < k.length; i++) {
                                k[i] = random.nextFloat() * 2 - 1;
                                rows[i / 12][layer] = rows[i / 12][layer] == null ? new float[12] : rows[i / 12][layer];
                                rows[i / 12][layer][i % 12] = k[i];
                            }
                            cache.writeTokens(target, layer, first, n, k, null);
                        }
                        model.get(target).addAll(java.util.Arrays.asList(rows));
                    }
                    case 2 -> model.put(cache.fork(seq), new java.util.ArrayList<>(model.get(seq)));
                    case 3 -> { // rewrite one held position of one layer
                        int len = cache.length(seq);
                        if (len > 0) {
                            int pos = random.nextInt(len);
                            int layer = random.nextInt(2);
                            float[] k = new float[12];
                            for (int i = 0; i < 12; i++) {
                                k[i] = random.nextFloat();
                            }
                            cache.write(seq, layer, pos, k, null);
                            float[][] row = model.get(seq).get(pos).clone();
                            row[layer] = k;
                            model.get(seq).set(pos, row);
                        }
                    }
                    case 4 -> { // truncate, or compact a random subset of the tail
                        int len = cache.length(seq);
                        int first = random.nextInt(len + 1);
                        java.util.List<float[][]> rows = model.get(seq);
                        if (random.nextBoolean()) {
                            cache.truncate(seq, first);
                            rows.subList(first, len).clear();
                        } else {
                            int[] keep = java.util.stream.IntStream.range(first, len).filter(p -> random.nextBoolean()).toArray();
                            cache.compact(seq, first, keep);
                            java.util.List<float[][]> kept = new java.util.ArrayList<>(rows.subList(0, first));
                            for (int p : keep) {
                                kept.add(rows.get(p));
                            }
                            model.put(seq, kept);
                        }
                    }
                    case 5 -> { // swap out and back in under a new id
                        if (cache.canSwapOut(seq)) {
                            java.util.List<float[][]> rows = model.remove(seq);
                            int back = cache.swapIn(cache.swapOut(seq));
                            model.put(back, rows);
                        }
                    }
                    default -> {
                        cache.free(seq);
                        model.remove(seq);
                    }
                }
            } catch (OutOfBlocksException full) {
                // nothing changed (the cache's promise); the model stays as it is
            }
            cache.verify();
            for (var e : model.entrySet()) {
                assertEquals(e.getValue().size(), cache.length(e.getKey()), "seed=" + seed + " op " + op + ": length");
                for (int p = 0; p < e.getValue().size(); p++) {
                    for (int layer = 0; layer < 2; layer++) {
                        float[] want = e.getValue().get(p)[layer];
                        for (int d = 0; d < 12; d++) {
                            assertEquals(want[d], cache.readK(e.getKey(), layer, p, 0, d),
                                    "seed=" + seed + " op " + op + " seq " + e.getKey() + " layer " + layer + " position " + p);
                        }
                        assertEquals(want[7], cache.readV(e.getKey(), layer, p, 0, 7), "seed=" + seed + ": a value is its key's element");
                    }
                }
            }
        }
    }

    /** [layer][position][dim] of every stored element of {@code seq}'s first {@code n} positions, as the cache reads them. */
    private static float[][][] snapshot(KvCache cache, int seq, int n) {
        KvCacheConfig c = cache.config();
        float[][][] s = new float[c.numLayers()][n][c.headDim()];
        for (int layer = 0; layer < c.numLayers(); layer++) {
            for (int p = 0; p < n; p++) {
                for (int d = 0; d < c.headDim(); d++) {
                    s[layer][p][d] = cache.readK(seq, layer, p, 0, d);
                    if (d < c.valueDim() && Float.floatToRawIntBits(cache.readV(seq, layer, p, 0, d))
                            != Float.floatToRawIntBits(s[layer][p][d])) {
                        throw new AssertionError("V and K differ at layer " + layer + " position " + p + " dim " + d);
                    }
                }
            }
        }
        return s;
    }

    private static void assertSameVectors(float[][][] want, float[][][] got, String what) {
        for (int l = 0; l < want.length; l++) {
            for (int p = 0; p < want[l].length; p++) {
                for (int d = 0; d < want[l][p].length; d++) {
                    assertEquals(Float.floatToRawIntBits(want[l][p][d]), Float.floatToRawIntBits(got[l][p][d]),
                            what + ": layer " + l + " position " + p + " dim " + d);
                }
            }
        }
    }
}
