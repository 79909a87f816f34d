package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.JvmPrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.PrefillWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.tornado.DecodeGrid;
import dev.pagedattn.tornado.PrefillGrid;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Layers split into KV-head shards (what a layer larger than one int-indexed native array becomes,
 * forced here on small shapes through {@code maxPoolElements}): every decode kernel run by the
 * emulator per shard as the TornadoVM plans run it, the JVM backend and the prefill kernel, all
 * against the fp64 reference; the JVM backend bit for bit against the same K/V in one array.
 */
class ShardedLayerTest {
    private static final double REL_L2 = 1e-5;

    @ParameterizedTest(name = "batch={0} ctx={1}..{2} q={3} kv={4} d={5} bs={6} {7}, {8} KV heads per array")
    @CsvSource({
            "3, 1, 90, 32, 8, 128, 16, FP16, 4",
            "3, 5, 60, 12, 6, 64, 7, FP32, 3",
            "2, 10, 50, 10, 5, 32, 4, FP8_E4M3, 1",
            "3, 1, 40, 16, 8, 16, 1, INT8, 2",
            "2, 30, 70, 8, 8, 256, 16, FP16, 1",
    })
    void everyDecodeKernelPerShardMatchesTheReference(int batch, int minLen, int maxLen, int qHeads, int kvHeads, int headDim,
                                                      int blockSize, KvDtype dtype, int headsPerArray) {
        long seed = TestSeeds.fresh(String.format("ShardedLayerTest decode batch=%d ctx=%d..%d q=%d kv=%d d=%d bs=%d %s heads/array=%d",
                batch, minLen, maxLen, qHeads, kvHeads, headDim, blockSize, dtype, headsPerArray));
        int[] lengths = DecodeWorkload.lengths(batch, minLen, maxLen, seed);
        DecodeWorkload w = DecodeWorkload.create(lengths, qHeads, kvHeads, headDim, blockSize, dtype, seed, 0L, 1, 0,
                TestScales.perHead(dtype, kvHeads, seed), arrayOf(lengths, qHeads, kvHeads, headDim, blockSize, dtype, headsPerArray));
        KvCacheConfig config = w.cache().config();
        int shards = kvHeads / headsPerArray;
        assertEquals(shards, config.poolShards(), "shards of " + config);
        for (int s = 0; s < shards; s++) {
            assertEquals(config.shardElements(), w.cache().keys(0, s).size(), "K array of shard " + s);
            assertTrue(w.cache().keys(0, s).size() <= config.maxPoolElements());
        }
        double[] ref = w.reference();
        try (JvmDecodeAttention jvm = new JvmDecodeAttention(w.cache(), w.spec())) {
            FloatArray out = w.poisonedOutput();
            jvm.decode(w.batch(), 0, w.q(), out);
            check("jvm seed=" + seed, ref, out);
        }
        AttentionSpec shard = w.spec().shard(shards);
        int longest = w.batch().maxContextLen();
        KernelEmulator.Schedule schedule = KernelEmulator.Schedule.values()[(int) (seed & 1)];
        for (DecodeGrid.Kernel kernel : kernelsFor(shard, dtype)) {
            DecodeGrid fused = DecodeGrid.plan(shard, batch, longest, false, 528, 256, kernel);
            DecodeGrid split = DecodeGrid.plan(shard, batch, longest, true, 1 << 20, 8, kernel);
            // the stream kernels' balanced grid too: every shard reads the same params (ranges over its own KV heads)
            DecodeGrid balanced = kernel == DecodeGrid.Kernel.STREAM ? DecodeGrid.balanced(shard, w.batch(), 5, 16) : split;
            for (DecodeGrid grid : new DecodeGrid[] {fused, split, balanced}) {
                check(grid + " " + schedule + " seed=" + seed, ref, EmulatedDecode.attention(w, grid, schedule, false));
            }
        }
    }

