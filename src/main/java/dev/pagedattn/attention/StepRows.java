package dev.pagedattn.attention;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The query and output rows of a decode or prefill call, from {@link DecodeAttention#stepRows} or
 * {@link PrefillAttention#stepRows}: the caller writes its query rows into {@link #q()} and reads its output rows
 * from {@link #out()}, both laid out as the call's {@code q} and {@code out} ({@code [rows][numQHeads][headDim]} fp32).
 * A device backend's hold its plan's capacity of rows (at least the call's; the rest are ignored).
 */
public record StepRows(FloatArray q, FloatArray out) {

    /** {@code previous} if it holds exactly {@code elements} each, else new arrays of that size (the JVM backends' rows). */
    static StepRows sized(StepRows previous, long elements) {
        if (previous != null && previous.q().getSize() == elements) {
            return previous;
        }
        int n = Math.toIntExact(elements);
        return new StepRows(new FloatArray(n), new FloatArray(n));
    }
}
