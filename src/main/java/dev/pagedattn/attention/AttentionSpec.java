package dev.pagedattn.attention;

import dev.pagedattn.cache.KvCacheConfig;

/**
 * Head layout and scale of a decode attention. Query head {@code h} reads KV head
 * {@code h / groupSize()} (consecutive grouping, as in Hugging Face and vLLM): MHA when
 * {@code numQHeads == numKvHeads}, MQA when {@code numKvHeads == 1}, GQA in between.
 *
 * @param numQHeads  query heads, a multiple of {@code numKvHeads}
 * @param numKvHeads KV heads
 * @param headDim    a multiple of 8 in [8, 1024] (the TornadoVM backends: at most 256)
 * @param scale      softmax scale, finite and > 0 ({@code 1/sqrt(headDim)} by default)
 * @param sinks      per-layer attention sinks ({@link AttentionSinks}; {@link AttentionSinks#NONE} by default)
 * @param softCap    logit soft-capping (Gemma 2's {@code attn_logit_softcapping}, FlashInfer's {@code
 *                   logits_soft_cap}): every score {@code s = scale * q.k} becomes {@code softCap * tanh(s / softCap)}
 *                   before the softmax (a sink is not capped); 0 = none (the default), else finite and > 0
 * @param alibi      ALiBi slopes ({@link AlibiSlopes}; {@link AlibiSlopes#NONE} by default): query head {@code h} at
 *                   position {@code i} adds {@code slope_h * (j - i)} to its (capped) score of position {@code j}
 * @param valueDim   elements of a value vector and of an output row per head: {@code headDim}, or a latent cache's
 *                   {@code latentDim} ({@link KvCacheConfig#latent}: the values are the keys' first {@code valueDim}
 *                   elements)
 */
