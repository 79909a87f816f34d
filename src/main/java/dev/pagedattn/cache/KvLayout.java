package dev.pagedattn.cache;

/**
 * The one place that knows where an element of a K or V pool lives. The JVM backend, the
 * fp64 reference, the kernel emulator and the TornadoVM kernels all go through these methods.
 *
 * <pre>
 *  every layer has its own K pool and V pool (like vLLM's per-layer kv_cache tensors), each one
 *  int-indexed native array, or S of them (shards, by KV head) when a layer is larger than one
 *  array holds (KvCacheConfig.poolShards):
 *
 *  layer l, K (or V), shard s:  [block][kvHead - s * headsPerShard][slot][dim]
 *
 *  block b (the same id addresses the same token slots in every layer) ---+
 *  | kvHead 0                         | kvHead 1      | ...               |
 *  | slot 0: d0 d1 ... d(D-1)         |               |                   |
 *  | slot 1: d0 d1 ... d(D-1)         |               |                   |
 *  | ...  (blockSize slots)           |               |                   |
 *  +----------------------------------------------------------------------+
 *   headStride   = blockSize * headDim
 *   blockStride  = headsPerShard * headStride      (headsPerShard = numKvHeads when unsharded)
 *   poolElements = numBlocks * blockStride         (one shard's array, < 2^31)
 * </pre>
 *
 * <p>Why this order: the decode kernel gives one work-group to a (sequence, KV head) pair. For each
 * logical block it reads the whole {@code blockSize x headDim} tile of its head, and in this layout
 * that tile is one contiguous run (4 KB for 16 x 128 fp16), so consecutive threads read
 * consecutive addresses (coalesced) and a paged gather costs a single 4 KB chunk per block and head.
 * Putting {@code slot} before {@code kvHead} would split that tile into {@code blockSize}
 * strided pieces. Writing one token touches {@code numKvHeads} runs of {@code headDim}, which is
 * cheap because appends are rare compared with reads.
 *
 * <p>Why a pool per layer: one array for every layer would cap the whole cache at 2^31 elements
 * per pool (65k tokens of Llama-3-8B); per layer the cap applies to one layer only. Why shards by
 * KV head: a work-group reads one KV head, so a kernel launched over one shard sees an ordinary
 * pool of {@code headsPerShard} heads and needs no change; offsets stay {@code int}.
 */
public final class KvLayout {
    private final int numBlocks;
    private final int headsPerShard; // KV heads in one pool array
    private final int blockSize;
    private final int headDim;

    public KvLayout(KvCacheConfig config) {
        this.numBlocks = config.numBlocks();
        this.headsPerShard = config.headsPerShard();
        this.blockSize = config.blockSize();
        this.headDim = config.headDim();
    }

    /** Elements in one pool array (a layer's pool, or one shard of it). */
    public int poolElements() {
        return numBlocks * blockStride();
    }

    public int headStride() {
        return blockSize * headDim;
    }

    public int blockStride() {
        return headsPerShard * headStride();
    }

    /** KV heads in each pool array ({@code numKvHeads} unless the layer is sharded). */
    public int headsPerShard() {
        return headsPerShard;
    }

    /** The shard (pool array) holding {@code kvHead}. */
    public int shardOf(int kvHead) {
        return kvHead / headsPerShard;
    }

    /**
     * Offset of element {@code dim} of {@code slot} in {@code block}, head {@code kvHead} (of the
     * layer), in the pool array of {@link #shardOf shardOf(kvHead)}.
     */
    public int offset(int block, int kvHead, int slot, int dim) {
        return offset(0, blockStride(), headStride(), headDim, block, kvHead % headsPerShard, slot, dim);
    }

    /** Offset of the first element of a (block, head) tile: the start of its contiguous run. */
    public int tileBase(int block, int kvHead) {
        return offset(block, kvHead, 0, 0);
    }

    /** The KV head, within its shard, an element offset belongs to (its tile's head): what picks a per-head scale. */
    public int kvHeadOf(int offset) {
        return offset % blockStride() / headStride();
    }

    /**
     * Offset of (block, head 0, slot, dim 0) for a slot id {@code block * blockSize + slot}, the
     * form {@link DirtySlotJournal#drain} returns; the same offset in every shard.
     */
    public int slotOffset(int slotId) {
        return offset(slotId / blockSize, 0, slotId % blockSize, 0);
    }

    /**
     * The layout formula itself, in primitives only, so that kernels (which may not touch objects)
     * inline it. {@code layerBase} is 0 for per-layer pools (kept so that a pool holding several
     * layers stays expressible).
     */
    public static int offset(int layerBase, int blockStride, int headStride, int headDim,
                             int block, int kvHead, int slot, int dim) {
        return layerBase + block * blockStride + kvHead * headStride + slot * headDim + dim;
    }
}
