package dev.pagedattn.tornado;

import dev.pagedattn.cache.KvDtype;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvPool;
import java.lang.foreign.MemorySegment;
import dev.pagedattn.kernels.PagedDecodeKernels;
import dev.pagedattn.kernels.ScatterKernels;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.exceptions.TornadoBailoutRuntimeException;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * What the decode and prefill plans share: the host side of the device-side scatter, the grids of
 * the grid-stride helper kernels (scatter, merge), the device of a "B:D" string, and how a layer
 * split into KV-head shards becomes one set of tasks per shard.
 */
final class PlanParts {
    /** Local size of the grid-stride helper kernels. */
    static final int HELPER_LOCAL = PagedDecodeKernels.MERGE_LOCAL; // the decode merge's local arrays are this size
    /**
     * Largest global size of a helper kernel: 264 work-groups (two per SM of an H100/H200). They run
     * on every step, most often with nothing to do; a full-size grid cost 13-30 us per step just to exit.
     */
    static final int HELPER_GLOBAL = 264 * HELPER_LOCAL;

    /** TornadoVM's bytecode buffer for a task graph, {@code -Dtornado.tvm.maxbytecodesize} (its default is 4096). */
    static final String BYTECODE_SIZE = "tornado.tvm.maxbytecodesize";

    /**
     * Length of each of the TornadoVM interpreter's event wait lists, {@code -Dtornado.max.events} (its default is 32768).
     * TornadoVM 5.2 refills every list with -1 at the start of every {@code execute()}: at its default that memset
     * was 43% of a 1 x 1k decode call's wall time on an H200 (async-profiler; benchmarks/NOTES.md, twenty-fifth
     * session, l2), about 55 us of each call. Our plans run on one in-order stream without TornadoVM's event
     * dependencies, so the lists stay empty; too short a list would fail loudly ("event list is too small"),
     * never silently.
     */
    static final String EVENT_LIST_SIZE = "tornado.max.events";

    static {
        // A layer split into KV-head shards puts a scatter, attention and merge task per shard in one
        // graph: at 8 shards TornadoVM's default buffer overflows, which it reports only as "Recover
        // option disabled". TornadoVM reads the property once, at its first graph compilation: this
        // default helps where no plan of the process compiled before (tornado-config/*.args set it too).
        if (System.getProperty(BYTECODE_SIZE) == null) {
            System.setProperty(BYTECODE_SIZE, "65536");
        }
        // Read once, when TornadoVM's runtime first starts: this default applies where nothing in the process
        // touched TornadoVM before the library's first plan (tornado-config/*.args set it too).
        if (System.getProperty(EVENT_LIST_SIZE) == null) {
            System.setProperty(EVENT_LIST_SIZE, "256");
        }
    }

    private PlanParts() {
    }

    /**
     * Sets the TornadoVM properties above where the JVM's flags leave them unset (this class's initialisation). The
     * classes that start TornadoVM's runtime call it from their own static initialisers, before their first TornadoVM
     * call.
     */
    static void defaults() {
        // the work is in the static initialiser; calling this makes sure it has run
    }

    /**
     * Runs a plan; a TornadoVM bailout of a graph with several KV-head shards is rethrown naming the
     * likely cause (TornadoVM's own message names none).
     */
    static TornadoExecutionResult execute(TornadoExecutionPlan plan, int shards) {
        try {
            return plan.execute();
        } catch (TornadoBailoutRuntimeException e) {
            if (shards == 1) {
                throw e;
            }
            throw new IllegalStateException("TornadoVM could not run the task graph of a layer split into poolShards=" + shards
                    + " arrays: if " + BYTECODE_SIZE + "=" + System.getProperty(BYTECODE_SIZE, "4096")
                    + " bytes were too few for its " + 3 * shards + " tasks, raise -D" + BYTECODE_SIZE + " (" + e.getMessage() + ")", e);
        }
    }

    /** The grid of a grid-stride helper kernel over {@code workItems} items. */
    static WorkerGrid1D helperGrid(int workItems) {
        return grid(helperGlobal(workItems), HELPER_LOCAL);
    }

    /** The global size of {@link #helperGrid}: whole work-groups, at most {@link #HELPER_GLOBAL}. */
    static int helperGlobal(int workItems) {
        int global = (workItems + HELPER_LOCAL - 1) / HELPER_LOCAL * HELPER_LOCAL;
        return Math.max(HELPER_LOCAL, Math.min(global, HELPER_GLOBAL));
    }

    /**
     * The prefill merge's {@code sinks} argument of {@code layer}, one per KV-head shard: shard {@code s} holds query heads
     * {@code [s * numQHeads / shards, (s + 1) * numQHeads / shards)}, so its array is {@code [numQHeads / shards]} of
     * their sinks (-inf where the layer has none: weight 0, for steps whose log-sum-exps merge every row).
     */
    static FloatArray[] sinks(AttentionSpec spec, int layer, int shards) {
        int hq = spec.numQHeads() / shards;
        FloatArray[] byShard = new FloatArray[shards];
        for (int s = 0; s < shards; s++) {
            byShard[s] = new FloatArray(hq);
            for (int h = 0; h < hq; h++) {
                byShard[s].set(h, spec.hasSinks(layer) ? spec.sinks().sink(layer, s * hq + h) : Float.NEGATIVE_INFINITY);
            }
        }
        return byShard;
    }

