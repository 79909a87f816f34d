package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PrefixCache;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** N requests sharing a system prompt: blocks and memory saved by prefix caching, and the hit rate. */
@Command(name = "prefix", mixinStandardHelpOptions = true,
        description = "Show prefix caching: requests sharing a system prompt reuse its KV blocks.")
final class PrefixCommand implements Callable<Integer> {
    @Option(names = "--requests", description = "Requests (default: ${DEFAULT-VALUE}).", defaultValue = "8")
    int requests;

    @Option(names = "--system-prompt", description = "Tokens of the shared system prompt (default: ${DEFAULT-VALUE}).", defaultValue = "500")
    int systemTokens;

    @Option(names = "--suffix", description = "Tokens unique to each request (default: ${DEFAULT-VALUE}).", defaultValue = "60")
    int suffixTokens;

    @Option(names = "--block-size", description = "Tokens per block (default: ${DEFAULT-VALUE}).", defaultValue = "16")
    int blockSize;

    @Option(names = "--seed", description = "Random seed (default: from the clock; always printed).")
    Long seed;

    @Option(names = "--window", description = "With --full-every: a HybridKvCache whose first N - 1 layers see a sliding window"
            + " of W tokens (their prefix hits need only the blocks that window sees).")
    Integer window;

    @Option(names = "--chunk", description = "With --full-every, instead of --window: the first N - 1 layers attend within"
            + " chunks of C tokens (Llama 4: 8192, --full-every 4); their prefix hits need only the first recomputed token's"
            + " chunk.")
    Integer chunk;

    @Option(names = "--full-every", description = "With --window or --chunk: N layers, the last one full (gpt-oss: 2, Gemma 3: 6,"
            + " Llama 4: 4).")
    Integer fullEvery;

    @Option(names = "--hybrid-pool", description = "With --window: split, a block pool per layer group (HybridKvCache.of);"
            + " shared, every group's blocks from one pool (HybridKvCache.sharedPool; default: ${DEFAULT-VALUE}).",
            defaultValue = "split")
    String hybridPool;

    @Option(names = "--host-memory", description = "Host memory behind the prefix cache (PrefixCache.enableHostOffload, e.g."
            + " 64MB): after the requests, unrelated ones evict the system prompt's blocks and a new request shows where"
            + " its hit comes from.")
    String hostMemory;

