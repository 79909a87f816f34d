package dev.pagedattn.tornado;

/**
 * How large a device plan's per-step arrays are made. TornadoVM compiles a plan's task graphs for the arrays it is
 * given, so a batch those arrays cannot hold needs a new plan, and a new plan uploads the layer's pools again and
 * compiles its kernels again: seconds per layer on a large cache (an engine's decode loop, whose longest sequence
 * needs one more block-table column every {@code blockSize} tokens, paid that every {@code blockSize} steps while
 * plans were sized to the batch at hand). So plans are sized with headroom:
 * <ul>
 *   <li>sequences: the reservation ({@code DecodeAttention.reserve}) when it covers the batch, else the next power
 *       of two;</li>
 *   <li>block tables: a number of entries, not a shape. A step writes its tables with the batch's own row width (the
 *       kernels read it from {@code params}), so any batch of {@code n} sequences of {@code width} columns with
 *       {@code n * width} within the entries fits; a new plan holds its sequences times the reserved columns, or
 *       times the next power of two at or above 1.5 times the batch's width;</li>
 *   <li>partial rows (split-K): twice what the batch needs (decode); prefill's partials and scratch, which can be
 *       large, half again what the call needs.</li>
 * </ul>
 * A capacity never shrinks. Growth past it is geometric, so a sequence growing from one block to {@code b} blocks
 * builds at most {@code log2(b)} plans, and none once a reservation covers it.
 */
final class PlanCapacity {
    /**
     * {@code -Dpagedattn.tornado.planHeadroom=false}: sequences and block tables sized to the batch at hand, as before
     * this rule (a reservation still counts), for A/B measurements.
     */
    static final boolean HEADROOM = !"false".equals(System.getProperty("pagedattn.tornado.planHeadroom"));
    /** The largest native array a plan allocates for its tables (TornadoVM's arrays are int-indexed). */
    static final long MAX_ENTRIES = Integer.MAX_VALUE - 64;

    private PlanCapacity() {
    }

    /** The smallest power of two at or above {@code needed} (>= 1), or {@code needed} itself past 2^30. */
    static int nextPowerOfTwo(int needed) {
        if (needed <= 1) {
            return 1;
        }
        if (needed > 1 << 30) {
            return needed;
        }
        return Integer.highestOneBit(needed - 1) << 1;
    }

    /** Sequences a new plan holds: at least {@code current}; the reservation if it covers {@code numSeqs}. */
    static int seqs(int numSeqs, int reservedSeqs, int current) {
        int wanted = numSeqs <= reservedSeqs ? reservedSeqs : HEADROOM ? nextPowerOfTwo(numSeqs) : numSeqs;
        return Math.max(current, wanted);
    }

    /**
     * Block-table entries of a new plan of {@code seqs} sequences for a batch of {@code width} columns: {@code seqs} rows
     * of the reserved columns, or of the next power of two at or above {@code 1.5 width}; at least {@code current}. Throws when even
     * the batch's own {@code numSeqs * width} entries exceed one native array.
     */
    static int tableEntries(int numSeqs, int width, int seqs, int reservedColumns, int current) {
        if ((long) numSeqs * width > MAX_ENTRIES) {
            throw new IllegalArgumentException("block tables of numSeqs=" + numSeqs + " x maxBlocksPerSeq=" + width
                    + " exceed one device array (" + MAX_ENTRIES + " entries)");
        }
        // at least half again the batch's width, so that a width just below a power of two does not need the next plan
        // a few steps later (63 columns -> 128, 64 -> 128, 86 -> 256)
        int columns = width <= reservedColumns ? reservedColumns : HEADROOM ? nextPowerOfTwo(width + (width + 1) / 2) : width;
        long entries = Math.min((long) seqs * columns, MAX_ENTRIES);
        return (int) Math.max(Math.max(entries, (long) numSeqs * width), current);
    }

    /**
     * Block-table columns of a reservation of {@code maxSeqs} sequences of up to {@code maxTokensPerSeq} tokens in blocks of
     * {@code blockSize}; throws, naming the values, when one native array cannot hold those tables.
     */
    static int reservedColumns(int maxSeqs, int maxTokensPerSeq, int blockSize) {
        int columns = (maxTokensPerSeq + blockSize - 1) / blockSize;
        tableEntries(maxSeqs, columns, maxSeqs, columns, 0);
        return columns;
    }

    /** Whether a plan of this capacity holds a batch of {@code numSeqs} x {@code width} and the reservation. */
    static boolean holds(int planSeqs, int planEntries, int numSeqs, int width, int reservedSeqs, int reservedColumns) {
        return numSeqs <= planSeqs && (long) numSeqs * width <= planEntries
                && reservedSeqs <= planSeqs && (long) reservedSeqs * reservedColumns <= planEntries;
    }

    /**
     * {@code needed} plus {@code headroom} of it (0.5: half again), at least {@code current}, at most {@code max}
     * (and {@code needed} itself where the headroom does not fit).
     */
    static long withHeadroom(long needed, double headroom, long current, long max) {
        long grown = needed + (long) Math.ceil(needed * headroom);
        return Math.max(current, grown > max || grown < needed ? needed : grown);
    }
}
