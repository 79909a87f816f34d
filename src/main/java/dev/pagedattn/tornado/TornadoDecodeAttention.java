package dev.pagedattn.tornado;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.DirtySlotJournal;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.NativeArrays;
import dev.pagedattn.kernels.ChunkDecodeKernels;
import dev.pagedattn.kernels.DecodeParams;
import dev.pagedattn.kernels.HeadPairDecodeKernels;
import dev.pagedattn.kernels.HeadQuadDecodeKernels;
import dev.pagedattn.kernels.LatentDecodeKernels;
import dev.pagedattn.kernels.PackedCodes;
import dev.pagedattn.kernels.PagedDecodeKernels;
import dev.pagedattn.kernels.ParallelDecodeKernels;
import dev.pagedattn.kernels.PrefillParams;
import dev.pagedattn.kernels.StreamDecodeKernels;
import dev.pagedattn.kernels.WarpQuadDecodeKernels;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * Decode attention on a TornadoVM device with the K/V pools resident there.
 *
 * <p>Per layer, task graphs of the tasks {@code scatter} (new tokens from a staging array into the pools),
 * {@code attention} and {@code merge}: one with all three, and one for each smaller set a step may need
 * ({@link #TASK_SETS}). The pools go to the device once (the first execution) and are never
 * uploaded again: every step sends only the queries, block tables, lengths, the per-step {@code params}
 * and the staging rows of tokens written since the last step (the cache's dirty-slot journal, which
 * also covers copy-on-write copies, read through a reader of this backend's own: a prefill backend on the same
 * cache keeps a device copy of its own and reads its own). Values that change between steps travel in IntArrays because
 * TornadoVM freezes scalar arguments.
 *
 * <p>Variants: {@code auto} (split-K when the batch alone does not fill the GPU, see
 * {@link DecodeGrid}), {@code fused} (never split), {@code splitk} (always allowed to split) and
 * {@code parallel} (the portable {@code @Parallel} kernel).
 *
 * <p>Capacity (batch rows, block-table columns) is fixed by the first decode; a larger batch
 * later rebuilds the plan, which uploads the pools again. Not thread-safe: one decode at a time.
 */
public final class TornadoDecodeAttention implements DecodeAttention {
    static {
        PlanParts.defaults(); // TornadoVM properties the JVM's flags leave unset, before TornadoVM's runtime starts
    }

    /**
     * Staged token slots per execution, {@code -Dpagedattn.tornado.stagingSlots}; 0 (default): the
     * plan's batch capacity rounded up to 16, at most 256, since a decode step appends one token per
     * sequence. More dirty slots (prompts, copy-on-write copies) go in extra scatter-only executions.
     * The staging arrays travel to the device on every execution, so they are kept small.
     */
    public static final int STAGING_SLOTS = Integer.getInteger("pagedattn.tornado.stagingSlots", 0);

    /**
     * Staged token slots of the bulk task graph, {@code -Dpagedattn.tornado.bulkStagingSlots} (default 1024; 0, or at most
     * the steps' {@link #STAGING_SLOTS}: no bulk graph). With task sets, writes larger than a step's stage (prompts, a
     * prefill chunk that a prefill backend on the same cache wrote) run a graph of every task with a stage of its own, so
     * such a write takes fewer executions without the steps sending more: a chunk of 32 x 512 tokens took 512 executions
     * of a plan for 32 sequences, now 16 (4 MB per layer at Llama-3-8B's heads). Until 2026-12-04 that stage was the first
     * graph's, which also runs steps that write and merge: their new tokens were lost (benchmarks/NOTES.md, twenty-ninth
     * session).
     */
    public static final int BULK_STAGING_SLOTS = Integer.getInteger("pagedattn.tornado.bulkStagingSlots", 1024);

    /**
     * Fill the bulk stage on the row copier's threads ({@code -Dpagedattn.tornado.bulkStageThreads=true}) instead of the
     * calling thread (default). On an H200, warmed, over four runs, the threads were no faster for the step after a
     * 512-token chunk at 1, 8 or 32 sequences (benchmarks/NOTES.md, thirtieth session). A decode backend paired with its
     * prefill backend ({@link #prefill()}) sends no chunk twice and has no such step.
     */
    public static final boolean BULK_STAGE_THREADS = Boolean.getBoolean("pagedattn.tornado.bulkStageThreads");

    /**
     * Run each execution through a task graph of only the tasks it needs ({@code -Dpagedattn.tornado.taskSets=false}:
     * always the graph of all three): no scatter when nothing is staged, no merge when the grid is not split (the
     * extra executions of a write larger than the staging arrays take the first graph, or the bulk graph and its larger
     * stage ({@link #BULK_STAGING_SLOTS}) once the pools are up: TornadoVM 5.2 failed on a graph of the scatter alone,
     * in {@code executeAlloc}). The other graphs use the
     * first one's device buffers of the pools and partials ({@code persistOnDevice}/{@code consumeFromDevice}), so
     * nothing is stored twice, and each is compiled on its first use. TornadoVM launches every task of a graph: an
     * idle helper launch cost 10-23 us of an H200's kernel time per step by TornadoVM's profiler (benchmarks/NOTES.md,
     * "Sixteenth session").
     */
    public static final boolean TASK_SETS = !"false".equals(System.getProperty("pagedattn.tornado.taskSets"));

    /**
     * A step's block tables, context lengths and staged slots' offsets inside its {@code params} array, and each
     * shard's staged V rows after its K rows in one array (default; {@code -Dpagedattn.tornado.packedInputs=false}:
     * each an array of its own): a step sends params and one stage array per shard where it sent params, tables,
     * lengths, slot offsets and two stage arrays. The kernels get the one array as {@code blockTables}, {@code contextLens},
     * {@code slotOffsets} and {@code params}, the stage as {@code stageK} and {@code stageV}
     * ({@link DecodeParams#TABLES}, {@link DecodeParams#LENS}, {@link DecodeParams#SLOTS},
     * {@link DecodeParams#STAGE_V}). Under TornadoVM 5.2 each array an {@code execute()} sends costs microseconds of
     * a small step's wall time (benchmarks/NOTES.md, l1): on an H200 a 1 x 1k call's median wall time 4-6 us shorter
     * on both NVIDIA backends, kernels level (NOTES.md, "Twenty-seventh session").
     */
    public static final boolean PACKED_INPUTS = parseSwitch("pagedattn.tornado.packedInputs",
            System.getProperty("pagedattn.tornado.packedInputs", "true"));

    /** A true/false system property's value; anything else is refused, naming it. */
    static boolean parseSwitch(String name, String value) {
        return switch (value.toLowerCase(java.util.Locale.ROOT)) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new IllegalArgumentException(name + "=" + value + " is not one of true, false");
        };
    }

    /**
     * Compile every task graph of a plan when the plan is built ({@code TornadoExecutionPlan.withPreCompilation()}), not
     * at each graph's first use; {@code -Dpagedattn.tornado.preCompile=false}: at first use. A decode loop otherwise
     * stalls for a compilation the first time a step needs another task set (97-310 ms on an H200; benchmarks/NOTES.md,
     * "Seventeenth session"); the price is a longer first step and graphs compiled that a loop may never run.
     */
    public static final boolean PRE_COMPILE = !"false".equals(System.getProperty("pagedattn.tornado.preCompile"));

    /** Task sets of a plan's task graphs. */
    static final int SCATTER = 1;
    static final int ATTENTION = 2;
    static final int MERGE = 4;

    /**
     * The task sets of a plan's graphs, the first with every task: that one alone without {@code taskSets}, else
     * one per set a step may need; {@code merges}: the plan has merge tasks (not the parallel variant); {@code bulk}:
     * one more graph of every task, the last, whose scatter reads a stage of its own ({@link #BULK_STAGING_SLOTS}) for
     * the executions of writes larger than a step's stage ({@link #graphOf}).
     */
    static int[] taskSets(boolean taskSets, boolean merges, boolean bulk) {
        int all = SCATTER | ATTENTION | (merges ? MERGE : 0);
        if (!taskSets) {
            return new int[] {all};
        }
        int[] sets = merges ? new int[] {all, ATTENTION | MERGE, SCATTER | ATTENTION, ATTENTION} : new int[] {all, ATTENTION};
        if (bulk) {
            sets = Arrays.copyOf(sets, sets.length + 1);
            sets[sets.length - 1] = all;
        }
        return sets;
    }

    /**
     * The graph of {@code sets} ({@link #taskSets}) an execution runs: with {@code bulk} (it stages through the bulk
     * stage) the last; else the first until it has run once (it uploads the pools) and for the executions of a write
     * before its last ({@code last} false: their attention is idle), otherwise the one of exactly the tasks needed: the
     * scatter when something is {@code staged}, the merge when {@code merging}. Only the bulk executions run the bulk
     * graph: its scatter reads the bulk stage, the others' the steps' stage.
     */
    static int graphOf(int[] sets, boolean bulk, boolean uploaded, boolean last, boolean staged, boolean merging) {
        if (bulk) {
            return sets.length - 1;
        }
        if (!uploaded || !last) {
            return 0;
        }
        int tasks = ((staged ? SCATTER : 0) | ATTENTION | (merging ? MERGE : 0)) & sets[0];
        for (int i = 0; i < sets.length; i++) {
            if (sets[i] == tasks) {
                return i;
            }
        }
        return 0; // one graph only (taskSets=false): the first holds every task
    }

    /**
     * One execution of a step: it stages {@code staged} of the step's remaining dirty slots, through the bulk stage
     * ({@code bulk}) or the steps' stage, and runs task graph {@code graph}; {@code last}: it ends the step (attention).
     */
    record Execution(boolean bulk, int staged, boolean last, int graph) {
    }

    /**
     * The next execution of a step with {@code remaining} dirty slots to send: writes larger than a step's stage
     * ({@code stagingSlots}), once the first graph has uploaded the pools, go through the bulk stage of {@code bulkSlots}
     * (0: none) and its graph; {@code fused}: the step's grid writes its outputs directly (no merge).
     */
    static Execution nextExecution(int[] sets, int remaining, boolean uploaded, int stagingSlots, int bulkSlots, boolean fused) {
        boolean bulk = uploaded && bulkSlots > 0 && remaining > stagingSlots;
        int staged = Math.min(bulk ? bulkSlots : stagingSlots, remaining);
        boolean last = staged == remaining;
        return new Execution(bulk, staged, last, graphOf(sets, bulk, uploaded, last, staged > 0, last && !fused));
    }

    /**
     * Most work-groups of the merge: 1056 (eight per SM of an H200), enough for one round of 32 slices
     * at 1 x 32k with 32 query heads. A fused step launches one work-group instead; under CUDA graphs,
     * whose launch sizes are fixed, it launches them all and they return at once.
     */
    static final int MERGE_GROUPS = 1056;
    /**
     * Which merge a split step runs, {@code -Dpagedattn.tornado.mergeRows=auto|true|false}: true, each row's weights
     * computed once per work-group ({@link PagedDecodeKernels#mergeRows}); false, {@link PagedDecodeKernels#mergePartitions};
     * null (auto, the default), {@link #mergeRows(Backend)} decides per backend.
     */
    static final Boolean MERGE_ROWS = parseAuto("pagedattn.tornado.mergeRows", System.getProperty("pagedattn.tornado.mergeRows", "auto"));

    /** An auto/true/false system property's value (auto: null); anything else is refused, naming it. */
    static Boolean parseAuto(String name, String value) {
        return switch (value.toLowerCase(java.util.Locale.ROOT)) {
            case "auto" -> null;
            case "true" -> Boolean.TRUE;
            case "false" -> Boolean.FALSE;
            default -> throw new IllegalArgumentException(name + "=" + value + " is not one of auto, true, false");
        };
    }

    /**
     * Whether a split step on {@code backend} merges with {@link PagedDecodeKernels#mergeRows}: as
     * {@code -Dpagedattn.tornado.mergeRows} says, and by default on the CUDA backend only. Measured on an H200
     * (benchmarks/NOTES.md, twenty-fifth session, ncu): the CUDA backend's merge 6.3 -> 4.9 us at 1 x 1k, 8.1 -> 6.5 at
     * 8 x 8k, 11.6 -> 8.7 at 64 x 4k, 12.1 -> 8.8 at 64 x 8k, the same attention kernel; on PTX, whose warp grids merge
     * 2-16 partitions, `bench` put it level on two small cells it splits and 5-20% slower on three, so PTX (and OpenCL,
     * not measured) keep {@link PagedDecodeKernels#mergePartitions}.
     */
    static boolean mergeRows(Backend backend) {
        return MERGE_ROWS != null ? MERGE_ROWS : backend == Backend.CUDA;
    }
    /**
     * Replay each step as a CUDA graph ({@code TornadoExecutionPlan.withCUDAGraph()}) on the PTX and
     * CUDA backends, {@code -Dpagedattn.tornado.cudaGraph=auto|true|false} (default auto): it halves the wall time of
     * a step on an H200 (benchmarks/NOTES.md). The attention kernel is then launched at the plan's
     * capacity on every step (the same launch each time), and there is no device time: TornadoVM's
     * profiler reports none for graphs. auto leaves them off where TornadoVM 5.2 would crash the JVM
     * ({@link #graphsOn}); true keeps them on there too.
     */
    static final Boolean CUDA_GRAPH_SETTING = parseAuto("pagedattn.tornado.cudaGraph", System.getProperty("pagedattn.tornado.cudaGraph", "auto"));
    /** Whether steps are asked to replay as CUDA graphs ({@code -Dpagedattn.tornado.cudaGraph} auto or true). */
    public static final boolean CUDA_GRAPH = CUDA_GRAPH_SETTING != Boolean.FALSE;

    /**
     * Whether a plan asked for CUDA graphs ({@code requested}) replays them on {@code backend}: never on OpenCL (it has
     * none); on the CUDA backend only where TornadoVM pins no host memory ({@code hostPinning} false,
     * {@code -Dtornado.cuda.host.pinning=false}, as tornado-config/cuda.args sets) or the setting is true. TornadoVM 5.2's
     * CUDA backend unregisters every pinned host buffer of the process when any execution plan is freed
     * ({@code CUDADeviceContext.reset} drains its pin registry), and a CUDA graph captured with pinned copies then
     * crashes inside {@code cuGraphLaunch} (SIGSEGV in libcuda): on an H100 the demo crashed at its first step after a
     * plan was closed, and a 4-layer check at the first step after another layer's plan was rebuilt
     * (benchmarks/NOTES.md, forty-third session). The PTX backend keeps its pins and replays safely.
     */
    static boolean graphsOn(boolean requested, Boolean setting, Backend backend, boolean hostPinning) {
        if (!requested || backend == Backend.OPENCL) {
            return false;
        }
        return backend != Backend.CUDA || !hostPinning || setting == Boolean.TRUE;
    }

    /**
     * Whether NVRTC compiles with this project's register bounds (tornado-config/nvrtc, which bin/nvrtc-bounds.sh and so
     * {@code bin/pa-tornado cuda} put in {@code CUDA_PATH}, where TornadoVM's CUDA backend looks for its headers first): the
     * bounded kernels run as measured only then. Read once: the environment is the JVM's.
     */
    private static final boolean NVRTC_BOUNDS_IN_FORCE = nvrtcBoundsInForce();

    private static boolean nvrtcBoundsInForce() {
        String cudaPath = System.getenv("CUDA_PATH");
        return cudaPath != null && java.nio.file.Files.isRegularFile(java.nio.file.Path.of(cudaPath, "include", "paged-attention-bounds.h"));
    }

    /** Whether TornadoVM's CUDA backend pins host buffers: {@code -Dtornado.cuda.host.pinning}, read as TornadoVM reads it. */
    static boolean cudaHostPinning() {
        return Boolean.parseBoolean(System.getProperty("tornado.cuda.host.pinning", "True"));
    }

    private final KvCache cache;
    private final DirtySlotJournal.Reader journal; // the writes this backend's device pools have not seen yet
    private final KvCacheConfig config;
    private final AttentionSpec spec;
    private final AttentionSpec shardSpec; // what each shard's kernels see (spec itself for an unsharded layer)
    private final String device;
    private final String variant;
    private final VSums vSums;
    private final DecodeGrid.Kernel requestedKernel;
    private final boolean cudaGraphRequested;
    private boolean cudaGraph;           // requested, and safe on this backend (graphsOn)
    private Backend backend;             // of the device the graph runs on, found on first use
    private DecodeGrid.Kernel kernel;    // resolved against the backend on first use
    private final Plan[] plans;          // [numLayers]: each layer's pools bound by its own plan, made on first use
    private boolean closed;
    private final RowCopier copier = new RowCopier(RowCopier.THREADS); // the steps' query and output rows
    private long lastDeviceNanos = -1;
    private int reservedSeqs;            // reserve(): plans hold at least this many sequences
    private int reservedColumns;         // of at least this many block-table columns each
    private int planBuilds;
    private TornadoPrefillAttention prefill; // prefill(): its graphs join this backend's plans, or null

    /**
     * The kernel from {@code -Dpagedattn.tornado.kernel}, CUDA graphs from {@code -Dpagedattn.tornado.cudaGraph}, the V sums'
     * precision from {@code -Dpagedattn.tornado.vSums}.
     */
    public TornadoDecodeAttention(KvCache cache, AttentionSpec spec, String device, String variant) {
        this(cache, spec, device, variant, DecodeGrid.KERNEL, CUDA_GRAPH);
    }

    /** {@code kernel}: the attention kernel by name ({@link DecodeGrid.Kernel#parse}), null for {@link DecodeGrid#KERNEL}. */
    public TornadoDecodeAttention(KvCache cache, AttentionSpec spec, String device, String variant, String kernel) {
        this(cache, spec, device, variant, kernel == null ? DecodeGrid.KERNEL : DecodeGrid.Kernel.parse(kernel), CUDA_GRAPH);
    }

    /**
     * {@code kernel} and {@code vSums} by name ({@link DecodeGrid.Kernel#parse}, {@link VSums#parse}), null for
     * {@link DecodeGrid#KERNEL} and {@link VSums#DEFAULT}.
     */
    public TornadoDecodeAttention(KvCache cache, AttentionSpec spec, String device, String variant, String kernel, String vSums) {
        this(cache, spec, device, variant, kernel == null ? DecodeGrid.KERNEL : DecodeGrid.Kernel.parse(kernel), CUDA_GRAPH,
                vSums == null ? VSums.DEFAULT : VSums.parse(vSums));
    }

    /** As the full constructor, with the V sums' precision from {@code -Dpagedattn.tornado.vSums} ({@link VSums#DEFAULT}). */
    public TornadoDecodeAttention(KvCache cache, AttentionSpec spec, String device, String variant, DecodeGrid.Kernel kernel,
                                  boolean cudaGraph) {
        this(cache, spec, device, variant, kernel, cudaGraph, VSums.DEFAULT);
    }

    /**
     * {@code kernel}: the attention kernel to run, AUTO for the measured best on the device;
     * {@code cudaGraph}: replay steps as CUDA graphs where the backend has them (no device time then);
     * {@code vSums}: the precision of the V sums ({@link VSums}; {@code FP16} needs fp16 K/V, and the
     * stream kernel, which AUTO picks on the CUDA backend: another kernel is refused on first use).
     */
    public TornadoDecodeAttention(KvCache cache, AttentionSpec spec, String device, String variant, DecodeGrid.Kernel kernel,
                                  boolean cudaGraph, VSums vSums) {
        spec.requireMatches(cache.config());
        PlanParts.requireOwnPool(cache);
        PlanParts.requireKernelShape(cache.config());
        if (cache.config().isLatent() && variant.equals("parallel")) {
            throw new IllegalArgumentException("variant=parallel does not read latent (MLA) caches (latentDim="
                    + cache.config().latentDim() + "): use auto, fused or splitk");
        }
        if (vSums == VSums.FP16 && cache.config().dtype() != KvDtype.FP16) {
            throw new IllegalArgumentException("v-sums=fp16 needs fp16 K/V (dtype=" + cache.config().dtype()
                    + "): the 8-bit and fp32 kernels keep fp32 sums");
        }
        if (vSums == VSums.FP16 && variant.equals("parallel")) {
            throw new IllegalArgumentException("v-sums=fp16 runs in the stream kernel, not variant=parallel: use auto, fused or splitk");
        }
        if (!variant.equals("auto") && !variant.equals("fused") && !variant.equals("splitk") && !variant.equals("parallel")) {
            throw new IllegalArgumentException("variant=" + variant + " is not one of auto, fused, splitk, parallel");
        }
        if (cache.config().dtype().packsWords() && variant.equals("parallel")) {
            throw new IllegalArgumentException("variant=parallel does not read " + (cache.config().dtype() == KvDtype.BF16 ? "bf16"
                    : "8-bit") + " K/V pools (dtype=" + cache.config().dtype() + "): use auto, fused or splitk");
        }
        if (cache.config().dtype() == KvDtype.BF16 && cache.config().isLatent()) {
            throw new IllegalArgumentException("dtype=BF16: the latent (MLA) kernel reads fp16, fp32 and 8-bit caches; decode a bf16"
                    + " latent cache on the JVM backend (backend=jvm)");
        }
        if (spec.sinks().any() && variant.equals("parallel")) {
            throw new IllegalArgumentException("variant=parallel does not add attention sinks (" + spec.sinks()
                    + "): use auto, fused or splitk");
        }
        if (spec.hasSoftCap() && variant.equals("parallel")) {
            throw new IllegalArgumentException("variant=parallel does not soft-cap scores (softCap=" + spec.softCap()
                    + "): use auto, fused or splitk");
        }
        if (spec.hasAlibi() && variant.equals("parallel")) {
            throw new IllegalArgumentException("variant=parallel does not add ALiBi biases (" + spec.alibi()
                    + "): use auto, fused or splitk");
        }
        if (!cache.config().isLatent()) { // a named kernel that cannot take the group: refused before any plan
            DecodeGrid.requireGroupFits(kernel, spec, null);
        }
        if (device != null && !device.matches("\\d+:\\d+")) {
            throw new IllegalArgumentException("device=" + device + " is not B:D (backend index:device index)");
        }
        if (STAGING_SLOTS < 0 || STAGING_SLOTS % 16 != 0) {
            throw new IllegalArgumentException("pagedattn.tornado.stagingSlots=" + STAGING_SLOTS + " must be 0 (auto) or a positive multiple of 16");
        }
        if (BULK_STAGING_SLOTS < 0) {
            throw new IllegalArgumentException("pagedattn.tornado.bulkStagingSlots=" + BULK_STAGING_SLOTS + " must be >= 0 (0: none)");
        }
        this.cache = cache;
        this.config = cache.config();
        this.spec = spec;
        this.shardSpec = spec.shard(config.poolShards());
        this.device = device;
        this.variant = variant;
        this.requestedKernel = kernel;
        this.cudaGraphRequested = cudaGraph;
        this.vSums = vSums;
        this.plans = new Plan[config.numLayers()];
        this.journal = cache.dirtySlots().reader(); // this backend's own record of what its plans still have to send
    }

    @Override
    public String name() {
        return "tornado-" + variant;
    }

    /** The backend of the device the plan runs on (found with the kernel). */
    public Backend backend() {
        kernel();
        return backend;
    }

    /** The PTX JIT flags this backend's decode plans compile with ({@link DecodeGrid#ptxJitFlags}), or null for the process's. */
    public String ptxJitFlags() {
        return DecodeGrid.ptxJitFlags(kernel(), shardSpec, config.dtype(), backend());
    }

    /** Device kernel time of the last step (TornadoVM's profiler), or -1 when steps replay as CUDA graphs. */
    @Override
    public long lastDeviceNanos() {
        return lastDeviceNanos;
    }

    /**
     * Sizes every layer's device plan for batches of up to {@code maxSeqs} sequences of up to {@code maxTokensPerSeq}
     * tokens each, so that no decode within that rebuilds a plan (a rebuild uploads the layer's pools again and
     * compiles its kernels again). Plans built before are rebuilt at their layer's next decode if smaller. Without a
     * reservation plans grow geometrically ({@link PlanCapacity}).
     */
    @Override
    public void reserve(int maxSeqs, int maxTokensPerSeq) {
        DecodeAttention.requireReservation(config, maxSeqs, maxTokensPerSeq);
        int columns = PlanCapacity.reservedColumns(maxSeqs, maxTokensPerSeq, config.blockSize());
        reservedSeqs = Math.max(reservedSeqs, maxSeqs);
        reservedColumns = Math.max(reservedColumns, columns);
    }

    /**
     * The prefill backend of this backend's device pools: its task graphs join each layer's plan here (TornadoVM 5.2 shares
     * device buffers only between the task graphs of one execution plan), so the device holds one copy of the pools and a
     * chunk that it writes is on the device for the next decode step, not sent again. It reads this backend's record of
     * the cache's writes; a prefill step of a layer whose plan cannot hold it rebuilds the layer's plan, as a decode step
     * does (both upload the layer's pools again), so reserve both ({@link #reserve}, {@link TornadoPrefillAttention#reserve}).
     * Its kernel time is reported only where decode's is (no CUDA graphs). One per backend: the same object until it is
     * closed; closing this backend releases its plans.
     */
    @Override
    public TornadoPrefillAttention prefill() {
        requireOpen();
        if (prefill == null || prefill.isClosed()) {
            prefill = new TornadoPrefillAttention(this);
        }
        return prefill;
    }

    KvCache cache() {
        return cache;
    }

    AttentionSpec spec() {
        return spec;
    }

    String device() {
        return device;
    }

    DirtySlotJournal.Reader journal() {
        return journal;
    }

    /**
     * The prefill backend's plan {@code part} for {@code layer} is the one the layer's plan runs: the layer's plan is
     * (re)built with its graphs if it has none or another's, at least at its decode capacity and at what a decode step of
     * the prefill's sequences {@code kv} needs (with the reservation and headroom of {@link #planFor}), so that an engine's
     * decode after the prefill does not build the plan again.
     */
    void requirePrefillPart(int layer, TornadoPrefillAttention.Plan part, DecodeBatch kv) {
        requireOpen();
        Plan plan = plans[layer];
        if (plan == null || plan.prefillPart != part) { // part is prefill.part(layer), which rebuild takes
            boolean bounded = boundedFor(kv);
            rebuild(layer, kv.numSeqs(), kv.maxBlocksPerSeq(), gridFor(kv, bounded).partialRows(kv.numSeqs()), bounded);
        }
    }

    /**
     * Runs the prefill backend's graph {@code graph} (0: with its scatter, 1: without) of {@code layer}'s plan, after the
     * plan's first decode graph has uploaded the pools; the kernel time, or -1 (CUDA graphs: no profiler).
     */
    long runPrefill(int layer, int graph) {
        Plan plan = plans[layer];
        plan.upload();
        plan.executionPlan.withGraph(plan.prefillBase + graph);
        TornadoExecutionResult result = PlanParts.execute(plan.executionPlan, plan.stageK.length);
        return !cudaGraph ? result.getProfilerResult().getDeviceKernelTime() : -1;
    }

    /** Device plans built so far, all layers together: one per layer, plus one for each batch a plan could not hold. */
    public int planBuilds() {
        return planBuilds;
    }

    /**
     * The grid a decode of {@code batch} by a plan built for it would use (for reports); each KV-head shard of a sharded
     * layer launches one.
     */
    public DecodeGrid gridFor(DecodeBatch batch) {
        return gridFor(batch, boundedFor(batch));
    }

    /** The grid of a decode of {@code batch} by {@code plan}, whose body it follows (no plan yet: the unbounded body's). */
    private DecodeGrid gridOfPlan(DecodeBatch batch, Plan plan) {
        return gridFor(batch, plan != null && plan.bounded);
    }

    /** The grid of a decode of {@code batch} by a plan that runs the stream kernel's bounded twin or not. */
    private DecodeGrid gridFor(DecodeBatch batch, boolean bounded) {
        return DecodeGrid.plan(shardSpec, batch, !variant.equals("fused"), kernel(), config.dtype(), bounded, vSums == VSums.FP16,
                backend());
    }

    /**
     * Whether a plan built for {@code batch} runs the stream kernel's fp16 twin bounded to 128 registers: on the CUDA
     * backend with the register bounds in force, where {@link DecodeGrid#boundedTwinPays} says its grid fills the GPU's
     * waves better. A plan keeps its body until it is rebuilt (a batch it cannot hold, a reservation).
     */
    public boolean boundedFor(DecodeBatch batch) {
        return kernel() == DecodeGrid.Kernel.STREAM && backend == Backend.CUDA && !variant.equals("parallel")
                && NVRTC_BOUNDS_IN_FORCE && DecodeGrid.boundedTwinPays(shardSpec, batch, !variant.equals("fused"), config.dtype(),
                vSums == VSums.FP16);
    }

    /** The attention kernel for this device: {@code -Dpagedattn.tornado.kernel}, AUTO resolved by {@link DecodeGrid#resolve}. */
    public DecodeGrid.Kernel kernel() {
        if (kernel == null) {
            backend = backendOf(device);
            DecodeGrid.Kernel resolved = DecodeGrid.resolve(requestedKernel, spec, backend, config.dtype(), config.isLatent());
            if (vSums == VSums.FP16 && resolved != DecodeGrid.Kernel.STREAM) {
                throw new IllegalArgumentException("v-sums=fp16 runs only in the stream kernel (TornadoVM's CUDA backend, head dim 64, 80, 96, 112, 128 or 256); "
                        + "this device's " + backend + " backend runs kernel=" + resolved.name().toLowerCase(java.util.Locale.ROOT));
            }
            kernel = resolved;
            cudaGraph = graphsOn(cudaGraphRequested, CUDA_GRAPH_SETTING, backend, cudaHostPinning());
        }
        return kernel;
    }

    @Override
    public void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out) {
        decode(batch, layer, q, out, null);
    }

    /**
     * {@inheritDoc} The step then runs split even where one partition covers every sequence, and its merge writes the
     * log-sum-exps after the plan's output rows (one more small copy back); variant=parallel has no merge and refuses it.
     */
    @Override
    public void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        requireOpen();
        DecodeAttention.requireBatch(config, batch, layer);
        DecodeAttention.requirePositions(spec, batch);
        if (lse != null) {
            if (variant.equals("parallel")) {
                throw new UnsupportedOperationException("variant=parallel writes no log-sum-exp (lse): use auto, fused or splitk");
            }
            DecodeAttention.requireLse(spec, batch.numSeqs(), lse);
        }
        Plan current = plans[layer];
        long n = spec.queryElements(batch.numSeqs());
        long outN = spec.outputElements(batch.numSeqs());
        ShardRows.requireCallRows(current == null ? null : current.rows, q, out, n, outN, "numSeqs");
        DecodeGrid.Tables tables = DecodeGrid.tables(batch);
        DecodeGrid grid = gridOfPlan(batch, current);
        Plan plan = planFor(batch, layer, grid, tables.width());
        if (plan != current) { // built here: it may run the other body, whose grid it takes
            grid = gridOfPlan(batch, plan);
            ShardRows.requireHeld(q, out, n, outN);
        }
        plan.step(batch, grid, tables, q, out, lse);
    }

    /**
     * The arrays the layer's plan sends and fetches, so that {@code decode} given them copies nothing: on an H200 host
     * one thread copied 128 sequences' rows (4 MB both ways at Llama-3-8B's heads) in about 350 us, against 100 us for
     * the transfers and 187 us of kernel (benchmarks/NOTES.md, c1-c3). Each holds the plan's capacity of rows (at least
     * the batch's; rows past the batch are ignored). Take them again whenever the batch grows: a batch the plan cannot
     * hold rebuilds it, with new arrays (a reservation, {@link #reserve}, avoids that). A layer split into KV-head
     * shards keeps per-shard arrays, so there they are host arrays that {@code decode} still copies from and to.
     * Builds the layer's plan if there is none yet.
     */
    @Override
    public StepRows stepRows(DecodeBatch batch, int layer) {
        requireOpen();
        DecodeAttention.requireBatch(config, batch, layer);
        return planFor(batch, layer, gridOfPlan(batch, plans[layer]), DecodeGrid.tables(batch).width()).rows.stepRows();
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("decode after close(): the device plans are released; create a new backend");
        }
    }

    /**
     * The layer's plan, built or rebuilt so that it holds {@code batch} on {@code grid} (the grid for the layer's plan's
     * body) with tables {@code width} columns wide; a plan built here runs the body {@link #boundedFor} chooses for
     * {@code batch}.
     */
    private Plan planFor(DecodeBatch batch, int layer, DecodeGrid grid, int width) {
        Plan plan = plans[layer];
        int n = batch.numSeqs();
        if (plan == null || grid.partialRows(n) > plan.partialRows
                || !PlanCapacity.holds(plan.maxSeqs, plan.tableEntries, n, width, reservedSeqs, reservedColumns)) {
            boolean bounded = boundedFor(batch);
            plan = rebuild(layer, n, width, gridFor(batch, bounded).partialRows(n), bounded);
        }
        return plan;
    }

    /**
     * Replaces the layer's plan with one that holds {@code n} sequences of {@code width} block-table columns and
     * {@code rows} partial rows, with headroom and at least the old plan's capacity and the reservation's, and the
     * graphs of the prefill backend's plan for the layer if there is one.
     */
    private Plan rebuild(int layer, int n, int width, int rows, boolean bounded) {
        Plan plan = plans[layer];
        int seqs = PlanCapacity.seqs(n, reservedSeqs, plan == null ? 0 : plan.maxSeqs);
        int entries = PlanCapacity.tableEntries(n, width, seqs, reservedColumns, plan == null ? 0 : plan.tableEntries);
        int partialRows = (int) PlanCapacity.withHeadroom(rows, 1.0, plan == null ? 0 : plan.partialRows, Integer.MAX_VALUE);
        if (plan != null) {
            plan.close();
            plans[layer] = null;
        }
        journal.drain(layer); // the new plan uploads the layer's whole pools on its first execution
        planBuilds++;
        return plans[layer] = new Plan(layer, seqs, entries, partialRows, prefill == null ? null : prefill.part(layer), bounded);
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

    /**
     * The device-side buffers and the task graph of one layer, for one capacity: scatter, attention
     * and merge tasks for each KV-head shard of the layer's pools (one set unless the layer is
     * larger than one native array, {@link KvCacheConfig#poolShards()}).
     */
    private final class Plan implements AutoCloseable {
        final int layer;
        final int maxSeqs;
        final int tableEntries;          // block-table entries: any batch of n x width <= tableEntries fits (PlanCapacity)
        final int partialRows;           // (sequence, partition) rows the partials can hold
        final ShardRows rows;  // q and out, [shards] of [maxSeqs][numQHeads / shards][headDim]
        final IntArray tables;           // [numSeqs][the step's width], within tableEntries, from tablesBase
        final IntArray lens;             // [maxSeqs], from lensBase
        final IntArray params;           // [DecodeParams.capacity], then (packed) the lengths and tables
        final int lensBase;              // where lens holds the lengths: 0, or in params (PACKED_INPUTS)
        final int tablesBase;            // where tables holds the block tables: 0, or in params
        final int slotBase;              // where slotOffsets holds the staged slots' offsets: 0, or in params
        final long stageVBytes;          // where stageV holds the V rows: 0, or after K in stageK (PACKED_INPUTS)
        final int stagingSlots;
        final TornadoNativeArray[] stageK; // [shards] of [stagingSlots][headsPerShard][headDim]
        final TornadoNativeArray[] stageV;
        final IntArray slotOffsets;      // [stagingSlots], the same in every shard
        final int bulkSlots;             // the bulk graph's own stage (0: no bulk graph)
        final TornadoNativeArray[] bulkStage; // [shards] of K rows then V rows, [2][bulkSlots][headsPerShard][headDim]
        final IntArray bulkSlotOffsets;  // [bulkSlots]
        final IntArray bulkParams;       // [DecodeParams.SIZE]: the bulk graph's scatter's NUM_NEW_SLOTS, SLOTS (0), STAGE_V
        final long bulkVBytes;
        final FloatArray[] dequant;      // [shards]: 8-bit pools' tables and scales, or null
        final FloatArray[] partialsByShard; // [shards]: the split steps' partials (and the prefill graphs')
        final WorkerGrid1D[] attentionGrids; // [shards], or null (parallel variant)
        final WorkerGrid1D[] scatterGrids;   // [shards]: one work-group on steps with nothing to scatter
        final WorkerGrid1D[] mergeGrids;     // [shards], or null (parallel): one work-group when nothing is merged
        final int scatterGlobal;
        final int mergeGlobal;
        final TornadoExecutionPlan executionPlan;
        final int[] graphTasks;          // the task set of each decode task graph of the plan; the first has every task
        final TornadoPrefillAttention.Plan prefillPart; // the prefill backend's graphs this plan also runs, or null
        final int prefillBase;           // the index of its first graph (after the decode graphs)
        final int graphCount;            // decode and prefill graphs
        final DecodeGrid idleGrid;       // the launch sizes of an execution with nothing to attend (upload)
        final boolean bounded;           // the stream kernel's fp16 twin bounded to 128 registers, on its grids (boundedFor)
        boolean uploaded;                // the first graph has run once: the pools are on the device

        Plan(int layer, int maxSeqs, int tableEntries, int partialRows, TornadoPrefillAttention.Plan prefillPart, boolean bounded) {
            this.layer = layer;
            this.bounded = bounded;
            this.prefillPart = prefillPart;
            this.maxSeqs = maxSeqs;
            this.tableEntries = tableEntries;
            this.partialRows = partialRows;
            int shards = config.poolShards();
            int hq = shardSpec.numQHeads();  // per shard from here on
            int d = shardSpec.headDim();
            int hkv = shardSpec.numKvHeads();
            int width = hkv * d;
            int dv = shardSpec.valueDim(); // output rows: headDim wide, or a latent cache's value width
            rows = new ShardRows(shards, maxSeqs, spec.numQHeads() * d, spec.numQHeads() * dv, spec.numQHeads(), copier);
            // a balanced grid (the stream kernels) adds its tile prefix and each work-group's first sequence
            int paramSlots = kernel() == DecodeGrid.Kernel.STREAM ? DecodeParams.capacity(maxSeqs, bounded
                    ? DecodeGrid.STREAM_TARGET_GROUPS_LEAN : DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, shardSpec, config.dtype(),
                    vSums == VSums.FP16, backend()))
                    : DecodeParams.SIZE;
            stagingSlots = STAGING_SLOTS > 0 ? STAGING_SLOTS : Math.min(256, (maxSeqs + 15) / 16 * 16);
            if (PACKED_INPUTS) {
                DecodeParams.Packed packed = DecodeParams.Packed.after(paramSlots, maxSeqs, tableEntries, stagingSlots);
                lensBase = packed.lens();
                tablesBase = packed.tables();
                slotBase = packed.slots();
                params = new IntArray(packed.size());
                tables = params;
                lens = params;
                slotOffsets = params;
                stageVBytes = (long) stagingSlots * width * config.dtype().bytes();  // K's rows come first
            } else {
                lensBase = 0;
                tablesBase = 0;
                slotBase = 0;
                params = new IntArray(paramSlots);
                tables = new IntArray(tableEntries);
                lens = new IntArray(maxSeqs);
                slotOffsets = new IntArray(stagingSlots);
                stageVBytes = 0;
            }
            // plan constants: writeParams leaves these slots alone
            new DecodeParams.Packed(lensBase, tablesBase, slotBase, params.getSize()).writeStarts(params);
            // the V rows' start in the scatter's index units: elements, or for packed stages words (four codes, two bf16)
            params.set(DecodeParams.STAGE_V, (int) (stageVBytes / (config.dtype().packsWords() ? Integer.BYTES : config.dtype().bytes())));
            for (int i = 0; i < maxSeqs; i++) {
                lens.set(lensBase + i, 1);  // rows past a batch (a graph launches the capacity) read one token
            }
            stageK = new TornadoNativeArray[shards];
            stageV = new TornadoNativeArray[shards];
            dequant = new FloatArray[shards];
            partialsByShard = new FloatArray[shards];
            boolean sinks = spec.hasSinks(layer);
            if (config.dtype().isQuantized()) {
                for (int s = 0; s < shards; s++) {
                    // the warp kernel's 8-bit twin takes the softmax scale in its K scales (its last argument is the soft cap)
                    dequant[s] = PackedCodes.argument(cache, layer, s, kernel() == DecodeGrid.Kernel.WARP ? shardSpec.scale() : 1f);
                }
            }
            attentionGrids = variant.equals("parallel") ? null : new WorkerGrid1D[shards];
            scatterGrids = new WorkerGrid1D[shards];
            mergeGrids = attentionGrids == null ? null : new WorkerGrid1D[shards];
            scatterGlobal = PlanParts.helperGlobal(stagingSlots * width);
            // the merge's work-items: up to MAX_MERGE_SLICES per output element (its local size is HELPER_LOCAL = MERGE_LOCAL),
            // at most MERGE_GROUPS work-groups (one round at 1 x 32k, 32 heads, 32 slices)
            mergeGlobal = (int) Math.min(((long) maxSeqs * hq * d * PagedDecodeKernels.MAX_MERGE_SLICES + PlanParts.HELPER_LOCAL - 1)
                    / PlanParts.HELPER_LOCAL, MERGE_GROUPS) * PlanParts.HELPER_LOCAL;
            String name = graphName(layer);
            boolean merges = attentionGrids != null;
            // with task sets, writes larger than a step's stage run a graph of their own with a larger stage (BULK_STAGING_SLOTS)
            bulkSlots = TASK_SETS && BULK_STAGING_SLOTS > stagingSlots ? BULK_STAGING_SLOTS : 0;
            // the task sets: the first (every task) owns the device buffers of the pools and partials; the bulk graph last
            graphTasks = taskSets(TASK_SETS, merges, bulkSlots > 0);
            int bulkGraph = bulkSlots > 0 ? graphTasks.length - 1 : -1;
            bulkStage = bulkSlots > 0 ? new TornadoNativeArray[shards] : null;
            bulkSlotOffsets = bulkSlots > 0 ? new IntArray(bulkSlots) : null;
            bulkParams = bulkSlots > 0 ? new IntArray(DecodeParams.SIZE) : null;
            bulkVBytes = (long) bulkSlots * width * config.dtype().bytes();
            if (bulkSlots > 0) {
                new DecodeParams.Packed(0, 0, 0, DecodeParams.SIZE).writeStarts(bulkParams); // its slots' offsets from 0
                bulkParams.set(DecodeParams.STAGE_V, (int) (bulkVBytes / (config.dtype().packsWords() ? Integer.BYTES : config.dtype().bytes())));
            }
            TaskGraph[] graphs = new TaskGraph[graphTasks.length];
            for (int i = 0; i < graphs.length; i++) {
                int t = graphTasks[i];
                graphs[i] = new TaskGraph(i == 0 ? name : name + "T" + t)
                        .transferToDevice(DataTransferMode.EVERY_EXECUTION, params);
                if ((t & (ATTENTION | MERGE)) != 0 && !PACKED_INPUTS) {
                    graphs[i].transferToDevice(DataTransferMode.EVERY_EXECUTION, tables, lens);
                }
                if (i == bulkGraph) {
                    graphs[i].transferToDevice(DataTransferMode.EVERY_EXECUTION, bulkParams, bulkSlotOffsets);
                } else if ((t & SCATTER) != 0 && !PACKED_INPUTS) {
                    graphs[i].transferToDevice(DataTransferMode.EVERY_EXECUTION, slotOffsets);
                }
            }
            GridScheduler grids = new GridScheduler();
            for (int s = 0; s < shards; s++) {
                if (PACKED_INPUTS) {  // K rows, then V rows
                    stageK[s] = NativeArrays.of(config.dtype(), 2 * stagingSlots * width);
                    stageV[s] = stageK[s];
                } else {
                    stageK[s] = NativeArrays.of(config.dtype(), stagingSlots * width);
                    stageV[s] = NativeArrays.of(config.dtype(), stagingSlots * width);
                }
                if (bulkSlots > 0) {
                    bulkStage[s] = NativeArrays.of(config.dtype(), 2 * bulkSlots * width);
                }
                // Split-K writes numSeqs * maxPartitions rows of [numQHeads][headDim + 2]; the prefill graphs' partials share them
                long partialElements = Math.max((long) Math.max(1, partialRows) * hq * (d + 2),
                        prefillPart == null ? 0 : prefillPart.partialElements);
                if (partialElements + 2L * hq + 1 > Integer.MAX_VALUE - 64L) {
                    throw new IllegalArgumentException("partials=" + partialElements + " elements do not fit one device array");
                }
                // a layer with sinks keeps the shard's query heads' sinks after everything a step (or a prefill graph)
                // writes, a soft cap follows them, then the shard's query heads' ALiBi slopes
                int capSlot = (int) partialElements + (sinks ? hq : 0);
                int alibiBase = capSlot + (spec.hasSoftCap() ? 1 : 0);
                FloatArray partials = partialsByShard[s] = new FloatArray(alibiBase + (spec.hasAlibi() ? hq : 0));
                if (sinks) { // shard s holds query heads [s * hq, (s + 1) * hq)
                    for (int h = 0; h < hq; h++) {
                        partials.set((int) partialElements + h, spec.sinks().sink(layer, s * hq + h));
                    }
                    params.set(DecodeParams.SINKS, 1);
                    params.set(DecodeParams.SINK_BASE, (int) partialElements); // the same in every shard
                }
                if (spec.hasSoftCap()) { // the same slot in every shard; the paired prefill graphs read it there too
                    partials.set(capSlot, spec.softCap());
                    params.set(DecodeParams.SOFT_CAP, capSlot);
                    if (prefillPart != null) {
                        prefillPart.params.set(PrefillParams.SOFT_CAP, capSlot);
                    }
                }
                if (spec.hasAlibi()) { // shard s's query heads' slopes, at the same base in every shard and for the prefill graphs
                    for (int h = 0; h < hq; h++) {
                        partials.set(alibiBase + h, spec.alibi().slope(s * hq + h));
                    }
                    params.set(DecodeParams.ALIBI, alibiBase);
                    if (prefillPart != null) {
                        prefillPart.params.set(PrefillParams.ALIBI, alibiBase);
                    }
                }
                scatterGrids[s] = PlanParts.grid(scatterGlobal, PlanParts.HELPER_LOCAL);
                if (merges) {
                    mergeGrids[s] = PlanParts.grid(mergeGlobal, PlanParts.HELPER_LOCAL);
                    attentionGrids[s] = PlanParts.grid(PlanParts.HELPER_LOCAL, PlanParts.HELPER_LOCAL); // sized per step
                }
                for (int i = 0; i < graphs.length; i++) {
                    int t = graphTasks[i];
                    addShard(graphs[i], i == 0 ? null : name, s, partials, t, i == bulkGraph);
                    String g = graphs[i].getTaskGraphName();
                    if ((t & SCATTER) != 0) {
                        grids.addWorkerGrid(g + "." + PlanParts.taskName("scatter", s), scatterGrids[s]);
                    }
                    if (merges && (t & ATTENTION) != 0) {
                        grids.addWorkerGrid(g + "." + PlanParts.taskName("attention", s), attentionGrids[s]);
                    }
                    if (merges && (t & MERGE) != 0) {
                        grids.addWorkerGrid(g + "." + PlanParts.taskName("merge", s), mergeGrids[s]);
                    }
                }
            }
            for (int i = 0; i < graphs.length; i++) {
                if ((graphTasks[i] & ATTENTION) != 0) {
                    graphs[i].transferToHost(DataTransferMode.EVERY_EXECUTION, (Object[]) rows.outs());
                }
            }
            prefillBase = graphs.length;
            if (prefillPart != null) { // after the decode graphs, on the first one's pools and partials
                TaskGraph[] prefillGraphs = prefillPart.graphs(name + "P", name, partialsByShard,
                        config.dtype().isQuantized() ? dequant : null, grids);
                graphs = Arrays.copyOf(graphs, graphs.length + prefillGraphs.length);
                System.arraycopy(prefillGraphs, 0, graphs, prefillBase, prefillGraphs.length);
            }
            graphCount = graphs.length;
            ImmutableTaskGraph[] snapshots = new ImmutableTaskGraph[graphs.length];
            for (int i = 0; i < graphs.length; i++) {
                snapshots[i] = graphs[i].snapshot();
            }
            idleGrid = DecodeGrid.plan(shardSpec, 1, 1, !variant.equals("fused"), kernel(), config.dtype());
            executionPlan = new TornadoExecutionPlan(snapshots);
            executionPlan.withGridScheduler(grids);
            if (!cudaGraph) {
                executionPlan.withProfiler(Boolean.getBoolean("pagedattn.tornado.profileConsole") ? ProfilerMode.CONSOLE : ProfilerMode.SILENT);
            }
            // -Ddecode.device pins the graph named "decode" only: the other graphs follow it explicitly
            String pin = device != null ? device : System.getProperty("decode.device");
            if (pin != null) {
                executionPlan.withDevice(PlanParts.deviceOf(pin));
            }
            // the decode graphs' JIT flags on PTX where their kernel runs under a cap of its own (DecodeGrid.ptxJitFlags)
            String decodeFlags = ptxJitFlags();
            if (prefillPart != null) {
                // graph by graph: the prefill graphs' launch sizes change every step, so only the decode graphs replay as
                // CUDA graphs, and the prefill graphs take the tensor kernel's JIT flags on PTX
                for (int i = 0; i < prefillBase; i++) {
                    if (cudaGraph) {
                        executionPlan.withGraph(i).withCUDAGraph();
                    }
                    if (decodeFlags != null) {
                        executionPlan.withGraph(i).withCompilerFlags(TornadoVMBackendType.PTX, decodeFlags);
                    }
                }
                String flags = prefillPart.compilerFlags();
                if (flags != null) {
                    for (int i = prefillBase; i < graphCount; i++) {
                        executionPlan.withGraph(i).withCompilerFlags(TornadoVMBackendType.PTX, flags);
                    }
                }
                executionPlan.withAllGraphs();
            } else {
                if (decodeFlags != null) {
                    executionPlan.withCompilerFlags(TornadoVMBackendType.PTX, decodeFlags);
                }
                if (cudaGraph) {
                    executionPlan.withCUDAGraph();
                }
            }
            if (PRE_COMPILE) {
                executionPlan.withPreCompilation();
            }
        }

        /**
         * The launch sizes of an execution on {@code grid} that scatters {@code staged} slots, merges ({@code merging})
         * and attends ({@code last}). Helpers with nothing to do exit at once, but a full grid of them still costs
         * microseconds on small steps: one work-group then (their loops are grid-stride). A replayed CUDA graph keeps its
         * launch sizes, so under graphs every execution launches the plan's capacity (work-groups past the batch return at
         * once): every step is the same launch.
         */
        void launchSizes(DecodeGrid grid, int staged, boolean merging, boolean last) {
            for (int s = 0; s < scatterGrids.length; s++) {
                scatterGrids[s].setGlobalWork(cudaGraph || staged > 0 ? scatterGlobal : PlanParts.HELPER_LOCAL, 1, 1);
                scatterGrids[s].setLocalWork(PlanParts.HELPER_LOCAL, 1, 1);
                if (mergeGrids != null) {
                    mergeGrids[s].setGlobalWork(cudaGraph || merging ? mergeGlobal : PlanParts.HELPER_LOCAL, 1, 1);
                    mergeGrids[s].setLocalWork(PlanParts.HELPER_LOCAL, 1, 1);
                }
            }
            if (attentionGrids != null) {
                int global = cudaGraph ? partialRows * grid.headTiles() * shardSpec.numKvHeads() * grid.localSize()
                        : last ? grid.attentionGlobalSize() : grid.localSize();
                for (WorkerGrid1D g : attentionGrids) {
                    g.setGlobalWork(global, 1, 1);
                    g.setLocalWork(grid.localSize(), 1, 1);
                }
            }
        }

        /**
         * Runs the first graph once with nothing to attend or write, if no step has yet: it uploads the pools and partials
         * that the prefill graphs use. Launch sizes as a step's (a replayed CUDA graph keeps those of its first run).
         */
        void upload() {
            if (uploaded) {
                return;
            }
            idleGrid.writeParams(params, 0, 0, 0, 0, true); // no sequences, nothing staged, attention skipped
            launchSizes(idleGrid, 0, false, false);
            if (graphCount > 1) {
                executionPlan.withGraph(0);
            }
            PlanParts.execute(executionPlan, stageK.length);
            uploaded = true;
        }

        /**
         * Shard {@code s}'s tasks of the set {@code tasks} ({@link #SCATTER}, {@link #ATTENTION}, {@link #MERGE}) in
         * {@code graph}: with {@code owner} null the graph uploads the pools and partials once and keeps them on the
         * device for the others, else it uses those of the graph named {@code owner}.
         */
        private void addShard(TaskGraph graph, String owner, int s, FloatArray partials, int tasks, boolean bulk) {
            TornadoNativeArray kPool = cache.keys(layer, s).array();
            TornadoNativeArray vPool = cache.values(layer, s).array();
            boolean quantized = config.dtype().isQuantized();
            // a latent cache's values are its keys' pool: one array, bound once
            Object[] pools = kPool == vPool ? new Object[] {kPool} : new Object[] {kPool, vPool};
            if (owner == null) {
                graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, pools);
                graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, partials);
                if (quantized) {
                    graph.transferToDevice(DataTransferMode.FIRST_EXECUTION, dequant[s]);
                }
            } else {
                if ((tasks & (SCATTER | ATTENTION)) != 0) {
                    graph.consumeFromDevice(owner, pools);
                }
                if ((tasks & (ATTENTION | MERGE)) != 0) {
                    graph.consumeFromDevice(owner, partials);
                }
                if (quantized && (tasks & ATTENTION) != 0) {
                    graph.consumeFromDevice(owner, dequant[s]);
                }
            }
            addTasks(graph, s, partials, tasks, bulk);
            if (owner == null) {
                graph.persistOnDevice(pools);
                graph.persistOnDevice(partials);
                if (quantized) {
                    graph.persistOnDevice(dequant[s]);
                }
            }
        }

        /**
         * Shard {@code s}'s tasks of the set {@code tasks}, with the per-step transfers they read; {@code bulk}: the scatter
         * reads the bulk graph's own stage.
         */
        private void addTasks(TaskGraph graph, int s, FloatArray partials, int tasks, boolean bulk) {
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
            DecodeGrid.Kernel kernel = kernel();
            String attention = PlanParts.taskName("attention", s);
            if ((tasks & SCATTER) != 0 && bulk) { // K rows, then V rows, as a packed stage; its own offsets and params
                graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, bulkStage[s]);
                PlanParts.addScatter(graph, PlanParts.taskName("scatter", s), ctx, kPool, vPool, bulkStage[s], bulkStage[s], bulkSlotOffsets,
                        bulkParams, hkv, d, bs, config.dtype());
            } else if ((tasks & SCATTER) != 0) {
                if (PACKED_INPUTS) {
                    graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, stageK[s]);
                } else {
                    graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, stageK[s], stageV[s]);
                }
                PlanParts.addScatter(graph, PlanParts.taskName("scatter", s), ctx, kPool, vPool, stageK[s], stageV[s], slotOffsets,
                        params, hkv, d, bs, config.dtype());
            }
            if ((tasks & ATTENTION) == 0) {
                return;
            }
            graph.transferToDevice(DataTransferMode.EVERY_EXECUTION, q);
            int dv = shardSpec.valueDim();
            if (kernel == DecodeGrid.Kernel.LATENT && kPool instanceof HalfFloatArray pool) { // one pool: keys, values inside
                graph.task(attention, LatentDecodeKernels::latentF16, ctx, pool, q, tables, lens, params, out, partials, hq, d, dv,
                        bs, scale);
            } else if (kernel == DecodeGrid.Kernel.LATENT && kPool instanceof IntArray pool) { // 8-bit codes, four per word
                graph.task(attention, LatentDecodeKernels::latentQ8, ctx, pool, dequant[s], q, tables, lens, params, out, partials,
                        hq, d, dv, bs, scale);
            } else if (kernel == DecodeGrid.Kernel.LATENT) {
                graph.task(attention, LatentDecodeKernels::latentF32, ctx, (FloatArray) kPool, q, tables, lens, params, out,
                        partials, hq, d, dv, bs, scale);
            } else if (config.dtype().isQuantized()) { // 8-bit codes, four per word
                IntArray k = (IntArray) kPool;
                IntArray v = (IntArray) vPool;
                FloatArray dequant = this.dequant[s];
                if (kernel == DecodeGrid.Kernel.STREAM) {
                    graph.task(attention, StreamDecodeKernels.eightBitBody(config.dtype().name(), d, g),
                            ctx, k, v, dequant, q, tables, lens, params, out, partials, hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.WARP) {
                    graph.task(attention, WarpQuadDecodeKernels::attentionQ8, ctx, k, v, dequant, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, shardSpec.softCap());
                } else {
                    graph.task(attention, HeadQuadDecodeKernels::attentionQ8, ctx, k, v, dequant, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale);
                }
            } else if (config.dtype() == KvDtype.BF16) { // two elements per word, the stream kernel only (DecodeGrid.resolve)
                graph.task(attention, StreamDecodeKernels.bf16Body(d, g), ctx, (IntArray) kPool, (IntArray) vPool, q, tables, lens,
                        params, out, partials, hkv, g, d, bs, scale);
            } else if (config.dtype() == KvDtype.FP16) {
                HalfFloatArray k = (HalfFloatArray) kPool;
                HalfFloatArray v = (HalfFloatArray) vPool;
                if (variant.equals("parallel")) {
                    graph.task(attention, ParallelDecodeKernels::decodeF16, k, v, q, tables, lens, params, out, maxSeqs,
                            hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.STREAM) {
                    graph.task(attention, StreamDecodeKernels.f16Body(d, g, vSums == VSums.FP16, bounded), ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.CHUNK && backend.packedHalfLoads()) {
                    graph.task(attention, ChunkDecodeKernels::attentionF16x2, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.CHUNK) {
                    graph.task(attention, ChunkDecodeKernels::attentionF16, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.QUADS) {
                    graph.task(attention, HeadQuadDecodeKernels::attentionF16, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.WARP) {
                    graph.task(attention, WarpQuadDecodeKernels::attentionF16, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale, shardSpec.softCap());
                } else {
                    graph.task(attention, HeadPairDecodeKernels::attentionF16, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale, shardSpec.softCap());
                }
            } else {
                FloatArray k = (FloatArray) kPool;
                FloatArray v = (FloatArray) vPool;
                if (variant.equals("parallel")) {
                    graph.task(attention, ParallelDecodeKernels::decodeF32, k, v, q, tables, lens, params, out, maxSeqs,
                            hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.CHUNK) {
                    graph.task(attention, ChunkDecodeKernels::attentionF32, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.QUADS) {
                    graph.task(attention, HeadQuadDecodeKernels::attentionF32, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale);
                } else if (kernel == DecodeGrid.Kernel.WARP) {
                    graph.task(attention, WarpQuadDecodeKernels::attentionF32, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale, shardSpec.softCap());
                } else {
                    graph.task(attention, HeadPairDecodeKernels::attentionF32, ctx, k, v, q, tables, lens, params, out,
                            partials, hkv, g, d, bs, scale, shardSpec.softCap());
                }
            }
            if (!variant.equals("parallel") && (tasks & MERGE) != 0) {
                if (mergeRows(backend)) {
                    graph.task(PlanParts.taskName("merge", s), PagedDecodeKernels::mergeRows, ctx, lens, params, partials, out, hq, dv);
                } else {
                    graph.task(PlanParts.taskName("merge", s), PagedDecodeKernels::mergePartitions, ctx, lens, params, partials, out, hq, dv);
                }
            }
        }

        void step(DecodeBatch batch, DecodeGrid grid, DecodeGrid.Tables batchTables, FloatArray userQ, FloatArray userOut,
                  FloatArray userLse) {
            boolean merges = grid.merges(userLse != null);
            int lseAt = userLse != null ? rows.lseAt() : 0;
            int n = batch.numSeqs();
            rows.load(userQ, n); // nothing to copy from the plan's own rows (stepRows)
            // One bulk copy with the tables' own row width (the kernels read it from params); columns past a row's
            // blocks are never read (kernels stop at the context length, and every entry below it was validated). A
            // windowed batch's rows start at their window's first block (DecodeGrid.tables).
            int width = batchTables.width();
            MemorySegment.copy(batchTables.flat(), 0, tables.getSegment(), ValueLayout.JAVA_INT, 4L * tablesBase, n * width);
            MemorySegment.copy(batch.contextLens(), 0, lens.getSegment(), ValueLayout.JAVA_INT, 4L * lensBase, n);
            int layerBase = 0; // the plan binds its layer's own pools
            int[] dirty = journal.drain(layer);
            long nanos = 0;
            int done = 0;
            do {
                Execution x = nextExecution(graphTasks, dirty.length - done, uploaded, stagingSlots, bulkSlots, !merges);
                boolean bulk = x.bulk();
                int staged = x.staged();
                for (int s = 0; s < stageK.length; s++) {
                    if (bulk) {
                        PlanParts.stage(cache, layer, s, dirty, done, staged, bulkSlotOffsets, bulkStage[s], bulkStage[s], bulkVBytes,
                                BULK_STAGE_THREADS ? copier : null);
                    } else {
                        PlanParts.stage(cache, layer, s, dirty, done, staged, slotOffsets, slotBase, stageK[s], stageV[s], stageVBytes);
                    }
                }
                if (bulk) {
                    bulkParams.set(DecodeParams.NUM_NEW_SLOTS, staged);
                }
                done += staged;
                boolean last = x.last();
                grid.writeParams(params, batch.contextLens(), batch.window(), n, layerBase, width, bulk ? 0 : staged, !last, lseAt);
                launchSizes(grid, staged, last && merges, last);
                // the task graph of the tasks this execution needs, once the first has uploaded the pools
                if (graphCount > 1) {
                    executionPlan.withGraph(x.graph());
                }
                TornadoExecutionResult result = PlanParts.execute(executionPlan, stageK.length);
                uploaded = true;
                nanos = !cudaGraph ? result.getProfilerResult().getDeviceKernelTime() : -1;
            } while (done < dirty.length);
            lastDeviceNanos = nanos;
            rows.store(userOut, n);
            if (userLse != null) {
                rows.storeLse(userLse, n);
            }
        }


        @Override
        public void close() {
            try {
                // every graph's buffers: with only the last-run graph listed, the first graph's pools stayed allocated
                // (TornadoVM counted them against tornado.device.memory until a process could create no more plans)
                PlanParts.free(executionPlan, device);
            } catch (Exception e) {
                throw new IllegalStateException("could not release the TornadoVM plan", e);
            }
        }
    }

    /**
     * The backend of the device a plan for {@code device} ("B:D", or null) runs on: {@code device},
     * else a whole-graph pin ({@code -Ddecode.device}, tornado-config), else TornadoVM's default 0:0.
     */
    public static Backend backendOf(String device) {
        TornadoDevice d = PlanParts.deviceFor(device);
        String name = d.getTornadoVMBackend().name();
        if (name.equals("VIRTUAL") && d.getClass().getSimpleName().startsWith("VirtualCUDA")) {
            name = "CUDA"; // -Dtornado.virtual.device=true: a CUDA device that prints its kernels and runs nothing
        }
        return Backend.of(name);
    }

    /** Task graph names must differ between the plans of one process: one per layer. */
    private static String graphName(int layer) {
        return layer == 0 ? "decode" : "decode" + layer;
    }

}
