package dev.pagedattn.cache;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Automatic prefix caching: full blocks are shared across sequences by content.
 *
 * <p>Every full block gets a 64-bit hash chained from its parent block's hash and its tokens'
 * ids ({@link #blockHash}); the first block's parent is a seed derived from an optional salt, so
 * tenants with different salts never share. A hit is confirmed by comparing the stored parent
 * hash and token ids, so a hash collision can never hand out wrong K/V.
 *
 * <p>Workflow: {@link #admit} creates a sequence for a prompt, reusing the longest cached chain of
 * full blocks and reserving the rest; the caller writes K/V for positions from
 * {@link Admission#numCachedTokens()} on (the last prompt token is always recomputed, as in
 * vLLM), then calls {@link #commit} to publish the sequence's full blocks. {@link #append} adds
 * generated tokens. When a sequence is freed its published blocks stay cached and become
 * evictable: the pool hands out never-cached blocks first, then evicts least recently released
 * blocks, and a sequence releases its tail before its head. Blocks in use are never evicted.
 *
 * <p>Thread safety: every method locks the owning {@link KvCache}.
 */
public final class PrefixCache {
    private static final long SEED = 0x5EEDL;

    /** A sequence made by {@link #admit}: its first {@code numCachedTokens} tokens' K/V are already stored. */
    public record Admission(int seq, int numCachedTokens, int numPromptTokens) {
        public int numCachedBlocks(int blockSize) {
            return numCachedTokens / blockSize;
        }
    }

    /**
     * Counters since creation (or the last {@link #reset}). {@code requests} and
     * {@code blockLookups} count every {@link #admit}, also one refused for lack of blocks (it did
     * look the prefix up); hits and tokens reused count only admissions that went through.
     */
    public record Metrics(long requests, long blockLookups, long blockHits, long tokensReused, long evictions,
                          int numCachedBlocks, int numUsedBlocks, int numBlocks) {
        /** Block hits / block lookups, 0 when nothing was looked up. */
        public double hitRate() {
            return blockLookups == 0 ? 0 : (double) blockHits / blockLookups;
        }

        /** Used blocks / all blocks. */
        public double poolUsage() {
            return (double) numUsedBlocks / numBlocks;
        }
    }

    /**
     * The host tier's counters ({@link #enableHostOffload}): blocks copied to host memory as the pool evicted them,
     * brought back for a prompt that found them there, dropped to make room, held now, and its capacity in blocks.
     */
    public record HostMetrics(long offloaded, long restored, long dropped, int numHeld, int numBlocks) {
    }

    /**
     * What {@link #admit} would do for a prompt now, changing nothing (a scheduler's look before it admits, or a router's
     * choice of the instance with the longest hit; vLLM's {@code get_computed_blocks}): the tokens it would reuse, how many
     * of their blocks come back from host memory, the blocks it would take from the pool and how many the pool can give.
     */
    public record Lookup(int numCachedTokens, int numHostBlocks, int blocksNeeded, int blocksAllocatable) {
        /** Whether the admission would go through now. */
        public boolean fits() {
            return blocksNeeded <= blocksAllocatable;
        }
    }

    /** {@link #admit(int[], String)}'s {@link Lookup}: nothing changes, nothing is counted. */
    public Lookup lookup(int[] tokenIds, String salt) {
        return lookup(tokenIds, salt, DecodeBatch.NO_WINDOW);
    }

    /** {@link #admit(int[], String, int)}'s {@link Lookup}: nothing changes, nothing is counted. */
    public Lookup lookup(int[] tokenIds, String salt, int window) {
        AttentionWindow.require("window", window);
        synchronized (cache) {
            int[] chain = cachedChain(tokenIds, salt);
            int hit = longestHit(new int[][] {chain}, new int[] {window}, blockSize);
            return lookup(plan(tokenIds, salt, chain, hit, firstNeeded(hit, window, blockSize)));
        }
    }

    /** What {@code p} would do. */
    Lookup lookup(Plan p) {
        int host = 0;
        for (int b : p.hits()) {
            host += b < MISS ? 1 : 0;
        }
        return new Lookup(p.numHits() * blockSize, host, p.needed(), p.allocatable());
    }

    /** A prompt block neither the device nor the host tier holds ({@link #cachedChain}). */
    static final int MISS = -1;

    private final KvCache cache;
    private final int blockSize;
    private HostTier host;              // null unless enableHostOffload
    private java.util.ArrayList<KvEvent> events; // null unless enableEvents
    private final Map<Long, Integer> blockByHash = new HashMap<>();
    private final boolean[] cached;     // [numBlocks]
    private final long[] hashOf;        // [numBlocks]
    private final long[] parentHashOf;  // [numBlocks]
    private final int[] tokensOf;       // [numBlocks][blockSize] token ids of cached blocks
    private final Map<Integer, SeqTokens> tokens = new HashMap<>();
    private long requests;
    private long blockLookups;
    private long blockHits;
    private long tokensReused;
    private long evictions;

    /** Token ids of one sequence and how far its blocks are published. */
    static final class SeqTokens {
        long seed;
        int[] ids = new int[16];
        int length;
        int numPublished;       // leading full blocks already hashed
        long lastHash;          // hash of block numPublished - 1 (or seed)

        SeqTokens copy() {
            SeqTokens c = new SeqTokens();
            c.seed = seed;
            c.ids = ids.clone();
            c.length = length;
            c.numPublished = numPublished;
            c.lastHash = lastHash;
            return c;
        }

        void add(int[] more) {
            if (length + more.length > ids.length) {
                ids = Arrays.copyOf(ids, Math.max(ids.length * 2, length + more.length));
            }
            System.arraycopy(more, 0, ids, length, more.length);
            length += more.length;
        }
    }

    PrefixCache(KvCache cache) {
        this.cache = cache;
        int n = cache.config().numBlocks();
        this.blockSize = cache.config().blockSize();
        this.cached = new boolean[n];
        this.hashOf = new long[n];
        this.parentHashOf = new long[n];
        this.tokensOf = new int[n * blockSize];
    }

    /** The chained hash of a block: parent's hash and the block's {@code blockSize} token ids. */
    public static long blockHash(long parentHash, int[] tokenIds, int from, int count) {
        long h = mix(parentHash ^ 0x9E3779B97F4A7C15L);
        for (int i = 0; i < count; i++) {
            h = mix(h ^ (tokenIds[from + i] * 0xC2B2AE3D27D4EB4FL + i));
        }
        return h;
    }

    /** The parent hash of a sequence's first block for {@code salt} (null or empty: no salt). */
    public static long seedFor(String salt) {
        if (salt == null || salt.isEmpty()) {
            return SEED;
        }
        long h = SEED;
        for (byte b : salt.getBytes(StandardCharsets.UTF_8)) {
            h = mix(h ^ b);
        }
        return mix(h ^ salt.length());
    }

    /**
     * Creates a sequence holding {@code tokenIds}: the longest cached chain of full blocks is
     * shared (never the block holding the last token), the rest is reserved.
     *
     * @throws OutOfBlocksException when the rest does not fit; nothing changed
     */
    public Admission admit(int[] tokenIds, String salt) throws OutOfBlocksException {
        synchronized (cache) {
            int[] chain = cachedChain(tokenIds, salt);
            int numHits = 0;
            while (numHits < chain.length && chain[numHits] != MISS) {
                numHits++;
            }
            return admit(plan(tokenIds, salt, chain, numHits, 0));
        }
    }

    /**
     * Creates a sequence holding {@code tokenIds} for a model whose every layer attends through a sliding window of
     * {@code window} tokens (Mistral 7B v0.1) or through chunks ({@link AttentionWindow#chunked}): the longest hit whose blocks that window sees from the first recomputed
     * token on are cached (earlier blocks may have been evicted or released), the sequence starting without the blocks
     * before them ({@link PageTable#RELEASED}, as after {@link KvCache#releaseBefore}); {@link DecodeBatch#NO_WINDOW}
     * is {@link #admit(int[], String)}.
     *
     * @throws OutOfBlocksException when the rest does not fit; nothing changed
     */
    public Admission admit(int[] tokenIds, String salt, int window) throws OutOfBlocksException {
        AttentionWindow.require("window", window);
        synchronized (cache) {
            int[] chain = cachedChain(tokenIds, salt);
            int hit = longestHit(new int[][] {chain}, new int[] {window}, blockSize);
            return admit(plan(tokenIds, salt, chain, hit, firstNeeded(hit, window, blockSize)));
        }
    }

    /**
     * The largest number of leading prompt blocks that every one of several caches can serve, cache {@code c} holding
     * block {@code i} as {@code chains[c][i]} (-1: not cached; {@link #cachedChain}) and reading through
     * {@code windows[c]} ({@link DecodeBatch#NO_WINDOW}: every block before the hit); 0 when none.
     */
    static int longestHit(int[][] chains, int[] windows, int blockSize) {
        int reusable = chains[0].length;
        int[][] lastMiss = new int[chains.length][reusable + 1]; // lastMiss[c][i]: the last uncached block before i, or -1
        for (int c = 0; c < chains.length; c++) {
            lastMiss[c][0] = -1;
            for (int i = 0; i < reusable; i++) {
                lastMiss[c][i + 1] = chains[c][i] == MISS ? i : lastMiss[c][i];
            }
        }
        for (int hit = reusable; hit > 0; hit--) {
            boolean all = true;
            for (int c = 0; c < chains.length && all; c++) {
                all = lastMiss[c][hit] < firstNeeded(hit, windows[c], blockSize);
            }
            if (all) {
                return hit;
            }
        }
        return 0;
    }

    /**
     * The first block a reader through {@code window} needs when a prompt's first {@code hit} blocks are reused: the block
     * of position {@code hit * blockSize - window + 1}, the first the first recomputed token sees (0 without a window; with
     * chunks the start of that token's chunk, so a hit that ends where a chunk starts needs none of its blocks).
     */
    static int firstNeeded(int hit, int window, int blockSize) {
        if (window == DecodeBatch.NO_WINDOW || hit == 0) {
            return 0;
        }
        long first = (long) hit * blockSize;
        if (AttentionWindow.isChunked(window)) {
            return (int) ((first - first % AttentionWindow.chunkSize(window)) / blockSize);
        }
        long firstSeen = first - window + 1;
        return (int) (Math.max(0, firstSeen) / blockSize);
    }

    /**
     * For each block of {@code tokenIds} before the one holding its last token (those a hit may reuse), the cached block
     * holding the same tokens after the same chain of parents, or -1. A block may be cached while one before it is not
     * (evicted): a sliding window's admission needs only those its window sees ({@code HybridKvCache.admit}).
     */
    int[] cachedChain(int[] tokenIds, String salt) {
        if (tokenIds == null || tokenIds.length == 0) {
            throw new IllegalArgumentException("tokenIds.length=" + (tokenIds == null ? "null" : 0) + " must be >= 1");
        }
        int[] chain = new int[(tokenIds.length - 1) / blockSize]; // the last token is always recomputed
        long parent = seedFor(salt);
        for (int i = 0; i < chain.length; i++) {
            long h = blockHash(parent, tokenIds, i * blockSize, blockSize);
            Integer b = blockByHash.get(h);
            chain[i] = b != null && matches(b, parent, tokenIds, i * blockSize) ? b : MISS;
            if (chain[i] == MISS && host != null) {
                int slot = host.find(h, parent, tokenIds, i * blockSize);
                chain[i] = slot < 0 ? MISS : onHost(slot);
            }
            parent = h;
        }
        return chain;
    }

    /** A {@link #cachedChain} entry for host block {@code slot}: below {@link #MISS}. */
    static int onHost(int slot) {
        return MISS - 1 - slot;
    }

    /** The host block of a {@link #cachedChain} entry below {@link #MISS}. */
    static int hostSlot(int entry) {
        return MISS - 1 - entry;
    }

    /**
     * Sets {@code bytes} of host memory aside (allocated and touched now) for the blocks this cache evicts (vLLM's CPU KV
     * offloading): an evicted published block is copied there first, every layer, and a later prompt whose chain finds it
     * there gets it back in a fresh block ({@link #admit}, counted as a hit) instead of recomputing it; the least recently
     * used host block makes room for a new one. Returns the host blocks set aside (bytes / the cache's block bytes, every
     * layer's K and V).
     */
    public int enableHostOffload(long bytes) {
        synchronized (cache) {
            if (host != null) {
                throw new IllegalStateException("host offload is already on (" + host.numBlocks() + " blocks)");
            }
            long blockBytes = cache.store().blockBytes();
            long n = bytes / blockBytes;
            if (n < 1 || n > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("bytes=" + bytes + " must hold at least one block of " + blockBytes
                        + " bytes (every layer's K and V) and at most 2^31 - 9 of them");
            }
            host = new HostTier(cache.store(), blockSize, (int) n);
            if (events != null) {
                host.setEvents(events::add);
            }
            return (int) n;
        }
    }

    /**
     * Starts recording {@link KvEvent}s (vLLM's KV cache events): a {@code BlockStored} for every block published on the
     * device ({@link #commit}, a block brought back from host memory) or copied to host memory, a {@code BlockRemoved} for
     * every block evicted from the device, dropped from host memory or brought back from it, an {@code AllBlocksCleared}
     * for {@link #reset}; in the order they happened. Take them with {@link #takeEvents} (after each step, say): they are
     * kept until then. Idempotent.
     */
    public void enableEvents() {
        synchronized (cache) {
            if (events == null) {
                events = new java.util.ArrayList<>();
                if (host != null) {
                    host.setEvents(events::add);
                }
            }
        }
    }

    /** The events recorded since the last call (oldest first), now forgotten here. */
    public java.util.List<KvEvent> takeEvents() {
        synchronized (cache) {
            if (events == null) {
                throw new IllegalStateException("KV events are off: call enableEvents() first");
            }
            java.util.List<KvEvent> out = java.util.List.copyOf(events);
            events.clear();
            return out;
        }
    }

    /** The host tier's counters, or null when {@link #enableHostOffload} was not called. */
    public HostMetrics hostMetrics() {
        synchronized (cache) {
            return host == null ? null : new HostMetrics(host.offloaded(), host.restored(), host.dropped(), host.numHeld(),
                    host.numBlocks());
        }
    }

    /**
     * What admitting {@code tokenIds} would take ({@code chain}: its {@link #cachedChain}, nothing changed since): its
     * first {@code numHits} blocks shared from the cache, except the first {@code from}, which the sequence starts without
     * ({@link PageTable#RELEASED}: a sliding window does not see them); the rest new. Changes nothing; {@link #admit(Plan)} carries it out.
     */
    Plan plan(int[] tokenIds, String salt, int[] chain, int numHits, int from) {
        if (from < 0 || from > numHits || numHits > chain.length) {
            throw new IllegalArgumentException("from=" + from + " numHits=" + numHits + " outside 0 <= from <= numHits <= "
                    + chain.length);
        }
        int[] hits = Arrays.copyOfRange(chain, from, numHits);
        int revived = 0;
        int restored = 0;                                   // host blocks to bring back, each into a fresh block
        for (int b : hits) {
            if (b == MISS) {
                throw new IllegalArgumentException("block " + from + ".." + numHits + " of the prompt is not cached");
            }
            revived += b >= 0 && cache.blockPool().isEvictable(b) ? 1 : 0;
            restored += b < MISS ? 1 : 0;
        }
        long seed = seedFor(salt);
        long last = seed;
        for (int i = 0; i < numHits; i++) {
            last = blockHash(last, tokenIds, i * blockSize, blockSize);
        }
        int needed = cache.config().blocksFor(tokenIds.length) - numHits + restored;
        return new Plan(tokenIds.clone(), seed, from, numHits, hits, chain.length, needed,
                cache.blockPool().numAllocatable() - revived, last);
    }

    /**
     * An admission {@link #plan} made: {@code hits} are the cached blocks of prompt blocks {@code [from, numHits)},
     * {@code lastHash} the hash of block {@code numHits - 1} (or the seed).
     */
    record Plan(int[] tokenIds, long seed, int from, int numHits, int[] hits, int lookups, int needed, int allocatable,
                long lastHash) {
        boolean fits() {
            return needed <= allocatable;
        }
    }

    /** Carries out {@code p} (made under this cache's lock, nothing changed since); counts the request either way. */
    Admission admit(Plan p) throws OutOfBlocksException {
        return admit(p, false);
    }

    /**
     * Takes a reference on each of {@code p}'s device hits now, so that no block another group of a shared pool takes
     * before {@link #admit(Plan, boolean) admit(p, true)} evicts them (capacity checked by the caller, for every group).
     */
    void retainHits(Plan p) {
        synchronized (cache) {
            for (int b : p.hits()) {
                if (b >= 0) {
                    cache.blockPool().retain(b);
                }
            }
        }
    }

    /** {@link #admit(Plan)}; {@code hitsRetained}: {@link #retainHits} already took the device hits' references. */
    Admission admit(Plan p, boolean hitsRetained) throws OutOfBlocksException {
        synchronized (cache) {
            requests++;
            blockLookups += p.lookups();
            if (!p.fits()) {
                throw new OutOfBlocksException(p.needed(), p.allocatable());
            }
            blockHits += p.hits().length;
            tokensReused += (long) p.hits().length * blockSize;
            PageTable t = PageTable.startingReleased(p.from());
            int[] blocks = p.hits().clone();
            int restores = 0;
            for (int b : blocks) {                        // the device hits first: no block taken below evicts them
                if (b >= 0) {
                    if (!hitsRetained) {
                        cache.blockPool().retain(b);
                    }
                } else {
                    host.pin(hostSlot(b));                // nor does an offload drop a host hit
                    restores++;
                }
            }
            long parent = p.seed();
            for (int i = 0; restores > 0 && i < p.numHits(); i++) {
                long h = blockHash(parent, p.tokenIds(), i * blockSize, blockSize);
                int at = i - p.from();
                if (at >= 0 && blocks[at] < MISS) {       // from host memory into a fresh block, published again
                    int b = cache.takeBlock();
                    host.restore(hostSlot(blocks[at]), h, b);
                    publish(b, h, parent, p.tokenIds(), i * blockSize);
                    blocks[at] = b;
                }
                parent = h;
            }
            for (int b : blocks) {
                t.add(b);
            }
            int total = cache.config().blocksFor(p.tokenIds().length);
            for (int i = p.numHits(); i < total; i++) {
                t.add(cache.takeBlock());
            }
            t.setNumTokens(p.tokenIds().length);
            int seq = cache.sequences().add(t);
            SeqTokens st = new SeqTokens();
            st.seed = p.seed();
            st.add(p.tokenIds());
            st.numPublished = p.numHits();
            st.lastHash = p.lastHash();
            tokens.put(seq, st);
            cache.verifyIfChecked();
            return new Admission(seq, p.numHits() * blockSize, p.tokenIds().length);
        }
    }

    /** Reserves slots for generated tokens {@code tokenIds} of {@code seq}; returns the first position. */
    public int append(int seq, int[] tokenIds) throws OutOfBlocksException {
        if (tokenIds == null) {
            throw new IllegalArgumentException("tokenIds=null (pass the generated token ids, an empty array for none)");
        }
        synchronized (cache) {
            SeqTokens st = tracked(seq);
            int first = cache.append(seq, tokenIds.length);
            st.add(tokenIds);
            return first;
        }
    }

    /**
     * Publishes every full block of {@code seq} that is not yet cached. Call it once the K/V of
     * those tokens is written: from then on the blocks are immutable and shared by content.
     */
    public void commit(int seq) {
        synchronized (cache) {
            SeqTokens st = tracked(seq);
            PageTable t = cache.sequences().get(seq);
            int full = st.length / blockSize;
            for (int i = st.numPublished; i < full; i++) {
                long h = blockHash(st.lastHash, st.ids, i * blockSize, blockSize);
                int b = t.block(i);
                // a block released before its commit (KvCache.releaseBefore) is not published; the chain goes on
                if (b != PageTable.RELEASED && !cached[b] && !blockByHash.containsKey(h)) {
                    publish(b, h, st.lastHash, st.ids, i * blockSize);
                }
                st.lastHash = h;
                st.numPublished = i + 1;
            }
            cache.verifyIfChecked();
        }
    }

    /** Publishes block {@code b} as holding {@code ids[from ..]} under hash {@code h} after {@code parent}. */
    private void publish(int b, long h, long parent, int[] ids, int from) {
        cached[b] = true;
        hashOf[b] = h;
        parentHashOf[b] = parent;
        System.arraycopy(ids, from, tokensOf, b * blockSize, blockSize);
        blockByHash.put(h, b);
        if (events != null) {
            events.add(new KvEvent.BlockStored(h, parent, Arrays.copyOfRange(ids, from, from + blockSize), KvEvent.Medium.DEVICE));
        }
    }

    /** Drops every cached block; refused while any block is in use. */
    public void reset() {
        synchronized (cache) {
            BlockPool pool = cache.blockPool();
            if (pool.numUsed() > 0) {
                throw new IllegalStateException("reset refused: numUsedBlocks=" + pool.numUsed() + " are in use; free all sequences first");
            }
            for (int b : pool.evictionOrder()) {
                pool.dropCached(b);
                cached[b] = false;
            }
            blockByHash.clear();
            if (host != null) {
                host.clear();
            }
            requests = blockLookups = blockHits = tokensReused = evictions = 0;
            if (events != null) {
                events.add(new KvEvent.AllBlocksCleared());
            }
            cache.verifyIfChecked();
        }
    }

    public Metrics metrics() {
        synchronized (cache) {
            BlockPool pool = cache.blockPool();
            return new Metrics(requests, blockLookups, blockHits, tokensReused, evictions,
                    blockByHash.size(), pool.numUsed(), pool.numBlocks());
        }
    }

    /** True when {@code block} holds published content. */
    public boolean isCached(int block) {
        if (block < 0 || block >= cached.length) {
            throw new IllegalArgumentException("block=" + block + " is outside [0, " + cached.length + ")");
        }
        synchronized (cache) {
            return cached[block];
        }
    }

    /** Cached blocks in the order they would be evicted (next first). */
    public int[] evictionOrder() {
        synchronized (cache) {
            return cache.blockPool().evictionOrder();
        }
    }

    // ---- called by KvCache / BlockPool under the cache's lock ----

    void onEvict(int block) {
        if (!cached[block]) {
            return;
        }
        if (events != null) {
            events.add(new KvEvent.BlockRemoved(hashOf[block], KvEvent.Medium.DEVICE));
        }
        if (host != null) { // its content is still there: to host memory
            host.offload(block, hashOf[block], parentHashOf[block], tokensOf, block * blockSize);
        }
        blockByHash.remove(hashOf[block]);
        cached[block] = false;
        evictions++;
    }

    void onFork(int parent, int child) {
        SeqTokens st = tokens.get(parent);
        if (st != null) {
            tokens.put(child, st.copy());
        }
    }

    void onFree(int seq) {
        tokens.remove(seq);
    }

    /**
     * {@code seq}'s positions from {@code from} on changed ({@link KvCache#compact}: the ids at {@code keep} moved to
     * {@code from, from + 1, ...}, then the rest dropped) or were dropped ({@code keep} null: {@link KvCache#truncate} to
     * {@code from}): its ids follow, and a block published past the change is published again by the next commit.
     */
    void onRewrite(int seq, int from, int[] keep) {
        SeqTokens st = tokens.get(seq);
        if (st == null) {
            return;
        }
        int length = Math.min(st.length, from);
        if (keep != null) {
            for (int i = 0; i < keep.length && keep[i] < st.length; i++) {
                st.ids[from + i] = st.ids[keep[i]];
                length = from + i + 1;
            }
        }
        st.length = length;
        int published = Math.min(st.numPublished, from / blockSize);
        if (published < st.numPublished) {
            long h = st.seed;
            for (int i = 0; i < published; i++) {
                h = blockHash(h, st.ids, i * blockSize, blockSize);
            }
            st.numPublished = published;
            st.lastHash = h;
        }
    }

    /** The token ids this cache keeps for {@code seq} (a copy), or null: what a swapped-out sequence takes along. */
    SeqTokens tokensOf(int seq) {
        SeqTokens st = tokens.get(seq);
        return st == null ? null : st.copy();
    }

    /** Gives {@code seq} (swapped in) the token ids it had ({@link #tokensOf}). */
    void onSwapIn(int seq, SeqTokens st) {
        tokens.put(seq, st.copy());
    }

    /**
     * Tracks {@code seq} ({@link KvCache#importSequence}) from {@code ids} after the chain seed {@code seed} (its salt's),
     * none of it published here yet (the next commit publishes its full blocks under these ids).
     */
    void onImport(int seq, long seed, int[] ids) {
        SeqTokens st = new SeqTokens();
        st.seed = seed;
        st.add(ids);
        st.lastHash = st.seed;
        tokens.put(seq, st);
    }

    /** The map's consistency; with {@code ownPool} also that every evictable block of the pool is cached here. */
    void verify(boolean ownPool) {
        BlockPool pool = cache.blockPool();
        int n = 0;
        for (Map.Entry<Long, Integer> e : blockByHash.entrySet()) {
            int b = e.getValue();
            BlockPool.check(cached[b] && hashOf[b] == e.getKey(), "hash " + e.getKey() + " maps to block " + b + " that does not carry it");
            BlockPool.check(blockHash(parentHashOf[b], tokensOf, b * blockSize, blockSize) == e.getKey(),
                    "cached block " + b + " content does not hash to its key");
            BlockPool.check(pool.refCount(b) > 0 || pool.isEvictable(b), "cached block " + b + " is free");
        }
        for (int b = 0; b < cached.length; b++) {
            if (cached[b]) {
                n++;
            }
            BlockPool.check(!ownPool || !pool.isEvictable(b) || cached[b], "evictable block " + b + " is not cached");
        }
        BlockPool.check(n == blockByHash.size(), "cached flags " + n + " != map size " + blockByHash.size());
    }

    private boolean matches(int block, long parentHash, int[] ids, int from) {
        if (!cached[block] || parentHashOf[block] != parentHash) {
            return false;
        }
        return Arrays.equals(tokensOf, block * blockSize, (block + 1) * blockSize, ids, from, from + blockSize);
    }

    /** Names {@code seq} when it was not admitted here or was appended to past this cache (see {@link #append}). */
    void requireTracked(int seq) {
        synchronized (cache) {
            tracked(seq);
        }
    }

    private SeqTokens tracked(int seq) {
        SeqTokens st = tokens.get(seq);
        if (st == null) {
            cache.sequences().get(seq); // names an unknown seq
            throw new IllegalArgumentException("seq=" + seq + " was not created by PrefixCache.admit, so its token ids are unknown");
        }
        int length = cache.sequences().get(seq).numTokens();
        if (st.length != length) {
            // Tokens appended through KvCache directly have no known ids: hashing on would pair
            // later ids with their K/V and publish blocks whose content does not match their hash.
            throw new IllegalArgumentException("seq=" + seq + " has length=" + length + " but PrefixCache knows the ids of "
                    + st.length + " tokens: append to admitted sequences with PrefixCache.append, not KvCache.append");
        }
        return st;
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 33)) * 0xFF51AFD7ED558CCDL;
        z = (z ^ (z >>> 33)) * 0xC4CEB9FE1A85EC53L;
        return z ^ (z >>> 33);
    }
}
