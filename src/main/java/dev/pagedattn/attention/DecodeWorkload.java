package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.NativeArrays;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.SwappedSequence;
import dev.pagedattn.cache.RandomKv;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * A random decode problem: a cache whose sequences own disjoint, shuffled physical blocks filled
 * with uniform random K/V in [-1, 1) (written straight into the pools, in parallel, so that
 * gigabyte-sized benchmark caches build in seconds), one random query per sequence, and the batch
 * that reads them. Used by the CLI's check and bench, the tests and the benchmarks, so they all measure the
 * same thing. Deterministic for a seed.
 */
public final class DecodeWorkload {
    private final KvCache cache;
    private final AttentionSpec spec;
    private final int[] seqs;
    private final DecodeBatch batch;
    private final FloatArray q; // [numSeqs][numQHeads][headDim]

    private DecodeWorkload(KvCache cache, AttentionSpec spec, int[] seqs, FloatArray q) {
        this(cache, spec, seqs, cache.batch(seqs), q);
    }

    private DecodeWorkload(KvCache cache, AttentionSpec spec, int[] seqs, DecodeBatch batch, FloatArray q) {
        this.cache = cache;
        this.spec = spec;
        this.seqs = seqs;
        this.batch = batch;
        this.q = q;
    }

    /**
     * This workload with a sliding window of {@code window} tokens ({@link DecodeBatch#window(int)}): the same cache,
     * sequences and queries; its batch, reference and byte count see each sequence's last {@code window} tokens only.
     */
    public DecodeWorkload windowed(int window) {
        return new DecodeWorkload(cache, spec, seqs, batch.window(window), q);
    }

    /**
     * This workload over selected blocks only ({@link DecodeBatch#selectBlocks}: row {@code i}'s logical blocks
     * {@code blocks[i]}): the same cache, sequences and queries; its batch, reference and byte count see those blocks.
     */
    public DecodeWorkload selectedBlocks(int[][] blocks) {
        return new DecodeWorkload(cache, spec, seqs, batch.selectBlocks(blocks), q);
    }

    /**
     * This windowed workload after {@link KvCache#releaseOutsideWindow} on every sequence (its blocks wholly before its
     * window go back to the pool), with a new batch through the same window and {@link #poisonFreeBlocks} done: a step
     * that reads a released block, even a masked position of one, fails its check.
     */
    public DecodeWorkload releasedOutsideWindow() {
        return releasedOutsideWindow(0);
    }

    /** Same, leaving {@code spareBlocks} allocatable (the pool hands out the last released blocks first: those are poisoned). */
    public DecodeWorkload releasedOutsideWindow(int spareBlocks) {
        if (!batch.windowed()) {
            throw new IllegalArgumentException("releasedOutsideWindow needs a windowed workload (windowed(W) first)");
        }
        for (int seq : seqs) {
            cache.releaseOutsideWindow(seq, batch.window());
        }
        poisonFreeBlocks(spareBlocks);
        return new DecodeWorkload(cache, spec, seqs, cache.batch(seqs).window(batch.window()), q);
    }

