package dev.pagedattn.cache;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * Which token slots of which layer changed since a device mirror last copied them. Each mirror of the pools (a
 * TornadoVM decode backend, a prefill backend) opens a {@link Reader} of its own and drains it before each step of a
 * layer, so several mirrors of one cache each send what changed since their own last step. Writes and copy-on-write
 * copies mark slots for every open reader; nothing is recorded while none is open. {@link #track()} and
 * {@link #drain(int)} read through one shared reader, for a single mirror that needs no more.
 *
 * <p>One bit per token slot and layer and reader ({@code [numLayers][numBlocks * blockSize]}), allocated as slots are
 * marked: bounded by the pool size however long nobody drains, each slot listed once, and drained in ascending order
 * (a device copy walks the pool forwards).
 *
 * <p>Thread-safe: its own lock; the cache marks under the cache's lock, then this one.
 */
public final class DirtySlotJournal {
    private final int numLayers;
    private final int numSlots;  // per layer: numBlocks * blockSize
    private final int blockSize;
    private final List<Reader> readers = new ArrayList<>();
    private Reader shared;       // track()/drain(); null until track()

    DirtySlotJournal(KvCacheConfig config) {
        this.numLayers = config.numLayers();
        this.numSlots = (int) config.numTokenSlots();
        this.blockSize = config.blockSize();
    }

    /**
     * One mirror's record: the slots marked since its own last drain of each layer. Slots written before it was opened
     * are not listed (a new mirror copies the whole pools); {@link #close()} stops the recording.
     */
    public final class Reader implements AutoCloseable {
        private final BitSet[] dirty = new BitSet[numLayers];
        private boolean closed;

        private Reader() {
            for (int l = 0; l < numLayers; l++) {
                dirty[l] = new BitSet();
            }
        }

        /**
         * Slot ids {@code block * blockSize + slot} of {@code layer} marked since this reader's last drain of that layer,
         * ascending, each once; {@link KvLayout#slotOffset} turns one into a pool offset.
         */
        public int[] drain(int layer) {
            synchronized (DirtySlotJournal.this) {
                if (closed) {
                    throw new IllegalStateException("drain after close(): this reader records nothing any more");
                }
                if (layer < 0 || layer >= numLayers) {
                    throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + numLayers + ")");
                }
                int[] out = dirty[layer].stream().toArray();
                dirty[layer].clear();
                return out;
            }
        }

        /** Stops recording for this reader (idempotent); the other readers go on. */
        @Override
        public void close() {
            synchronized (DirtySlotJournal.this) {
                closed = true;
                readers.remove(this);
            }
        }
    }

    /** A new reader, recording from now on. */
    public synchronized Reader reader() {
        Reader r = new Reader();
        readers.add(r);
        return r;
    }

    /** Starts the shared reader that {@link #drain(int)} reads (idempotent). */
    public synchronized void track() {
        if (shared == null) {
            shared = reader();
        }
    }

    /** Whether the shared reader of {@link #track()} records. */
    public synchronized boolean isTracking() {
        return shared != null;
    }

    /** {@link Reader#drain} of the shared reader that {@link #track()} started. */
    public synchronized int[] drain(int layer) {
        if (shared == null) {
            throw new IllegalStateException("dirty-slot tracking is off: call track() first");
        }
        return shared.drain(layer);
    }

    synchronized void mark(int layer, int block, int slot) {
        for (Reader r : readers) {
            r.dirty[layer].set(block * blockSize + slot);
        }
    }

    /** Marks the first {@code numSlots} slots of {@code block} in every layer. */
    synchronized void markBlock(int block, int numSlots) {
        for (Reader r : readers) {
            for (BitSet layer : r.dirty) {
                layer.set(block * blockSize, block * blockSize + numSlots);
            }
        }
    }

    synchronized void markAll() {
        for (Reader r : readers) {
            for (BitSet layer : r.dirty) {
                layer.set(0, numSlots);
            }
        }
    }
}
