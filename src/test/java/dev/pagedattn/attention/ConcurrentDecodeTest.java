package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Four threads share one cache and one JVM backend for a bounded time. Each owns its sequences
 * and, in a loop, appends and writes random K/V, forks, rewrites shared positions (copy-on-write),
 * frees, and decodes a batch of its sequences in a random layer, checked against the fp64
 * reference: another thread's changes (which move blocks around the shared pool) must never show
 * up in a decode.
 */
class ConcurrentDecodeTest {
    private static final int THREADS = 4;
    private static final long MILLIS = 3_000;
    private static final KvCacheConfig C = new KvCacheConfig(160, 8, 2, 16, KvDtype.FP32, 2);
    private static final int Q_HEADS = 4;
    private static final int MIN_DECODES = 5; // per thread, however slow the machine

    @Test
    @Timeout(60)
    void threadsDecodingTheirOwnSequencesWhileOthersChangeTheCacheMatchTheReference() throws Exception {
        long seed = TestSeeds.fresh("ConcurrentDecodeTest");
        KvCache cache = new KvCache(C);
        AttentionSpec spec = AttentionSpec.of(C, Q_HEADS);
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try (JvmDecodeAttention attention = new JvmDecodeAttention(cache, spec)) {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                SplittableRandom random = new SplittableRandom(seed + t);
                futures.add(pool.submit(() -> {
                    start.await();
                    work(cache, spec, attention, random);
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> f : futures) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        cache.verify();
    }

    private static void work(KvCache cache, AttentionSpec spec, JvmDecodeAttention attention, SplittableRandom random)
            throws Exception {
        List<Integer> mine = new ArrayList<>();
        long end = System.nanoTime() + MILLIS * 1_000_000;
        int checked = 0;
        while (System.nanoTime() < end || checked < MIN_DECODES) { // a loaded machine still gets a few decodes per thread
            try {
                change(cache, mine, random);
            } catch (OutOfBlocksException e) {
                if (!mine.isEmpty()) { // the pool is shared: make room and go on
                    cache.free(mine.remove(random.nextInt(mine.size())));
                }
                continue;
            }
            if (mine.isEmpty()) {
                continue;
            }
            int[] seqs = mine.stream().mapToInt(Integer::intValue).filter(s -> cache.length(s) > 0).toArray();
            if (seqs.length == 0) {
                continue;
            }
            int layer = random.nextInt(C.numLayers());
            DecodeBatch batch = cache.batch(seqs);
            FloatArray q = new FloatArray((int) spec.queryElements(seqs.length));
            for (int i = 0; i < q.getSize(); i++) {
                q.set(i, (float) (random.nextDouble() * 2 - 1));
            }
            FloatArray out = new FloatArray(q.getSize());
            out.init(Float.NaN);
            attention.decode(batch, layer, q, out);
            double[] want = ReferenceAttention.decode(cache, spec, layer, seqs, q);
            double err = ReferenceAttention.relativeL2(out, want);
            assertTrue(err <= 1e-5, "relative L2 " + err + " in layer " + layer + " for sequences " + mine);
            checked++;
        }
    }

    /** One random change to this thread's own sequences. */
    private static void change(KvCache cache, List<Integer> mine, SplittableRandom random) throws OutOfBlocksException {
        int op = mine.isEmpty() ? 0 : random.nextInt(10);
        if (op == 0 && mine.size() < 6) {
            int seq = cache.createSequence();
            mine.add(seq);
            appendWritten(cache, seq, 1 + random.nextInt(40), random);
        } else if (op <= 4) {
            appendWritten(cache, mine.get(random.nextInt(mine.size())), 1 + random.nextInt(6), random);
        } else if (op <= 6 && mine.size() < 6) {
            mine.add(cache.fork(mine.get(random.nextInt(mine.size()))));
        } else if (op <= 8) {
            int seq = mine.get(random.nextInt(mine.size()));
            int len = cache.length(seq);
            if (len > 0) { // may lie in a block shared with a fork: copied first
                int pos = random.nextInt(len);
                for (int layer = 0; layer < C.numLayers(); layer++) {
                    cache.write(seq, layer, pos, randomKv(random, 1), randomKv(random, 1));
                }
            }
        } else {
            cache.free(mine.remove(random.nextInt(mine.size())));
        }
    }

    private static void appendWritten(KvCache cache, int seq, int n, SplittableRandom random) throws OutOfBlocksException {
        int first = cache.append(seq, n);
        for (int layer = 0; layer < C.numLayers(); layer++) {
            cache.writeTokens(seq, layer, first, n, randomKv(random, n), randomKv(random, n));
        }
    }

    private static float[] randomKv(SplittableRandom random, int numTokens) {
        float[] a = new float[numTokens * C.tokenWidth()];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return a;
    }
}
