package dev.pagedattn.attention;

import dev.pagedattn.cache.KvCacheConfig;

/**
 * Head layout and scale of a decode attention. Query head {@code h} reads KV head
 * {@code h / groupSize()} (consecutive grouping, as in Hugging Face and vLLM): MHA when
 * {@code numQHeads == numKvHeads}, MQA when {@code numKvHeads == 1}, GQA in between.
 *
 * @param numQHeads  query heads, a multiple of {@code numKvHeads}
 * @param numKvHeads KV heads
 * @param headDim    a multiple of 8 in [8, 256]
 * @param scale      softmax scale, finite and > 0 ({@code 1/sqrt(headDim)} by default)
 * @param sinks      per-layer attention sinks ({@link AttentionSinks}; {@link AttentionSinks#NONE} by default)
 */
public record AttentionSpec(int numQHeads, int numKvHeads, int headDim, float scale, AttentionSinks sinks) {
    public static final int MAX_HEAD_DIM = 256;

    /** A spec without sinks. */
    public AttentionSpec(int numQHeads, int numKvHeads, int headDim, float scale) {
        this(numQHeads, numKvHeads, headDim, scale, AttentionSinks.NONE);
    }

    public AttentionSpec {
        if (numKvHeads < 1) {
            throw new IllegalArgumentException("numKvHeads=" + numKvHeads + " must be >= 1");
        }
        if (numQHeads < 1 || numQHeads % numKvHeads != 0) {
            throw new IllegalArgumentException("numQHeads=" + numQHeads + " must be a positive multiple of numKvHeads=" + numKvHeads);
        }
        if (headDim < 8 || headDim > MAX_HEAD_DIM || headDim % 8 != 0) {
            throw new IllegalArgumentException("headDim=" + headDim + " must be a multiple of 8 in [8, " + MAX_HEAD_DIM + "]");
        }
        if (!(scale > 0) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException("scale=" + scale + " must be finite and > 0");
        }
        if (sinks == null) {
            throw new IllegalArgumentException("sinks=null (use AttentionSinks.NONE)");
        }
        sinks.requireFits(numQHeads, -1);
    }

    /** This spec with {@code sinks} (gpt-oss's per-head sink logits; {@link AttentionSinks}). */
    public AttentionSpec withSinks(AttentionSinks sinks) {
        return new AttentionSpec(numQHeads, numKvHeads, headDim, scale, sinks);
    }

    /** Whether {@code layer} has sinks. */
    public boolean hasSinks(int layer) {
        return sinks.has(layer);
    }

    /** The spec for a cache with the default scale {@code 1/sqrt(headDim)}. */
    public static AttentionSpec of(KvCacheConfig config, int numQHeads) {
        return new AttentionSpec(numQHeads, config.numKvHeads(), config.headDim(), (float) (1.0 / Math.sqrt(config.headDim())));
    }

    /**
     * The spec one of {@code shards} KV-head shards of a layer sees
     * ({@link KvCacheConfig#poolShards()}): {@code numKvHeads / shards} KV heads and their query
     * heads; this spec itself for one shard. A shard's spec (of more than one) carries no sinks: the backend that
     * shards a layer gives each shard its query heads' sinks itself.
     */
    public AttentionSpec shard(int shards) {
        if (shards < 1 || numKvHeads % shards != 0) {
            throw new IllegalArgumentException("shards=" + shards + " does not divide numKvHeads=" + numKvHeads);
        }
        return shards == 1 ? this : new AttentionSpec(numQHeads / shards, numKvHeads / shards, headDim, scale);
    }

    /** Query heads per KV head. */
    public int groupSize() {
        return numQHeads / numKvHeads;
    }

    /** Elements of q (and of the output) for {@code numSeqs} sequences. */
    public long queryElements(int numSeqs) {
        return (long) numSeqs * numQHeads * headDim;
    }

    /** Checks that this spec fits the cache it will read. */
    public void requireMatches(KvCacheConfig config) {
        if (config.numKvHeads() != numKvHeads || config.headDim() != headDim) {
            throw new IllegalArgumentException("spec numKvHeads=" + numKvHeads + " headDim=" + headDim
                    + " does not match the cache's numKvHeads=" + config.numKvHeads() + " headDim=" + config.headDim());
        }
        sinks.requireFits(numQHeads, config.numLayers());
    }
}
