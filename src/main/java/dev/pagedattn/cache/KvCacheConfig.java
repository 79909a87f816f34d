package dev.pagedattn.cache;

/**
 * Shape of a KV cache. Every field is validated; messages name the bad value.
 *
 * @param numBlocks  physical blocks in the pool (shared by all layers: a block id addresses the
 *                   same slot range in every layer)
 * @param blockSize  tokens per block, any value >= 1 (16 by default)
 * @param numKvHeads KV heads per layer
 * @param headDim    elements per head
 * @param dtype      element type of the K and V pools
 * @param numLayers  layers held by this cache
 */
public record KvCacheConfig(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int numLayers) {
    public static final int DEFAULT_BLOCK_SIZE = 16;

    public KvCacheConfig {
        requirePositive("numBlocks", numBlocks);
        requirePositive("blockSize", blockSize);
        requirePositive("numKvHeads", numKvHeads);
        requirePositive("headDim", headDim);
        requirePositive("numLayers", numLayers);
        if (dtype == null) {
            throw new IllegalArgumentException("dtype=null (use FP16 or FP32)");
        }
        long elements = (long) numLayers * numBlocks * numKvHeads * blockSize * headDim;
        if (elements > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("pool elements=" + elements + " exceed " + Integer.MAX_VALUE
                    + " (one native array is int-indexed): numBlocks=" + numBlocks + " is too large for this shape");
        }
    }

    /** A single-layer cache. */
    public static KvCacheConfig of(int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype) {
        return new KvCacheConfig(numBlocks, blockSize, numKvHeads, headDim, dtype, 1);
    }

    /** Elements of one token's K (or V) for one layer: {@code numKvHeads * headDim}. */
    public int tokenWidth() {
        return numKvHeads * headDim;
    }

    /** Bytes of one pool (K or V). */
    public long poolBytes() {
        return (long) numLayers * numBlocks * numKvHeads * blockSize * headDim * dtype.bytes();
    }

    /** Blocks needed to hold {@code numTokens} tokens. */
    public int blocksFor(int numTokens) {
        // long: numTokens + blockSize - 1 overflows int for lengths near Integer.MAX_VALUE
        return (int) (((long) numTokens + blockSize - 1) / blockSize);
    }

    private static void requirePositive(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(name + "=" + value + " must be >= 1");
        }
    }
}
