package dev.pagedattn.cache;

import dev.pagedattn.quant.KvScales;
import dev.pagedattn.quant.QuantFormat;

/**
 * The KV cache manager (vLLM's KVCacheManager): sequences and their page tables over a
 * {@link BlockPool}, the K/V in a {@link KvStore} (one K and one V pool per layer; one pool for a latent cache,
 * {@link KvCacheConfig#latent}).
 *
 * <p>Life of a sequence: {@link #createSequence()}, {@link #append(int, int)} reserves slots (taking
 * blocks) and {@link #write} stores their K/V ({@link #appendTokens} does both), {@link #fork}
 * shares every block with a new sequence, {@link #free} gives them back. Shared blocks stay
 * immutable: an append into a shared, partly filled last block and a write into any shared or
 * prefix-cached block copy it first, so every reserved slot stays writable by its owner. An
 * append or write that needs more blocks than {@link #numAllocatableBlocks()} throws
 * {@link OutOfBlocksException} and changes nothing ({@link #canAppend} asks first).
 *
 * <p>Thread safety: every method is {@code synchronized} on this cache. Attention reads the pools
 * without the lock: do not change a sequence while a decode that reads it runs. A batch taken
 * before one of its sequences was freed or copied is refused ({@link DecodeBatch#requireFits}).
 */
public final class KvCache {
    private final KvCacheConfig config;
    private final BlockPool pool;
    private final KvStore store;
    private final KvScales scales; // null for fp16/fp32
    private final BlockAllocator allocator;
    private final SequenceRegistry sequences = new SequenceRegistry();
    private PrefixCache prefixCache; // null unless enablePrefixCaching()
    private SwapSpace swapSpace;     // null unless enableSwapSpace()
    private final boolean sharedPool; // a hybrid cache's group on a pool other groups share (HybridKvCache verifies the pool)

    /** A cache; an 8-bit dtype gets every scale 1.0, one per layer ({@link KvScales#unit}, vLLM's default). */
    public KvCache(KvCacheConfig config) {
        this(config, null);
    }

    /**
     * A cache with the scales of its 8-bit K/V ({@code null}: every scale 1.0); fp16/fp32 caches
     * take no scales. The scales' format, layers and KV heads must match {@code config}.
     */
    public KvCache(KvCacheConfig config, KvScales scales) {
        this(config, scales, config == null ? null : new BlockPool(config.numBlocks()), null);
    }

    /**
     * A cache whose blocks come from {@code pool}; with {@code base}, a hybrid cache's group on a pool it shares with the
     * other groups ({@code HybridKvCache.sharedPool}), its layers the first {@code config.numLayers()} layers of
     * {@code base}'s pools (null: pools of its own).
     */
    KvCache(KvCacheConfig config, KvScales scales, BlockPool pool, KvStore base) {
        if (config == null) {
            throw new IllegalArgumentException("config=null");
        }
        this.config = config;
        this.scales = checkScales(config, scales);
        this.pool = pool;
        this.store = new KvStore(config, this.scales, base);
        this.allocator = new BlockAllocator(config, pool, store);
        this.sharedPool = base != null;
    }

    /**
     * Whether this cache is a group of a {@link HybridKvCache} that shares one block pool among its groups: then its pool's
     * counts ({@link #numAllocatableBlocks}, {@link #numUsedBlocks}) are the whole pool's, its blocks' refcounts include
     * the other groups', and sequences change only through the hybrid cache (the TornadoVM backends refuse it).
     */
    public boolean sharesPool() {
        return sharedPool;
    }

    public KvCacheConfig config() {
        return config;
    }

    /** The scales of the 8-bit K/V, or null for fp16/fp32. */
    public KvScales scales() {
        return scales;
    }

