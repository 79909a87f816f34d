package dev.pagedattn.attention;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * A warm pool of worker threads for the JVM backend: {@code numThreads - 1} daemon helpers plus
 * the calling thread (worker 0) claim the items of one step from a shared counter. Between steps
 * a helper spins for {@code pagedattn.jvm.spinMicros} (50 us) and then parks, so a decode loop
 * pays no thread wake-up per step while idle workers do not burn a core; nothing is allocated per
 * step (a fork-join task tree and its lambdas were, and their wake-ups made the median step up to
 * 10x the fastest).
 *
 * <p>The claim counter packs the step's generation, its item count and the next item into one
 * long, so a helper that wakes late can never claim an item of a step it did not see start.
 * One step at a time: the caller serialises {@link #run}. The TornadoVM plans use one for their row copies
 * ({@code dev.pagedattn.tornado.RowCopier}).
 */
public final class JvmWorkers implements AutoCloseable {
    /** Runs item {@code item} of the current step on worker {@code worker} (0 = the caller). */
    public interface Task {
        void run(int item, int worker);
    }

    static final long SPIN_NANOS = 1000L * Long.getLong("pagedattn.jvm.spinMicros", 50);
    /** Items per step: the counter keeps 22 bits for the count and 22 for the next item. */
    static final int MAX_ITEMS = (1 << 22) - 1;
    private static final int ITEM_BITS = 22;
    private static final long ITEM_MASK = (1L << ITEM_BITS) - 1;
    private static final long GENERATION_MASK = (1L << (64 - 2 * ITEM_BITS)) - 1; // wraps after 2^20 steps

    private Task task;                          // the step's: written before the step is published (claims.set)
    private final Thread[] helpers;             // [numThreads - 1]
    private final AtomicIntegerArray sleeping;  // [numThreads - 1] 1 while helper i is (about to be) parked
    private final AtomicLong claims = new AtomicLong(); // generation << 44 | numItems << 22 | nextItem
    private final AtomicInteger pending = new AtomicInteger(); // items of this step not yet finished
    private volatile Thread caller;
    private volatile Throwable failure;
    private volatile boolean closed;

    public JvmWorkers(int numThreads, Task task) {
        this(numThreads, task, "pagedattn-jvm-");
    }

    /** The same, its helper threads named {@code namePrefix + i}. */
    public JvmWorkers(int numThreads, Task task, String namePrefix) {
        if (numThreads < 1) {
            throw new IllegalArgumentException("pagedattn.jvm.threads=" + numThreads + " must be >= 1");
        }
        this.task = task;
        this.helpers = new Thread[numThreads - 1];
        this.sleeping = new AtomicIntegerArray(numThreads - 1);
        for (int i = 0; i < helpers.length; i++) {
            int worker = i + 1;
            helpers[i] = Thread.ofPlatform().daemon().name(namePrefix + worker).unstarted(() -> helperLoop(worker));
            helpers[i].start();
        }
    }

    public int numThreads() {
        return helpers.length + 1;
    }

    /**
     * Runs items {@code [0, numItems)} of {@code task} on all workers (several backends may share one pool: a
     * {@code HybridAttention}'s groups); callers that share it serialise their steps on this object.
     */
    public void run(Task task, int numItems) {
        this.task = task; // the volatile claims.set in run publishes it to the helpers that see the step
        run(numItems);
    }

    /** Runs items {@code [0, numItems)} on all workers and returns when every one has finished. */
    public void run(int numItems) {
        if (numItems < 0 || numItems > MAX_ITEMS) {
            throw new IllegalArgumentException("numItems=" + numItems + " is outside [0, " + MAX_ITEMS + "]");
        }
        if (closed) {
            throw new IllegalStateException("the JVM decode workers are closed");
        }
        failure = null;
        caller = Thread.currentThread();
        pending.set(numItems);
        long generation = ((claims.get() >>> (2 * ITEM_BITS)) + 1) & GENERATION_MASK;
        claims.set(generation << (2 * ITEM_BITS) | (long) numItems << ITEM_BITS); // publishes the step
        for (int i = 0; i < helpers.length; i++) {
            if (sleeping.get(i) == 1) {
                LockSupport.unpark(helpers[i]);
            }
        }
        work(0, generation);
        long spinUntil = System.nanoTime() + SPIN_NANOS;
        while (pending.get() != 0) {
            if (System.nanoTime() < spinUntil) {
                Thread.onSpinWait();
            } else {
                LockSupport.park(this); // the worker finishing the last item unparks the caller
            }
        }
        Throwable t = failure;
        if (t instanceof RuntimeException r) {
            throw r;
        } else if (t instanceof Error e) {
            throw e;
        } else if (t != null) {
            throw new IllegalStateException(t);
        }
    }

    /** Claims and runs items of step {@code generation} until none is left (or a newer step began). */
    private void work(int worker, long generation) {
        while (true) {
            long c = claims.get();
            int next = (int) (c & ITEM_MASK);
            if (c >>> (2 * ITEM_BITS) != generation || next >= (int) ((c >>> ITEM_BITS) & ITEM_MASK)) {
                return;
            }
            if (!claims.compareAndSet(c, c + 1)) {
                continue;
            }
            try {
                task.run(next, worker);
            } catch (Throwable t) {
                failure = t; // the step reports one of its failures
            }
            if (pending.decrementAndGet() == 0) {
                LockSupport.unpark(caller);
            }
        }
    }

    private void helperLoop(int worker) {
        int index = worker - 1;
        long seen = 0;
        while (!closed) {
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            long generation;
            while ((generation = claims.get() >>> (2 * ITEM_BITS)) == seen && !closed) {
                if (System.nanoTime() < spinUntil) {
                    Thread.onSpinWait();
                } else {
                    // Announce the park, then look again: a step published before the announcement is
                    // seen here, one published after it finds the flag set and unparks this thread.
                    sleeping.set(index, 1);
                    if (claims.get() >>> (2 * ITEM_BITS) == seen && !closed) {
                        LockSupport.park(this);
                    }
                    sleeping.set(index, 0);
                }
            }
            seen = generation;
            work(worker, generation);
        }
    }

    /** Whether {@link #close} ran. */
    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        closed = true;
        for (Thread helper : helpers) {
            LockSupport.unpark(helper);
        }
    }
}
