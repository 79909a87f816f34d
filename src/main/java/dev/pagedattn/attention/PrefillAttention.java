package dev.pagedattn.attention;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import java.lang.reflect.InvocationTargetException;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Batched prefill attention: sequence i brings {@code qLen_i >= 1} query tokens whose K/V are
 * already in its cache; each attends causally (and within the batch's sliding window) to its own
 * sequence's K/V, read only through the batch's block tables. Every backend implements the same
 * contract.
 *
 * <pre>
 *  q   [totalQueries][numQHeads][headDim]  fp32, rows packed by PrefillBatch.qIndptr
 *  out [totalQueries][numQHeads][headDim]  fp32, every element written
 * </pre>
 * Scores are {@code scale * q.k} in fp32, masked to the visible positions, softmax in the stable
 * online form, output the softmax-weighted sum of V; in a layer with attention sinks (the spec's
 * {@link AttentionSinks}) each head's sink joins its softmax without a value.
 */
public interface PrefillAttention extends AutoCloseable {

    /** Runs prefill attention over {@code batch} in {@code layer}. */
    void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out);

    /**
     * {@link #prefill}, also writing each (query token, query head)'s log-sum-exp to {@code lse} ({@code
     * [totalQueries][numQHeads]}, natural log), as {@link DecodeAttention#decode(DecodeBatch, int, FloatArray, FloatArray,
     * FloatArray)} defines it. Every backend writes it (the default refuses it by name); {@code lse} null: the plain
     * prefill.
     */
    default void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        if (lse == null) {
            prefill(batch, layer, q, out);
            return;
        }
        throw new UnsupportedOperationException("backend=" + name() + " writes no log-sum-exp (lse): it does not override this method");
    }

    /**
     * Arrays for {@code layer}'s next prefill of {@code batch}, as {@link DecodeAttention#stepRows}: the caller writes the
     * batch's query rows into {@link StepRows#q()} (packed by {@link PrefillBatch#qIndptr}), passes both arrays to
     * {@link #prefill} and reads the output rows from {@link StepRows#out()}; a device backend's are the arrays its plan
     * sends and fetches (a prefill of 512 tokens for each of 32 sequences moves 268 MB of fp32 rows each way at
     * Llama-3-8B's heads), the JVM backend's hold exactly the batch's rows.
     */
    StepRows stepRows(PrefillBatch batch, int layer);

    /** Short name for output. */
    String name();

    /** Device time of the last {@link #prefill} in nanoseconds, or -1 without a device clock. */
    default long lastDeviceNanos() {
        return -1;
    }

    /**
     * Declares the largest batch the caller will prefill: up to {@code maxSeqs} sequences bringing up to
     * {@code maxQueryTokens} query tokens in all (vLLM's max_num_seqs and max_num_batched_tokens), with contexts of up to
     * {@code maxTokensPerSeq} tokens (max_model_len). Device backends size their per-step buffers for it once, so that
     * chunked prefill over growing prefixes never rebuilds them; batches past it still run. The default (the JVM backend,
     * which holds nothing per batch) only checks the values.
     */
    default void reserve(int maxSeqs, int maxQueryTokens, int maxTokensPerSeq) {
        requireReservation(null, maxSeqs, maxQueryTokens, maxTokensPerSeq);
    }

    /** Checks {@link #reserve}'s values ({@code config} null: no pool to hold the tokens against); names the bad one. */
    static void requireReservation(KvCacheConfig config, int maxSeqs, int maxQueryTokens, int maxTokensPerSeq) {
        DecodeAttention.requireReservation(config, maxSeqs, maxTokensPerSeq);
        if (maxQueryTokens < 1) {
            throw new IllegalArgumentException("maxQueryTokens=" + maxQueryTokens + " must be >= 1");
        }
    }

    @Override
    default void close() {
    }

    /** Creates {@code backend} ({@code jvm} or {@code tornado}); {@code device} is TornadoVM's B:D or null. */
    /**
     * The prefill backend an engine pairs with {@code decoder} on {@code cache}: {@code decoder}'s own
     * ({@link DecodeAttention#prefill()}: on TornadoVM one device copy of the pools for both), else a new one of
     * {@code backend} ({@link #create}). Close it before {@code decoder}, or with it.
     */
    static PrefillAttention pairedWith(DecodeAttention decoder, String backend, KvCache cache, AttentionSpec spec, String device) {
        PrefillAttention shared = decoder.prefill();
        return shared != null ? shared : create(backend, cache, spec, device);
    }

    static PrefillAttention create(String backend, KvCache cache, AttentionSpec spec, String device) {
        switch (backend) {
            case "jvm":
                return new JvmPrefillAttention(cache, spec);
            case "tornado":
                if (!Backends.tornadoRuntimePresent()) {
                    throw new IllegalArgumentException("backend=tornado needs the TornadoVM runtime: start the program with"
                            + " TornadoVM's tornado launcher (see README, 'Running on a GPU with TornadoVM')");
                }
                try {
                    return (PrefillAttention) Class.forName("dev.pagedattn.tornado.TornadoPrefillAttention")
                            .getConstructor(KvCache.class, AttentionSpec.class, String.class)
                            .newInstance(cache, spec, device);
                } catch (InvocationTargetException e) {
                    throw Backends.thrownBy(e);
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException("cannot create the TornadoVM prefill backend", e);
                }
            default:
                throw new IllegalArgumentException("backend=" + backend + " is not one of jvm, tornado");
        }
    }

    /** Checks the shapes of one call; messages name the bad value. */
    static void requireShapes(AttentionSpec spec, KvCacheConfig config, PrefillBatch batch, int layer, FloatArray q, FloatArray out) {
        requireBatch(config, batch, layer);
        if (!batch.causal() && spec.hasAlibi()) {
            throw new IllegalArgumentException("batch is non-causal and spec has ALiBi: its distances count from a query's"
                    + " position, which a non-causal query does not have");
        }
        if (batch.hasMasks() && spec.hasAlibi()) {
            throw new IllegalArgumentException("batch has token-tree masks and spec has ALiBi: ALiBi's distances would need"
                    + " every draft's tree position, which the kernels do not take; verify drafts of an ALiBi model as chains");
        }
        DecodeAttention.requireRows("q", q, spec.queryElements(batch.totalQueries()), "totalQueries");
        DecodeAttention.requireRows("out", out, spec.outputElements(batch.totalQueries()), "totalQueries");
    }

    /** Checks a prefill's batch and layer against the cache's configuration; names the bad value. */
    static void requireBatch(KvCacheConfig config, PrefillBatch batch, int layer) {
        if (batch == null) {
            throw new IllegalArgumentException("batch=null");
        }
        DecodeAttention.requireLayer(config, layer);
        batch.requireFits(config);
    }
}
