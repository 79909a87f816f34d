package dev.pagedattn.attention;

import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * A random prefill problem: the cache of a {@link DecodeWorkload} (context lengths include the new
 * tokens, whose K/V are already there), {@code qLen_i} new query tokens per sequence, an optional
 * window, and random packed queries. Used by the CLI's check and bench and by the tests.
 */
public final class PrefillWorkload {
    private final DecodeWorkload kv;
    private final PrefillBatch batch;
    private final FloatArray q; // [totalQueries][numQHeads][headDim]

    private PrefillWorkload(DecodeWorkload kv, PrefillBatch batch, FloatArray q) {
        this.kv = kv;
        this.batch = batch;
        this.q = q;
    }

    /**
     * @param lengths context length per sequence (cached prefix + new tokens)
     * @param qLens   new query tokens per sequence, each in [1, lengths[i]]
     * @param window  sliding window or {@link PrefillBatch#NO_WINDOW}
     */
    public static PrefillWorkload create(int[] lengths, int[] qLens, int window, int numQHeads, int numKvHeads, int headDim,
                                         int blockSize, dev.pagedattn.cache.KvDtype dtype, long seed) {
        return create(lengths, qLens, window, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, 0);
    }

    /** Same, with room in the pool for {@code spareTokensPerSeq} more tokens per sequence (later chunks). */
    public static PrefillWorkload create(int[] lengths, int[] qLens, int window, int numQHeads, int numKvHeads, int headDim,
                                         int blockSize, dev.pagedattn.cache.KvDtype dtype, long seed, int spareTokensPerSeq) {
        return create(lengths, qLens, window, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, spareTokensPerSeq, null);
    }

    /** Same, with the scales of an 8-bit cache (null: every scale 1.0). */
    public static PrefillWorkload create(int[] lengths, int[] qLens, int window, int numQHeads, int numKvHeads, int headDim,
                                         int blockSize, dev.pagedattn.cache.KvDtype dtype, long seed, int spareTokensPerSeq,
                                         dev.pagedattn.quant.KvScales scales) {
        return create(lengths, qLens, window, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, spareTokensPerSeq, scales,
                dev.pagedattn.cache.KvCacheConfig.MAX_POOL_ELEMENTS);
    }

    /** Same, with native arrays of at most {@code maxPoolElements} elements (smaller: a layer split into KV-head shards). */
    public static PrefillWorkload create(int[] lengths, int[] qLens, int window, int numQHeads, int numKvHeads, int headDim,
                                         int blockSize, dev.pagedattn.cache.KvDtype dtype, long seed, int spareTokensPerSeq,
                                         dev.pagedattn.quant.KvScales scales, int maxPoolElements) {
        return create(lengths, qLens, window, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, spareTokensPerSeq, scales,
                maxPoolElements, 0);
    }

