package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Batched decode attention: one query token per sequence against that sequence's cached K/V,
 * read only through the batch's block tables. Every backend implements the same contract.
 *
 * <pre>
 *  q   [numSeqs][numQHeads][headDim]  fp32
 *  out [numSeqs][numQHeads][headDim]  fp32, every element written
 * </pre>
 * Scores are {@code scale * q.k} accumulated in fp32, softmax is the numerically stable
 * (max-subtracted, online) form, and the output is the softmax-weighted sum of V; in a layer with
 * attention sinks (the spec's {@link AttentionSinks}) each head's sink joins its softmax without a value.
 */
public interface DecodeAttention extends AutoCloseable {

    /**
     * Runs one decode step over {@code batch} in {@code layer}; a windowed batch ({@link DecodeBatch#window(int)}) sees
     * each sequence's last {@code window} tokens only, and reads only those.
     */
    void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out);

    /**
     * {@link #decode}, also writing each (sequence, query head)'s log-sum-exp to {@code lse} ({@code [numSeqs][numQHeads]},
     * natural log; FlashInfer's {@code return_lse}): {@code ln(sum over the positions seen of exp(s))} of the row's scores
     * {@code s} as its softmax takes them (scaled, capped, biased), plus {@code exp(sink)} in a layer with sinks. With it,
     * two attentions over disjoint parts of a context merge into the attention over both ({@link AttentionStates#merge}):
     * context split across caches, devices or processes, a shared prefix attended once. Every backend writes it (the
     * default refuses it by name); {@code lse} null: {@link #decode(DecodeBatch, int, FloatArray, FloatArray)}.
     */
    default void decode(DecodeBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        if (lse == null) {
            decode(batch, layer, q, out);
            return;
        }
        throw new UnsupportedOperationException("backend=" + name() + " writes no log-sum-exp (lse): it does not override this method");
    }

    /**
     * Arrays for {@code layer}'s next decode of {@code batch}: the caller writes the batch's query rows into
     * {@link StepRows#q()} (sequence i's at {@code i * numQHeads * headDim}), passes both arrays to {@link #decode} and
     * reads the output rows from {@link StepRows#out()}. A device backend returns the arrays its plan sends and fetches,
     * which may hold more rows than the batch (the rest are ignored), so that {@code decode} copies nothing between the
     * caller's arrays and its own (on an H200 that saves about half the wall time of a 128-sequence step:
     * benchmarks/RESULTS.md, "A step's rows"); take them again when the batch grows. The JVM backend, which reads the
     * caller's arrays where they are, returns arrays of exactly the batch's rows, the same ones while that size stays.
     */
    StepRows stepRows(DecodeBatch batch, int layer);

    /** Short name for output ({@code jvm}, {@code tornado-fused}, ...). */
    String name();

    /**
     * Device time of the last {@link #decode} in nanoseconds as the device measured it, or -1 when
     * the backend has no device clock (the caller then times the call itself).
     */
    default long lastDeviceNanos() {
        return -1;
    }

    /**
     * Declares the largest batch the caller will decode: up to {@code maxSeqs} sequences of up to
     * {@code maxTokensPerSeq} tokens each (vLLM's max_num_seqs and max_model_len). Device backends size their
     * per-step buffers for it once, so that a decode loop whose sequences grow never rebuilds them; batches past
     * it still run. The default (the JVM backend, which holds nothing per batch) only checks the values.
     */
    default void reserve(int maxSeqs, int maxTokensPerSeq) {
        requireReservation(null, maxSeqs, maxTokensPerSeq);
    }

    /** Checks {@link #reserve}'s values ({@code config} null: no pool to hold the tokens against); names the bad one. */
    static void requireReservation(KvCacheConfig config, int maxSeqs, int maxTokensPerSeq) {
        if (maxSeqs < 1) {
            throw new IllegalArgumentException("maxSeqs=" + maxSeqs + " must be >= 1");
        }
        if (maxTokensPerSeq < 1) {
            throw new IllegalArgumentException("maxTokensPerSeq=" + maxTokensPerSeq + " must be >= 1");
        }
        if (config != null && (long) maxTokensPerSeq > (long) config.numBlocks() * config.blockSize()) {
            throw new IllegalArgumentException("maxTokensPerSeq=" + maxTokensPerSeq + " exceeds the pool's "
                    + (long) config.numBlocks() * config.blockSize() + " token slots");
        }
    }

    /**
     * The prefill backend that shares what this backend keeps of its cache, or null where it keeps nothing of its own: a
     * TornadoVM backend keeps a device copy of the pools, and its prefill backend runs on that copy, so a chunk it writes is
     * on the device for the next decode step and the device holds one copy ({@code TornadoDecodeAttention.prefill()}); the
     * JVM backend reads the host pools (null: pair it with {@link PrefillAttention#create}). {@link
     * PrefillAttention#pairedWith} chooses.
     */
    default PrefillAttention prefill() {
        return null;
    }

    /** Releases threads or device memory; the default holds none. */
    @Override
    default void close() {
    }

    /** Checks the shapes of one call; messages name the bad value. */
    static void requireShapes(AttentionSpec spec, KvCacheConfig config, DecodeBatch batch, int layer, FloatArray q, FloatArray out) {
        requireBatch(config, batch, layer);
        requirePositions(spec, batch);
        requireRows("q", q, spec.queryElements(batch.numSeqs()), "numSeqs");
        requireRows("out", out, spec.outputElements(batch.numSeqs()), "numSeqs");
    }

    /** Refuses ALiBi over a batch of selected blocks ({@code DecodeBatch.selectBlocks}), whose positions are renumbered. */
    static void requirePositions(AttentionSpec spec, DecodeBatch batch) {
        if (batch != null && batch.selected() && spec.hasAlibi()) {
            throw new IllegalArgumentException("batch of selected blocks (selectBlocks) and spec has ALiBi: its distances count"
                    + " positions, which the selection renumbers");
        }
    }

    /** Checks a decode's batch and layer against the cache's configuration; names the bad value. */
    static void requireBatch(KvCacheConfig config, DecodeBatch batch, int layer) {
        if (batch == null) {
            throw new IllegalArgumentException("batch=null (take one with KvCache.batch)");
        }
        requireLayer(config, layer);
        batch.requireFits(config);
    }

    /** Checks that {@code layer} is one of the cache's. */
    static void requireLayer(KvCacheConfig config, int layer) {
        if (layer < 0 || layer >= config.numLayers()) {
            throw new IllegalArgumentException("layer=" + layer + " is outside [0, " + config.numLayers() + ")");
        }
    }

    /** Checks that {@code lse} holds exactly {@code rows * numQHeads} elements; names the bad size. */
    static void requireLse(AttentionSpec spec, int rows, FloatArray lse) {
        long n = (long) rows * spec.numQHeads();
        if (lse.getSize() != n) {
            throw new IllegalArgumentException("lse.size=" + lse.getSize() + " expected rows*numQHeads=" + n);
        }
    }

    /**
     * Checks that {@code rows} ({@code name}: q or out) holds exactly {@code elements}, {@code count} rows
     * ({@code numSeqs} or {@code totalQueries}) of numQHeads * headDim; names the bad size.
     */
    static void requireRows(String name, FloatArray rows, long elements, String count) {
        if (rows == null || rows.getSize() != elements) {
            throw new IllegalArgumentException(name + ".size=" + (rows == null ? "null" : rows.getSize())
                    + (name.equals("q") ? " expected " + count + "*numQHeads*headDim=" : " expected " + count
                    + "*numQHeads*valueDim=") + elements);
        }
    }
}
