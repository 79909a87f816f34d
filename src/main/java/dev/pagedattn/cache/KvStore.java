package dev.pagedattn.cache;

import dev.pagedattn.quant.KvScales;

/**
 * The K and V pools of every layer ({@code [numLayers]} of {@link KvPool}, laid out by
 * {@link KvLayout}) and the journal of what changed in them. Addressed by physical block and
 * slot: which sequence owns a block is {@link KvCache}'s business. Only the cache writes here.
 */
final class KvStore {
    private final KvCacheConfig config;
    private final KvLayout layout;
    private final KvPool[] keys;   // [numLayers], each [numBlocks][numKvHeads][blockSize][headDim]
    private final KvPool[] values; // same shape as keys
    private final DirtySlotJournal journal;

    /** {@code scales}: null for fp16/fp32; for 8-bit dtypes the cache's checked scales. */
    KvStore(KvCacheConfig config, KvScales scales) {
        this.config = config;
        this.layout = new KvLayout(config);
        this.keys = new KvPool[config.numLayers()];
        this.values = new KvPool[config.numLayers()];
        int heads = config.numKvHeads();
        float[] k = scales == null ? new float[config.numLayers() * heads] : scales.kPerHead(); // [numLayers][numKvHeads]
        float[] v = scales == null ? k : scales.vPerHead();
        for (int l = 0; l < config.numLayers(); l++) {
            keys[l] = new KvPool(config.dtype(), layout.poolElements(), Integer.MAX_VALUE, layout,
                    java.util.Arrays.copyOfRange(k, l * heads, (l + 1) * heads));
            values[l] = new KvPool(config.dtype(), layout.poolElements(), Integer.MAX_VALUE, layout,
                    java.util.Arrays.copyOfRange(v, l * heads, (l + 1) * heads));
        }
        this.journal = new DirtySlotJournal(config);
    }

    KvLayout layout() {
        return layout;
    }

    DirtySlotJournal journal() {
        return journal;
    }

    KvPool keys(int layer) {
        return keys[requireLayer(layer)];
    }

    KvPool values(int layer) {
        return values[requireLayer(layer)];
    }

    /** Stores one token ({@code [numKvHeads][headDim]} from {@code k[from]}, {@code v[from]}) in (layer, block, slot). */
    void write(int layer, int block, int slot, float[] k, float[] v, int from) {
        int d = config.headDim();
        for (int h = 0; h < config.numKvHeads(); h++) {
            int at = layout.offset(block, h, slot, 0);
            keys[layer].write(at, k, from + h * d, d);
            values[layer].write(at, v, from + h * d, d);
        }
        journal.mark(layer, block, slot);
    }

    /** Copies the first {@code numSlots} slots of block {@code from} to block {@code to}, every layer and head. */
    void copyBlock(int from, int to, int numSlots) {
        for (int l = 0; l < config.numLayers(); l++) {
            for (int h = 0; h < config.numKvHeads(); h++) {
                keys[l].copy(layout.tileBase(from, h), layout.tileBase(to, h), numSlots * config.headDim());
                values[l].copy(layout.tileBase(from, h), layout.tileBase(to, h), numSlots * config.headDim());
            }
        }
        journal.markBlock(to, numSlots);
    }

    /** Every element of every pool uniform in [-1, 1); deterministic for a seed. */
    void fillUniform(long seed) {
        for (int l = 0; l < config.numLayers(); l++) {
            keys[l].fillUniform(seed + 2L * l);
            values[l].fillUniform(~(seed + 2L * l));
        }
        journal.markAll();
    }

    /** Pool offset of (position, kvHead, dim) of sequence {@code seq} with page table {@code t}; names bad values. */
    int locate(PageTable t, int seq, int position, int kvHead, int dim) {
        if (position < 0 || position >= t.numTokens()) {
            throw new IllegalArgumentException("position=" + position + " is outside [0, " + t.numTokens() + ") of seq=" + seq);
        }
        if (kvHead < 0 || kvHead >= config.numKvHeads() || dim < 0 || dim >= config.headDim()) {
            throw new IllegalArgumentException("kvHead=" + kvHead + " dim=" + dim + " is outside the cache shape");
        }
        return layout.offset(t.block(position / config.blockSize()), kvHead, position % config.blockSize(), dim);
    }

    int requireLayer(int layer) {
        if (layer < 0 || layer >= config.numLayers()) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + config.numLayers() + ")");
        }
        return layer;
    }
}
