package dev.pagedattn.cache;

import java.util.Random;

/**
 * Physical block ids, their reference counts and the lists of blocks that can be handed out.
 *
 * <p>A block is in exactly one state:
 * <ul>
 *   <li><b>used</b>: reference count >= 1 (page tables point at it);</li>
 *   <li><b>free</b>: count 0, no cached content, on the free stack;</li>
 *   <li><b>evictable</b>: count 0 but still holding cached prefix content, on an LRU list. It can
 *       be revived by {@link #retain} (a prefix-cache hit) or evicted by {@link #allocate}.</li>
 * </ul>
 * {@link #allocate} takes free blocks first and evicts the least recently released evictable
 * block only when no free block is left. All operations are O(1).
 *
 * <p>Not thread-safe: {@link KvCache} owns the pool and serialises every call. The mutators are
 * package-private: only the cache changes reference counts.
 */
public final class BlockPool {
    /** Sentinel for "no block" in tables and links. */
    public static final int NO_BLOCK = -1;

    /** Told when an evictable block is reclaimed, so the owner of its content can forget it. */
    interface EvictionListener {
        void onEvict(int block);
    }

    private final int numBlocks;
    private final int[] refCounts;   // [numBlocks]
    private final int[] freeStack;   // [numBlocks], top at numFree - 1
    private int numFree;
    private final boolean[] evictable; // [numBlocks]
    private final int[] lruPrev;     // [numBlocks] towards the least recently released
    private final int[] lruNext;     // [numBlocks] towards the most recently released
    private int lruHead = NO_BLOCK;  // next to evict
    private int lruTail = NO_BLOCK;
    private int numEvictable;
    private EvictionListener[] evictionListeners = new EvictionListener[0]; // one per prefix cache on this pool

    BlockPool(int numBlocks) {
        this.numBlocks = numBlocks;
        this.refCounts = new int[numBlocks];
        this.freeStack = new int[numBlocks];
        this.evictable = new boolean[numBlocks];
        this.lruPrev = new int[numBlocks];
        this.lruNext = new int[numBlocks];
        // Highest id at the bottom so that a fresh pool hands out 0, 1, 2, ...
        for (int i = 0; i < numBlocks; i++) {
            freeStack[i] = numBlocks - 1 - i;
        }
        this.numFree = numBlocks;
    }

    /** Adds a listener told of every eviction (each prefix cache on this pool: a hybrid cache's groups may share it). */
    void addEvictionListener(EvictionListener listener) {
        evictionListeners = java.util.Arrays.copyOf(evictionListeners, evictionListeners.length + 1);
        evictionListeners[evictionListeners.length - 1] = listener;
    }

    public int numBlocks() {
        return numBlocks;
    }

    /** Blocks that {@link #allocate} can hand out now: free plus evictable. */
    public int numAllocatable() {
        return numFree + numEvictable;
    }

    /** Blocks with no content at all. */
    public int numFree() {
        return numFree;
    }

    /** Unreferenced blocks that still hold cached content. */
    public int numEvictable() {
        return numEvictable;
    }

    /** Blocks with reference count >= 1. */
    public int numUsed() {
        return numBlocks - numFree - numEvictable;
    }

    public int refCount(int block) {
        checkId(block);
        return refCounts[block];
    }

    public boolean isEvictable(int block) {
        checkId(block);
        return evictable[block];
    }

    /** Takes one block (count 1), or returns {@link #NO_BLOCK} when none is allocatable. */
    int allocate() {
        int block;
        if (numFree > 0) {
            block = freeStack[--numFree];
        } else if (lruHead != NO_BLOCK) {
            block = lruHead;
            unlink(block);
            for (EvictionListener l : evictionListeners) {
                l.onEvict(block);
            }
        } else {
            return NO_BLOCK;
        }
        refCounts[block] = 1;
        return block;
    }

