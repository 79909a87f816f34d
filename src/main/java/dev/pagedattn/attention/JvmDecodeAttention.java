package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.cache.KvPool;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * The plain-JVM backend. A step is cut into work items, one query group (sequence, KV head) over
 * one chunk of its context ({@link JvmSplitPlan}: long contexts at small batch are split so that
 * every core has work, and the chunks merge with log-sum-exp); a warm pool of workers
 * ({@link JvmWorkers}) claims them, each with its own scratch ({@link JvmChunkKernel}: fp16
 * widened by the hardware conversion, fixed-order sums), so a step allocates nothing and gives the
 * same bits on every run with the same thread count.
 *
 * <p>Tunables, read once: {@code pagedattn.jvm.threads} (default: all processors),
 * {@code pagedattn.jvm.vector} (true: the Vector API; false: plain loops, see
 * benchmarks/NOTES.md), {@code pagedattn.jvm.spinMicros} (50: how long an idle worker spins
 * before it parks), {@code pagedattn.jvm.prefetch} (true: touch the next block's tiles ahead).
 * Safe to call from several threads at once: steps run one after the other.
 */
public final class JvmDecodeAttention implements DecodeAttention {
    /** Read once: Vector API for widening, dot products and the V accumulation. */
    public static final boolean VECTOR = Boolean.parseBoolean(System.getProperty("pagedattn.jvm.vector", "true"));
    /**
     * Read once: touch the next block's tiles before computing on the current one
     * ({@code pagedattn.jvm.prefetch}, default true). In a model's decode step each layer's K/V was
     * evicted by the other layers', so the tiles come from DRAM; a benchmark that reads one layer's
     * few MiB step after step has them in cache and pays for the extra loads (benchmarks/NOTES.md).
     */
    public static final boolean PREFETCH = Boolean.parseBoolean(System.getProperty("pagedattn.jvm.prefetch", "true"));

    /**
     * Read once: the default of {@link #setCascade} ({@code pagedattn.jvm.cascade}, default true).
     */
    public static final boolean CASCADE = Boolean.parseBoolean(System.getProperty("pagedattn.jvm.cascade", "true"));

    private final KvCache cache;
    private final AttentionSpec spec;
    private volatile boolean cascade = CASCADE;
    private final JvmSplitPlan plan;
    private final JvmChunkKernel[] kernels; // [numThreads] one per worker: its scratch
    private final JvmChunkKernel[] wideKernels; // [numThreads] one per worker for cascade items (JvmSplitPlan.MAX_MEMBERS groups)
    private final JvmWorkers workers;
    private final JvmWorkers.Task step;  // runItem, made once (a shared pool takes the task with each step)
    private final boolean ownsWorkers;   // false: a HybridAttention's pool, closed by it
    private final float[][] layerSinks;     // [numLayers][numQHeads], null rows for layers without sinks

    // The step in progress: written under the lock before the workers start, read by them.
    private DecodeBatch batch;
    private int layer;
    private float[] sinks;        // [numQHeads] of the step's layer, or null
    private final MemorySegment[] keys;   // [poolShards] of [poolElements] of the pool dtype
    private final MemorySegment[] values; // [poolShards] of [poolElements] of the pool dtype
    private final KvPool[] keyPools;      // [poolShards]: the layer's pools, their scales (8-bit)
    private final KvPool[] valuePools;
    private MemorySegment q;      // [numSeqs][numQHeads][headDim] fp32
    private MemorySegment out;    // [numSeqs][numQHeads][valueDim] fp32
    private MemorySegment lse;    // [numSeqs][numQHeads] fp32, or null: no log-sum-exp asked for
    private final TornadoNativeArray[] segmentOwners = new TornadoNativeArray[4]; // q and out (positions 2, 3)
    private final MemorySegment[] segments = new MemorySegment[4];

    public JvmDecodeAttention(KvCache cache, AttentionSpec spec) {
        this(cache, spec, null);
    }

    /**
     * A backend whose steps run on {@code shared} (null: worker threads of its own, closed with it): the backends of a
     * {@code HybridAttention}'s groups share one pool, so a model of many small groups does not multiply threads. A
     * shared pool runs one step at a time: steps of backends that share it wait for each other.
     */
    JvmDecodeAttention(KvCache cache, AttentionSpec spec, JvmWorkers shared) {
        spec.requireMatches(cache.config());
        this.cache = cache;
        this.spec = spec;
        this.layerSinks = spec.sinks().rows(cache.config().numLayers());
        int shards = cache.config().poolShards();
        this.keys = new MemorySegment[shards];
        this.values = new MemorySegment[shards];
        this.keyPools = new KvPool[shards];
        this.valuePools = new KvPool[shards];
        int threads = shared != null ? shared.numThreads() : threads();
        this.plan = new JvmSplitPlan(spec);
        this.kernels = new JvmChunkKernel[threads];
        for (int i = 0; i < threads; i++) {
            kernels[i] = new JvmChunkKernel(spec, cache.config().blockSize(), cache.config().dtype(), VECTOR, 1,
                    cache.config().isLatent());
        }
        // a second kernel per worker for cascade items (8x the rows), made after the plain ones: a plain step's scratch
        // stays as small, and laid out as before cascade existed
        this.wideKernels = new JvmChunkKernel[threads];
        for (int i = 0; i < threads; i++) {
            wideKernels[i] = new JvmChunkKernel(spec, cache.config().blockSize(), cache.config().dtype(), VECTOR,
                    JvmSplitPlan.MAX_MEMBERS, cache.config().isLatent());
        }
        this.step = this::runItem;
        this.ownsWorkers = shared == null;
        this.workers = shared != null ? shared : new JvmWorkers(threads, step);
    }

    /** Worker threads a backend of its own starts ({@code pagedattn.jvm.threads}, default: every processor). */
    static int threads() {
        int threads = Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors());
        if (threads < 1) {
            throw new IllegalArgumentException("pagedattn.jvm.threads=" + threads + " must be >= 1");
        }
        return threads;
    }

    @Override
    public String name() {
        return VECTOR ? "jvm" : "jvm-scalar";
    }

    /**
     * Cascade attention on or off (default {@link #CASCADE}): sequences of a batch (wherever they stand in it) whose contexts
     * start in the same physical blocks (forks, parallel sampling, beams, prompts the prefix cache shares) read those blocks once per
     * step for all of them, instead of once each. The output has the same bits either way; only the time changes
     * (benchmarks/RESULTS.md, "Cascade attention on the JVM backend"). Off, every sequence reads its own blocks, as before.
     */
    public void setCascade(boolean on) {
        this.cascade = on;
    }

    /**
     * How many work items of a step over {@code batch} on this backend's threads would serve several sequences at once
     * (cascade attention; 0 when it is off, or when the batch shares no blocks or is too small for the threads to merge
     * any). For logs and tests: a step makes its items itself.
     */
    public synchronized int cascadeItems(DecodeBatch batch) {
        if (!cascade) {
            return 0;
        }
        plan.build(batch, workers.numThreads(), JvmSplitPlan.MAX_MEMBERS);
        return plan.cascadeItems();
    }

    /** Whether steps use cascade attention ({@link #setCascade}). */
    public boolean cascade() {
        return cascade;
    }

    /** Worker threads, the caller included. */
    public int numThreads() {
        return workers.numThreads();
    }

    /** Rows of exactly a batch's size, kept while callers ask for that size ({@link #stepRows}). */
    private StepRows rows;

    @Override
    public synchronized StepRows stepRows(DecodeBatch batch, int layer) {
        DecodeAttention.requireBatch(cache.config(), batch, layer);
        rows = StepRows.sized(rows, batch.numSeqs(), spec);
        return rows;
    }

    @Override
    public synchronized void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out) {
        decode(batch, layer, q, out, null);
    }

    @Override
    public synchronized void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        if (workers.isClosed()) {
            throw new IllegalStateException("decode after close(): this backend's threads are gone; create a new one");
        }
        KvCacheConfig c = cache.config();
        DecodeAttention.requireShapes(spec, c, batch, layer, q, out);
        if (lse != null) {
            DecodeAttention.requireLse(spec, batch.numSeqs(), lse);
        }
        plan.build(batch, workers.numThreads(), cascade ? JvmSplitPlan.MAX_MEMBERS : 1);
        this.batch = batch;
        this.layer = layer;
        this.sinks = layerSinks[layer];
        for (int s = 0; s < keyPools.length; s++) {
            keyPools[s] = cache.keys(layer, s);
            valuePools[s] = cache.values(layer, s);
            keys[s] = keyPools[s].segment();
            values[s] = valuePools[s].segment();
        }
        this.q = segment(q, 2);
        this.out = segment(out, 3);
        this.lse = lse == null ? null : lse.getSegment();
        try {
            if (ownsWorkers) {
                workers.run(plan.numItems());
            } else {
                synchronized (workers) { // other groups' backends step on the same threads
                    workers.run(step, plan.numItems());
                }
            }
        } finally {
            this.batch = null;
        }
    }

    /**
     * The payload segment of {@code array}, remembered per argument position: getSegment() makes a
     * new slice object on every call, and a decode loop passes the same arrays step after step.
     */
    private MemorySegment segment(TornadoNativeArray array, int position) {
        if (segmentOwners[position] != array) {
            segmentOwners[position] = array;
            segments[position] = array.getSegment();
        }
        return segments[position];
    }

    /** Tokens per split-K chunk that a step over {@code batch} uses (no split when >= its longest context). */
    public synchronized int chunkTokens(DecodeBatch batch) {
        return JvmSplitPlan.chunkTokens(batch.numSeqs(), spec.numKvHeads(), JvmSplitPlan.maxSpan(batch), batch.blockSize(),
                workers.numThreads());
    }

    private void runItem(int item, int worker) {
        JvmChunkKernel kernel = kernels[worker];
        KvLayout layout = cache.layout();
        int seq = plan.seq(item);
        int kvHead = plan.kvHead(item);
        int shard = layout.shardOf(kvHead);
        int members = plan.members(item);
        if (members > 1) {
            runShared(wideKernels[worker], layout, item, members, kvHead, shard);
            return;
        }
        kernel.attend(keys[shard], values[shard], keyPools[shard].scale(kvHead), valuePools[shard].scale(kvHead), layout, batch,
                layer, seq, kvHead, plan.fromToken(item), plan.toToken(item),
                q, spec.numQHeads(), spec.scale(), PREFETCH);
        int slot = plan.slot(item);
        if (slot == JvmSplitPlan.NO_PARTIAL) {
            kernel.writeOutput(out, lse, seq, kvHead, spec.numQHeads(), sinks);
            return;
        }
        kernel.writePartial(plan, slot);
        int group = plan.group(item);
        if (plan.finishChunk(group)) {
            kernel.mergeInto(plan, plan.firstSlot(group), plan.numChunks(group), out, lse, seq, kvHead, spec.numQHeads(), sinks);
        }
    }

    /**
     * A cascade item: its members' shared blocks once for all of them, then each member's own tokens; each member then
     * writes its output or its partial, and after all of them (a merge reuses the kernel's first rows) merges its group
     * where it finished the last chunk.
     */
    private void runShared(JvmChunkKernel kernel, KvLayout layout, int item, int members, int kvHead, int shard) {
        int g = spec.groupSize();
        kernel.attendShared(keys[shard], values[shard], keyPools[shard].scale(kvHead), valuePools[shard].scale(kvHead), layout, batch,
                plan.memberSeqs(), plan.memberAt(item), members, kvHead, plan.fromToken(item), plan.sharedTo(item), plan.chunkEnd(item),
                q, spec.numQHeads(), spec.scale(), PREFETCH);
        boolean partials = false;
        for (int j = 0; j < members; j++) {
            int slot = plan.memberSlot(item, j);
            if (slot == JvmSplitPlan.NO_PARTIAL) {
                kernel.writeOutput(out, lse, plan.member(item, j), kvHead, spec.numQHeads(), sinks, j * g);
            } else {
                kernel.writePartial(plan, slot, j * g);
                partials = true;
            }
        }
        for (int j = 0; partials && j < members; j++) {
            int group = plan.memberGroup(item, j);
            if (plan.memberSlot(item, j) != JvmSplitPlan.NO_PARTIAL && plan.finishChunk(group)) {
                kernel.mergeInto(plan, plan.firstSlot(group), plan.numChunks(group), out, lse, plan.member(item, j), kvHead, spec.numQHeads(),
                        sinks);
            }
        }
    }

    @Override
    public void close() {
        if (ownsWorkers) {
            workers.close();
        }
    }

    /** {@code y[yOff ..] += a * x[xOff ..]} over {@code n} elements, on the {@link #VECTOR} path (prefill's V update). */
    static void axpy(float[] y, int yOff, float a, float[] x, int xOff, int n) {
        int i = 0;
        if (VECTOR) {
            var species = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;
            var av = jdk.incubator.vector.FloatVector.broadcast(species, a);
            for (int bound = species.loopBound(n); i < bound; i += species.length()) {
                jdk.incubator.vector.FloatVector.fromArray(species, x, xOff + i)
                        .fma(av, jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + i)).intoArray(y, yOff + i);
            }
        }
        for (; i < n; i++) {
            y[yOff + i] += a * x[xOff + i];
        }
    }

    /**
     * The elements an {@link #axpy} over a value of {@code valueDim} dims in a row of {@code headDim} takes: {@code valueDim}
     * rounded up to whole vectors where the row has room ({@code valueDim} on the scalar path), so that each of them gets
     * the operation it gets in a row of {@code valueDim == headDim} (a vector fma, not the scalar tail's): a latent
     * cache's outputs keep the bits of the same values stored in a V pool.
     */
    static int axpyWidth(int valueDim, int headDim) {
        if (!VECTOR) {
            return valueDim;
        }
        int l = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        return Math.min(Math.max(valueDim, l * (headDim / l)), (valueDim + l - 1) / l * l);
    }

    /**
     * {@code y[yOff ..] += p[pOff + t] * x[t * n ..]} over {@code n} elements for {@code t} in {@code [from, to)}, bit for
     * bit the {@link #axpy} calls in that order: for a row that fits registers ({@code JvmLaneTree.registerRow}: head dims
     * 64, 128 and 256 on 16-lane vectors) {@code y} stays in registers across the rows of {@code x}; otherwise one
     * {@code axpy} per row.
     */
    static void axpyRows(float[] y, int yOff, float[] p, int pOff, float[] x, int n, int from, int to) {
        if (!VECTOR || !JvmLaneTree.registerRow(n)) {
            for (int t = from; t < to; t++) {
                axpy(y, yOff, p[pOff + t], x, t * n, n);
            }
            return;
        }
        VectorSpecies<Float> s = JvmLaneTree.FLOATS;
        int l = s.length();
        int m = n / l;
        FloatVector z = FloatVector.zero(s);
        FloatVector y0 = FloatVector.fromArray(s, y, yOff);
        FloatVector y1 = FloatVector.fromArray(s, y, yOff + l);
        FloatVector y2 = FloatVector.fromArray(s, y, yOff + 2 * l);
        FloatVector y3 = FloatVector.fromArray(s, y, yOff + 3 * l);
        FloatVector y4 = m < 8 ? z : FloatVector.fromArray(s, y, yOff + 4 * l);
        FloatVector y5 = m < 8 ? z : FloatVector.fromArray(s, y, yOff + 5 * l);
        FloatVector y6 = m < 8 ? z : FloatVector.fromArray(s, y, yOff + 6 * l);
        FloatVector y7 = m < 8 ? z : FloatVector.fromArray(s, y, yOff + 7 * l);
        FloatVector y8 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 8 * l);
        FloatVector y9 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 9 * l);
        FloatVector y10 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 10 * l);
        FloatVector y11 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 11 * l);
        FloatVector y12 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 12 * l);
        FloatVector y13 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 13 * l);
        FloatVector y14 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 14 * l);
        FloatVector y15 = m < 16 ? z : FloatVector.fromArray(s, y, yOff + 15 * l);
        for (int t = from; t < to; t++) {
            FloatVector a = FloatVector.broadcast(s, p[pOff + t]);
            int r = t * n;   // axpy's x.fma(a, y) per element, rows in order
            y0 = FloatVector.fromArray(s, x, r).fma(a, y0);
            y1 = FloatVector.fromArray(s, x, r + l).fma(a, y1);
            y2 = FloatVector.fromArray(s, x, r + 2 * l).fma(a, y2);
            y3 = FloatVector.fromArray(s, x, r + 3 * l).fma(a, y3);
            if (m >= 8) {
                y4 = FloatVector.fromArray(s, x, r + 4 * l).fma(a, y4);
                y5 = FloatVector.fromArray(s, x, r + 5 * l).fma(a, y5);
                y6 = FloatVector.fromArray(s, x, r + 6 * l).fma(a, y6);
                y7 = FloatVector.fromArray(s, x, r + 7 * l).fma(a, y7);
            }
            if (m >= 16) {
                y8 = FloatVector.fromArray(s, x, r + 8 * l).fma(a, y8);
                y9 = FloatVector.fromArray(s, x, r + 9 * l).fma(a, y9);
                y10 = FloatVector.fromArray(s, x, r + 10 * l).fma(a, y10);
                y11 = FloatVector.fromArray(s, x, r + 11 * l).fma(a, y11);
                y12 = FloatVector.fromArray(s, x, r + 12 * l).fma(a, y12);
                y13 = FloatVector.fromArray(s, x, r + 13 * l).fma(a, y13);
                y14 = FloatVector.fromArray(s, x, r + 14 * l).fma(a, y14);
                y15 = FloatVector.fromArray(s, x, r + 15 * l).fma(a, y15);
            }
        }
        y0.intoArray(y, yOff);
        y1.intoArray(y, yOff + l);
        y2.intoArray(y, yOff + 2 * l);
        y3.intoArray(y, yOff + 3 * l);
        if (m >= 8) {
            y4.intoArray(y, yOff + 4 * l);
            y5.intoArray(y, yOff + 5 * l);
            y6.intoArray(y, yOff + 6 * l);
            y7.intoArray(y, yOff + 7 * l);
        }
        if (m >= 16) {
            y8.intoArray(y, yOff + 8 * l);
            y9.intoArray(y, yOff + 9 * l);
            y10.intoArray(y, yOff + 10 * l);
            y11.intoArray(y, yOff + 11 * l);
            y12.intoArray(y, yOff + 12 * l);
            y13.intoArray(y, yOff + 13 * l);
            y14.intoArray(y, yOff + 14 * l);
            y15.intoArray(y, yOff + 15 * l);
        }
    }

    /** The dot product the kernel uses (lanes folded by a fixed tree), on the {@link #VECTOR} path. */
    static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return JvmLaneTree.dot(a, aOff, b, bOff, n, VECTOR);
    }

    /** {@code out[outOff + t] = dot(q, qOff, k, t * n, n)} for {@code t} in {@code [from, to)} (prefill's scores). */
    static void dots(float[] q, int qOff, float[] k, int n, int from, int to, float[] out, int outOff) {
        if (VECTOR) {
            JvmLaneTree.dots(q, qOff, k, n, from, to, out, outOff);
        } else {
            for (int t = from; t < to; t++) {
                out[outOff + t] = dot(q, qOff, k, t * n, n);
            }
        }
    }
}
