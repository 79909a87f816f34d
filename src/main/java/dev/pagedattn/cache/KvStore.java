package dev.pagedattn.cache;

import dev.pagedattn.quant.KvScales;

/**
 * The K and V pools of every layer ({@code [numLayers][poolShards]} of {@link KvPool}, laid out by
 * {@link KvLayout}) and the journal of what changed in them. Addressed by physical block and
 * slot: which sequence owns a block is {@link KvCache}'s business. Only the cache writes here.
 */
final class KvStore {
    private final KvCacheConfig config;
    private final KvLayout layout;
    private final KvPool[][] keys;   // [numLayers][poolShards], each [numBlocks][headsPerShard][blockSize][headDim]
    private final KvPool[][] values; // same shape as keys; a latent cache's are its keys (the same objects)
    private final boolean latent;    // KvCacheConfig.isLatent: values[l][s] == keys[l][s], stored once
    private final DirtySlotJournal journal;

    /** {@code scales}: null for fp16/fp32; for 8-bit dtypes the cache's checked scales. */
    KvStore(KvCacheConfig config, KvScales scales) {
        this(config, scales, null);
    }

    /**
     * The store of a cache whose layers live in the first {@code config.numLayers()} layers of {@code base}'s pools (a
     * hybrid cache's group on a shared pool; {@code base} null: pools of its own), with its own scales and journal.
     */
    KvStore(KvCacheConfig config, KvScales scales, KvStore base) {
        this.config = config;
        this.layout = new KvLayout(config);
        this.latent = config.isLatent();
        int shards = config.poolShards();
        this.keys = new KvPool[config.numLayers()][shards];
        this.values = new KvPool[config.numLayers()][shards];
        int heads = config.numKvHeads();
        int per = config.headsPerShard();
        float[] k = scales == null ? new float[config.numLayers() * heads] : scales.kPerHead(); // [numLayers][numKvHeads]
        float[] v = scales == null ? k : scales.vPerHead();
        for (int l = 0; l < config.numLayers(); l++) {
            for (int s = 0; s < shards; s++) {
                int from = l * heads + s * per;
                float[] ks = java.util.Arrays.copyOfRange(k, from, from + per);
                float[] vs = java.util.Arrays.copyOfRange(v, from, from + per);
                if (base != null) {
                    keys[l][s] = new KvPool(base.keys[l][s], ks);
                    values[l][s] = latent ? keys[l][s] : new KvPool(base.values[l][s], vs);
                } else {
                    keys[l][s] = new KvPool(config.dtype(), layout.poolElements(), Integer.MAX_VALUE, layout, ks, s * per);
                    values[l][s] = latent ? keys[l][s]
                            : new KvPool(config.dtype(), layout.poolElements(), Integer.MAX_VALUE, layout, vs, s * per);
                }
            }
        }
        this.journal = new DirtySlotJournal(config);
    }

    KvLayout layout() {
        return layout;
    }

    DirtySlotJournal journal() {
        return journal;
    }

    KvPool keys(int layer, int shard) {
        return keys[requireLayer(layer)][requireShard(shard)];
    }

    KvPool values(int layer, int shard) {
        return values[requireLayer(layer)][requireShard(shard)];
    }

    /**
     * Stores one token ({@code [numKvHeads][headDim]} from {@code k[from]}, {@code v[from]}) in (layer, block, slot); a
     * latent cache stores {@code k} only ({@code v} is not read).
     */
    void write(int layer, int block, int slot, float[] k, float[] v, int from) {
        int d = config.headDim();
        for (int h = 0; h < config.numKvHeads(); h++) {
            int at = layout.offset(block, h, slot, 0);
            keys[layer][layout.shardOf(h)].write(at, k, from + h * d, d);
            if (!latent) {
                values[layer][layout.shardOf(h)].write(at, v, from + h * d, d);
            }
        }
        journal.mark(layer, block, slot);
    }

    /** Copies slot {@code fromSlot} of block {@code from} to slot {@code toSlot} of block {@code to}, every layer and head. */
    void copySlot(int from, int fromSlot, int to, int toSlot) {
        int d = config.headDim();
        for (int l = 0; l < config.numLayers(); l++) {
            for (int h = 0; h < config.numKvHeads(); h++) {
                keys[l][layout.shardOf(h)].copy(layout.offset(from, h, fromSlot, 0), layout.offset(to, h, toSlot, 0), d);
                if (!latent) {
                    values[l][layout.shardOf(h)].copy(layout.offset(from, h, fromSlot, 0), layout.offset(to, h, toSlot, 0), d);
                }
            }
            journal.mark(l, to, toSlot);
        }
    }

