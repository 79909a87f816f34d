package dev.pagedattn.cli;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.quant.KvScaleMode;
import dev.pagedattn.quant.KvScales;
import java.util.Arrays;
import picocli.CommandLine.Option;

/** The decode shape flags shared by {@code check} and {@code bench}. */
final class ShapeOptions {
    @Option(names = "--batch", description = "Sequences in the batch (default: ${DEFAULT-VALUE}).", defaultValue = "4")
    int batch;

    @Option(names = "--context", description = "Context length, one value or MIN..MAX for ragged uniform lengths (default: ${DEFAULT-VALUE}).",
            defaultValue = "1024")
    String context;

    @Option(names = "--q-heads", description = "Query heads (default: ${DEFAULT-VALUE}).", defaultValue = "32")
    int qHeads;

    @Option(names = "--kv-heads", description = "KV heads (default: ${DEFAULT-VALUE}).", defaultValue = "8")
    int kvHeads;

    @Option(names = "--head-dim", description = "Head dimension, a multiple of 8 up to 256 (up to 1024 on the JVM backend, 576 for a"
            + " --latent-dim cache on the tornado backend;"
            + " default: ${DEFAULT-VALUE}).", defaultValue = "128")
    int headDim;

    @Option(names = "--latent-dim", description = "Multi-head latent attention (DeepSeek's MLA): a latent cache of one --head-dim"
            + " vector per token (its compressed KV, then its rotary key: 576 = 512 + 64 there) whose first N elements are the"
            + " values, so outputs are N wide; needs --kv-heads 1; the JVM backend (default: none, a K and a V pool).",
            defaultValue = "0")
    int latentDim;

    @Option(names = "--block-size", description = "Tokens per KV block (default: ${DEFAULT-VALUE}).", defaultValue = "16")
    int blockSize;

    @Option(names = "--dtype", description = "KV dtype: fp16, bf16 (the JVM backend and TornadoVM's CUDA backend), fp32, fp8 (E4M3), fp8-e5m2 or int8 (8-bit: every backend;"
            + " default: ${DEFAULT-VALUE}).", defaultValue = "fp16")
    String dtype;

    @Option(names = "--kv-scale", description = "Scales of 8-bit K/V: per-tensor (one K and one V scale per layer) or per-head"
            + " (default: per-tensor).")
    String kvScale;

    @Option(names = "--seed", description = "Random seed (default: from the clock; always printed).")
    Long seed;

    @Option(names = "--kv-memory", description = "Size the KV cache to this many bytes of K and V (such as 100GB or 512MiB;"
            + " default: the batch plus 4 spare blocks per sequence).")
    String kvMemory;

    @Option(names = "--layers", description = "Layers in the cache, each with its own K and V pool; check decodes every"
            + " layer (default: ${DEFAULT-VALUE}).", defaultValue = "1")
    int layers;

    @Option(names = "--max-array-elements", description = "Most elements in one native pool array; a layer larger than this"
            + " is split by KV head into several (default: ${DEFAULT-VALUE}, what TornadoVM's int-indexed arrays hold;"
            + " smaller values exercise the split on small shapes).", defaultValue = "" + KvCacheConfig.MAX_POOL_ELEMENTS)
    int maxArrayElements;

    /** --max-array-elements, checked: 1 .. {@link KvCacheConfig#MAX_POOL_ELEMENTS}. */
    int maxArrayElements() {
        if (maxArrayElements < 1 || maxArrayElements > KvCacheConfig.MAX_POOL_ELEMENTS) {
            throw new IllegalArgumentException("--max-array-elements=" + maxArrayElements + " is outside [1, "
                    + KvCacheConfig.MAX_POOL_ELEMENTS + "]");
        }
        return maxArrayElements;
    }

    /** " shards=N (H KV heads per array)" for a cache whose layers are split, else "". */
    static String shards(dev.pagedattn.cache.KvCache cache) {
        KvCacheConfig c = cache.config();
        return c.poolShards() == 1 ? "" : " shards=" + c.poolShards() + " (" + c.headsPerShard() + (c.headsPerShard() == 1 ? " KV head" : " KV heads") + " per array)";
    }

    /** Bytes from --kv-memory, 0 when not given. */
    long kvMemoryBytes() {
        return kvMemory == null ? 0 : ByteSize.parse("--kv-memory", kvMemory);
    }

    /**
     * Refuses, before anything is allocated, a shape whose sizes overflow the arrays or need more
     * memory than the JVM has; the message names the flags.
     */
    void requireFits() {
        int[] range = contextRange();
        long blocksPerSeq = (range[1] + (long) blockSize - 1) / blockSize; // the longest: ragged batches need less
        DecodeWorkload.Footprint need;
        try {
            need = DecodeWorkload.footprint(batch, batch * blocksPerSeq, range[1], qHeads, kvHeads, headDim, blockSize, kvDtype(),
                    kvMemoryBytes(), layers);
            // the cache's own shape rule (KV-head shards under --max-array-elements), before anything is allocated
            new KvCacheConfig((int) need.numBlocks(), blockSize, kvHeads, headDim, kvDtype(), layers, maxArrayElements(), latentDim);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(flags() + ": " + e.getMessage());
        }
        MemoryCheck.require(flags(), need);
    }