    /**
     * This workload after every sequence went to host memory and back ({@link KvCache#swapOut}, {@link KvCache#swapIn}):
     * in between, another sequence filled every free block with NaN K/V ({@link #poisonFreeBlocks}) and gave them back, so
     * the blocks the sequences come back to held NaN, and a swap-in that missed any tile fails the check. New sequence ids,
     * the same window and queries.
     */
    public DecodeWorkload swappedOutAndIn() {
        SwappedSequence[] out = new SwappedSequence[seqs.length];
        int[] back = new int[seqs.length];
        try {
            for (int i = 0; i < seqs.length; i++) {
                out[i] = cache.swapOut(seqs[i]);
            }
            cache.free(poisonFreeBlocks(0));
            for (int i = 0; i < seqs.length; i++) {
                back[i] = cache.swapIn(out[i]);
                out[i].close();
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError("a swap space too small, or the blocks a swap-out gave back cannot hold it again", e);
        }
        DecodeBatch b = cache.batch(back);
        return new DecodeWorkload(cache, spec, back, batch.windowed() ? b.window(batch.window()) : b, q);
    }

    /**
     * A new sequence takes every allocatable block but {@code spareBlocks} (released ones first: the pool hands out the
     * last released first) and fills them with NaN K/V in every layer (8-bit pools: the format's largest value, since NaN
     * is refused there); returns its id.
     */
    int poisonFreeBlocks(int spareBlocks) {
        int junk = cache.createSequence();
        int tokens = Math.max(0, cache.numAllocatableBlocks() - spareBlocks) * cache.config().blockSize();
        try {
            cache.append(junk, tokens);
            writePoison(tokens, cache.config().tokenWidth(), cache.config().numLayers(), cache.config().dtype(),
                    (layer, from, n, k, v) -> cache.writeTokens(junk, layer, from, n, k, cache.config().isLatent() ? null : v));
        } catch (OutOfBlocksException e) {
            throw new AssertionError("the allocatable blocks ran out", e);
        }
        return junk;
    }

    /** Stores {@code n} tokens' K and V of {@code layer} from position {@code from} ({@code KvCache.writeTokens}'s shape). */
    public interface TokenWriter {
        void write(int layer, int from, int n, float[] k, float[] v) throws OutOfBlocksException;
    }

    /**
     * Writes positions {@code [0, tokens)} of {@code numLayers} layers ({@code tokenWidth} elements per token) with poison
     * through {@code writer}, 4096 tokens at a time: NaN, or for 8-bit pools (which refuse NaN) a value that saturates at
     * the format's largest code.
     */
    public static void writePoison(int tokens, int tokenWidth, int numLayers, KvDtype dtype, TokenWriter writer)
            throws OutOfBlocksException {
        int chunk = Math.min(tokens, 4096);
        float[] kv = new float[chunk * tokenWidth];
        java.util.Arrays.fill(kv, dtype.isQuantized() ? 1e6f : Float.NaN);
        for (int from = 0; from < tokens; from += chunk) {
            int n = Math.min(chunk, tokens - from);
            float[] part = n == chunk ? kv : java.util.Arrays.copyOf(kv, n * tokenWidth);
            for (int layer = 0; layer < numLayers; layer++) {
                writer.write(layer, from, n, part, part);
            }
        }
    }

    /**
     * This workload with its sequences in another order: row {@code i} of the new batch is row {@code order[i]} of this one,
     * its query moved with it (the same cache and K/V; a permutation of the rows, checked).
     */
    public DecodeWorkload reordered(int[] order) {
        int n = seqs.length;
        boolean[] seen = new boolean[n];
        if (order.length != n) {
            throw new IllegalArgumentException("order has " + order.length + " rows, the batch " + n);
        }
        int[] moved = new int[n];
        int rowElements = (int) (q.getSize() / n);
        FloatArray q2 = NativeArrays.floats(q.getSize());
        for (int i = 0; i < n; i++) {
            int from = order[i];
            if (from < 0 || from >= n || seen[from]) {
                throw new IllegalArgumentException("order[" + i + "]=" + from + " is not a permutation of 0.." + (n - 1));
            }
            seen[from] = true;
            moved[i] = seqs[from];
            for (int e = 0; e < rowElements; e++) {
                q2.set(i * rowElements + e, q.get(from * rowElements + e));
            }
        }
        DecodeBatch b = cache.batch(moved);
        return new DecodeWorkload(cache, spec, moved, batch.windowed() ? b.window(batch.window()) : b, q2);
    }

    /** This workload with attention sinks ({@link AttentionSpec#withSinks}): its reference and its spec's backends add them. */
    public DecodeWorkload withSinks(AttentionSinks sinks) {
        return new DecodeWorkload(cache, spec.withSinks(sinks), seqs, batch, q);
    }

    /**
     * This workload with logit soft-capping at {@code softCap} ({@link AttentionSpec#withSoftCap}; 0: none): its reference
     * and its spec's backends cap every score. Scores of random inputs lie near 0, where a cap of a few or more changes
     * them by little (tests that need the cap to matter scale their queries up).
     */
    public DecodeWorkload withSoftCap(float softCap) {
        return new DecodeWorkload(cache, spec.withSoftCap(softCap), seqs, batch, q);
    }

    /** This workload with ALiBi ({@link AttentionSpec#withAlibi}): its reference and its spec's backends add the biases. */
    public DecodeWorkload withAlibi(AlibiSlopes alibi) {
        return new DecodeWorkload(cache, spec.withAlibi(alibi), seqs, batch, q);
    }

    /**
     * Random sinks for checks: every query head of {@code numLayers} layers ({@code everyNth} > 1: only layers {@code 0,
     * N, 2N, ...}, the rest none), each uniform in [0, 5). Scores of random inputs lie near 0, so a sink takes most of a
     * short context's weight and about 1 / (1 + L) or more of a context of L tokens.
     */
    public static AttentionSinks randomSinks(int numLayers, int numQHeads, int everyNth, long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0x51A4L);
        float[][] rows = new float[numLayers][];
        for (int layer = 0; layer < numLayers; layer += Math.max(1, everyNth)) {
            rows[layer] = new float[numQHeads];
            for (int h = 0; h < numQHeads; h++) {
                rows[layer][h] = (float) (r.nextDouble() * 5);
            }
        }
        return AttentionSinks.of(rows);
    }

