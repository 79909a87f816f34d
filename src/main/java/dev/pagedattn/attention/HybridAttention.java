package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvCache;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

import java.util.Arrays;
import java.util.function.BiFunction;

/**
 * Attention over a {@link HybridKvCache}: one {@link DecodeAttention} per layer group (each on its group's cache, with
 * its layers' sinks), and a {@link PrefillAttention} paired with each when prefill is first asked for. A call names the
 * model's layer; this routes it to the layer's group, its index there and its window, so an engine writes its layer loop
 * as for a plain cache:
 *
 * <pre>
 *  HybridBatch batch = cache.batch(seqs);                  // once per step
 *  for (int layer = 0; layer &lt; layers; layer++) attention.decode(batch, layer, q[layer], out[layer]);
 * </pre>
 */
public final class HybridAttention implements AutoCloseable {
    private final HybridKvCache cache;
    private final AttentionSpec[] specs;
    private final DecodeAttention[] decoders;
    private final String backend;
    private final String device;
    private final PrefillAttention[] prefillers;
    private final boolean[] ownPrefill;     // prefillers[g] is not its decoder's own (close it here)
    private final JvmWorkers workers;       // the jvm decode backends' one pool of threads, or null
    private DecodeAttention last;           // the backend of the last decode, for lastDeviceNanos
    private PrefillAttention lastPrefill;
    private HybridBatch prefillKv;          // the prefill batches below were made for this batch and these qLens
    private int[] prefillQLens;
    private TreeMask[] prefillMasks;
    private PrefillBatch[] prefillBatches;

