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
                            int maxPoolElements) {
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
        if (shardsFor(numBlocks, blockSize, numKvHeads, headDim, maxPoolElements) == 0) {
            String elements = elements(numBlocks, blockElements(blockSize, numKvHeads, headDim));
            throw new IllegalArgumentException("numBlocks=" + numBlocks + " x blockSize=" + blockSize + " x numKvHeads=" + numKvHeads
                    + " x headDim=" + headDim + " = " + elements + " elements per layer pool: one KV head of a layer takes "
                    + elements(numBlocks, blockElements(blockSize, 1, headDim)) + " elements, above maxPoolElements="
                    + maxPoolElements + ", the most one native array may hold (at most numBlocks="
                    + maxBlocks(blockSize, numKvHeads, headDim, maxPoolElements) + ")");
        }
    }

    /** Arrays of at most {@link #MAX_POOL_ELEMENTS} elements. */
    public KvCacheConfig(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int numLayers) {
        this(numBlocks, blockSize, numKvHeads, headDim, dtype, numLayers, MAX_POOL_ELEMENTS);
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
        requirePositive("blockSize", blockSize);
        requirePositive("numKvHeads", numKvHeads);
        requirePositive("headDim", headDim);
        requirePositive("numLayers", numLayers);
        if (dtype == null) {
            throw new IllegalArgumentException("dtype=null (use FP16, FP32, FP8_E4M3, FP8_E5M2 or INT8)");
        }
        long perBlock;
        try {
            perBlock = Math.multiplyExact(Math.multiplyExact(2L * numLayers, blockElements(blockSize, numKvHeads, headDim)),
                    dtype.bytes());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("blockSize=" + blockSize + " numKvHeads=" + numKvHeads + " headDim=" + headDim
                    + " numLayers=" + numLayers + ": one block's bytes overflow a long");
        }
        long blocks = bytes / perBlock;
        if (bytes < 1 || blocks < 1) {
            throw new IllegalArgumentException("bytes=" + bytes + " holds no block: one block of every layer's K and V takes "
                    + perBlock + " bytes");
        }
        long max = maxBlocks(blockSize, numKvHeads, headDim, MAX_POOL_ELEMENTS);
        if (blocks > max) {
            throw new IllegalArgumentException("bytes=" + bytes + " would hold " + blocks + " blocks, but one layer's pool holds at most "
                    + max + " blocks (" + MAX_POOL_ELEMENTS + " elements per KV head, int-indexed): at most " + max * perBlock
                    + " bytes for this shape");
        }
        return new KvCacheConfig((int) blocks, blockSize, numKvHeads, headDim, dtype, numLayers);
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

    /** Bytes of every pool: K and V of every layer. */
    public long totalBytes() {
        return 2L * numLayers * layerPoolBytes();
    }

    /** Bytes one token slot takes over all layers, K and V. */
    public long bytesPerToken() {
        return 2L * numLayers * tokenWidth() * dtype.bytes();
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
