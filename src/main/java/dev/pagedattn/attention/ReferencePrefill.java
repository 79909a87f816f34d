package dev.pagedattn.attention;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.PageTable;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;
import java.util.stream.IntStream;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Textbook prefill attention in fp64, for checking backends. Like {@link ReferenceAttention} it
 * gathers K and V through each sequence's own {@link PageTable}, not through the batch's block
 * tables, and for every query token computes a two-pass softmax over exactly the positions it may
 * see: {@code max(0, p - window + 1) .. p} (chunks of C: {@code p - p % C .. p}), less the new tokens a {@link TreeMask} hides. Soft-capped scores, ALiBi and
 * sinks as in {@link ReferenceAttention}.
 */
public final class ReferencePrefill {
    private ReferencePrefill() {
    }

    /**
     * Attention for row i of {@code batch} = sequence {@code seqs[i]}; result
     * {@code [totalQueries][numQHeads][valueDim]}. Only the batch's lengths, query layout and window
     * are used.
     */
    public static double[] prefill(KvCache cache, AttentionSpec spec, int layer, int[] seqs, PrefillBatch batch, FloatArray q) {
        return prefill(cache, spec, layer, seqs, batch, q, n -> { });
    }

    /** Same; {@code progress} receives the number of sequences done. */
    public static double[] prefill(KvCache cache, AttentionSpec spec, int layer, int[] seqs, PrefillBatch batch, FloatArray q,
                                   LongConsumer progress) {
        spec.requireMatches(cache.config());
        if (seqs.length != batch.numSeqs()) {
            throw new IllegalArgumentException("seqs.length=" + seqs.length + " does not match batch numSeqs=" + batch.numSeqs());
        }
        double[] out = new double[batch.totalQueries() * spec.numQHeads() * spec.valueDim()];
        AtomicLong done = new AtomicLong();
        IntStream.range(0, seqs.length).parallel().forEach(i -> {
            attendSequence(cache, spec, layer, seqs[i], batch, i, q, out, 0, batch.qLen(i), 0, null);
            long n = done.incrementAndGet();
            synchronized (done) {
                progress.accept(n);
            }
        });
        return out;
    }

    /**
     * Query rows {@code first .. first + n - 1} of row {@code i} of {@code batch} (sequence {@code seq}) alone: {@code
     * [n][numQHeads][valueDim]}, what {@link #prefill} gives those rows; {@code q} holds the whole batch's queries.
     */
    public static double[] rows(KvCache cache, AttentionSpec spec, int layer, int seq, PrefillBatch batch, int i, int first, int n,
                                FloatArray q) {
        spec.requireMatches(cache.config());
        if (first < 0 || n < 1 || first + n > batch.qLen(i)) {
            throw new IllegalArgumentException("rows " + first + ".." + (first + n - 1) + " are not queries of row " + i + " (qLen="
                    + batch.qLen(i) + ")");
        }
        double[] out = new double[n * spec.numQHeads() * spec.valueDim()];
        attendSequence(cache, spec, layer, seq, batch, i, q, out, first, first + n, batch.qStart(i) + first, null);
        return out;
    }

    /**
     * {@link #prefill(KvCache, AttentionSpec, int, int[], PrefillBatch, FloatArray)}, also writing each (query, query head)'s
     * log-sum-exp in fp64 to {@code lse} ({@code [totalQueries][numQHeads]}; the sink included).
     */
    public static double[] prefill(KvCache cache, AttentionSpec spec, int layer, int[] seqs, PrefillBatch batch, FloatArray q,
                                   double[] lse) {
        spec.requireMatches(cache.config());
        if (seqs.length != batch.numSeqs()) {
            throw new IllegalArgumentException("seqs.length=" + seqs.length + " does not match batch numSeqs=" + batch.numSeqs());
        }
        if (lse == null || lse.length != batch.totalQueries() * spec.numQHeads()) {
            throw new IllegalArgumentException("lse.length=" + (lse == null ? "null" : lse.length) + " expected totalQueries*numQHeads="
                    + batch.totalQueries() * spec.numQHeads());
        }
        double[] out = new double[batch.totalQueries() * spec.numQHeads() * spec.valueDim()];
        IntStream.range(0, seqs.length).parallel()
                .forEach(i -> attendSequence(cache, spec, layer, seqs[i], batch, i, q, out, 0, batch.qLen(i), 0, lse));
        return out;
    }

    /** Queries {@code [jFrom, jTo)} of {@code row}; packed query row {@code r} goes to row {@code r - outFirst} of {@code out}. */
    private static void attendSequence(KvCache cache, AttentionSpec spec, int layer, int seq, PrefillBatch batch, int row,
                                       FloatArray q, double[] out, int jFrom, int jTo, int outFirst, double[] lse) {
        PageTable table = cache.pageTable(seq);
        int len = batch.contextLen(row);
        if (len > table.numTokens()) {
            throw new IllegalArgumentException("contextLen[" + row + "]=" + len + " exceeds seq=" + seq + " length " + table.numTokens());
        }
        int d = spec.headDim();
        double[] k = new double[len * d];
        double[] v = new double[len * d];
        double[] scores = new double[len];
        for (int kvHead = 0; kvHead < spec.numKvHeads(); kvHead++) {
            ReferenceAttention.gather(cache, layer, table, kvHead, batch.firstVisible(row, 0), len, k, v);
            for (int j = jFrom; j < jTo; j++) {
                int p = batch.position(row, j);
                int first = batch.firstVisible(row, j);
                int last = batch.lastVisible(row, j); // p, or with a mask the context's end (the mask decides)
                for (int h = kvHead * spec.groupSize(); h < (kvHead + 1) * spec.groupSize(); h++) {
                    int qBase = ((batch.qStart(row) + j) * spec.numQHeads() + h) * d;
                    double sink = spec.hasSinks(layer) ? spec.sinks().sink(layer, h) : Double.NEGATIVE_INFINITY; // a score without a value
                    double max = sink;
                    for (int pos = first; pos <= last; pos++) {
                        if (!batch.sees(row, j, pos)) { // a new token the sequence's TreeMask hides
                            scores[pos] = Double.NEGATIVE_INFINITY;
                            continue;
                        }
                        double s = 0;
                        for (int e = 0; e < d; e++) {
                            s += (double) q.get(qBase + e) * k[pos * d + e];
                        }
                        scores[pos] = ReferenceAttention.logit(spec, h, s, pos, p);
                        max = Math.max(max, scores[pos]);
                    }
                    double total = Math.exp(sink - max); // 0 without a sink
                    for (int pos = first; pos <= last; pos++) {
                        scores[pos] = Math.exp(scores[pos] - max);
                        total += scores[pos];
                    }
                    if (lse != null) {
                        lse[(batch.qStart(row) + j) * spec.numQHeads() + h] = max + Math.log(total);
                    }
                    int dv = spec.valueDim(); // a latent cache's values: the first latentDim elements of each key
                    int oBase = ((batch.qStart(row) + j - outFirst) * spec.numQHeads() + h) * dv;
                    for (int e = 0; e < dv; e++) {
                        double o = 0;
                        for (int pos = first; pos <= last; pos++) {
                            o += scores[pos] * v[pos * d + e];
                        }
                        out[oBase + e] = o / total;
                    }
                }
            }
        }
    }
}
