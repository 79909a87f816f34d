package dev.pagedattn.cli;

import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.CascadeAttention;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.DecodeBatch;
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
            decode.decode(batch, 0, w.q(), plainOut); // warm-ups: each kind of call once
            plan.decode(decode, prefill, 0, w.q(), out, lse);
            out.init(Float.NaN);
            lse.init(Float.NaN);
            for (int i = 0; i < iterations; i++) { // the two kinds of step alternate
                long t0 = System.nanoTime();
                plan.decode(decode, prefill, 0, w.q(), out, i == 0 ? lse : null);
                cascadeNanos[i] = System.nanoTime() - t0;
                t0 = System.nanoTime();
                decode.decode(batch, 0, w.q(), plainOut);
                plainNanos[i] = System.nanoTime() - t0;
            }
        }
        int status = CheckCommand.report(w, batch, out, cascadeNanos, tolerance, "cascade (wall time)");
        double[] ref = new double[lse.getSize()];
        ReferenceAttention.decode(w.cache(), w.spec(), 0, w.seqs(), w.q(), batch.window(), ref);
        status = Math.max(status, PrefillCheck.reportLse(lse, ref, tolerance));
        long cascade = median(cascadeNanos);
        long plain = median(plainNanos);
        System.out.printf("cascade step median=%.3f ms, plain step median=%.3f ms (wall time, alternating): %.2fx the time%n",
                cascade / 1e6, plain / 1e6, cascade / (double) plain);
        return status;
    }

    private static long median(long[] nanos) {
        long[] sorted = nanos.clone();
        java.util.Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
