package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.tornado.DecodeGrid;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The split-K merge run by the emulator on random partial rows (ragged partition counts, maxima
 * far apart, rows whose partitions fit in fewer slices than the step has) against the
 * log-sum-exp of the same rows in fp64, for every slice count, both schedules and a grid of one
 * work-group (grid-stride) as well as a full one; with and without attention sinks (each head's sink joins the
 * row's max and sum). The one-group launches also write each row's log-sum-exp ({@link DecodeParams#LSE}), checked
 * against fp64's; the full grids must leave those slots alone.
 */
class MergePartitionsTest {
    private static final double TOLERANCE = 1e-6;

    @ParameterizedTest(name = "seqs={0} heads={1} headDim={2} partTokens={3} maxLen={4}")
    @CsvSource({
            "3, 4, 128, 16, 3200",
            "2, 3, 80, 64, 9000",
            "1, 2, 256, 32, 400",
            "4, 1, 64, 16, 100",
            "2, 2, 96, 16, 16",
            "1, 2, 128, 16, 5000",
    })
    void matchesFp64(int seqs, int heads, int headDim, int partTokens, int maxLen) {
        long seed = TestSeeds.fresh(String.format("merge seqs=%d heads=%d d=%d", seqs, heads, headDim));
        SplittableRandom rnd = new SplittableRandom(seed);
        int[] lens = new int[seqs];
        lens[0] = maxLen;
        for (int i = 1; i < seqs; i++) {
            lens[i] = 1 + rnd.nextInt(maxLen);
        }
        int maxParts = (maxLen + partTokens - 1) / partTokens;
        int stride = headDim + 2;
        int rows = seqs * heads * maxParts * stride;
        FloatArray partials = new FloatArray(rows + heads); // the partitions' rows, then the heads' sinks (a plan's layout)
        partials.init(Float.NaN); // rows past a sequence's partitions stay poisoned: the merge must not read them
        for (int sh = 0; sh < seqs * heads; sh++) {
            int parts = (lens[sh / heads] + partTokens - 1) / partTokens;
            for (int j = 0; j < parts; j++) {
                int row = (sh * maxParts + j) * stride;
                for (int d = 0; d < headDim; d++) {
                    partials.set(row + d, (float) (rnd.nextGaussian() * 10));
                }
                partials.set(row + headDim, (float) (rnd.nextDouble() * 60 - 30)); // max: exp(max - max') spans 1e-26..1
                partials.set(row + headDim + 1, (float) (0.5 + rnd.nextDouble() * 40));
            }
        }
        for (int h = 0; h < heads; h++) { // [heads] after the rows: as far apart from the maxima as the maxima are
            partials.set(rows + h, (float) (rnd.nextDouble() * 64 - 30));
        }
        for (boolean withSinks : new boolean[] {false, true}) {
            mergesMatch(partials, withSinks ? rows : -1, lens, heads, headDim, partTokens, maxParts);
        }
    }

    /**
     * Both merges, every slice count and schedule, one work-group and a full grid; the heads' sinks at {@code partials[sinkBase
     * + h]}, or none ({@code sinkBase} -1: the slots the sinks would be read from stay unread).
     */
    private static void mergesMatch(FloatArray partials, int sinkBase, int[] lens, int heads, int headDim, int partTokens,
                                    int maxParts) {
        int seqs = lens.length;
        double[] want = reference(partials, sinkBase, lens, heads, headDim, partTokens, maxParts);
        String what = sinkBase >= 0 ? " with sinks" : "";
        for (int slices = 1; slices <= PagedDecodeKernels.MAX_MERGE_SLICES; slices *= 2) {
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                for (boolean oneGroup : new boolean[] {true, false}) {
                    // the one-group launches also write the rows' log-sum-exps after the output (DecodeParams.LSE)
                    int lseAt = seqs * heads * headDim;
                    FloatArray out = new FloatArray(lseAt + seqs * heads);
                    out.init(Float.NaN);
                    IntArray params = params(seqs, partTokens, maxParts, slices);
                    params.set(DecodeParams.LSE, oneGroup ? lseAt : 0);
                    String how = "slices=" + slices + " " + s + (oneGroup ? " one group, lse" : "") + what;
                    params.set(DecodeParams.SINKS, sinkBase >= 0 ? 1 : 0);
                    params.set(DecodeParams.SINK_BASE, sinkBase >= 0 ? sinkBase : 0); // without sinks: partials[0..], which must not matter
                    int items = seqs * heads * headDim * slices;
                    int local = PagedDecodeKernels.MERGE_LOCAL;
                    int global = oneGroup ? local : (items + local - 1) / local * local;
                    KernelEmulator.launch(global, local, s, ctx -> PagedDecodeKernels.mergePartitions(ctx, IntArray.fromArray(lens),
                            params, partials, out, heads, headDim));
                    assertMerged(out, want, seqs * heads, oneGroup, how);
                    // the opt-in merge with one weight per (row, partition), on the same partials and grid
                    out.init(Float.NaN);
                    KernelEmulator.launch(global, local, s, ctx -> PagedDecodeKernels.mergeRows(ctx, IntArray.fromArray(lens),
                            params, partials, out, heads, headDim));
                    assertMerged(out, want, seqs * heads, oneGroup, "mergeRows " + how);
                }
            }
        }
    }

    /**
     * {@code out}'s output rows against {@code want}'s (relative L2), and its tail of {@code rows} log-sum-exps against
     * {@code want}'s (each within 1e-5, relative above 1) where {@code lse}, else still NaN: a merge without
     * {@link DecodeParams#LSE} writes nothing there.
     */
    private static void assertMerged(FloatArray out, double[] want, int rows, boolean lse, String how) {
        int lseAt = want.length - rows;
        double[] got = new double[lseAt];
        for (int i = 0; i < lseAt; i++) {
            got[i] = out.get(i);
        }
        double rel = ReferenceAttention.relativeL2(got, java.util.Arrays.copyOf(want, lseAt));
        assertTrue(rel < TOLERANCE, how + ": relative L2 " + rel);
        for (int r = lseAt; r < want.length; r++) {
            float v = out.get(r);
            if (lse) {
                assertEquals(want[r], v, 1e-5 * Math.max(1, Math.abs(want[r])), how + ": lse of row " + (r - lseAt));
            } else {
                assertTrue(Float.isNaN(v), how + ": lse slot " + (r - lseAt) + " written without DecodeParams.LSE: " + v);
            }
        }
    }

    @Test
    void slicesLeaveAtMostEightPartitionsEach() {
        AttentionSpec spec = new AttentionSpec(32, 8, 128, 1f);
        for (int len : new int[] {64, 512, 1000, 4096, 32768, 131072}) {
            DecodeGrid grid = DecodeGrid.plan(spec, 1, len, true, 1 << 20, 16, DecodeGrid.Kernel.STREAM);
            int slices = grid.mergeSlices();
            assertEquals(0, Integer.bitCount(slices) - 1, "a power of two: " + slices);
            assertTrue(slices <= PagedDecodeKernels.MAX_MERGE_SLICES, grid + ": " + slices);
            boolean capped = slices == PagedDecodeKernels.MAX_MERGE_SLICES;
            assertTrue(capped || (grid.maxPartitions() + slices - 1) / slices <= 8, grid + ": " + slices);
            assertTrue(slices == 1 || (grid.maxPartitions() + slices / 2 - 1) / (slices / 2) > 8, grid + ": fewer would do, " + slices);
        }
    }

    private static IntArray params(int seqs, int partTokens, int maxParts, int slices) {
        IntArray params = new IntArray(DecodeParams.SIZE);
        params.set(DecodeParams.NUM_SEQS, seqs);
        params.set(DecodeParams.PARTITION_TOKENS, partTokens);
        params.set(DecodeParams.MAX_PARTITIONS, maxParts);
        params.set(DecodeParams.MERGE_SLICES, slices);
        params.set(DecodeParams.WINDOW, dev.pagedattn.cache.DecodeBatch.NO_WINDOW); // every partition of every sequence
        return params;
    }

    private static double[] reference(FloatArray partials, int sinkBase, int[] lens, int heads, int headDim, int partTokens,
                                      int maxParts) {
        int stride = headDim + 2;
        int lseAt = lens.length * heads * headDim;
        double[] out = new double[lseAt + lens.length * heads]; // the rows, then their log-sum-exps
        for (int sh = 0; sh < lens.length * heads; sh++) {
            int parts = (lens[sh / heads] + partTokens - 1) / partTokens;
            double sink = sinkBase < 0 ? Double.NEGATIVE_INFINITY : partials.get(sinkBase + sh % heads); // a score without a value
            double m = sink;
            for (int j = 0; j < parts; j++) {
                m = Math.max(m, partials.get((sh * maxParts + j) * stride + headDim));
            }
            double sum = Math.exp(sink - m);
            double[] acc = new double[headDim];
            for (int j = 0; j < parts; j++) {
                int row = (sh * maxParts + j) * stride;
                double w = Math.exp(partials.get(row + headDim) - m);
                sum += partials.get(row + headDim + 1) * w;
                for (int d = 0; d < headDim; d++) {
                    acc[d] += partials.get(row + d) * w;
                }
            }
            for (int d = 0; d < headDim; d++) {
                out[sh * headDim + d] = acc[d] / sum;
            }
            out[lseAt + sh] = m + Math.log(sum);
        }
        return out;
    }
}
