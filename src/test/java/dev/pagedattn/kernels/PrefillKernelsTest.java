package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.PrefillCase;
import dev.pagedattn.attention.PrefillWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.KvPool;
import dev.pagedattn.tornado.PrefillGrid;
import dev.pagedattn.tornado.ShardRows;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The GPU prefill kernel and its merge, run by the emulator, against the fp64 reference: the
 * JVM backend's shapes, each unsplit and split along the context into small partitions, in both
 * schedules.
 */
class PrefillKernelsTest {
    private static final double REL_L2 = 1e-5;
    private static final int MERGE_LOCAL = 64;

    static Stream<PrefillCase> shapes() {
        return Stream.concat(PrefillCase.issueShapes(), Stream.of(
                PrefillCase.of("8-bit E4M3, GQA, window", new int[] {70, 9}, new int[] {20, 9}, 8, 2, 64, 16, KvDtype.FP8_E4M3, 5),
                PrefillCase.of("8-bit E5M2, head dim 40, ragged", new int[] {5, 33, 21}, new int[] {5, 20, 21}, 8, 2, 40, 8,
                        KvDtype.FP8_E5M2, PrefillBatch.NO_WINDOW),
                PrefillCase.of("8-bit INT8, MQA, block size 1", new int[] {40, 19}, new int[] {9, 19}, 16, 1, 32, 1, KvDtype.INT8,
                        PrefillBatch.NO_WINDOW),
                PrefillCase.of("bf16, GQA, window, block size 7", new int[] {70, 9, 33}, new int[] {20, 9, 1}, 8, 2, 64, 7, KvDtype.BF16, 5),
                PrefillCase.of("bf16, MHA, head dim 128", new int[] {40, 17}, new int[] {17, 17}, 4, 4, 128, 16, KvDtype.BF16,
                        PrefillBatch.NO_WINDOW)));
    }

