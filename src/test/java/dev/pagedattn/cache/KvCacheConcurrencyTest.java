package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Every KvCache method is synchronized: threads working on disjoint sequences never disturb each other. */
class KvCacheConcurrencyTest {
    private static final int THREADS = 4;
    private static final int STEPS = 2_000;
    private static final int MAX_SEQS = 4;     // per thread
    private static final int MAX_TOKENS = 16;  // per sequence

    @Test
    @Timeout(60)
    void threadsCreateAppendForkAndFreeDisjointSequencesSafely() throws Exception {
        Random seeds = TestRandom.create("KvCacheConcurrencyTest.threadsCreateAppendForkAndFreeDisjointSequencesSafely");
        // room for every thread's worst case, so no append can run out: MAX_SEQS * (MAX_TOKENS / 4 + 1) blocks each
        KvCacheConfig c = KvCacheConfig.of(THREADS * MAX_SEQS * (MAX_TOKENS / 4 + 1), 4, 2, 2, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        Set<Integer> allIds = ConcurrentHashMap.newKeySet();
        List<Map<Integer, List<Integer>>> models = new ArrayList<>();
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(THREADS + 1);
        List<Future<?>> futures = new ArrayList<>();
        try {
            for (int t = 0; t < THREADS; t++) {
                Map<Integer, List<Integer>> model = new HashMap<>();
                models.add(model);
                int thread = t;
                long seed = seeds.nextLong();
                futures.add(pool.submit(() -> {
                    start.await();
                    work(cache, thread, new Random(seed), model, allIds);
                    return null;
                }));
            }
            futures.add(pool.submit(() -> { // a checker running alongside
                start.await();
                for (int i = 0; i < 200; i++) {
                    cache.verify();
                    synchronized (cache) { // the cache's own lock: both counters from one moment
                        assertEquals(c.numBlocks(), cache.numUsedBlocks() + cache.numAllocatableBlocks());
                    }
                    Thread.yield();
                }
                return null;
            }));
            start.countDown();
            for (Future<?> f : futures) {
                f.get(50, TimeUnit.SECONDS); // rethrows a worker's assertion failure
            }
        } finally {
            pool.shutdownNow();
        }

        cache.verify();
        Set<Integer> blocks = new HashSet<>();
        int live = 0;
        for (Map<Integer, List<Integer>> model : models) {
            for (Map.Entry<Integer, List<Integer>> e : model.entrySet()) {
                Tokens.assertHolds(cache, e.getKey(), e.getValue().stream().mapToInt(Integer::intValue).toArray());
                for (int b : cache.pageTable(e.getKey()).blocks()) {
                    blocks.add(b);
                }
                live++;
            }
        }
        assertEquals(live, cache.numSequences());
        assertEquals(blocks.size(), cache.numUsedBlocks());
        assertEquals(c.numBlocks() - blocks.size(), cache.numAllocatableBlocks());
        for (Map<Integer, List<Integer>> model : models) {
            for (int seq : model.keySet()) {
                cache.free(seq);
            }
        }
        cache.verify();
        assertEquals(0, cache.numSequences());
        assertEquals(0, cache.numUsedBlocks());
        assertEquals(c.numBlocks(), cache.numAllocatableBlocks());
    }

    private static void work(KvCache cache, int thread, Random random, Map<Integer, List<Integer>> model,
                             Set<Integer> allIds) throws Exception {
        int nextToken = thread * 10_000;
        for (int step = 0; step < STEPS; step++) {
            List<Integer> mine = new ArrayList<>(model.keySet());
            int r = random.nextInt(10);
            if (mine.isEmpty() || (r == 0 && mine.size() < MAX_SEQS)) {
                int seq = cache.createSequence();
                assertEquals(true, allIds.add(seq), "sequence id " + seq + " handed out twice");
                model.put(seq, new ArrayList<>());
                continue;
            }
            int seq = mine.get(random.nextInt(mine.size()));
            List<Integer> tokens = model.get(seq);
            if (r < 6) {
                int n = Math.min(MAX_TOKENS - tokens.size(), 1 + random.nextInt(5));
                if (n > 0) {
                    int[] ids = Tokens.range(nextToken, n);
                    nextToken += n;
                    assertEquals(tokens.size(), Tokens.append(cache, seq, ids));
                    for (int id : ids) {
                        tokens.add(id);
                    }
                }
            } else if (r < 7 && mine.size() < MAX_SEQS) {
                int child = cache.fork(seq);
                assertEquals(true, allIds.add(child), "sequence id " + child + " handed out twice");
                model.put(child, new ArrayList<>(tokens));
            } else if (r < 8) {
                cache.free(seq);
                model.remove(seq);
            } else {
                Tokens.assertHolds(cache, seq, tokens.stream().mapToInt(Integer::intValue).toArray());
                if (!tokens.isEmpty()) {
                    assertEquals(tokens.size(), cache.batch(seq).contextLen(0));
                }
            }
        }
    }
}
