package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.PrefillWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.ReferencePrefill;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.tornado.PrefillGrid;
import dev.pagedattn.tornado.TornadoDecodeAttention;
import dev.pagedattn.tornado.TornadoPrefillAttention;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The prefill cells of {@code bench}: chunked prefill of {@code queryLen} new tokens per sequence
 * over a cached prefix of {@code prefix} tokens (Llama-3-8B heads), timed with TornadoVM's profiler.
 * The check against fp64 samples 16 query rows at each end of the chunk of the first and the last
 * sequence (the whole fp64 prefill of a 32 x 512 x 8k cell takes minutes on a CPU). The CSV shares
 * its columns with benchmarks/peer_torch_prefill.py.
 */
final class PrefillBench {
    static final String HEADER = "impl,variant,dtype,batch,prefix,query_len,status,min_us,median_us,max_us,flops,tflops,rel_l2,note";
    private static final int STATUS = List.of(HEADER.split(",")).indexOf("status");
    private static final int SAMPLE = 16;

    private PrefillBench() {
    }

    /**
     * {@code scales}: of an 8-bit {@code dtype}, null for fp16/fp32; {@code extras}: each cell with them (random attention
     * sinks in every query head, a soft cap), then the same cell without, and their ratio.
     */
    static int run(int[] batches, int prefix, int queryLen, int qHeads, int kvHeads, int headDim, int blockSize, KvDtype dtype,
                   KvScales scales, String device, int iterations, long seed, Path out, Extras extras) throws IOException {
        List<String> lines = new ArrayList<>();
        lines.add(HEADER);
        for (int b : batches) {
            if (extras.any()) {
                String with = cell(b, prefix, queryLen, qHeads, kvHeads, headDim, blockSize, dtype, scales, device, iterations, seed,
                        extras);
                String without = cell(b, prefix, queryLen, qHeads, kvHeads, headDim, blockSize, dtype, scales, device, iterations, seed,
                        Extras.NONE);
                System.out.printf("prefill %4d x %d+%-5d with %s / without: %.2fx the time%n", b, prefix, queryLen, extras.label(),
                        minUs(with) / minUs(without));
                lines.add(with);
                lines.add(without);
            } else {
                lines.add(cell(b, prefix, queryLen, qHeads, kvHeads, headDim, blockSize, dtype, scales, device, iterations, seed,
                        Extras.NONE));
            }
            if (out.getParent() != null) {
                Files.createDirectories(out.getParent());
            }
            Files.write(out, lines);
        }
        System.out.println("wrote " + out);
        return (int) lines.stream().filter(line -> line.split(",", -1)[STATUS].equals(BenchRow.WRONG)).count();
    }

    /** The min_us column of a row {@link #cell} made (NaN when the cell did not run). */
    private static double minUs(String row) {
        String[] cols = row.split(",", -1);
        return cols.length > 7 && !cols[7].isEmpty() ? Double.parseDouble(cols[7]) : Double.NaN;
    }

