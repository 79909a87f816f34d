package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.PrefillWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.ReferencePrefill;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.Arrays;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * {@code check --query-len N|MIN..MAX [--window W]}: prefill attention for a shape (the new tokens
 * are the last qLen of each context), checked against the fp64 reference and timed.
 */
final class PrefillCheck {
    private PrefillCheck() {
    }

    /** Query lengths per sequence from {@code --query-len}, each checked against its context. */
    static int[] queryLens(String queryLen, int[] contexts, long seed) {
        int[] range = LengthRange.parse("--query-len", queryLen);
        int min = range[0];
        int max = range[1];
        SplittableRandom r = new SplittableRandom(seed ^ 0x0A11CEL);
        int[] out = new int[contexts.length];
        for (int i = 0; i < contexts.length; i++) {
            out[i] = min == max ? min : min + r.nextInt(max - min + 1);
            if (out[i] > contexts[i]) {
                throw new IllegalArgumentException("--query-len=" + queryLen + " gives sequence " + i + " " + out[i]
                        + " new tokens but its --context is " + contexts[i] + " (the new tokens are part of the context)");
            }
        }
        return out;
    }

    static int window(Integer window) {
        if (window == null) {
            return PrefillBatch.NO_WINDOW;
        }
        if (window < 1) {
            throw new IllegalArgumentException("--window=" + window + " must be >= 1");
        }
        return window;
    }

    /**
     * The window value of {@code --window W} or {@code --chunk C} (chunked local attention, Llama 4's local layers:
     * {@link AttentionWindow#chunked}); {@link PrefillBatch#NO_WINDOW} with neither. Both at once are refused by name.
     */
    static int window(Integer window, Integer chunk) {
        if (chunk == null) {
            return window(window);
        }
        if (chunk < 1 || chunk == Integer.MAX_VALUE) {
            throw new IllegalArgumentException("--chunk=" + chunk + " must be in [1, " + (Integer.MAX_VALUE - 1) + "]");
        }
        if (window != null) {
            throw new IllegalArgumentException("--chunk=" + chunk + " with --window=" + window + ": a layer sees a sliding window or"
                    + " its own chunk, not both");
        }
        return AttentionWindow.chunked(chunk);
    }

    /** {@code "/wW"}, {@code "/cC"} or nothing: how a benchmark's cell label names its window value. */
    static String cellTag(int window) {
        if (window == PrefillBatch.NO_WINDOW) {
            return "";
        }
        return AttentionWindow.isChunked(window) ? "/c" + AttentionWindow.chunkSize(window) : "/w" + window;
    }

    /** {@code " window=W"}, {@code " chunk=C"} or nothing: how a check's header names its window value. */
    static String label(int window) {
        if (window == PrefillBatch.NO_WINDOW) {
            return "";
        }
        return AttentionWindow.isChunked(window) ? " chunk=" + AttentionWindow.chunkSize(window) : " window=" + window;
    }

    /**
     * How far the soft cap and ALiBi move the fp64 result ({@code moved}, relative L2): a cap the inputs' scores never
     * reach tests nothing, and the line says so.
     */
    static void printExtrasMove(Extras extras, double moved) {
        boolean cap = extras.softCap() > 0;
        java.util.List<String> parts = new java.util.ArrayList<>();
        if (cap) {
            parts.add("soft cap " + Extras.plain(extras.softCap()));
        }
        if (extras.alibi()) {
            parts.add("ALiBi");
        }
        if (extras.trees()) {
            parts.add("token trees");
        }
        if (extras.spans()) {
            parts.add("bidirectional spans");
        }
        if (extras.nonCausal()) {
            parts.add("dropping causality");
        }
        String what = parts.size() == 1 ? parts.get(0) + (extras.trees() || extras.spans() ? " move" : " moves")
                : String.join(", ", parts.subList(0, parts.size() - 1)) + " and " + parts.get(parts.size() - 1) + " move";
        System.out.printf("%s the fp64 result by %.3e (relative L2)%s%n", what, moved, cap && parts.size() == 1 && moved < 1e-3
                ? ": the scores rarely reach the cap, so this check barely tests it (try a cap below 1)" : "");
    }

