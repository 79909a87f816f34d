package dev.pagedattn.attention;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The query and output rows of a decode or prefill call, from {@link DecodeAttention#stepRows} or
 * {@link PrefillAttention#stepRows}: the caller writes its query rows into {@link #q()} and reads its output rows
 * from {@link #out()}, both laid out as the call's {@code q} and {@code out} ({@code [rows][numQHeads][headDim]} fp32).
 * A device backend's hold its plan's capacity of rows (at least the call's; the rest are ignored).
 */
public record StepRows(FloatArray q, FloatArray out) {

    /**
     * {@code previous} if it holds exactly {@code rows} rows of {@code spec}'s queries and outputs, else new arrays of
     * that size (the JVM backends' rows; a latent cache's outputs are narrower than its queries).
     */
    static StepRows sized(StepRows previous, int rows, AttentionSpec spec) {
        long qs = spec.queryElements(rows);
        long outs = spec.outputElements(rows);
        if (previous != null && previous.q().getSize() == qs && previous.out().getSize() == outs) {
            return previous;
        }
        return new StepRows(new FloatArray(Math.toIntExact(qs)), new FloatArray(Math.toIntExact(outs)));
    }
}