    /**
     * What a workload of some shape allocates, in bytes: native memory (the K and V pools, q and
     * the output) and Java heap (sequences, page tables, block tables, the block pool and the
     * fp64 reference's output and scratch). An estimate good to a few percent, for refusing shapes
     * that cannot fit before allocating anything.
     */
    public record Footprint(long numBlocks, long queryElements, long nativeBytes, long heapBytes) {
    }

    /**
     * Checks the shape's sizes (all in long) and returns its footprint; the messages name the
     * value that does not fit.
     */
    public static Footprint footprint(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize, KvDtype dtype) {
        return footprint(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, 0);
    }

    /** Same, with the cache sized to {@code kvMemoryBytes} ({@link KvCacheConfig#forMemory}); 0: as small as the batch allows. */
    public static Footprint footprint(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize, KvDtype dtype,
                                      long kvMemoryBytes) {
        return footprint(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, kvMemoryBytes, 1);
    }

    /** Same, {@code numLayers} layers. */
    public static Footprint footprint(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize, KvDtype dtype,
                                      long kvMemoryBytes, int numLayers) {
        return footprint(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, kvMemoryBytes, numLayers, 0);
    }

    /** Same, with blocks for every sequence to append {@code spareTokensPerSeq} more tokens (decode steps). */
    public static Footprint footprint(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize, KvDtype dtype,
                                      long kvMemoryBytes, int numLayers, int spareTokensPerSeq) {
        if (spareTokensPerSeq < 0) {
            throw new IllegalArgumentException("spareTokensPerSeq=" + spareTokensPerSeq + " must be >= 0");
        }
        long blocks = 0;
        int maxLen = 0;
        for (int len : lengths) {
            if (len < 1) {
                throw new IllegalArgumentException("context=" + len + " must be >= 1");
            }
            blocks += (len + (long) spareTokensPerSeq + blockSize - 1) / blockSize;
            maxLen = Math.max(maxLen, len);
        }
        return footprint(lengths.length, blocks, maxLen, numQHeads, numKvHeads, headDim, blockSize, dtype, kvMemoryBytes, numLayers);
    }