    /**
     * {@code decodeSteps}: after each prefill step, that many decode steps of one new token per sequence by a decode
     * backend of the same kind on the same cache (an engine's prefill, then decode), each checked against fp64;
     * {@code sharedPools}: on TornadoVM the prefill backend is the decode backend's ({@code TornadoDecodeAttention.prefill()}),
     * one device copy of the pools, else each backend keeps its own; {@code extras}: random attention sinks in every query
     * head ({@link DecodeWorkload#randomSinks}), a soft cap.
     */
    static int run(ShapeOptions shape, String queryLen, int window, String backend, String device, int iterations,
                   double tolerance, int steps, boolean stepRows, int decodeSteps, boolean sharedPools, Extras extras,
                   boolean release, boolean lse) {
        int[] lengths = shape.lengths();
        int[] qLens = queryLens(queryLen, lengths, shape.seed());
        int maxQLen = Arrays.stream(qLens).max().orElse(1);
        long spare = (long) (steps - 1) * maxQLen + (long) steps * decodeSteps;
        if (spare > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("--steps=" + steps + " x --query-len=" + queryLen + " new tokens do not fit a cache");
        }
        // Everything that can refuse the run (shapes, cache size, backend) does so before the first line is printed.
        PrefillWorkload w = PrefillWorkload.create(lengths, qLens, window, shape.qHeads, shape.kvHeads, shape.headDim,
                shape.blockSize, shape.kvDtype(), shape.seed(), (int) spare,
                ShapeOptions.syntheticScales(shape.kvDtype(), shape.kvScale, 1, shape.kvHeads), // one layer, as the workload
                shape.maxArrayElements(), shape.latentDim);
        PrefillWorkload plain = w;
        w = extras.apply(w, shape.qHeads, shape.seed()); // one layer, as the workload
        if (release) { // the later chunks' and decode steps' tokens keep their blocks
            int bs = shape.blockSize;
            w = w.releasedOutsideWindow((int) Math.min(Integer.MAX_VALUE, lengths.length * ((spare + bs - 1) / bs + 2)));
        }
        SplittableRandom random = new SplittableRandom(shape.seed() + 1);
        boolean shared = sharedPools && decodeSteps > 0 && backend.equals("tornado");
        try (DecodeAttention decoder = decodeSteps > 0 ? Backends.create(backend, w.kv().cache(), w.spec(), device, "auto") : null;
             PrefillAttention attention = shared ? PrefillAttention.pairedWith(decoder, backend, w.kv().cache(), w.spec(), device)
                     : PrefillAttention.create(backend, w.kv().cache(), w.spec(), device)) {
            System.out.println("check prefill " + shape.describe(lengths) + ShapeOptions.shards(w.kv().cache()) + " query-len=" + queryLen + " ("
                    + Arrays.stream(qLens).asLongStream().sum() + " queries)"
                    + label(window) + extras.describe() + " backend=" + backend
                    + (shared ? " pools=shared" : ""));
            if (release) {
                printReleased(w.kv().cache(), w.kv().seqs());
            }
            if (extras.softCap() > 0 || extras.alibi() || extras.trees() || extras.spans() || extras.nonCausal()) {
                printExtrasMove(extras, ReferenceAttention.relativeL2(plain.reference(), w.reference()));
            }
            int status = measure(attention, w, w.batch(), w.q(), iterations, tolerance, stepRows);
            if (lse) {
                status = Math.max(status, checkLse(attention, w, w.batch(), tolerance));
            }
            status = Math.max(status, decodeAfter(decoder, w, decodeSteps, tolerance, random, release));
            for (int step = 2; step <= steps; step++) {
                if (release) { // after the last step, before the next chunk's append: its first query's window is kept
                    releaseOutsideWindow(w.kv().cache(), w.kv().seqs(), window);
                }
                append(w, qLens, random);
                PrefillBatch batch = !w.batch().causal() ? PrefillBatch.nonCausal(w.kv().cache().batch(w.kv().seqs()), qLens)
                        : PrefillBatch.of(w.kv().cache().batch(w.kv().seqs()), qLens, window)
                                .withMasks(w.batch().masks()); // the same trees over each chunk's new tokens
                FloatArray q = new FloatArray(batch.totalQueries() * w.spec().numQHeads() * w.spec().headDim());
                for (int i = 0; i < q.getSize(); i++) {
                    q.set(i, (float) (random.nextDouble() * 2 - 1));
                }
                System.out.printf("step %d (the next chunk: every sequence appends its query-len new tokens first):%n", step);
                status = Math.max(status, measure(attention, w, batch, q, 1, tolerance, stepRows));
                status = Math.max(status, decodeAfter(decoder, w, decodeSteps, tolerance, random, release));
            }
            return status;
        }
    }