    private HybridAttention(HybridKvCache cache, AttentionSpec spec, String backend, String device, JvmWorkers workers,
                            BiFunction<KvCache, AttentionSpec, DecodeAttention> factory) {
        this.workers = workers;
        if (cache == null || spec == null) {
            throw new IllegalArgumentException("cache=" + cache + " spec=" + spec + ": both are needed");
        }
        this.cache = cache;
        this.backend = backend;
        this.device = device;
        int n = cache.numGroups();
        specs = new AttentionSpec[n];
        decoders = new DecodeAttention[n];
        prefillers = new PrefillAttention[n];
        ownPrefill = new boolean[n];
        if (spec.sinks().any() && spec.sinks().numLayers() != cache.numLayers()) {
            throw new IllegalArgumentException("sinks layers=" + spec.sinks().numLayers() + " does not match the model's numLayers="
                    + cache.numLayers());
        }
        try {
            for (int g = 0; g < n; g++) {
                specs[g] = spec.forLayers(cache.layers(g));
                decoders[g] = factory.apply(cache.group(g), specs[g]);
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * A backend ({@code jvm} or {@code tornado}) per group, as {@link Backends#create(String, KvCache, AttentionSpec, String, String)};
     * the {@code jvm} backends of the groups step on one pool of worker threads.
     */
    public static HybridAttention create(String backend, HybridKvCache cache, AttentionSpec spec, String device, String variant) {
        return create(backend, cache, spec, device, variant, null, null);
    }

    /** Same, with the tornado backend's kernel and V sums ({@link Backends#create(String, KvCache, AttentionSpec, String, String, String, String)}). */
    public static HybridAttention create(String backend, HybridKvCache cache, AttentionSpec spec, String device, String variant,
                                         String kernel, String vSums) {
        if (backend.equals("jvm")) { // every group's backend steps on one pool of threads (one step at a time anyway)
            JvmWorkers workers = new JvmWorkers(JvmDecodeAttention.threads(), (item, worker) -> {
                throw new IllegalStateException("a shared pool runs the task its step brings");
            });
            try {
                return new HybridAttention(cache, spec, backend, device, workers, (c, s) -> new JvmDecodeAttention(c, s, workers));
            } catch (RuntimeException e) {
                workers.close();
                throw e;
            }
        }
        return new HybridAttention(cache, spec, backend, device, null,
                (c, s) -> Backends.create(backend, c, s, device, variant, kernel, vSums));
    }

    /** The decode backend of group {@code g}. */
    public DecodeAttention group(int g) {
        cache.window(g); // names a bad group
        return decoders[g];
    }

    /** One decode step of model layer {@code layer}: its group's backend, tables and window ({@link DecodeAttention#decode}). */
    public void decode(HybridBatch batch, int layer, FloatArray q, FloatArray out) {
        DecodeAttention d = decoders[route(batch, layer)];
        d.decode(batch.forLayer(layer), cache.localLayer(layer), q, out);
        last = d;
    }

    /**
     * {@link #decode(HybridBatch, int, FloatArray, FloatArray)}, also writing each (sequence, query head)'s log-sum-exp to
     * {@code lse} ({@link DecodeAttention#decode(DecodeBatch, int, FloatArray, FloatArray, FloatArray)}; JVM backends).
     */
    public void decode(HybridBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        DecodeAttention d = decoders[route(batch, layer)];
        d.decode(batch.forLayer(layer), cache.localLayer(layer), q, out, lse);
        last = d;
    }

    /** {@link DecodeAttention#stepRows} of layer {@code layer}'s group. */
    public StepRows stepRows(HybridBatch batch, int layer) {
        return decoders[route(batch, layer)].stepRows(batch.forLayer(layer), cache.localLayer(layer));
    }

    /**
     * Prefill of model layer {@code layer}: sequence {@code i} of {@code kv} brings its last {@code qLens[i]} tokens as
     * queries ({@link PrefillAttention#prefill}), each seeing its causal prefix through the layer's window. The first
     * call makes each group's prefill backend, paired with its decode backend ({@link PrefillAttention#pairedWith}).
     */
    public void prefill(HybridBatch kv, int[] qLens, int layer, FloatArray q, FloatArray out) {
        prefill(kv, qLens, null, layer, q, out);
    }

    /**
     * {@link #prefill(HybridBatch, int[], int, FloatArray, FloatArray)} with a {@link TreeMask} per sequence over its new
     * tokens ({@code masks} or an entry null: causal), every group through the same trees (speculative decoding's
     * verification of token trees).
     */
    public void prefill(HybridBatch kv, int[] qLens, TreeMask[] masks, int layer, FloatArray q, FloatArray out) {
        prefill(kv, qLens, masks, layer, q, out, null);
    }

    /**
     * {@link #prefill(HybridBatch, int[], TreeMask[], int, FloatArray, FloatArray)}, also writing each (query, query head)'s
     * log-sum-exp to {@code lse} unless it is null ({@link PrefillAttention#prefill(PrefillBatch, int, FloatArray, FloatArray,
     * FloatArray)}; JVM backends).
     */
    public void prefill(HybridBatch kv, int[] qLens, TreeMask[] masks, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        int g = route(kv, layer);
        if (kv != prefillKv || !Arrays.equals(qLens, prefillQLens) || !Arrays.equals(masks, prefillMasks)) {
            PrefillBatch[] batches = new PrefillBatch[cache.numGroups()];
            for (int i = 0; i < batches.length; i++) {
                batches[i] = PrefillBatch.of(kv.group(i).window(DecodeBatch.NO_WINDOW), qLens, cache.window(i)).withMasks(masks);
            }
            prefillBatches = batches;
            prefillKv = kv;
            prefillQLens = qLens.clone();
            prefillMasks = masks == null ? null : masks.clone();
        }
        if (prefillers[g] == null) {
            PrefillAttention shared = decoders[g].prefill(); // PrefillAttention.pairedWith, remembering which it chose
            prefillers[g] = shared != null ? shared : PrefillAttention.create(backend, cache.group(g), specs[g], device);
            ownPrefill[g] = shared == null;
        }
        prefillers[g].prefill(prefillBatches[g], cache.localLayer(layer), q, out, lse);
        lastPrefill = prefillers[g];
    }

    private int route(HybridBatch batch, int layer) {
        if (batch == null || batch.cache() != cache) {
            throw new IllegalArgumentException("batch=" + batch + " was not taken from this attention's cache");
        }
        return cache.groupOf(layer);
    }

    /** Device time of the last decode, as {@link DecodeAttention#lastDeviceNanos} (-1 before any or without a device clock). */
    public long lastDeviceNanos() {
        return last == null ? -1 : last.lastDeviceNanos();
    }

    /** Device time of the last prefill, as {@link PrefillAttention#lastDeviceNanos}. */
    public long lastPrefillDeviceNanos() {
        return lastPrefill == null ? -1 : lastPrefill.lastDeviceNanos();
    }

    /** {@link DecodeAttention#reserve} on every group (a windowed group's tables keep a column per released block too). */
    public void reserve(int maxSeqs, int maxTokensPerSeq) {
        for (DecodeAttention d : decoders) {
            d.reserve(maxSeqs, maxTokensPerSeq);
        }
    }

    /** The groups' backends' name ({@code jvm}, {@code tornado-...}). */
    public String name() {
        return decoders[0].name();
    }

    /** Closes every group's prefill backend (unless it is its decoder's own), then every decode backend. */
    @Override
    public void close() {
        RuntimeException failure = null;
        for (int g = 0; g < decoders.length; g++) {
            try {
                if (ownPrefill[g]) {
                    prefillers[g].close();
                }
                if (decoders[g] != null) {
                    decoders[g].close();
                }
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (workers != null) {
            workers.close();
        }
        if (failure != null) {
            throw failure;
        }
    }
}