    private String flags() {
        return "--batch=" + batch + " --context=" + context + " --q-heads=" + qHeads + " --kv-heads=" + kvHeads + " --head-dim="
                + headDim + " --block-size=" + blockSize + " --dtype=" + dtype + (kvScale == null ? "" : " --kv-scale=" + kvScale) + (kvMemory == null ? "" : " --kv-memory=" + kvMemory)
                + (layers == 1 ? "" : " --layers=" + layers) + (latentDim == 0 ? "" : " --latent-dim=" + latentDim)
                + (maxArrayElements == KvCacheConfig.MAX_POOL_ELEMENTS ? "" : " --max-array-elements=" + maxArrayElements);
    }

    long seed() {
        if (seed == null) {
            seed = System.nanoTime();
        }
        return seed;
    }

    KvDtype kvDtype() {
        return KvDtype.parse(dtype);
    }

    /** The 8-bit scales for --dtype/--kv-scale (null for fp16/fp32); see {@link #syntheticScales}. */
    KvScales kvScales() {
        return syntheticScales(kvDtype(), kvScale, layers, kvHeads);
    }

    /**
     * Scales for the CLI's synthetic K/V, which are uniform in [-1, 1): absmax 1 over the format's
     * largest finite value for every layer (per-tensor) or every layer and head (per-head), so
     * nothing saturates. Null for fp16/fp32, which refuse a --kv-scale.
     */
    static KvScales syntheticScales(KvDtype dtype, String kvScale, int layers, int kvHeads) {
        KvScaleMode mode = kvScale == null ? KvScaleMode.PER_TENSOR : parseMode(kvScale);
        if (!dtype.isQuantized()) {
            if (kvScale != null) {
                throw new IllegalArgumentException("--kv-scale=" + kvScale + " applies to 8-bit dtypes only (--dtype fp8, fp8-e5m2 or int8)");
            }
            return null;
        }
        float s = KvScales.fromAbsMax(dtype.format(), 1f);
        if (mode == KvScaleMode.PER_TENSOR) {
            float[] k = new float[layers];
            Arrays.fill(k, s);
            return KvScales.perTensor(dtype.format(), kvHeads, k, k.clone());
        }
        float[][] k = new float[layers][kvHeads];
        for (float[] row : k) {
            Arrays.fill(row, s);
        }
        return KvScales.perHead(dtype.format(), k, k.clone());
    }

    private static KvScaleMode parseMode(String kvScale) {
        try {
            return KvScaleMode.parse(kvScale);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--kv-scale=" + kvScale + " is not supported (use per-tensor or per-head)");
        }
    }

    /** Per-sequence lengths from --batch and --context; messages name the bad flag value. */
    int[] lengths() {
        int[] range = contextRange();
        return DecodeWorkload.lengths(batch, range[0], range[1], seed());
    }

    /** {MIN, MAX} of --context; checks --batch too. */
    private int[] contextRange() {
        if (batch < 1) {
            throw new IllegalArgumentException("--batch=" + batch + " must be >= 1");
        }
        return LengthRange.parse("--context", context);
    }

    /** Validates the head flags early so that the message names the flag. */
    void validateHeads() {
        if (kvHeads < 1) {
            throw new IllegalArgumentException("--kv-heads=" + kvHeads + " must be >= 1");
        }
        if (qHeads < 1 || qHeads % kvHeads != 0) {
            throw new IllegalArgumentException("--q-heads=" + qHeads + " must be a positive multiple of --kv-heads=" + kvHeads);
        }
        if (headDim < 8 || headDim > dev.pagedattn.attention.AttentionSpec.MAX_HEAD_DIM || headDim % 8 != 0) {
            throw new IllegalArgumentException("--head-dim=" + headDim + " must be a multiple of 8 in [8, "
                    + dev.pagedattn.attention.AttentionSpec.MAX_HEAD_DIM + "] (above 256: the JVM backend)");
        }
        if (latentDim < 0 || latentDim > headDim) {
            throw new IllegalArgumentException("--latent-dim=" + latentDim + " is outside [0, --head-dim=" + headDim + "]");
        }
        if (latentDim > 0 && kvHeads != 1) {
            throw new IllegalArgumentException("--latent-dim=" + latentDim + " caches one latent vector per token: it needs"
                    + " --kv-heads 1, not " + kvHeads);
        }
        if (blockSize < 1) {
            throw new IllegalArgumentException("--block-size=" + blockSize + " must be >= 1");
        }
    }

    String describe(int[] lengths) {
        long total = 0;
        for (int l : lengths) {
            total += l;
        }
        return String.format("batch=%d context=%s (%d tokens) q-heads=%d kv-heads=%d head-dim=%d block-size=%d dtype=%s seed=%d%s",
                batch, context, total, qHeads, kvHeads, headDim, blockSize, kvDtype().name().toLowerCase(), seed(),
                (layers == 1 ? "" : " layers=" + layers) + (latentDim == 0 ? "" : " latent-dim=" + latentDim)
                        + (kvDtype().isQuantized() ? " kv-scale=" + kvScales().mode().name().toLowerCase().replace('_', '-') : ""));
    }
}