    static WorkerGrid1D grid(int global, int local) {
        WorkerGrid1D w = new WorkerGrid1D(global);
        w.setLocalWork(local, 1, 1);
        return w;
    }

    /**
     * Releases every graph's device buffers of {@code plan} and closes it, then clears the "reset" mark of the device it
     * ran on ({@link #deviceFor}). TornadoVM 5.2 keeps that
     * mark per device though a plan's reset cleans only its own queues and code: once one plan was freed, every warmed
     * plan on the device failed its next compilation ("reset() was called after warmup()"; upstream's branch
     * fix/device-reset-scoped-to-execution-plan scopes the mark to the plan). Seen on PoCL: a decode backend that had
     * warmed up, then another backend made and closed next to it, then a windowed step (a new graph) on the first.
     */
    static void free(TornadoExecutionPlan plan, String device) throws Exception {
        plan.withAllGraphs(); // withGraph(i) leaves only graph i listed, and freeDeviceMemory() frees the listed graphs'
        plan.freeDeviceMemory();
        plan.close();
        deviceFor(device).getDeviceContext().setResetToFalse();
    }

    /**
     * The device a plan for {@code device} ("B:D", or null) runs on: {@code device}, else a whole-graph pin
     * ({@code -Ddecode.device}, tornado-config), else TornadoVM's default 0:0; names a value that is not B:D.
     */
    static TornadoDevice deviceFor(String device) {
        String bd = device != null ? device : System.getProperty("decode.device", "0:0");
        if (!bd.matches("\\d+:\\d+")) {
            throw new IllegalArgumentException("decode.device=" + bd + " is not B:D (backend index:device index)");
        }
        return deviceOf(bd);
    }

    /** The TornadoVM device of a checked "B:D" (backend index:device index). */
    static TornadoDevice deviceOf(String bd) {
        int colon = bd.indexOf(':');
        return TornadoExecutionPlan.getDevice(Integer.parseInt(bd.substring(0, colon)), Integer.parseInt(bd.substring(colon + 1)));
    }

    /**
     * Host side of the device-side scatter ({@link dev.pagedattn.kernels.ScatterKernels}): copies the
     * current host K/V of {@code rows} dirty token slots {@code dirty[from ..]} of {@code layer}, the
     * KV heads of {@code shard}.
     *
     * @param slotOffsets [stagingSlots] pool offset of each staged slot's first element (the same in every shard)
     * @param stageK      [stagingSlots][headsPerShard][headDim], the pool's dtype
     * @param stageV      same shape
     */
    static void stage(KvCache cache, int layer, int shard, int[] dirty, int from, int rows, IntArray slotOffsets,
                      TornadoNativeArray stageK, TornadoNativeArray stageV) {
        stage(cache, layer, shard, dirty, from, rows, slotOffsets, 0, stageK, stageV, 0);
    }

    /**
     * {@link #stage} into a packed plan's arrays: the slots' offsets from {@code slotBase} of {@code slotOffsets}
     * ({@link dev.pagedattn.kernels.DecodeParams#SLOTS}), the V rows from byte {@code vBytes} of {@code stageV} (which
     * is then {@code stageK}, K first).
     */
    static void stage(KvCache cache, int layer, int shard, int[] dirty, int from, int rows, IntArray slotOffsets, int slotBase,
                      TornadoNativeArray stageK, TornadoNativeArray stageV, long vBytes) {
        stageRows(cache, layer, shard, dirty, from, 0, rows, slotOffsets, slotBase, stageK, stageV, vBytes);
    }

    /**
     * {@link #stage} of {@code rows} slots split over {@code copier}'s threads once they are large (a prefill's thousands of
     * new tokens: one copy per head and slot, K and V), or on the calling thread with {@code copier} null; slot offsets
     * from 0, the V rows from byte {@code vBytes} of {@code stageV} (0 for an array of their own).
     */
    static void stage(KvCache cache, int layer, int shard, int[] dirty, int from, int rows, IntArray slotOffsets,
                      TornadoNativeArray stageK, TornadoNativeArray stageV, long vBytes, RowCopier copier) {
        if (copier == null) {
            stageRows(cache, layer, shard, dirty, from, 0, rows, slotOffsets, 0, stageK, stageV, vBytes);
            return;
        }
        long rowBytes = 2L * cache.config().headsPerShard() * cache.config().headDim() * cache.config().dtype().bytes();
        copier.copy(rows, rowBytes, (r0, r1) -> stageRows(cache, layer, shard, dirty, from, r0, r1, slotOffsets, 0, stageK, stageV, vBytes));
    }

