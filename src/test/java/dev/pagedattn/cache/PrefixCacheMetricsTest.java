package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Requests, lookups, hits, hit rate, tokens reused, evictions and pool usage. */
class PrefixCacheMetricsTest {

    @Test
    void freshCacheReportsZeros() {
        KvCache cache = new KvCache(KvCacheConfig.of(6, 4, 1, 1, KvDtype.FP32));
        PrefixCache.Metrics m = cache.enablePrefixCaching().metrics();
        assertEquals(new PrefixCache.Metrics(0, 0, 0, 0, 0, 0, 0, 6), m);
        assertEquals(0.0, m.hitRate(), "no lookups: hit rate 0, not NaN");
        assertEquals(0.0, m.poolUsage());
    }

    @Test
    void metricsCountEveryAdmissionHitAndEviction() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(6, 4, 1, 1, KvDtype.FP32));
        PrefixCache prefix = cache.enablePrefixCaching();
        PromptKv kv = new PromptKv();
        int[] p1 = Tokens.range(1, 10);

        PrefixCache.Admission first = kv.admitWriteCommit(cache, p1, null);   // 2 lookups, 0 hits, 3 blocks
        assertEquals(new PrefixCache.Metrics(1, 2, 0, 0, 0, 2, 3, 6), prefix.metrics());

        PrefixCache.Admission second = kv.admitWriteCommit(cache, p1, null);  // 2 lookups, 2 hits, 1 block
        assertEquals(new PrefixCache.Metrics(2, 4, 2, 8, 0, 2, 4, 6), prefix.metrics());

        PrefixCache.Admission other = prefix.admit(Tokens.range(100, 5), null); // 1 lookup, 2 blocks, not committed
        PrefixCache.Metrics m = prefix.metrics();
        assertEquals(new PrefixCache.Metrics(3, 5, 2, 8, 0, 2, 6, 6), m);
        assertEquals(0.4, m.hitRate(), 1e-12);
        assertEquals(1.0, m.poolUsage(), 1e-12);

        cache.free(first.seq());
        cache.free(second.seq());
        cache.free(other.seq());
        m = prefix.metrics();
        assertEquals(2, m.numCachedBlocks(), "freed blocks stay cached");
        assertEquals(0, m.numUsedBlocks());
        assertEquals(0.0, m.poolUsage());

        prefix.admit(Tokens.range(200, 21), null);                           // 5 lookups, 6 blocks: evicts 2
        assertEquals(new PrefixCache.Metrics(4, 10, 2, 8, 2, 0, 6, 6), prefix.metrics());
        assertEquals(0.2, prefix.metrics().hitRate(), 1e-12);
    }

    @Test
    void resetZeroesTheCounters() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(6, 4, 1, 1, KvDtype.FP32));
        PrefixCache prefix = cache.enablePrefixCaching();
        PromptKv kv = new PromptKv();
        int a = kv.admitWriteCommit(cache, Tokens.range(1, 10), null).seq();
        int b = kv.admitWriteCommit(cache, Tokens.range(1, 10), null).seq();
        cache.free(a);
        cache.free(b);
        prefix.reset();
        assertEquals(new PrefixCache.Metrics(0, 0, 0, 0, 0, 0, 0, 6), prefix.metrics());
    }
}
