package dev.pagedattn.cli;

import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.CascadeAttention;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.tornado.TornadoDecodeAttention;
import dev.pagedattn.tornado.TornadoPrefillAttention;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * {@code check --cascade P}: runs of {@code --sharers} sequences forked from one prompt of {@code P} tokens
 * ({@link DecodeWorkload#sharedPrefix}), decoded by {@link CascadeAttention} through the chosen backend, output and
 * log-sum-exp checked against fp64, the cascade step timed next to the plain step over the same batch.
 */
final class CascadeCheck {
    private CascadeCheck() {
    }

    static int run(ShapeOptions shape, int prefix, int sharers, String backend, String device, String variant, String kernel,
                   String vSums, int iterations, double tolerance, float softCap) {
        int[] lengths = shape.lengths();
        DecodeWorkload w = DecodeWorkload.sharedPrefix(lengths, sharers, prefix, shape.qHeads, shape.kvHeads, shape.headDim,
                shape.blockSize, shape.kvDtype(), shape.seed(), shape.kvScales());
        if (softCap > 0) {
            w = w.withSoftCap(softCap);
        }
        DecodeBatch batch = w.batch();
        FloatArray out = w.poisonedOutput();
        FloatArray lse = new FloatArray(batch.numSeqs() * shape.qHeads);
        lse.init(Float.NaN);
        long[] cascadeNanos = new long[iterations];
        long[] plainNanos = new long[iterations];
        long[][] parts = new long[2][iterations]; // [prefill, decode][step]: the wall time of the backends' calls in a step
        int[] builds;
        try (DecodeAttention decode = Backends.create(backend, w.cache(), w.spec(), device, variant, kernel, vSums);
             PrefillAttention prefill = PrefillAttention.pairedWith(decode, backend, w.cache(), w.spec(), device);
             CascadeAttention plan = CascadeAttention.plan(w.cache(), w.spec(), w.seqs(), shape.blockSize)) {
            StringBuilder groups = new StringBuilder();
            for (int g = 0; g < plan.groups(); g++) {
                groups.append(g == 0 ? "" : ", ").append(plan.members(g).length).append(" x ").append(plan.sharedTokens(g));
            }
            System.out.println("check cascade " + shape.describe(lengths) + " runs of " + sharers + " forked from a " + prefix
                    + "-token prompt; groups (members x shared tokens): " + (groups.length() == 0 ? "none" : groups)
                    + (softCap > 0 ? " soft-cap=" + softCap : "") + " backend=" + backend);
            FloatArray plainOut = w.poisonedOutput();
            for (int i = 0; i < warmUps(iterations); i++) { // warm-ups: the host code of a cascade step (two calls and a
                decode.decode(batch, 0, w.q(), plainOut);    // merge) runs interpreted for its first steps
                plan.decode(decode, prefill, 0, w.q(), out, lse);
            }
            out.init(Float.NaN);
            lse.init(Float.NaN);
            builds = planBuilds(decode, prefill);
            long[] spent = new long[2];
            DecodeAttention timedDecode = timed(decode, spent);
            PrefillAttention timedPrefill = timed(prefill, spent);
            for (int i = 0; i < iterations; i++) { // the two kinds of step alternate
                spent[0] = spent[1] = 0;
                long t0 = System.nanoTime();
                plan.decode(timedDecode, timedPrefill, 0, w.q(), out, i == 0 ? lse : null);
                cascadeNanos[i] = System.nanoTime() - t0;
                parts[0][i] = spent[0];
                parts[1][i] = spent[1];
                t0 = System.nanoTime();
                decode.decode(batch, 0, w.q(), plainOut);
                plainNanos[i] = System.nanoTime() - t0;
            }
            int[] after = planBuilds(decode, prefill);
            builds = new int[] {after[0] - builds[0], after[1] - builds[1]};
        }
        int status = CheckCommand.report(w, batch, out, cascadeNanos, tolerance, "cascade (wall time)");
        double[] ref = new double[lse.getSize()];
        ReferenceAttention.decode(w.cache(), w.spec(), 0, w.seqs(), w.q(), batch.window(), ref);
        status = Math.max(status, PrefillCheck.reportLse(lse, ref, tolerance));
        long cascade = median(cascadeNanos);
        long plain = median(plainNanos);
        System.out.printf("cascade step median=%.3f ms, plain step median=%.3f ms (wall time, alternating, after %d warm-ups of each):"
                + " %.2fx the time%n", cascade / 1e6, plain / 1e6, warmUps(iterations), cascade / (double) plain);
        System.out.printf("in a cascade step (medians): prefill calls %.3f ms, decode calls %.3f ms, the rest (tables, query rows, merge) %.3f ms;"
                + " plans rebuilt while timed: decode %d, prefill %d%n", median(parts[0]) / 1e6, median(parts[1]) / 1e6,
                (cascade - median(parts[0]) - median(parts[1])) / 1e6, builds[0], builds[1]);
        return status;
    }

    /** Warm-up steps of each kind before the timed ones: as many, and at least 10. */
    private static int warmUps(int iterations) {
        return Math.max(10, iterations);
    }

    /** The plan builds of the TornadoVM backends so far ({@code [decode, prefill]}; 0 for others). */
    private static int[] planBuilds(DecodeAttention decode, PrefillAttention prefill) {
        return new int[] {decode instanceof TornadoDecodeAttention t ? t.planBuilds() : 0,
                prefill instanceof TornadoPrefillAttention t ? t.planBuilds() : 0};
    }

    /** {@code decode}, adding the wall time of each call to {@code spent[1]}. */
    private static DecodeAttention timed(DecodeAttention decode, long[] spent) {
        return new DecodeAttention() {
            @Override
            public void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out) {
                decode(batch, layer, q, out, null);
            }

            @Override
            public void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
                long t0 = System.nanoTime();
                decode.decode(batch, layer, q, out, lse);
                spent[1] += System.nanoTime() - t0;
            }

            @Override
            public StepRows stepRows(DecodeBatch batch, int layer) {
                return decode.stepRows(batch, layer);
            }

            @Override
            public String name() {
                return decode.name();
            }
        };
    }

    /** {@code prefill}, adding the wall time of each call to {@code spent[0]}. */
    private static PrefillAttention timed(PrefillAttention prefill, long[] spent) {
        return new PrefillAttention() {
            @Override
            public void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out) {
                prefill(batch, layer, q, out, null);
            }

            @Override
            public void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
                long t0 = System.nanoTime();
                prefill.prefill(batch, layer, q, out, lse);
                spent[0] += System.nanoTime() - t0;
            }

            @Override
            public StepRows stepRows(PrefillBatch batch, int layer) {
                return prefill.stepRows(batch, layer);
            }

            @Override
            public String name() {
                return prefill.name();
            }
        };
    }

    private static long median(long[] nanos) {
        long[] sorted = nanos.clone();
        java.util.Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