    /**
     * {@code count} decode steps by {@code decoder} (none if null), each after one new token per sequence (written to the
     * cache the prefill backend reads too: on TornadoVM with separate pools each backend sends it to its own device copy,
     * with shared pools the decode step sends it to the one copy), checked against fp64; through the prefill's window.
     */
    private static int decodeAfter(DecodeAttention decoder, PrefillWorkload w, int count, double tolerance, SplittableRandom random,
                                   boolean release) {
        int status = 0;
        for (int d = 1; d <= count; d++) {
            double rel;
            if (release) {
                releaseOutsideWindow(w.kv().cache(), w.kv().seqs(), w.batch().window());
            }
            try {
                rel = decodeNextToken(decoder, w.kv().cache(), w.spec(), w.kv().seqs(), w.batch().window(), random);
            } catch (OutOfBlocksException e) {
                throw new IllegalArgumentException("--decode-steps: the cache has no spare blocks left for the next token (" + e.getMessage() + ")");
            }
            boolean ok = rel <= tolerance; // NaN fails
            System.out.printf("  then decode %d of %d by backend=%s on the same cache (one new token per sequence, %s):"
                    + " relative L2=%.3e -> %s%n", d, count, decoder.name(),
                    w.batch().window() == PrefillBatch.NO_WINDOW ? "whole contexts" : label(w.batch().window()).trim(), rel,
                    ok ? "PASS" : "FAIL");
            status = Math.max(status, ok ? 0 : Main.EXIT_CHECK_FAILED);
        }
        return status;
    }

    /**
     * One decode step of an engine after prefill: every sequence appends one token of random K/V (layer 0), then
     * {@code decoder} decodes random queries over the whole contexts (output poisoned first); the relative L2 error of
     * that step against the fp64 reference.
     */
    static double decodeNextToken(DecodeAttention decoder, KvCache cache, AttentionSpec spec, int[] seqs, SplittableRandom random)
            throws OutOfBlocksException {
        return decodeNextToken(decoder, cache, spec, seqs, PrefillBatch.NO_WINDOW, random);
    }