    /** Adds an owner to a used block, or revives an evictable one (count 0 -> 1). */
    void retain(int block) {
        checkId(block);
        if (evictable[block]) {
            unlink(block);
        } else if (refCounts[block] == 0) {
            throw new IllegalArgumentException("block=" + block + " is free and cannot be retained");
        }
        refCounts[block]++;
    }

    /**
     * Drops one owner. At count 0 the block becomes evictable when {@code keepCached} (it holds
     * cached content) and free otherwise.
     */
    void release(int block, boolean keepCached) {
        checkId(block);
        if (refCounts[block] == 0) {
            throw new IllegalArgumentException("block=" + block + " is already free (double free)");
        }
        if (--refCounts[block] > 0) {
            return;
        }
        if (keepCached) {
            appendLru(block);
        } else {
            freeStack[numFree++] = block;
        }
    }

    /** Turns an evictable block into a free one (its cached content was dropped). */
    void dropCached(int block) {
        checkId(block);
        if (!evictable[block]) {
            throw new IllegalArgumentException("block=" + block + " is not evictable");
        }
        unlink(block);
        freeStack[numFree++] = block;
    }

    /** Shuffles the order in which free blocks are handed out (tests and benchmarks use it). */
    void shuffleFree(Random random) {
        for (int i = numFree - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = freeStack[i];
            freeStack[i] = freeStack[j];
            freeStack[j] = t;
        }
    }

    /** Evictable blocks from next-to-evict to most recently released (for checks and tests). */
    int[] evictionOrder() {
        int[] order = new int[numEvictable];
        int i = 0;
        for (int b = lruHead; b != NO_BLOCK; b = lruNext[b]) {
            order[i++] = b;
        }
        return order;
    }

    /** True when {@code block} sits on the free stack (O(free blocks); for checks). */
    boolean isOnFreeStack(int block) {
        for (int i = 0; i < numFree; i++) {
            if (freeStack[i] == block) {
                return true;
            }
        }
        return false;
    }

    /** Verifies the pool's own invariants; throws AssertionError naming the first violation. */
    void verify() {
        boolean[] seen = new boolean[numBlocks];
        for (int i = 0; i < numFree; i++) {
            int b = freeStack[i];
            check(!seen[b], "block " + b + " twice on the free stack");
            check(refCounts[b] == 0 && !evictable[b], "free block " + b + " has refCount=" + refCounts[b]);
            seen[b] = true;
        }
        int count = 0;
        for (int b = lruHead; b != NO_BLOCK; b = lruNext[b]) {
            check(!seen[b], "evictable block " + b + " is also free or listed twice");
            check(evictable[b] && refCounts[b] == 0, "evictable block " + b + " has refCount=" + refCounts[b]);
            seen[b] = true;
            count++;
        }
        check(count == numEvictable, "LRU list length " + count + " != numEvictable " + numEvictable);
        int used = 0;
        for (int b = 0; b < numBlocks; b++) {
            if (!seen[b]) {
                check(refCounts[b] > 0, "block " + b + " is neither free, evictable nor referenced");
                used++;
            }
        }
        check(numFree + numEvictable + used == numBlocks, "free + evictable + used != total");
    }

    private void appendLru(int block) {
        evictable[block] = true;
        lruPrev[block] = lruTail;
        lruNext[block] = NO_BLOCK;
        if (lruTail == NO_BLOCK) {
            lruHead = block;
        } else {
            lruNext[lruTail] = block;
        }
        lruTail = block;
        numEvictable++;
    }

    private void unlink(int block) {
        int p = lruPrev[block];
        int n = lruNext[block];
        if (p == NO_BLOCK) {
            lruHead = n;
        } else {
            lruNext[p] = n;
        }
        if (n == NO_BLOCK) {
            lruTail = p;
        } else {
            lruPrev[n] = p;
        }
        evictable[block] = false;
        numEvictable--;
    }

    private void checkId(int block) {
        if (block < 0 || block >= numBlocks) {
            throw new IllegalArgumentException("block=" + block + " is outside [0, " + numBlocks + ")");
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError("cache invariant broken: " + what);
        }
    }
}