public record AttentionSpec(int numQHeads, int numKvHeads, int headDim, float scale, AttentionSinks sinks, float softCap,
                            AlibiSlopes alibi, int valueDim) {
    /**
     * The largest head dim of a spec, on the JVM backend; the TornadoVM backends take up to 256, and a latent cache's up to
     * 576 (DeepSeek's latent 512 + rotary 64).
     */
    public static final int MAX_HEAD_DIM = 1024;

    /** A spec whose values are as wide as its keys. */
    public AttentionSpec(int numQHeads, int numKvHeads, int headDim, float scale, AttentionSinks sinks, float softCap,
                         AlibiSlopes alibi) {
        this(numQHeads, numKvHeads, headDim, scale, sinks, softCap, alibi, headDim);
    }

    /** A spec without sinks or soft-capping. */
    public AttentionSpec(int numQHeads, int numKvHeads, int headDim, float scale) {
        this(numQHeads, numKvHeads, headDim, scale, AttentionSinks.NONE, 0f, AlibiSlopes.NONE);
    }

    /** A spec without soft-capping. */
    public AttentionSpec(int numQHeads, int numKvHeads, int headDim, float scale, AttentionSinks sinks) {
        this(numQHeads, numKvHeads, headDim, scale, sinks, 0f, AlibiSlopes.NONE);
    }

    /** A spec without ALiBi. */
    public AttentionSpec(int numQHeads, int numKvHeads, int headDim, float scale, AttentionSinks sinks, float softCap) {
        this(numQHeads, numKvHeads, headDim, scale, sinks, softCap, AlibiSlopes.NONE);
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
        if (softCap != 0f && !(softCap > 0 && Float.isFinite(softCap))) {
            throw new IllegalArgumentException("softCap=" + softCap + " must be 0 (none) or finite and > 0");
        }
        if (alibi == null) {
            throw new IllegalArgumentException("alibi=null (use AlibiSlopes.NONE)");
        }
        alibi.requireFits(numQHeads);
        if (valueDim < 1 || valueDim > headDim) {
            throw new IllegalArgumentException("valueDim=" + valueDim + " is outside [1, headDim=" + headDim + "]");
        }
    }

    /** This spec with {@code sinks} (gpt-oss's per-head sink logits; {@link AttentionSinks}). */
    public AttentionSpec withSinks(AttentionSinks sinks) {
        return new AttentionSpec(numQHeads, numKvHeads, headDim, scale, sinks, softCap, alibi, valueDim);
    }

    /** This spec with softmax scale {@code scale} (MLA's is {@code 1/sqrt(qk_nope_head_dim + qk_rope_head_dim)}, not the latent width's). */
    public AttentionSpec withScale(float scale) {
        return new AttentionSpec(numQHeads, numKvHeads, headDim, scale, sinks, softCap, alibi, valueDim);
    }

    /**
     * This spec with ALiBi ({@link AlibiSlopes}; {@link AlibiSlopes#standard} for the paper's slopes, {@link
     * AlibiSlopes#NONE} to turn it off), in every backend, decode and prefill.
     */
    public AttentionSpec withAlibi(AlibiSlopes alibi) {
        return new AttentionSpec(numQHeads, numKvHeads, headDim, scale, sinks, softCap, alibi, valueDim);
    }

    /** Whether scores get ALiBi biases. */
    public boolean hasAlibi() {
        return alibi.any();
    }

    /**
     * This spec with logit soft-capping at {@code softCap} (Gemma 2 uses 50 in every layer; 0 turns it off): every score
     * {@code s} becomes {@code softCap * tanh(s / softCap)}, in every backend, decode and prefill.
     */
    public AttentionSpec withSoftCap(float softCap) {
        return new AttentionSpec(numQHeads, numKvHeads, headDim, scale, sinks, softCap, alibi, valueDim);
    }

    /** Whether scores are soft-capped ({@link #softCap()} > 0). */
    public boolean hasSoftCap() {
        return softCap > 0;
    }

    /** Whether {@code layer} has sinks. */
    public boolean hasSinks(int layer) {
        return sinks.has(layer);
    }

    /**
     * This spec for a cache that holds only the model's {@code layers} (a group of {@code HybridKvCache}, whose layer
     * {@code i} is {@code layers[i]}): the sinks of those layers; everything else as it is.
     */
    public AttentionSpec forLayers(int[] layers) {
        if (layers == null || layers.length == 0) {
            throw new IllegalArgumentException("layers=" + (layers == null ? "null" : "[]") + ": need at least one layer");
        }
        return withSinks(sinks.layers(layers));
    }

    /**
     * The spec for a cache with the default scale {@code 1/sqrt(headDim)} and the cache's value width (a latent cache's
     * {@code latentDim}; give MLA its own scale with {@link #withScale}).
     */
    public static AttentionSpec of(KvCacheConfig config, int numQHeads) {
        return new AttentionSpec(numQHeads, config.numKvHeads(), config.headDim(), (float) (1.0 / Math.sqrt(config.headDim())),
                AttentionSinks.NONE, 0f, AlibiSlopes.NONE, config.valueDim());
    }

    /**
     * The spec one of {@code shards} KV-head shards of a layer sees
     * ({@link KvCacheConfig#poolShards()}): {@code numKvHeads / shards} KV heads and their query
     * heads; this spec itself for one shard. A shard's spec (of more than one) carries no sinks and no ALiBi slopes: the
     * backend that shards a layer gives each shard its query heads' sinks and slopes itself. It keeps the soft cap (the
     * same for every head).
     */
    public AttentionSpec shard(int shards) {
        if (shards < 1 || numKvHeads % shards != 0) {
            throw new IllegalArgumentException("shards=" + shards + " does not divide numKvHeads=" + numKvHeads);
        }
        return shards == 1 ? this
                : new AttentionSpec(numQHeads / shards, numKvHeads / shards, headDim, scale, AttentionSinks.NONE, softCap,
                        AlibiSlopes.NONE, valueDim);
    }

    /** Query heads per KV head. */
    public int groupSize() {
        return numQHeads / numKvHeads;
    }

    /** Elements of q (and of the output, where {@code valueDim == headDim}) for {@code numSeqs} sequences. */
    public long queryElements(int numSeqs) {
        return (long) numSeqs * numQHeads * headDim;
    }

    /** Elements of the output for {@code numSeqs} sequences (or query tokens): {@code [numSeqs][numQHeads][valueDim]}. */
    public long outputElements(int numSeqs) {
        return (long) numSeqs * numQHeads * valueDim;
    }

    /** Checks that this spec fits the cache it will read. */
    public void requireMatches(KvCacheConfig config) {
        if (config.numKvHeads() != numKvHeads || config.headDim() != headDim) {
            throw new IllegalArgumentException("spec numKvHeads=" + numKvHeads + " headDim=" + headDim
                    + " does not match the cache's numKvHeads=" + config.numKvHeads() + " headDim=" + config.headDim());
        }
        if (config.valueDim() != valueDim) {
            throw new IllegalArgumentException("spec valueDim=" + valueDim + " does not match the cache's valueDim="
                    + config.valueDim() + (config.isLatent() ? " (its latentDim)" : " (its headDim)")
                    + ": take the spec from AttentionSpec.of(config, numQHeads)");
        }
        sinks.requireFits(numQHeads, config.numLayers());
    }
}
