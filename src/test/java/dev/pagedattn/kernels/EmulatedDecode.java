package dev.pagedattn.kernels;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.KvPool;
import dev.pagedattn.tornado.DecodeGrid;
import dev.pagedattn.tornado.ShardRows;
import dev.pagedattn.tornado.VSums;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/** Runs the GPU kernel variants on a workload through {@link KernelEmulator}, sized by {@link DecodeGrid}. */
final class EmulatedDecode {
    static final int MERGE_LOCAL = PagedDecodeKernels.MERGE_LOCAL;

    private EmulatedDecode() {
    }

    /** The grid's KernelContext attention kernel (fused or split-K, as the grid says), plus the merge. */
    static FloatArray attention(DecodeWorkload w, DecodeGrid grid, KernelEmulator.Schedule schedule) {
        return attention(w, grid, schedule, false);
    }

    /**
     * {@code packedHalfLoads}: run the CUDA backend's twin of the chunk kernel ({@code getHalf2}) on
     * fp16 pools. A layer split into KV-head shards runs as the TornadoVM plans run it: each shard's
     * kernels over its own pool arrays and its {@link ShardRows} of q and out ({@code grid} is then
     * planned for {@code spec.shard(poolShards)}).
     */
    static FloatArray attention(DecodeWorkload w, DecodeGrid grid, KernelEmulator.Schedule schedule, boolean packedHalfLoads) {
        return attention(w, grid, schedule, packedHalfLoads, VSums.FP32);
    }

    /** {@code vSums}: FP16 runs the fp16 stream kernel's twin with a tile's V sums in fp16 pairs. */
    static FloatArray attention(DecodeWorkload w, DecodeGrid grid, KernelEmulator.Schedule schedule, boolean packedHalfLoads,
                                VSums vSums) {
        return attention(w, grid, schedule, packedHalfLoads, vSums, false);
    }

    /**
     * {@code packedInputs}: the block tables and context lengths inside the params array, which the kernels then get
     * three times, as a plan with {@code -Dpagedattn.tornado.packedInputs=true} passes them ({@link #inputs}).
     */
    static FloatArray attention(DecodeWorkload w, DecodeGrid grid, KernelEmulator.Schedule schedule, boolean packedHalfLoads,
                                VSums vSums, boolean packedInputs) {
        return attention(w, grid, schedule, packedHalfLoads, vSums, packedInputs, null, false);
    }

    /**
     * The grid's kernels writing each row's log-sum-exp into {@code lse} ({@code [numSeqs][numQHeads]}) as a plan's step
     * with an {@code lse} array runs them: split even on a fused grid, the merge ({@link PagedDecodeKernels#mergeRows}
     * where {@code mergeRows}) writing them after each shard's output rows ({@link DecodeParams#LSE}).
     */
    static FloatArray attentionLse(DecodeWorkload w, DecodeGrid grid, KernelEmulator.Schedule schedule, FloatArray lse,
                                   boolean mergeRows) {
        return attention(w, grid, schedule, false, VSums.FP32, false, lse, mergeRows);
    }

    private static FloatArray attention(DecodeWorkload w, DecodeGrid grid, KernelEmulator.Schedule schedule, boolean packedHalfLoads,
                                        VSums vSums, boolean packedInputs, FloatArray lse, boolean mergeRows) {
        KvCache c = w.cache();
        int shards = c.config().poolShards();
        DecodeBatch b = w.batch();
        AttentionSpec whole = w.spec();
        ShardRows rows = new ShardRows(shards, b.numSeqs(), whole.numQHeads() * whole.headDim(), lse == null ? 0 : whole.numQHeads());
        rows.load(w.q(), b.numSeqs());
        for (int s = 0; s < shards; s++) {
            rows.out(s).init(Float.NaN);
            shard(c, s, shardSpec(whole, s, shards), sinks(whole, s, shards), b, rows.q(s), rows.out(s), grid, schedule, packedHalfLoads, vSums,
                    packedInputs, lse == null ? 0 : rows.lseAt(), mergeRows);
        }
        FloatArray out = w.poisonedOutput();
        rows.store(out, b.numSeqs());
        if (lse != null) {
            rows.storeLse(lse, b.numSeqs());
        }
        return out;
    }

