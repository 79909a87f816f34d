package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.cache.KvPool;
import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The plain-JVM backend: one task per (sequence, KV head), run on a fork-join pool. A task widens
 * each K and V tile of its head once into fp32 scratch and uses it for the whole query group
 * (GQA reuse), with a per-block online softmax.
 *
 * <p>The dot products and the V accumulation use the Vector API when
 * {@code -Dpagedattn.jvm.vector=true} (the default; see benchmarks/NOTES.md for the measurement)
 * and plain loops otherwise. Threads: {@code -Dpagedattn.jvm.threads} (default: all processors).
 * Safe to call from several threads at once.
 */
public final class JvmDecodeAttention implements DecodeAttention {
    /** Read once: Vector API for dot/axpy. */
    public static final boolean VECTOR = Boolean.parseBoolean(System.getProperty("pagedattn.jvm.vector", "true"));
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private final KvCache cache;
    private final AttentionSpec spec;
    private final ForkJoinPool workers;

    public JvmDecodeAttention(KvCache cache, AttentionSpec spec) {
        spec.requireMatches(cache.config());
        this.cache = cache;
        this.spec = spec;
        int threads = Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors());
        if (threads < 1) {
            throw new IllegalArgumentException("pagedattn.jvm.threads=" + threads + " must be >= 1");
        }
        this.workers = new ForkJoinPool(threads);
    }

    @Override
    public String name() {
        return VECTOR ? "jvm" : "jvm-scalar";
    }

    @Override
    public void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out) {
        if (workers.isShutdown()) {
            throw new IllegalStateException("decode after close(): this backend's threads are gone; create a new one");
        }
        KvCacheConfig c = cache.config();
        DecodeAttention.requireShapes(spec, c, batch, layer, q, out);
        int tasks = batch.numSeqs() * spec.numKvHeads();
        try {
            workers.submit(() -> IntStream.range(0, tasks).parallel().forEach(t ->
                    attendOneHead(batch, layer, t / spec.numKvHeads(), t % spec.numKvHeads(), q, out))).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("decode interrupted", e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
        }
    }

    @Override
    public void close() {
        workers.shutdown();
    }

    private void attendOneHead(DecodeBatch batch, int layer, int seq, int kvHead, FloatArray q, FloatArray out) {
        KvCacheConfig c = cache.config();
        KvLayout layout = cache.layout();
        KvPool keys = cache.keys(layer);
        KvPool values = cache.values(layer);
        int d = spec.headDim();
        int g = spec.groupSize();
        int bs = c.blockSize();
        int len = batch.contextLen(seq);
        int qBase = (seq * spec.numQHeads() + kvHead * g) * d;

        float[] qs = new float[g * d];     // [g][d], pre-scaled
        float[] acc = new float[g * d];    // [g][d]
        float[] max = new float[g];
        float[] sum = new float[g];
        float[] tile = new float[bs * d];  // [slot][d] of the current K or V tile
        float[] p = new float[g * bs];     // [g][slot] scores, then probabilities
        for (int i = 0; i < g * d; i++) {
            qs[i] = q.get(qBase + i) * spec.scale();
        }
        java.util.Arrays.fill(max, Float.NEGATIVE_INFINITY);

        for (int j = 0, start = 0; start < len; j++, start += bs) {
            int n = Math.min(bs, len - start);
            int base = layout.tileBase(batch.block(seq, j), kvHead);
            keys.read(base, tile, 0, n * d);
            for (int h = 0; h < g; h++) {
                float blockMax = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < n; t++) {
                    float s = dot(qs, h * d, tile, t * d, d);
                    p[h * bs + t] = s;
                    blockMax = Math.max(blockMax, s);
                }
                float newMax = Math.max(max[h], blockMax);
                float correction = (float) Math.exp(max[h] - newMax); // exp(-inf) = 0 on the first block
                float blockSum = 0;
                for (int t = 0; t < n; t++) {
                    float e = (float) Math.exp(p[h * bs + t] - newMax);
                    p[h * bs + t] = e;
                    blockSum += e;
                }
                sum[h] = sum[h] * correction + blockSum;
                max[h] = newMax;
                if (correction != 1f) {
                    scale(acc, h * d, correction, d);
                }
            }
            values.read(base, tile, 0, n * d);
            for (int h = 0; h < g; h++) {
                for (int t = 0; t < n; t++) {
                    axpy(acc, h * d, p[h * bs + t], tile, t * d, d);
                }
            }
        }
        for (int h = 0; h < g; h++) {
            float inv = 1f / sum[h];
            for (int i = 0; i < d; i++) {
                out.set(qBase + h * d + i, acc[h * d + i] * inv);
            }
        }
    }

    static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        int i = 0;
        float s = 0;
        if (VECTOR) {
            FloatVector v = FloatVector.zero(SPECIES);
            for (int bound = SPECIES.loopBound(n); i < bound; i += SPECIES.length()) {
                v = FloatVector.fromArray(SPECIES, a, aOff + i).fma(FloatVector.fromArray(SPECIES, b, bOff + i), v);
            }
            // Lanes summed in a fixed order: reduceLanes(ADD) may reorder between the interpreter and
            // C2, and results must be bit-reproducible (prefix-cached == written from scratch).
            for (int lane = 0; lane < SPECIES.length(); lane++) {
                s += v.lane(lane);
            }
        }
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    /** {@code y[yOff..] += a * x[xOff..]}. */
    static void axpy(float[] y, int yOff, float a, float[] x, int xOff, int n) {
        int i = 0;
        if (VECTOR) {
            FloatVector av = FloatVector.broadcast(SPECIES, a);
            for (int bound = SPECIES.loopBound(n); i < bound; i += SPECIES.length()) {
                FloatVector.fromArray(SPECIES, x, xOff + i).fma(av, FloatVector.fromArray(SPECIES, y, yOff + i))
                        .intoArray(y, yOff + i);
            }
        }
        for (; i < n; i++) {
            y[yOff + i] += a * x[xOff + i];
        }
    }

    private static void scale(float[] y, int off, float a, int n) {
        for (int i = 0; i < n; i++) {
            y[off + i] *= a;
        }
    }
}
