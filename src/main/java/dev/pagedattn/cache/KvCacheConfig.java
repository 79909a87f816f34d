package dev.pagedattn.cache;

/**
 * Shape of a KV cache. Every field is validated; messages name the bad value.
 *
 * <p>Capacity rule: every layer has its own K pool and V pool holding {@code numBlocks * blockSize}
 * tokens of {@code numKvHeads * headDim} elements. TornadoVM indexes a native array with an
 * {@code int}, so one array holds at most {@link #MAX_POOL_ELEMENTS} elements; a layer larger than
 * that is split by KV head into {@link #poolShards()} arrays (the fewest that divide
 * {@code numKvHeads} and fit, each {@code [numBlocks][numKvHeads / shards][blockSize][headDim]}).
 * So {@code tokens per layer <= MAX_POOL_ELEMENTS / headDim} (one head per shard): about 16.8M
 * tokens for heads of 128, which no card holds; memory is the real limit. The whole cache takes
 * {@link #bytesPerToken()} bytes per token slot, all layers, K and V:
 * {@code 2 * numLayers * numKvHeads * headDim * dtype.bytes}.
 *
 * <p>A <b>latent</b> cache ({@link #latent}, {@code latentDim > 0}: multi-head latent attention, DeepSeek-V2/V3's
 * MLA as vLLM and FlashMLA cache it) stores one vector of {@code headDim = latentDim + ropeDim} elements per token and
 * layer, its compressed KV {@code c_kv} followed by its rotary key {@code k_pe}, in one pool per layer: the keys are
 * the whole vector and the values are its first {@code latentDim} elements, read from the same bytes. One KV head;
 * half the bytes of a cache that would store the values again.
 *
 * @param latentDim       0 for a cache with a K and a V pool per layer; {@code 1..headDim} for a latent cache, whose
 *                        values are the first {@code latentDim} elements of each key ({@link #valueDim()})
 *
 * @param numBlocks       physical blocks (a block id addresses the same token slots in every layer)
 * @param blockSize       tokens per block, any value >= 1 (16 by default)
 * @param numKvHeads      KV heads per layer
 * @param headDim         elements per head
 * @param dtype           element type of the K and V pools
 * @param numLayers       layers held by this cache
 * @param maxPoolElements most elements in one native array ({@link #MAX_POOL_ELEMENTS}; smaller
 *                        values shard small caches, which is how tests reach the sharded path)
 */