    /** The shapes with a sliding window. */
    static Stream<PrefillCase> windowedShapes() {
        return shapes().filter(c -> c.window() != PrefillBatch.NO_WINDOW);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelMatchesTheFp64Reference(PrefillCase c) {
        long seed = TestSeeds.fresh("PrefillKernelsTest " + c.name());
        PrefillWorkload w = c.workload(seed);
        double[] ref = w.reference();
        PrefillGrid plain = PrefillGrid.plan(w.spec(), w.batch(), PrefillGrid.Kernel.SCALAR);
        // partitions of KV_TILE tokens: every boundary case of the merge (rows that see nothing of a partition)
        PrefillGrid split = splitInto(plain, w.batch(), PrefillKernels.KV_TILE);
        KernelEmulator.Schedule[] orders = KernelEmulator.Schedule.values();
        check(c + " " + plain + " FORWARD seed=" + seed, ref, run(w, plain, KernelEmulator.Schedule.FORWARD));
        check(c + " " + split + " " + orders[(int) (seed & 1)] + " seed=" + seed, ref, run(w, split, orders[(int) (seed & 1)]));
    }

    /**
     * Attention sinks: every shape with random sinks (each query head its own), unsplit and split, every row through the
     * merge, which adds them; the sinks must move the result.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelAddsTheSinks(PrefillCase c) {
        long seed = TestSeeds.fresh("PrefillKernelsTest sinks " + c.name());
        checkSinks(c, seed, PrefillGrid.Kernel.SCALAR, REL_L2, PrefillKernels.KV_TILE);
    }

    /** Log-sum-exp outputs: every shape, unsplit and split, every row through the merge, which writes them ({@link #checkLse}). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelWritesTheLogSumExp(PrefillCase c) {
        checkLse(c, TestSeeds.fresh("PrefillKernelsTest lse " + c.name()), PrefillGrid.Kernel.SCALAR, REL_L2, PrefillKernels.KV_TILE);
    }

    /**
     * Logit soft-capping: every shape with a cap its scores often exceed ({@link SoftCapKernelsTest#CAP}), with sinks
     * and without, unsplit and split; the cap must move the result.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelCapsTheScores(PrefillCase c) {
        long seed = TestSeeds.fresh("PrefillKernelsTest soft cap " + c.name());
        checkSoftCap(c, seed, PrefillGrid.Kernel.SCALAR, REL_L2, PrefillKernels.KV_TILE);
    }

    /**
     * Sliding-window block release: every windowed shape after {@code KvCache.releaseBefore} at each sequence's first
     * query's first visible position, the freed blocks then taken and filled with NaN by another sequence, unsplit and
     * split, against the fp64 reference of the cache before the release.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("windowedShapes")
    void kernelReadsNoReleasedBlock(PrefillCase c) {
        checkReleased(c, TestSeeds.fresh("PrefillKernelsTest released " + c.name()), PrefillGrid.Kernel.SCALAR, REL_L2,
                PrefillKernels.KV_TILE);
    }

    /** {@link #kernelReadsNoReleasedBlock} through {@code kernel} (a windowed shape: without a window nothing is released). */
    static void checkReleased(PrefillCase c, long seed, PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        PrefillWorkload whole = c.workload(seed);
        double[] ref = whole.reference();
        int usedBefore = whole.kv().cache().numUsedBlocks();
        PrefillWorkload w = whole.releasedOutsideWindow();
        assertTrue(whole.kv().cache().numAllocatableBlocks() == 0 && usedBefore > 0, "the free blocks are poisoned");
        PrefillGrid unsplit = PrefillGrid.plan(w.spec(), w.batch(), kernel);
        PrefillGrid split = splitInto(unsplit, w.batch(), splitTokens);
        KernelEmulator.Schedule order = KernelEmulator.Schedule.values()[(int) (seed & 1)];
        double rel = ReferenceAttention.relativeL2(run(w, unsplit, KernelEmulator.Schedule.FORWARD), ref);
        assertTrue(rel < tolerance, c + " released " + unsplit + " FORWARD seed=" + seed + ": relative L2 error " + rel);
        rel = ReferenceAttention.relativeL2(run(w, split, order), ref);
        assertTrue(rel < tolerance, c + " released " + split + " " + order + " seed=" + seed + ": relative L2 error " + rel);
    }

    /**
     * {@code c} with random sinks through {@code kernel}, unsplit (forward schedule) and split into partitions of {@code
     * splitTokens} (a schedule the seed picks), against fp64 within {@code tolerance}; the sinks must move the reference by
     * 10x that.
     */
    static void checkSinks(PrefillCase c, long seed, PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        PrefillWorkload plain = c.workload(seed);
        checkChanged(c, "sinks", plain, plain.withSinks(dev.pagedattn.attention.DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed)),
                seed, kernel, tolerance, splitTokens);
    }

