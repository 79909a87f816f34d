package dev.pagedattn.tornado;

import dev.pagedattn.attention.JvmWorkers;

/**
 * Copies a step's query and output rows between the caller's array and a plan's own arrays (the ones its task graphs
 * send and fetch), on several threads once a copy is large. On an H200's host one thread copied 4 MB of rows in and out
 * (128 sequences of 32 heads x 128 dims, fp32) in about 350 us, at 12 GB/s, against 100 us for TornadoVM to move
 * the same bytes to the device and back and 187 us of attention kernel (benchmarks/NOTES.md, c1): the copies were
 * half of a large batch's wall time. Below {@link #PARALLEL_BYTES} per copy (cache-resident sizes, which one thread
 * copies at 30+ GB/s) the caller copies alone. Threads: {@code -Dpagedattn.tornado.copyThreads} (default half the
 * processors, at most 8; 1: the caller alone); the helpers start at the first large copy, spin briefly after each and
 * then park (as the JVM backend's workers do). One copy at a time: the plan's step serialises them.
 */
final class RowCopier implements AutoCloseable {
    /** Bytes of one copy from which it is split over the threads. */
    static final long PARALLEL_BYTES = 1L << 20;
    /** The smallest share of one thread. */
    static final long MIN_SHARE_BYTES = 256L << 10;
    /** {@code -Dpagedattn.tornado.copyThreads}. */
    static final int THREADS = parseThreads(System.getProperty("pagedattn.tornado.copyThreads"),
            Runtime.getRuntime().availableProcessors());

    /** Copies rows {@code [from, to)}. */
    interface Rows {
        void copy(int from, int to);
    }

    private final int threads;
    private JvmWorkers workers;
    private Rows current;        // the copy in flight: its rows, cut into items of perItem rows
    private int currentRows;
    private int perItem;

    RowCopier(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("copy threads=" + threads + " must be >= 1");
        }
        this.threads = threads;
    }

    /** The thread count of {@code -Dpagedattn.tornado.copyThreads=value} (null: the default for {@code processors}). */
    static int parseThreads(String value, int processors) {
        if (value == null) {
            return Math.max(1, Math.min(8, processors / 2));
        }
        try {
            int n = Integer.parseInt(value.strip());
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException e) {
            // named below
        }
        throw new IllegalArgumentException("pagedattn.tornado.copyThreads=" + value + " is not a whole number >= 1");
    }

    /** Copies {@code rows} rows of {@code rowBytes} each through {@code body}, split over the threads if large. */
    void copy(int rows, long rowBytes, Rows body) {
        int items = items(rows, rowBytes, threads);
        if (items <= 1) {
            body.copy(0, rows);
            return;
        }
        if (workers == null) {
            workers = new JvmWorkers(threads, (item, worker) -> {
                int from = item * perItem;
                current.copy(from, Math.min(currentRows, from + perItem));
            }, "pagedattn-copy-");
        }
        current = body;
        currentRows = rows;
        perItem = (rows + items - 1) / items;
        try {
            workers.run((rows + perItem - 1) / perItem); // publishes the fields above to the helpers
        } finally {
            current = null;
        }
    }

    /** How many pieces a copy of {@code rows} rows of {@code rowBytes} is cut into: 1 below {@link #PARALLEL_BYTES}. */
    static int items(int rows, long rowBytes, int threads) {
        long bytes = rows * rowBytes;
        if (threads == 1 || bytes < PARALLEL_BYTES) {
            return 1;
        }
        long byShare = Math.max(1, bytes / MIN_SHARE_BYTES);
        return (int) Math.min(Math.min(threads, byShare), rows);
    }

    /** Whether helper threads were started (a copy was large enough). */
    boolean started() {
        return workers != null;
    }

    @Override
    public void close() {
        if (workers != null) {
            workers.close();
        }
    }
}