    /** Copies the first {@code numSlots} slots of block {@code from} to block {@code to}, every layer and head. */
    void copyBlock(int from, int to, int numSlots) {
        for (int l = 0; l < config.numLayers(); l++) {
            for (int h = 0; h < config.numKvHeads(); h++) {
                keys[l][layout.shardOf(h)].copy(layout.tileBase(from, h), layout.tileBase(to, h), numSlots * config.headDim());
                if (!latent) {
                    values[l][layout.shardOf(h)].copy(layout.tileBase(from, h), layout.tileBase(to, h), numSlots * config.headDim());
                }
            }
        }
        journal.markBlock(to, numSlots);
    }

    /** Bytes one block's tiles take in every layer, K and V, or a latent cache's one tile ({@link #exportBlock}). */
    long blockBytes() {
        return (long) config.poolsPerLayer() * config.numLayers() * config.numKvHeads() * config.blockSize() * config.headDim() * config.dtype().bytes();
    }

    /**
     * Copies block {@code block}'s tiles, every layer and head, K then V (a latent cache: its one tile), to {@code dst} at
     * {@code offset}, bit for bit.
     */
    void exportBlock(int block, java.lang.foreign.MemorySegment dst, long offset) {
        long tile = (long) config.blockSize() * config.headDim() * config.dtype().bytes();
        long at = offset;
        for (int l = 0; l < config.numLayers(); l++) {
            for (int h = 0; h < config.numKvHeads(); h++) {
                long from = (long) layout.tileBase(block, h) * config.dtype().bytes();
                java.lang.foreign.MemorySegment.copy(keys[l][layout.shardOf(h)].segment(), from, dst, at, tile);
                if (!latent) {
                    java.lang.foreign.MemorySegment.copy(values[l][layout.shardOf(h)].segment(), from, dst, at + tile, tile);
                }
                at += config.poolsPerLayer() * tile;
            }
        }
    }

    /**
     * Copies {@link #exportBlock}'s bytes from {@code src} at {@code offset} into block {@code block} and marks its first
     * {@code numSlots} slots written (device mirrors send them).
     */
    void importBlock(int block, java.lang.foreign.MemorySegment src, long offset, int numSlots) {
        long tile = (long) config.blockSize() * config.headDim() * config.dtype().bytes();
        long at = offset;
        for (int l = 0; l < config.numLayers(); l++) {
            for (int h = 0; h < config.numKvHeads(); h++) {
                long to = (long) layout.tileBase(block, h) * config.dtype().bytes();
                java.lang.foreign.MemorySegment.copy(src, at, keys[l][layout.shardOf(h)].segment(), to, tile);
                if (!latent) {
                    java.lang.foreign.MemorySegment.copy(src, at + tile, values[l][layout.shardOf(h)].segment(), to, tile);
                }
                at += config.poolsPerLayer() * tile;
            }
        }
        journal.markBlock(block, numSlots);
    }

    /** Every element of every pool uniform in [-1, 1); deterministic for a seed. */
    void fillUniform(long seed) {
        for (int l = 0; l < config.numLayers(); l++) {
            for (int s = 0; s < keys[l].length; s++) {
                long sub = seed + 2L * l + 0x1000_0000L * s; // shard 0: the unsharded cache's values
                keys[l][s].fillUniform(sub);
                if (!latent) {
                    values[l][s].fillUniform(~sub);
                }
            }
        }
        journal.markAll();
    }

    /**
     * Offset of (position, kvHead, dim) of sequence {@code seq} with page table {@code t} in the
     * pool array of {@code layout.shardOf(kvHead)}; names bad values.
     */
    int locate(PageTable t, int seq, int position, int kvHead, int dim) {
        if (position < 0 || position >= t.numTokens()) {
            throw new IllegalArgumentException("position=" + position + " is outside [0, " + t.numTokens() + ") of seq=" + seq);
        }
        if (kvHead < 0 || kvHead >= config.numKvHeads() || dim < 0 || dim >= config.headDim()) {
            throw new IllegalArgumentException("kvHead=" + kvHead + " dim=" + dim + " is outside the cache shape");
        }
        int block = t.block(position / config.blockSize());
        if (block == PageTable.RELEASED) {
            throw new IllegalArgumentException("position=" + position + " of seq=" + seq + " is in a released block (positions < "
                    + t.numReleased() * config.blockSize() + " were given back by releaseBefore)");
        }
        return layout.offset(block, kvHead, position % config.blockSize(), dim);
    }

    private int requireShard(int shard) {
        if (shard < 0 || shard >= keys[0].length) {
            throw new IllegalArgumentException("shard=" + shard + " is outside [0, " + keys[0].length + ")");
        }
        return shard;
    }

    int requireLayer(int layer) {
        if (layer < 0 || layer >= config.numLayers()) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + config.numLayers() + ")");
        }
        return layer;
    }
}