    private static KvScales checkScales(KvCacheConfig config, KvScales scales) {
        QuantFormat format = config.dtype().format();
        if (format == null) {
            if (scales != null) {
                throw new IllegalArgumentException("dtype=" + config.dtype() + " takes no scales (scales are for 8-bit dtypes)");
            }
            return null;
        }
        if (scales == null) {
            return KvScales.unit(format, config.numLayers(), config.numKvHeads());
        }
        if (scales.format() != format || scales.numLayers() != config.numLayers() || scales.numKvHeads() != config.numKvHeads()) {
            throw new IllegalArgumentException("scales format=" + scales.format() + " numLayers=" + scales.numLayers()
                    + " numKvHeads=" + scales.numKvHeads() + " do not match dtype=" + config.dtype() + " numLayers="
                    + config.numLayers() + " numKvHeads=" + config.numKvHeads());
        }
        for (int l = 0; config.isLatent() && l < config.numLayers(); l++) {
            if (Float.floatToIntBits(scales.k(l, 0)) != Float.floatToIntBits(scales.v(l, 0))) {
                throw new IllegalArgumentException("scales of layer " + l + " are K " + scales.k(l, 0) + " V " + scales.v(l, 0)
                        + ": a latent cache's values are its keys' codes, so they need one scale");
            }
        }
        return scales;
    }

    public KvLayout layout() {
        return store.layout();
    }

    /** The K pool of {@code layer}; a sharded layer ({@link KvCacheConfig#poolShards()} > 1) has no single pool: use {@link #keys(int, int)}. */
    public KvPool keys(int layer) {
        return store.keys(layer, requireUnsharded(layer));
    }

    /**
     * The V pool of {@code layer}, unsharded layers only (see {@link #keys(int)}); a latent cache's is its K pool (the
     * values are the first {@code latentDim} elements of each vector).
     */
    public KvPool values(int layer) {
        return store.values(layer, requireUnsharded(layer));
    }

    /** The K pool array of {@code layer} holding KV heads {@code shard * headsPerShard ..} (one shard). */
    public KvPool keys(int layer, int shard) {
        return store.keys(layer, shard);
    }

    /** The V pool array of {@code layer} for {@code shard} (a latent cache: its K pool array). */
    public KvPool values(int layer, int shard) {
        return store.values(layer, shard);
    }

    private int requireUnsharded(int layer) {
        if (config.poolShards() > 1) {
            throw new IllegalStateException("layer=" + layer + " is split into poolShards=" + config.poolShards()
                    + " arrays of " + config.headsPerShard() + " KV heads: ask for keys(layer, shard)");
        }
        return 0;
    }

