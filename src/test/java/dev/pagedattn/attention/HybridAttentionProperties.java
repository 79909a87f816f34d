package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PageTable;
import dev.pagedattn.cache.PrefixCache;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * A model that mixes sliding-window (or chunked, Llama 4) and full layers on a {@link HybridKvCache} through {@link HybridAttention} (JVM
 * backends): a prompt's prefill and the decode steps after it give, in every layer, the same bits as the same model on
 * a plain {@link KvCache} that keeps every block, with each layer's own sinks; the last step agrees with the fp64
 * reference read from the hybrid groups; the windowed groups hold at most a window's blocks per sequence, and the
 * hybrid pools are smaller than the plain one (jqwik prints its seed on failure).
 */
class HybridAttentionProperties extends DecodeShapeArbitraries {
    private static final int LAYERS = 4;
    private static final int KV_HEADS = 2;
    private static final int HEAD_DIM = 16;
    private static final int Q_HEADS = 4;

    @Property(tries = 25)
    void aHybridModelComputesWhatThePlainCacheComputesInEveryLayer(
            @ForAll @IntRange(min = 1, max = 3) int numSeqs,
            @ForAll("blockSizes") int blockSize,
            @ForAll @IntRange(min = 1, max = 40) int window,
            @ForAll @IntRange(min = 2, max = 4) int fullEvery,
            @ForAll @IntRange(min = 1, max = 50) int prompt,
            @ForAll KvDtype dtype,
            @ForAll boolean sinks,
            @ForAll boolean trees,
            @ForAll boolean sharedPool,
            @ForAll boolean chunks,
            @ForAll long seed) throws OutOfBlocksException {
        int local = chunks ? AttentionWindow.chunked(window) : window; // Llama 4's chunks, or a sliding window
        int[] windows = new int[LAYERS];
        for (int l = 0; l < LAYERS; l++) {
            windows[l] = l % fullEvery == fullEvery - 1 ? DecodeBatch.NO_WINDOW : local;
        }
        int steps = 2 * window + 3 * blockSize;
        int maxLen = prompt + steps;
        int fullBlocks = numSeqs * ((maxLen + blockSize - 1) / blockSize);
        int windowBlocks = HybridKvCache.windowBlocks(local, blockSize, prompt);
        int per = HybridKvCache.defaultLayersPerGroup(windows);
        int windowed = (int) java.util.Arrays.stream(windows).filter(w -> w != DecodeBatch.NO_WINDOW).count();
        int sharedBlocks = (windowed + per - 1) / per * numSeqs * windowBlocks + (LAYERS - windowed + per - 1) / per * fullBlocks;
        HybridKvCache hybrid = sharedPool // the windows' layers in groups of `per`, every group's blocks from one pool
                ? HybridKvCache.sharedPool(windows, sharedBlocks, per, blockSize, KV_HEADS, HEAD_DIM, dtype, null)
                : HybridKvCache.of(windows, new int[] {numSeqs * windowBlocks, fullBlocks}, blockSize, KV_HEADS, HEAD_DIM, dtype);
        KvCache plain = new KvCache(new KvCacheConfig(fullBlocks, blockSize, KV_HEADS, HEAD_DIM, dtype, LAYERS));
        String what = "seqs=" + numSeqs + " bs=" + blockSize + " " + AttentionWindow.describe(local) + " fullEvery=" + fullEvery + " prompt="
                + prompt + " " + dtype + " sinks=" + sinks + " trees=" + trees + " shared=" + sharedPool + " seed=" + seed;
        assertTrue(hybrid.totalBytes() < plain.config().totalBytes(), what + ": the hybrid pools are the smaller");
        SplittableRandom random = new SplittableRandom(seed);
        AttentionSpec spec = AttentionSpec.of(plain.config(), Q_HEADS);
        if (sinks) {
            float[][] rows = new float[LAYERS][];
            for (int l = 0; l < LAYERS; l += 2) { // layers 1 and 3 have none
                rows[l] = DecodeProblem.uniform(random, Q_HEADS);
            }
            spec = spec.withSinks(AttentionSinks.of(rows));
        }
        int[] a = new int[numSeqs];
        int[] b = new int[numSeqs];
        for (int i = 0; i < numSeqs; i++) {
            a[i] = plain.createSequence();
            b[i] = hybrid.createSequence();
            appendAndWrite(plain, hybrid, a[i], b[i], prompt, random);
        }
        try (JvmDecodeAttention plainDecode = new JvmDecodeAttention(plain, spec);
             JvmPrefillAttention plainPrefill = new JvmPrefillAttention(plain, spec);
             HybridAttention attention = HybridAttention.create("jvm", hybrid, spec, null, "auto")) {
            int[] qLens = new int[numSeqs];
            java.util.Arrays.fill(qLens, prompt);
            HybridBatch kv = hybrid.batch(b);
            int queries = (int) spec.queryElements(numSeqs * prompt);
            TreeMask[] masks = new TreeMask[numSeqs]; // the prompts verified as token trees (every group through the same)
            for (int i = 0; trees && i < numSeqs; i++) {
                int[] parents = new int[prompt];
                for (int j = 0; j < prompt; j++) {
                    parents[j] = j - 1 - random.nextInt(Math.min(j + 1, 3));
                }
                masks[i] = TreeMask.fromParents(parents);
            }
            for (int layer = 0; layer < LAYERS; layer++) {
                FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, queries));
                FloatArray want = poisoned(queries);
                FloatArray got = poisoned(queries);
                plainPrefill.prefill(PrefillBatch.of(plain.batch(a), qLens, windows[layer]).withMasks(masks), layer, q, want);
                attention.prefill(kv, qLens, trees ? masks : null, layer, q, got);
                assertArrayEquals(want.toHeapArray(), got.toHeapArray(), what + ": prefill of layer " + layer);
            }
            int rows = (int) spec.queryElements(numSeqs);
            for (int step = 0; step < steps; step++) {
                for (int i = 0; i < numSeqs; i++) {
                    appendAndWrite(plain, hybrid, a[i], b[i], 1, random);
                    PageTable t = hybrid.group(0).pageTable(b[i]);
                    assertTrue(t.numBlocks() - t.numReleased() <= HybridKvCache.windowBlocks(local, blockSize, 1),
                            what + ": seq " + i + " holds " + (t.numBlocks() - t.numReleased()) + " windowed blocks at step " + step);
                }
                DecodeBatch plainBatch = plain.batch(a);
                HybridBatch batch = hybrid.batch(b);
                for (int layer = 0; layer < LAYERS; layer++) {
                    FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, rows));
                    FloatArray want = poisoned(rows);
                    FloatArray got = poisoned(rows);
                    plainDecode.decode(plainBatch.window(windows[layer]), layer, q, want);
                    attention.decode(batch, layer, q, got);
                    assertArrayEquals(want.toHeapArray(), got.toHeapArray(), what + ": step " + step + " layer " + layer);
                    if (step == steps - 1) {
                        int g = hybrid.groupOf(layer);
                        double[] ref = ReferenceAttention.decode(hybrid.group(g), spec.forLayers(hybrid.layers(g)),
                                hybrid.localLayer(layer), b, q, windows[layer], n -> { });
                        Accuracy.assertClose(got, ref, Accuracy.REL_L2, Accuracy.MAX_ABS, what + ": layer " + layer + " vs fp64");
                    }
                }
            }
            FloatArray out = poisoned(rows);
            FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, rows));
            HybridKvCache other = HybridKvCache.of(windows, new int[] {numSeqs, numSeqs}, blockSize, KV_HEADS, HEAD_DIM, dtype);
            int[] foreign = new int[numSeqs];
            for (int i = 0; i < numSeqs; i++) {
                foreign[i] = other.createSequence();
                other.append(foreign[i], 1);
            }
            assertThrows(IllegalArgumentException.class, () -> attention.decode(other.batch(foreign), 0, q, out),
                    what + ": another cache's batch");
            HybridBatch stale = hybrid.batch(b);
            hybrid.free(b[0]);
            for (int layer = 0; layer < LAYERS; layer++) {
                int l = layer;
                assertThrows(IllegalArgumentException.class, () -> attention.decode(stale, l, q, out), what + ": freed, layer " + l);
            }
        }
    }

    @Property(tries = 20)
    void aPrefixHitAndThePrefillOfTheRestComputeWhatAFreshCacheDoes(
            @ForAll("blockSizes") int blockSize,
            @ForAll @IntRange(min = 1, max = 40) int window,
            @ForAll @IntRange(min = 1, max = 60) int system,
            @ForAll @IntRange(min = 1, max = 30) int suffix,
            @ForAll boolean sharedPool,
            @ForAll boolean chunks,
            @ForAll long seed) throws OutOfBlocksException {
        int f = DecodeBatch.NO_WINDOW;
        int local = chunks ? AttentionWindow.chunked(window) : window;
        int[] windows = {local, f, local};
        int len = system + suffix;
        int blocks = 3 * ((len + blockSize - 1) / blockSize);
        HybridKvCache cached = sharedPool // three groups of one layer on one pool
                ? HybridKvCache.sharedPool(windows, 3 * blocks, blockSize, KV_HEADS, HEAD_DIM, KvDtype.FP16)
                : HybridKvCache.of(windows, new int[] {blocks, blocks}, blockSize, KV_HEADS, HEAD_DIM, KvDtype.FP16);
        cached.enablePrefixCaching();
        HybridKvCache fresh = HybridKvCache.of(windows, new int[] {blocks, blocks}, blockSize, KV_HEADS, HEAD_DIM, KvDtype.FP16);
        int[] first = new int[len];
        int[] second = new int[len];
        for (int i = 0; i < len; i++) {
            first[i] = i < system ? 7 + i : 100_000 + i;
            second[i] = i < system ? 7 + i : 200_000 + i;
        }
        PrefixCache.Admission a = cached.admit(first, null);
        writeFrom(cached, a.seq(), first, 0, seed);
        cached.commit(a.seq());
        PrefixCache.Admission b = cached.admit(second, null);
        int hit = Math.min(system / blockSize, (len - 1) / blockSize) * blockSize;
        String what = "bs=" + blockSize + " " + AttentionWindow.describe(local) + " system=" + system + " suffix=" + suffix + " shared=" + sharedPool
                + " seed=" + seed;
        assertTrue(b.numCachedTokens() == hit, what + ": cached " + b.numCachedTokens() + ", expected " + hit);
        writeFrom(cached, b.seq(), second, hit, seed);
        int seq = fresh.createSequence();
        fresh.append(seq, len);
        writeFrom(fresh, seq, second, 0, seed);
        AttentionSpec spec = AttentionSpec.of(fresh.group(0).config(), Q_HEADS);
        int[] qLens = {len - hit};
        int rows = (int) spec.queryElements(len - hit);
        SplittableRandom random = new SplittableRandom(seed);
        try (HybridAttention onCached = HybridAttention.create("jvm", cached, spec, null, "auto");
             HybridAttention onFresh = HybridAttention.create("jvm", fresh, spec, null, "auto")) {
            HybridBatch kvCached = cached.batch(b.seq());
            HybridBatch kvFresh = fresh.batch(seq);
            for (int layer = 0; layer < windows.length; layer++) {
                FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, rows));
                FloatArray want = poisoned(rows);
                FloatArray got = poisoned(rows);
                onFresh.prefill(kvFresh, qLens, layer, q, want);
                onCached.prefill(kvCached, qLens, layer, q, got);
                assertArrayEquals(want.toHeapArray(), got.toHeapArray(), what + ": layer " + layer);
            }
        }
        cached.verify();
    }

    /** Writes, in every layer, K/V of {@code ids[from..]} that depend only on (layer, position, token id) and the seed. */
    private static void writeFrom(HybridKvCache cache, int seq, int[] ids, int from, long seed) throws OutOfBlocksException {
        int width = cache.group(0).config().tokenWidth();
        for (int layer = 0; layer < cache.numLayers(); layer++) {
            for (int p = from; p < ids.length; p++) {
                SplittableRandom r = new SplittableRandom(seed ^ (layer * 1_000_003L + p * 7_919L + ids[p] * 31L));
                cache.write(seq, layer, p, DecodeProblem.uniform(r, width), DecodeProblem.uniform(r, width));
            }
        }
    }

    /** Appends {@code n} tokens to both caches and writes the same random K/V in every layer. */
    private static void appendAndWrite(KvCache plain, HybridKvCache hybrid, int a, int b, int n, SplittableRandom random)
            throws OutOfBlocksException {
        int width = plain.config().tokenWidth();
        int first = plain.append(a, n);
        int firstHybrid = hybrid.append(b, n);
        assertTrue(first == firstHybrid, "positions " + first + " and " + firstHybrid);
        for (int layer = 0; layer < LAYERS; layer++) {
            float[] k = DecodeProblem.uniform(random, n * width);
            float[] v = DecodeProblem.uniform(random, n * width);
            plain.writeTokens(a, layer, first, n, k, v);
            hybrid.writeTokens(b, layer, first, n, k, v);
        }
    }

    private static FloatArray poisoned(int n) {
        FloatArray out = new FloatArray(n);
        out.init(Float.NaN);
        return out;
    }
}