    @Override
    public Integer call() throws OutOfBlocksException {
        if (requests < 1) {
            throw new IllegalArgumentException("--requests=" + requests + " must be >= 1");
        }
        if (systemTokens < 0 || suffixTokens < 0 || systemTokens + suffixTokens < 1) {
            throw new IllegalArgumentException("--system-prompt=" + systemTokens + " --suffix=" + suffixTokens
                    + " must be >= 0 with at least one token in all");
        }
        if (blockSize < 1) {
            throw new IllegalArgumentException("--block-size=" + blockSize + " must be >= 1");
        }
        Integer layerWindow = window == null && chunk == null ? null : PrefillCheck.window(window, chunk); // names a bad value
        if ((layerWindow == null) != (fullEvery == null) || (fullEvery != null && fullEvery < 2)) {
            throw new IllegalArgumentException((chunk != null ? "--chunk=" + chunk : "--window=" + window) + " --full-every="
                    + fullEvery + " go together: a window >= 1 (or chunks) and a full layer every N >= 2 layers");
        }
        if (!hybridPool.equals("split") && !hybridPool.equals("shared")) {
            throw new IllegalArgumentException("--hybrid-pool=" + hybridPool + " is not one of split, shared");
        }
        if (hybridPool.equals("shared") && layerWindow == null) {
            throw new IllegalArgumentException("--hybrid-pool=shared lays out a HybridKvCache: it needs --window (or --chunk) and"
                    + " --full-every");
        }
        long hostBytes = hostMemory == null ? 0 : ByteSize.parse("--host-memory", hostMemory);
        if (hostMemory != null && layerWindow != null) {
            throw new IllegalArgumentException("--host-memory=" + hostMemory + " is shown on a plain cache, not with --window or"
                    + " --chunk");
        }
        long s = seed != null ? seed : System.nanoTime();
        SplittableRandom random = new SplittableRandom(s);
        if (layerWindow != null) {
            return HybridPrefix.run(requests, systemTokens, suffixTokens, blockSize, layerWindow, fullEvery, hybridPool.equals("shared"), s,
                    random);
        }
        int promptLen = systemTokens + suffixTokens;
        int perRequest = (promptLen + blockSize - 1) / blockSize;
        KvCacheConfig config = KvCacheConfig.of(perRequest * requests + 1, blockSize, 8, 128, KvDtype.FP16);
        KvCache cache = new KvCache(config);
        PrefixCache prefix = cache.enablePrefixCaching();
        prefix.enableEvents();
        int hostBlocks = 0;
        try {
            hostBlocks = hostBytes > 0 ? prefix.enableHostOffload(hostBytes) : 0;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--host-memory=" + hostMemory + ": " + e.getMessage(), e);
        }
        int[] system = randomTokens(random, systemTokens);
        System.out.printf("prefix caching demo (seed=%d): %d requests = %d shared system-prompt tokens + %d own tokens,"
                + " block size %d, 8 KV heads x 128 dims fp16%n", s, requests, systemTokens, suffixTokens, blockSize);

        int[] seqs = new int[requests];
        int[][] prompts = new int[requests][];
        for (int r = 0; r < requests; r++) {
            int[] tokens = new int[promptLen];
            System.arraycopy(system, 0, tokens, 0, systemTokens);
            System.arraycopy(randomTokens(random, suffixTokens), 0, tokens, systemTokens, suffixTokens);
            prompts[r] = tokens;
            int before = cache.numUsedBlocks();
            PrefixCache.Admission a = prefix.admit(tokens, null);
            SyntheticKv.write(cache, a.seq(), tokens, a.numCachedTokens());
            prefix.commit(a.seq());
            seqs[r] = a.seq();
            System.out.printf("  request %d: %d of %d prompt tokens already cached, %d new blocks%n",
                    r, a.numCachedTokens(), promptLen, cache.numUsedBlocks() - before);
        }
        PrefixCache.Metrics m = prefix.metrics();
        int without = perRequest * requests;
        long blockBytes = 2L * config.numKvHeads() * blockSize * config.headDim() * config.dtype().bytes();
        System.out.printf("blocks in use: %d with prefix caching, %d without -> %d blocks (%.1f MB of K/V) saved%n",
                m.numUsedBlocks(), without, without - m.numUsedBlocks(), (without - m.numUsedBlocks()) * blockBytes / 1e6);
        printMetrics(m);
        printEvents(prefix.takeEvents());

        // The shared blocks must give the same attention as a cache written from scratch.
        boolean same = sameAsFromScratch(cache, seqs, prompts, random);
        System.out.println("attention over cached blocks == attention over a cache written from scratch (bit for bit): "
                + (same ? "yes" : "NO"));
        for (int seq : seqs) {
            cache.free(seq);
        }
        System.out.printf("after freeing every request: %d blocks stay cached and evictable (%d used)%n",
                prefix.metrics().numCachedBlocks(), cache.numUsedBlocks());
        if (hostBlocks > 0) {
            same &= afterChurn(cache, prefix, hostBlocks, system, random);
        }
        return same ? 0 : Main.EXIT_CHECK_FAILED;
    }

    /**
     * Unrelated requests take the whole pool, evicting the cached blocks into host memory; then a request with the
     * system prompt finds them there. Whether its attention equals a cache written from scratch, bit for bit.
     */
    private boolean afterChurn(KvCache cache, PrefixCache prefix, int hostBlocks, int[] system, SplittableRandom random)
            throws OutOfBlocksException {
        int[] churn = new int[cache.config().numBlocks() * cache.config().blockSize()];
        for (int i = 0; i < churn.length; i++) {
            churn[i] = 128_000 + random.nextInt(1000);               // ids no prompt above used
        }
        PrefixCache.Admission other = prefix.admit(churn, null);
        cache.free(other.seq());
        PrefixCache.HostMetrics host = prefix.hostMetrics();
        System.out.printf("host memory: %d blocks (%s); an unrelated request took the whole pool: %d blocks evicted, %d of"
                        + " them copied to host memory first (%d dropped to make room)%n", hostBlocks,
                ByteSize.format(hostBlocks * cache.config().totalBytes() / cache.config().numBlocks()),
                prefix.metrics().evictions(), host.offloaded(), host.dropped());
        int[] tokens = new int[system.length + suffixTokens];
        System.arraycopy(system, 0, tokens, 0, system.length);
        System.arraycopy(randomTokens(random, suffixTokens), 0, tokens, system.length, suffixTokens);
        PrefixCache.Admission a = prefix.admit(tokens, null);
        SyntheticKv.write(cache, a.seq(), tokens, a.numCachedTokens());
        long restored = prefix.hostMetrics().restored() - host.restored();
        boolean same = sameAsFromScratch(cache, new int[] {a.seq()}, new int[][] {tokens}, random);
        System.out.printf("a new request with the system prompt: %d of %d prompt tokens cached, %d blocks brought back from host"
                + " memory; its attention == a cache written from scratch (bit for bit): %s%n", a.numCachedTokens(), tokens.length,
                restored, same ? "yes" : "NO");
        cache.free(a.seq());
        printEvents(prefix.takeEvents());
        return same;
    }