    @ParameterizedTest(name = "{0}, {1} KV heads per array")
    @CsvSource({"FP16, 1", "FP32, 2", "FP8_E5M2, 1"})
    void prefillPerShardMatchesTheReference(KvDtype dtype, int headsPerArray) {
        long seed = TestSeeds.fresh("ShardedLayerTest prefill " + dtype + " heads/array=" + headsPerArray);
        int[] lengths = {70, 9, 33};
        int[] qLens = {20, 9, 12};
        int qHeads = 8;
        int kvHeads = 4;
        int headDim = 32;
        int blockSize = 8;
        PrefillWorkload w = PrefillWorkload.create(lengths, qLens, 19, qHeads, kvHeads, headDim, blockSize, dtype, seed, 0,
                TestScales.perHead(dtype, kvHeads, seed), arrayOf(lengths, qHeads, kvHeads, headDim, blockSize, dtype, headsPerArray));
        int shards = kvHeads / headsPerArray;
        assertEquals(shards, w.kv().cache().config().poolShards());
        double[] ref = w.reference();
        try (JvmPrefillAttention jvm = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
            FloatArray out = w.poisonedOutput();
            jvm.prefill(w.batch(), 0, w.q(), out);
            check("jvm prefill seed=" + seed, ref, out);
        }
        PrefillGrid plain = PrefillGrid.plan(w.spec().shard(shards), w.batch(), PrefillGrid.Kernel.SCALAR);
        PrefillGrid split = PrefillKernelsTest.splitInto(plain, w.batch(), PrefillKernels.KV_TILE);
        for (PrefillGrid grid : new PrefillGrid[] {plain, split}) {
            check("emulated " + grid + " seed=" + seed, ref, PrefillKernelsTest.run(w, grid, KernelEmulator.Schedule.FORWARD));
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"FP16", "FP32"})
    void jvmDecodeOfAShardedLayerEqualsOneArrayBitForBit(KvDtype dtype) throws OutOfBlocksException {
        long seed = TestSeeds.fresh("ShardedLayerTest bit for bit " + dtype);
        SplittableRandom r = new SplittableRandom(seed);
        int kvHeads = 4;
        int headDim = 64;
        int blockSize = 16;
        int blocks = 40;
        KvCache one = new KvCache(new KvCacheConfig(blocks, blockSize, kvHeads, headDim, dtype, 2));
        KvCache split = new KvCache(new KvCacheConfig(blocks, blockSize, kvHeads, headDim, dtype, 2, blocks * blockSize * headDim));
        assertEquals(kvHeads, split.config().poolShards());
        int[] lengths = {130, 1, 77};
        int[] seqs = new int[lengths.length];
        for (int i = 0; i < lengths.length; i++) {
            seqs[i] = one.createSequence();
            assertEquals(seqs[i], split.createSequence());
            int first = one.append(seqs[i], lengths[i]);
            assertEquals(first, split.append(seqs[i], lengths[i]));
            for (int layer = 0; layer < 2; layer++) {
                float[] k = random(r, lengths[i] * kvHeads * headDim);
                float[] v = random(r, lengths[i] * kvHeads * headDim);
                one.writeTokens(seqs[i], layer, first, lengths[i], k, v);
                split.writeTokens(seqs[i], layer, first, lengths[i], k, v);
            }
        }
        int fork = one.fork(seqs[0]);                       // then copy-on-write of the shared, partly filled last block
        assertEquals(fork, split.fork(seqs[0]));
        int at = one.append(fork, 1);
        assertEquals(at, split.append(fork, 1));
        for (int layer = 0; layer < 2; layer++) {
            float[] k = random(r, kvHeads * headDim);
            float[] v = random(r, kvHeads * headDim);
            one.write(fork, layer, at, k, v);
            split.write(fork, layer, at, k, v);
        }
        int[] order = {fork, seqs[2], seqs[0], seqs[1]};
        AttentionSpec spec = AttentionSpec.of(one.config(), 4 * kvHeads);
        FloatArray q = new FloatArray(order.length * spec.numQHeads() * headDim);
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) r.nextDouble(-1, 1));
        }
        for (int layer = 0; layer < 2; layer++) {
            float[] a = decode(one, spec, order, layer, q);
            float[] b = decode(split, spec, order, layer, q);
            assertArrayEquals(a, b, "layer " + layer + " seed=" + seed);
            for (int h = 0; h < kvHeads; h++) {
                assertEquals(one.readK(fork, layer, 130, h, 5), split.readK(fork, layer, 130, h, 5));
                assertEquals(one.readV(seqs[0], layer, 129, h, 63), split.readV(seqs[0], layer, 129, h, 63));
            }
        }
    }

    @Test
    void shardsAreTheFewestThatDivideTheHeadsAndFit() {
        assertEquals(1, new KvCacheConfig(10, 4, 8, 16, KvDtype.FP16, 1, 10 * 4 * 8 * 16).poolShards());
        assertEquals(2, new KvCacheConfig(10, 4, 8, 16, KvDtype.FP16, 1, 10 * 4 * 8 * 16 - 1).poolShards());
        assertEquals(2, new KvCacheConfig(10, 4, 6, 16, KvDtype.FP16, 1, 10 * 4 * 4 * 16).poolShards(), "3 heads per array");
        assertEquals(5, new KvCacheConfig(10, 4, 5, 16, KvDtype.FP16, 1, 10 * 4 * 4 * 16).poolShards(), "5 is prime");
        KvCacheConfig llama = new KvCacheConfig(64 * 32768 / 16 + 256, 16, 8, 128, KvDtype.FP16, 1);
        assertEquals(2, llama.poolShards(), "64 x 32k of Llama-3-8B: one layer is just over 2^31 elements");
        assertEquals(2L * llama.shardElements(), llama.layerPoolElements());
        assertEquals(8, new KvCacheConfig(256 * 32768 / 16, 16, 8, 128, KvDtype.FP16, 1).poolShards(), "256 x 32k");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new KvCacheConfig(10, 4, 8, 16, KvDtype.FP16, 1, 10 * 4 * 16 - 1));
        assertTrue(e.getMessage().contains("numBlocks=10") && e.getMessage().contains("at most numBlocks=9"), e.getMessage());
        IllegalStateException whole = assertThrows(IllegalStateException.class,
                () -> new KvCache(new KvCacheConfig(10, 4, 8, 16, KvDtype.FP16, 1, 10 * 4 * 16)).keys(0));
        assertTrue(whole.getMessage().contains("poolShards=8"), whole.getMessage());
    }

    private static float[] decode(KvCache cache, AttentionSpec spec, int[] seqs, int layer, FloatArray q) {
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        try (JvmDecodeAttention jvm = new JvmDecodeAttention(cache, spec)) {
            jvm.decode(cache.batch(seqs), layer, q, out);
        }
        return out.toHeapArray();
    }

    /** Most elements per array so that a layer of this workload holds {@code headsPerArray} KV heads per array. */
    static int arrayOf(int[] lengths, int qHeads, int kvHeads, int headDim, int blockSize, KvDtype dtype, int headsPerArray) {
        long blocks = DecodeWorkload.footprint(lengths, qHeads, kvHeads, headDim, blockSize, dtype).numBlocks();
        return Math.toIntExact(blocks * blockSize * headsPerArray * headDim);
    }

    private static List<DecodeGrid.Kernel> kernelsFor(AttentionSpec spec, KvDtype dtype) {
        List<DecodeGrid.Kernel> kernels = new ArrayList<>();
        if (WarpQuadDecodeKernels.supports(spec.groupSize(), spec.headDim())) {
            kernels.add(DecodeGrid.Kernel.WARP);
        }
        kernels.add(DecodeGrid.Kernel.QUADS);
        if (!dtype.isQuantized()) {
            if (ChunkDecodeKernels.supports(spec.groupSize(), spec.headDim())) {
                kernels.add(DecodeGrid.Kernel.CHUNK);
            }
            if (spec.groupSize() < 3) {
                kernels.add(DecodeGrid.Kernel.PAIRS);
            }
            if (dtype == KvDtype.FP16 && StreamDecodeKernels.supports(spec.groupSize(), spec.headDim())) {
                kernels.add(DecodeGrid.Kernel.STREAM);
            }
        }
        return kernels;
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextDouble(-1, 1);
        }
        return a;
    }

    private static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < REL_L2, what + ": relative L2 error " + rel + " (NaN: an output was not written)");
    }
}
