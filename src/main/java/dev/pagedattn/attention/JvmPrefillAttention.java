package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.cache.KvPool;
import java.util.Arrays;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The plain-JVM prefill backend: one task per (sequence, KV head, tile of {@link #TILE_TOKENS}
 * query tokens). A task widens each K and V block of its head once into fp32 scratch and uses it
 * for every query token and query head of the tile that may see it, with a per-block online
 * softmax per (token, head) row; blocks a row cannot see are skipped for that row. On the Vector
 * API path ({@link JvmDecodeAttention#VECTOR}) a row's block softmax runs in whole vectors with decode's
 * exp ({@link JvmChunkKernel#expInPlace}), and the scores and the {@code P V} update keep the row's query and
 * accumulator in registers at head dims 64, 128 and 256 on 16-lane vectors ({@link JvmLaneTree#dots},
 * {@link JvmDecodeAttention#axpyRows}). With logit soft-capping ({@link AttentionSpec#softCap()}) a row's visible
 * scores of a block are capped by decode's function ({@link JvmChunkKernel#softCapInPlace}, the same bits per score
 * wherever it lands) before its max; sinks join uncapped.
 *
 * <p>Every row walks its visible positions block by block in the same order and with the same
 * arithmetic wherever it lands, so a row's result does not depend on the tile it lands in: the
 * last n rows of a whole-prompt prefill equal a prefill of only those n tokens bit for bit (a
 * one-token prefill agrees with decode to fp32 rounding). Threads: {@code -Dpagedattn.jvm.threads}.
 */
public final class JvmPrefillAttention implements PrefillAttention {
    /** Query tokens per task: the K/V of a block is widened once for all of them. */
    public static final int TILE_TOKENS = 16;

    private final KvCache cache;
    private final AttentionSpec spec;
    private final float[] alibi;   // the spec's ALiBi slopes per query head, null: none
    private final ForkJoinPool workers;
    private final float[][] layerSinks;    // [numLayers][numQHeads], null rows for layers without sinks

    public JvmPrefillAttention(KvCache cache, AttentionSpec spec) {
        spec.requireMatches(cache.config());
        this.cache = cache;
        this.spec = spec;
        this.alibi = spec.hasAlibi() ? spec.alibi().toArray() : null;
        this.layerSinks = spec.sinks().rows(cache.config().numLayers());
        int threads = Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors());
        if (threads < 1) {
            throw new IllegalArgumentException("pagedattn.jvm.threads=" + threads + " must be >= 1");
        }
        this.workers = new ForkJoinPool(threads);
    }

    @Override
    public String name() {
        return JvmDecodeAttention.VECTOR ? "jvm" : "jvm-scalar";
    }

    /** Rows of exactly a batch's size, kept while callers ask for that size ({@link #stepRows}). */
    private StepRows rows;

    @Override
    public synchronized StepRows stepRows(PrefillBatch batch, int layer) {
        PrefillAttention.requireBatch(cache.config(), batch, layer);
        rows = StepRows.sized(rows, batch.totalQueries(), spec);
        return rows;
    }

    @Override
    public void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out) {
        prefill(batch, layer, q, out, null);
    }

    @Override
    public void prefill(PrefillBatch batch, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        PrefillAttention.requireShapes(spec, cache.config(), batch, layer, q, out);
        if (lse != null) {
            DecodeAttention.requireLse(spec, batch.totalQueries(), lse);
        }
        int n = batch.numSeqs();
        int[] firstTask = new int[n + 1]; // [numSeqs + 1] task index of each sequence's first tile
        for (int i = 0; i < n; i++) {
            int tiles = (batch.qLen(i) + TILE_TOKENS - 1) / TILE_TOKENS;
            firstTask[i + 1] = firstTask[i] + tiles * spec.numKvHeads();
        }
        try {
            workers.submit(() -> IntStream.range(0, firstTask[n]).parallel().forEach(t -> {
                int seq = Arrays.binarySearch(firstTask, t); // strictly increasing: every sequence has a tile
                seq = seq >= 0 ? seq : -seq - 2;
                int local = t - firstTask[seq];
                attendTile(batch, layer, seq, local % spec.numKvHeads(), local / spec.numKvHeads() * TILE_TOKENS, q, out, lse);
            })).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("prefill interrupted", e);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
        }
    }

    @Override
    public void close() {
        workers.shutdown();
    }

    /**
     * {@code length} elements of {@code pool} from {@code index} (one tile of {@code kvHead}) as fp32, bit for bit
     * {@code KvPool.read}: 8-bit codes through decode's {@link EightBitWidening} (whole vectors on the Vector API path;
     * {@code table} is the format's, null for fp16/fp32) instead of the pool's table lookup per code.
     */
    private static void widen(KvPool pool, float[] table, int kvHead, int index, float[] dst, int length) {
        if (pool.format() != null) {
            EightBitWidening.widen(pool.format(), table, pool.segment(), index, pool.scale(kvHead), dst, 0, length,
                    JvmDecodeAttention.VECTOR);
        } else if (pool.dtype() == dev.pagedattn.cache.KvDtype.BF16) {
            Bf16Widening.widen(pool.segment(), index, dst, 0, length, JvmDecodeAttention.VECTOR);
        } else {
            pool.read(index, dst, 0, length); // fp16: the same loop as Fp16Widening's, which C2 vectorises
        }
    }

    /**
     * Into {@code slots}, the slots among {@code [from, to)} of a block (slot 0 at position {@code start}) whose new token
     * query {@code j} of sequence {@code seq} does not see ({@link PrefillBatch#sees}: by {@code mask}, or outside the
     * window from the query's tree position); returns how many (0 without a mask). Once per token and block, for every head.
     */
    private static int hidden(PrefillBatch batch, TreeMask mask, int seq, int j, int start, int newStart, int from, int to,
                              int[] slots) {
        int n = 0;
        for (int t = Math.max(from, newStart - start); mask != null && t < to; t++) {
            if (!batch.sees(seq, j, start + t)) {
                slots[n++] = t;
            }
        }
        return n;
    }

    /** Scores of a row ({@code p[row ..]}) at the first {@code n} of {@code slots} set to -inf. */
    private static void hide(int[] slots, int n, float[] p, int row) {
        for (int i = 0; i < n; i++) {
            p[row + slots[i]] = Float.NEGATIVE_INFINITY;
        }
    }

    /**
     * Query tokens {@code firstToken ..} (at most TILE_TOKENS) of {@code seq}, all heads of {@code kvHead}'s group; their
     * log-sum-exps to {@code lse} unless it is null.
     */
    private void attendTile(PrefillBatch batch, int layer, int seq, int kvHead, int firstToken, FloatArray q, FloatArray out,
                            FloatArray lse) {
        DecodeBatch kv = batch.kv();
        KvLayout layout = cache.layout();
        KvPool keys = cache.keys(layer, layout.shardOf(kvHead));
        KvPool values = cache.values(layer, layout.shardOf(kvHead));
        int d = spec.headDim();
        int dv = spec.valueDim();              // a latent cache: the first latentDim elements of each key are its value
        boolean latent = cache.config().isLatent();
        int dvRow = JvmDecodeAttention.axpyWidth(dv, d); // the values' row in vTile: dv, or up to whole vectors
        int g = spec.groupSize();
        int bs = cache.config().blockSize();
        int tokens = Math.min(TILE_TOKENS, batch.qLen(seq) - firstToken);
        int rows = tokens * g;                 // row r = token (r / g), head (r % g) of the group
        int[] pos = new int[tokens];           // [tokens] position of each query token
        int[] first = new int[tokens];         // [tokens] first visible position
        int[] last = new int[tokens];          // [tokens] last visible position (with a mask, the context's last)
        TreeMask mask = batch.mask(seq);       // null: causal among the new tokens
        int newStart = batch.contextLen(seq) - batch.qLen(seq);
        for (int j = 0; j < tokens; j++) {
            pos[j] = batch.position(seq, firstToken + j);
            first[j] = batch.firstVisible(seq, firstToken + j);
            last[j] = batch.lastVisible(seq, firstToken + j);
        }
        float[] qs = new float[rows * d];      // [rows][d], pre-scaled
        float[] acc = new float[rows * d];     // [rows][d]
        float[] max = new float[rows];
        float[] sum = new float[rows];
        float[] table = keys.format() == null ? null : keys.format().table(); // 8-bit: the codes' values
        float[] kTile = new float[bs * d];     // [slot][d]
        float[] vTile = new float[bs * dvRow]; // [slot][dvRow]
        int pb = (bs + JvmLaneTree.LANES - 1) / JvmLaneTree.LANES * JvmLaneTree.LANES;
        float[] p = new float[rows * pb];      // [rows][slot, padded to whole vectors] scores, then probabilities
        int[] hiddenSlots = mask == null ? null : new int[bs]; // a token's slots of a block that its mask hides
        for (int j = 0; j < tokens; j++) {
            int qBase = ((batch.qStart(seq) + firstToken + j) * spec.numQHeads() + kvHead * g) * d;
            for (int i = 0; i < g * d; i++) {
                qs[j * g * d + i] = q.get(qBase + i) * spec.scale();
            }
        }
        Arrays.fill(max, Float.NEGATIVE_INFINITY);
        float cap = spec.softCap();            // logit soft-capping, 0: none

        int lo = first[0];                     // the tile's smallest visible position (with a mask, not always first[0])
        for (int f : first) {
            lo = Math.min(lo, f);
        }
        int hi = last[0];                      // and its largest (a custom mask's rows need not reach further down the tile)
        for (int l : last) {
            hi = Math.max(hi, l);
        }
        for (int b = lo / bs; b <= hi / bs; b++) {
            int start = b * bs;
            int n = Math.min(bs, hi + 1 - start);
            int base = layout.tileBase(kv.block(seq, b), kvHead);
            widen(keys, table, kvHead, base, kTile, n * d);
            boolean vRead = false;
            for (int j = 0; j < tokens; j++) {
                int from = Math.max(first[j], start) - start;   // visible slots of this block: [from, to)
                int to = Math.min(last[j] + 1, start + n) - start;
                if (from >= to) {
                    continue;
                }
                if (!vRead) {
                    if (latent) { // the values are the widened keys' first dv elements: no second read of the pool
                        for (int t = 0; t < n; t++) {
                            System.arraycopy(kTile, t * d, vTile, t * dvRow, dvRow);
                        }
                    } else {
                        widen(values, table, kvHead, base, vTile, n * d);
                    }
                    vRead = true;
                }
                int hidden = hidden(batch, mask, seq, firstToken + j, start, newStart, from, to, hiddenSlots);
                for (int h = 0; h < g; h++) {
                    int r = j * g + h;
                    int row = r * pb;
                    JvmDecodeAttention.dots(qs, r * d, kTile, d, from, to, p, row);
                    float newMax;
                    float correction;
                    float blockSum = 0;
                    if (JvmDecodeAttention.VECTOR) {
                        // slots [0, whole) in whole vectors, as decode's chunk kernel: the slots outside [from, to) are
                        // -inf for the max and 0 for the sum, so a row's result still depends only on its own slots
                        int whole = (to + JvmLaneTree.LANES - 1) / JvmLaneTree.LANES * JvmLaneTree.LANES;
                        Arrays.fill(p, row, row + from, Float.NEGATIVE_INFINITY);
                        Arrays.fill(p, row + to, row + whole, Float.NEGATIVE_INFINITY);
                        if (cap > 0) { // whole vectors from the one holding slot from; the -inf slots stay -inf
                            int firstVector = from / JvmLaneTree.LANES * JvmLaneTree.LANES;
                            JvmChunkKernel.softCapInPlace(p, row + firstVector, whole - firstVector, cap);
                        }
                        if (alibi != null) {
                            JvmChunkKernel.addAlibi(p, row + from, to - from, alibi[kvHead * g + h], start + from, pos[j]);
                        }
                        hide(hiddenSlots, hidden, p, row);
                        newMax = Math.max(max[r], JvmLaneTree.max(p, row, whole));
                        if (newMax == Float.NEGATIVE_INFINITY) {
                            continue;                                   // a mask hid every slot the row had seen so far
                        }
                        correction = (float) Math.exp(max[r] - newMax); // exp(-inf) = 0 on the first block
                        JvmChunkKernel.expInPlace(p, row, whole, newMax);
                        Arrays.fill(p, row, row + from, 0f);
                        Arrays.fill(p, row + to, row + whole, 0f);
                        blockSum = JvmLaneTree.sum(p, row, whole);
                    } else {
                        if (cap > 0) {
                            for (int t = from; t < to; t++) {
                                p[row + t] = JvmChunkKernel.softCap(p[row + t], cap);
                            }
                        }
                        if (alibi != null) {
                            JvmChunkKernel.addAlibi(p, row + from, to - from, alibi[kvHead * g + h], start + from, pos[j]);
                        }
                        hide(hiddenSlots, hidden, p, row);
                        float blockMax = Float.NEGATIVE_INFINITY;
                        for (int t = from; t < to; t++) {
                            blockMax = Math.max(blockMax, p[row + t]);
                        }
                        newMax = Math.max(max[r], blockMax);
                        if (newMax == Float.NEGATIVE_INFINITY) {
                            continue;
                        }
                        correction = (float) Math.exp(max[r] - newMax);
                        for (int t = from; t < to; t++) {
                            float e = (float) Math.exp(p[row + t] - newMax);
                            p[row + t] = e;
                            blockSum += e;
                        }
                    }
                    sum[r] = sum[r] * correction + blockSum;
                    max[r] = newMax;
                    if (correction != 1f) {
                        for (int i = 0; i < dv; i++) {
                            acc[r * d + i] *= correction;
                        }
                    }
                    JvmDecodeAttention.axpyRows(acc, r * d, p, row, vTile, dvRow, from, to);
                }
            }
        }
        for (int j = 0; j < tokens; j++) {
            int oBase = ((batch.qStart(seq) + firstToken + j) * spec.numQHeads() + kvHead * g) * dv;
            for (int h = 0; h < g; h++) {
                int r = j * g + h;
                float den = JvmChunkKernel.denominator(sum[r], max[r], layerSinks[layer], kvHead * g + h);
                if (lse != null) { // [totalQueries][numQHeads]
                    lse.set((batch.qStart(seq) + firstToken + j) * spec.numQHeads() + kvHead * g + h, JvmChunkKernel.logSumExp(max[r], den));
                }
                float inv = 1f / den;
                for (int i = 0; i < dv; i++) {
                    out.set(oBase + h * dv + i, acc[r * d + i] * inv);
                }
            }
        }
    }
}