    /** Which slots changed, for executors that mirror the pools on a device. */
    public DirtySlotJournal dirtySlots() {
        return store.journal();
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

    /** Creates an empty sequence and returns its id. */
    public synchronized int createSequence() {
        return sequences.add(new PageTable());
    }

    public synchronized boolean contains(int seq) {
        return sequences.getOrNull(seq) != null;
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
        return allocator.blocksToAppend(table(seq), numTokens);
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
        int needed = allocator.blocksToAppend(t, numTokens);
        if (needed > pool.numAllocatable()) {
            throw new OutOfBlocksException(needed, pool.numAllocatable());
        }
        int first = t.numTokens();
        allocator.append(t, numTokens);
        verifyIfChecked();
        return first;
    }

    /**
     * Stores one token's K and V ({@code [numKvHeads][headDim]} each) at {@code position} of
     * {@code layer}; see {@link #writeTokens}. A latent cache takes {@code v} null.
     */
    public synchronized void write(int seq, int layer, int position, float[] k, float[] v) throws OutOfBlocksException {
        writeTokens(seq, layer, position, 1, k, v);
    }

    /**
     * Stores {@code numTokens} tokens' K and V ({@code [numTokens][numKvHeads][headDim]}) from
     * {@code firstPosition}, which must be reserved. A latent cache ({@link KvCacheConfig#latent}) takes its vectors
     * ({@code [numTokens][latentDim + ropeDim]}) as {@code k} and {@code v} null. A block that is shared or prefix-cached is
     * copied first (copy-on-write), so the other owners keep what they saw.
     *
     * @throws OutOfBlocksException when those copies need more blocks than are allocatable; nothing changed
     */
    public synchronized void writeTokens(int seq, int layer, int firstPosition, int numTokens, float[] k, float[] v)
            throws OutOfBlocksException {
        PageTable t = table(seq);
        store.requireLayer(layer);
        requireNonNegative("numTokens", numTokens);
        if (firstPosition < 0 || (long) firstPosition + numTokens > t.numTokens()) {
            throw new IllegalArgumentException("position=" + firstPosition + " numTokens=" + numTokens
                    + " is outside the reserved length=" + t.numTokens() + " of seq=" + seq);
        }
        int held = t.numReleased() * config.blockSize();
        if (numTokens > 0 && firstPosition < held) {
            throw new IllegalArgumentException("position=" + firstPosition + " of seq=" + seq + " is in a released block"
                    + " (positions < " + held + " were given back by releaseBefore)");
        }
        int width = config.tokenWidth();
        requireLength("k", k, (long) numTokens * width);
        requireValues(v, (long) numTokens * width);
        if (numTokens == 0) {
            return;
        }
        requireStorable(k, v);
        int bs = config.blockSize();
        int firstLogical = firstPosition / bs;
        int lastLogical = (firstPosition + numTokens - 1) / bs;
        int copies = allocator.copiesToWrite(t, firstLogical, lastLogical);
        if (copies > pool.numAllocatable()) {
            throw new OutOfBlocksException(copies, pool.numAllocatable());
        }
        allocator.makePrivate(t, firstLogical, lastLogical);
        for (int i = 0; i < numTokens; i++) {
            int pos = firstPosition + i;
            store.write(layer, t.block(pos / bs), pos % bs, k, v, i * width);
        }
        verifyIfChecked();
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
        requireValues(v, k.length);
        requireStorable(k, v); // before the append: a refused prompt reserves nothing
        int first = append(seq, n);
        writeTokens(seq, 0, first, n, k, v); // its blocks are fresh or copied: no further copy
        return first;
    }

    /** A new sequence sharing every block of {@code seq} (reference count + 1 each; its released blocks stay released). */
    public synchronized int fork(int seq) {
        PageTable parent = table(seq);
        for (int i = parent.numReleased(); i < parent.numBlocks(); i++) {
            pool.retain(parent.block(i));
        }
        int id = sequences.add(new PageTable(parent));
        if (prefixCache != null) {
            prefixCache.onFork(seq, id);
        }
        verifyIfChecked();
        return id;
    }

    /** Drops the sequence; blocks whose last owner it was go back to the pool, tail first. */
    public synchronized void free(int seq) {
        PageTable t = sequences.remove(seq);
        if (prefixCache != null) {
            prefixCache.onFree(seq);
        }
        allocator.releaseAll(t);
        verifyIfChecked();
    }

    /**
     * Gives back to the pool every block of {@code seq} whose slots all lie before {@code position} (vLLM's sliding-window
     * block freeing): logical block {@code j} once {@code (j + 1) * blockSize <= position}. The sequence keeps its length
     * and positions; the released logical blocks map to {@link PageTable#RELEASED}, and a block another sequence or the
     * prefix cache still holds stays with them. From then on the sequence's positions below
     * {@link #firstHeldPosition} can be neither written nor read, a decode must see it through a window that starts at
     * or after that position ({@code batch.window(W)}) and a prefill through a window its first query's does; any other
     * step is refused by name. A batch taken before the call is stale (take a new one). Releasing fewer blocks than
     * already released changes nothing.
     *
     * <p>A block holds its slots' K/V in every layer, so release only what no layer will read again: in a model whose
     * every layer attends through a window of {@code W} (Mistral 7B v0.1, Phi-3-mini), {@link #releaseOutsideWindow}
     * after each step; a model that mixes windowed and full layers (Gemma 2 and 3, gpt-oss) must keep its blocks here and
     * holds its layers in a {@link HybridKvCache} instead, whose windowed layers release on their own.
     *
     * @param position in {@code [0, length(seq)]}
     * @return the blocks this call released from the sequence's table
     */
    public synchronized int releaseBefore(int seq, int position) {
        PageTable t = table(seq);
        if (position < 0 || position > t.numTokens()) {
            throw new IllegalArgumentException("position=" + position + " is outside [0, " + t.numTokens() + "] of seq=" + seq);
        }
        int released = allocator.releaseLeading(t, position / config.blockSize());
        verifyIfChecked();
        return released;
    }

    /**
     * {@link #releaseBefore} at {@code max(0, length(seq) - window)}: keeps every block of the positions the sequence's
     * last token sees through a sliding window of {@code window} tokens, which every later decode step's window and every
     * later prefill chunk's window also cover. Call it after a step, before the next chunk's K/V are appended (a chunk of
     * {@code n} new tokens appended first would let it release what that chunk's first query still sees). With chunks
     * ({@link AttentionWindow#chunked}) it keeps the last token's chunk: the blocks wholly before it go back, so a chunked
     * layer holds at most a chunk's blocks plus one (vLLM's chunked local attention manager).
     *
     * @return the blocks released
     */
    public synchronized int releaseOutsideWindow(int seq, int window) {
        AttentionWindow.require("window", window);
        return releaseBefore(seq, DecodeBatch.firstVisible(table(seq).numTokens(), window));
    }

    /**
     * Moves {@code seq} to host memory and frees it (vLLM's swap preemption): the K/V of every block it holds, every layer,
     * are copied off the heap bit for bit (8-bit codes as codes), then {@link #free} gives its blocks back (a block another
     * sequence or the prefix cache holds stays with them). Batches holding {@code seq} are stale from then on.
     * {@link #swapIn} brings it back. With a swap space ({@link #enableSwapSpace}) the K/V go to its host blocks.
     *
     * @throws OutOfBlocksException when the swap space has too few free host blocks; nothing changed
     */
    public synchronized SwappedSequence swapOut(int seq) throws OutOfBlocksException {
        PageTable t = table(seq);
        int held = t.numBlocks() - t.numReleased();
        int[] hostBlocks = null;
        if (swapSpace != null) {
            hostBlocks = swapSpace.take(held);
            if (hostBlocks == null) {
                throw new OutOfBlocksException(held, swapSpace.numFree());
            }
        }
        SwappedSequence s = new SwappedSequence(this, t.numTokens(), t.numReleased(), held, store.blockBytes(),
                prefixCache == null ? null : prefixCache.tokensOf(seq), swapSpace, hostBlocks);
        for (int i = 0; i < held; i++) {
            store.exportBlock(t.block(t.numReleased() + i), s.data(), s.offset(i));
        }
        free(seq);
        return s;
    }

    /**
     * Sets {@code bytes} of host memory aside for {@link #swapOut} once (vLLM's {@code swap_space}): as many host blocks
     * (every layer's K and V of one block, {@link #swapBlockBytes()}) as fit, allocated and touched now, so a swap-out
     * copies at memory speed; without it each swap-out allocates fresh memory, whose first touch costs far more than the
     * copy. A swap-out that finds too few host blocks free throws {@link OutOfBlocksException}; a closed
     * {@link SwappedSequence} gives its host blocks back. Once per cache.
     *
     * @return the host blocks set aside
     */
    public synchronized int enableSwapSpace(long bytes) {
        if (swapSpace != null) {
            throw new IllegalStateException("the swap space is set aside already (" + swapSpace.numBlocks() + " host blocks)");
        }
        long blocks = bytes / store.blockBytes();
        if (bytes < 1 || blocks < 1 || blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("bytes=" + bytes + " holds " + blocks + " host blocks of " + store.blockBytes()
                    + " bytes: need at least one");
        }
        swapSpace = new SwapSpace((int) blocks, store.blockBytes());
        return (int) blocks;
    }

    /** Host bytes one swapped-out block takes: every layer's K and V of one block. */
    public long swapBlockBytes() {
        return store.blockBytes();
    }

    /** Free host blocks of the swap space ({@link #enableSwapSpace}), or -1 without one. */
    public synchronized int numFreeSwapBlocks() {
        return swapSpace == null ? -1 : swapSpace.numFree();
    }

    /** Whether {@link #swapOut} of {@code seq} would find its host blocks now (always, without a swap space). */
    public synchronized boolean canSwapOut(int seq) {
        PageTable t = table(seq);
        return swapSpace == null || t.numBlocks() - t.numReleased() <= swapSpace.numFree();
    }

    /** Whether {@link #swapIn} of {@code swapped} would find its blocks now. */
    public synchronized boolean canSwapIn(SwappedSequence swapped) {
        return requireOwn(swapped).numBlocks() <= pool.numAllocatable();
    }

    /**
     * Brings a sequence {@link #swapOut} moved to host memory back as a new sequence (a new id) with the same length,
     * released run and K/V, in blocks of its own; a sequence the prefix cache tracked keeps its token ids (its
     * {@code PrefixCache.append} and {@code commit} go on). Device mirrors send the blocks at their next step. The
     * {@code swapped} object stays valid until it is closed ({@link SwappedSequence#close}): it can be swapped in again.
     *
     * @throws OutOfBlocksException when the pool cannot supply its blocks; nothing changed
     */
    public synchronized int swapIn(SwappedSequence swapped) throws OutOfBlocksException {
        requireOwn(swapped);
        if (swapped.numBlocks() > pool.numAllocatable()) {
            throw new OutOfBlocksException(swapped.numBlocks(), pool.numAllocatable());
        }
        PageTable t = PageTable.startingReleased(swapped.numReleased());
        int bs = config.blockSize();
        for (int i = 0; i < swapped.numBlocks(); i++) {
            int b = allocator.take();
            int logical = swapped.numReleased() + i;
            store.importBlock(b, swapped.data(), swapped.offset(i), Math.min(bs, swapped.numTokens() - logical * bs));
            t.add(b);
        }
        t.setNumTokens(swapped.numTokens());
        int seq = sequences.add(t);
        if (prefixCache != null && swapped.tokens() != null) {
            prefixCache.onSwapIn(seq, swapped.tokens());
        }
        verifyIfChecked();
        return seq;
    }

    /**
     * Writes {@code seq} to {@code out} as one record (what vLLM's KV connectors move from a prefill instance to a decode
     * instance, or to disk): this cache's shape and 8-bit scales, the sequence's length and released run, the prefix
     * cache's token ids if it tracks them, and the K/V of every block it holds, every layer, bit for bit.
     * {@link #importSequence} reads it into a cache of the same shape, here or in another process. The sequence stays;
     * the cache's lock is held while the bytes are written.
     *
     * @return the bytes written
     */
    public synchronized long export(int seq, java.io.OutputStream out) throws java.io.IOException {
        PageTable t = table(seq);
        if (out == null) {
            throw new IllegalArgumentException("out=null");
        }
        return KvTransfer.write(this, store, t, prefixCache == null ? null : prefixCache.tokensOf(seq), out);
    }

    /**
     * Reads a record {@link #export} wrote and adds it as a new sequence (same length, released run and K/V; with prefix
     * caching on and token ids in the record, tracked from them, nothing of it published until {@link PrefixCache#commit}).
     * A record of another shape (layers, KV heads, head dim, block size, dtype, 8-bit scales) is refused by name before any
     * block is taken; a stream that ends early gives back what it took. Either way nothing changes.
     *
     * @throws OutOfBlocksException when the pool cannot hold its blocks
     * @return the new sequence's id
     */
    public synchronized int importSequence(java.io.InputStream in) throws java.io.IOException, OutOfBlocksException {
        if (in == null) {
            throw new IllegalArgumentException("in=null");
        }
        java.io.DataInputStream data = new java.io.DataInputStream(in);
        KvTransfer.Header h = KvTransfer.readHeader(this, store, data);
        if (h.numHeld() > pool.numAllocatable()) {
            throw new OutOfBlocksException(h.numHeld(), pool.numAllocatable());
        }
        PageTable t = PageTable.startingReleased(h.numReleased());
        byte[] block = new byte[Math.toIntExact(store.blockBytes())];
        java.lang.foreign.MemorySegment buffer = java.lang.foreign.MemorySegment.ofArray(block);
        int bs = config.blockSize();
        try {
            for (int i = 0; i < h.numHeld(); i++) {
                KvTransfer.readBlock(data, block, i, h.numHeld());
                int b = allocator.take();
                t.add(b);
                int logical = h.numReleased() + i;
                store.importBlock(b, buffer, 0, Math.min(bs, h.numTokens() - logical * bs));
            }
        } catch (java.io.IOException | RuntimeException e) {
            allocator.releaseAll(t); // nothing of it stays
            throw e;
        }
        t.setNumTokens(h.numTokens());
        int seq = sequences.add(t);
        if (prefixCache != null && h.tokenIds() != null) {
            prefixCache.onImport(seq, h.seed(), h.tokenIds());
        }
        verifyIfChecked();
        return seq;
    }

    private SwappedSequence requireOwn(SwappedSequence swapped) {
        if (swapped == null || swapped.source() != this) {
            throw new IllegalArgumentException("swapped=" + (swapped == null ? "null" : "a sequence of another cache")
                    + ": swap a sequence back into the cache it came from");
        }
        if (swapped.isClosed()) {
            throw new IllegalArgumentException("swapped was closed: its host memory is gone");
        }
        return swapped;
    }

    /**
     * Drops {@code seq}'s tokens from {@code length} on (the draft tokens speculative decoding rejected): the sequence keeps
     * its first {@code length} tokens, and the blocks past the one holding its last token go back to the pool, tail first
     * (a block another sequence or the prefix cache holds stays with them). The next append continues at {@code length};
     * a kept block that is shared or prefix-cached is copied before it is written, as always. Batches holding {@code seq}
     * are stale from then on.
     *
     * @param length in {@code [firstHeldPosition(seq), length(seq)]}
     * @return the blocks given back
     */
    public synchronized int truncate(int seq, int length) {
        PageTable t = table(seq);
        if (length < t.numReleased() * config.blockSize() || length > t.numTokens()) {
            throw new IllegalArgumentException("length=" + length + " is outside [" + t.numReleased() * config.blockSize() + ", "
                    + t.numTokens() + "] of seq=" + seq + (t.numReleased() > 0 ? " (the positions before were released)" : ""));
        }
        int released = allocator.releaseTrailing(t, Math.max(t.numReleased(), config.blocksFor(length)));
        t.setNumTokens(length);
        if (prefixCache != null) {
            prefixCache.onRewrite(seq, length, null);
        }
        verifyIfChecked();
        return released;
    }

    /**
     * Keeps, of {@code seq}'s tokens from {@code first} on, only those at {@code keep} (ascending), moved to positions
     * {@code first, first + 1, ...} in every layer, then {@link #truncate}s to {@code first + keep.length}: the accepted
     * path of a token tree verified by prefill with a {@code TreeMask} (drafts at {@code first ..}, the accepted ones at
     * {@code keep}), laid out as if it had been decoded one token at a time. With prefix caching the token ids move with
     * them. A kept block that is shared or prefix-cached is copied before it changes.
     *
     * @throws OutOfBlocksException when those copies need more blocks than are allocatable; nothing changed
     * @return the new length, {@code first + keep.length}
     */
    public synchronized int compact(int seq, int first, int[] keep) throws OutOfBlocksException {
        compactCheck(seq, first, keep);
        PageTable t = table(seq);
        int bs = config.blockSize();
        int moved = inPlace(first, keep);
        if (moved < keep.length) {
            int lo = (first + moved) / bs;
            int hi = (first + keep.length - 1) / bs;
            int copies = copiesToCompact(seq, first, keep);
            if (copies > pool.numAllocatable()) {
                throw new OutOfBlocksException(copies, pool.numAllocatable());
            }
            allocator.makePrivate(t, lo, hi);
            for (int i = moved; i < keep.length; i++) { // each source lies after every earlier destination
                int to = first + i;
                store.copySlot(t.block(keep[i] / bs), keep[i] % bs, t.block(to / bs), to % bs);
            }
        }
        if (prefixCache != null) {
            prefixCache.onRewrite(seq, first, keep);
        }
        truncate(seq, first + keep.length);
        return first + keep.length;
    }

    /** Names {@link #compact}'s bad argument, if any. */
    synchronized void compactCheck(int seq, int first, int[] keep) {
        PageTable t = table(seq);
        if (keep == null) {
            throw new IllegalArgumentException("keep=null (an empty array keeps none)");
        }
        if (first < t.numReleased() * config.blockSize() || first > t.numTokens()) {
            throw new IllegalArgumentException("first=" + first + " is outside [" + t.numReleased() * config.blockSize() + ", "
                    + t.numTokens() + "] of seq=" + seq);
        }
        for (int i = 0; i < keep.length; i++) {
            if (keep[i] < first + i || keep[i] >= t.numTokens() || (i > 0 && keep[i] <= keep[i - 1])) {
                throw new IllegalArgumentException("keep[" + i + "]=" + keep[i] + ": positions must ascend within [first=" + first
                        + ", length=" + t.numTokens() + ")");
            }
        }
    }

    /** Leading entries of {@code keep} already at {@code first, first + 1, ...}. */
    private static int inPlace(int first, int[] keep) {
        int n = 0;
        while (n < keep.length && keep[n] == first + n) {
            n++;
        }
        return n;
    }

    /** Blocks {@link #compact} takes from the pool for its copies (arguments valid). */
    synchronized int copiesToCompact(int seq, int first, int[] keep) {
        int moved = inPlace(first, keep);
        if (moved == keep.length) {
            return 0;
        }
        int bs = config.blockSize();
        return allocator.copiesToWrite(table(seq), (first + moved) / bs, (first + keep.length - 1) / bs);
    }

    /** The first position of {@code seq} whose block is still held: 0 unless {@link #releaseBefore} gave blocks back. */
    public synchronized int firstHeldPosition(int seq) {
        return table(seq).numReleased() * config.blockSize();
    }

    /** Element {@code dim} of K for (seq, layer, position, kvHead), found through the page table. */
    public synchronized float readK(int seq, int layer, int position, int kvHead, int dim) {
        int at = store.locate(table(seq), seq, position, kvHead, dim); // validates kvHead before it picks a shard
        return store.keys(layer, store.layout().shardOf(kvHead)).get(at);
    }

    /** Element {@code dim} of V for (seq, layer, position, kvHead), found through the page table. */
    public synchronized float readV(int seq, int layer, int position, int kvHead, int dim) {
        if (dim >= config.valueDim()) {
            throw new IllegalArgumentException("dim=" + dim + " is outside [0, valueDim=" + config.valueDim() + ")");
        }
        int at = store.locate(table(seq), seq, position, kvHead, dim);
        return store.values(layer, store.layout().shardOf(kvHead)).get(at);
    }

    /** Padded block tables and lengths for a decode over {@code seqs}. */
    public synchronized DecodeBatch batch(int... seqs) {
        return DecodeBatch.take(this, seqs, DecodeBatch.FIT);
    }

    /** Same, padded to {@code maxBlocksPerSeq} columns (fixed-size tables for device plans). */
    public synchronized DecodeBatch batchPadded(int maxBlocksPerSeq, int... seqs) {
        return DecodeBatch.take(this, seqs, maxBlocksPerSeq);
    }

    /** FlashInfer's CSR page table (indptr, indices, last_page_len) for {@code seqs}. */
    public synchronized CsrPageTable csr(int... seqs) {
        return CsrPageTable.of(batch(seqs));
    }

    /** Verifies every invariant now; throws AssertionError on the first violation. */
    public synchronized void verify() {
        if (!sharedPool) {
            pool.verify();
        }
        sequences.verify(config, sharedPool ? null : pool);
        if (prefixCache != null) {
            prefixCache.verify(!sharedPool);
        }
    }

    /** Turns on automatic prefix caching; see {@link PrefixCache}. Idempotent. */
    public synchronized PrefixCache enablePrefixCaching() {
        if (prefixCache == null) {
            prefixCache = new PrefixCache(this);
            pool.addEvictionListener(prefixCache::onEvict);
            allocator.setPrefixCache(prefixCache);
        }
        return prefixCache;
    }

    /** The prefix cache, or null when prefix caching is off. */
    public synchronized PrefixCache prefixCache() {
        return prefixCache;
    }

    // ---- package-private: PrefixCache, DecodeBatch, RandomKv, BlockAllocator ----

    BlockPool blockPool() {
        return pool;
    }

    KvStore store() {
        return store;
    }

    SequenceRegistry sequences() {
        return sequences;
    }

    private PageTable table(int seq) {
        return sequences.get(seq);
    }

    void verifyIfChecked() {
        if (Checks.CHECKED) {
            verify();
        }
    }

    int takeBlock() {
        return allocator.take();
    }

    /** 8-bit pools: every value checked finite before any is stored, so a refused write changes nothing. */
    private void requireStorable(float[] k, float[] v) {
        if (scales != null) {
            QuantFormat.requireFinite("k", k, 0, k.length);
            if (v != null) {
                QuantFormat.requireFinite("v", v, 0, v.length);
            }
        }
    }

    /** {@code v} holds {@code expected} elements; a latent cache takes none ({@code v} null: its values are its keys). */
    private void requireValues(float[] v, long expected) {
        if (!config.isLatent()) {
            requireLength("v", v, expected);
        } else if (v != null) {
            throw new IllegalArgumentException("v.length=" + v.length + ": a latent cache (latentDim=" + config.latentDim()
                    + ") stores one vector per token, its values the first latentDim elements of k; pass v=null");
        }
    }

    private static void requireNonNegative(String name, int value) {
        if (value < 0) {
            throw new IllegalArgumentException(name + "=" + value + " must be >= 0");
        }
    }

    private static void requireLength(String name, float[] a, long expected) {
        if (a == null || a.length != expected) {
            throw new IllegalArgumentException(name + ".length=" + (a == null ? "null" : a.length) + " expected " + expected);
        }
    }
}