    /** What a router would have been told (PrefixCache.takeEvents), counted by kind and medium. */
    private static void printEvents(java.util.List<dev.pagedattn.cache.KvEvent> events) {
        java.util.Map<String, Integer> counts = new java.util.TreeMap<>();
        for (dev.pagedattn.cache.KvEvent e : events) {
            String key = switch (e) {
                case dev.pagedattn.cache.KvEvent.BlockStored st -> "stored on " + st.medium().name().toLowerCase(java.util.Locale.ROOT);
                case dev.pagedattn.cache.KvEvent.BlockRemoved r -> "removed from " + r.medium().name().toLowerCase(java.util.Locale.ROOT);
                case dev.pagedattn.cache.KvEvent.AllBlocksCleared c -> "all cleared";
            };
            counts.merge(key, 1, Integer::sum);
        }
        System.out.println("KV events a router would receive (PrefixCache.takeEvents): " + (counts.isEmpty() ? "none"
                : counts.entrySet().stream().map(e -> e.getValue() + " blocks " + e.getKey())
                        .collect(java.util.stream.Collectors.joining(", "))));
    }

    static void printMetrics(PrefixCache.Metrics m) {
        System.out.printf("metrics: requests=%d block lookups=%d hits=%d hit rate=%.1f%% tokens reused=%d evictions=%d"
                        + " cached blocks=%d pool usage=%.1f%%%n",
                m.requests(), m.blockLookups(), m.blockHits(), 100 * m.hitRate(), m.tokensReused(), m.evictions(),
                m.numCachedBlocks(), 100 * m.poolUsage());
    }

    private static boolean sameAsFromScratch(KvCache cached, int[] seqs, int[][] prompts, SplittableRandom random)
            throws OutOfBlocksException {
        KvCacheConfig c = cached.config();
        KvCache plain = new KvCache(c);
        int[] plainSeqs = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            plainSeqs[i] = plain.createSequence();
            plain.append(plainSeqs[i], prompts[i].length);
            SyntheticKv.write(plain, plainSeqs[i], prompts[i], 0);
        }
        AttentionSpec spec = AttentionSpec.of(c, 32);
        FloatArray q = new FloatArray((int) spec.queryElements(seqs.length));
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        FloatArray a = new FloatArray(q.getSize());
        FloatArray b = new FloatArray(q.getSize());
        a.init(Float.NaN);
        b.init(Float.NaN);
        int shared;
        int threads;
        try (JvmDecodeAttention x = new JvmDecodeAttention(cached, spec); JvmDecodeAttention y = new JvmDecodeAttention(plain, spec)) {
            x.decode(cached.batch(seqs), 0, q, a);
            y.decode(plain.batch(plainSeqs), 0, q, b);
            shared = x.cascadeItems(cached.batch(seqs));
            threads = x.numThreads();
        }
        System.out.printf("the step over the cached blocks: %d of its work items read the shared blocks once for several requests"
                + " (cascade attention, %d threads)%n", shared, threads);
        return sameBits(a, b);
    }

    /** Whether {@code a} and {@code b} hold the same bits in every element and none is NaN (an unwritten output). */
    static boolean sameBits(FloatArray a, FloatArray b) {
        if (a.getSize() != b.getSize()) {
            return false;
        }
        for (int i = 0; i < a.getSize(); i++) {
            if (Float.floatToRawIntBits(a.get(i)) != Float.floatToRawIntBits(b.get(i)) || Float.isNaN(a.get(i))) {
                return false;
            }
        }
        return true;
    }

    static int[] randomTokens(SplittableRandom random, int n) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = random.nextInt(128_000);
        }
        return t;
    }
}
