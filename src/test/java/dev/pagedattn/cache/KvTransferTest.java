package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.quant.KvScales;
import dev.pagedattn.quant.QuantFormat;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A sequence written by {@link KvCache#export} and read by {@link KvCache#importSequence} into another cache of the same
 * shape (a decode instance after a prefill instance, or a file): the same length, released run and K/V bit for bit, in
 * every dtype; other shapes and cut streams are refused by name and change nothing.
 */
class KvTransferTest {

    @Test
    void everyDtypeCrossesBitForBit() throws Exception {
        Random random = TestRandom.create("KvTransferTest.everyDtypeCrossesBitForBit");
        for (KvDtype dtype : KvDtype.values()) {
            KvCacheConfig c = new KvCacheConfig(12, 4, 2, 8, dtype, 3);
            KvScales scales = dtype.isQuantized() ? scales(dtype.format()) : null;
            KvCache from = new KvCache(c, scales);
            KvCache to = new KvCache(c, scales);
            to.append(to.createSequence(), 5);                     // the receiver's blocks are numbered otherwise
            int seq = from.createSequence();
            int n = 19;
            from.append(seq, n);
            for (int layer = 0; layer < 3; layer++) {
                float[] k = new float[n * c.tokenWidth()];
                float[] v = new float[k.length];
                for (int i = 0; i < k.length; i++) {
                    k[i] = (float) random.nextGaussian();
                    v[i] = (float) random.nextGaussian();
                }
                from.writeTokens(seq, layer, 0, n, k, v);
            }
            from.releaseBefore(seq, 9);                           // two blocks released: the record keeps the run
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            long written = from.export(seq, bytes);
            assertEquals(bytes.size(), written);
            int back = to.importSequence(new ByteArrayInputStream(bytes.toByteArray()));
            assertEquals(n, to.length(back));
            assertEquals(8, to.firstHeldPosition(back), dtype + ": the released run");
            for (int layer = 0; layer < 3; layer++) {
                for (int p = 8; p < n; p++) {
                    for (int h = 0; h < 2; h++) {
                        for (int d = 0; d < 8; d++) {
                            assertEquals(Float.floatToRawIntBits(from.readK(seq, layer, p, h, d)),
                                    Float.floatToRawIntBits(to.readK(back, layer, p, h, d)), dtype + " K " + layer + "/" + p);
                            assertEquals(Float.floatToRawIntBits(from.readV(seq, layer, p, h, d)),
                                    Float.floatToRawIntBits(to.readV(back, layer, p, h, d)), dtype + " V " + layer + "/" + p);
                        }
                    }
                }
            }
            assertEquals(c.numBlocks() - 2 - 3, to.numAllocatableBlocks(), dtype + ": three held blocks taken (two were in use)");
            to.verify();
        }
    }

    @Test
    void anotherShapeOrScaleIsRefusedByNameAndChangesNothing() throws Exception {
        KvCacheConfig c = new KvCacheConfig(8, 4, 2, 8, KvDtype.FP16, 2);
        KvCache from = new KvCache(c);
        int seq = from.createSequence();
        from.append(seq, 6);
        byte[] record = export(from, seq);
        assertRefused(new KvCache(new KvCacheConfig(8, 4, 2, 8, KvDtype.FP16, 3)), record, "numLayers=2 in the stream, but this cache has 3");
        assertRefused(new KvCache(new KvCacheConfig(8, 8, 2, 8, KvDtype.FP16, 2)), record, "blockSize=4 in the stream, but this cache has 8");
        assertRefused(new KvCache(new KvCacheConfig(8, 4, 2, 8, KvDtype.FP32, 2)), record, "dtype=FP16 in the stream, but this cache stores FP32");
        byte[] garbage = Arrays.copyOf(record, record.length);
        garbage[0] = 7;
        assertRefused(new KvCache(c), garbage, "stream starts with 0x07414B56, not a sequence written by KvCache.export");
        KvCacheConfig q = new KvCacheConfig(8, 4, 2, 8, KvDtype.INT8, 1);
        KvCache int8 = new KvCache(q, KvScales.perTensor(QuantFormat.INT8, 2, new float[] {0.5f}, new float[] {0.25f}));
        int s8 = int8.createSequence();
        int8.append(s8, 3);
        assertRefused(new KvCache(q, KvScales.perTensor(QuantFormat.INT8, 2, new float[] {0.5f}, new float[] {0.125f})),
                export(int8, s8), "scales of layer 0 KV head 0 are K 0.5 V 0.25 in the stream, K 0.5 V 0.125 here");
    }

    @Test
    void aStreamThatEndsEarlyGivesBackWhatItTook() throws Exception {
        KvCacheConfig c = new KvCacheConfig(8, 4, 2, 8, KvDtype.FP32, 2);
        KvCache from = new KvCache(c);
        int seq = from.createSequence();
        from.append(seq, 14);
        byte[] record = export(from, seq);
        KvCache to = new KvCache(c);
        CacheSnapshot before = CacheSnapshot.of(to);
        InputStream cut = new ByteArrayInputStream(Arrays.copyOf(record, record.length - 10));
        assertEquals("the stream ended in held block 3 of 4", assertThrows(EOFException.class, () -> to.importSequence(cut)).getMessage());
        assertEquals(before, CacheSnapshot.of(to));
        assertEquals(8, to.numAllocatableBlocks());
        KvCache small = new KvCache(new KvCacheConfig(3, 4, 2, 8, KvDtype.FP32, 2));
        assertThrows(OutOfBlocksException.class, () -> small.importSequence(new ByteArrayInputStream(record)));
        assertEquals(3, small.numAllocatableBlocks());
        to.verify();
    }

    /**
     * A prompt admitted on a prefill instance (with its tenant's salt) crosses through a file; the decode instance tracks
     * its ids under the same salt and publishes them: the next request with the prompt and salt hits there, one without
     * the salt does not.
     */
    @Test
    void theTokenIdsAndTheirSaltCrossTooAndArePublishedThere(@TempDir Path dir) throws Exception {
        KvCacheConfig c = new KvCacheConfig(16, 4, 1, 4, KvDtype.FP32, 1);
        KvCache prefill = new KvCache(c);
        int[] prompt = Tokens.range(7, 13);
        PrefixCache.Admission a = prefill.enablePrefixCaching().admit(prompt, "tenant-a");
        Tokens.append(prefill, prefill.createSequence(), 1); // (another sequence: the ids differ between the caches)
        prefill.writeTokens(a.seq(), 0, 0, 13, Tokens.k(c, 0, prompt), Tokens.v(c, 0, prompt));
        Path file = dir.resolve("seq.pakv");
        try (OutputStream out = Files.newOutputStream(file)) {
            prefill.export(a.seq(), out);
        }
        KvCache decode = new KvCache(c);
        PrefixCache prefix = decode.enablePrefixCaching();
        int seq;
        try (InputStream in = Files.newInputStream(file)) {
            seq = decode.importSequence(in);
        }
        prefix.commit(seq);
        assertEquals(0, prefix.admit(prompt, null).numCachedTokens(), "without the salt: another tenant's chain");
        PrefixCache.Admission hit = prefix.admit(prompt, "tenant-a");
        assertEquals(12, hit.numCachedTokens());
        assertEquals(Tokens.k(7 + 11, 0, 0, 3), decode.readK(hit.seq(), 0, 11, 0, 3));
        decode.verify();
    }

    /** A hybrid cache's sequence crosses group by group; a receiver whose full group is too small takes nothing. */
    @Test
    void aHybridSequenceCrossesEveryGroupOrNone() throws Exception {
        int[] windows = {4, DecodeBatch.NO_WINDOW};
        HybridKvCache from = HybridKvCache.of(windows, new int[] {8, 8}, 4, 1, 2, KvDtype.FP32);
        int seq = from.createSequence();
        from.append(seq, 10);
        from.append(seq, 7);                                  // the windowed group released positions 0..3 first
        for (int layer = 0; layer < 2; layer++) {
            from.write(seq, layer, 16, new float[] {layer + 1f, 2f}, new float[] {3f, 4f});
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        from.export(seq, bytes);
        HybridKvCache to = HybridKvCache.of(windows, new int[] {8, 8}, 4, 1, 2, KvDtype.FP32);
        int back = to.importSequence(new ByteArrayInputStream(bytes.toByteArray()));
        assertEquals(17, to.length(back));
        assertEquals(4, to.group(0).firstHeldPosition(back));
        assertEquals(0, to.group(1).firstHeldPosition(back));
        assertEquals(2f, to.readK(back, 1, 16, 0, 0));
        HybridKvCache small = HybridKvCache.of(windows, new int[] {8, 4}, 4, 1, 2, KvDtype.FP32);
        assertThrows(OutOfBlocksException.class, () -> small.importSequence(new ByteArrayInputStream(bytes.toByteArray())));
        assertEquals(0, small.numSequences());
        assertEquals(8, small.group(0).numAllocatableBlocks(), "the windowed group's blocks given back");
        to.verify();
        small.verify();
    }

    /**
     * A sequence of a hybrid cache with a pool per group crosses into one whose groups share a pool (the same groups), and
     * back; a shared pool too small for every group's blocks takes nothing.
     */
    @Test
    void aHybridSequenceCrossesIntoASharedPoolAndBack() throws Exception {
        int[] windows = {4, DecodeBatch.NO_WINDOW};
        HybridKvCache split = HybridKvCache.of(windows, new int[] {8, 8}, 4, 1, 2, KvDtype.FP32);
        int seq = split.createSequence();
        split.append(seq, 10);
        split.append(seq, 7);
        KvCacheConfig c = split.group(0).config();
        for (int layer = 0; layer < 2; layer++) {
            split.writeTokens(seq, layer, 4, 13, Tokens.k(c, layer, Tokens.range(40, 13)), Tokens.v(c, layer, Tokens.range(40, 13)));
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        split.export(seq, bytes);
        HybridKvCache shared = HybridKvCache.sharedPool(windows, 10, 4, 1, 2, KvDtype.FP32);
        int back = shared.importSequence(new ByteArrayInputStream(bytes.toByteArray()));
        assertEquals(17, shared.length(back));
        assertEquals(4, shared.group(0).firstHeldPosition(back));
        assertEquals(9, shared.numUsedBlocks(), "windowed 4 + full 5, from one pool");
        for (int layer = 0; layer < 2; layer++) {
            for (int p = 4; p < 17; p++) {
                assertEquals(Tokens.k(40 + p - 4, layer, 0, 1), shared.readK(back, layer, p, 0, 1), "layer " + layer + " position " + p);
            }
        }
        ByteArrayOutputStream again = new ByteArrayOutputStream();
        shared.export(back, again);
        HybridKvCache other = HybridKvCache.of(windows, new int[] {8, 8}, 4, 1, 2, KvDtype.FP32);
        int home = other.importSequence(new ByteArrayInputStream(again.toByteArray()));
        assertEquals(Tokens.k(52, 1, 0, 0), other.readK(home, 1, 16, 0, 0));
        other.verify();
        HybridKvCache small = HybridKvCache.sharedPool(windows, 8, 4, 1, 2, KvDtype.FP32);
        assertThrows(OutOfBlocksException.class, () -> small.importSequence(new ByteArrayInputStream(bytes.toByteArray())));
        assertEquals(0, small.numSequences());
        assertEquals(0, small.numUsedBlocks(), "the windowed group's blocks given back");
        shared.verify();
        split.verify();
        small.verify();
    }

    private static void assertRefused(KvCache cache, byte[] record, String message) {
        CacheSnapshot before = CacheSnapshot.of(cache);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cache.importSequence(new ByteArrayInputStream(record)));
        assertTrue(e.getMessage().startsWith(message), e.getMessage());
        assertEquals(before, CacheSnapshot.of(cache));
    }

    private static byte[] export(KvCache cache, int seq) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        cache.export(seq, bytes);
        return bytes.toByteArray();
    }

    private static KvScales scales(QuantFormat format) {
        float[][] k = new float[3][2];
        float[][] v = new float[3][2];
        for (int l = 0; l < 3; l++) {
            for (int h = 0; h < 2; h++) {
                k[l][h] = 0.01f * (l + 1) + h * 0.003f;
                v[l][h] = 0.02f * (l + 1) + h * 0.001f;
            }
        }
        return KvScales.perHead(format, k, v);
    }
}
