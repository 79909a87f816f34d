package dev.pagedattn.tornado;

import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.StepRows;
import java.lang.foreign.MemorySegment;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Query and output rows cut by KV-head shard: shard {@code s} of a layer split into {@code S}
 * arrays reads and writes its own {@code [rows][numQHeads / S][headDim]} arrays, so its kernels
 * see an ordinary pool of {@code headsPerShard} heads. One shard: the plan's arrays are the rows
 * themselves (one bulk copy each way, as without shards, or none when the caller fills and reads the
 * arrays {@link #stepRows} hands out). Large copies go over a {@link RowCopier}'s threads. Rows made for log-sum-exp
 * outputs keep each shard's {@code [maxRows][numQHeads / S]} log-sum-exps after its output rows, from {@link #lseAt}.
 */
public final class ShardRows {
    private final FloatArray[] q;   // [shards] of [maxRows][numQHeads / shards][headDim]
    private final FloatArray[] out; // same shape, or [maxRows][numQHeads / shards][valueDim] (a latent cache's)
    private final int rowFloats; // numQHeads * headDim
    private final int outRowFloats; // numQHeads * valueDim: rowFloats, or a latent cache's narrower output rows
    private final int lseHeads;  // numQHeads where the output arrays hold log-sum-exps, else 0
    private final int lseAt;     // where they start in each shard's output array
    private final RowCopier copier;

    public ShardRows(int shards, int maxRows, int rowFloats) {
        this(shards, maxRows, rowFloats, 0, null);
    }

    /** Rows whose output arrays also hold {@code numQHeads} log-sum-exps per row ({@code numQHeads} 0: none). */
    public ShardRows(int shards, int maxRows, int rowFloats, int numQHeads) {
        this(shards, maxRows, rowFloats, numQHeads, null);
    }

    /** The same, the copies split over {@code copier}'s threads when large (null: the caller copies). */
    ShardRows(int shards, int maxRows, int rowFloats, int numQHeads, RowCopier copier) {
        this(shards, maxRows, rowFloats, rowFloats, numQHeads, copier);
    }

    /** The same with output rows of {@code outRowFloats} ({@code numQHeads * valueDim}: a latent cache's, narrower than q's). */
    ShardRows(int shards, int maxRows, int rowFloats, int outRowFloats, int numQHeads, RowCopier copier) {
        this.rowFloats = rowFloats;
        this.outRowFloats = outRowFloats;
        this.lseHeads = numQHeads;
        this.copier = copier;
        this.q = new FloatArray[shards];
        this.out = new FloatArray[shards];
        this.lseAt = maxRows * (outRowFloats / shards);
        for (int s = 0; s < shards; s++) {
            q[s] = new FloatArray(maxRows * (rowFloats / shards));
            out[s] = new FloatArray(lseAt + maxRows * (numQHeads / shards)); // lseAt: the output rows
        }
    }

    /** Where each shard's log-sum-exps start in its output array ({@code DecodeParams.LSE}); refused where it holds none. */
    public int lseAt() {
        if (lseHeads == 0) {
            throw new IllegalStateException("these rows hold no log-sum-exps");
        }
        return lseAt;
    }

    /** Copies {@code rows} rows of the shards' log-sum-exps into {@code userLse} ({@code [rows][numQHeads]}). */
    public void storeLse(FloatArray userLse, int rows) {
        lseAt();
        int part = lseHeads / out.length;
        for (int s = 0; s < out.length; s++) {
            for (int r = 0; r < rows; r++) {
                MemorySegment.copy(out[s].getSegment(), (lseAt + (long) r * part) * Float.BYTES, userLse.getSegment(),
                        ((long) r * lseHeads + (long) s * part) * Float.BYTES, (long) part * Float.BYTES);
            }
        }
    }

    /** Shard {@code s}'s query rows, {@code [maxRows][numQHeads / shards][headDim]}: what its kernels read. */
    public FloatArray q(int s) {
        return q[s];
    }

    /** Shard {@code s}'s output rows: what its kernels write. */
    public FloatArray out(int s) {
        return out[s];
    }

    /** Every shard's output rows (the arrays a plan copies back to the host). */
    public FloatArray[] outs() {
        return out.clone();
    }

    /**
     * The rows a caller may fill and read in place ({@code stepRows}): with one shard the arrays the kernels read and
     * write, so that {@link #load} and {@link #store} of them copy nothing; with several, host arrays of the same
     * capacity (made on first use) that they copy from and to.
     */
    public StepRows stepRows() {
        if (q.length == 1) {
            return new StepRows(q[0], out[0]);
        }
        if (callerRows == null) {
            callerRows = new StepRows(new FloatArray(q[0].getSize() * q.length), new FloatArray(out[0].getSize() * out.length));
        }
        return callerRows;
    }

    private StepRows callerRows; // several shards: stepRows' host arrays

    /** Whether {@code userQ} is the query array {@link #stepRows} hands out. */
    public boolean ownsQ(FloatArray userQ) {
        return userQ != null && (q.length == 1 ? userQ == q[0] : callerRows != null && userQ == callerRows.q());
    }

    /** Whether {@code userOut} is the output array {@link #stepRows} hands out. */
    public boolean ownsOut(FloatArray userOut) {
        return userOut != null && (out.length == 1 ? userOut == out[0] : callerRows != null && userOut == callerRows.out());
    }

    /**
     * Checks a call's {@code q} and {@code out} before its plan is found: arrays that {@code current} (the layer's plan's
     * rows, or null) handed out by {@link #stepRows} may hold more than the call's {@code elements} ({@code count} rows:
     * numSeqs or totalQueries), any other array exactly that; names the bad size.
     */
    static void requireCallRows(ShardRows current, FloatArray q, FloatArray out, long elements, String count) {
        requireCallRows(current, q, out, elements, elements, count);
    }

    /** {@link #requireCallRows} with output rows of their own width ({@code outElements}: a latent cache's). */
    static void requireCallRows(ShardRows current, FloatArray q, FloatArray out, long elements, long outElements, String count) {
        if (current == null || !current.ownsQ(q)) {
            DecodeAttention.requireRows("q", q, elements, count);
        }
        if (current == null || !current.ownsOut(out)) {
            DecodeAttention.requireRows("out", out, outElements, count);
        }
    }

    /** After a plan was rebuilt for the call: rows a former plan handed out must still hold the call's elements. */
    static void requireHeld(FloatArray q, FloatArray out, long elements) {
        requireHeld(q, out, elements, elements);
    }

    /** {@link #requireHeld} with output rows of their own width ({@code outElements}). */
    static void requireHeld(FloatArray q, FloatArray out, long elements, long outElements) {
        if (q.getSize() < elements || out.getSize() < outElements) {
            throw new IllegalArgumentException("q.size=" + q.getSize() + ", out.size=" + out.getSize() + " hold fewer than the call's "
                    + elements + (outElements != elements ? " and " + outElements + " output" : "") + " elements: rows from stepRows hold the batch they were taken for; take them again for a larger one");
        }
    }

    /** Copies {@code rows} rows of {@code userQ} into the shards' query arrays (nothing when it is the kernels' own). */
    public void load(FloatArray userQ, int rows) {
        if (q.length > 1 || userQ != q[0]) {
            copy(userQ, q, rows, true);
        }
    }

    /** Copies {@code rows} rows of the shards' outputs into {@code userOut} (nothing when it is the kernels' own). */
    public void store(FloatArray userOut, int rows) {
        if (out.length > 1 || userOut != out[0]) {
            copy(userOut, out, rows, false);
        }
    }

    private void copy(FloatArray user, FloatArray[] parts, int rows, boolean toParts) {
        int rowFloats = toParts ? this.rowFloats : outRowFloats; // q rows in, output rows out
        if (copier == null) {
            copyRows(user, parts, 0, rows, toParts, rowFloats);
        } else {
            copier.copy(rows, (long) rowFloats * Float.BYTES, (from, to) -> copyRows(user, parts, from, to, toParts, rowFloats));
        }
    }

    /** Rows {@code [from, to)} of {@code rowFloats} between the caller's array and the shards' arrays. */
    private static void copyRows(FloatArray user, FloatArray[] parts, int from, int to, boolean toParts, int rowFloats) {
        int shards = parts.length;
        int part = rowFloats / shards;
        if (shards == 1) {
            copy(user.getSegment(), (long) from * rowFloats, parts[0].getSegment(), (long) from * rowFloats,
                    (long) (to - from) * rowFloats, toParts);
            return;
        }
        MemorySegment whole = user.getSegment();
        for (int s = 0; s < shards; s++) {
            MemorySegment piece = parts[s].getSegment();
            for (int r = from; r < to; r++) {
                copy(whole, (long) r * rowFloats + (long) s * part, piece, (long) r * part, part, toParts);
            }
        }
    }

    private static void copy(MemorySegment whole, long wholeAt, MemorySegment piece, long pieceAt, long floats, boolean toPiece) {
        long bytes = floats * Float.BYTES;
        if (toPiece) {
            MemorySegment.copy(whole, wholeAt * Float.BYTES, piece, pieceAt * Float.BYTES, bytes);
        } else {
            MemorySegment.copy(piece, pieceAt * Float.BYTES, whole, wholeAt * Float.BYTES, bytes);
        }
    }
}