    private static String cell(int batch, int prefix, int queryLen, int qHeads, int kvHeads, int headDim, int blockSize,
                               KvDtype dtype, KvScales scales, String device, int iterations, long seed, Extras extras) {
        String dt = dtype.name().toLowerCase(Locale.ROOT);
        int[] lengths = new int[batch];
        int[] qLens = new int[batch];
        Arrays.fill(lengths, prefix + queryLen);
        Arrays.fill(qLens, queryLen);
        String head = String.join(",", "ours", (extras.any() ? "prefill+" + extras.label() : "prefill")
                + BenchCommand.blockSuffix(blockSize), dt, Integer.toString(batch), Integer.toString(prefix), Integer.toString(queryLen));
        PrefillWorkload w;
        try {
            w = PrefillWorkload.create(lengths, qLens, PrefillBatch.NO_WINDOW, qHeads, kvHeads, headDim, blockSize, dtype, seed + batch, 0,
                    scales);
            w = extras.apply(w, qHeads, seed);
        } catch (IllegalArgumentException e) {
            System.out.printf("prefill %4d x %d+%d does not fit: %s%n", batch, prefix, queryLen, e.getMessage());
            return head + ",does-not-fit,,,,,,," + e.getMessage().replace(',', ';');
        }
        double flops = w.flops();
        try (TornadoPrefillAttention attention = new TornadoPrefillAttention(w.kv().cache(), w.spec(), device)) {
            FloatArray result = w.poisonedOutput();
            for (int i = 0; i < 2; i++) {
                attention.prefill(w.batch(), 0, w.q(), result); // upload, JIT, warm-up
            }
            long[] nanos = new long[iterations];
            for (int i = 0; i < iterations; i++) {
                if (i == iterations - 1) {
                    result.init(Float.NaN);
                }
                attention.prefill(w.batch(), 0, w.q(), result);
                nanos[i] = attention.lastDeviceNanos();
            }
            Arrays.sort(nanos);
            double rel = Math.max(sampledError(w, result, 0), sampledError(w, result, batch - 1));
            // wall time per call as an engine sees it: through the caller's arrays, then through the plan's own rows
            long[] wall = wallNanos(attention, w, w.q(), result, iterations, null);
            StepRows rows = OwnRows.poisonedWith(attention.stepRows(w.batch(), 0), w.q()); // rows past the batch: NaN
            long[] inPlace = wallNanos(attention, w, rows.q(), rows.out(), iterations, null);
            OwnRows.copyOut(rows, result);
            rel = Math.max(rel, Math.max(sampledError(w, result, 0), sampledError(w, result, batch - 1)));
            // as an engine's prefill step: the new tokens' K/V written to the cache before each call (not timed), so the
            // call stages and scatters them to the device with its attention
            NewTokens tokens = NewTokens.of(w);
            rows = OwnRows.poisonedWith(attention.stepRows(w.batch(), 0), w.q());
            long[] written = wallNanos(attention, w, rows.q(), rows.out(), iterations, tokens);
            OwnRows.copyOut(rows, result);
            rel = Math.max(rel, Math.max(sampledError(w, result, 0), sampledError(w, result, batch - 1)));
            DecodeAfter after = decodeAfterChunk(w, tokens, device, iterations, seed, false);
            rel = Double.isNaN(after.rel()) ? Double.NaN : Math.max(rel, after.rel());
            DecodeAfter shared = decodeAfterChunk(w, tokens, device, iterations, seed, true);
            rel = Double.isNaN(shared.rel()) ? Double.NaN : Math.max(rel, shared.rel());
            String walls = String.format(Locale.ROOT, "wall per call min / median %.0f / %.0f us; through stepRows %.0f / %.0f us;"
                    + " through stepRows with the new tokens' K/V written %.0f / %.0f us (max %.0f); %s; %s",
                    wall[0] / 1e3, wall[wall.length / 2] / 1e3, inPlace[0] / 1e3, inPlace[inPlace.length / 2] / 1e3,
                    written[0] / 1e3, written[written.length / 2] / 1e3, written[written.length - 1] / 1e3,
                    after.text(), shared.text());
            double tflops = flops / nanos[0] / 1e3;
            String grid = PrefillGrid.plan(w.spec(), w.batch(), attention.kernel()).toString().replace("PrefillGrid", "").replace(",", ";");
            System.out.printf("prefill%s %4d x %d+%-5d min %10.1f us  median %10.1f us  %7.2f TFLOP/s  rel L2 %.2e (sampled)%s  %s  %s%n",
                    extras.any() ? "+" + extras.label() : "", batch, prefix, queryLen, nanos[0] / 1e3, nanos[nanos.length / 2] / 1e3, tflops, rel,
                    BenchRow.wrongMark(rel), walls, grid);
            return head + "," + BenchRow.status(rel) + String.format(Locale.ROOT, ",%.2f,%.2f,%.2f,%.4g,%.3f,%.3e,",
                    nanos[0] / 1e3, nanos[nanos.length / 2] / 1e3, nanos[nanos.length - 1] / 1e3, flops, tflops, rel)
                    + "fp64 check: 2x" + SAMPLE + " rows of the first and last sequence; " + walls + "; " + grid;
        } catch (RuntimeException e) {
            System.out.printf("prefill %4d x %d+%d error: %s%n", batch, prefix, queryLen, e);
            return head + ",error,,,,,,," + String.valueOf(e.getMessage()).replace('\n', ' ').replace(',', ';');
        }
    }