    /** Same, over a latent cache ({@link DecodeWorkload#create}'s {@code latentDim}) where {@code latentDim > 0}. */
    public static PrefillWorkload create(int[] lengths, int[] qLens, int window, int numQHeads, int numKvHeads, int headDim,
                                         int blockSize, dev.pagedattn.cache.KvDtype dtype, long seed, int spareTokensPerSeq,
                                         dev.pagedattn.quant.KvScales scales, int maxPoolElements, int latentDim) {
        if (qLens.length != lengths.length) {
            throw new IllegalArgumentException("qLens.length=" + qLens.length + " does not match lengths.length=" + lengths.length);
        }
        for (int i = 0; i < lengths.length; i++) {
            if (qLens[i] > lengths[i]) { // checked before the (possibly large) cache is built
                throw new IllegalArgumentException("qLen[" + i + "]=" + qLens[i] + " exceeds contextLen[" + i + "]=" + lengths[i]);
            }
        }
        DecodeWorkload kv = DecodeWorkload.create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, 0L, 1, spareTokensPerSeq, scales,
                maxPoolElements, latentDim);
        PrefillBatch batch = PrefillBatch.of(kv.batch(), qLens, window);
        SplittableRandom random = new SplittableRandom(seed ^ 0x9F11L);
        FloatArray q = new FloatArray(batch.totalQueries() * numQHeads * headDim);
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        return new PrefillWorkload(kv, batch, q);
    }

    /** This workload with attention sinks ({@link AttentionSpec#withSinks}): its reference and its spec's backends add them. */
    public PrefillWorkload withSinks(AttentionSinks sinks) {
        return new PrefillWorkload(kv.withSinks(sinks), batch, q);
    }

    /** This workload with logit soft-capping ({@link DecodeWorkload#withSoftCap}): its reference and its spec's backends cap. */
    public PrefillWorkload withSoftCap(float softCap) {
        return new PrefillWorkload(kv.withSoftCap(softCap), batch, q);
    }

    /** This workload with ALiBi ({@link DecodeWorkload#withAlibi}). */
    public PrefillWorkload withAlibi(AlibiSlopes alibi) {
        return new PrefillWorkload(kv.withAlibi(alibi), batch, q);
    }

    /**
     * This workload after {@link dev.pagedattn.cache.KvCache#releaseBefore} at each sequence's first query's first visible
     * position (with a window, the blocks no query of the step sees go back to the pool), with a new batch of the same
     * query lengths and window and the free blocks poisoned ({@link DecodeWorkload#releasedOutsideWindow}'s NaN K/V).
     */
    public PrefillWorkload releasedOutsideWindow() {
        return releasedOutsideWindow(0);
    }

    /** Same, leaving {@code spareBlocks} allocatable for later chunks ({@link DecodeWorkload#releasedOutsideWindow(int)}). */
    public PrefillWorkload releasedOutsideWindow(int spareBlocks) {
        int[] seqs = kv.seqs();
        for (int i = 0; i < seqs.length; i++) {
            kv.cache().releaseBefore(seqs[i], batch.firstVisible(i, 0));
        }
        kv.poisonFreeBlocks(spareBlocks);
        return new PrefillWorkload(kv, PrefillBatch.ofIndptr(kv.cache().batch(seqs), batch.qIndptr(), batch.window())
                .withMasks(batch.masks()), q);
    }

    /** This workload's queries seeing their sequences' whole contexts ({@link PrefillBatch#nonCausal}). */
    public PrefillWorkload nonCausal() {
        int[] qLens = new int[batch.numSeqs()];
        for (int i = 0; i < qLens.length; i++) {
            qLens[i] = batch.qLen(i);
        }
        return new PrefillWorkload(kv, PrefillBatch.nonCausal(batch.kv(), qLens), q);
    }

    /**
     * This workload with random token trees ({@link TreeMask#fromParents}) over the new tokens of every sequence with
     * more than one, drawn from {@code seed}: each token's parent is one of the few tokens before it, so that trees are
     * deep and branch (token 0 is the root).
     */
    public PrefillWorkload withRandomTrees(long seed) {
        return withRandomMasks(new SplittableRandom(seed ^ 0x7EE5L), (n, random) -> {
            int[] parents = new int[n];
            parents[0] = -1;
            for (int j = 1; j < n; j++) {
                parents[j] = j - 1 - random.nextInt(Math.min(j, 4));
            }
            return TreeMask.fromParents(parents);
        });
    }

    /** This workload with {@code masks} ({@link PrefillBatch#withMasks}). */
    public PrefillWorkload withMasks(TreeMask... masks) {
        return new PrefillWorkload(kv, batch.withMasks(masks), q);
    }

    /**
     * This workload with random bidirectional spans ({@link TreeMask#bidirectional}, Gemma 3's image tokens) over each
     * sequence of more than one query token: one to three spans of 2..qLen tokens at random places, the first starting in
     * the first half and covering at least half the tokens, as the seed says.
     */
    public PrefillWorkload withRandomSpans(long seed) {
        return withRandomMasks(new SplittableRandom(seed ^ 0x5BA5L), (n, random) -> {
            java.util.List<Integer> spans = new java.util.ArrayList<>();
            int at = random.nextInt(Math.max(1, n / 2));
            for (int s = 0; s < 3 && at <= n - 2; s++) {
                // two tokens or more; the first at least half of them (so that the spans always change the result)
                int shortest = s == 0 ? Math.min(n - at, Math.max(2, n / 2)) : 2;
                int end = at + shortest + random.nextInt(n - at - shortest + 1);
                spans.add(at);
                spans.add(end);
                at = end + random.nextInt(Math.max(1, n / 2));
            }
            return TreeMask.bidirectional(n, spans.stream().mapToInt(Integer::intValue).toArray());
        });
    }

    /**
     * This workload with random custom masks ({@link TreeMask#custom}, FlashInfer's {@code custom_mask}) over each sequence
     * of more than one query token: every (row, token) pair visible with probability one half, the diagonal always.
     */
    public PrefillWorkload withRandomCustomMasks(long seed) {
        return withRandomMasks(new SplittableRandom(seed ^ 0xC057L), (n, random) -> {
            boolean[][] visible = new boolean[n][n];
            for (int j = 0; j < n; j++) {
                for (int k = 0; k < n; k++) {
                    visible[j][k] = j == k || random.nextBoolean();
                }
            }
            return TreeMask.custom(visible);
        });
    }

    /** A mask from {@code mask} (new tokens, random) for every sequence of more than one new token; the others causal. */
    private PrefillWorkload withRandomMasks(SplittableRandom random,
                                            java.util.function.BiFunction<Integer, SplittableRandom, TreeMask> mask) {
        TreeMask[] masks = new TreeMask[batch.numSeqs()];
        for (int i = 0; i < masks.length; i++) {
            if (batch.qLen(i) > 1) {
                masks[i] = mask.apply(batch.qLen(i), random);
            }
        }
        return withMasks(masks);
    }

    /** The cache, spec and sequences (its own decode query is unused here). */
    public DecodeWorkload kv() {
        return kv;
    }

    public AttentionSpec spec() {
        return kv.spec();
    }

    public PrefillBatch batch() {
        return batch;
    }

    public FloatArray q() {
        return q;
    }

    /** A fresh output array poisoned with NaN. */
    public FloatArray poisonedOutput() {
        FloatArray out = new FloatArray(Math.toIntExact(spec().outputElements(batch.totalQueries())));
        out.init(Float.NaN);
        return out;
    }

    /** The fp64 reference for this workload. */
    public double[] reference() {
        return ReferencePrefill.prefill(kv.cache(), spec(), 0, kv.seqs(), batch, q);
    }

    /** FLOPs of the step: QK^T and PV over every visible (query, key) pair, 2 each per head and dim. */
    public double flops() {
        return 4.0 * batch.attendedPairs() * spec().numQHeads() * spec().headDim();
    }
}
