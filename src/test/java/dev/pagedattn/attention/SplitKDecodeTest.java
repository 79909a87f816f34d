package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvDtype;
import java.lang.management.ManagementFactory;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The JVM backend with more threads than groups, so that contexts are split into chunks and
 * merged: against the fp64 reference, bit-reproducible for a thread count, and allocation-free
 * in a steady decode loop.
 */
class SplitKDecodeTest {

    /** Runs {@code body} with {@code pagedattn.jvm.threads} set (read when a backend is made). */
    static <T> T withThreads(int threads, Supplier<T> body) {
        String before = System.getProperty("pagedattn.jvm.threads");
        System.setProperty("pagedattn.jvm.threads", Integer.toString(threads));
        try {
            return body.get();
        } finally {
            if (before == null) {
                System.clearProperty("pagedattn.jvm.threads");
            } else {
                System.setProperty("pagedattn.jvm.threads", before);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void splitContextsMatchTheReference(KvDtype dtype) {
        Shape[] shapes = {
            Shape.of(new int[] {3000}, 8, 2, 64, 16, dtype),
            Shape.of(new int[] {2500, 17, 700, 1, 1200}, 8, 1, 128, 16, dtype),
            Shape.of(new int[] {1500, 999}, 6, 3, 80, 7, dtype).withScale(2f),
        };
        for (Shape shape : shapes) {
            DecodeProblem p = DecodeProblem.random(shape, TestSeeds.fresh("splitContextsMatchTheReference " + shape));
            FloatArray out = p.poisonedOutput();
            try (JvmDecodeAttention a = withThreads(16, () -> new JvmDecodeAttention(p.cache(), p.spec()))) {
                assertTrue(a.chunkTokens(p.batch()) < p.batch().maxContextLen(), "the case must split: " + p.describe());
                a.decode(p.batch(), 0, p.q(), out);
            }
            double relL2 = shape.scale() > 1 ? 1e-4 : Accuracy.REL_L2; // larger scores, larger fp32 score rounding
            Accuracy.assertClose(out, p.reference(), relL2, relL2, p.describe());
        }
    }

    @Test
    void sameBitsOnEveryRunForAThreadCount() {
        Shape shape = Shape.of(new int[] {2000, 333, 1024}, 8, 2, 128, 16, KvDtype.FP16);
        DecodeProblem p = DecodeProblem.random(shape, TestSeeds.fresh("sameBitsOnEveryRunForAThreadCount"));
        FloatArray first = p.poisonedOutput();
        FloatArray again = p.poisonedOutput();
        try (JvmDecodeAttention a = withThreads(12, () -> new JvmDecodeAttention(p.cache(), p.spec()));
             JvmDecodeAttention b = withThreads(12, () -> new JvmDecodeAttention(p.cache(), p.spec()))) {
            a.decode(p.batch(), 0, p.q(), first);
            for (int run = 0; run < 20; run++) {
                again.init(Float.NaN);
                (run % 2 == 0 ? a : b).decode(p.batch(), 0, p.q(), again);
                for (int i = 0; i < first.getSize(); i++) {
                    assertEquals(Float.floatToRawIntBits(first.get(i)), Float.floatToRawIntBits(again.get(i)),
                            "run " + run + " element " + i + " " + p.describe());
                }
            }
        }
        Accuracy.assertClose(first, p.reference(), p.describe());
    }

    /**
     * Once C2 has compiled the kernel (interpreted Vector API code allocates a box per operation),
     * 100 steps allocate nothing on the caller and the workers, for every dtype (a vector boxed in
     * some widening or arithmetic helper would show here); the loop waits for that point for up to
     * 100 rounds of 100 steps or 30 s, whichever is longer, and fails if it never comes.
     */
    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void aSteadyDecodeLoopAllocatesNothing(KvDtype dtype) {
        Shape shape = Shape.of(new int[] {300, 45}, 4, 2, 32, 16, dtype); // 300 tokens split on 3 threads
        DecodeProblem p = DecodeProblem.random(shape, TestSeeds.fresh("aSteadyDecodeLoopAllocatesNothing " + dtype));
        FloatArray out = p.poisonedOutput();
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (JvmDecodeAttention a = withThreads(3, () -> new JvmDecodeAttention(p.cache(), p.spec()))) {
            a.decode(p.batch(), 0, p.q(), out); // the workers exist from here on
            long[] ids = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t == Thread.currentThread() || t.getName().startsWith("pagedattn-jvm-"))
                    .mapToLong(Thread::threadId).toArray();
            assertEquals(3, ids.length, "the caller and two workers");
            // The counter read itself allocates its result array: measure that with no step in between.
            long probe = sum(threads.getThreadAllocatedBytes(ids));
            long ownBytes = sum(threads.getThreadAllocatedBytes(ids)) - probe;
            int steps = 100;
            long bytes = Long.MAX_VALUE;
            int round = 0;
            // C2 must have compiled the loop (code still in C1 allocates its vectors): on a busy machine that can take
            // longer than 100 rounds, so the loop also waits up to 30 s before it gives up
            long deadline = System.nanoTime() + 30_000_000_000L;
            for (; (round < 100 || System.nanoTime() < deadline) && bytes > 0; round++) {
                long before = sum(threads.getThreadAllocatedBytes(ids));
                for (int i = 0; i < steps; i++) {
                    a.decode(p.batch(), 0, p.q(), out);
                }
                bytes = sum(threads.getThreadAllocatedBytes(ids)) - before - ownBytes;
            }
            assertEquals(0, bytes, steps + " steps still allocated " + bytes + " bytes after " + round + " rounds");
        }
        Accuracy.assertClose(out, p.reference(), p.describe());
    }

    private static long sum(long[] values) {
        long s = 0;
        for (long v : values) {
            s += v;
        }
        return s;
    }
}
