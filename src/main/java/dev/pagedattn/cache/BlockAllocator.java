package dev.pagedattn.cache;

/**
 * Hands page tables their physical blocks (vLLM's per-request block allocation): grows a table for
 * new tokens, gives it a private copy of a shared block before that block changes
 * (copy-on-write), and releases its blocks. A block is shared while another table references it
 * or while the prefix cache publishes it. Callers check capacity first ({@link #blocksToAppend},
 * {@link #copiesToWrite}), so every method here succeeds; the cache serialises every call.
 */
final class BlockAllocator {
    private final KvCacheConfig config;
    private final BlockPool pool;
    private final KvStore store;
    private PrefixCache prefixCache; // null unless prefix caching is on

    BlockAllocator(KvCacheConfig config, BlockPool pool, KvStore store) {
        this.config = config;
        this.pool = pool;
        this.store = store;
    }

    void setPrefixCache(PrefixCache prefixCache) {
        this.prefixCache = prefixCache;
    }

    /** Blocks that appending {@code numTokens} to {@code t} takes, the copy of a shared, partly filled last block included. */
    int blocksToAppend(PageTable t, int numTokens) {
        if (numTokens == 0) {
            return 0;
        }
        if (numTokens > Integer.MAX_VALUE - t.numTokens()) {
            throw new IllegalArgumentException("numTokens=" + numTokens + " on top of length=" + t.numTokens()
                    + " exceeds Integer.MAX_VALUE tokens");
        }
        int grow = config.blocksFor(t.numTokens() + numTokens) - t.numBlocks();
        return grow + (lastBlockNeedsCopy(t) ? 1 : 0);
    }

    /** Reserves {@code numTokens} slots at the end of {@code t}; capacity checked by the caller. */
    void append(PageTable t, int numTokens) {
        if (numTokens == 0) {
            return;
        }
        if (lastBlockNeedsCopy(t)) {
            copy(t, t.numBlocks() - 1);
        }
        int target = config.blocksFor(t.numTokens() + numTokens);
        while (t.numBlocks() < target) {
            t.add(take());
        }
        t.setNumTokens(t.numTokens() + numTokens);
    }

    /** Copies a write into logical blocks {@code [first, last]} of {@code t} needs. */
    int copiesToWrite(PageTable t, int first, int last) {
        int copies = 0;
        for (int logical = first; logical <= last; logical++) {
            copies += isShared(t.block(logical)) ? 1 : 0;
        }
        return copies;
    }

    /** Gives {@code t} a private copy of every shared block among logical blocks {@code [first, last]}. */
    void makePrivate(PageTable t, int first, int last) {
        for (int logical = first; logical <= last; logical++) {
            if (isShared(t.block(logical))) {
                copy(t, logical);
            }
        }
    }

    /** Drops {@code t}'s references, tail first: with prefix caching a sequence's tail is then evicted before its head. */
    void releaseAll(PageTable t) {
        releaseRange(t, t.numReleased(), t.numBlocks());
    }

    /**
     * Gives back logical blocks {@code [t.numReleased(), upTo)} of {@code t} (tail first, as {@link #releaseAll}) and maps
     * them to {@link PageTable#RELEASED}; returns how many.
     */
    int releaseLeading(PageTable t, int upTo) {
        int from = t.numReleased();
        if (upTo <= from) {
            return 0;
        }
        releaseRange(t, from, upTo);
        t.release(upTo);
        return upTo - from;
    }

    /** Gives back logical blocks {@code [keep, t.numBlocks())} of {@code t}, tail first, and drops them; returns how many. */
    int releaseTrailing(PageTable t, int keep) {
        int n = t.numBlocks() - keep;
        if (n <= 0) {
            return 0;
        }
        releaseRange(t, keep, t.numBlocks());
        t.dropTrailing(keep);
        return n;
    }

    private void releaseRange(PageTable t, int from, int to) {
        for (int i = to - 1; i >= from; i--) {
            release(t.block(i));
        }
    }

    /** One block from the pool (count 1); capacity checked by the caller. */
    int take() {
        int b = pool.allocate();
        assert b != BlockPool.NO_BLOCK : "allocation after a successful capacity check failed";
        return b;
    }

    private boolean isShared(int block) {
        return pool.refCount(block) > 1 || (prefixCache != null && prefixCache.isCached(block));
    }

    private boolean lastBlockNeedsCopy(PageTable t) {
        // a full last block (or none) is never written again: new tokens go to new blocks
        return t.numTokens() % config.blockSize() != 0 && isShared(t.block(t.numBlocks() - 1));
    }

    /** Gives logical block {@code logical} of {@code t} a private copy of its filled slots. */
    private void copy(PageTable t, int logical) {
        int from = t.block(logical);
        int to = take();
        int filled = Math.min(config.blockSize(), t.numTokens() - logical * config.blockSize());
        store.copyBlock(from, to, filled);
        t.replace(logical, to);
        release(from);
    }

    private void release(int block) {
        pool.release(block, prefixCache != null && prefixCache.isCached(block));
    }
}
