package dev.pagedattn.cache;

/**
 * The one place that knows where an element of the K or V pool lives. The JVM backend, the
 * fp64 reference, the kernel emulator and the TornadoVM kernels all go through these methods.
 *
 * <pre>
 *  pool (K or V), one native array, int-indexed:
 *
 *  [layer][block][kvHead][slot][dim]
 *
 *  block b, all layers share the id ------------------------------+
 *  | kvHead 0                         | kvHead 1      | ...       |
 *  | slot 0: d0 d1 ... d(D-1)         |               |           |
 *  | slot 1: d0 d1 ... d(D-1)         |               |           |
 *  | ...  (blockSize slots)           |               |           |
 *  +---------------------------------------------------------------+
 *   headStride  = blockSize * headDim
 *   blockStride = numKvHeads * headStride
 *   layerStride = numBlocks * blockStride
 * </pre>
 *
 * <p>Why this order: the decode kernel gives one work-group to a (sequence, KV head) pair. For each
 * logical block it reads the whole {@code blockSize x headDim} tile of its head, and in this layout
 * that tile is one contiguous run (4 KB for 16 x 128 fp16), so consecutive threads read
 * consecutive addresses (coalesced) and a paged gather costs a single 4 KB chunk per block and head.
 * Putting {@code slot} before {@code kvHead} would split that tile into {@code blockSize}
 * strided pieces. Writing one token touches {@code numKvHeads} runs of {@code headDim}, which is
 * cheap because appends are rare compared with reads.
 */
public final class KvLayout {
    private final int numBlocks;
    private final int numKvHeads;
    private final int blockSize;
    private final int headDim;
    private final int numLayers;

    public KvLayout(KvCacheConfig config) {
        this.numBlocks = config.numBlocks();
        this.numKvHeads = config.numKvHeads();
        this.blockSize = config.blockSize();
        this.headDim = config.headDim();
        this.numLayers = config.numLayers();
    }

    /** Elements in one pool. */
    public int poolElements() {
        return numLayers * layerStride();
    }

    public int headStride() {
        return blockSize * headDim;
    }

    public int blockStride() {
        return numKvHeads * headStride();
    }

    public int layerStride() {
        return numBlocks * blockStride();
    }

    /** Offset of element {@code dim} of {@code slot} in {@code block}, head {@code kvHead}, layer {@code layer}. */
    public int offset(int layer, int block, int kvHead, int slot, int dim) {
        return offset(layer * layerStride(), blockStride(), headStride(), headDim, block, kvHead, slot, dim);
    }

    /** Offset of the first element of a (block, head) tile: the start of its contiguous run. */
    public int tileBase(int layer, int block, int kvHead) {
        return offset(layer, block, kvHead, 0, 0);
    }

    /**
     * The layout formula itself, in primitives only, so that kernels (which may not touch objects)
     * inline it. {@code layerBase = layer * layerStride}.
     */
    public static int offset(int layerBase, int blockStride, int headStride, int headDim,
                             int block, int kvHead, int slot, int dim) {
        return layerBase + block * blockStride + kvHead * headStride + slot * headDim + dim;
    }
}