    /**
     * The footprint of {@code numSeqs} sequences taking {@code numBlocks} blocks in all, the
     * longest {@code maxLen} tokens: callers check a shape before making its length array.
     */
    public static Footprint footprint(long numSeqs, long numBlocks, int maxLen, int numQHeads, int numKvHeads, int headDim,
                                      int blockSize, KvDtype dtype, long kvMemoryBytes, int numLayers) {
        if (numLayers < 1) {
            throw new IllegalArgumentException("layers=" + numLayers + " must be >= 1");
        }
        if (numSeqs < 1) {
            throw new IllegalArgumentException("batch=" + numSeqs + " must be >= 1");
        }
        if (numSeqs > KvCacheConfig.MAX_POOL_ELEMENTS) {
            throw new IllegalArgumentException("batch=" + numSeqs + " sequences exceed one int-indexed array");
        }
        long maxBlocks = KvCacheConfig.maxBlocks(blockSize, numKvHeads, headDim);
        if (numBlocks > maxBlocks) {
            throw new IllegalArgumentException("batch=" + numSeqs + " context up to " + maxLen + " needs " + numBlocks
                    + " blocks of " + blockSize + " tokens x " + numKvHeads + " KV heads x " + headDim + " dims, but one layer's pool holds"
                    + " at most " + maxBlocks + " blocks (split into one array per KV head, each at most "
                    + KvCacheConfig.MAX_POOL_ELEMENTS + " elements: TornadoVM arrays are int-indexed)");
        }
        long poolBlocks = numBlocks + spareBlocks(numSeqs, numBlocks, maxBlocks);
        if (kvMemoryBytes > 0) {
            poolBlocks = KvCacheConfig.forMemory(kvMemoryBytes, blockSize, numKvHeads, headDim, numLayers, dtype).numBlocks();
            if (poolBlocks < numBlocks) {
                throw new IllegalArgumentException("kvMemory=" + kvMemoryBytes + " bytes hold " + poolBlocks + " blocks but batch="
                        + numSeqs + " context up to " + maxLen + " needs " + numBlocks);
            }
        }
        long queryElements = numSeqs * numQHeads * headDim;
        if (queryElements > KvCacheConfig.MAX_POOL_ELEMENTS) {
            throw new IllegalArgumentException("batch=" + numSeqs + " x q-heads=" + numQHeads + " x head-dim=" + headDim + " = "
                    + queryElements + " query elements, above the " + KvCacheConfig.MAX_POOL_ELEMENTS + " one FloatArray holds");
        }
        long pools = 2L * numLayers * poolBlocks * blockSize * numKvHeads * headDim * dtype.bytes();
        long nativeBytes = pools + 2 * queryElements * Float.BYTES;
        int threads = Runtime.getRuntime().availableProcessors();
        long heapBytes = numSeqs * 160L                  // page table, map entry, ids, lengths
                + poolBlocks * (17L + 12L)               // block pool arrays; table entries in page tables and the batch
                + queryElements * Double.BYTES           // the fp64 reference's output
                + threads * (long) maxLen * (2L * headDim + 1) * Double.BYTES; // the reference's per-sequence K, V and scores
        return new Footprint(poolBlocks, queryElements, nativeBytes, heapBytes);
    }