    /** Same, the decode through {@code window} (the prefill's; {@link PrefillBatch#NO_WINDOW}: none). */
    static double decodeNextToken(DecodeAttention decoder, KvCache cache, AttentionSpec spec, int[] seqs, int window,
                                  SplittableRandom random) throws OutOfBlocksException {
        int width = cache.config().tokenWidth();
        for (int seq : seqs) {
            int pos = cache.length(seq);
            cache.append(seq, 1);
            float[] k = new float[width];
            float[] v = new float[width];
            for (int e = 0; e < width; e++) {
                k[e] = (float) (random.nextDouble() * 2 - 1);
                v[e] = (float) (random.nextDouble() * 2 - 1);
            }
            cache.writeTokens(seq, 0, pos, 1, k, cache.config().isLatent() ? null : v);
        }
        FloatArray q = new FloatArray(seqs.length * spec.numQHeads() * spec.headDim());
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        FloatArray out = new FloatArray(Math.toIntExact(spec.outputElements(seqs.length)));
        out.init(Float.NaN);
        decoder.decode(cache.batch(seqs).window(window), 0, q, out);
        return ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, seqs, q, window, n -> { }));
    }

    /** {@link KvCache#releaseOutsideWindow} for every sequence of {@code seqs}; the blocks released. */
    static int releaseOutsideWindow(KvCache cache, int[] seqs, int window) {
        int released = 0;
        for (int seq : seqs) {
            released += cache.releaseOutsideWindow(seq, window);
        }
        return released;
    }

    /** The line {@code check --release} prints after the first release: the blocks the sequences gave back of those they had. */
    static void printReleased(KvCache cache, int[] seqs) {
        long released = 0;
        long blocks = 0;
        long tokens = 0;
        for (int seq : seqs) {
            dev.pagedattn.cache.PageTable t = cache.pageTable(seq);
            released += t.numReleased();
            blocks += t.numBlocks();
            tokens += t.numTokens();
        }
        System.out.printf("released %d of the %d blocks the %d sequences had for %d tokens (KvCache.releaseBefore); another"
                + " sequence refilled the freed blocks with NaN%n", released, blocks, seqs.length, tokens);
    }

    /** Appends {@code counts[i]} random tokens to every sequence (on a GPU they travel through the staging scatter). */
    private static void append(PrefillWorkload w, int[] counts, SplittableRandom random) {
        int[] seqs = w.kv().seqs();
        int width = w.kv().cache().config().tokenWidth();
        for (int i = 0; i < seqs.length; i++) {
            float[] k = new float[counts[i] * width];
            float[] v = new float[k.length];
            for (int e = 0; e < k.length; e++) {
                k[e] = (float) (random.nextDouble() * 2 - 1);
                v[e] = (float) (random.nextDouble() * 2 - 1);
            }
            try {
                w.kv().cache().appendTokens(seqs[i], k, w.kv().cache().config().isLatent() ? null : v);
            } catch (OutOfBlocksException e) {
                throw new IllegalArgumentException("--steps: the cache has no spare blocks left for the next chunk of --query-len tokens"
                        + " (" + e.getMessage() + ")");
            }
        }
    }

    /** One prefill of {@code batch} into {@code out}: through the caller's arrays, or through the backend's own rows. */
    private static void prefill(PrefillAttention attention, PrefillBatch batch, FloatArray q, FloatArray out, boolean stepRows) {
        if (!stepRows) {
            attention.prefill(batch, 0, q, out);
            return;
        }
        StepRows rows = OwnRows.poisonedWith(attention.stepRows(batch, 0), q);
        attention.prefill(batch, 0, rows.q(), rows.out());
        OwnRows.copyOut(rows, out);
    }

    /**
     * One more prefill of {@code batch} with an {@code lse} array (output and lse poisoned first), its log-sum-exps against
     * fp64's: the largest error relative to {@code max(1, |lse|)}, one line; the status.
     */
    static int checkLse(PrefillAttention attention, PrefillWorkload w, PrefillBatch batch, double tolerance) {
        int rows = batch.totalQueries() * w.spec().numQHeads();
        FloatArray out = w.poisonedOutput();
        FloatArray lse = new FloatArray(rows);
        lse.init(Float.NaN);
        attention.prefill(batch, 0, w.q(), out, lse);
        double[] ref = new double[rows];
        ReferencePrefill.prefill(w.kv().cache(), w.spec(), 0, w.kv().seqs(), batch, w.q(), ref);
        return reportLse(lse, ref, tolerance);
    }

    /** The line of a log-sum-exp check: the largest of {@code |lse - ref| / max(1, |ref|)}; the status. */
    static int reportLse(FloatArray lse, double[] ref, double tolerance) {
        double worst = 0;
        for (int i = 0; i < ref.length; i++) {
            double err = Math.abs(lse.get(i) - ref[i]) / Math.max(1, Math.abs(ref[i]));
            worst = Double.isNaN(err) ? Double.NaN : Double.isNaN(worst) ? worst : Math.max(worst, err);
        }
        boolean ok = worst <= tolerance; // NaN fails
        System.out.printf("log-sum-exp (lse) of %d rows x heads vs fp64: max error=%.3e (relative to max(1, |lse|)) tolerance=%.1e"
                + " -> %s%n", ref.length, worst, tolerance, ok ? "PASS" : "FAIL");
        return ok ? 0 : Main.EXIT_CHECK_FAILED;
    }

    private static int measure(PrefillAttention attention, PrefillWorkload w, PrefillBatch batch, FloatArray q, int iterations,
                               double tolerance, boolean stepRows) {
        FloatArray out = new FloatArray(Math.toIntExact(w.spec().outputElements(batch.totalQueries())));
        out.init(Float.NaN);
        long[] nanos = new long[iterations];
        if (iterations > 1) {
            prefill(attention, batch, q, out, stepRows); // warm-up
            out.init(Float.NaN);
        }
        for (int i = 0; i < iterations; i++) {
            long t0 = System.nanoTime();
            prefill(attention, batch, q, out, stepRows);
            long wall = System.nanoTime() - t0;
            nanos[i] = attention.lastDeviceNanos() > 0 ? attention.lastDeviceNanos() : wall;
        }
        double flops = 4.0 * batch.attendedPairs() * w.spec().numQHeads() * w.spec().headDim();
        double[] ref;
        try (Progress p = new Progress("fp64 reference", batch.numSeqs(), flops)) {
            ref = ReferencePrefill.prefill(w.kv().cache(), w.spec(), 0, w.kv().seqs(), batch, q, p.consumer());
        }
        double rel = ReferenceAttention.relativeL2(out, ref);
        double abs = ReferenceAttention.maxAbsError(out, ref);
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        boolean ok = rel <= tolerance; // NaN fails
        System.out.printf("backend=%s time min=%.3f ms median=%.3f ms max=%.3f ms  %.3f TFLOP/s (%.3g FLOP)%n", attention.name(),
                sorted[0] / 1e6, sorted[sorted.length / 2] / 1e6, sorted[sorted.length - 1] / 1e6, flops / sorted[0] / 1e3, flops);
        System.out.printf("error vs fp64 reference: relative L2=%.3e max abs=%.3e tolerance=%.1e -> %s%n",
                rel, abs, tolerance, ok ? "PASS" : "FAIL");
        return ok ? 0 : Main.EXIT_CHECK_FAILED;
    }
}
