package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * {@link HybridAttention} on the JVM backend: its groups' decode backends step on one pool of worker threads (a model cut
 * into many small groups does not multiply threads), two threads decoding different groups at once get the bits of one
 * thread decoding them in turn, and closing it stops the threads.
 */
class HybridAttentionWorkersTest {
    private static final int F = DecodeBatch.NO_WINDOW;

    @Test
    void everyGroupStepsOnOnePoolOfThreads() throws Exception {
        long seed = TestSeeds.fresh("HybridAttentionWorkersTest.everyGroupStepsOnOnePoolOfThreads");
        SplittableRandom random = new SplittableRandom(seed);
        int[] windows = {16, 16, 16, 16, 16, F, 16, 16, 16, 16, 16, F}; // groups of one layer: 12 groups
        HybridKvCache cache = HybridKvCache.sharedPool(windows, 400, 1, 8, 2, 16, KvDtype.FP32, null);
        assertEquals(12, cache.numGroups());
        int[] seqs = new int[3];
        for (int i = 0; i < seqs.length; i++) {
            seqs[i] = cache.createSequence();
            append(cache, seqs[i], 40 + 17 * i, random);
        }
        AttentionSpec spec = AttentionSpec.of(cache.group(0).config(), 8);
        int rows = (int) spec.queryElements(seqs.length);
        HybridBatch batch = cache.batch(seqs);
        java.util.Set<Thread> before = helperThreads();
        HybridAttention attention = HybridAttention.create("jvm", cache, spec, null, "auto");
        java.util.Set<Thread> started = helperThreads();
        started.removeAll(before);
        try {
            assertEquals(JvmDecodeAttention.threads() - 1, started.size(), "one pool's helpers, not one per group: " + started);
            FloatArray[] qs = new FloatArray[windows.length];
            float[][] alone = new float[windows.length][];
            for (int layer = 0; layer < windows.length; layer++) {
                qs[layer] = FloatArray.fromArray(DecodeProblem.uniform(random, rows));
                alone[layer] = decode(attention, batch, layer, qs[layer], rows);
            }
            ExecutorService two = Executors.newFixedThreadPool(2);
            try {
                for (int round = 0; round < 50; round++) {
                    Future<?> a = two.submit(() -> {
                        for (int layer = 0; layer < windows.length; layer += 2) {
                            assertArrayEquals(alone[layer], decode(attention, batch, layer, qs[layer], rows), "layer " + layer);
                        }
                        return null;
                    });
                    Future<?> b = two.submit(() -> {
                        for (int layer = 1; layer < windows.length; layer += 2) {
                            assertArrayEquals(alone[layer], decode(attention, batch, layer, qs[layer], rows), "layer " + layer);
                        }
                        return null;
                    });
                    a.get(60, java.util.concurrent.TimeUnit.SECONDS); // a step that waits on another forever fails here
                    b.get(60, java.util.concurrent.TimeUnit.SECONDS);
                }
            } finally {
                two.shutdownNow();
            }
        } finally {
            attention.close();
        }
        FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, rows));
        assertThrows(IllegalStateException.class, () -> attention.decode(batch, 0, q, new FloatArray(rows)), "after close");
        for (Thread t : started) {
            t.join(5000);
            assertTrue(!t.isAlive(), "closing stops the pool's helpers: " + t);
        }
    }

    /** Decodes layer {@code layer} through the group's backend, directly (the backends are what two threads share). */
    private static float[] decode(HybridAttention attention, HybridBatch batch, int layer, FloatArray q, int rows) {
        FloatArray out = new FloatArray(rows);
        out.init(Float.NaN);
        attention.decode(batch, layer, q, out);
        return out.toHeapArray();
    }

    /** The JVM backends' live helper threads. */
    private static java.util.Set<Thread> helperThreads() {
        java.util.Set<Thread> out = new java.util.HashSet<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.isAlive() && t.getName().startsWith("pagedattn-jvm-")) {
                out.add(t);
            }
        }
        return out;
    }

    private static void append(HybridKvCache cache, int seq, int n, SplittableRandom random) throws OutOfBlocksException {
        int width = cache.group(0).config().tokenWidth();
        int first = cache.append(seq, n);
        for (int layer = 0; layer < cache.numLayers(); layer++) {
            cache.writeTokens(seq, layer, first, n, DecodeProblem.uniform(random, n * width), DecodeProblem.uniform(random, n * width));
        }
    }
}