    /**
     * Shard {@code s}'s spec as its plan runs it: {@code whole.shard(shards)} with the shard's query heads' ALiBi slopes
     * (which the plan writes into the shard's {@code partials}).
     */
    static AttentionSpec shardSpec(AttentionSpec whole, int s, int shards) {
        AttentionSpec spec = whole.shard(shards);
        if (!whole.hasAlibi() || shards == 1) {
            return spec;
        }
        int hq = spec.numQHeads();
        return spec.withAlibi(dev.pagedattn.attention.AlibiSlopes.of(
                java.util.Arrays.copyOfRange(whole.alibi().toArray(), s * hq, (s + 1) * hq)));
    }

    /**
     * A step's {@code partials} as a plan lays them out (poisoned with NaN): {@code rowElements} of partial rows (at least
     * one), then the sinks of a layer with sinks ({@code sinks} not null), the soft cap, the ALiBi slopes; their places
     * written into {@code params} as the plan writes them.
     */
    static FloatArray partials(AttentionSpec spec, FloatArray sinks, IntArray params, int rowElements) {
        int partialElements = Math.max(1, rowElements);
        int capSlot = partialElements + (sinks != null ? spec.numQHeads() : 0);
        int alibiBase = capSlot + (spec.hasSoftCap() ? 1 : 0);
        FloatArray partials = new FloatArray(alibiBase + (spec.hasAlibi() ? spec.numQHeads() : 0));
        partials.init(Float.NaN);
        putSlopes(spec, partials, params, DecodeParams.ALIBI, alibiBase); // as a plan with ALiBi: the slopes after the cap
        if (sinks != null) { // as a plan of a layer with sinks: the shard's sinks after the partial rows
            for (int h = 0; h < spec.numQHeads(); h++) {
                partials.set(partialElements + h, sinks.get(h));
            }
            params.set(DecodeParams.SINKS, 1);
            params.set(DecodeParams.SINK_BASE, partialElements);
        }
        if (spec.hasSoftCap()) { // as a plan of a soft-capped layer: the cap after the sinks
            partials.set(capSlot, spec.softCap());
            params.set(DecodeParams.SOFT_CAP, capSlot);
        }
        return partials;
    }

    /** With ALiBi: {@code spec}'s slopes into {@code partials} from {@code base} and the base into {@code params[slot]}, as a plan does. */
    static void putSlopes(AttentionSpec spec, FloatArray partials, IntArray params, int slot, int base) {
        for (int h = 0; spec.hasAlibi() && h < spec.numQHeads(); h++) {
            partials.set(base + h, spec.alibi().slope(h));
            params.set(slot, base);
        }
    }

    /**
     * Shard {@code s}'s query heads' sinks of layer 0 ({@code [numQHeads / shards]}), as a plan passes them to its merge, or
     * null where the layer has none.
     */
    static FloatArray sinks(AttentionSpec whole, int s, int shards) {
        if (!whole.hasSinks(0)) {
            return null;
        }
        int hq = whole.numQHeads() / shards;
        FloatArray sinks = new FloatArray(hq);
        for (int h = 0; h < hq; h++) {
            sinks.set(h, whole.sinks().sink(0, s * hq + h));
        }
        return sinks;
    }

