package dev.pagedattn.cache;

import java.util.BitSet;

/**
 * Which token slots of which layer changed since a device mirror last copied them: an executor
 * that keeps the pools on a device (the TornadoVM backend) calls {@link #track()} once, then
 * {@link #drain(int)} before each decode of a layer and sends only those slots. Writes and
 * copy-on-write copies mark slots; nothing is recorded until {@link #track()}.
 *
 * <p>One bit per token slot and layer ({@code [numLayers][numBlocks * blockSize]}), allocated as
 * slots are marked: bounded by the pool size however long nobody drains, each slot listed once,
 * and drained in ascending order (a device copy walks the pool forwards).
 *
 * <p>Thread-safe: its own lock; the cache marks under the cache's lock, then this one.
 */
public final class DirtySlotJournal {
    private final int numLayers;
    private final int numSlots;  // per layer: numBlocks * blockSize
    private final int blockSize;
    private BitSet[] dirty;      // [numLayers] of [numSlots] bits; null: not tracking

    DirtySlotJournal(KvCacheConfig config) {
        this.numLayers = config.numLayers();
        this.numSlots = (int) config.numTokenSlots();
        this.blockSize = config.blockSize();
    }

    /** Starts recording (idempotent). Slots written before are not listed: a new mirror copies the whole pool. */
    public synchronized void track() {
        if (dirty == null) {
            dirty = new BitSet[numLayers];
            for (int l = 0; l < numLayers; l++) {
                dirty[l] = new BitSet();
            }
        }
    }

    public synchronized boolean isTracking() {
        return dirty != null;
    }

    /**
     * Slot ids {@code block * blockSize + slot} of {@code layer} marked since the last drain of that
     * layer, ascending, each once; {@link KvLayout#slotOffset} turns one into a pool offset.
     */
    public synchronized int[] drain(int layer) {
        if (dirty == null) {
            throw new IllegalStateException("dirty-slot tracking is off: call track() first");
        }
        if (layer < 0 || layer >= numLayers) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + numLayers + ")");
        }
        int[] out = dirty[layer].stream().toArray();
        dirty[layer].clear();
        return out;
    }

    synchronized void mark(int layer, int block, int slot) {
        if (dirty != null) {
            dirty[layer].set(block * blockSize + slot);
        }
    }

    /** Marks the first {@code numSlots} slots of {@code block} in every layer. */
    synchronized void markBlock(int block, int numSlots) {
        if (dirty != null) {
            for (BitSet layer : dirty) {
                layer.set(block * blockSize, block * blockSize + numSlots);
            }
        }
    }

    synchronized void markAll() {
        if (dirty != null) {
            for (BitSet layer : dirty) {
                layer.set(0, numSlots);
            }
        }
    }
}
