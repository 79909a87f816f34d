package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.tornado.TornadoDecodeAttention;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The decode-loop cells of {@code bench} ({@code --sweeps loop}): a step as an engine runs it. Each of B sequences
 * starts at its cell's context, and every step appends one token per sequence (random K/V written to layer 0, so
 * the step's task graph scatters them), takes the batch with {@link KvCache#batch} (block tables as wide as the
 * longest sequence, so they widen every block-size steps) and decodes it; the wall time of each {@code decode} call
 * is recorded. Run three times per cell: with no reservation (the plans grow on their own), after
 * {@link DecodeAttention#reserve} for the loop's last step, and reserved with the new tokens' slots appended but their
 * K/V not written (no scatter: what the write costs a step). A reservation covers the loop's last step, for at least
 * {@code reserveSeqs} sequences (an engine reserves its largest batch and runs smaller ones; a plan then copies its
 * query and output rows at that capacity). The last step's output is checked against fp64.
 */
final class LoopBench {
    private LoopBench() {
    }

    /**
     * One line per (cell, reservation); {@code reserveSeqs}: sequences the reserved runs reserve at least (0: the
     * cell's batch); {@code scales}: of an 8-bit {@code dtype}, null for fp16/fp32. Returns how many lines FAILed
     * their fp64 check.
     */
    static int run(List<int[]> cells, int steps, long kvMemoryBytes, int reserveSeqs, int qHeads, int kvHeads, int headDim,
                   int blockSize, KvDtype dtype, KvScales scales, String device, long seed, boolean stepRows) {
        System.out.printf("decode loop: %d steps, one token appended per sequence and step, wall time per decode call (ms)%s%s%n", steps,
                kvMemoryBytes > 0 ? ", caches of " + kvMemoryBytes + " bytes of K/V" : "",
                stepRows ? ", through the backend's own rows (stepRows, called every step and timed with the call)" : "");
        int failed = 0;
        for (int[] lengths : cells) {
            for (int mode = 0; mode < 3; mode++) {
                boolean passed = cell(lengths, steps, kvMemoryBytes, mode > 0 ? Math.max(reserveSeqs, lengths.length) : 0, mode < 2,
                        qHeads, kvHeads, headDim, blockSize, dtype, scales, device, seed, stepRows);
                failed += passed ? 0 : 1;
            }
        }
        return failed;
    }

    /** One line; whether its last step passed the fp64 check. */
    private static boolean cell(int[] lengths, int steps, long kvMemoryBytes, int reservedSeqs, boolean writes, int qHeads,
                                int kvHeads, int headDim, int blockSize, KvDtype dtype, KvScales scales, String device, long seed,
                                boolean stepRows) {
        DecodeWorkload w = DecodeWorkload.create(lengths, qHeads, kvHeads, headDim, blockSize, dtype, seed + lengths.length,
                kvMemoryBytes, 1, steps, scales);
        KvCache cache = w.cache();
        AttentionSpec spec = w.spec();
        int longest = Arrays.stream(lengths).max().orElseThrow();
        SplittableRandom random = new SplittableRandom(seed ^ 0x5DEECE66DL);
        int width = cache.config().tokenWidth();
        float[] k = new float[width];
        float[] v = new float[width];
        long[] wall = new long[steps];
        long[] kernelNanos = new long[steps]; // TornadoVM's kernel time, -1 under CUDA graphs
        FloatArray out = w.poisonedOutput();
        StepRows rows = null;
        int builds;
        double rel;
        try (DecodeAttention attention = Backends.create("tornado", cache, spec, device, "auto")) {
            if (reservedSeqs > 0) {
                attention.reserve(reservedSeqs, longest + steps);
            }
            for (int step = 0; step < steps; step++) {
                for (int seq : w.seqs()) {
                    for (int i = 0; i < width; i++) {
                        k[i] = (float) (random.nextDouble() * 2 - 1);
                        v[i] = (float) (random.nextDouble() * 2 - 1);
                    }
                    try {
                        int pos = cache.append(seq, 1);
                        if (writes) {
                            cache.write(seq, 0, pos, k, v);
                        }
                    } catch (OutOfBlocksException e) {
                        throw new AssertionError("the workload's cache was sized for every step's new token", e);
                    }
                }
                DecodeBatch batch = cache.batch(w.seqs());
                out.init(Float.NaN);
                if (rows != null) {
                    rows.out().init(Float.NaN);
                }
                long t0 = System.nanoTime();
                if (stepRows) { // an engine writes its queries into the rows it is given (new ones after a plan rebuild)
                    StepRows now = attention.stepRows(batch, 0);
                    if (rows == null || now.q() != rows.q()) {
                        rows = now;
                        long copy = System.nanoTime();
                        OwnRows.poisonedWith(rows, w.q()); // the engine's own work, not the library's: not timed
                        t0 += System.nanoTime() - copy;
                    }
                    attention.decode(batch, 0, rows.q(), rows.out());
                } else {
                    attention.decode(batch, 0, w.q(), out);
                }
                wall[step] = System.nanoTime() - t0;
                kernelNanos[step] = attention.lastDeviceNanos();
            }
            if (stepRows) {
                OwnRows.copyOut(rows, out);
            }
            builds = ((TornadoDecodeAttention) attention).planBuilds();
            rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, w.seqs(), w.q()));
        }
        // the first step builds the plan and compiles its task graphs: reported apart from the rest
        int slowest = 1;
        for (int i = 2; i < steps; i++) {
            slowest = wall[i] > wall[slowest] ? i : slowest;
        }
        long[] rest = Arrays.copyOfRange(wall, 1, steps);
        Arrays.sort(rest);
        boolean ok = rel <= (dtype == KvDtype.FP32 ? 1e-4 : 1e-3);
        long[] kernels = Arrays.copyOfRange(kernelNanos, 1, steps);
        Arrays.sort(kernels);
        String kernelTime = kernels[0] > 0 ? String.format(Locale.ROOT, "  kernels median %.3f", kernels[kernels.length / 2] / 1e6) : "";
        System.out.printf(Locale.ROOT, "%5d x %-6d %-15s first %9.1f  then min %7.3f median %7.3f p99 %9.1f max %9.1f"
                        + " (step %d)%s  steps over 10 ms: %d  plan builds: %d  last step rel L2 %.2e %s%n",
                lengths.length, longest, reservedSeqs == 0 ? "unreserved" : (writes ? "reserved" : "no-writes")
                        + (reservedSeqs > lengths.length ? " " + reservedSeqs : ""), wall[0] / 1e6, rest[0] / 1e6,
                rest[rest.length / 2] / 1e6, rest[Math.min(rest.length - 1, (int) Math.ceil(0.99 * rest.length) - 1)] / 1e6,
                wall[slowest] / 1e6, slowest, kernelTime,
                Arrays.stream(rest).filter(t -> t > 10_000_000L).count(), builds, rel, ok ? "PASS" : "FAIL");
        return ok;
    }
}