    private static void shard(KvCache c, int shard, AttentionSpec spec, FloatArray sinks, DecodeBatch b, FloatArray q, FloatArray out,
                              DecodeGrid grid, KernelEmulator.Schedule schedule, boolean packedHalfLoads, VSums vSums,
                              boolean packedInputs, int lseAt, boolean mergeRows) {
        IntArray[] in = inputs(b, grid, DecodeParams.capacity(b.numSeqs(), grid.numGroups()), packedInputs, lseAt);
        IntArray tables = in[0];
        IntArray lens = in[1];
        IntArray params = in[2];
        FloatArray partials = partials(spec, sinks, params, spec.numQHeads() * (spec.headDim() + 2) * grid.partialRows(b.numSeqs()));
        int hkv = spec.numKvHeads();
        int g = spec.groupSize();
        int d = spec.headDim();
        int bs = c.config().blockSize();
        float scale = spec.scale();
        boolean quads = grid.kernel() == DecodeGrid.Kernel.QUADS;
        boolean warp = grid.kernel() == DecodeGrid.Kernel.WARP;
        boolean chunk = grid.kernel() == DecodeGrid.Kernel.CHUNK;
        boolean stream = grid.kernel() == DecodeGrid.Kernel.STREAM;
        boolean half = c.config().dtype() == KvDtype.FP16;
        boolean bf16 = c.config().dtype() == KvDtype.BF16;
        boolean eightBit = c.config().dtype().isQuantized();
        // as the plan builds it: the warp kernel's 8-bit twin takes the softmax scale in its K scales
        FloatArray dequant = eightBit ? PackedCodes.argument(c, 0, shard, warp ? scale : 1f) : null;
        if (vSums == VSums.FP16 && !(stream && half)) {
            throw new IllegalArgumentException("fp16 V sums are the fp16 stream kernel's, not " + grid.kernel() + " " + c.config().dtype());
        }
        if (stream && !half && !eightBit && !bf16) {
            throw new IllegalArgumentException("the stream kernel reads fp16, bf16 and 8-bit pools, not " + c.config().dtype());
        }
        if (bf16 && !stream) {
            throw new IllegalArgumentException("bf16 pools have the stream kernel only, not " + grid.kernel());
        }
        if (eightBit && !warp && !quads && !stream) {
            throw new IllegalArgumentException("8-bit pools have the stream, warp and quads kernels only, not " + grid.kernel());
        }
        KvPool kp = c.keys(0, shard);
        KvPool vp = c.values(0, shard);
        KernelEmulator.launch(grid.attentionGlobalSize(), grid.localSize(), schedule, ctx -> {
            KvDtype dtype = c.config().dtype();
            if (bf16) {
                StreamDecodeKernels.bf16Body(d, g).apply(ctx, kp.wordArray(), vp.wordArray(), q, tables, lens, params, out, partials,
                        hkv, g, d, bs, scale);
            } else if (eightBit && stream) {
                StreamDecodeKernels.eightBitBody(dtype.name(), d, g).apply(ctx, kp.wordArray(), vp.wordArray(),
                        dequant, q, tables, lens, params, out, partials, hkv, g, d, bs, scale);
            } else if (eightBit && warp) {
                WarpQuadDecodeKernels.attentionQ8(ctx, kp.wordArray(), vp.wordArray(), dequant, q, tables, lens,
                        params, out, partials, hkv, g, d, bs, spec.softCap());
            } else if (eightBit) {
                HeadQuadDecodeKernels.attentionQ8(ctx, kp.wordArray(), vp.wordArray(), dequant, q, tables, lens,
                        params, out, partials, hkv, g, d, bs, scale);
            } else if (stream) {
                StreamDecodeKernels.f16Body(d, g, vSums == VSums.FP16).apply(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale);
            } else if (chunk && half && packedHalfLoads) {
                ChunkDecodeKernels.attentionF16x2(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale);
            } else if (chunk && half) {
                ChunkDecodeKernels.attentionF16(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale);
            } else if (chunk) {
                ChunkDecodeKernels.attentionF32(ctx, kp.floatArray(), vp.floatArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale);
            } else if (warp && half) {
                WarpQuadDecodeKernels.attentionF16(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale, spec.softCap());
            } else if (warp) {
                WarpQuadDecodeKernels.attentionF32(ctx, kp.floatArray(), vp.floatArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale, spec.softCap());
            } else if (quads && half) {
                HeadQuadDecodeKernels.attentionF16(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale);
            } else if (quads) {
                HeadQuadDecodeKernels.attentionF32(ctx, kp.floatArray(), vp.floatArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale);
            } else if (half) {
                HeadPairDecodeKernels.attentionF16(ctx, kp.halfArray(), vp.halfArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale, spec.softCap());
            } else {
                HeadPairDecodeKernels.attentionF32(ctx, kp.floatArray(), vp.floatArray(), q, tables, lens, params,
                        out, partials, hkv, g, d, bs, scale, spec.softCap());
            }
        });
        int n = b.numSeqs() * spec.numQHeads() * d * grid.mergeSlices();
        // the merge is grid-stride: one work-item per (output, slice) in one schedule, a single group in the other
        int global = schedule == KernelEmulator.Schedule.FORWARD ? (n + MERGE_LOCAL - 1) / MERGE_LOCAL * MERGE_LOCAL : MERGE_LOCAL;
        KernelEmulator.launch(global, MERGE_LOCAL, schedule, mergeRows
                ? ctx -> PagedDecodeKernels.mergeRows(ctx, lens, params, partials, out, spec.numQHeads(), d)
                : ctx -> PagedDecodeKernels.mergePartitions(ctx, lens, params, partials, out, spec.numQHeads(), d));
    }

