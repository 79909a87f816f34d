package dev.pagedattn.cli;

import dev.pagedattn.attention.StepRows;
import java.lang.foreign.MemorySegment;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** The commands' side of a backend's own rows ({@code stepRows}, {@code --step-rows}): the caller's rows in and out. */
final class OwnRows {
    private OwnRows() {
    }

    /** {@code rows} with NaN in every element, then {@code q}'s rows at their start (rows past the call's stay NaN). */
    static StepRows poisonedWith(StepRows rows, FloatArray q) {
        rows.q().init(Float.NaN);
        rows.out().init(Float.NaN);
        MemorySegment.copy(q.getSegment(), 0, rows.q().getSegment(), 0, q.getSegment().byteSize());
        return rows;
    }

    /** The call's output rows of {@code rows} into {@code out}. */
    static void copyOut(StepRows rows, FloatArray out) {
        MemorySegment.copy(rows.out().getSegment(), 0, out.getSegment(), 0, out.getSegment().byteSize());
    }
}
