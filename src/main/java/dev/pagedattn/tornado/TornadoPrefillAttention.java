package dev.pagedattn.tornado;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeAttention;
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
 * <p>Kernel: {@code -Dpagedattn.tornado.prefillKernel=auto|scalar|tensor|latent} (default auto: the
 * tensor-core kernel for fp16 and 8-bit K/V at head dims up to 128 on the PTX and CUDA backends, the scalar one
 * elsewhere), resolved once against the device's backend ({@link PrefillGrid.Kernel#resolve}). On the
 * CUDA backend the fp16 tensor kernel stages K/V by asynchronous copies ({@code prefillF16Async}). A latent (MLA) cache
 * takes kernel latent only: its prefill is the decode of the batch's query rows ({@link PrefillBatch#decodeRows}) by
 * the host decode backend, or by a decode backend of its own, with no plan here.
 *
 * <p>Made with {@code new}, the backend reads the cache's dirty-slot journal through a reader of its own, so a decode
 * backend (or another prefill one) can mirror the same cache: each holds its own device copy of the pools and sends what
 * changed since its own last step; {@link #close()} closes the reader. Made by {@link TornadoDecodeAttention#prefill()},
 * it shares that decode backend's device pools instead: its task graphs join each layer's decode plan (one TornadoVM
 * execution plan holds both, since TornadoVM 5.2 shares device buffers only between the graphs of one plan), it reads the
 * decode backend's journal, and a chunk it writes is on the device for the next decode step. Capacity (sequences, table
 * columns, query rows, partials) is fixed by the first step, with headroom, or by {@link #reserve}; a step past it
 * rebuilds the plan (paired: the decode backend's plan of the layer), which uploads the pools again. Not thread-safe.
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
    private final TornadoDecodeAttention host; // whose device pools and plans this backend shares, or null: its own
    private final DirtySlotJournal.Reader journal; // the writes this backend's device pools have not seen yet (null: rowDecoder's)
    private final TornadoDecodeAttention rowDecoder; // a latent cache's: decodes the batch's query rows (perQueryRows), or null
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
        this(cache, spec, device, null);
    }

    /** The prefill backend of {@code host}'s device pools ({@link TornadoDecodeAttention#prefill()}). */
    TornadoPrefillAttention(TornadoDecodeAttention host) {
        this(host.cache(), host.spec(), host.device(), host);
    }

    private TornadoPrefillAttention(KvCache cache, AttentionSpec spec, String device, TornadoDecodeAttention host) {
        spec.requireMatches(cache.config());
        PlanParts.requireOwnPool(cache);
        PlanParts.requireKernelShape(cache.config());
        if (device != null && !device.matches("\\d+:\\d+")) {
            throw new IllegalArgumentException("device=" + device + " is not B:D (backend index:device index)");
        }
        if (STAGING_SLOTS != 0 && STAGING_SLOTS < 16) {
            throw new IllegalArgumentException("pagedattn.tornado.prefillStagingSlots=" + STAGING_SLOTS + " must be 0 (auto) or >= 16");
        }
        this.cache = cache;
        this.host = host;
        this.config = cache.config();
        this.spec = spec;
        this.shardSpec = spec.shard(config.poolShards());
        this.device = device;
        this.plans = new Plan[config.numLayers()];
        this.requestedKernel = PrefillGrid.Kernel.parse(System.getProperty("pagedattn.tornado.prefillKernel", "auto"));
        if (config.isLatent()) {
            kernel = PrefillGrid.Kernel.resolve(requestedKernel, spec, config.dtype(), null, true); // LATENT, or refused now
            // a latent cache's prefill runs as the decode of its query rows, on the host's plans or on a decode backend of its own
            this.rowDecoder = host != null ? host : new TornadoDecodeAttention(cache, spec, device, "auto", DecodeGrid.Kernel.LATENT, false);
            this.journal = null;
        } else {
            this.rowDecoder = null;
            // this backend's own record of what its plans still have to send, or the host's for the pools they share
            this.journal = host == null ? cache.dirtySlots().reader() : host.journal();
        }
    }

    boolean isClosed() {
        return closed;
    }

    /** Whether this backend shares a decode backend's device pools ({@link TornadoDecodeAttention#prefill()}). */
    public boolean sharesPools() {
        return host != null;
    }

    /** The layer's plan while this backend is open: its arrays and task graphs, which a host's plan runs. */
    Plan part(int layer) {
        return closed ? null : plans[layer];
    }

    /** The attention kernel the plans run (resolved against the device's backend on first call). */
    public PrefillGrid.Kernel kernel() {
        if (kernel == null) {
            kernel = PrefillGrid.Kernel.resolve(requestedKernel, spec, config.dtype(), TornadoDecodeAttention.backendOf(device),
                    config.isLatent());
        }
        return kernel;
    }

    @Override
    public String name() {
        return "tornado-prefill";
    }

    @Override
    public long lastDeviceNanos() {
        return rowDecoder != null ? rowDecoder.lastDeviceNanos() : lastDeviceNanos;
    }

    /**
     * Sizes every plan built from now on for batches of up to {@code maxSeqs} sequences, {@code maxQueryTokens} query
     * tokens and contexts of {@code maxTokensPerSeq}: their tables, query rows and the most partials the grid rule gives
     * such a batch ({@link PrefillGrid#maxBufferElements}), so that none of them rebuilds a plan.
     */
    @Override
    public void reserve(int maxSeqs, int maxQueryTokens, int maxTokensPerSeq) {
        PrefillAttention.requireReservation(config, maxSeqs, maxQueryTokens, maxTokensPerSeq);
        if (rowDecoder != null) { // one decode row per query token
            rowDecoder.reserve(maxQueryTokens, maxTokensPerSeq);
            return;
        }
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
                    PrefillGrid.maxBufferElements(shardSpec, kernel(), reservedSeqs, reservedQueries, reservedTokens, spec.sinks().any()));
        }
        return reservedPartials;
    }

    @Override
    public void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out) {
        prefill(batch, layer, q, out, null);
    }

    /**
     * {@inheritDoc} Every row then goes through the merge (one partition or more), which writes the log-sum-exps after
     * the plan's output rows (one more small copy back).
     */
    @Override
    public void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        requireOpen();
        PrefillAttention.requireBatch(config, batch, layer);
        if (lse != null) {
            DecodeAttention.requireLse(spec, batch.totalQueries(), lse);
        }
        if (rowDecoder != null) {
            rowDecoder.decode(batch.decodeRows(), layer, q, out, lse); // the packed rows are the decode rows
            return;
        }
        Plan current = plans[layer];
        long n = (long) batch.totalQueries() * spec.numQHeads() * spec.headDim();
        ShardRows.requireCallRows(current == null ? null : current.rows, q, out, n, "totalQueries");
        PrefillGrid grid = gridFor(batch, layer, lse != null);
        Plan plan = planFor(batch, layer, grid);
        if (plan != current) {
            ShardRows.requireHeld(q, out, n);
        }
        plan.step(batch, grid, q, out, lse);
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
        if (rowDecoder != null) {
            return rowDecoder.stepRows(batch.decodeRows(), layer);
        }
        return planFor(batch, layer, gridFor(batch, layer, false)).rows.stepRows();
    }

    /**
     * The grid of {@code batch} in {@code layer}: every row merged where the layer has sinks (the merge adds them) or the
     * step writes log-sum-exps ({@code lse}: the merge writes them).
     */
    private PrefillGrid gridFor(PrefillBatch batch, int layer, boolean lse) {
        return PrefillGrid.plan(shardSpec, batch, kernel()).merged(spec.hasSinks(layer) || lse);
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
        long maskInts = PrefillGrid.maskInts(batch);
        if (PrefillParams.SIZE + maskInts > Integer.MAX_VALUE / 2) {
            throw new IllegalArgumentException("token-tree masks of " + maskInts + " ints do not fit the step's params array");
        }
        if (plan == null || !PlanCapacity.holds(plan.maxSeqs, plan.tableEntries, n, width, reservedSeqs, reservedColumns)
                || Math.max(totalQueries, reservedQueries) > plan.maxQueries || Math.max(partials, partialBound) > plan.partialElements
                || maskInts > plan.maskInts) {
            // with headroom (PlanCapacity) unless the reservation covers the batch: chunked prefill brings other lengths every call
            int seqs = PlanCapacity.seqs(n, reservedSeqs, plan == null ? 0 : plan.maxSeqs);
            int entries = PlanCapacity.tableEntries(n, width, seqs, reservedColumns, plan == null ? 0 : plan.tableEntries);
            int queries = Math.max(totalQueries <= reservedQueries ? reservedQueries : PlanCapacity.nextPowerOfTwo(totalQueries),
                    plan == null ? 0 : plan.maxQueries);
            long partialCap = partials <= partialBound ? Math.max(partialBound, plan == null ? 0 : plan.partialElements)
                    : PlanCapacity.withHeadroom(Math.max(1, partials), 0.5, plan == null ? 0 : plan.partialElements, Integer.MAX_VALUE);
            partialCap = Math.max(1, partialCap);
            // masks: a plan sized for the first masked batch's with room to double (the params array goes up every step)
            int masks = maskInts == 0 ? (plan == null ? 0 : plan.maskInts)
                    : Math.max(PlanCapacity.nextPowerOfTwo((int) maskInts), plan == null ? 0 : plan.maskInts);
            if (plan != null) {
                plan.close();
                plans[layer] = null;
            }
            if (host == null) { // (a host drains its journal when it rebuilds its plan for this one, below)
                journal.drain(layer); // the new plan uploads the layer's whole pools on its first execution
            }
            plan = plans[layer] = new Plan(layer, seqs, entries, queries, (int) partialCap, masks);
            planBuilds++;
        }
        if (host != null) {
            host.requirePrefillPart(layer, plan, batch.kv()); // the host's plan holds this plan's graphs (a rebuild uploads the pools again)
        }
        return plan;
    }

    @Override
    public void close() {
        closed = true;
        if (host == null) { // the host's reader (and a host row decoder) stay the host's
            if (rowDecoder != null) {
                rowDecoder.close();
            } else {
                journal.close();
            }
        }
        copier.close();
        for (int l = 0; l < plans.length; l++) {
            if (plans[l] != null) {
                plans[l].close();
                plans[l] = null;
            }
        }
    }

    /**
     * Device buffers and task graphs for one capacity: scatter, attention and merge per KV-head shard of the layer. On
     * its own the plan owns its TornadoVM execution plan and device pools; for a host ({@link TornadoDecodeAttention#prefill()})
     * it holds the arrays and grids, and the host's plan runs its graphs ({@link #graphs}) on the host's pools.
     */
    final class Plan implements AutoCloseable {
        final int layer;
        final int maxSeqs;
        final int tableEntries;          // block-table entries: any batch of n x width <= tableEntries fits (PlanCapacity)
        final int maxQueries;
        final int maskInts;              // params' room for token-tree masks after PrefillParams.SIZE
        final int partialElements;       // of each shard's partials (and tensor-kernel scratch)
        final ShardRows rows;  // q and out, [shards] of [maxQueries][numQHeads / shards][headDim]
        final IntArray tables;           // [numSeqs][the call's width], within tableEntries
        final IntArray lens;             // [maxSeqs]
        final IntArray indptr;           // [maxSeqs + 1]
        final IntArray qSeq;             // [maxQueries]
        final IntArray params;           // [PrefillParams.SIZE + maskInts]
        final IntArray scatterParams;    // [DecodeParams.SIZE], only NUM_NEW_SLOTS is read
        final int stagingSlots;
        final TornadoNativeArray[] stageK; // [shards] of [stagingSlots][headsPerShard][headDim]
        final TornadoNativeArray[] stageV;
        final IntArray slotOffsets;      // [stagingSlots], the same in every shard
        final WorkerGrid1D[] attentionGrids; // [shards]
        final WorkerGrid1D[] mergeGrids;     // [shards]
        final WorkerGrid1D[] scatterGrids;   // [shards]
        final FloatArray[] dequants;     // [shards], 8-bit pools only
        final FloatArray[] sinks;        // [shards] of [numQHeads / shards]: the merge's sinks (-inf without)
        final TornadoExecutionPlan executionPlan; // null when a host's plan runs the graphs
        final boolean taskSets;          // a second graph without the stage and scatter, for steps that write nothing
        boolean uploaded;                // the first graph has run (it uploads the pools)

        Plan(int layer, int maxSeqs, int tableEntries, int maxQueries, int partialElements, int maskInts) {
            this.layer = layer;
            this.maxSeqs = maxSeqs;
            this.tableEntries = tableEntries;
            this.maxQueries = maxQueries;
            this.maskInts = maskInts;
            this.partialElements = partialElements;
            int shards = config.poolShards();
            int d = shardSpec.headDim();
            int width = shardSpec.numKvHeads() * d;
            rows = new ShardRows(shards, maxQueries, spec.numQHeads() * d, spec.numQHeads(), copier);
            tables = new IntArray(tableEntries);
            lens = new IntArray(maxSeqs);
            lens.init(1);
            indptr = new IntArray(maxSeqs + 1);
            qSeq = new IntArray(maxQueries);
            params = new IntArray(PrefillParams.SIZE + maskInts);
            scatterParams = new IntArray(DecodeParams.SIZE);
            stagingSlots = stagingSlots(maxQueries);
            stageK = new TornadoNativeArray[shards];
            stageV = new TornadoNativeArray[shards];
            slotOffsets = new IntArray(stagingSlots);
            attentionGrids = new WorkerGrid1D[shards];
            mergeGrids = new WorkerGrid1D[shards];
            scatterGrids = new WorkerGrid1D[shards];
            dequants = new FloatArray[shards];
            sinks = PlanParts.sinks(spec, layer, shards);
            taskSets = TornadoDecodeAttention.TASK_SETS;
            for (int s = 0; s < shards; s++) {
                stageK[s] = NativeArrays.of(config.dtype(), stagingSlots * width);
                stageV[s] = NativeArrays.of(config.dtype(), stagingSlots * width);
                attentionGrids[s] = PlanParts.grid(LOCAL, LOCAL); // sized per step
                mergeGrids[s] = PlanParts.grid(LOCAL, LOCAL); // sized per step
                scatterGrids[s] = PlanParts.grid(PlanParts.HELPER_LOCAL, PlanParts.HELPER_LOCAL); // sized per step
                if (config.dtype().isQuantized()) { // one argument for both graphs; the softmax scale rides with the K scales
                    dequants[s] = PackedCodes.argument(cache, layer, s, shardSpec.scale());
                }
            }
            if (host != null) {
                executionPlan = null;
                return;
            }
            FloatArray[] partials = new FloatArray[shards];
            int capSlot = Math.max(1, partialElements); // a soft cap follows what the kernels write (slot 0 means none)
            int alibiBase = spec.hasSoftCap() ? capSlot + 1 : capSlot; // then the shard's query heads' ALiBi slopes
            int hq = spec.numQHeads() / shards;
            for (int s = 0; s < shards; s++) {
                partials[s] = new FloatArray(spec.hasAlibi() ? alibiBase + hq : spec.hasSoftCap() ? capSlot + 1 : partialElements);
                if (spec.hasSoftCap()) {
                    partials[s].set(capSlot, spec.softCap());
                }
                for (int h = 0; spec.hasAlibi() && h < hq; h++) {
                    partials[s].set(alibiBase + h, spec.alibi().slope(s * hq + h));
                }
            }
            if (spec.hasSoftCap()) {
                params.set(PrefillParams.SOFT_CAP, capSlot);
            }
            if (spec.hasAlibi()) {
                params.set(PrefillParams.ALIBI, alibiBase);
            }
            GridScheduler grids = new GridScheduler();
            TaskGraph[] graphs = graphs(graphName(layer), null, partials, null, grids);
            ImmutableTaskGraph[] snapshots = new ImmutableTaskGraph[graphs.length];
            for (int i = 0; i < graphs.length; i++) {
                snapshots[i] = graphs[i].snapshot();
            }
            executionPlan = new TornadoExecutionPlan(snapshots).withGridScheduler(grids);
            if (PROFILER) {
                executionPlan.withProfiler(Boolean.getBoolean("pagedattn.tornado.profileConsole") ? ProfilerMode.CONSOLE : ProfilerMode.SILENT);
            }
            if (device != null) {
                executionPlan.withDevice(PlanParts.deviceOf(device));
            }
            String flags = compilerFlags();
            if (flags != null) {
                executionPlan.withCompilerFlags(TornadoVMBackendType.PTX, flags);
            }
            if (taskSets && TornadoDecodeAttention.PRE_COMPILE) {
                executionPlan.withPreCompilation(); // both graphs now, not the second at the first step that writes nothing
            }
        }

        /** The PTX backend's JIT flags for these graphs (the tensor kernel's register cap), or null. */
        String compilerFlags() {
            return kernel == PrefillGrid.Kernel.TENSOR ? PlanParts.ptxJitFlags(TENSOR_MAX_REGISTERS) : null;
        }

        /**
         * The plan's task graphs, named from {@code name}, with their worker grids added to {@code grids}: the first with
         * every task, then (task sets) one of attention and merge for steps that write nothing. With {@code owner} null the
         * first graph uploads the pools and {@code partials} once and keeps them on the device for the second; else every
         * graph uses those of the graph named {@code owner} (a host's), which also owns {@code ownerDequant} (8-bit pools:
         * its graphs' tables, listed here so that every graph of the host's plan holds every buffer they share).
         */
        TaskGraph[] graphs(String name, String owner, FloatArray[] partials, FloatArray[] ownerDequant, GridScheduler grids) {
            TaskGraph[] graphs = new TaskGraph[taskSets ? 2 : 1];
            for (int i = 0; i < graphs.length; i++) {
                graphs[i] = new TaskGraph(i == 0 ? name : name + "A")
                        .transferToDevice(DataTransferMode.EVERY_EXECUTION, tables, lens, indptr, qSeq, params);
            }
            graphs[0].transferToDevice(DataTransferMode.EVERY_EXECUTION, scatterParams, slotOffsets);
            for (int s = 0; s < stageK.length; s++) {
                for (int i = 0; i < graphs.length; i++) {
                    String pools = owner != null ? owner : i == 0 ? null : name; // whose device buffers graph i uses
                    addShard(graphs[i], i == 0, pools, s, partials[s], ownerDequant == null ? null : ownerDequant[s]);
                    String g = graphs[i].getTaskGraphName();
                    if (i == 0) {
                        grids.addWorkerGrid(g + "." + PlanParts.taskName("scatter", s), scatterGrids[s]);
                    }
                    grids.addWorkerGrid(g + "." + PlanParts.taskName("merge", s), mergeGrids[s]);
                    grids.addWorkerGrid(g + "." + PlanParts.taskName("attention", s), attentionGrids[s]);
                }
            }
            for (TaskGraph graph : graphs) {
                graph.transferToHost(DataTransferMode.EVERY_EXECUTION, (Object[]) rows.outs());
            }
            return graphs;
        }

        /**
         * Shard {@code s}'s tasks in {@code graph} ({@code scatter}: with the stage and scatter): with {@code owner} null
         * uploading the pools and partials once and keeping them on the device; else on the buffers of the graph named
         * {@code owner}.
         */
        private void addShard(TaskGraph graph, boolean scatter, String owner, int s, FloatArray partials, FloatArray ownerDequant) {
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
                graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, kPool, vPool, partials);
                if (dequant != null) {
                    graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, dequant);
                }
            } else {
                graph.consumeFromDevice(owner, kPool, vPool, partials);
                if (ownerDequant != null) { // the host's tables listed, this plan's own (its K scales hold the softmax scale) sent
                    graph.consumeFromDevice(owner, ownerDequant).transferToDevice(DataTransferMode.EVERY_EXECUTION, dequant);
                } else if (dequant != null) {
                    graph.consumeFromDevice(owner, dequant);
                }
            }
            graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, q);
            if (scatter) {
                graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, stageK[s], stageV[s]);
                PlanParts.addScatter(graph, PlanParts.taskName("scatter", s), ctx, kPool, vPool, stageK[s], stageV[s], slotOffsets,
                        scatterParams, hkv, d, bs, config.dtype());
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
            } else if (config.dtype() == KvDtype.BF16 && kernel == PrefillGrid.Kernel.TENSOR) { // two elements per word, CUDA only
                graph.task(attention, TensorPrefillKernels::prefillBf16Tensor, ctx, (IntArray) kPool, (IntArray) vPool, q, tables, lens,
                        indptr, params, out, partials, hkv, g, d, bs, scale);
            } else if (config.dtype() == KvDtype.BF16) { // head dims above 128: the scalar kernel
                graph.task(attention, PrefillKernels::prefillBf16, ctx, (IntArray) kPool, (IntArray) vPool, q, tables, lens, indptr, params,
                        out, partials, hkv, g, d, bs, scale);
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
            graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, sinks[s]);
            graph.task(PlanParts.taskName("merge", s), PrefillKernels::mergePartitions, ctx, lens, qSeq, params, partials, sinks[s],
                    out, hq, d);
            if (owner == null) { // the first graph of a plan of its own
                graph.persistOnDevice(kPool, vPool, partials);
                if (dequant != null) {
                    graph.persistOnDevice(dequant);
                }
            }
        }

        void step(PrefillBatch batch, PrefillGrid grid, FloatArray userQ, FloatArray userOut, FloatArray userLse) {
            int n = batch.numSeqs();
            int queries = batch.totalQueries();
            rows.load(userQ, queries);
            int width = batch.kv().maxBlocksPerSeq();
            // the batch's own row width, which the kernels read from params
            MemorySegment.copy(batch.kv().kernelBlockTables(), 0, tables.getSegment(), ValueLayout.JAVA_INT, 0, n * width);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < batch.qLen(i); j++) {
                    qSeq.set(batch.qStart(i) + j, i);
                }
            }
            MemorySegment.copy(batch.kv().contextLens(), 0, lens.getSegment(), ValueLayout.JAVA_INT, 0, n);
            MemorySegment.copy(batch.qIndptr(), 0, indptr.getSegment(), ValueLayout.JAVA_INT, 0, n + 1);
            int layerBase = 0; // the plan binds this layer's own pools
            int[] dirty = journal.drain(layer);
            PrefillGrid.writeMasks(params, batch); // the same for every execution below
            int done = 0;
            long nanos;
            do {
                int staged = Math.min(stagingSlots, dirty.length - done);
                for (int s = 0; s < stageK.length; s++) {
                    PlanParts.stage(cache, layer, s, dirty, done, staged, slotOffsets, stageK[s], stageV[s], 0, copier);
                }
                done += staged;
                boolean last = done == dirty.length;
                scatterParams.set(DecodeParams.NUM_NEW_SLOTS, staged);
                grid.writeParams(params, shardSpec, batch, layerBase, width, !last);
                params.set(PrefillParams.LSE, userLse != null ? rows.lseAt() : 0);
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
                // the second graph once the pools are up (a host's always are) and nothing was staged
                int graph = taskSets && (uploaded || host != null) && staged == 0 ? 1 : 0;
                if (host != null) {
                    nanos = host.runPrefill(layer, graph);
                } else {
                    if (taskSets) {
                        executionPlan.withGraph(graph);
                    }
                    TornadoExecutionResult result = PlanParts.execute(executionPlan, stageK.length);
                    nanos = PROFILER ? result.getProfilerResult().getDeviceKernelTime() : -1;
                }
                uploaded = true;
            } while (done < dirty.length);
            lastDeviceNanos = nanos;
            rows.store(userOut, queries);
            if (userLse != null) {
                rows.storeLse(userLse, queries);
            }
        }


        @Override
        public void close() {
            if (executionPlan == null) {
                return; // the host's plan holds the device buffers and releases them
            }
            try {
                PlanParts.free(executionPlan, device); // every graph's buffers, and the device's reset mark cleared
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
        if (grid.maxPartitions() == 1 && !grid.merged()) {
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