    /**
     * A latent cache's step ({@link LatentDecodeKernels}, then the merge at the value width) on {@code grid}, as a plan runs
     * it: outputs {@code valueDim} wide, and with {@code lse} (not null) split even on a fused grid, the merge writing the
     * log-sum-exps after the output rows. Sinks, soft cap and ALiBi where the workload's spec has them. The forward schedule
     * merges by {@link PagedDecodeKernels#mergePartitions}, the reverse by {@link PagedDecodeKernels#mergeRows}.
     */
    static FloatArray latent(DecodeWorkload w, DecodeGrid grid, KernelEmulator.Schedule schedule, FloatArray lse) {
        KvCache c = w.cache();
        DecodeBatch b = w.batch();
        AttentionSpec spec = w.spec();
        int hq = spec.numQHeads();
        int dv = spec.valueDim();
        int rows = b.numSeqs() * hq * dv;
        int lseAt = lse == null ? 0 : rows;
        IntArray[] in = inputs(b, grid, DecodeParams.capacity(b.numSeqs(), grid.numGroups()), false, lseAt);
        IntArray tables = in[0];
        IntArray lens = in[1];
        IntArray params = in[2];
        FloatArray out = new FloatArray(rows + (lse == null ? 0 : b.numSeqs() * hq));
        out.init(Float.NaN);
        FloatArray partials = partials(spec, sinks(spec, 0, 1), params, hq * (dv + 2) * grid.partialRows(b.numSeqs()));
        KvPool pool = c.keys(0);
        int d = spec.headDim();
        int bs = c.config().blockSize();
        FloatArray q = w.q();
        FloatArray dequant = c.config().dtype().isQuantized() ? PackedCodes.argument(c, 0, 1f) : null;
        KernelEmulator.launch(grid.attentionGlobalSize(), grid.localSize(), schedule, ctx -> {
            if (dequant != null) {
                LatentDecodeKernels.latentQ8(ctx, pool.wordArray(), dequant, q, tables, lens, params, out, partials, hq, d, dv, bs,
                        spec.scale());
            } else if (c.config().dtype() == KvDtype.FP16) {
                LatentDecodeKernels.latentF16(ctx, pool.halfArray(), q, tables, lens, params, out, partials, hq, d, dv, bs, spec.scale());
            } else {
                LatentDecodeKernels.latentF32(ctx, pool.floatArray(), q, tables, lens, params, out, partials, hq, d, dv, bs, spec.scale());
            }
        });
        int n = b.numSeqs() * hq * dv * grid.mergeSlices();
        int global = schedule == KernelEmulator.Schedule.FORWARD ? (n + MERGE_LOCAL - 1) / MERGE_LOCAL * MERGE_LOCAL : MERGE_LOCAL;
        // both merges at the value width: the forward schedule runs mergePartitions, the reverse mergeRows (CUDA's)
        KernelEmulator.launch(global, MERGE_LOCAL, schedule, schedule == KernelEmulator.Schedule.FORWARD
                ? ctx -> PagedDecodeKernels.mergePartitions(ctx, lens, params, partials, out, hq, dv)
                : ctx -> PagedDecodeKernels.mergeRows(ctx, lens, params, partials, out, hq, dv));
        FloatArray result = w.poisonedOutput();
        for (int i = 0; i < rows; i++) {
            result.set(i, out.get(i));
        }
        for (int i = 0; lse != null && i < b.numSeqs() * hq; i++) {
            lse.set(i, out.get(rows + i));
        }
        return result;
    }

