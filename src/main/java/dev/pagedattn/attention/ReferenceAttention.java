package dev.pagedattn.attention;

import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.cache.KvPool;
import dev.pagedattn.cache.PageTable;
import java.util.stream.IntStream;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Textbook decode attention in fp64, for checking backends. It gathers each sequence's K and V
 * through the sequence's own {@link PageTable} (not through the exported block tables a backend
 * reads), then computes {@code softmax(scale * q K^T) V} with a two-pass max-subtracted softmax. With logit
 * soft-capping ({@link AttentionSpec#softCap()}) every score {@code s} becomes {@code cap * tanh(s / cap)} in fp64
 * ({@link Math#tanh}) before the softmax, then ALiBi adds {@code slope_h * (key - query)}; a sink joins uncapped and
 * unbiased.
 */
public final class ReferenceAttention {
    private ReferenceAttention() {
    }

    /**
     * Attention for {@code seqs} in {@code layer}; result {@code [numSeqs][numQHeads][valueDim]} (a latent cache's values are
     * the first {@code latentDim} elements of its keys).
     */
    public static double[] decode(KvCache cache, AttentionSpec spec, int layer, int[] seqs, FloatArray q) {
        return decode(cache, spec, layer, seqs, q, n -> { });
    }

    /** Same; {@code progress} receives the number of sequences done (from several threads, increasing). */
    public static double[] decode(KvCache cache, AttentionSpec spec, int layer, int[] seqs, FloatArray q,
                                  java.util.function.LongConsumer progress) {
        return decode(cache, spec, layer, seqs, q, DecodeBatch.NO_WINDOW, progress);
    }

    /**
     * Same with a sliding window: each sequence's query (at position {@code len - 1}) sees positions
     * {@code max(0, len - window) .. len - 1} only ({@link DecodeBatch#NO_WINDOW}: all of them); with chunks of C
     * ({@code AttentionWindow.chunked(C)}) those of its own chunk, {@code p - p % C .. p} for {@code p = len - 1}.
     */
    public static double[] decode(KvCache cache, AttentionSpec spec, int layer, int[] seqs, FloatArray q, int window,
                                  java.util.function.LongConsumer progress) {
        AttentionWindow.require("window", window);
        spec.requireMatches(cache.config());
        double[] out = new double[seqs.length * spec.numQHeads() * spec.valueDim()];
        java.util.concurrent.atomic.AtomicLong done = new java.util.concurrent.atomic.AtomicLong();
        IntStream.range(0, seqs.length).parallel().forEach(i -> {
            attendSequence(cache, spec, layer, seqs[i], i, q, window, out, null);
            long n = done.incrementAndGet();
            synchronized (done) {
                progress.accept(n);
            }
        });
        return out;
    }

    /**
     * Block-sparse attention ({@code DecodeBatch.selectBlocks}) for {@code seqs} in {@code layer}: sequence {@code i}'s query
     * attends the positions of its logical blocks {@code blocks[i]} only, read through its page table; result
     * {@code [numSeqs][numQHeads][valueDim]}. Sinks and soft caps as {@link #decode}; no ALiBi (its distances count
     * positions, which a selection renumbers).
     */
    public static double[] decodeSelected(KvCache cache, AttentionSpec spec, int layer, int[] seqs, FloatArray q, int[][] blocks) {
        spec.requireMatches(cache.config());
        if (spec.hasAlibi()) {
            throw new IllegalArgumentException("spec has ALiBi: its distances count positions, which a block selection renumbers");
        }
        if (blocks == null || blocks.length != seqs.length) {
            throw new IllegalArgumentException("blocks.length=" + (blocks == null ? "null" : blocks.length) + " expected numSeqs="
                    + seqs.length);
        }
        int bs = cache.config().blockSize();
        double[] out = new double[seqs.length * spec.numQHeads() * spec.valueDim()];
        IntStream.range(0, seqs.length).parallel().forEach(i -> {
            int len = cache.length(seqs[i]);
            int[] positions = java.util.Arrays.stream(blocks[i])
                    .flatMap(j -> IntStream.range(j * bs, Math.min(len, (j + 1) * bs))).toArray();
            attendPositions(cache, spec, layer, seqs[i], i, q, positions, len - 1, out, null);
        });
        return out;
    }

    /**
     * Row {@code row}'s query heads (the query at position {@code query}, for ALiBi) over {@code positions} of {@code seq}
     * (ascending), written to {@code out}, and each head's log-sum-exp to {@code lse} unless it is null.
     */
    private static void attendPositions(KvCache cache, AttentionSpec spec, int layer, int seq, int row, FloatArray q, int[] positions,
                                        int query, double[] out, double[] lse) {
        PageTable table = cache.pageTable(seq);
        int len = table.numTokens();
        int d = spec.headDim();
        int dv = spec.valueDim();
        double[] k = new double[len * d];
        double[] v = new double[len * d];
        for (int kvHead = 0; kvHead < spec.numKvHeads(); kvHead++) {
            for (int p : positions) {
                gather(cache, layer, table, kvHead, p, p + 1, k, v);
            }
            for (int h = kvHead * spec.groupSize(); h < (kvHead + 1) * spec.groupSize(); h++) {
                int qBase = (row * spec.numQHeads() + h) * d;
                double sink = spec.hasSinks(layer) ? spec.sinks().sink(layer, h) : Double.NEGATIVE_INFINITY; // a score without a value
                double[] scores = new double[positions.length];
                double max = sink;
                for (int t = 0; t < positions.length; t++) {
                    double s = 0;
                    for (int e = 0; e < d; e++) {
                        s += (double) q.get(qBase + e) * k[positions[t] * d + e];
                    }
                    scores[t] = logit(spec, h, s, positions[t], query);
                    max = Math.max(max, scores[t]);
                }
                double total = Math.exp(sink - max); // 0 without a sink
                for (int t = 0; t < positions.length; t++) {
                    scores[t] = Math.exp(scores[t] - max);
                    total += scores[t];
                }
                if (lse != null) {
                    lse[row * spec.numQHeads() + h] = max + Math.log(total);
                }
                for (int e = 0; e < dv; e++) {
                    double o = 0;
                    for (int t = 0; t < positions.length; t++) {
                        o += scores[t] * v[positions[t] * d + e];
                    }
                    out[(row * spec.numQHeads() + h) * dv + e] = o / total;
                }
            }
        }
    }

    /**
     * Positions {@code [from, len)}'s K and V of {@code kvHead} in {@code layer}, read through the sequence's page table
     * into {@code k}, {@code v} ({@code [len][headDim]}, rows below {@code from} untouched; exact fp64 of the stored
     * values). A position in a released block ({@code KvCache.releaseBefore}) is refused by name.
     */
    static void gather(KvCache cache, int layer, PageTable table, int kvHead, int from, int len, double[] k, double[] v) {
        int bs = cache.config().blockSize();
        int d = cache.config().headDim();
        KvLayout layout = cache.layout();
        KvPool keys = cache.keys(layer, layout.shardOf(kvHead));
        KvPool values = cache.values(layer, layout.shardOf(kvHead));
        for (int pos = from; pos < len; pos++) {
            int block = table.block(pos / bs);
            if (block == PageTable.RELEASED) {
                throw new IllegalArgumentException("position=" + pos + " is in a released block (positions < "
                        + table.numReleased() * bs + " were given back by releaseBefore)");
            }
            for (int e = 0; e < d; e++) {
                int at = layout.offset(block, kvHead, pos % bs, e);
                k[pos * d + e] = keys.get(at);
                v[pos * d + e] = values.get(at);
            }
        }
    }

    /**
     * {@link #decode(KvCache, AttentionSpec, int, int[], FloatArray, int, java.util.function.LongConsumer)}, also writing each
     * (sequence, query head)'s log-sum-exp in fp64 to {@code lse} ({@code [seqs.length][numQHeads]}): {@code ln} of the
     * softmax's denominator over the row's logits, the sink included ({@code DecodeAttention}'s {@code lse}).
     */
    public static double[] decode(KvCache cache, AttentionSpec spec, int layer, int[] seqs, FloatArray q, int window, double[] lse) {
        AttentionWindow.require("window", window);
        spec.requireMatches(cache.config());
        if (lse == null || lse.length != seqs.length * spec.numQHeads()) {
            throw new IllegalArgumentException("lse.length=" + (lse == null ? "null" : lse.length) + " expected numSeqs*numQHeads="
                    + seqs.length * spec.numQHeads());
        }
        double[] out = new double[seqs.length * spec.numQHeads() * spec.valueDim()];
        IntStream.range(0, seqs.length).parallel().forEach(i -> attendSequence(cache, spec, layer, seqs[i], i, q, window, out, lse));
        return out;
    }

    private static void attendSequence(KvCache cache, AttentionSpec spec, int layer, int seq, int row, FloatArray q, int window,
                                       double[] out, double[] lse) {
        int len = cache.pageTable(seq).numTokens();
        // written out here, not DecodeBatch.firstVisible: the reference's own (chunks: the start of the last token's chunk)
        int first = window < 0 ? (len - 1) - (len - 1) % -window : Math.max(0, len - window);
        attendPositions(cache, spec, layer, seq, row, q, IntStream.range(first, len).toArray(), len - 1, out, lse);
    }

    /**
     * The logit of query head {@code head} at position {@code query} for the key at {@code key} whose dot product with the
     * query is {@code dot}, in fp64: {@code dot * scale}, soft-capped ({@link #capped}), plus the ALiBi bias {@code slope *
     * (key - query)} where the spec has slopes.
     */
    static double logit(AttentionSpec spec, int head, double dot, int key, int query) {
        double s = capped(spec, dot * spec.scale());
        return spec.hasAlibi() ? s + (double) spec.alibi().slope(head) * (key - query) : s;
    }

    /** {@code score}, soft-capped in fp64 when {@code spec} has a cap: {@code cap * tanh(score / cap)}. */
    static double capped(AttentionSpec spec, double score) {
        if (!spec.hasSoftCap()) {
            return score;
        }
        double cap = spec.softCap();
        return cap * Math.tanh(score / cap);
    }

    /** Relative L2 error {@code ||got - want|| / ||want||}; NaN anywhere gives NaN (never passes). */
    public static double relativeL2(FloatArray got, double[] want) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < want.length; i++) {
            double diff = got.get(i) - want[i];
            num += diff * diff;
            den += want[i] * want[i];
        }
        return Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }

    /** {@link #relativeL2(FloatArray, double[])} of two fp64 results (how far an option, say a soft cap, moves one). */
    public static double relativeL2(double[] got, double[] want) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < want.length; i++) {
            num += (got[i] - want[i]) * (got[i] - want[i]);
            den += want[i] * want[i];
        }
        return Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }

    /** Largest absolute difference; NaN anywhere gives NaN. */
    public static double maxAbsError(FloatArray got, double[] want) {
        double m = 0;
        for (int i = 0; i < want.length; i++) {
            double diff = Math.abs(got.get(i) - want[i]);
            if (Double.isNaN(diff)) {
                return Double.NaN;
            }
            m = Math.max(m, diff);
        }
        return m;
    }
}