    /**
     * What the chunk costs a decode backend on the same cache, as in an engine that prefills a chunk and then decodes: the
     * wall time of a decode step of the batch (whole contexts, no token appended) right after the chunk's K/V are written
     * again, and of the step after it, after bench's warm-up of the same cycle. With {@code paired} false the decode backend
     * keeps its own device copy of the pools and its step mirrors the chunk there; with {@code paired} the chunk goes through
     * the decode backend's own prefill backend ({@code TornadoDecodeAttention.prefill()}, through its rows), whose call is
     * timed too and which scatters it into the one copy both read. The last decode step (and the last paired prefill's
     * sampled rows) are checked against fp64; a shape the decode backend refuses is named instead.
     */
    private static DecodeAfter decodeAfterChunk(PrefillWorkload w, NewTokens tokens, String device, int iterations, long seed,
                                                boolean paired) {
        KvCache cache = w.kv().cache();
        DecodeBatch batch = cache.batch(w.kv().seqs());
        AttentionSpec spec = w.spec();
        FloatArray q = new FloatArray(batch.numSeqs() * spec.numQHeads() * spec.headDim());
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        FloatArray out = new FloatArray(q.getSize());
        String what = paired ? "paired with the decode backend (one copy of the pools)" : "a decode backend on the same cache";
        try (TornadoDecodeAttention decoder = new TornadoDecodeAttention(cache, spec, device, "auto")) {
            TornadoPrefillAttention prefill = paired ? decoder.prefill() : null;
            StepRows rows = paired ? OwnRows.poisonedWith(prefill.stepRows(w.batch(), 0), w.q()) : null;
            Runnable chunk = () -> { // paired: the prefill call that sends the written chunk; else the decode step does
                if (paired) {
                    prefill.prefill(w.batch(), 0, rows.q(), rows.out());
                }
            };
            // warmed as bench's decode cells, on the cycle timed below: TornadoVM's host path and the staging compiled
            BenchCommand.warmUp(() -> {
                tokens.write(w);
                chunk.run();
                decoder.decode(batch, 0, q, out);
                decoder.decode(batch, 0, q, out);
            });
            long[] chunks = new long[iterations];
            long[] first = new long[iterations];
            long[] next = new long[iterations];
            for (int i = 0; i < iterations; i++) {
                tokens.write(w); // the host's write of the chunk's K/V, not timed
                if (paired && i == iterations - 1) {
                    rows.out().init(Float.NaN);
                }
                long t0 = System.nanoTime();
                chunk.run();
                chunks[i] = System.nanoTime() - t0; // reported when paired (unpaired, the chunk is sent by the step below)
                t0 = System.nanoTime();
                decoder.decode(batch, 0, q, out);
                first[i] = System.nanoTime() - t0;
                if (i == iterations - 1) {
                    out.init(Float.NaN);
                }
                t0 = System.nanoTime();
                decoder.decode(batch, 0, q, out);
                next[i] = System.nanoTime() - t0;
            }
            Arrays.sort(chunks);
            Arrays.sort(first);
            Arrays.sort(next);
            double rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, w.kv().seqs(), q));
            String prefillTimes = "";
            if (paired) {
                FloatArray result = w.poisonedOutput();
                OwnRows.copyOut(rows, result);
                rel = Math.max(rel, Math.max(sampledError(w, result, 0), sampledError(w, result, batch.numSeqs() - 1)));
                prefillTimes = String.format(Locale.ROOT, " prefill with the new tokens' K/V written %.0f / %.0f us,",
                        chunks[0] / 1e3, chunks[iterations / 2] / 1e3);
            }
            return new DecodeAfter(String.format(Locale.ROOT, "%s:%s the step after the chunk %.0f / %.0f us, the next %.0f / %.0f us"
                    + " (rel L2 %.1e)", what, prefillTimes, first[0] / 1e3, first[iterations / 2] / 1e3, next[0] / 1e3,
                    next[iterations / 2] / 1e3, rel), rel);
        } catch (IllegalArgumentException e) { // the backend refuses the shape (a kernel's limit): the prefill row stands
            return new DecodeAfter(what + ": not run (" + e.getMessage().replace(',', ';') + ")", 0);
        }
    }

    /** {@link #decodeAfterChunk}'s times as text, and the relative L2 error of its last step. */
    private record DecodeAfter(String text, double rel) {
    }

    /**
     * Wall time of {@code iterations} prefill calls through {@code q} and {@code out}, sorted, after bench's warm-up of the
     * same calls; with {@code tokens}, each call after the new tokens' K/V are written again (outside the timing).
     */
    private static long[] wallNanos(TornadoPrefillAttention attention, PrefillWorkload w, FloatArray q, FloatArray out, int iterations,
                                    NewTokens tokens) {
        BenchCommand.warmUp(() -> {  // the staging's host code compiled too (interpreted, it took several times as long)
            if (tokens != null) {
                tokens.write(w);
            }
            attention.prefill(w.batch(), 0, q, out);
        });
        long[] nanos = new long[iterations];
        for (int i = 0; i < iterations; i++) {
            if (tokens != null) {
                tokens.write(w);
            }
            long t0 = System.nanoTime();
            attention.prefill(w.batch(), 0, q, out);
            nanos[i] = System.nanoTime() - t0;
        }
        Arrays.sort(nanos);
        return nanos;
    }

    /**
     * Relative L2 of the first and last {@link #SAMPLE} query rows of sequence {@code i}, each sample checked alone by
     * {@link ReferencePrefill#rows} (causal, or through the sequence's token tree).
     */
    private static double sampledError(PrefillWorkload w, FloatArray out, int i) {
        AttentionSpec spec = w.spec();
        PrefillBatch b = w.batch();
        int row = spec.numQHeads() * spec.headDim();
        int n = Math.min(SAMPLE, b.qLen(i));
        double worst = 0;
        for (int first : new int[] {0, b.qLen(i) - n}) {
            FloatArray got = new FloatArray(n * row);
            int from = (b.qStart(i) + first) * row;
            for (int e = 0; e < n * row; e++) {
                got.set(e, out.get(from + e));
            }
            double[] ref = ReferencePrefill.rows(w.kv().cache(), spec, 0, w.kv().seqs()[i], b, i, first, n, w.q());
            double rel = ReferenceAttention.relativeL2(got, ref);
            worst = Double.isNaN(rel) ? Double.NaN : Math.max(worst, rel);
            if (Double.isNaN(worst)) {
                return worst;
            }
        }
        return worst;
    }

    /** The K and V of each sequence's new tokens ({@code [qLen][numKvHeads][headDim]}), read back from layer 0 of the cache. */
    private record NewTokens(float[][] k, float[][] v) {
        static NewTokens of(PrefillWorkload w) {
            KvCache cache = w.kv().cache();
            PrefillBatch b = w.batch();
            int heads = cache.config().numKvHeads();
            int d = cache.config().headDim();
            float[][] k = new float[b.numSeqs()][];
            float[][] v = new float[b.numSeqs()][];
            for (int i = 0; i < b.numSeqs(); i++) {
                int seq = w.kv().seqs()[i];
                int first = b.contextLen(i) - b.qLen(i);      // the new tokens (not position(i, 0): a non-causal batch)
                k[i] = new float[b.qLen(i) * heads * d];
                v[i] = new float[k[i].length];
                for (int t = 0; t < b.qLen(i); t++) {
                    for (int h = 0; h < heads; h++) {
                        for (int e = 0; e < d; e++) {
                            k[i][(t * heads + h) * d + e] = cache.readK(seq, 0, first + t, h, e);
                            v[i][(t * heads + h) * d + e] = cache.readV(seq, 0, first + t, h, e);
                        }
                    }
                }
            }
            return new NewTokens(k, v);
        }

        /** Writes the same values again: the cache's journal marks their slots, so the next call sends them. */
        void write(PrefillWorkload w) {
            PrefillBatch b = w.batch();
            for (int i = 0; i < b.numSeqs(); i++) {
                try {
                    w.kv().cache().writeTokens(w.kv().seqs()[i], 0, b.contextLen(i) - b.qLen(i), b.qLen(i), k[i], v[i]);
                } catch (OutOfBlocksException e) {
                    throw new IllegalStateException("rewriting sequence " + i + "'s new tokens needed a block copy", e);
                }
            }
        }
    }
}