    /** Stage rows {@code [r0, r1)}: row r holds slot {@code dirty[from + r]}. */
    private static void stageRows(KvCache cache, int layer, int shard, int[] dirty, int from, int r0, int r1, IntArray slotOffsets,
                                  int slotBase, TornadoNativeArray stageK, TornadoNativeArray stageV, long vBytes) {
        KvCacheConfig config = cache.config();
        int heads = config.headsPerShard();
        int width = heads * config.headDim();
        int headDim = config.headDim();
        int headStride = cache.layout().headStride();
        long bytes = config.dtype().bytes();
        KvPool keys = cache.keys(layer, shard);
        KvPool values = cache.values(layer, shard);
        for (int r = r0; r < r1; r++) {
            int base = cache.layout().slotOffset(dirty[from + r]);
            slotOffsets.set(slotBase + r, base);
            for (int h = 0; h < heads; h++) {
                long src = (long) (base + h * headStride) * bytes;
                long dst = (long) (r * width + h * headDim) * bytes;
                MemorySegment.copy(keys.segment(), src, stageK.getSegment(), dst, headDim * bytes);
                if (!config.isLatent()) { // a latent cache's values are its keys: the scatter writes the one pool
                    MemorySegment.copy(values.segment(), src, stageV.getSegment(), vBytes + dst, headDim * bytes);
                }
            }
        }
    }

    /**
     * The device-side scatter of one shard's staged token slots into its K and V pools, the kernel for
     * the pools' {@code dtype} (words of 8-bit codes or bf16 pairs, fp16 or fp32).
     */
    static void addScatter(TaskGraph graph, String task, KernelContext ctx, TornadoNativeArray k, TornadoNativeArray v,
                           TornadoNativeArray stageK, TornadoNativeArray stageV, IntArray slotOffsets, IntArray params,
                           int heads, int headDim, int blockSize, KvDtype dtype) {
        if (k == v && k instanceof HalfFloatArray half) { // a latent cache: one pool, the K rows of the stage
            graph.task(task, ScatterKernels::scatterLatentF16, ctx, half, (HalfFloatArray) stageK, slotOffsets, params, headDim);
        } else if (k == v && k instanceof IntArray words) {
            graph.task(task, ScatterKernels::scatterLatentWords, ctx, words, (IntArray) stageK, slotOffsets, params, headDim);
        } else if (k == v) {
            graph.task(task, ScatterKernels::scatterLatentF32, ctx, (FloatArray) k, (FloatArray) stageK, slotOffsets, params, headDim);
        } else if (k instanceof IntArray words) {
            graph.task(task, ScatterKernels::scatterWords, ctx, words, (IntArray) v, (IntArray) stageK, (IntArray) stageV,
                    slotOffsets, params, heads, headDim, blockSize, dtype.wordShift());
        } else if (k instanceof HalfFloatArray half) {
            graph.task(task, ScatterKernels::scatterF16, ctx, half, (HalfFloatArray) v, (HalfFloatArray) stageK,
                    (HalfFloatArray) stageV, slotOffsets, params, heads, headDim, blockSize);
        } else {
            graph.task(task, ScatterKernels::scatterF32, ctx, (FloatArray) k, (FloatArray) v, (FloatArray) stageK, (FloatArray) stageV,
                    slotOffsets, params, heads, headDim, blockSize);
        }
    }

    /**
     * The PTX backend's JIT flags for a plan whose kernel runs under its own register cap ({@code maxRegisters}; 0: none),
     * at the optimization level of tornado-config/ptx.args, since a plan's flags replace the process's.
     */
    static String ptxJitFlags(int maxRegisters) {
        return "CU_JIT_OPTIMIZATION_LEVEL 4" + (maxRegisters > 0 ? " CU_JIT_MAX_REGISTERS " + maxRegisters : "");
    }

    /** A task name, numbered after the first shard's: {@code attention}, {@code attention1}, ... */
    static String taskName(String task, int shard) {
        return shard == 0 ? task : task + shard;
    }

    /**
     * Names a cache shape the TornadoVM kernels do not read: head dims above {@link PagedDecodeKernels#MAX_HEAD_DIM}, which
     * run on the JVM backend. Latent caches are one array per layer (fp16, fp32 or 8-bit), read by
     * {@link dev.pagedattn.kernels.LatentDecodeKernels} for decode and prefill alike.
     */
    static void requireKernelShape(KvCacheConfig config) {
        if (config.isLatent()) { // one KV head, so one array per layer (poolShards 1)
            return;
        }
        if (config.headDim() > PagedDecodeKernels.MAX_HEAD_DIM) {
            throw new IllegalArgumentException("headDim=" + config.headDim() + ": the TornadoVM kernels take head dims up to "
                    + PagedDecodeKernels.MAX_HEAD_DIM + "; larger ones run on the JVM backend (backend=jvm)");
        }
    }

    /** Names a cache that is a group of a hybrid cache on a shared pool: each group's plans would upload the whole pool. */
    static void requireOwnPool(KvCache cache) {
        if (cache.sharesPool()) {
            throw new IllegalArgumentException("cache: a group of a HybridKvCache.sharedPool; the TornadoVM backends need a pool per"
                    + " group (HybridKvCache.of or forMemory), or decode it on the JVM backend (backend=jvm)");
        }
    }
}
