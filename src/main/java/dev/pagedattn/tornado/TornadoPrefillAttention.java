package dev.pagedattn.tornado;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.DirtySlotJournal;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.NativeArrays;
import dev.pagedattn.kernels.DecodeParams;
import dev.pagedattn.kernels.PackedCodes;
import dev.pagedattn.kernels.PrefillKernels;
import dev.pagedattn.kernels.PrefillParams;
import dev.pagedattn.kernels.TensorPrefillKernels;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * Prefill attention on a TornadoVM device with the K/V pools resident there: a task graph of
 * {@code scatter} (the tokens written since the last step, from the cache's dirty-slot journal, into
 * the device pools), {@code attention} ({@link PrefillKernels}) and {@code merge}, and a second of
 * attention and merge alone for steps that write nothing ({@code -Dpagedattn.tornado.taskSets=false}: the
 * first only). The pools are uploaded on the first execution only; every step sends the queries, block
 * tables, lengths, query indptr and per-step params, and a step that writes the staged new tokens
 * ({@link #STAGING_SLOTS} per execution, staged on the row copier's threads once they are many).
 *
 * <p>Kernel: {@code -Dpagedattn.tornado.prefillKernel=auto|scalar|tensor} (default auto: the
 * tensor-core kernel for fp16 and 8-bit K/V at head dims up to 128 on the PTX and CUDA backends, the scalar one
 * elsewhere), resolved once against the device's backend ({@link PrefillGrid.Kernel#resolve}). On the
 * CUDA backend the fp16 tensor kernel stages K/V by asynchronous copies ({@code prefillF16Async}).
 *
 * <p>The backend reads the cache's dirty-slot journal through a reader of its own, so a decode backend (or another
 * prefill one) can mirror the same cache: each holds its own device copy of the pools and sends what changed since its
 * own last step; {@link #close()} closes the reader. Capacity (sequences, table columns, query rows, partials) is fixed by the first step, with
 * headroom, or by {@link #reserve}; a step past it rebuilds the plan, which uploads the pools again. Not thread-safe.
 */
public final class TornadoPrefillAttention implements PrefillAttention {
    static {
        PlanParts.defaults(); // TornadoVM properties the JVM's flags leave unset, before TornadoVM's runtime starts
    }

    /**
     * Register cap of the tensor kernel on the PTX backend ({@code CU_JIT_MAX_REGISTERS}, a per-plan
     * JIT flag that replaces tornado-config/ptx.args' process-wide flags for this plan); 0: none.
     * Default 168, three work-groups per SM: on an H200 1.29x / 0.98x / 1.07x as fast as a cap of 128 (four)
     * for 1 / 8 / 32 sequences of 512 new tokens over 8k (benchmarks/NOTES.md, r4); uncapped, NVRTC and the
     * driver give it 246-254 registers (two). The CUDA backend gets the same bound through tornado-config/nvrtc.
     */
    public static final int TENSOR_MAX_REGISTERS = Integer.getInteger("pagedattn.tornado.prefillMaxRegisters", 168);
    /**
     * Token slots staged per execution, {@code -Dpagedattn.tornado.prefillStagingSlots}; 0 (default): the plan's query
     * capacity rounded up to 16, at most {@link #MAX_STAGING_SLOTS}, since a prefill step's new tokens are its queries.
     * More dirty slots (prompts written ahead of their prefill, copy-on-write copies) take extra executions whose attention
     * is idle but which still send the plan's query rows and fetch its output rows (TornadoVM sends a graph's arrays
     * whole): at 32 sequences of 512 new tokens a 4096-slot stage took four executions and added 38 ms to a 68 ms step on
     * an H200 (benchmarks/NOTES.md, twenty-eighth session). The stage travels only with a step that writes, and is then
     * as large as the step's new tokens: 4 KB per token at Llama-3-8B's heads, a quarter of the token's query row.
     */
    public static final int STAGING_SLOTS = Integer.getInteger("pagedattn.tornado.prefillStagingSlots", 0);
    /** The most staged slots of the default ({@link #STAGING_SLOTS} 0): 256 MB of K and V at Llama-3-8B's heads. */
    static final int MAX_STAGING_SLOTS = 65536;
    /**
     * Time each step's kernels with TornadoVM's profiler ({@link #lastDeviceNanos}), {@code -Dpagedattn.tornado.prefillProfiler}
     * (default true; false: {@code lastDeviceNanos()} is -1).
     */
    public static final boolean PROFILER = TornadoDecodeAttention.parseSwitch("pagedattn.tornado.prefillProfiler",
            System.getProperty("pagedattn.tornado.prefillProfiler", "true"));
    private static final int LOCAL = PrefillGrid.LOCAL;

    private final KvCache cache;
    private final DirtySlotJournal.Reader journal; // the writes this backend's device pools have not seen yet
    private final KvCacheConfig config;
    private final AttentionSpec spec;
    private final AttentionSpec shardSpec; // what each KV-head shard's kernels see (spec for an unsharded layer)
    private final String device;
    private final Plan[] plans;          // [numLayers]: each layer's pools bound by its own plan, made on first use
    private final PrefillGrid.Kernel requestedKernel;
    private PrefillGrid.Kernel kernel;   // resolved against the backend on first use
    private long lastDeviceNanos = -1;
    private final RowCopier copier = new RowCopier(RowCopier.THREADS); // the steps' query and output rows
    private boolean closed;
    private int reservedSeqs;            // reserve(): plans hold at least this many sequences
    private int reservedColumns;         // of at least this many block-table columns each
    private int reservedQueries;         // and this many query rows
    private int reservedTokens;          // contexts of up to this many tokens (for the partials' bound)
    private long reservedPartials = -1;  // the partials' bound for the reservation (-1: not computed yet)
    private int planBuilds;

    public TornadoPrefillAttention(KvCache cache, AttentionSpec spec, String device) {
        spec.requireMatches(cache.config());
        if (device != null && !device.matches("\\d+:\\d+")) {
            throw new IllegalArgumentException("device=" + device + " is not B:D (backend index:device index)");
        }
        if (STAGING_SLOTS != 0 && STAGING_SLOTS < 16) {
            throw new IllegalArgumentException("pagedattn.tornado.prefillStagingSlots=" + STAGING_SLOTS + " must be 0 (auto) or >= 16");
        }
        this.cache = cache;
        this.config = cache.config();
        this.spec = spec;
        this.shardSpec = spec.shard(config.poolShards());
        this.device = device;
        this.plans = new Plan[config.numLayers()];
        this.requestedKernel = PrefillGrid.Kernel.parse(System.getProperty("pagedattn.tornado.prefillKernel", "auto"));
        this.journal = cache.dirtySlots().reader(); // this backend's own record of what its plans still have to send
    }

    /** The attention kernel the plans run (resolved against the device's backend on first call). */
    public PrefillGrid.Kernel kernel() {
        if (kernel == null) {
            kernel = PrefillGrid.Kernel.resolve(requestedKernel, spec, config.dtype(), TornadoDecodeAttention.backendOf(device));
        }
        return kernel;
    }

    @Override
    public String name() {
        return "tornado-prefill";
    }

    @Override
    public long lastDeviceNanos() {
        return lastDeviceNanos;
    }

    /**
     * Sizes every plan built from now on for batches of up to {@code maxSeqs} sequences, {@code maxQueryTokens} query
     * tokens and contexts of {@code maxTokensPerSeq}: their tables, query rows and the most partials the grid rule gives
     * such a batch ({@link PrefillGrid#maxBufferElements}), so that none of them rebuilds a plan.
     */
    @Override
    public void reserve(int maxSeqs, int maxQueryTokens, int maxTokensPerSeq) {
        PrefillAttention.requireReservation(config, maxSeqs, maxQueryTokens, maxTokensPerSeq);
        int columns = PlanCapacity.reservedColumns(maxSeqs, maxTokensPerSeq, config.blockSize());
        reservedSeqs = Math.max(reservedSeqs, maxSeqs);
        reservedColumns = Math.max(reservedColumns, columns);
        reservedQueries = Math.max(reservedQueries, maxQueryTokens);
        reservedTokens = Math.max(reservedTokens, maxTokensPerSeq);
        reservedPartials = -1;
    }

    /** Device plans built so far, all layers together: one per layer, plus one for each batch a plan could not hold. */
    public int planBuilds() {
        return planBuilds;
    }

    /** The partials a reserved plan holds: the grid rule's most for the reservation, within one device array. */
    private long reservedPartials() {
        if (reservedPartials < 0) {
            reservedPartials = reservedQueries == 0 ? 0 : Math.min(Integer.MAX_VALUE - 64L,
                    PrefillGrid.maxBufferElements(shardSpec, kernel(), reservedSeqs, reservedQueries, reservedTokens));
        }
        return reservedPartials;
    }

    @Override
    public void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out) {
        requireOpen();
        PrefillAttention.requireBatch(config, batch, layer);
        Plan current = plans[layer];
        long n = (long) batch.totalQueries() * spec.numQHeads() * spec.headDim();
        ShardRows.requireCallRows(current == null ? null : current.rows, q, out, n, "totalQueries");
        PrefillGrid grid = PrefillGrid.plan(shardSpec, batch, kernel());
        Plan plan = planFor(batch, layer, grid);
        if (plan != current) {
            ShardRows.requireHeld(q, out, n);
        }
        plan.step(batch, grid, q, out);
    }

    /**
     * The arrays the layer's plan sends and fetches, so that {@code prefill} given them copies nothing (a layer split into
     * KV-head shards: host arrays that it still copies from and to). Each holds the plan's capacity of query rows; take
     * them again when the batch grows past it. Builds the layer's plan if there is none yet.
     */
    @Override
    public StepRows stepRows(PrefillBatch batch, int layer) {
        requireOpen();
        PrefillAttention.requireBatch(config, batch, layer);
        return planFor(batch, layer, PrefillGrid.plan(shardSpec, batch, kernel())).rows.stepRows();
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("prefill after close(): the device plans are released; create a new backend");
        }
    }

    /** The layer's plan, built or rebuilt so that it holds {@code batch} on {@code grid}. */
    private Plan planFor(PrefillBatch batch, int layer, PrefillGrid grid) {
        long partials = grid.bufferElements(shardSpec, batch.totalQueries());
        Plan plan = plans[layer];
        int n = batch.numSeqs();
        int width = batch.kv().maxBlocksPerSeq();
        if (partials > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("partials=" + partials + " elements do not fit one device array");
        }
        int totalQueries = batch.totalQueries();
        long partialBound = reservedPartials();
        if (plan == null || !PlanCapacity.holds(plan.maxSeqs, plan.tableEntries, n, width, reservedSeqs, reservedColumns)
                || Math.max(totalQueries, reservedQueries) > plan.maxQueries || Math.max(partials, partialBound) > plan.partialElements) {
            // with headroom (PlanCapacity) unless the reservation covers the batch: chunked prefill brings other lengths every call
            int seqs = PlanCapacity.seqs(n, reservedSeqs, plan == null ? 0 : plan.maxSeqs);
            int entries = PlanCapacity.tableEntries(n, width, seqs, reservedColumns, plan == null ? 0 : plan.tableEntries);
            int queries = Math.max(totalQueries <= reservedQueries ? reservedQueries : PlanCapacity.nextPowerOfTwo(totalQueries),
                    plan == null ? 0 : plan.maxQueries);
            long partialCap = partials <= partialBound ? Math.max(partialBound, plan == null ? 0 : plan.partialElements)
                    : PlanCapacity.withHeadroom(Math.max(1, partials), 0.5, plan == null ? 0 : plan.partialElements, Integer.MAX_VALUE);
            partialCap = Math.max(1, partialCap);
            if (plan != null) {
                plan.close();
                plans[layer] = null;
            }
            journal.drain(layer); // the new plan uploads the layer's whole pools on its first execution
            plan = plans[layer] = new Plan(layer, seqs, entries, queries, (int) partialCap);
            planBuilds++;
        }
        return plan;
    }

    @Override
    public void close() {
        closed = true;
        journal.close();
        copier.close();
        for (int l = 0; l < plans.length; l++) {
            if (plans[l] != null) {
                plans[l].close();
                plans[l] = null;
            }
        }
    }

    /** Device buffers and the task graph for one capacity: scatter, attention and merge per KV-head shard of the layer. */
    private final class Plan implements AutoCloseable {
        final int layer;
        final int maxSeqs;
        final int tableEntries;          // block-table entries: any batch of n x width <= tableEntries fits (PlanCapacity)
        final int maxQueries;
        final int partialElements;       // of each shard's partials (and tensor-kernel scratch)
        final ShardRows rows;  // q and out, [shards] of [maxQueries][numQHeads / shards][headDim]
        final IntArray tables;           // [numSeqs][the call's width], within tableEntries
        final IntArray lens;             // [maxSeqs]
        final IntArray indptr;           // [maxSeqs + 1]
        final IntArray qSeq;             // [maxQueries]
        final IntArray params;           // [PrefillParams.SIZE]
        final IntArray scatterParams;    // [DecodeParams.SIZE], only NUM_NEW_SLOTS is read
        final int stagingSlots;
        final TornadoNativeArray[] stageK; // [shards] of [stagingSlots][headsPerShard][headDim]
        final TornadoNativeArray[] stageV;
        final IntArray slotOffsets;      // [stagingSlots], the same in every shard
        final WorkerGrid1D[] attentionGrids; // [shards]
        final WorkerGrid1D[] mergeGrids;     // [shards]
        final WorkerGrid1D[] scatterGrids;   // [shards]
        final FloatArray[] dequants;     // [shards], 8-bit pools only
        final TornadoExecutionPlan executionPlan;
        final boolean taskSets;          // a second graph without the stage and scatter, for steps that write nothing
        boolean uploaded;                // the first graph has run (it uploads the pools)

        Plan(int layer, int maxSeqs, int tableEntries, int maxQueries, int partialElements) {
            this.layer = layer;
            this.maxSeqs = maxSeqs;
            this.tableEntries = tableEntries;
            this.maxQueries = maxQueries;
            this.partialElements = partialElements;
            int shards = config.poolShards();
            int hq = shardSpec.numQHeads();
            int d = shardSpec.headDim();
            int width = shardSpec.numKvHeads() * d;
            rows = new ShardRows(shards, maxQueries, spec.numQHeads() * d, copier);
            tables = new IntArray(tableEntries);
            lens = new IntArray(maxSeqs);
            lens.init(1);
            indptr = new IntArray(maxSeqs + 1);
            qSeq = new IntArray(maxQueries);
            params = new IntArray(PrefillParams.SIZE);
            scatterParams = new IntArray(DecodeParams.SIZE);
            stagingSlots = stagingSlots(maxQueries);
            stageK = new TornadoNativeArray[shards];
            stageV = new TornadoNativeArray[shards];
            slotOffsets = new IntArray(stagingSlots);
            attentionGrids = new WorkerGrid1D[shards];
            mergeGrids = new WorkerGrid1D[shards];
            scatterGrids = new WorkerGrid1D[shards];
            dequants = new FloatArray[shards];
            String name = graphName(layer);
            // graph 0: every task (it uploads the pools and partials and keeps them on the device); graph 1: attention and
            // merge only, on graph 0's buffers, for steps that stage nothing (no stage sent, no scatter launched)
            taskSets = TornadoDecodeAttention.TASK_SETS;
            TaskGraph[] graphs = new TaskGraph[taskSets ? 2 : 1];
            for (int i = 0; i < graphs.length; i++) {
                graphs[i] = new TaskGraph(i == 0 ? name : name + "A")
                        .transferToDevice(DataTransferMode.EVERY_EXECUTION, tables, lens, indptr, qSeq, params);
            }
            graphs[0].transferToDevice(DataTransferMode.EVERY_EXECUTION, scatterParams, slotOffsets);
            GridScheduler grids = new GridScheduler();
            for (int s = 0; s < shards; s++) {
                stageK[s] = NativeArrays.of(config.dtype(), stagingSlots * width);
                stageV[s] = NativeArrays.of(config.dtype(), stagingSlots * width);
                FloatArray partials = new FloatArray(partialElements);
                attentionGrids[s] = PlanParts.grid(LOCAL, LOCAL); // sized per step
                mergeGrids[s] = PlanParts.grid(LOCAL, LOCAL); // sized per step
                scatterGrids[s] = PlanParts.grid(PlanParts.HELPER_LOCAL, PlanParts.HELPER_LOCAL); // sized per step
                if (config.dtype().isQuantized()) { // one argument for both graphs; the softmax scale rides with the K scales
                    dequants[s] = PackedCodes.argument(cache, layer, s, shardSpec.scale());
                }
                for (int i = 0; i < graphs.length; i++) {
                    addShard(graphs[i], i == 0 ? null : name, s, partials);
                    String g = graphs[i].getTaskGraphName();
                    if (i == 0) {
                        grids.addWorkerGrid(g + "." + PlanParts.taskName("scatter", s), scatterGrids[s]);
                    }
                    grids.addWorkerGrid(g + "." + PlanParts.taskName("merge", s), mergeGrids[s]);
                    grids.addWorkerGrid(g + "." + PlanParts.taskName("attention", s), attentionGrids[s]);
                }
            }
            ImmutableTaskGraph[] snapshots = new ImmutableTaskGraph[graphs.length];
            for (int i = 0; i < graphs.length; i++) {
                graphs[i].transferToHost(DataTransferMode.EVERY_EXECUTION, (Object[]) rows.outs());
                snapshots[i] = graphs[i].snapshot();
            }
            executionPlan = new TornadoExecutionPlan(snapshots).withGridScheduler(grids);
            if (PROFILER) {
                executionPlan.withProfiler(Boolean.getBoolean("pagedattn.tornado.profileConsole") ? ProfilerMode.CONSOLE : ProfilerMode.SILENT);
            }
            if (device != null) {
                executionPlan.withDevice(PlanParts.deviceOf(device));
            }
            if (kernel == PrefillGrid.Kernel.TENSOR) {
                executionPlan.withCompilerFlags(TornadoVMBackendType.PTX, "CU_JIT_OPTIMIZATION_LEVEL 4"
                        + (TENSOR_MAX_REGISTERS > 0 ? " CU_JIT_MAX_REGISTERS " + TENSOR_MAX_REGISTERS : ""));
            }
            if (taskSets && TornadoDecodeAttention.PRE_COMPILE) {
                executionPlan.withPreCompilation(); // both graphs now, not the second at the first step that writes nothing
            }
        }

        /**
         * Shard {@code s}'s tasks in {@code graph}: with {@code owner} null the scatter, attention and merge, uploading the
         * pools and partials once and keeping them on the device; else attention and merge on the buffers of the graph
         * named {@code owner}.
         */
        private void addShard(TaskGraph graph, String owner, int s, FloatArray partials) {
            int hq = shardSpec.numQHeads();
            int d = shardSpec.headDim();
            int hkv = shardSpec.numKvHeads();
            int g = shardSpec.groupSize();
            int bs = config.blockSize();
            float scale = shardSpec.scale();
            FloatArray q = rows.q(s);
            FloatArray out = rows.out(s);
            KernelContext ctx = new KernelContext();
            TornadoNativeArray kPool = cache.keys(layer, s).array();
            TornadoNativeArray vPool = cache.values(layer, s).array();
            String attention = PlanParts.taskName("attention", s);
            FloatArray dequant = dequants[s];
            if (owner == null) {
                graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, kPool, vPool, partials)
                        .transferToDevice(DataTransferMode.EVERY_EXECUTION, q, stageK[s], stageV[s]);
                PlanParts.addScatter(graph, PlanParts.taskName("scatter", s), ctx, kPool, vPool, stageK[s], stageV[s], slotOffsets,
                        scatterParams, hkv, d, bs);
                if (dequant != null) {
                    graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, dequant);
                }
            } else {
                graph.consumeFromDevice(owner, kPool, vPool, partials).transferToDevice(DataTransferMode.EVERY_EXECUTION, q);
                if (dequant != null) {
                    graph.consumeFromDevice(owner, dequant);
                }
            }
            if (config.dtype().isQuantized()) { // 8-bit codes, four per word
                IntArray k = (IntArray) kPool;
                IntArray v = (IntArray) vPool;
                if (kernel == PrefillGrid.Kernel.TENSOR) {
                    graph.task(attention, TensorPrefillKernels::prefillQ8Tensor, ctx, k, v, dequant, q, tables, lens, indptr, params, out,
                            partials, hkv, g, d, bs);
                } else {
                    graph.task(attention, PrefillKernels::prefillQ8, ctx, k, v, dequant, q, tables, lens, indptr, params, out,
                            partials, hkv, g, d, bs);
                }
            } else if (config.dtype() == KvDtype.FP16) {
                HalfFloatArray k = (HalfFloatArray) kPool;
                HalfFloatArray v = (HalfFloatArray) vPool;
                if (kernel == PrefillGrid.Kernel.TENSOR && TornadoDecodeAttention.backendOf(device).asyncCopies()) {
                    graph.task(attention, TensorPrefillKernels::prefillF16Async, ctx, k, v, q, tables, lens, indptr, params, out,
                            partials, hkv, g, d, bs, scale);
                } else if (kernel == PrefillGrid.Kernel.TENSOR) {
                    graph.task(attention, TensorPrefillKernels::prefillF16, ctx, k, v, q, tables, lens, indptr, params, out,
                            partials, hkv, g, d, bs, scale);
                } else {
                    graph.task(attention, PrefillKernels::prefillF16, ctx, k, v, q, tables, lens, indptr, params, out, partials,
                            hkv, g, d, bs, scale);
                }
            } else {
                FloatArray k = (FloatArray) kPool;
                FloatArray v = (FloatArray) vPool;
                graph.task(attention, PrefillKernels::prefillF32, ctx, k, v, q, tables, lens, indptr, params, out, partials,
                        hkv, g, d, bs, scale);
            }
            graph.task(PlanParts.taskName("merge", s), PrefillKernels::mergePartitions, ctx, lens, qSeq, params, partials, out, hq, d);
            if (owner == null) {
                graph.persistOnDevice(kPool, vPool, partials);
                if (dequant != null) {
                    graph.persistOnDevice(dequant);
                }
            }
        }

        void step(PrefillBatch batch, PrefillGrid grid, FloatArray userQ, FloatArray userOut) {
            int n = batch.numSeqs();
            int queries = batch.totalQueries();
            rows.load(userQ, queries);
            int width = batch.kv().maxBlocksPerSeq();
            // the batch's own row width, which the kernels read from params
            MemorySegment.copy(batch.kv().blockTables(), 0, tables.getSegment(), ValueLayout.JAVA_INT, 0, n * width);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < batch.qLen(i); j++) {
                    qSeq.set(batch.qStart(i) + j, i);
                }
            }
            MemorySegment.copy(batch.kv().contextLens(), 0, lens.getSegment(), ValueLayout.JAVA_INT, 0, n);
            MemorySegment.copy(batch.qIndptr(), 0, indptr.getSegment(), ValueLayout.JAVA_INT, 0, n + 1);
            int layerBase = 0; // the plan binds this layer's own pools
            int[] dirty = journal.drain(layer);
            int done = 0;
            long nanos;
            do {
                int staged = Math.min(stagingSlots, dirty.length - done);
                for (int s = 0; s < stageK.length; s++) {
                    PlanParts.stage(cache, layer, s, dirty, done, staged, slotOffsets, stageK[s], stageV[s], copier);
                }
                done += staged;
                boolean last = done == dirty.length;
                scatterParams.set(DecodeParams.NUM_NEW_SLOTS, staged);
                grid.writeParams(params, shardSpec, batch, layerBase, width, !last);
                for (WorkerGrid1D g : attentionGrids) {
                    g.setGlobalWork(last ? grid.globalSize() : LOCAL, 1, 1);
                    g.setLocalWork(LOCAL, 1, 1);
                }
                int scatter = scatterGlobal(staged, shardSpec.numKvHeads() * shardSpec.headDim());
                for (WorkerGrid1D g : scatterGrids) {
                    g.setGlobalWork(scatter, 1, 1);
                    g.setLocalWork(PlanParts.HELPER_LOCAL, 1, 1);
                }
                int merge = last ? mergeGlobal(grid, queries * shardSpec.numQHeads() * shardSpec.headDim()) : LOCAL;
                for (WorkerGrid1D g : mergeGrids) {
                    g.setGlobalWork(merge, 1, 1);
                    g.setLocalWork(LOCAL, 1, 1);
                }
                if (taskSets) {
                    executionPlan.withGraph(uploaded && staged == 0 ? 1 : 0);
                }
                TornadoExecutionResult result = PlanParts.execute(executionPlan, stageK.length);
                uploaded = true;
                nanos = PROFILER ? result.getProfilerResult().getDeviceKernelTime() : -1;
            } while (done < dirty.length);
            lastDeviceNanos = nanos;
            rows.store(userOut, queries);
        }


        @Override
        public void close() {
            try {
                executionPlan.withAllGraphs(); // withGraph(i) left only graph i listed: free the first graph's pools too
                executionPlan.freeDeviceMemory();
                executionPlan.close();
            } catch (Exception e) {
                throw new IllegalStateException("could not release the TornadoVM prefill plan", e);
            }
        }
    }


    /**
     * Most work-groups of a step's merge and scatter: one element per work-item up to 8.4M elements (512 query tokens x
     * 32 heads x 128 dims is 2.1M outputs). Both are grid-stride; capped at 264 work-groups, as decode's helpers are
     * (decode's steps are small and its graphs replay fixed launches), a work-item of a one-sequence 512-token step's merge
     * walked 62 elements one after another, each behind dependent loads (the context length, every partition's max):
     * 170 us on an H200 against 2.0 ms of attention; with a work-item per element the step's kernels took 130 us less
     * (benchmarks/NOTES.md, p5).
     */
    static final int HELPER_GROUPS = 65536;

    /**
     * The scatter's global size for {@code staged} slots of {@code width} elements each: one work-item per element, at most
     * {@link #HELPER_GROUPS} work-groups (the stage of a step of thousands of new tokens holds millions), one work-group for none.
     */
    static int scatterGlobal(int staged, int width) {
        long elements = (long) staged * width;
        return (int) Math.max(1, Math.min((elements + PlanParts.HELPER_LOCAL - 1) / PlanParts.HELPER_LOCAL, HELPER_GROUPS))
                * PlanParts.HELPER_LOCAL;
    }

    /** The merge's global size for a step of {@code outputs} output elements on {@code grid}: one work-group if it is not split. */
    static int mergeGlobal(PrefillGrid grid, long outputs) {
        if (grid.maxPartitions() == 1) {
            return LOCAL; // nothing to merge: the kernel returns at once
        }
        return (int) Math.max(1, Math.min((outputs + LOCAL - 1) / LOCAL, HELPER_GROUPS)) * LOCAL;
    }

    /** The slots a plan of {@code maxQueries} query rows stages per execution ({@link #STAGING_SLOTS}). */
    static int stagingSlots(int maxQueries) {
        return STAGING_SLOTS > 0 ? STAGING_SLOTS : Math.min(MAX_STAGING_SLOTS, (Math.max(1, maxQueries) + 15) / 16 * 16);
    }

    /** Task graph names must differ between the plans of one process: one per layer. */
    private static String graphName(int layer) {
        return layer == 0 ? "prefill" : "prefill" + layer;
    }
}
