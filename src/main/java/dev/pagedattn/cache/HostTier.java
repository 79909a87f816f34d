package dev.pagedattn.cache;

import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;

/**
 * Host memory behind a prefix cache (vLLM's CPU KV offloading): a block the pool evicts from the prefix cache is copied
 * here first, every layer, bit for bit, under its chained hash, and a later prompt that finds it here (not on the device)
 * gets it back in a fresh block instead of recomputing it. A fixed number of host blocks set aside once ({@link SwapSpace}'s
 * memory); when they are all taken, the block offloaded longest ago makes room (a block found is brought back and leaves,
 * so nothing here is found twice). Finding changes nothing ({@code PrefixCache.lookup}). The cache's lock guards it.
 */
final class HostTier {
    private final KvStore store;
    private final int blockSize;
    private final SwapSpace memory;
    private final LinkedHashMap<Long, Integer> slotByHash = new LinkedHashMap<>(); // oldest offload first
    private final long[] parentOf;   // [slot] the parent hash of the block it holds
    private final int[] tokens;      // [slot][blockSize] its token ids (a hash collision never restores a wrong block)
    private final boolean[] pinned;  // [slot] claimed by an admission in progress
    private long offloaded;
    private long restored;
    private long dropped;
    private java.util.function.Consumer<KvEvent> events = e -> { }; // the prefix cache's record, once enabled

    HostTier(KvStore store, int blockSize, int numBlocks) {
        this.store = store;
        this.blockSize = blockSize;
        this.memory = new SwapSpace(numBlocks, store.blockBytes());
        this.parentOf = new long[numBlocks];
        this.tokens = new int[numBlocks * blockSize];
        this.pinned = new boolean[numBlocks];
    }

    void setEvents(java.util.function.Consumer<KvEvent> events) {
        this.events = events;
    }

    int numBlocks() {
        return memory.numBlocks();
    }

    int numHeld() {
        return slotByHash.size();
    }

    /**
     * Copies device block {@code block} (published under {@code hash}, after {@code parent}, holding {@code tokenIds[from
     * ..]}) here, unless it is here already; with no free host block the oldest unpinned one is dropped first, and with
     * none of those the block is not kept.
     */
    void offload(int block, long hash, long parent, int[] tokenIds, int from) {
        if (slotByHash.get(hash) != null) {
            return;
        }
        int[] slot = memory.take(1);
        if (slot == null) {
            Iterator<java.util.Map.Entry<Long, Integer>> lru = slotByHash.entrySet().iterator();
            while (lru.hasNext()) {
                java.util.Map.Entry<Long, Integer> e = lru.next();
                if (!pinned[e.getValue()]) {
                    lru.remove();
                    slot = new int[] {e.getValue()};
                    dropped++;
                    events.accept(new KvEvent.BlockRemoved(e.getKey(), KvEvent.Medium.HOST));
                    break;
                }
            }
            if (slot == null) {
                return;
            }
        }
        int s = slot[0];
        store.exportBlock(block, memory.data(), memory.offset(s));
        parentOf[s] = parent;
        System.arraycopy(tokenIds, from, tokens, s * blockSize, blockSize);
        slotByHash.put(hash, s);
        offloaded++;
        events.accept(new KvEvent.BlockStored(hash, parent, Arrays.copyOfRange(tokenIds, from, from + blockSize), KvEvent.Medium.HOST));
    }

    /** The host block holding {@code hash} after {@code parent} with {@code tokenIds[from ..]}, or -1. */
    int find(long hash, long parent, int[] tokenIds, int from) {
        Integer s = slotByHash.get(hash);
        if (s == null || parentOf[s] != parent
                || !Arrays.equals(tokens, s * blockSize, (s + 1) * blockSize, tokenIds, from, from + blockSize)) {
            return -1;
        }
        return s;
    }

    /** Keeps host block {@code slot} from being dropped until {@link #restore}. */
    void pin(int slot) {
        pinned[slot] = true;
    }

    /** Copies host block {@code slot} (holding {@code hash}) into device block {@code block} and frees the host block. */
    void restore(int slot, long hash, int block) {
        store.importBlock(block, memory.data(), memory.offset(slot), blockSize);
        pinned[slot] = false;
        slotByHash.remove(hash);
        memory.giveBack(new int[] {slot});
        restored++;
        events.accept(new KvEvent.BlockRemoved(hash, KvEvent.Medium.HOST));
    }

    /** Drops everything (the prefix cache's reset). */
    void clear() {
        for (int s : slotByHash.values()) {
            memory.giveBack(new int[] {s});
        }
        slotByHash.clear();
        Arrays.fill(pinned, false);
    }

    long offloaded() {
        return offloaded;
    }

    long restored() {
        return restored;
    }

    long dropped() {
        return dropped;
    }
}