    /**
     * Builds the workload (the fill is parallel: gigabyte caches take seconds).
     *
     * @param lengths context length per sequence, each >= 1
     */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed) {
        return create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, 0);
    }

    /** Same, with the cache sized to {@code kvMemoryBytes} of K/V (0: the batch plus a few spare blocks per sequence). */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed, long kvMemoryBytes) {
        return create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, kvMemoryBytes, 1);
    }

    /** Same, {@code numLayers} layers (each its own K and V pool, all filled with random K/V). */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed, long kvMemoryBytes, int numLayers) {
        return create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, kvMemoryBytes, numLayers, 0);
    }

    /** Same, with room for every sequence to append {@code spareTokensPerSeq} more tokens (decode steps), guaranteed. */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed, long kvMemoryBytes, int numLayers, int spareTokensPerSeq) {
        return create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, kvMemoryBytes, numLayers, spareTokensPerSeq, null);
    }

    /** Same, with the scales of an 8-bit cache (null: the cache's default, every scale 1.0). */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed, long kvMemoryBytes, int numLayers, int spareTokensPerSeq,
                                        dev.pagedattn.quant.KvScales scales) {
        return create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, kvMemoryBytes, numLayers, spareTokensPerSeq,
                scales, KvCacheConfig.MAX_POOL_ELEMENTS);
    }

    /**
     * Same, with native arrays of at most {@code maxPoolElements} elements: a smaller value splits
     * each layer into KV-head shards ({@link KvCacheConfig#poolShards()}) as a huge cache is split.
     */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed, long kvMemoryBytes, int numLayers, int spareTokensPerSeq,
                                        dev.pagedattn.quant.KvScales scales, int maxPoolElements) {
        return create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, kvMemoryBytes, numLayers, spareTokensPerSeq,
                scales, maxPoolElements, 0);
    }

    /**
     * Same, a latent cache ({@link KvCacheConfig#latent}: one KV head of {@code headDim}, the values its first
     * {@code latentDim} elements) where {@code latentDim > 0}.
     */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed, long kvMemoryBytes, int numLayers, int spareTokensPerSeq,
                                        dev.pagedattn.quant.KvScales scales, int maxPoolElements, int latentDim) {
        Footprint size = footprint(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, kvMemoryBytes, numLayers,
                spareTokensPerSeq);
        KvCacheConfig config = new KvCacheConfig((int) size.numBlocks(), blockSize, numKvHeads, headDim, dtype, numLayers,
                maxPoolElements, latentDim);
        AttentionSpec spec = AttentionSpec.of(config, numQHeads);
        KvCache cache = new KvCache(config, scales);
        RandomKv.shuffleFreeBlocks(cache, seed);
        int[] seqs = new int[lengths.length];
        try {
            for (int i = 0; i < lengths.length; i++) {
                seqs[i] = cache.createSequence();
                cache.append(seqs[i], lengths[i]);
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError("a pool sized for the workload ran out", e);
        }
        return filled(cache, spec, seqs, size, seed);
    }

    /** Random K/V straight into the pools (parallel: every slot of every sequence gets a value) and random queries. */
    private static DecodeWorkload filled(KvCache cache, AttentionSpec spec, int[] seqs, Footprint size, long seed) {
        RandomKv.fillUniform(cache, seed);
        SplittableRandom random = new SplittableRandom(seed);
        FloatArray q = NativeArrays.floats(size.queryElements());
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        return new DecodeWorkload(cache, spec, seqs, q);
    }

    /**
     * A workload whose sequences share prompts: consecutive runs of {@code sharers} sequences (the last run may be shorter)
     * are one sequence of {@code prefix} tokens and its forks ({@link KvCache#fork}), each then grown to its own length
     * ({@code lengths[i] >= prefix}), so that a run's first {@code prefix} tokens lie in the same physical blocks (a
     * partial last block of the prompt is copied on the first append, as in an engine). Parallel sampling, beams, or
     * requests with one system prompt; what cascade attention reads once ({@link JvmDecodeAttention#setCascade}). The
     * random K/V and queries are drawn as in {@link #create}.
     */
    public static DecodeWorkload sharedPrefix(int[] lengths, int sharers, int prefix, int numQHeads, int numKvHeads, int headDim,
                                              int blockSize, KvDtype dtype, long seed) {
        return sharedPrefix(lengths, sharers, prefix, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, null);
    }

    /** Same, with the scales of an 8-bit cache (null: the cache's default, every scale 1.0). */
    public static DecodeWorkload sharedPrefix(int[] lengths, int sharers, int prefix, int numQHeads, int numKvHeads, int headDim,
                                              int blockSize, KvDtype dtype, long seed, dev.pagedattn.quant.KvScales scales) {
        if (sharers < 1) {
            throw new IllegalArgumentException("sharers=" + sharers + " must be >= 1");
        }
        if (prefix < 1) {
            throw new IllegalArgumentException("prefix=" + prefix + " must be >= 1");
        }
        for (int len : lengths) {
            if (len < prefix) {
                throw new IllegalArgumentException("context=" + len + " is shorter than the shared prefix=" + prefix);
            }
        }
        // as many blocks as unshared sequences of these lengths: more than the shared ones take
        Footprint size = footprint(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype);
        KvCacheConfig config = KvCacheConfig.of((int) size.numBlocks(), blockSize, numKvHeads, headDim, dtype);
        AttentionSpec spec = AttentionSpec.of(config, numQHeads);
        KvCache cache = new KvCache(config, scales);
        RandomKv.shuffleFreeBlocks(cache, seed);
        int[] seqs = new int[lengths.length];
        try {
            for (int i = 0; i < lengths.length; i += sharers) {
                seqs[i] = cache.createSequence();
                cache.append(seqs[i], prefix);
                for (int j = i + 1; j < Math.min(lengths.length, i + sharers); j++) {
                    seqs[j] = cache.fork(seqs[i]);
                }
            }
            for (int i = 0; i < lengths.length; i++) {
                cache.append(seqs[i], lengths[i] - prefix);
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError("a pool sized for the workload ran out", e);
        }
        return filled(cache, spec, seqs, size, seed);
    }

    /** Spare blocks so that later decode steps can append tokens: 4 per sequence, as far as the pool allows. */
    private static long spareBlocks(long numSeqs, long blocks, long maxBlocks) {
        return Math.max(0, Math.min(4L * numSeqs, maxBlocks - blocks));
    }

    /** Uniform lengths in {@code [min, max]} for {@code batch} sequences. */
    public static int[] lengths(int batch, int min, int max, long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0x1E57L);
        int[] out = new int[batch];
        for (int i = 0; i < batch; i++) {
            out[i] = min == max ? min : min + r.nextInt(max - min + 1);
        }
        return out;
    }

    public KvCache cache() {
        return cache;
    }

    public AttentionSpec spec() {
        return spec;
    }

    public int[] seqs() {
        return seqs.clone();
    }

    public DecodeBatch batch() {
        return batch;
    }

    public FloatArray q() {
        return q;
    }

    /** A fresh output array poisoned with NaN, so unwritten elements fail every check. */
    public FloatArray poisonedOutput() {
        FloatArray out = NativeArrays.floats(spec.outputElements(seqs.length));
        out.init(Float.NaN);
        return out;
    }

    /** The fp64 reference for this workload, layer 0. */
    public double[] reference() {
        if (batch.selected()) {
            int[][] blocks = new int[seqs.length][];
            for (int i = 0; i < seqs.length; i++) {
                blocks[i] = batch.selectedBlocks(i);
            }
            return ReferenceAttention.decodeSelected(cache, spec, 0, seqs, q, blocks);
        }
        return ReferenceAttention.decode(cache, spec, 0, seqs, q, batch.window(), n -> { });
    }

    /**
     * Minimum bytes a decode must move (benchmarks/README.md): K and V once (with a sliding window, of the tokens it
     * sees), q in and out at 2 bytes, block tables and lengths.
     */
    public long minimumBytes() {
        return minimumBytes(batch);
    }

    /** Minimum bytes for {@code batch} over this workload's cache (after appends, say). */
    public long minimumBytes(DecodeBatch batch) {
        // a latent cache reads its one pool (the values are inside the keys); q in and out at 2 B an element, out valueDim wide
        long kv = batch.visibleTokens() * cache.config().poolsPerLayer() * spec.numKvHeads() * spec.headDim()
                * cache.config().dtype().bytes();
        long qo = (long) batch.numSeqs() * spec.numQHeads() * (spec.headDim() + spec.valueDim()) * 2;
        long tables = 0;
        for (int i = 0; i < batch.numSeqs(); i++) {
            int first = batch.firstVisible(i);  // a windowed step needs the table entries from its first visible block on
            tables += 4L * (cache.config().blocksFor(batch.contextLen(i)) - first / cache.config().blockSize());
        }
        return kv + qo + tables + 4L * batch.numSeqs();
    }
}