    /** ALiBi: every shape with the paper's slopes, unsplit and split; the slopes must move the result. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelAddsAlibi(PrefillCase c) {
        long seed = TestSeeds.fresh("PrefillKernelsTest alibi " + c.name());
        checkAlibi(c, seed, PrefillGrid.Kernel.SCALAR, REL_L2, PrefillKernels.KV_TILE);
    }

    /** {@link #checkSinks} for ALiBi (the paper's slopes): alone, then with a soft cap and random sinks. */
    static void checkAlibi(PrefillCase c, long seed, PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        PrefillWorkload plain = c.workload(seed);
        PrefillWorkload alibi = plain.withAlibi(dev.pagedattn.attention.AlibiSlopes.standard(c.numQHeads()));
        checkChanged(c, "alibi", plain, alibi, seed, kernel, tolerance, splitTokens);
        checkChanged(c, "alibi, soft cap and sinks", plain, alibi.withSoftCap(SoftCapKernelsTest.CAP)
                .withSinks(dev.pagedattn.attention.DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed)), seed, kernel, tolerance,
                splitTokens);
    }

    /** The shapes without a window where a row could see more than its causal prefix (some query is not the last token). */
    static Stream<PrefillCase> nonCausalShapes(Stream<PrefillCase> shapes) {
        return shapes.filter(c -> c.window() == PrefillBatch.NO_WINDOW && Arrays.stream(c.qLens()).max().orElse(0) > 1);
    }

    static Stream<PrefillCase> nonCausalShapes() {
        return nonCausalShapes(shapes());
    }

    /**
     * Without causality (FlashInfer's {@code causal=False}, cross-attention): every shape's queries see their whole
     * contexts, alone and with a soft cap and sinks, unsplit and split; the change must move the result.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("nonCausalShapes")
    void kernelAttendsWithoutCausality(PrefillCase c) {
        checkNonCausal(c, TestSeeds.fresh("PrefillKernelsTest non-causal " + c.name()), PrefillGrid.Kernel.SCALAR, REL_L2,
                PrefillKernels.KV_TILE);
    }

    /** {@link #checkSinks} for a non-causal batch ({@link PrefillWorkload#nonCausal}): alone, then with a cap and sinks. */
    static void checkNonCausal(PrefillCase c, long seed, PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        PrefillWorkload plain = c.workload(seed);
        PrefillWorkload all = plain.nonCausal();
        checkChanged(c, "non-causal", plain, all, seed, kernel, tolerance, splitTokens);
        checkChanged(c, "non-causal, soft cap and sinks", plain, all.withSoftCap(SoftCapKernelsTest.CAP)
                .withSinks(dev.pagedattn.attention.DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed)), seed, kernel, tolerance,
                splitTokens);
    }

    /**
     * The shapes where a token tree can matter (a sequence with several new tokens, a window or chunk over 1), and a tree
     * of 75.
     */
    static Stream<PrefillCase> treeShapes(Stream<PrefillCase> shapes) {
        return Stream.concat(shapes, Stream.of(PrefillCase.of("trees of 75 and 66 tokens (3 ints a row), GQA 4",
                        new int[] {120, 66}, new int[] {75, 66}, 8, 2, 64, 16, KvDtype.FP16, PrefillBatch.NO_WINDOW)))
                .filter(c -> AttentionWindow.span(c.window()) > 1 && Arrays.stream(c.qLens()).max().orElse(0) > 1);
    }

    static Stream<PrefillCase> treeShapes() {
        return treeShapes(shapes());
    }

    /**
     * Token-tree masks ({@code TreeMask}): every shape with random trees over its sequences' new tokens, alone and with
     * a soft cap and sinks, unsplit and split; the trees must move the result.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("treeShapes")
    void kernelFollowsTreeMasks(PrefillCase c) {
        checkTrees(c, TestSeeds.fresh("PrefillKernelsTest trees " + c.name()), PrefillGrid.Kernel.SCALAR, REL_L2,
                PrefillKernels.KV_TILE);
    }

    /**
     * {@link #checkSinks} for random token trees ({@link PrefillWorkload#withRandomTrees}; a windowed shape's rows see
     * through windows counted from their tree positions): alone, then with a soft cap and sinks; and for random
     * bidirectional spans ({@link PrefillWorkload#withRandomSpans}) and random custom masks
     * ({@link PrefillWorkload#withRandomCustomMasks}).
     */
    static void checkTrees(PrefillCase c, long seed, PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        PrefillWorkload plain = c.workload(seed);
        PrefillWorkload trees = plain.withRandomTrees(seed);
        checkChanged(c, "trees", plain, trees, seed, kernel, tolerance, splitTokens);
        // masks whose rows see later tokens too (Gemma 3's image spans): the tiles read past their last query's position
        checkChanged(c, "bidirectional spans", plain, plain.withRandomSpans(seed), seed, kernel, tolerance, splitTokens);
        checkChanged(c, "custom masks", plain, plain.withRandomCustomMasks(seed), seed, kernel, tolerance, splitTokens);
        checkChanged(c, "trees, soft cap and sinks", plain, trees.withSoftCap(SoftCapKernelsTest.CAP)
                .withSinks(dev.pagedattn.attention.DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed)), seed, kernel, tolerance,
                splitTokens);
    }

    /**
     * Log-sum-exp outputs ({@link PrefillParams#LSE}): the shape (with random token trees where it has a window longer than
     * one, with random sinks on odd seeds) through {@code kernel}, unsplit (forward schedule) and split into partitions of
     * {@code splitTokens} (a schedule the seed picks), every row through the merge: the output against fp64 within
     * {@code tolerance}, each row's and head's lse within {@code 2 tolerance} of fp64's (relative to {@code max(1, |lse|)}).
     */
    static void checkLse(PrefillCase c, long seed, PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        PrefillWorkload w = c.workload(seed);
        if (c.window() != PrefillBatch.NO_WINDOW && Math.abs(c.window()) > 1) {
            w = w.withRandomTrees(seed);
        }
        if ((seed & 1) != 0) {
            w = w.withSinks(dev.pagedattn.attention.DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed));
        }
        int rows = w.batch().totalQueries() * c.numQHeads();
        double[] refLse = new double[rows];
        double[] ref = dev.pagedattn.attention.ReferencePrefill.prefill(w.kv().cache(), w.spec(), 0, w.kv().seqs(), w.batch(), w.q(),
                refLse);
        PrefillGrid unsplit = PrefillGrid.plan(w.spec(), w.batch(), kernel);
        KernelEmulator.Schedule order = KernelEmulator.Schedule.values()[(int) (seed & 1)];
        for (PrefillGrid grid : new PrefillGrid[] {unsplit, splitInto(unsplit, w.batch(), splitTokens)}) {
            KernelEmulator.Schedule schedule = grid == unsplit ? KernelEmulator.Schedule.FORWARD : order;
            String what = c + " lse " + grid + " " + schedule + " seed=" + seed;
            FloatArray lse = new FloatArray(rows);
            lse.init(Float.NaN);
            double rel = ReferenceAttention.relativeL2(run(w, grid, schedule, lse), ref);
            assertTrue(rel < tolerance, what + ": relative L2 error " + rel);
            for (int i = 0; i < rows; i++) {
                double err = Math.abs(lse.get(i) - refLse[i]);
                assertTrue(err <= 2 * tolerance * Math.max(1, Math.abs(refLse[i])), what + ": lse[" + i + "]=" + lse.get(i)
                        + " fp64 " + refLse[i]);
            }
        }
    }

    /** {@link #checkSinks} for a soft cap ({@link SoftCapKernelsTest#CAP}): alone, then with random sinks. */
    static void checkSoftCap(PrefillCase c, long seed, PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        PrefillWorkload plain = c.workload(seed);
        PrefillWorkload capped = plain.withSoftCap(SoftCapKernelsTest.CAP);
        checkChanged(c, "soft cap", plain, capped, seed, kernel, tolerance, splitTokens);
        checkChanged(c, "soft cap and sinks", plain,
                capped.withSinks(dev.pagedattn.attention.DecodeWorkload.randomSinks(1, c.numQHeads(), 1, seed)), seed, kernel,
                tolerance, splitTokens);
    }

    /**
     * {@code w} ({@code plain} changed as {@code what} says) through {@code kernel}, unsplit (forward schedule) and split
     * into partitions of {@code splitTokens} (a schedule the seed picks), against fp64 within {@code tolerance}; the change
     * must move the reference by 10x that.
     */
    private static void checkChanged(PrefillCase c, String what, PrefillWorkload plain, PrefillWorkload w, long seed,
                                     PrefillGrid.Kernel kernel, double tolerance, int splitTokens) {
        double[] ref = w.reference();
        double moved = ReferenceAttention.relativeL2(plain.reference(), ref);
        // (a window of 1 leaves each row one score: a soft cap or a bias cannot move a softmax of one)
        boolean canMove = AttentionWindow.span(c.window()) > 1 || !(what.equals("soft cap") || what.equals("alibi"));
        assertTrue(moved > 10 * tolerance || !canMove, c + ": the " + what + " must matter to the test (they move it by " + moved + ")");
        PrefillGrid unsplit = PrefillGrid.plan(w.spec(), w.batch(), kernel);
        PrefillGrid split = splitInto(unsplit, w.batch(), splitTokens);
        KernelEmulator.Schedule order = KernelEmulator.Schedule.values()[(int) (seed & 1)];
        double rel = ReferenceAttention.relativeL2(run(w, unsplit, KernelEmulator.Schedule.FORWARD), ref);
        assertTrue(rel < tolerance, c + " " + what + " " + unsplit + " FORWARD seed=" + seed + ": relative L2 error " + rel);
        rel = ReferenceAttention.relativeL2(run(w, split, order), ref);
        assertTrue(rel < tolerance, c + " " + what + " " + split + " " + order + " seed=" + seed + ": relative L2 error " + rel);
    }

    static PrefillGrid splitInto(PrefillGrid g, PrefillBatch batch, int partitionTokens) {
        int parts = (batch.kv().maxContextLen() + partitionTokens - 1) / partitionTokens;
        return new PrefillGrid(g.headTiles(), g.maxQTiles(), partitionTokens, parts, g.numGroups() / g.maxPartitions() * parts,
                g.kernel());
    }

    /**
     * The kernel for the workload's dtype, then the merge, as the TornadoVM plan launches them: per
     * KV-head shard of the layer ({@link ShardRows}) when it is split, {@code grid} then planned for
     * {@code spec.shard(poolShards)}.
     */
    static FloatArray run(PrefillWorkload w, PrefillGrid grid, KernelEmulator.Schedule schedule) {
        return run(w, grid, schedule, null);
    }

    /**
     * {@link #run}, also writing each query row's and head's log-sum-exp into {@code lse} ({@code [totalQueries][numQHeads]};
     * null: none) as a plan's step with an {@code lse} array does: every row through the merge, which writes them after
     * each shard's output rows ({@link PrefillParams#LSE}), a layer without sinks passing sinks of -inf.
     */
    static FloatArray run(PrefillWorkload w, PrefillGrid grid, KernelEmulator.Schedule schedule, FloatArray lse) {
        KvCache c = w.kv().cache();
        int shards = c.config().poolShards();
        AttentionSpec whole = w.spec();
        int rows = w.batch().totalQueries();
        ShardRows parts = new ShardRows(shards, rows, whole.numQHeads() * whole.headDim(), lse == null ? 0 : whole.numQHeads());
        parts.load(w.q(), rows);
        // as a plan of a layer with sinks, or a step with log-sum-exps: every row through the merge
        PrefillGrid merged = grid.merged(whole.hasSinks(0) || lse != null);
        for (int s = 0; s < shards; s++) {
            parts.out(s).init(Float.NaN);
            FloatArray sinks = EmulatedDecode.sinks(whole, s, shards);
            if (sinks == null) { // as a plan's: -inf, weight 0
                sinks = new FloatArray(whole.numQHeads() / shards);
                sinks.init(Float.NEGATIVE_INFINITY);
            }
            shard(c, s, EmulatedDecode.shardSpec(whole, s, shards), sinks, w.batch(), parts.q(s), parts.out(s), merged, schedule,
                    lse == null ? 0 : parts.lseAt());
        }
        FloatArray out = w.poisonedOutput();
        parts.store(out, rows);
        if (lse != null) {
            parts.storeLse(lse, rows);
        }
        return out;
    }

    private static void shard(KvCache c, int shard, AttentionSpec spec, FloatArray sinks, PrefillBatch b, FloatArray q, FloatArray out,
                              PrefillGrid grid, KernelEmulator.Schedule schedule, int lseAt) {
        IntArray tables = IntArray.fromArray(b.kv().kernelBlockTables()); // as the plan sends them
        IntArray lens = IntArray.fromArray(b.kv().contextLens());
        IntArray indptr = IntArray.fromArray(b.qIndptr());
        IntArray qSeq = new IntArray(b.totalQueries());
        for (int i = 0; i < b.numSeqs(); i++) {
            for (int j = 0; j < b.qLen(i); j++) {
                qSeq.set(b.qStart(i) + j, i);
            }
        }
        IntArray params = new IntArray(PrefillParams.SIZE + (int) PrefillGrid.maskInts(b)); // as a plan sized for the masks
        grid.writeParams(params, spec, b, 0, b.kv().maxBlocksPerSeq(), false);
        params.set(PrefillParams.LSE, lseAt);
        PrefillGrid.writeMasks(params, b);
        int capSlot = (int) Math.max(1, grid.bufferElements(spec, b.totalQueries()));
        int alibiBase = capSlot + (spec.hasSoftCap() ? 1 : 0);
        FloatArray partials = new FloatArray(alibiBase + (spec.hasAlibi() ? spec.numQHeads() : 0));
        partials.init(Float.NaN);
        EmulatedDecode.putSlopes(spec, partials, params, PrefillParams.ALIBI, alibiBase); // ALiBi: the slopes after the cap
        if (spec.hasSoftCap()) { // as a plan of a soft-capped layer: the cap after the partitions' states and scratch
            partials.set(capSlot, spec.softCap());
            params.set(PrefillParams.SOFT_CAP, capSlot);
        }
        int hkv = spec.numKvHeads();
        int g = spec.groupSize();
        int d = spec.headDim();
        int bs = c.config().blockSize();
        boolean half = c.config().dtype() == KvDtype.FP16;
        boolean eightBit = c.config().dtype().isQuantized();
        FloatArray dequant = eightBit ? PackedCodes.argument(c, 0, shard, spec.scale()) : null;
        KvPool kp = c.keys(0, shard);
        KvPool vp = c.values(0, shard);
        KernelEmulator.launch(grid.globalSize(), PrefillGrid.LOCAL, schedule, ctx -> {
            if (grid.kernel() == PrefillGrid.Kernel.TENSOR && c.config().dtype() == KvDtype.BF16) {
                TensorPrefillKernels.prefillBf16Tensor(ctx, kp.wordArray(), vp.wordArray(), q, tables, lens, indptr,
                        params, out, partials, hkv, g, d, bs, spec.scale());
            } else if (grid.kernel() == PrefillGrid.Kernel.TENSOR && eightBit) {
                TensorPrefillKernels.prefillQ8Tensor(ctx, kp.wordArray(), vp.wordArray(), dequant, q, tables, lens, indptr,
                        params, out, partials, hkv, g, d, bs);
            } else if (grid.kernel() == PrefillGrid.Kernel.TENSOR) {
                // the CUDA kernel: its copies land only at their waits (the emulator's cp.async); the PTX kernel is
                // the same body with copies that land at once (PrefillKernelSourceTest)
                TensorPrefillKernels.prefillF16Async(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, indptr,
                        params, out, partials, hkv, g, d, bs, spec.scale());
            } else if (eightBit) {
                PrefillKernels.prefillQ8(ctx, kp.wordArray(), vp.wordArray(), dequant, q, tables, lens, indptr,
                        params, out, partials, hkv, g, d, bs);
            } else if (half) {
                PrefillKernels.prefillF16(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, indptr, params,
                        out, partials, hkv, g, d, bs, spec.scale());
            } else if (c.config().dtype() == KvDtype.BF16) {
                PrefillKernels.prefillBf16(ctx, kp.wordArray(), vp.wordArray(), q, tables, lens, indptr, params,
                        out, partials, hkv, g, d, bs, spec.scale());
            } else {
                PrefillKernels.prefillF32(ctx, kp.floatArray(), vp.floatArray(), q, tables, lens, indptr, params,
                        out, partials, hkv, g, d, bs, spec.scale());
            }
        });
        KernelEmulator.launch(MERGE_LOCAL * 2, MERGE_LOCAL, schedule,
                ctx -> PrefillKernels.mergePartitions(ctx, lens, qSeq, params, partials, sinks, out, spec.numQHeads(), d));
    }

    private static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < REL_L2, what + ": relative L2 error " + rel + " (NaN: an output was not written)");
    }
}
