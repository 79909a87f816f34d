package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/** The warm worker pool: every item once per step, failures reach the caller, the pool survives them. */
class JvmWorkersTest {

    @Test
    void everyItemRunsExactlyOncePerStep() {
        long seed = TestSeeds.fresh("everyItemRunsExactlyOncePerStep");
        SplittableRandom random = new SplittableRandom(seed);
        AtomicIntegerArray runs = new AtomicIntegerArray(300);
        try (JvmWorkers workers = new JvmWorkers(4, (item, worker) -> runs.incrementAndGet(item))) {
            for (int step = 0; step < 3000; step++) {
                int numItems = step % 7 == 0 ? 0 : random.nextInt(runs.length());
                workers.run(numItems);
                for (int i = 0; i < runs.length(); i++) {
                    assertEquals(i < numItems ? 1 : 0, runs.getAndSet(i, 0), "step " + step + " item " + i + " of " + numItems + " seed=" + seed);
                }
            }
        }
    }

    @Test
    void aFailingItemReachesTheCallerAndThePoolKeepsWorking() {
        IllegalStateException boom = new IllegalStateException("item 5 failed");
        AtomicIntegerArray runs = new AtomicIntegerArray(10);
        try (JvmWorkers workers = new JvmWorkers(3, (item, worker) -> {
            runs.incrementAndGet(item);
            if (item == 5) {
                throw boom;
            }
        })) {
            assertSame(boom, assertThrows(IllegalStateException.class, () -> workers.run(10)));
            for (int i = 0; i < 10; i++) {
                assertEquals(1, runs.getAndSet(i, 0), "item " + i + " of the failing step");
            }
            workers.run(5);
            for (int i = 0; i < 10; i++) {
                assertEquals(i < 5 ? 1 : 0, runs.get(i), "item " + i + " of the next step");
            }
        }
    }

    @Test
    void refusesNoThreadsAndClosedUse() {
        assertThrows(IllegalArgumentException.class, () -> new JvmWorkers(0, (item, worker) -> { }));
        JvmWorkers workers = new JvmWorkers(2, (item, worker) -> { });
        workers.close();
        assertThrows(IllegalStateException.class, () -> workers.run(1));
    }
}
