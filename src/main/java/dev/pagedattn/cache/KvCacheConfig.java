package dev.pagedattn.cache;

/**
 * Shape of a KV cache. Every field is validated; messages name the bad value.
 *
 * <p>Capacity rule: every layer has its own K pool and V pool, one native array each, holding
 * {@code numBlocks * blockSize} tokens of {@code numKvHeads * headDim} elements. TornadoVM indexes
 * an array with an {@code int}, so one layer's pool holds at most {@link #MAX_POOL_ELEMENTS}
 * elements: {@code tokens per layer <= MAX_POOL_ELEMENTS / (numKvHeads * headDim)} (about 2.1M
 * tokens for 8 KV heads of 128). The whole cache takes {@link #bytesPerToken()} bytes per token
 * slot, all layers, K and V: {@code 2 * numLayers * numKvHeads * headDim * dtype.bytes}.
 *
 * @param numBlocks  physical blocks (a block id addresses the same token slots in every layer)
 * @param blockSize  tokens per block, any value >= 1 (16 by default)
 * @param numKvHeads KV heads per layer
 * @param headDim    elements per head
 * @param dtype      element type of the K and V pools
 * @param numLayers  layers held by this cache
 */
public record KvCacheConfig(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int numLayers) {
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
        long perBlock = blockElements(blockSize, numKvHeads, headDim);
        if (perBlock > MAX_POOL_ELEMENTS || (long) numBlocks * perBlock > MAX_POOL_ELEMENTS) {
            String elements = perBlock > MAX_POOL_ELEMENTS ? "more than " + MAX_POOL_ELEMENTS : Long.toString(numBlocks * perBlock);
            throw new IllegalArgumentException("numBlocks=" + numBlocks + " x blockSize=" + blockSize + " x numKvHeads=" + numKvHeads
                    + " x headDim=" + headDim + " = " + elements + " elements per layer pool, above the " + MAX_POOL_ELEMENTS
                    + " one int-indexed native array holds (at most numBlocks=" + maxBlocks(blockSize, numKvHeads, headDim) + ")");
        }
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
        long max = maxBlocks(blockSize, numKvHeads, headDim);
        if (blocks > max) {
            throw new IllegalArgumentException("bytes=" + bytes + " would hold " + blocks + " blocks, but one layer's pool holds at most "
                    + max + " blocks (" + MAX_POOL_ELEMENTS + " elements, int-indexed): at most " + max * perBlock
                    + " bytes for this shape");
        }
        return new KvCacheConfig((int) blocks, blockSize, numKvHeads, headDim, dtype, numLayers);
    }

    /** Most blocks a layer's pool can hold for this block shape (0 when not even one fits). */
    public static long maxBlocks(int blockSize, int numKvHeads, int headDim) {
        return MAX_POOL_ELEMENTS / blockElements(blockSize, numKvHeads, headDim);
    }

    /** Elements of one token's K (or V) for one layer: {@code numKvHeads * headDim}. */
    public int tokenWidth() {
        return numKvHeads * headDim;
    }

    /** Elements of one layer's K (or V) pool; below 2^31 by construction. */
    public int layerPoolElements() {
        return numBlocks * blockSize * numKvHeads * headDim;
    }

    /** Bytes of one layer's K (or V) pool. */
    public long layerPoolBytes() {
        return (long) layerPoolElements() * dtype.bytes();
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

    private static void requirePositive(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(name + "=" + value + " must be >= 1");
        }
    }
}
