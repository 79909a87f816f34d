package dev.pagedattn.cache;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The KV cache manager: sequences, their page tables, the block pool and the K/V pools.
 *
 * <p>Life of a sequence: {@link #createSequence()}, then {@link #append(int, int)} reserves slots
 * for new tokens (allocating blocks as needed) and {@link #write} stores their K/V, or
 * {@link #appendTokens} does both; {@link #fork} shares every block with a new sequence;
 * {@link #free} gives the blocks back. A forked sequence's shared, partly filled last block is
 * copied on the first append into it (copy-on-write), so neither sequence sees the other's tokens.
 *
 * <p>Exhaustion: an append that needs more blocks than {@link #numAllocatableBlocks()} throws
 * {@link OutOfBlocksException} and changes nothing; {@link #canAppend} asks first.
 *
 * <p>Thread safety: every method is {@code synchronized} on this cache, so bookkeeping may be
 * called from any thread. Attention reads the pools without taking the lock: the caller must not
 * write, append to or free a sequence while a decode that reads it is running. Decodes of
 * sequences that are not being changed may run while other sequences are changed.
 */
public final class KvCache {
    private final KvCacheConfig config;
    private final KvLayout layout;
    private final BlockPool pool;
    private final KvPool keys;   // [numLayers][numBlocks][numKvHeads][blockSize][headDim]
    private final KvPool values; // same shape as keys
    private final Map<Integer, PageTable> sequences = new HashMap<>();
    private final List<BlockCopy> pendingCopies = new ArrayList<>();
    private PrefixCache prefixCache; // null unless enablePrefixCaching()
    private int[] dirtySlots;        // [numDirty] slot ids written since the last drain; null: not tracked
    private int numDirty;
    private int nextSequenceId;

    /** A physical block copy made by copy-on-write; device-resident pools must repeat it. */
    public record BlockCopy(int fromBlock, int toBlock, int numSlots) {
    }

    public KvCache(KvCacheConfig config) {
        this.config = config;
        this.layout = new KvLayout(config);
        this.pool = new BlockPool(config.numBlocks());
        this.keys = new KvPool(config.dtype(), layout.poolElements());
        this.values = new KvPool(config.dtype(), layout.poolElements());
    }

    public KvCacheConfig config() {
        return config;
    }

    public KvLayout layout() {
        return layout;
    }

    public KvPool keys() {
        return keys;
    }

    public KvPool values() {
        return values;
    }

    /** Read-only view of the block pool's counters. */
    public synchronized BlockPool pool() {
        return pool;
    }

    public synchronized int numAllocatableBlocks() {
        return pool.numAllocatable();
    }

    public synchronized int numUsedBlocks() {
        return pool.numUsed();
    }

    public synchronized int numSequences() {
        return sequences.size();
    }

    /**
     * Fills every element of both pools with uniform random values in [-1, 1), in parallel, for
     * benchmarks and tests that need large random caches fast. Deterministic for a seed.
     */
    public synchronized void fillUniform(long seed) {
        keys.fillUniform(seed);
        values.fillUniform(~seed);
        markAllDirty();
    }

    private void markAllDirty() {
        if (dirtySlots == null) {
            return;
        }
        for (int layer = 0; layer < config.numLayers(); layer++) {
            for (int b = 0; b < config.numBlocks(); b++) {
                for (int s = 0; s < config.blockSize(); s++) {
                    markDirty(layer, b, s);
                }
            }
        }
    }

    /** Randomises which physical blocks later allocations get (no effect on correctness). */
    public synchronized void shuffleFreeBlocks(long seed) {
        pool.shuffleFree(new Random(seed));
    }

    /** Creates an empty sequence and returns its id. */
    public synchronized int createSequence() {
        int id = nextSequenceId++;
        sequences.put(id, new PageTable());
        return id;
    }

    public synchronized boolean contains(int seq) {
        return sequences.containsKey(seq);
    }

    /** Tokens stored for {@code seq}. */
    public synchronized int length(int seq) {
        return table(seq).numTokens();
    }

    /** A snapshot of the sequence's page table. */
    public synchronized PageTable pageTable(int seq) {
        return new PageTable(table(seq));
    }

    /** Blocks that appending {@code numTokens} to {@code seq} would take from the pool. */
    public synchronized int blocksNeeded(int seq, int numTokens) {
        requireNonNegative("numTokens", numTokens);
        return blocksNeeded(table(seq), numTokens);
    }

    public synchronized boolean canAppend(int seq, int numTokens) {
        return blocksNeeded(seq, numTokens) <= pool.numAllocatable();
    }

    /**
     * Reserves slots for {@code numTokens} new tokens and returns the position of the first.
     * Copies a shared, partly filled last block first (copy-on-write).
     *
     * @throws OutOfBlocksException when the pool cannot supply the blocks; nothing changed
     */
    public synchronized int append(int seq, int numTokens) throws OutOfBlocksException {
        requireNonNegative("numTokens", numTokens);
        PageTable t = table(seq);
        int needed = blocksNeeded(t, numTokens);
        if (needed > pool.numAllocatable()) {
            throw new OutOfBlocksException(needed, pool.numAllocatable());
        }
        int first = t.numTokens();
        if (numTokens > 0) {
            copyLastBlockIfShared(t);
            int target = config.blocksFor(first + numTokens);
            while (t.numBlocks() < target) {
                t.add(takeBlock());
            }
            t.setNumTokens(first + numTokens);
        }
        verifyIfChecked();
        return first;
    }

    /**
     * Stores one token's K and V ({@code [numKvHeads][headDim]} each) at {@code position} of
     * {@code layer}. The position must be reserved and its block owned by this sequence alone.
     */
    public synchronized void write(int seq, int layer, int position, float[] k, float[] v) {
        writeTokens(seq, layer, position, 1, k, v);
    }

    /** Stores {@code numTokens} tokens' K and V ({@code [numTokens][numKvHeads][headDim]}) from {@code firstPosition}. */
    public synchronized void writeTokens(int seq, int layer, int firstPosition, int numTokens, float[] k, float[] v) {
        PageTable t = table(seq);
        if (layer < 0 || layer >= config.numLayers()) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + config.numLayers() + ")");
        }
        requireNonNegative("numTokens", numTokens);
        if (firstPosition < 0 || (long) firstPosition + numTokens > t.numTokens()) {
            throw new IllegalArgumentException("position=" + firstPosition + " numTokens=" + numTokens
                    + " is outside the reserved length=" + t.numTokens() + " of seq=" + seq);
        }
        int width = config.tokenWidth();
        requireLength("k", k, numTokens * width);
        requireLength("v", v, numTokens * width);
        for (int logical = firstPosition / config.blockSize(); logical <= (firstPosition + numTokens - 1) / config.blockSize()
                && numTokens > 0; logical++) {
            int block = t.block(logical);
            if (pool.refCount(block) > 1 || (prefixCache != null && prefixCache.isCached(block))) {
                throw new IllegalArgumentException("position in logicalBlock=" + logical + " of seq=" + seq
                        + " lies in block=" + block + " that is shared or prefix-cached; only new tokens can be written");
            }
        }
        int d = config.headDim();
        for (int i = 0; i < numTokens; i++) {
            int pos = firstPosition + i;
            int block = t.block(pos / config.blockSize());
            int slot = pos % config.blockSize();
            for (int h = 0; h < config.numKvHeads(); h++) {
                int at = layout.offset(layer, block, h, slot, 0);
                keys.write(at, k, i * width + h * d, d);
                values.write(at, v, i * width + h * d, d);
            }
            markDirty(layer, block, slot);
        }
    }

    /**
     * Reserves and writes a prompt's K and V ({@code [numTokens][numKvHeads][headDim]}) in a
     * single-layer cache; returns the first position.
     */
    public synchronized int appendTokens(int seq, float[] k, float[] v) throws OutOfBlocksException {
        if (config.numLayers() != 1) {
            throw new IllegalArgumentException("numLayers=" + config.numLayers()
                    + ": use append(seq, n) and writeTokens(seq, layer, ...) per layer");
        }
        if (k == null || k.length % config.tokenWidth() != 0) {
            throw new IllegalArgumentException("k.length=" + (k == null ? "null" : k.length)
                    + " is not a multiple of numKvHeads*headDim=" + config.tokenWidth());
        }
        int n = k.length / config.tokenWidth();
        requireLength("v", v, k.length);
        int first = append(seq, n);
        writeTokens(seq, 0, first, n, k, v);
        return first;
    }

    /** A new sequence sharing every block of {@code seq} (reference count + 1 each). */
    public synchronized int fork(int seq) {
        PageTable parent = table(seq);
        for (int i = 0; i < parent.numBlocks(); i++) {
            pool.retain(parent.block(i));
        }
        int id = nextSequenceId++;
        sequences.put(id, new PageTable(parent));
        if (prefixCache != null) {
            prefixCache.onFork(seq, id);
        }
        verifyIfChecked();
        return id;
    }

    /** Drops the sequence; blocks whose last owner it was go back to the pool, tail first. */
    public synchronized void free(int seq) {
        PageTable t = table(seq);
        sequences.remove(seq);
        if (prefixCache != null) {
            prefixCache.onFree(seq);
        }
        // Tail first: with prefix caching, a sequence's tail is then evicted before its head.
        for (int i = t.numBlocks() - 1; i >= 0; i--) {
            releaseBlock(t.block(i));
        }
        verifyIfChecked();
    }

    /** Element {@code dim} of K for (seq, layer, position, kvHead), found through the page table. */
    public synchronized float readK(int seq, int layer, int position, int kvHead, int dim) {
        return keys.get(locate(seq, layer, position, kvHead, dim));
    }

    /** Element {@code dim} of V for (seq, layer, position, kvHead), found through the page table. */
    public synchronized float readV(int seq, int layer, int position, int kvHead, int dim) {
        return values.get(locate(seq, layer, position, kvHead, dim));
    }

    /** Padded block tables and lengths for a decode over {@code seqs}. */
    public synchronized DecodeBatch batch(int... seqs) {
        int max = 0;
        for (int s : seqs) {
            max = Math.max(max, table(s).numBlocks());
        }
        return batchPadded(max, seqs);
    }

    /** Same, padded to {@code maxBlocksPerSeq} columns (fixed-size tables for device plans). */
    public synchronized DecodeBatch batchPadded(int maxBlocksPerSeq, int... seqs) {
        if (seqs == null || seqs.length == 0) {
            throw new IllegalArgumentException("seqs is empty: a batch needs at least one sequence");
        }
        int[] tables = new int[seqs.length * Math.max(1, maxBlocksPerSeq)];
        java.util.Arrays.fill(tables, BlockPool.NO_BLOCK);
        int[] lengths = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            PageTable t = table(seqs[i]);
            if (t.numBlocks() > maxBlocksPerSeq) {
                throw new IllegalArgumentException("maxBlocksPerSeq=" + maxBlocksPerSeq + " < blocks=" + t.numBlocks()
                        + " of seq=" + seqs[i]);
            }
            t.copyTo(tables, i * Math.max(1, maxBlocksPerSeq));
            lengths[i] = t.numTokens();
        }
        return new DecodeBatch(seqs.clone(), Math.max(1, maxBlocksPerSeq), tables, lengths, config);
    }

    /** FlashInfer's CSR page table (indptr, indices, last_page_len) for {@code seqs}. */
    public synchronized CsrPageTable csr(int... seqs) {
        return CsrPageTable.of(batch(seqs));
    }

    /**
     * Copy-on-write copies made since the last call, for executors that hold the pools elsewhere.
     * The list grows until drained: a caller that uses it drains it every step.
     */
    public synchronized List<BlockCopy> drainBlockCopies() {
        List<BlockCopy> out = List.copyOf(pendingCopies);
        pendingCopies.clear();
        return out;
    }

    /**
     * Starts recording which token slots are written (by writes and by copy-on-write), for an
     * executor that mirrors the pools on a device and must send only what changed. Idempotent.
     */
    public synchronized void trackDirtySlots() {
        if (dirtySlots == null) {
            dirtySlots = new int[64];
        }
    }

    /**
     * Slots written since the last call, each once, ascending, as ids
     * {@code (layer * numBlocks + block) * blockSize + slot}; see {@link #slotOffset}.
     */
    public synchronized int[] drainDirtySlots() {
        if (dirtySlots == null) {
            throw new IllegalStateException("dirty-slot tracking is off: call trackDirtySlots() first");
        }
        int[] out = java.util.Arrays.stream(dirtySlots, 0, numDirty).sorted().distinct().toArray();
        numDirty = 0;
        return out;
    }

    /** Pool offset of (layer, block, head 0, slot, dim 0) for a slot id from {@link #drainDirtySlots}. */
    public int slotOffset(int slotId) {
        int slot = slotId % config.blockSize();
        int lb = slotId / config.blockSize();
        return layout.offset(lb / config.numBlocks(), lb % config.numBlocks(), 0, slot, 0);
    }

    /** Verifies every invariant now; throws AssertionError on the first violation. */
    public synchronized void verify() {
        pool.verify();
        int[] refs = new int[config.numBlocks()];
        for (Map.Entry<Integer, PageTable> e : sequences.entrySet()) {
            PageTable t = e.getValue();
            BlockPool.check(t.numBlocks() == config.blocksFor(t.numTokens()),
                    "seq " + e.getKey() + " has " + t.numBlocks() + " blocks for " + t.numTokens() + " tokens");
            for (int i = 0; i < t.numBlocks(); i++) {
                refs[t.block(i)]++;
            }
        }
        for (int b = 0; b < refs.length; b++) {
            BlockPool.check(refs[b] == pool.refCount(b),
                    "block " + b + " has refCount=" + pool.refCount(b) + " but " + refs[b] + " page-table references");
        }
        if (prefixCache != null) {
            prefixCache.verify();
        }
    }

    // ---- prefix caching (see PrefixCache) ----

    /** Turns on automatic prefix caching; see {@link PrefixCache}. Idempotent. */
    public synchronized PrefixCache enablePrefixCaching() {
        if (prefixCache == null) {
            prefixCache = new PrefixCache(this);
            pool.setEvictionListener(prefixCache::onEvict);
        }
        return prefixCache;
    }

    /** The prefix cache, or null when prefix caching is off. */
    public synchronized PrefixCache prefixCache() {
        return prefixCache;
    }

    // ---- package-private helpers for PrefixCache ----

    BlockPool blockPool() {
        return pool;
    }

    PageTable table(int seq) {
        PageTable t = sequences.get(seq);
        if (t == null) {
            throw new IllegalArgumentException("seq=" + seq + " does not exist");
        }
        return t;
    }

    int newSequence(PageTable table) {
        int id = nextSequenceId++;
        sequences.put(id, table);
        return id;
    }

    void verifyIfChecked() {
        if (Checks.CHECKED) {
            verify();
        }
    }

    int takeBlock() {
        int b = pool.allocate();
        assert b != BlockPool.NO_BLOCK : "allocation after a successful capacity check failed";
        return b;
    }

    private void releaseBlock(int block) {
        pool.release(block, prefixCache != null && prefixCache.isCached(block));
    }

    private void markDirty(int layer, int block, int slot) {
        if (dirtySlots == null) {
            return;
        }
        if (numDirty == dirtySlots.length) {
            dirtySlots = java.util.Arrays.copyOf(dirtySlots, numDirty * 2);
        }
        dirtySlots[numDirty++] = (layer * config.numBlocks() + block) * config.blockSize() + slot;
    }

    private int blocksNeeded(PageTable t, int numTokens) {
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

    private boolean lastBlockNeedsCopy(PageTable t) {
        if (t.numTokens() % config.blockSize() == 0) {
            return false; // last block full (or none): new tokens go to new blocks
        }
        int last = t.block(t.numBlocks() - 1);
        return pool.refCount(last) > 1 || (prefixCache != null && prefixCache.isCached(last));
    }

    private void copyLastBlockIfShared(PageTable t) {
        if (!lastBlockNeedsCopy(t)) {
            return;
        }
        int logical = t.numBlocks() - 1;
        int from = t.block(logical);
        int to = takeBlock();
        int filled = t.numTokens() % config.blockSize();
        for (int layer = 0; layer < config.numLayers(); layer++) {
            for (int h = 0; h < config.numKvHeads(); h++) {
                int src = layout.tileBase(layer, from, h);
                int dst = layout.tileBase(layer, to, h);
                keys.copy(src, dst, filled * config.headDim());
                values.copy(src, dst, filled * config.headDim());
            }
        }
        pendingCopies.add(new BlockCopy(from, to, filled));
        for (int layer = 0; layer < config.numLayers(); layer++) {
            for (int slot = 0; slot < filled; slot++) {
                markDirty(layer, to, slot);
            }
        }
        t.replace(logical, to);
        releaseBlock(from);
    }

    private int locate(int seq, int layer, int position, int kvHead, int dim) {
        PageTable t = table(seq);
        if (position < 0 || position >= t.numTokens()) {
            throw new IllegalArgumentException("position=" + position + " is outside [0, " + t.numTokens() + ") of seq=" + seq);
        }
        if (layer < 0 || layer >= config.numLayers() || kvHead < 0 || kvHead >= config.numKvHeads()
                || dim < 0 || dim >= config.headDim()) {
            throw new IllegalArgumentException("layer=" + layer + " kvHead=" + kvHead + " dim=" + dim + " is outside the cache shape");
        }
        return layout.offset(layer, t.block(position / config.blockSize()), kvHead, position % config.blockSize(), dim);
    }

    private static void requireNonNegative(String name, int value) {
        if (value < 0) {
            throw new IllegalArgumentException(name + "=" + value + " must be >= 0");
        }
    }

    private static void requireLength(String name, float[] a, int expected) {
        if (a == null || a.length != expected) {
            throw new IllegalArgumentException(name + ".length=" + (a == null ? "null" : a.length) + " expected " + expected);
        }
    }
}
