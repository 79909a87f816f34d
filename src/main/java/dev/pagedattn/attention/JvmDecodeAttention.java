package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.cache.KvPool;
import java.lang.foreign.MemorySegment;
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

    private final KvCache cache;
    private final AttentionSpec spec;
    private final JvmSplitPlan plan;
    private final JvmChunkKernel[] kernels; // [numThreads] one per worker: its scratch
    private final JvmWorkers workers;

    // The step in progress: written under the lock before the workers start, read by them.
    private DecodeBatch batch;
    private int layer;
    private final MemorySegment[] keys;   // [poolShards] of [poolElements] of the pool dtype
    private final MemorySegment[] values; // [poolShards] of [poolElements] of the pool dtype
    private final KvPool[] keyPools;      // [poolShards]: the layer's pools, their scales (8-bit)
    private final KvPool[] valuePools;
    private MemorySegment q;      // [numSeqs][numQHeads][headDim] fp32
    private MemorySegment out;    // [numSeqs][numQHeads][headDim] fp32
    private final TornadoNativeArray[] segmentOwners = new TornadoNativeArray[4]; // q and out (positions 2, 3)
    private final MemorySegment[] segments = new MemorySegment[4];

    public JvmDecodeAttention(KvCache cache, AttentionSpec spec) {
        spec.requireMatches(cache.config());
        this.cache = cache;
        this.spec = spec;
        int shards = cache.config().poolShards();
        this.keys = new MemorySegment[shards];
        this.values = new MemorySegment[shards];
        this.keyPools = new KvPool[shards];
        this.valuePools = new KvPool[shards];
        int threads = Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors());
        if (threads < 1) {
            throw new IllegalArgumentException("pagedattn.jvm.threads=" + threads + " must be >= 1");
        }
        this.plan = new JvmSplitPlan(spec);
        this.kernels = new JvmChunkKernel[threads];
        for (int i = 0; i < threads; i++) {
            kernels[i] = new JvmChunkKernel(spec, cache.config().blockSize(), cache.config().dtype(), VECTOR);
        }
        this.workers = new JvmWorkers(threads, this::runItem);
    }

    @Override
    public String name() {
        return VECTOR ? "jvm" : "jvm-scalar";
    }

    /** Worker threads, the caller included. */
    public int numThreads() {
        return workers.numThreads();
    }

    @Override
    public synchronized void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out) {
        if (workers.isClosed()) {
            throw new IllegalStateException("decode after close(): this backend's threads are gone; create a new one");
        }
        KvCacheConfig c = cache.config();
        DecodeAttention.requireShapes(spec, c, batch, layer, q, out);
        plan.build(batch, workers.numThreads());
        this.batch = batch;
        this.layer = layer;
        for (int s = 0; s < keyPools.length; s++) {
            keyPools[s] = cache.keys(layer, s);
            valuePools[s] = cache.values(layer, s);
            keys[s] = keyPools[s].segment();
            values[s] = valuePools[s].segment();
        }
        this.q = segment(q, 2);
        this.out = segment(out, 3);
        try {
            workers.run(plan.numItems());
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
        return JvmSplitPlan.chunkTokens(batch.numSeqs(), spec.numKvHeads(), batch.maxContextLen(), batch.blockSize(),
                workers.numThreads());
    }

    private void runItem(int item, int worker) {
        JvmChunkKernel kernel = kernels[worker];
        KvLayout layout = cache.layout();
        int seq = plan.seq(item);
        int kvHead = plan.kvHead(item);
        int shard = layout.shardOf(kvHead);
        kernel.attend(keys[shard], values[shard], keyPools[shard].scale(kvHead), valuePools[shard].scale(kvHead), layout, batch,
                layer, seq, kvHead, plan.fromToken(item), plan.toToken(item),
                q, spec.numQHeads(), spec.scale(), PREFETCH);
        int slot = plan.slot(item);
        if (slot == JvmSplitPlan.NO_PARTIAL) {
            kernel.writeOutput(out, seq, kvHead, spec.numQHeads());
            return;
        }
        kernel.writePartial(plan, slot);
        int group = plan.group(item);
        if (plan.finishChunk(group)) {
            kernel.mergeInto(plan, plan.firstSlot(group), plan.numChunks(group), out, seq, kvHead, spec.numQHeads());
        }
    }

    @Override
    public void close() {
        workers.close();
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
     * {@code y[yOff ..] += p[pOff + t] * x[t * n ..]} over {@code n} elements for {@code t} in {@code [from, to)}, bit for
     * bit the {@link #axpy} calls in that order: with {@code n == 8} vectors (head dim 128 on 16-lane vectors) the row
     * {@code y} stays in registers across the rows of {@code x}; otherwise one {@code axpy} per row.
     */
    static void axpyRows(float[] y, int yOff, float[] p, int pOff, float[] x, int n, int from, int to) {
        var species = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;
        int lanes = species.length();
        if (!VECTOR || n != 8 * lanes) {
            for (int t = from; t < to; t++) {
                axpy(y, yOff, p[pOff + t], x, t * n, n);
            }
            return;
        }
        var y0 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff);
        var y1 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + lanes);
        var y2 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + 2 * lanes);
        var y3 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + 3 * lanes);
        var y4 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + 4 * lanes);
        var y5 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + 5 * lanes);
        var y6 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + 6 * lanes);
        var y7 = jdk.incubator.vector.FloatVector.fromArray(species, y, yOff + 7 * lanes);
        for (int t = from; t < to; t++) {
            var a = jdk.incubator.vector.FloatVector.broadcast(species, p[pOff + t]);
            int r = t * n;
            y0 = jdk.incubator.vector.FloatVector.fromArray(species, x, r).fma(a, y0);
            y1 = jdk.incubator.vector.FloatVector.fromArray(species, x, r + lanes).fma(a, y1);
            y2 = jdk.incubator.vector.FloatVector.fromArray(species, x, r + 2 * lanes).fma(a, y2);
            y3 = jdk.incubator.vector.FloatVector.fromArray(species, x, r + 3 * lanes).fma(a, y3);
            y4 = jdk.incubator.vector.FloatVector.fromArray(species, x, r + 4 * lanes).fma(a, y4);
            y5 = jdk.incubator.vector.FloatVector.fromArray(species, x, r + 5 * lanes).fma(a, y5);
            y6 = jdk.incubator.vector.FloatVector.fromArray(species, x, r + 6 * lanes).fma(a, y6);
            y7 = jdk.incubator.vector.FloatVector.fromArray(species, x, r + 7 * lanes).fma(a, y7);
        }
        y0.intoArray(y, yOff);
        y1.intoArray(y, yOff + lanes);
        y2.intoArray(y, yOff + 2 * lanes);
        y3.intoArray(y, yOff + 3 * lanes);
        y4.intoArray(y, yOff + 4 * lanes);
        y5.intoArray(y, yOff + 5 * lanes);
        y6.intoArray(y, yOff + 6 * lanes);
        y7.intoArray(y, yOff + 7 * lanes);
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
