package dev.pagedattn.cache;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Everything a cache operation could change, captured for "nothing changed" checks: every
 * sequence's page table, length and stored K/V, every block's reference count and state, the
 * pool counters, the LRU order and (with prefix caching) which blocks are cached and the hit counters.
 */
record CacheSnapshot(Map<Integer, List<Integer>> tables, Map<Integer, Integer> lengths,
                     Map<Integer, List<Integer>> kvBits, List<Integer> refCounts, List<Boolean> evictable,
                     int numFree, int numEvictable, int numAllocatable, List<Integer> evictionOrder,
                     List<Boolean> cached, List<Long> prefixCounters) {

    static CacheSnapshot of(KvCache cache) {
        synchronized (cache) {
            KvCacheConfig c = cache.config();
            BlockPool pool = cache.pool();
            Map<Integer, List<Integer>> tables = new TreeMap<>();
            Map<Integer, Integer> lengths = new TreeMap<>();
            Map<Integer, List<Integer>> kv = new TreeMap<>();
            for (int seq : liveSequences(cache)) {
                tables.put(seq, boxed(cache.pageTable(seq).blocks()));
                lengths.put(seq, cache.length(seq));
                List<Integer> bits = new ArrayList<>();
                for (int p = cache.firstHeldPosition(seq); p < cache.length(seq); p++) {
                    for (int layer = 0; layer < c.numLayers(); layer++) {
                        for (int h = 0; h < c.numKvHeads(); h++) {
                            for (int d = 0; d < c.headDim(); d++) {
                                bits.add(Float.floatToRawIntBits(cache.readK(seq, layer, p, h, d)));
                                bits.add(Float.floatToRawIntBits(cache.readV(seq, layer, p, h, d)));
                            }
                        }
                    }
                }
                kv.put(seq, bits);
            }
            List<Integer> refs = new ArrayList<>();
            List<Boolean> evictable = new ArrayList<>();
            List<Boolean> cached = new ArrayList<>();
            PrefixCache prefix = cache.prefixCache();
            for (int b = 0; b < c.numBlocks(); b++) {
                refs.add(pool.refCount(b));
                evictable.add(pool.isEvictable(b));
                cached.add(prefix != null && prefix.isCached(b));
            }
            List<Long> counters = List.of();
            if (prefix != null) {
                PrefixCache.Metrics m = prefix.metrics();
                counters = List.of(m.blockHits(), m.tokensReused(), m.evictions(), (long) m.numCachedBlocks());
            }
            return new CacheSnapshot(tables, lengths, kv, refs, evictable, pool.numFree(), pool.numEvictable(),
                    pool.numAllocatable(), boxed(pool.evictionOrder()), cached, counters);
        }
    }

    /** Ids of all live sequences, found by probing upwards until numSequences() are seen. */
    static List<Integer> liveSequences(KvCache cache) {
        synchronized (cache) {
            List<Integer> out = new ArrayList<>();
            for (int id = 0; out.size() < cache.numSequences(); id++) {
                if (cache.contains(id)) {
                    out.add(id);
                }
            }
            return out;
        }
    }

    static List<Integer> boxed(int[] a) {
        List<Integer> out = new ArrayList<>(a.length);
        for (int x : a) {
            out.add(x);
        }
        return out;
    }
}