    /**
     * The kernels' {@code blockTables}, {@code contextLens} and {@code params} for batch {@code b}, params filled for
     * {@code grid}: three arrays, or (packed) one array three times, its grid slots then the lengths then the tables.
     */
    static IntArray[] inputs(DecodeBatch b, DecodeGrid grid, int paramSlots, boolean packed) {
        return inputs(b, grid, paramSlots, packed, 0);
    }

    /** {@link #inputs} for a step that writes log-sum-exps from {@code lseAt} of the merge's output (0: none). */
    static IntArray[] inputs(DecodeBatch b, DecodeGrid grid, int paramSlots, boolean packed, int lseAt) {
        int[] lengths = b.contextLens();
        DecodeGrid.Tables t = DecodeGrid.tables(b);  // a windowed batch's rows from their window's first block, as a plan sends them
        int[] blockTables = t.flat();
        IntArray params;
        IntArray tables;
        IntArray lens;
        if (packed) {
            DecodeParams.Packed layout = DecodeParams.Packed.after(paramSlots, lengths.length, blockTables.length, 0);
            params = new IntArray(layout.size());
            params.init(-7); // slots no one writes must not be read
            for (int i = 0; i < DecodeParams.SIZE; i++) {
                params.set(i, 0);
            }
            layout.writeStarts(params);
            for (int i = 0; i < lengths.length; i++) {
                params.set(layout.lens() + i, lengths[i]);
            }
            for (int i = 0; i < blockTables.length; i++) {
                params.set(layout.tables() + i, blockTables[i]);
            }
            tables = params;
            lens = params;
        } else {
            params = new IntArray(paramSlots);
            tables = IntArray.fromArray(blockTables);
            lens = IntArray.fromArray(lengths);
        }
        grid.writeParams(params, lengths, b.window(), b.numSeqs(), 0, t.width(), 0, false, lseAt);
        return new IntArray[] {tables, lens, params};
    }

    /** The @Parallel variant, run as the plain Java loop it is. */
    static FloatArray parallel(DecodeWorkload w) {
        return parallel(w, false);
    }

    /** The @Parallel variant, its tables and lengths inside params where {@code packedInputs} ({@link #inputs}). */
    static FloatArray parallel(DecodeWorkload w, boolean packedInputs) {
        KvCache c = w.cache();
        AttentionSpec spec = w.spec();
        DecodeBatch b = w.batch();
        IntArray[] in = inputs(b, DecodeGrid.plan(spec, b.numSeqs(), b.maxContextLen(), false), DecodeParams.SIZE, packedInputs);
        IntArray tables = in[0];
        IntArray lens = in[1];
        IntArray params = in[2];
        FloatArray out = w.poisonedOutput();
        if (c.config().dtype() == KvDtype.FP16) {
            ParallelDecodeKernels.decodeF16(c.keys(0).halfArray(), c.values(0).halfArray(), w.q(), tables, lens, params, out,
                    b.numSeqs(), spec.numKvHeads(), spec.groupSize(), spec.headDim(), c.config().blockSize(), spec.scale());
        } else {
            ParallelDecodeKernels.decodeF32(c.keys(0).floatArray(), c.values(0).floatArray(), w.q(), tables, lens, params, out,
                    b.numSeqs(), spec.numKvHeads(), spec.groupSize(), spec.headDim(), c.config().blockSize(), spec.scale());
        }
        return out;
    }
}
