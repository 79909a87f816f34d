package dev.pagedattn.cache;

import dev.pagedattn.quant.KvScales;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The KV cache of a model that mixes sliding-window (or chunked local) and full layers (Gemma 2 and 3, gpt-oss; Llama 4's
 * chunks of 8192 on three layers of four; vLLM's hybrid KV cache manager): its layers are grouped by window, each group a
 * {@link KvCache} of its own page tables and either a pool of its own ({@link #of}, {@link #forMemory}) or blocks from
 * one pool all groups share ({@link #sharedPool}: each window's layers cut into groups of one size, any group taking any
 * free block), so a windowed group can give back the blocks its window no longer sees while the full layers keep theirs.
 * A block of a plain {@link KvCache} holds its slots in every layer and must stay while any layer reads it; here a block
 * of a windowed group holds only that group's layers.
 *
 * <pre>
 *  windows [numLayers]   layer l's sliding window W (its query sees the last W positions), AttentionWindow.chunked(C)
 *                        (its query sees its own chunk of C), or DecodeBatch.NO_WINDOW
 *  group g               the layers of one window value, in the order the values first appear; local layer i of
 *                        group g is the i-th of its layers ({@link #localLayer})
 * </pre>
 *
 * <p>Every sequence lives in every group under the same id and length: {@link #createSequence}, {@link #append},
 * {@link #fork} and {@link #free} act on all groups or, when a group lacks blocks, on none; {@link #write} goes to the
 * layer's group. Before an append takes blocks, each windowed group releases the blocks wholly before the window of
 * the sequence's last token ({@link KvCache#releaseOutsideWindow}; no later query sees them), so a sequence holds at
 * most {@code ceil((W + n) / blockSize) + 1} blocks of a group of window {@code W} (or chunks of {@code W}) once it
 * appends {@code n} tokens, however long it grows. Decode through {@link #batch} (one {@link HybridBatch} per step;
 * {@code forLayer} gives each layer its group's tables through its window) and a backend per group on
 * {@link #group(int)}, or through {@code dev.pagedattn.attention.HybridAttention}, which does both.
 *
 * <p>Change sequences through this class only: a call on a group's cache itself would break the lockstep (checked by
 * {@link #verify}). With {@link #enablePrefixCaching}, {@link #admit} shares a prompt's cached blocks in every group (a
 * windowed group only those its window sees), {@link #append(int, int[])} records generated tokens' ids and
 * {@link #commit} publishes full blocks. Every method is {@code synchronized} on this object (and each
 * group's cache on itself); a decode reads the pools without the lock, as with {@link KvCache}. With a shared pool one
 * group's change can evict another group's cached blocks, so read a group's prefix-cache counters while holding this
 * object's lock if other threads change sequences.
 */
public final class HybridKvCache {
    private final int[] groupOf;       // [numLayers]
    private final int[] localLayer;    // [numLayers]
    private final int[] groupWindows;  // [numGroups]
    private final int[][] groupLayers; // [numGroups][layers of the group]
    private final KvCache[] groups;
    private final BlockPool sharedPool; // null: each group has a pool of its own
    private final KvCacheConfig sharedConfig; // the shared pool's blocks: layersPerBlock layers each; null when split

    private HybridKvCache(int numLayers, int[] groupWindows, int[][] groupLayers, KvCache[] groups) {
        this(numLayers, groupWindows, groupLayers, groups, null, null);
    }

    private HybridKvCache(int numLayers, int[] groupWindows, int[][] groupLayers, KvCache[] groups, BlockPool sharedPool,
                          KvCacheConfig sharedConfig) {
        this.sharedPool = sharedPool;
        this.sharedConfig = sharedConfig;
        this.groupWindows = groupWindows;
        this.groupLayers = groupLayers;
        this.groups = groups;
        this.groupOf = new int[numLayers];
        this.localLayer = new int[numLayers];
        for (int g = 0; g < groupLayers.length; g++) {
            for (int i = 0; i < groupLayers[g].length; i++) {
                groupOf[groupLayers[g][i]] = g;
                localLayer[groupLayers[g][i]] = i;
            }
        }
    }

    /**
     * A hybrid cache of {@code groupBlocks[g]} blocks in group {@code g} ({@link #groupWindows(int[])} says which groups
     * {@code windows} makes). {@code scales}: of an 8-bit {@code dtype}, over the model's {@code windows.length} layers
     * (null: every scale 1.0); each group takes its layers' rows.
     */
    public static HybridKvCache of(int[] windows, int[] groupBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype,
                                   KvScales scales) {
        int[] gw = groupWindows(windows);
        if (groupBlocks == null || groupBlocks.length != gw.length) {
            throw new IllegalArgumentException("groupBlocks.length=" + (groupBlocks == null ? "null" : groupBlocks.length)
                    + " must be the number of distinct windows, " + gw.length + " (" + describe(gw) + ")");
        }
        if (scales != null && scales.numLayers() != windows.length) {
            throw new IllegalArgumentException("scales numLayers=" + scales.numLayers() + " must be windows.length="
                    + windows.length + " (the model's layers)");
        }
        int[][] layers = groupLayers(windows, gw);
        KvCache[] caches = new KvCache[gw.length];
        for (int g = 0; g < gw.length; g++) {
            KvCacheConfig config = new KvCacheConfig(groupBlocks[g], blockSize, numKvHeads, headDim, dtype, layers[g].length);
            caches[g] = new KvCache(config, scales == null ? null : scales.layers(layers[g]));
        }
        return new HybridKvCache(windows.length, gw, layers, caches);
    }

    /** {@link #of(int[], int[], int, int, int, KvDtype, KvScales)} with unit scales (or none for fp16/fp32). */
    public static HybridKvCache of(int[] windows, int[] groupBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype) {
        return of(windows, groupBlocks, blockSize, numKvHeads, headDim, dtype, null);
    }

    /**
     * The hybrid cache that fills {@code bytes} of K/V memory: each windowed group gets the blocks {@code maxSequences}
     * sequences need when each appends at most {@code maxNewTokens} tokens at a time ({@link #windowBlocks}) and the
     * full layers' group the rest; without full layers the windowed groups share all of it in proportion to that need.
     * Forks that copy shared blocks on write need more; size for them with {@link #of}.
     *
     * @throws IllegalArgumentException naming the shortfall when the windowed groups' need leaves no block for the full layers
     */
    public static HybridKvCache forMemory(long bytes, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int[] windows,
                                          int maxSequences, int maxNewTokens) {
        int[] groupBlocks = blocksForMemory(bytes, blockSize, numKvHeads, headDim, dtype, windows, maxSequences, maxNewTokens);
        return of(windows, groupBlocks, blockSize, numKvHeads, headDim, dtype, null);
    }

    /**
     * The blocks of each group {@link #forMemory} gives (nothing allocated): a scheduler's or a simulation's plan.
     *
     * @throws IllegalArgumentException as {@link #forMemory}
     */
    public static int[] blocksForMemory(long bytes, int blockSize, int numKvHeads, int headDim, KvDtype dtype, int[] windows,
                                        int maxSequences, int maxNewTokens) {
        int[] gw = groupWindows(windows);
        int[][] layers = groupLayers(windows, gw);
        if (maxSequences < 1 || maxNewTokens < 1) {
            throw new IllegalArgumentException("maxSequences=" + maxSequences + " maxNewTokens=" + maxNewTokens + " must be >= 1");
        }
        if (dtype == null || blockSize < 1 || numKvHeads < 1 || headDim < 1) {
            throw new IllegalArgumentException("blockSize=" + blockSize + " numKvHeads=" + numKvHeads + " headDim=" + headDim
                    + " dtype=" + dtype + ": need positive sizes and a dtype");
        }
        long slotBytes = 2L * blockSize * numKvHeads * headDim * dtype.bytes(); // one block of one layer, K and V
        long[] need = new long[gw.length];
        long windowedBytes = 0;
        int full = -1;
        for (int g = 0; g < gw.length; g++) {
            if (gw[g] == DecodeBatch.NO_WINDOW) {
                full = g;
                continue;
            }
            need[g] = (long) maxSequences * windowBlocks(gw[g], blockSize, maxNewTokens);
            windowedBytes += need[g] * layers[g].length * slotBytes;
        }
        long[] blocks = need.clone();
        if (full >= 0) {
            blocks[full] = (bytes - windowedBytes) / (layers[full].length * slotBytes);
            if (blocks[full] < 1) {
                throw new IllegalArgumentException("bytes=" + bytes + " leaves no block for the full layers: the windowed groups"
                        + " take " + windowedBytes + " bytes for maxSequences=" + maxSequences + " and one full block takes "
                        + layers[full].length * slotBytes);
            }
        } else {
            double share = bytes / (double) windowedBytes; // above 1: room for more sequences than asked; below, fewer
            for (int g = 0; g < gw.length; g++) {
                blocks[g] = (long) Math.floor(need[g] * share);
            }
        }
        int[] groupBlocks = new int[gw.length];
        for (int g = 0; g < gw.length; g++) {
            if (blocks[g] < 1 || blocks[g] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("bytes=" + bytes + " gives group " + g + " (window " + describe(gw[g]) + ") "
                        + blocks[g] + " blocks, outside [1, " + Integer.MAX_VALUE + "]");
            }
            groupBlocks[g] = (int) blocks[g];
        }
        return groupBlocks;
    }

    /**
     * A hybrid cache whose groups share one pool of {@code numBlocks} blocks (vLLM's hybrid KV cache manager): a block
     * holds {@code layersPerGroup} layers' K/V, and any group may take any free block, so the blocks a windowed group gives
     * back serve the full layers and the other way round, whatever the mix of sequences and lengths. The layers of each
     * window, in order, are cut into groups of {@code layersPerGroup} (the last of a window may have fewer, leaving the
     * rest of its blocks' layers unused), so several groups may have one window; each group is a {@link KvCache} of its
     * own page tables over the shared pool ({@link KvCache#sharesPool}). A sequence takes a block per group for each
     * {@code blockSize} tokens it holds there. The JVM backends decode it; the TornadoVM backends refuse it (each group's
     * plan would upload the whole pool). {@code scales}: as in {@link #of}.
     *
     * @throws IllegalArgumentException naming a bad value: no windows or a window below 1, {@code layersPerGroup} outside
     *                                  {@code [1, the most layers one window has]}, sizes the cache config refuses
     */
    public static HybridKvCache sharedPool(int[] windows, int numBlocks, int layersPerGroup, int blockSize, int numKvHeads,
                                           int headDim, KvDtype dtype, KvScales scales) {
        int[] distinct = groupWindows(windows);
        int[][] byWindow = groupLayers(windows, distinct);
        int most = Arrays.stream(byWindow).mapToInt(l -> l.length).max().orElseThrow();
        if (layersPerGroup < 1 || layersPerGroup > most) {
            throw new IllegalArgumentException("layersPerGroup=" + layersPerGroup + " is outside [1, " + most + "] (the most layers"
                    + " one window has)");
        }
        if (scales != null && scales.numLayers() != windows.length) {
            throw new IllegalArgumentException("scales numLayers=" + scales.numLayers() + " must be windows.length="
                    + windows.length + " (the model's layers)");
        }
        List<int[]> layers = new ArrayList<>();
        List<Integer> gw = new ArrayList<>();
        for (int w = 0; w < distinct.length; w++) {
            for (int from = 0; from < byWindow[w].length; from += layersPerGroup) {
                layers.add(Arrays.copyOfRange(byWindow[w], from, Math.min(byWindow[w].length, from + layersPerGroup)));
                gw.add(distinct[w]);
            }
        }
        KvCacheConfig shared = new KvCacheConfig(numBlocks, blockSize, numKvHeads, headDim, dtype, layersPerGroup);
        KvStore base = new KvStore(shared, null); // the arrays; each group's store views them with its own 8-bit scales
        BlockPool pool = new BlockPool(numBlocks);
        KvCache[] caches = new KvCache[layers.size()];
        for (int g = 0; g < caches.length; g++) {
            int[] ls = layers.get(g);
            KvCacheConfig config = new KvCacheConfig(numBlocks, blockSize, numKvHeads, headDim, dtype, ls.length);
            caches[g] = new KvCache(config, scales == null ? null : scales.layers(ls), pool, base);
        }
        return new HybridKvCache(windows.length, gw.stream().mapToInt(Integer::intValue).toArray(),
                layers.toArray(new int[0][]), caches, pool, shared);
    }

    /**
     * {@link #sharedPool(int[], int, int, int, int, int, KvDtype, KvScales)} with vLLM's group size, the fewest layers any
     * one window has ({@link #defaultLayersPerGroup}), and unit scales (or none for fp16/fp32).
     */
    public static HybridKvCache sharedPool(int[] windows, int numBlocks, int blockSize, int numKvHeads, int headDim, KvDtype dtype) {
        return sharedPool(windows, numBlocks, defaultLayersPerGroup(windows), blockSize, numKvHeads, headDim, dtype, null);
    }

    /**
     * The shared-pool hybrid cache ({@link #sharedPool}) with as many blocks as fill {@code bytes} of K/V memory, each
     * block {@code layersPerGroup} layers' K and V.
     *
     * @throws IllegalArgumentException naming {@code bytes} when it holds no block, or more than 2^31 - 1
     */
    public static HybridKvCache sharedPoolForMemory(long bytes, int layersPerGroup, int blockSize, int numKvHeads, int headDim,
                                                    KvDtype dtype, int[] windows) {
        int blocks = sharedBlocksForMemory(bytes, layersPerGroup, blockSize, numKvHeads, headDim, dtype);
        return sharedPool(windows, blocks, layersPerGroup, blockSize, numKvHeads, headDim, dtype, null);
    }

    /** The blocks {@link #sharedPoolForMemory} gives (nothing allocated). */
    public static int sharedBlocksForMemory(long bytes, int layersPerGroup, int blockSize, int numKvHeads, int headDim,
                                            KvDtype dtype) {
        if (dtype == null || blockSize < 1 || numKvHeads < 1 || headDim < 1 || layersPerGroup < 1) {
            throw new IllegalArgumentException("layersPerGroup=" + layersPerGroup + " blockSize=" + blockSize + " numKvHeads="
                    + numKvHeads + " headDim=" + headDim + " dtype=" + dtype + ": need positive sizes and a dtype");
        }
        long blockBytes = 2L * layersPerGroup * blockSize * numKvHeads * headDim * dtype.bytes();
        long blocks = bytes / blockBytes;
        if (blocks < 1 || blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("bytes=" + bytes + " gives " + blocks + " blocks of " + blockBytes + " bytes, outside [1, "
                    + Integer.MAX_VALUE + "]");
        }
        return (int) blocks;
    }

    /**
     * The largest group size for a shared pool that leaves no layer of any block unused: the greatest common divisor of the
     * windows' layer counts (Gemma 3 27B's 52 windowed and 10 full layers: 2, for 31 groups, against the default's 10, for 7
     * groups whose last windowed one leaves 8 of its blocks' 10 layers unused). More groups mean more page tables per
     * sequence, and on the JVM backends more backends.
     */
    public static int paddingFreeLayersPerGroup(int[] windows) {
        int[] gw = groupWindows(windows);
        int g = 0;
        for (int[] layers : groupLayers(windows, gw)) {
            g = java.math.BigInteger.valueOf(g).gcd(java.math.BigInteger.valueOf(layers.length)).intValue();
        }
        return g;
    }

    /** vLLM's group size for a shared pool: the fewest layers any one window of {@code windows} has. */
    public static int defaultLayersPerGroup(int[] windows) {
        int[] gw = groupWindows(windows);
        return Arrays.stream(groupLayers(windows, gw)).mapToInt(l -> l.length).min().orElseThrow();
    }

    /**
     * Bytes of K/V one block of group {@code g} takes: its layers' K and V, or with a shared pool the pool's block, whatever
     * the group's layers (a group shorter than the others leaves the rest unused).
     */
    public long blockBytes(int g) {
        return blockBytes(sharedConfig != null ? sharedConfig : groups[requireGroup(g)].config());
    }

    /** Whether the groups share one block pool ({@link #sharedPool}). */
    public boolean sharesPool() {
        return sharedPool != null;
    }

    /**
     * Blocks one sequence holds at most in a group of window {@code window} when it appends at most {@code maxNewTokens}
     * tokens at a time: {@code ceil((window + maxNewTokens) / blockSize) + 1}.
     */
    public static int windowBlocks(int window, int blockSize, int maxNewTokens) {
        if (window == 0 || window == Integer.MIN_VALUE || window == DecodeBatch.NO_WINDOW || blockSize < 1 || maxNewTokens < 1) {
            throw new IllegalArgumentException("window=" + window + " blockSize=" + blockSize + " maxNewTokens=" + maxNewTokens
                    + " must be >= 1 (a window, or AttentionWindow.chunked(C); not NO_WINDOW)");
        }
        // a chunk of C: the last token's chunk holds up to C - 1 positions before it, as a window of C does
        return (int) Math.min(Integer.MAX_VALUE, ((long) AttentionWindow.span(window) + maxNewTokens + blockSize - 1) / blockSize + 1);
    }

    /**
     * The distinct windows of {@code windows} in the order they first appear: the groups a hybrid cache of these layers
     * has. Each entry must be >= 1 ({@link DecodeBatch#NO_WINDOW} for a full layer).
     */
    public static int[] groupWindows(int[] windows) {
        if (windows == null || windows.length == 0) {
            throw new IllegalArgumentException("windows=" + (windows == null ? "null" : "[]") + ": need one entry per layer");
        }
        Set<Integer> seen = new LinkedHashSet<>();
        for (int l = 0; l < windows.length; l++) {
            AttentionWindow.require("windows[" + l + "]", windows[l]);
            seen.add(windows[l]);
        }
        return seen.stream().mapToInt(Integer::intValue).toArray();
    }

    private static int[][] groupLayers(int[] windows, int[] gw) {
        int[][] layers = new int[gw.length][];
        for (int g = 0; g < gw.length; g++) {
            List<Integer> ls = new ArrayList<>();
            for (int l = 0; l < windows.length; l++) {
                if (windows[l] == gw[g]) {
                    ls.add(l);
                }
            }
            layers[g] = ls.stream().mapToInt(Integer::intValue).toArray();
        }
        return layers;
    }

    private static String describe(int window) {
        return window == DecodeBatch.NO_WINDOW || AttentionWindow.isChunked(window) ? AttentionWindow.describe(window)
                : Integer.toString(window);
    }

    private static String describe(int[] gw) {
        return String.join(", ", Arrays.stream(gw).mapToObj(HybridKvCache::describe).toList());
    }

    // ---- the groups ----

    /** The model's layers. */
    public int numLayers() {
        return groupOf.length;
    }

    /** Layer groups: one per distinct window, or with a shared pool each window's layers cut into groups. */
    public int numGroups() {
        return groups.length;
    }

    /** Group {@code g}'s cache (its pools, page tables and config): give it to a backend; change sequences through this class. */
    public KvCache group(int g) {
        return groups[requireGroup(g)];
    }

    /** Group {@code g}'s sliding window, or {@link DecodeBatch#NO_WINDOW} for the full layers. */
    public int window(int g) {
        return groupWindows[requireGroup(g)];
    }

    /** Group {@code g}'s layers, the model's numbering, ascending (a copy). */
    public int[] layers(int g) {
        return groupLayers[requireGroup(g)].clone();
    }

    /** The group of model layer {@code layer}. */
    public int groupOf(int layer) {
        return groupOf[requireLayer(layer)];
    }

    /** Model layer {@code layer}'s index in its group's cache. */
    public int localLayer(int layer) {
        return localLayer[requireLayer(layer)];
    }

    /** The sliding window of model layer {@code layer}, or {@link DecodeBatch#NO_WINDOW}. */
    public int layerWindow(int layer) {
        return groupWindows[groupOf[requireLayer(layer)]];
    }

    private int requireGroup(int g) {
        if (g < 0 || g >= groups.length) {
            throw new IllegalArgumentException("group=" + g + " is outside [0, " + groups.length + ")");
        }
        return g;
    }

    private int requireLayer(int layer) {
        if (layer < 0 || layer >= groupOf.length) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + groupOf.length + ")");
        }
        return layer;
    }

    // ---- sequences, in lockstep over the groups ----

    /** Creates an empty sequence in every group and returns its id. */
    public synchronized int createSequence() {
        int id = groups[0].createSequence();
        for (int g = 1; g < groups.length; g++) {
            int other = groups[g].createSequence();
            if (other != id) {
                throw new IllegalStateException("group " + g + " made seq=" + other + " where group 0 made seq=" + id
                        + ": a sequence was created on a group's cache directly");
            }
        }
        return id;
    }

    public synchronized boolean contains(int seq) {
        return groups[0].contains(seq);
    }

    public synchronized int numSequences() {
        return groups[0].numSequences();
    }

    /** Tokens stored for {@code seq} (the same in every group). */
    public synchronized int length(int seq) {
        return groups[0].length(seq);
    }

    /** Blocks in use, all groups (with a shared pool, its used blocks). */
    public synchronized long numUsedBlocks() {
        if (sharedPool != null) {
            return sharedPool.numUsed();
        }
        long used = 0;
        for (KvCache c : groups) {
            used += c.numUsedBlocks();
        }
        return used;
    }

    /** Bytes of K/V the used blocks hold, all groups. */
    public synchronized long usedBytes() {
        if (sharedPool != null) {
            return sharedPool.numUsed() * blockBytes(sharedConfig);
        }
        long bytes = 0;
        for (KvCache c : groups) {
            bytes += c.numUsedBlocks() * blockBytes(c.config());
        }
        return bytes;
    }

    /** Bytes of K/V all groups' pools hold. */
    public long totalBytes() {
        if (sharedConfig != null) {
            return sharedConfig.totalBytes();
        }
        long bytes = 0;
        for (KvCache c : groups) {
            bytes += c.config().totalBytes();
        }
        return bytes;
    }

    private static long blockBytes(KvCacheConfig config) {
        return config.totalBytes() / config.numBlocks();
    }

    /** Whether {@code append(seq, numTokens)} would succeed now (each windowed group counts what it releases first). */
    public synchronized boolean canAppend(int seq, int numTokens) {
        return appendShortfall(seq, numTokens) == null;
    }

    /**
     * Why {@code seq}'s append of {@code numTokens} cannot go through now (the first group whose pool cannot supply it after
     * its release; with a shared pool, all groups' need against the pool and what every release frees), or null.
     */
    private Shortfall appendShortfall(int seq, int numTokens) {
        if (sharedPool != null) {
            long need = 0;
            long free = sharedPool.numAllocatable();
            for (int g = 0; g < groups.length; g++) {
                need += needed(g, seq, numTokens);
                free += releasable(g, seq);
            }
            return need > free ? new Shortfall(need, free) : null;
        }
        for (int g = 0; g < groups.length; g++) {
            int free = groups[g].numAllocatableBlocks() + releasable(g, seq);
            int need = needed(g, seq, numTokens);
            if (need > free) {
                return new Shortfall(need, free);
            }
        }
        return null;
    }

    /** Blocks a change needs and blocks there are for it ({@link #canAppend} asks often: no exception until one is thrown). */
    private record Shortfall(long need, long free) {
        OutOfBlocksException exception() {
            return shortfall(need, free);
        }
    }

    /** The shared pool's shortfall (counts past 2^31 - 1 shown as that). */
    private static OutOfBlocksException shortfall(long need, long free) {
        return new OutOfBlocksException((int) Math.min(Integer.MAX_VALUE, need), (int) Math.min(Integer.MAX_VALUE, free));
    }

    /**
     * Refuses, naming the need, work that takes {@code perGroup[g]} blocks in group {@code g} which the pools (or the
     * shared pool, for their sum) cannot supply now.
     */
    private void requireBlocks(int[] perGroup) throws OutOfBlocksException {
        long need = 0;
        for (int g = 0; g < groups.length; g++) {
            need += perGroup[g];
            if (sharedPool == null && perGroup[g] > groups[g].numAllocatableBlocks()) {
                throw new OutOfBlocksException(perGroup[g], groups[g].numAllocatableBlocks());
            }
        }
        if (sharedPool != null && need > sharedPool.numAllocatable()) {
            throw shortfall(need, sharedPool.numAllocatable());
        }
    }

    private int needed(int g, int seq, int numTokens) {
        return groups[g].blocksNeeded(seq, numTokens);
    }

    /**
     * Blocks the release before an append would give back to group {@code g}'s pool (a block another sequence shares
     * stays held: counted only when this sequence is its last owner).
     */
    private int releasable(int g, int seq) {
        if (groupWindows[g] == DecodeBatch.NO_WINDOW) {
            return 0;
        }
        KvCache c = groups[g];
        synchronized (c) { // the live table, not a snapshot: an append asks this for every sequence and step
            PageTable t = c.sequences().get(seq);
            int upTo = DecodeBatch.firstVisible(t.numTokens(), groupWindows[g]) / c.config().blockSize();
            int freed = 0;
            for (int i = t.numReleased(); i < upTo; i++) {
                if (c.blockPool().refCount(t.block(i)) == 1) {
                    freed++;
                }
            }
            return freed;
        }
    }

    /**
     * Reserves slots for {@code numTokens} new tokens of {@code seq} in every group and returns the first position.
     * Each windowed group first releases the blocks its window no longer sees; then every group takes its blocks.
     *
     * @throws OutOfBlocksException when a group's pool cannot supply them (its need and what it could hand out); nothing
     *                              changed, no block released
     */
    public synchronized int append(int seq, int numTokens) throws OutOfBlocksException {
        if (numTokens < 0) {
            throw new IllegalArgumentException("numTokens=" + numTokens + " must be >= 0");
        }
        return appendEach(seq, numTokens, c -> c.append(seq, numTokens));
    }

    /** One group's share of an append, checked for capacity before any group's. */
    private interface GroupAppend {
        int append(KvCache group) throws OutOfBlocksException;
    }

    /**
     * {@code numTokens} new tokens of {@code seq} in every group, or none: every group's capacity (with what its release
     * frees) checked first, then each windowed group's release, then {@code append} on each group; the first position.
     */
    private int appendEach(int seq, int numTokens, GroupAppend append) throws OutOfBlocksException {
        Shortfall shortfall = appendShortfall(seq, numTokens);
        if (shortfall != null) {
            throw shortfall.exception();
        }
        if (numTokens > 0) {
            releaseOutsideWindows(seq);
        }
        int first = -1;
        for (KvCache c : groups) {
            first = append.append(c); // checked above: cannot run out
        }
        return first;
    }

    /**
     * Gives back, in every windowed group, the blocks of {@code seq} wholly before the window of its last token
     * ({@link KvCache#releaseOutsideWindow}); {@link #append} does it first, this does it now. Returns the blocks released.
     */
    public synchronized int releaseOutsideWindows(int seq) {
        int released = 0;
        for (int g = 0; g < groups.length; g++) {
            if (groupWindows[g] != DecodeBatch.NO_WINDOW) {
                released += groups[g].releaseOutsideWindow(seq, groupWindows[g]);
            }
        }
        return released;
    }

    /** Stores one token's K and V ({@code [numKvHeads][headDim]} each) at {@code position} of model layer {@code layer}. */
    public synchronized void write(int seq, int layer, int position, float[] k, float[] v) throws OutOfBlocksException {
        writeTokens(seq, layer, position, 1, k, v);
    }

    /**
     * Stores {@code numTokens} tokens' K and V ({@code [numTokens][numKvHeads][headDim]}) of model layer {@code layer}
     * from {@code firstPosition} in its group ({@link KvCache#writeTokens}); a position its group released is refused.
     */
    public synchronized void writeTokens(int seq, int layer, int firstPosition, int numTokens, float[] k, float[] v)
            throws OutOfBlocksException {
        groups[groupOf(layer)].writeTokens(seq, localLayer[layer], firstPosition, numTokens, k, v);
    }

    /** Element {@code dim} of K for (seq, model layer, position, kvHead). */
    public synchronized float readK(int seq, int layer, int position, int kvHead, int dim) {
        return groups[groupOf(layer)].readK(seq, localLayer[layer], position, kvHead, dim);
    }

    /** Element {@code dim} of V for (seq, model layer, position, kvHead). */
    public synchronized float readV(int seq, int layer, int position, int kvHead, int dim) {
        return groups[groupOf(layer)].readV(seq, localLayer[layer], position, kvHead, dim);
    }

    /** A new sequence sharing every block of {@code seq} in every group (copy-on-write, as {@link KvCache#fork}). */
    public synchronized int fork(int seq) {
        int id = groups[0].fork(seq);
        for (int g = 1; g < groups.length; g++) {
            int other = groups[g].fork(seq);
            if (other != id) {
                throw new IllegalStateException("group " + g + " forked seq=" + other + " where group 0 forked seq=" + id
                        + ": a sequence was created on a group's cache directly");
            }
        }
        return id;
    }

    /**
     * {@link KvCache#truncate} in every group: {@code seq} keeps its first {@code length} tokens (speculative decoding's
     * rejected drafts dropped). Refused, changing nothing, where a windowed group already released a position the next
     * token's window sees ({@code length + 1 - window} on): an engine drops only what it appended since its last step.
     *
     * @return the blocks given back, every group
     */
    public synchronized int truncate(int seq, int length) {
        requireRollback(seq, length);
        int released = 0;
        for (KvCache c : groups) {
            released += c.truncate(seq, length);
        }
        return released;
    }

    /**
     * {@link KvCache#compact} in every group, or in none: the tokens of {@code seq} at {@code keep} (ascending, from
     * {@code first} on) moved to {@code first, first + 1, ...}, the rest dropped; refused as {@link #truncate} is, and by
     * {@link OutOfBlocksException} (nothing changed) where a group's pool cannot supply its copies.
     *
     * @return the new length
     */
    public synchronized int compact(int seq, int first, int[] keep) throws OutOfBlocksException {
        for (KvCache c : groups) {
            c.compactCheck(seq, first, keep); // names bad positions (a windowed group's released ones too) before any change
        }
        requireRollback(seq, first + keep.length);
        int[] copies = new int[groups.length];
        for (int g = 0; g < groups.length; g++) {
            copies[g] = groups[g].copiesToCompact(seq, first, keep);
        }
        requireBlocks(copies);
        int length = -1;
        for (KvCache c : groups) {
            length = c.compact(seq, first, keep); // checked above: cannot run out
        }
        return length;
    }

    /** Names a length {@code seq} cannot be cut to: outside {@code [0, length]}, or into a windowed group's released run. */
    private void requireRollback(int seq, int length) {
        int now = length(seq);
        if (length < 0 || length > now) {
            throw new IllegalArgumentException("length=" + length + " is outside [0, " + now + "] of seq=" + seq);
        }
        for (int g = 0; g < groups.length; g++) {
            int held = groups[g].firstHeldPosition(seq);
            if (groupWindows[g] != DecodeBatch.NO_WINDOW && held > DecodeBatch.firstVisible(length + 1, groupWindows[g])) {
                throw new IllegalArgumentException("length=" + length + ": group " + g + " (window " + groupWindows[g]
                        + ") released the positions before " + held + ", which the next token's window would see");
            }
        }
    }

    /** Drops {@code seq} from every group. */
    public synchronized void free(int seq) {
        groups[0].pageTable(seq); // names an unknown id before any group changes
        for (KvCache c : groups) {
            c.free(seq);
        }
    }

    // ---- prefix caching over the groups ----

    /** Turns on automatic prefix caching in every group ({@link KvCache#enablePrefixCaching}); idempotent. */
    public synchronized void enablePrefixCaching() {
        for (KvCache c : groups) {
            c.enablePrefixCaching();
        }
    }

    /**
     * Host memory behind every group's prefix cache ({@link PrefixCache#enableHostOffload}), {@code bytes} split among the
     * groups in proportion to their pools' bytes; returns the host blocks of each group. A prompt's hit then counts, in
     * each group, the blocks it finds on the device or in host memory; {@link #admit} brings the latter back.
     */
    public synchronized int[] enableHostOffload(long bytes) {
        if (!prefixCaching()) {
            throw new IllegalStateException("host offload backs the prefix cache: call enablePrefixCaching() first");
        }
        long[] share = new long[groups.length];
        for (int g = 0; g < groups.length; g++) {
            share[g] = share(bytes, g);
            long blockBytes = groups[g].store().blockBytes();
            if (share[g] < blockBytes) { // checked for every group before any changes
                throw new IllegalArgumentException("bytes=" + bytes + " gives group " + g + " " + share[g] + " bytes, less than one"
                        + " of its blocks (" + blockBytes + " bytes)");
            }
        }
        int[] blocks = new int[groups.length];
        for (int g = 0; g < groups.length; g++) {
            blocks[g] = groups[g].prefixCache().enableHostOffload(share[g]);
        }
        return blocks;
    }

    /** Whether {@link #enablePrefixCaching} was called. */
    public synchronized boolean prefixCaching() {
        return groups[0].prefixCache() != null;
    }

    /**
     * Creates a sequence holding {@code tokenIds} in every group, sharing the longest prefix of full blocks every group can
     * serve from its cache (vLLM's hybrid prefix-cache hit): the full layers need every block of it cached, a group of
     * window {@code W} only those its window sees from the first recomputed token on (the blocks of positions
     * {@code hit - W + 1 .. hit - 1}), and starts without the blocks before them, as if it had released them. The caller
     * writes K/V from {@code numCachedTokens()} on in every layer, then calls {@link #commit}.
     *
     * @throws OutOfBlocksException when a group cannot supply the rest (its need and what it could hand out); nothing changed
     */
    public synchronized PrefixCache.Admission admit(int[] tokenIds, String salt) throws OutOfBlocksException {
        PrefixCache.Plan[] plans = plans(tokenIds, salt);
        if (sharedPool != null) {
            Shortfall pooled = pooledNeed(plans);
            if (pooled.need() > pooled.free()) {
                throw pooled.exception();
            }
            for (int g = 0; g < groups.length; g++) { // no group's new blocks may evict another group's hits
                groups[g].prefixCache().retainHits(plans[g]);
            }
        } else {
            for (int g = 0; g < groups.length; g++) {
                if (!plans[g].fits()) {
                    throw new OutOfBlocksException(plans[g].needed(), plans[g].allocatable());
                }
            }
        }
        boolean retained = sharedPool != null;
        PrefixCache.Admission first = groups[0].prefixCache().admit(plans[0], retained);
        for (int g = 1; g < groups.length; g++) {
            PrefixCache.Admission a = groups[g].prefixCache().admit(plans[g], retained);
            if (a.seq() != first.seq()) {
                throw new IllegalStateException("group " + g + " admitted seq=" + a.seq() + " where group 0 admitted seq="
                        + first.seq() + ": a sequence was created on a group's cache directly");
            }
        }
        return first;
    }

    /**
     * What {@link #admit} would do now in each group, changing nothing ({@link PrefixCache#lookup}): every group reuses the
     * same {@code numCachedTokens}; the admission goes through when every group's lookup {@code fits()}.
     */
    public synchronized PrefixCache.Lookup[] lookup(int[] tokenIds, String salt) {
        PrefixCache.Plan[] plans = plans(tokenIds, salt);
        PrefixCache.Lookup[] out = new PrefixCache.Lookup[groups.length];
        for (int g = 0; g < groups.length; g++) {
            out[g] = groups[g].prefixCache().lookup(plans[g]);
        }
        if (sharedPool != null) { // each group's allocatable: what the pool has left for it after the others' needs
            Shortfall pooled = pooledNeed(plans);
            for (int g = 0; g < groups.length; g++) {
                PrefixCache.Lookup l = out[g];
                long left = pooled.free() - (pooled.need() - l.blocksNeeded());
                out[g] = new PrefixCache.Lookup(l.numCachedTokens(), l.numHostBlocks(), l.blocksNeeded(),
                        (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, left)));
            }
        }
        return out;
    }

    /** Every group's new blocks against what the shared pool can give once every group's evictable hits are revived. */
    private Shortfall pooledNeed(PrefixCache.Plan[] plans) {
        long need = 0;
        long free = sharedPool.numAllocatable();
        for (PrefixCache.Plan p : plans) {
            need += p.needed();
            free -= sharedPool.numAllocatable() - p.allocatable(); // the evictable hits this group's plan revives
        }
        return new Shortfall(need, free);
    }

    /** Each group's plan for the longest hit every group can serve ({@link #admit}); changes nothing. */
    private PrefixCache.Plan[] plans(int[] tokenIds, String salt) {
        requirePrefixCaching();
        int[][] chains = new int[groups.length][];
        for (int g = 0; g < groups.length; g++) {
            chains[g] = groups[g].prefixCache().cachedChain(tokenIds, salt);
        }
        int bs = groups[0].config().blockSize();
        int hit = PrefixCache.longestHit(chains, groupWindows, bs);
        PrefixCache.Plan[] plans = new PrefixCache.Plan[groups.length];
        for (int g = 0; g < groups.length; g++) {
            plans[g] = groups[g].prefixCache().plan(tokenIds, salt, chains[g], hit, PrefixCache.firstNeeded(hit, groupWindows[g], bs));
        }
        return plans;
    }

    /**
     * Reserves slots for generated tokens {@code tokenIds} of an admitted {@code seq} in every group (each windowed group
     * releasing first, as {@link #append(int, int)}) and records their ids for later commits; returns the first position.
     */
    public synchronized int append(int seq, int[] tokenIds) throws OutOfBlocksException {
        requirePrefixCaching();
        if (tokenIds == null) {
            throw new IllegalArgumentException("tokenIds=null (pass the generated token ids, an empty array for none)");
        }
        for (KvCache c : groups) {
            c.prefixCache().requireTracked(seq);
        }
        return appendEach(seq, tokenIds.length, c -> c.prefixCache().append(seq, tokenIds));
    }

    /** Publishes {@code seq}'s full blocks in every group ({@link PrefixCache#commit}; a released block is not published). */
    public synchronized void commit(int seq) {
        requirePrefixCaching();
        for (KvCache c : groups) {
            c.prefixCache().requireTracked(seq);
        }
        for (KvCache c : groups) {
            c.prefixCache().commit(seq);
        }
    }

    private void requirePrefixCaching() {
        if (!prefixCaching()) {
            throw new IllegalStateException("prefix caching is off: call enablePrefixCaching() first");
        }
    }

    /** A sequence {@link #swapOut} moved to host memory: one {@link SwappedSequence} per group; {@link #close} frees them. */
    public static final class Swapped implements AutoCloseable {
        private final HybridKvCache source;
        private final SwappedSequence[] groups;

        private Swapped(HybridKvCache source, SwappedSequence[] groups) {
            this.source = source;
            this.groups = groups;
        }

        /** Tokens of the sequence. */
        public int numTokens() {
            return groups[0].numTokens();
        }

        /** Gives every group's host memory back now ({@link SwappedSequence#close}). */
        @Override
        public void close() {
            for (SwappedSequence g : groups) {
                g.close();
            }
        }

        /** Host bytes its K/V take, all groups. */
        public long bytes() {
            long bytes = 0;
            for (SwappedSequence g : groups) {
                bytes += g.bytes();
            }
            return bytes;
        }
    }

    /**
     * Sets {@code bytes} of host memory aside for swap-outs ({@link KvCache#enableSwapSpace}), split among the groups in
     * proportion to their pools' bytes; returns the host blocks of each group.
     */
    public synchronized int[] enableSwapSpace(long bytes) {
        int[] blocks = new int[groups.length];
        for (int g = 0; g < groups.length; g++) {
            blocks[g] = groups[g].enableSwapSpace(share(bytes, g));
        }
        return blocks;
    }

    /** Group {@code g}'s part of {@code bytes} of host memory: in proportion to its pools' bytes. */
    private long share(long bytes, int g) {
        return (long) ((double) bytes * groups[g].config().totalBytes() / totalBytes());
    }

    /**
     * {@link KvCache#swapOut} in every group, or in none: the sequence's held blocks to host memory, then it is freed.
     *
     * @throws OutOfBlocksException when a group's swap space ({@link KvCache#enableSwapSpace}) has too few free host blocks
     */
    public synchronized Swapped swapOut(int seq) throws OutOfBlocksException {
        for (int g = 0; g < groups.length; g++) { // names an unknown id, and a short swap space, before any group changes
            if (!groups[g].canSwapOut(seq)) {
                PageTable t = groups[g].pageTable(seq);
                throw new OutOfBlocksException(t.numBlocks() - t.numReleased(), groups[g].numFreeSwapBlocks());
            }
        }
        SwappedSequence[] out = new SwappedSequence[groups.length];
        for (int g = 0; g < groups.length; g++) {
            out[g] = groups[g].swapOut(seq);
        }
        return new Swapped(this, out);
    }

    /**
     * {@link KvCache#swapIn} in every group, or in none: a new sequence with the same length and K/V (each windowed group
     * only what it held).
     *
     * @throws OutOfBlocksException when a group's pool cannot supply its blocks; nothing changed
     */
    public synchronized int swapIn(Swapped swapped) throws OutOfBlocksException {
        if (swapped == null || swapped.source != this) {
            throw new IllegalArgumentException("swapped=" + (swapped == null ? "null" : "a sequence of another cache")
                    + ": swap a sequence back into the cache it came from");
        }
        int[] blocks = new int[groups.length];
        for (int g = 0; g < groups.length; g++) {
            blocks[g] = swapped.groups[g].numBlocks();
        }
        requireBlocks(blocks);
        int id = groups[0].swapIn(swapped.groups[0]);
        for (int g = 1; g < groups.length; g++) {
            int other = groups[g].swapIn(swapped.groups[g]);
            if (other != id) {
                throw new IllegalStateException("group " + g + " swapped in seq=" + other + " where group 0 made seq=" + id
                        + ": a sequence was created on a group's cache directly");
            }
        }
        return id;
    }

    /**
     * Writes {@code seq} to {@code out}: one {@link KvCache#export} record per group, in group order (each with its
     * group's shape; a windowed group's released run included). Returns the bytes written.
     */
    public synchronized long export(int seq, java.io.OutputStream out) throws java.io.IOException {
        groups[0].pageTable(seq); // names an unknown id before anything is written
        long bytes = 0;
        for (KvCache c : groups) {
            bytes += c.export(seq, out);
        }
        return bytes;
    }

    /**
     * Reads what {@link #export} wrote (a cache of the same windows, layers and shapes) as a new sequence of every group,
     * or of none: a refused or cut record of a later group gives back what the earlier groups took.
     *
     * @throws OutOfBlocksException when a group's pool cannot hold its blocks
     */
    public synchronized int importSequence(java.io.InputStream in) throws java.io.IOException, OutOfBlocksException {
        int id = -1;
        int done = 0;
        try {
            for (; done < groups.length; done++) {
                int seq = groups[done].importSequence(in);
                if (done == 0) {
                    id = seq;
                } else if (seq != id) {
                    groups[done].free(seq);
                    throw new IllegalStateException("group " + done + " imported seq=" + seq + " where group 0 made seq=" + id
                            + ": a sequence was created on a group's cache directly");
                }
            }
        } catch (java.io.IOException | OutOfBlocksException | RuntimeException e) {
            for (int g = 0; g < done; g++) {
                groups[g].free(id);
            }
            throw e;
        }
        return id;
    }

    private void verifySharedPool() {
        sharedPool.verify();
        int n = sharedPool.numBlocks();
        int[] refs = new int[n];
        int[] owner = new int[n];
        Arrays.fill(owner, -1);
        for (int g = 0; g < groups.length; g++) {
            for (Map.Entry<Integer, PageTable> e : groups[g].sequences().snapshot().entrySet()) {
                PageTable t = e.getValue();
                for (int i = t.numReleased(); i < t.numBlocks(); i++) {
                    int b = t.block(i);
                    refs[b]++;
                    BlockPool.check(owner[b] < 0 || owner[b] == g, "block " + b + " is in group " + owner[b] + "'s and group " + g
                            + "'s tables (seq " + e.getKey() + ")");
                    owner[b] = g;
                }
            }
        }
        for (int b = 0; b < n; b++) {
            BlockPool.check(refs[b] == sharedPool.refCount(b), "block " + b + " has refCount=" + sharedPool.refCount(b) + " but "
                    + refs[b] + " page-table references in all groups");
            int cachedBy = 0;
            for (KvCache c : groups) {
                cachedBy += c.prefixCache() != null && c.prefixCache().isCached(b) ? 1 : 0;
            }
            BlockPool.check(cachedBy <= 1, "block " + b + " is cached by " + cachedBy + " groups");
            BlockPool.check(cachedBy == 0 || owner[b] < 0 || groups[owner[b]].prefixCache().isCached(b), "block " + b
                    + " is in group " + owner[b] + "'s tables but cached by another group");
            BlockPool.check(!sharedPool.isEvictable(b) || cachedBy == 1, "evictable block " + b + " is cached by no group");
        }
    }

    /** The step's tables: one {@link DecodeBatch} per group, through its window ({@link HybridBatch#forLayer}). */
    public synchronized HybridBatch batch(int... seqs) {
        DecodeBatch[] batches = new DecodeBatch[groups.length];
        for (int g = 0; g < groups.length; g++) {
            batches[g] = groups[g].batch(seqs).window(groupWindows[g]);
        }
        return new HybridBatch(this, batches);
    }

    /**
     * Verifies every group's invariants and that every group holds the same sequences with the same lengths; with a shared
     * pool also the pool's, that each block's refcount is the references of every group's tables, that no block is in two
     * groups' tables, and that each evictable block is cached by exactly one group.
     */
    public synchronized void verify() {
        for (KvCache c : groups) {
            c.verify();
        }
        if (sharedPool != null) {
            verifySharedPool();
        }
        Map<Integer, PageTable> first = groups[0].sequences().snapshot();
        for (int g = 1; g < groups.length; g++) {
            Map<Integer, PageTable> other = groups[g].sequences().snapshot();
            BlockPool.check(other.keySet().equals(first.keySet()), "group " + g + " holds sequences " + other.keySet()
                    + " but group 0 holds " + first.keySet());
            for (Map.Entry<Integer, PageTable> e : first.entrySet()) {
                int a = e.getValue().numTokens();
                int b = other.get(e.getKey()).numTokens();
                BlockPool.check(a == b, "seq " + e.getKey() + " has " + a + " tokens in group 0 but " + b + " in group " + g);
            }
        }
    }
}