public record KvCacheConfig(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int numLayers,
                            int maxPoolElements, int latentDim) {
    public static final int DEFAULT_BLOCK_SIZE = 16;
    /**
     * Most elements in one layer's K (or V) pool: TornadoVM arrays are int-indexed and add their
     * header (at most 32 bytes, i.e. 16 fp16 elements) to the index.
     */
    public static final int MAX_POOL_ELEMENTS = Integer.MAX_VALUE - 16;

    public KvCacheConfig {
        requirePositive("numBlocks", numBlocks);
        requirePositive("blockSize", blockSize);
        requirePositive("numKvHeads", numKvHeads);
        requirePositive("headDim", headDim);
        requirePositive("numLayers", numLayers);
        if (dtype == null) {
            throw new IllegalArgumentException("dtype=null (use FP16, FP32, FP8_E4M3, FP8_E5M2 or INT8)");
        }
        if (maxPoolElements < 1 || maxPoolElements > MAX_POOL_ELEMENTS) {
            throw new IllegalArgumentException("maxPoolElements=" + maxPoolElements + " is outside [1, " + MAX_POOL_ELEMENTS + "]");
        }
        if (latentDim < 0 || latentDim > headDim) {
            throw new IllegalArgumentException("latentDim=" + latentDim + " is outside [0, headDim=" + headDim + "]");
        }
        if (latentDim > 0 && numKvHeads != 1) {
            throw new IllegalArgumentException("numKvHeads=" + numKvHeads + " with latentDim=" + latentDim
                    + ": a latent cache holds one KV head (the compressed KV every query head reads)");
        }
        if (shardsFor(numBlocks, blockSize, numKvHeads, headDim, maxPoolElements) == 0) {
            String elements = elements(numBlocks, blockElements(blockSize, numKvHeads, headDim));
            throw new IllegalArgumentException("numBlocks=" + numBlocks + " x blockSize=" + blockSize + " x numKvHeads=" + numKvHeads
                    + " x headDim=" + headDim + " = " + elements + " elements per layer pool: one KV head of a layer takes "
                    + elements(numBlocks, blockElements(blockSize, 1, headDim)) + " elements, above maxPoolElements="
                    + maxPoolElements + ", the most one native array may hold (at most numBlocks="
                    + maxBlocks(blockSize, numKvHeads, headDim, maxPoolElements) + ")");
        }
    }

    /** A cache with a K and a V pool per layer, arrays of at most {@code maxPoolElements} elements. */
    public KvCacheConfig(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int numLayers,
                         int maxPoolElements) {
        this(numBlocks, blockSize, numKvHeads, headDim, dtype, numLayers, maxPoolElements, 0);
    }

    /** A cache with a K and a V pool per layer, arrays of at most {@link #MAX_POOL_ELEMENTS} elements. */
    public KvCacheConfig(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int numLayers) {
        this(numBlocks, blockSize, numKvHeads, headDim, dtype, numLayers, MAX_POOL_ELEMENTS);
    }

    /**
     * A latent cache (multi-head latent attention, DeepSeek-V2/V3): per token and layer one vector of {@code latentDim}
     * compressed-KV elements followed by {@code ropeDim} rotary-key elements (DeepSeek: 512 and 64), one pool per layer.
     * Decode and prefill read it as one KV head of {@code latentDim + ropeDim} for the keys and its first
     * {@code latentDim} elements for the values, so their outputs are {@code latentDim} wide (the attention in the
     * latent space, before the up-projection {@code W_UV}).
     */
    public static KvCacheConfig latent(int numBlocks, int blockSize, int latentDim, int ropeDim, KvDtype dtype, int numLayers) {
        return new KvCacheConfig(numBlocks, blockSize, 1, latentHeadDim(latentDim, ropeDim), dtype, numLayers, MAX_POOL_ELEMENTS,
                latentDim);
    }

    /** A latent vector's elements, {@code latentDim + ropeDim}; names a bad value. */
    private static int latentHeadDim(int latentDim, int ropeDim) {
        requirePositive("latentDim", latentDim);
        if (ropeDim < 0 || (long) latentDim + ropeDim > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("ropeDim=" + ropeDim + " must be >= 0 and fit an int next to latentDim=" + latentDim);
        }
        return latentDim + ropeDim;
    }

    /** Whether this is a latent cache ({@link #latent}): one pool per layer, the values a prefix of the keys. */
    public boolean isLatent() {
        return latentDim > 0;
    }

    /** Elements of one value vector: {@code latentDim} for a latent cache, else {@code headDim}; an output row's width per head. */
    public int valueDim() {
        return latentDim > 0 ? latentDim : headDim;
    }

    /** Pools per layer: 2 (K and V), 1 for a latent cache. */
    public int poolsPerLayer() {
        return latentDim > 0 ? 1 : 2;
    }

    /** A single-layer cache. */
    public static KvCacheConfig of(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype) {
        return new KvCacheConfig(numBlocks, blockSize, numKvHeads, headDim, dtype, 1);
    }

    /**
     * The cache that fills {@code bytes} of K/V memory (vLLM's {@code gpu_memory_utilization} idea):
     * as many blocks as fit, all layers, K and V.
     *
     * @throws IllegalArgumentException when not one block fits, or when the blocks that fit would
     *                                  make one layer's pool larger than {@link #MAX_POOL_ELEMENTS}
     */
    public static KvCacheConfig forMemory(long bytes, int blockSize, int numKvHeads, int headDim, int numLayers, KvDtype dtype) {
        return forMemory(bytes, blockSize, numKvHeads, headDim, numLayers, dtype, 0);
    }

    /** The latent cache ({@link #latent}) that fills {@code bytes}: as many blocks as fit, all layers, one pool each. */
    public static KvCacheConfig latentForMemory(long bytes, int blockSize, int latentDim, int ropeDim, int numLayers, KvDtype dtype) {
        return forMemory(bytes, blockSize, 1, latentHeadDim(latentDim, ropeDim), numLayers, dtype, latentDim);
    }

    private static KvCacheConfig forMemory(long bytes, int blockSize, int numKvHeads, int headDim, int numLayers, KvDtype dtype,
                                           int latentDim) {
        requirePositive("blockSize", blockSize);
        requirePositive("numKvHeads", numKvHeads);
        requirePositive("headDim", headDim);
        requirePositive("numLayers", numLayers);
        if (dtype == null) {
            throw new IllegalArgumentException("dtype=null (use FP16, FP32, FP8_E4M3, FP8_E5M2 or INT8)");
        }
        long perBlock;
        try {
            long pools = (latentDim > 0 ? 1L : 2L) * numLayers;
            perBlock = Math.multiplyExact(Math.multiplyExact(pools, blockElements(blockSize, numKvHeads, headDim)), dtype.bytes());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("blockSize=" + blockSize + " numKvHeads=" + numKvHeads + " headDim=" + headDim
                    + " numLayers=" + numLayers + ": one block's bytes overflow a long");
        }
        long blocks = bytes / perBlock;
        if (bytes < 1 || blocks < 1) {
            throw new IllegalArgumentException("bytes=" + bytes + " holds no block: one block of every layer's "
                    + (latentDim > 0 ? "latent pool" : "K and V") + " takes " + perBlock + " bytes");
        }
        long max = maxBlocks(blockSize, numKvHeads, headDim, MAX_POOL_ELEMENTS);
        if (blocks > max) {
            throw new IllegalArgumentException("bytes=" + bytes + " would hold " + blocks + " blocks, but one layer's pool holds at most "
                    + max + " blocks (" + MAX_POOL_ELEMENTS + " elements per KV head, int-indexed): at most " + max * perBlock
                    + " bytes for this shape");
        }
        return new KvCacheConfig((int) blocks, blockSize, numKvHeads, headDim, dtype, numLayers, MAX_POOL_ELEMENTS, latentDim);
    }

    /** Most blocks a layer's pool can hold for this block shape, sharded down to one KV head per array (0 when not even one fits). */
    public static long maxBlocks(int blockSize, int numKvHeads, int headDim) {
        return maxBlocks(blockSize, numKvHeads, headDim, MAX_POOL_ELEMENTS);
    }

    private static long maxBlocks(int blockSize, int numKvHeads, int headDim, int maxPoolElements) {
        long perHead = blockElements(blockSize, 1, headDim);
        return Math.min(Integer.MAX_VALUE, maxPoolElements / perHead);
    }

    /**
     * Arrays (shards) each layer's K (or V) pool is split into, by KV head: the fewest that divide
     * {@code numKvHeads} and hold at most {@code maxPoolElements} elements each. 1 for every cache
     * whose layer fits one array.
     */
    public int poolShards() {
        return shardsFor(numBlocks, blockSize, numKvHeads, headDim, maxPoolElements);
    }

    /** KV heads in each shard: {@code numKvHeads / poolShards()}. */
    public int headsPerShard() {
        return numKvHeads / poolShards();
    }

    /** Elements of one shard's array: {@code numBlocks * blockSize * headsPerShard * headDim}, at most {@link #maxPoolElements}. */
    public int shardElements() {
        return numBlocks * blockSize * headsPerShard() * headDim;
    }

    /** 0 when even one head per shard does not fit. */
    private static int shardsFor(int numBlocks, int blockSize, int numKvHeads, int headDim, int maxPoolElements) {
        long perHead = blockElements(blockSize, 1, headDim);
        if (perHead > maxPoolElements || numBlocks > maxPoolElements / perHead) {
            return 0;
        }
        long headsPerArray = maxPoolElements / (numBlocks * perHead);
        for (int shards = 1; shards <= numKvHeads; shards++) {
            if (numKvHeads % shards == 0 && numKvHeads / shards <= headsPerArray) {
                return shards;
            }
        }
        return 0;
    }

    /** Elements of one token's K (or V) for one layer: {@code numKvHeads * headDim}. */
    public int tokenWidth() {
        return numKvHeads * headDim;
    }

    /** Elements of one layer's K (or V) pool, all shards. */
    public long layerPoolElements() {
        return (long) numBlocks * blockSize * numKvHeads * headDim;
    }

    /** Bytes of one layer's K (or V) pool. */
    public long layerPoolBytes() {
        return layerPoolElements() * dtype.bytes();
    }

    /** Bytes of every pool: K and V of every layer (a latent cache: its one pool per layer). */
    public long totalBytes() {
        return (long) poolsPerLayer() * numLayers * layerPoolBytes();
    }

    /** Bytes one token slot takes over all layers, K and V (a latent cache: its one vector per layer). */
    public long bytesPerToken() {
        return (long) poolsPerLayer() * numLayers * tokenWidth() * dtype.bytes();
    }

    /** Token slots per layer: {@code numBlocks * blockSize}. */
    public long numTokenSlots() {
        return (long) numBlocks * blockSize;
    }

    /** Blocks needed to hold {@code numTokens} tokens. */
    public int blocksFor(int numTokens) {
        // long: numTokens + blockSize - 1 overflows int for lengths near Integer.MAX_VALUE
        return (int) (((long) numTokens + blockSize - 1) / blockSize);
    }

    private static long blockElements(int blockSize, int numKvHeads, int headDim) {
        // saturates: three ints can overflow a long, and any such shape is refused anyway
        try {
            return Math.multiplyExact((long) blockSize * numKvHeads, headDim);
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    /** {@code numBlocks * perBlock} as text, "more than 2^63 - 1" where a long cannot hold it. */
    private static String elements(int numBlocks, long perBlock) {
        return perBlock > Long.MAX_VALUE / numBlocks ? "more than " + Long.MAX_VALUE : Long.toString(numBlocks * perBlock);
    }

    private static void requirePositive(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(name + "=" + value + " must be >= 1");
        }
    }
}
