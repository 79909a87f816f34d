package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.KvLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The inner loop of the JVM backend: one query group (the {@code groupSize} query heads of one KV
 * head) of one sequence over one chunk of its context, with an online softmax per block. One
 * instance per worker thread holds that worker's scratch, so a decode step allocates nothing.
 *
 * <p>Per logical block the K tile of the head (one contiguous run, see {@link KvLayout}) is widened
 * once into fp32 scratch ({@link Fp16Widening} for fp16, a bulk copy for fp32,
 * {@link EightBitWidening} times the head's scale for the 8-bit dtypes) and scored against every
 * query head of the group ({@link JvmGroupTile}: each widened vector serves four heads in
 * registers); the block's scores join the running softmax; then the V tile is widened and
 * accumulated. With logit soft-capping ({@link AttentionSpec#softCap()}) a block's scores are capped
 * ({@link #softCapInPlace}) before they join the softmax; sinks join uncapped, at the end. The next
 * block's tiles are touched first ({@code pagedattn.jvm.prefetch}), so that
 * they come from DRAM while this block computes. After {@link #attend} the instance holds the chunk's
 * unnormalised accumulator, running max and sum per head: {@link #writeOutput} normalises them
 * into the output, {@link #writePartial} stores them for a split-K merge.
 *
 * <p>Bit-reproducible: every sum has a fixed order (lane-chunks in dimension order, lanes by a
 * fixed tree, tokens in context order), so a (sequence, head, chunk) gives the same bits on any
 * thread. No Vector API value is passed to or returned from a method (see {@link JvmLaneTree}).
 */
final class JvmChunkKernel {
    private static final VectorSpecies<Float> FLOATS = JvmLaneTree.FLOATS;
    private static final int LANES = JvmLaneTree.LANES;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int headDim;
    private final int valueDim;   // AttentionSpec.valueDim: the dims of each acc row that reach the output
    private final boolean latent; // the values are the keys' first valueDim elements (KvCacheConfig.latent): one load per tile
    private final int elementBytes;
    private final int groupSize;
    private final int blockSize;
    private final int paddedBlock; // blockSize rounded up to whole vectors: the row stride of scores
    private final boolean fp16;
    private final boolean bf16;
    private final dev.pagedattn.quant.QuantFormat format; // 8-bit dtypes only
    private final float[] codes;  // [256] decode(code) of the 8-bit format, null for fp16/fp32
    private final boolean vector;
    private final float softCap;  // AttentionSpec.softCap: 0 = none
    private final float[] alibi;  // AttentionSpec.alibi's slopes, [numQHeads]; null = none
    private final float[] qs;     // [rows][headDim], pre-scaled by the softmax scale
    private final float[] acc;    // [rows][headDim], unnormalised
    private final float[] max;    // [rows] running max of the scores
    private final float[] sum;    // [rows] running sum of exp(score - max)
    private final float[] scores; // [rows][paddedBlock] scores, then probabilities, of one block
    private final int[] rowHead;  // [rows] the query head of each row (ALiBi's slope)
    private final int[] rowQuery; // [rows] the position of each row's query (ALiBi's distances)
    private final float[] tile;   // [blockSize][headDim] the current K or V tile in fp32
    private final JvmGroupTile group; // the arithmetic on tile
    private int touched;          // the sum of the prefetched bytes: keeps the prefetch loads alive

    /**
     * A kernel for one query group at a time ({@link #attend}, {@code maxMembers} 1), or one whose {@link #attendShared}
     * serves up to {@code maxMembers} sequences' query groups at once: its scratch holds {@code maxMembers * groupSize}
     * rows. {@code latent}: the V pool a call passes is its K pool
     * ({@link dev.pagedattn.cache.KvCacheConfig#latent}), so each block's tile is widened once and serves as the keys and,
     * its first {@code spec.valueDim()} elements, as the values.
     */
    JvmChunkKernel(AttentionSpec spec, int blockSize, KvDtype dtype, boolean vector, int maxMembers, boolean latent) {
        this.headDim = spec.headDim();
        this.valueDim = spec.valueDim();
        this.latent = latent;
        this.elementBytes = dtype.bytes();
        this.groupSize = spec.groupSize();
        this.blockSize = blockSize;
        this.paddedBlock = (blockSize + LANES - 1) / LANES * LANES;
        this.fp16 = dtype == KvDtype.FP16;
        this.bf16 = dtype == KvDtype.BF16;
        this.format = dtype.format();
        this.codes = dtype.isQuantized() ? format.table() : null;
        this.vector = vector;
        this.softCap = spec.softCap();
        this.alibi = spec.hasAlibi() ? spec.alibi().toArray() : null;
        if (maxMembers < 1) {
            throw new IllegalArgumentException("maxMembers=" + maxMembers + " must be >= 1");
        }
        int rows = maxMembers * groupSize;
        this.qs = new float[rows * headDim];
        this.acc = new float[rows * headDim];
        this.max = new float[rows];
        this.sum = new float[rows];
        this.scores = new float[rows * paddedBlock];
        this.rowHead = new int[rows];
        this.rowQuery = new int[rows];
        this.tile = new float[blockSize * headDim];
        this.group = new JvmGroupTile(headDim, valueDim, rows, paddedBlock, vector, qs, acc, scores, tile);
    }

    /** The most sequences one {@link #attendShared} serves. */
    int maxMembers() {
        return max.length / groupSize;
    }

    /**
     * Attends query heads {@code [kvHead * groupSize, (kvHead + 1) * groupSize)} of row {@code seq}
     * over its tokens {@code [fromToken, toToken)}; {@code fromToken} is a multiple of the block size, or a sliding
     * window's first visible token.
     *
     * @param keys   the K pool, {@code [poolElements]} of the pool's dtype
     * @param values the V pool, same shape
     * @param kScale the K scale of (layer, kvHead) for 8-bit pools (ignored otherwise)
     * @param vScale the V scale of (layer, kvHead) for 8-bit pools (ignored otherwise)
     * @param q      {@code [numSeqs][numQHeads][headDim]} fp32
     * @param prefetch whether to touch the next block's tiles before computing on this one's
     */
    void attend(MemorySegment keys, MemorySegment values, float kScale, float vScale, KvLayout layout, DecodeBatch batch, int layer,
                int seq, int kvHead, int fromToken, int toToken, MemorySegment q, int numQHeads, float scale, boolean prefetch) {
        begin(batch, seq, 0, kvHead, q, numQHeads, scale);
        walk(keys, values, kScale, vScale, layout, batch, seq, kvHead, fromToken, toToken, 0, groupSize, prefetch);
    }

    /**
     * Cascade attention: the query groups of KV head {@code kvHead} of batch rows {@code seqs[at, at + members)}, whose
     * tokens {@code [fromToken, sharedTo)} lie in the same physical blocks (a shared prompt, forks), over their chunk
     * {@code [fromToken, min(contextLen, chunkEnd))}. Each shared block's K and V tiles are read and widened once and
     * scored and accumulated for every member's heads; then each member goes on alone over its own tokens. Every row
     * takes the operations {@link #attend} would give it, in the same order, so each member's state holds the bits of its
     * own {@code attend} over the chunk. Member {@code j}'s state is then at rows {@code [j * groupSize, (j + 1) *
     * groupSize)} ({@link #writeOutput(MemorySegment, int, int, int, float[], int)}, {@link #writePartial(JvmSplitPlan,
     * int, int)}). {@code sharedTo} is a block boundary, or every member's chunk ends there.
     */
    void attendShared(MemorySegment keys, MemorySegment values, float kScale, float vScale, KvLayout layout, DecodeBatch batch,
                      int[] seqs, int at, int members, int kvHead, int fromToken, int sharedTo, int chunkEnd, MemorySegment q,
                      int numQHeads, float scale, boolean prefetch) {
        if (members > maxMembers()) {
            throw new IllegalArgumentException("members=" + members + " above this kernel's " + maxMembers());
        }
        for (int j = 0; j < members; j++) {
            begin(batch, seqs[at + j], j, kvHead, q, numQHeads, scale);
        }
        // one call site of walk (the shared pass is j = -1): a method that inlined two copies of walk's vector code was
        // seen to run it uncompiled by C2 in a test JVM, allocating its vectors (benchmarks/NOTES.md, thirty-seventh session)
        for (int j = -1; j < members; j++) {
            boolean shared = j < 0;
            int seq = seqs[at + Math.max(j, 0)];
            int from = shared ? fromToken : sharedTo;
            int end = shared ? sharedTo : Math.min(batch.contextLen(seq), chunkEnd);
            if (from < end) {
                walk(keys, values, kScale, vScale, layout, batch, seq, kvHead, from, end, shared ? 0 : j * groupSize,
                        shared ? members * groupSize : groupSize, prefetch);
            }
        }
    }

    /**
     * Loads the scaled queries of row {@code seq}'s KV head {@code kvHead} into member slot {@code member} (rows
     * {@code [member * groupSize, (member + 1) * groupSize)}) and clears their state.
     */
    private void begin(DecodeBatch batch, int seq, int member, int kvHead, MemorySegment q, int numQHeads, float scale) {
        int d = headDim;
        int g = groupSize;
        int r = member * g;
        long qBase = (long) (seq * numQHeads + kvHead * g) * d;
        MemorySegment.copy(q, FLOAT, qBase * Float.BYTES, qs, r * d, g * d);
        for (int i = r * d; i < (r + g) * d; i++) {
            qs[i] *= scale;
        }
        for (int h = 0; h < g; h++) {
            rowHead[r + h] = kvHead * g + h;
            rowQuery[r + h] = batch.contextLen(seq) - 1;
        }
        // -0, not +0: p * v + (-0) is p * v even when that is -0, so one token returns its V exactly
        java.util.Arrays.fill(acc, r * d, (r + g) * d, -0f);
        java.util.Arrays.fill(max, r, r + g, Float.NEGATIVE_INFINITY);
        java.util.Arrays.fill(sum, r, r + g, 0f);
    }

    /**
     * Rows {@code [first, first + rows)} over tokens {@code [fromToken, toToken)} of row {@code seq}'s blocks, block by
     * block: K widened, scored, folded into the running softmax, V widened and accumulated.
     */
    private void walk(MemorySegment keys, MemorySegment values, float kScale, float vScale, KvLayout layout, DecodeBatch batch,
                      int seq, int kvHead, int fromToken, int toToken, int first, int rows, boolean prefetch) {
        int d = headDim;
        int bs = blockSize;
        for (int start = fromToken; start < toToken; ) {
            int row = start % bs;   // 0, except at a sliding window's first visible token
            int n = Math.min(bs - row, toToken - start);
            int base = layout.tileBase(batch.block(seq, start / bs), kvHead) + row * d;
            load(keys, base, n * d, kScale);
            int next = start + n;
            if (prefetch && next < toToken) {
                long at = (long) layout.tileBase(batch.block(seq, next / bs), kvHead) * elementBytes;
                long bytes = (long) Math.min(bs, toToken - next) * d * elementBytes;
                touched += touch(keys, at, bytes) + (latent ? 0 : touch(values, at, bytes));
            }
            group.scores(n, first, rows);
            softmax(n, start, first, rows);
            if (!latent) { // a latent tile is its own values (same pool, same scale): already widened
                load(values, base, n * d, vScale);
            }
            group.accumulate(n, first, rows);
            start = next;
        }
    }

    /**
     * Reads one byte of every 64-byte line of {@code pool[from, from + bytes)} (a software prefetch:
     * Java has no prefetch instruction, and a load whose value is unused would be removed, so the
     * bytes are summed into {@link #touched}). The loads are independent of the block's arithmetic
     * that follows, so the core keeps them in flight while it computes: one thread reading K/V from
     * DRAM spent about as long waiting for each tile as computing on it.
     */
    private static int touch(MemorySegment pool, long from, long bytes) {
        int s = 0;
        for (long at = from, end = from + bytes; at < end; at += 64) {
            s += pool.get(ValueLayout.JAVA_BYTE, at);
        }
        return s;
    }

    /**
     * Widens {@code length} pool elements from {@code index} into {@link #tile}; 8-bit codes are
     * dequantized ({@link EightBitWidening}) times the head's scale, the same fp32 product
     * {@code KvPool.get} gives (so the fp64 reference sees these very values).
     */
    private void load(MemorySegment pool, int index, int length, float scale) {
        if (codes != null) {
            EightBitWidening.widen(format, codes, pool, index, scale, tile, 0, length, vector);
        } else if (fp16) {
            Fp16Widening.widen(pool, index, tile, 0, length, vector);
        } else if (bf16) {
            Bf16Widening.widen(pool, index, tile, 0, length, vector);
        } else {
            MemorySegment.copy(pool, FLOAT, (long) index * Float.BYTES, tile, 0, length);
        }
    }

    /**
     * Folds the block's scores into the running softmax of rows {@code [first, first + rows)}; their {@code scores} become
     * probabilities. With a soft cap
     * the block's n scores are capped first ({@link #softCapInPlace}; the padding lanes stay -inf), then with ALiBi each
     * gets its head's bias for its position ({@code firstKey + t}) against the query's ({@link #addAlibi}); without
     * either the loop is the one before soft-capping existed.
     */
    private void softmax(int n, int firstKey, int first, int rows) {
        int d = headDim;
        int whole = (n + LANES - 1) / LANES * LANES; // whole vectors; padding lanes: -inf for the max, 0 for the sum
        for (int h = first; h < first + rows; h++) {
            int p = h * paddedBlock;
            float blockMax = Float.NEGATIVE_INFINITY;
            if (vector) {
                java.util.Arrays.fill(scores, p + n, p + whole, Float.NEGATIVE_INFINITY);
                if (softCap > 0) {
                    softCapInPlace(scores, p, whole, softCap);
                }
                if (alibi != null) {
                    addAlibi(scores, p, n, alibi[rowHead[h]], firstKey, rowQuery[h]);
                }
                blockMax = JvmLaneTree.max(scores, p, whole);
            } else {
                if (softCap > 0) {
                    for (int t = 0; t < n; t++) {
                        scores[p + t] = softCap(scores[p + t], softCap);
                    }
                }
                if (alibi != null) {
                    addAlibi(scores, p, n, alibi[rowHead[h]], firstKey, rowQuery[h]);
                }
                for (int t = 0; t < n; t++) {
                    blockMax = Math.max(blockMax, scores[p + t]);
                }
            }
            float newMax = Math.max(max[h], blockMax);
            float correction = (float) Math.exp(max[h] - newMax); // exp(-inf) = 0 on the first block
            float blockSum = 0;
            if (vector) {
                expInPlace(scores, p, whole, newMax);
                java.util.Arrays.fill(scores, p + n, p + whole, 0f);
                blockSum = JvmLaneTree.sum(scores, p, whole);
            } else {
                for (int t = 0; t < n; t++) {
                    scores[p + t] = (float) Math.exp(scores[p + t] - newMax);
                    blockSum += scores[p + t];
                }
            }
            sum[h] = sum[h] * correction + blockSum;
            max[h] = newMax;
            if (correction != 1f) {
                for (int i = h * d, end = i + valueDim; i < end; i++) {
                    acc[i] *= correction;
                }
            }
        }
    }

    /**
     * Writes {@code acc / sum} of every head to {@code out} ({@code [numSeqs][numQHeads][headDim]} fp32) at row {@code seq};
     * {@code sinks} ({@code [numQHeads]}, or null) add their share to each head's sum ({@link #denominator}).
     */
    void writeOutput(MemorySegment out, MemorySegment lse, int seq, int kvHead, int numQHeads, float[] sinks) {
        normaliseInto(out, lse, seq, kvHead, numQHeads, sinks, 0);
    }

    /** {@link #writeOutput} of the member whose state starts at row {@code firstRow} ({@link #attendShared}). */
    void writeOutput(MemorySegment out, MemorySegment lse, int seq, int kvHead, int numQHeads, float[] sinks, int firstRow) {
        normaliseInto(out, lse, seq, kvHead, numQHeads, sinks, firstRow);
    }

    /**
     * The log-sum-exp of a row's softmax (FlashInfer's {@code lse}, natural log): {@code max + ln(denominator)}, the sink
     * included where the layer has one. One expression for decode and prefill.
     */
    static float logSumExp(float max, float denominator) {
        return max + (float) Math.log(denominator);
    }

    /**
     * The softmax denominator of a row whose scores have running max {@code max} and sum {@code sum} of {@code exp(s -
     * max)}: {@code sum}, plus {@code exp(sink - max)} where {@code sinks} (the layer's, {@code [numQHeads]}) is not null
     * ({@link AttentionSinks}). One expression for decode and prefill, so that a one-token prefill gives decode's bits.
     */
    static float denominator(float sum, float max, float[] sinks, int head) {
        return sinks == null ? sum : sum + (float) Math.exp(sinks[head] - max);
    }

    private void normaliseInto(MemorySegment out, MemorySegment lse, int seq, int kvHead, int numQHeads, float[] sinks,
                               int firstRow) {
        int d = headDim;
        int dv = valueDim;
        long element = (long) (seq * numQHeads + kvHead * groupSize) * dv; // out: [numSeqs][numQHeads][valueDim]
        for (int h = 0; h < groupSize; h++) {
            int r = firstRow + h;
            float den = denominator(sum[r], max[r], sinks, kvHead * groupSize + h);
            if (lse != null) { // [numSeqs][numQHeads]
                lse.setAtIndex(FLOAT, (long) seq * numQHeads + kvHead * groupSize + h, logSumExp(max[r], den));
            }
            float inv = 1f / den;
            for (int i = r * d, end = i + dv; i < end; i++) {
                acc[i] *= inv;
            }
        }
        if (dv == d) {
            MemorySegment.copy(acc, firstRow * d, out, FLOAT, element * Float.BYTES, groupSize * d);
        } else {
            for (int h = 0; h < groupSize; h++) {
                MemorySegment.copy(acc, (firstRow + h) * d, out, FLOAT, (element + (long) h * dv) * Float.BYTES, dv);
            }
        }
    }

    /** Stores the chunk's state as partial {@code slot} of {@code partials}. */
    void writePartial(JvmSplitPlan partials, int slot) {
        partials.store(slot, acc, max, sum, 0);
    }

    /** {@link #writePartial} of the member whose state starts at row {@code firstRow} ({@link #attendShared}). */
    void writePartial(JvmSplitPlan partials, int slot, int firstRow) {
        partials.store(slot, acc, max, sum, firstRow);
    }

    /**
     * Merges partials {@code [firstSlot, firstSlot + numChunks)} (one sequence's chunks in context
     * order) with log-sum-exp weights and writes the normalised result to {@code out}, as
     * {@link #writeOutput}. The order is fixed, so the bits do not depend on which thread merges.
     */
    void mergeInto(JvmSplitPlan partials, int firstSlot, int numChunks, MemorySegment out, MemorySegment lse, int seq, int kvHead,
                   int numQHeads, float[] sinks) {
        int d = headDim;
        float[] pAcc = partials.partialAcc();
        float[] pMax = partials.partialMax();
        float[] pSum = partials.partialSum();
        for (int h = 0; h < groupSize; h++) {
            float m = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < numChunks; c++) {
                m = Math.max(m, pMax[(firstSlot + c) * groupSize + h]);
            }
            max[h] = m;
            sum[h] = 0;
        }
        java.util.Arrays.fill(acc, 0, groupSize * d, 0f);
        for (int c = 0; c < numChunks; c++) {
            int slot = firstSlot + c;
            for (int h = 0; h < groupSize; h++) {
                float w = (float) Math.exp(pMax[slot * groupSize + h] - max[h]);
                sum[h] += w * pSum[slot * groupSize + h];
                int from = (slot * groupSize + h) * d;
                for (int i = 0; i < valueDim; i++) {
                    acc[h * d + i] += w * pAcc[from + i];
                }
            }
        }
        normaliseInto(out, lse, seq, kvHead, numQHeads, sinks, 0);
    }

    // Cephes' expf (expInPlace, softCapInPlace, softCap): x = n ln2 + r, ln2 in two parts so that r is exact, and a
    // degree-7 polynomial for e^r on |r| <= ln2/2
    private static final float EXP_MIN = -87.3f;            // e^EXP_MIN is about 1e-38, still a normal float
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float EXP_P0 = 1.9875691500e-4f;
    private static final float EXP_P1 = 1.3981999507e-3f;
    private static final float EXP_P2 = 8.3334519073e-3f;
    private static final float EXP_P3 = 4.1665795894e-2f;
    private static final float EXP_P4 = 1.6666665459e-1f;
    private static final float EXP_P5 = 5.0000001201e-1f;
    // tanh(y) = y + y^3 Q(y^2) below TANH_SMALL: Q of degree 4 fitted for the least maximum relative error of tanh on
    // [0, 0.625] (4.4e-9, far below fp32's); above it 1 - 2t / (1 + t) with t = e^(-2|y|) <= 0.29 loses little to
    // cancellation, where 1 - 2 / (e^(2y) + 1) near 0 would lose all the digits of a small y
    private static final float TANH_SMALL = 0.625f;
    private static final float TANH_Q0 = -0.33333281968642087f;
    private static final float TANH_Q1 = 0.13331443049136954f;
    private static final float TANH_Q2 = -0.05373979380927415f;
    private static final float TANH_Q3 = 0.020639363611027542f;
    private static final float TANH_Q4 = -0.005705313565409735f;

    /**
     * {@code a[i] = exp(a[i] - max)} for {@code i} in {@code [from, from + roundUp(n, LANES))} (whole
     * vectors: the caller's rows are padded), for {@code a[i] <= max}: within 2 ulp of {@link Math#exp}
     * and exactly 1 at 0; lanes below -87.3 give about 1e-38 instead of a subnormal or 0, which no
     * softmax sum can tell apart. Cephes' {@code expf}: {@code x = n ln2 + r} with |r| <= ln2/2 (ln2 in
     * two parts, so r is exact), a degree-7 polynomial for {@code e^r}, and {@code 2^n} built in the
     * exponent bits. Only IEEE adds, multiplies and fmas, so the interpreter and C2 agree to the bit
     * ({@code VectorOperators.EXP} may not: C2 calls a vendor library).
     */
    static void expInPlace(float[] a, int from, int n, float max) {
        FloatVector m = FloatVector.broadcast(FLOATS, max);
        for (int i = from, end = from + n; i < end; i += LANES) {
            FloatVector x = FloatVector.fromArray(FLOATS, a, i).sub(m).max(EXP_MIN);
            // n = round(x / ln2): truncation of t - 0.5 rounds to nearest for t <= 0
            IntVector ni = (IntVector) x.mul(LOG2E).sub(0.5f).convert(VectorOperators.F2I, 0);
            FloatVector k = (FloatVector) ni.convert(VectorOperators.I2F, 0);
            FloatVector r = k.fma(FloatVector.broadcast(FLOATS, -LN2_HI), x); // x - n*ln2 in two parts (Cody-Waite)
            r = k.fma(FloatVector.broadcast(FLOATS, -LN2_LO), r);
            FloatVector poly = FloatVector.broadcast(FLOATS, EXP_P0)
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P1))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P2))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P3))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P4))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P5))
                    .fma(r.mul(r), r).add(1f);
            IntVector scaleBits = ni.add(127).lanewise(VectorOperators.LSHL, 23);
            poly.mul(scaleBits.reinterpretAsFloats()).intoArray(a, i);
        }
    }

    /**
     * ALiBi ({@link AttentionSpec#alibi()}): {@code a[at + i] += slope * (firstKey + i - query)} for {@code i} in
     * {@code [0, n)}, the bias of the key at position {@code firstKey + i} for the query at {@code query}, in fp32 (a
     * product and a sum, whole vectors then a scalar tail with the same bits, so decode and prefill agree).
     */
    static void addAlibi(float[] a, int at, int n, float slope, int firstKey, int query) {
        int i = 0;
        if (JvmDecodeAttention.VECTOR) {
            float base = (float) (firstKey - query);   // exact, as every distance below 2^24
            FloatVector step = FloatVector.broadcast(FLOATS, LANES);
            FloatVector distance = FloatVector.fromArray(FLOATS, IOTA, 0).add(base);
            for (; i + LANES <= n; i += LANES) {
                FloatVector.fromArray(FLOATS, a, at + i).add(distance.mul(slope)).intoArray(a, at + i);
                distance = distance.add(step);
            }
        }
        for (; i < n; i++) {
            a[at + i] += slope * (float) (firstKey + i - query);
        }
    }

    /** {@code 0, 1, ..., LANES - 1} (an array: a Vector API value held across methods would be boxed). */
    private static final float[] IOTA = iota();

    private static float[] iota() {
        float[] f = new float[LANES];
        for (int i = 0; i < LANES; i++) {
            f[i] = i;
        }
        return f;
    }

    /**
     * Logit soft-capping ({@link AttentionSpec#softCap()}): {@code a[i] = cap * tanh(a[i] / cap)} for {@code i} in
     * {@code [from, from + n)}, whole vectors then a scalar tail, every element bit for bit {@link #softCap(float, float)}
     * wherever it lands (so decode and prefill, which cap different ranges, agree). A {@code -inf} (a masked or padding
     * score) stays {@code -inf}, {@code +inf} gives {@code cap}, NaN stays NaN, +-0 give +0. Within 2.5e-7 relative of
     * {@code cap * Math.tanh(a / cap)} wherever {@code a / cap} is a normal float, and within 2 ulp from {@code |a| = cap}
     * on (measured over caps in [1, 100]: {@code SoftCapTest}).
     *
     * <p>{@code y = a / cap}; below {@code |y| = 0.625} an odd polynomial {@code cap (y + y^3 Q(y^2))}, else
     * {@code sign(y) (cap - 2 cap t / (1 + t))} with {@code t = e^(-2|y|)} by {@link #expInPlace}'s exp, its argument
     * clamped at -87.3 (so {@code |y|} from 43.65 on gives exactly {@code cap}), the last step one fma, so that a capped
     * score near the cap (the kind a softmax weighs most) is within 1.5 ulp. Caps up to {@code Float.MAX_VALUE / 2}
     * ({@code -2 cap} must be finite). Both branches on every lane, then a blend: no branch per element. The exp core is
     * written out again here rather than shared through a helper: a Vector API value must not cross a method boundary
     * ({@link JvmLaneTree}); the constants are shared.
     */
    static void softCapInPlace(float[] a, int from, int n, float cap) {
        FloatVector c = FloatVector.broadcast(FLOATS, cap);
        FloatVector minusTwoCaps = FloatVector.broadcast(FLOATS, cap * -2f);
        FloatVector one = FloatVector.broadcast(FLOATS, 1f);
        int i = from;
        for (int end = from + FLOATS.loopBound(n); i < end; i += LANES) {
            FloatVector s = FloatVector.fromArray(FLOATS, a, i);
            FloatVector y = s.div(c);
            FloatVector ay = y.abs();
            FloatVector z = y.mul(y);
            FloatVector q = z.fma(FloatVector.broadcast(FLOATS, TANH_Q4), FloatVector.broadcast(FLOATS, TANH_Q3))
                    .fma(z, FloatVector.broadcast(FLOATS, TANH_Q2))
                    .fma(z, FloatVector.broadcast(FLOATS, TANH_Q1))
                    .fma(z, FloatVector.broadcast(FLOATS, TANH_Q0));
            FloatVector small = y.mul(z).fma(q, y).mul(c);
            FloatVector x = ay.mul(-2f).max(EXP_MIN);
            IntVector ni = (IntVector) x.mul(LOG2E).sub(0.5f).convert(VectorOperators.F2I, 0);
            FloatVector k = (FloatVector) ni.convert(VectorOperators.I2F, 0);
            FloatVector r = k.fma(FloatVector.broadcast(FLOATS, -LN2_HI), x);
            r = k.fma(FloatVector.broadcast(FLOATS, -LN2_LO), r);
            FloatVector poly = FloatVector.broadcast(FLOATS, EXP_P0)
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P1))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P2))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P3))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P4))
                    .fma(r, FloatVector.broadcast(FLOATS, EXP_P5))
                    .fma(r.mul(r), r).add(1f);
            FloatVector t = poly.mul(ni.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            FloatVector big = t.div(one.add(t)).fma(minusTwoCaps, c).lanewise(VectorOperators.NEG, y.lt(0f));
            big.blend(small, ay.lt(TANH_SMALL))
                    .blend(s, s.eq(Float.NEGATIVE_INFINITY))
                    .intoArray(a, i);
        }
        for (int end = from + n; i < end; i++) {
            a[i] = softCap(a[i], cap);
        }
    }

    /**
     * {@code cap * tanh(s / cap)}, one score: the arithmetic of one lane of {@link #softCapInPlace} (the same operations
     * in the same order, so the same bits), for the scalar path and the vector path's tail.
     */
    static float softCap(float s, float cap) {
        float y = s / cap;
        float ay = Math.abs(y);
        if (ay < TANH_SMALL) {
            float z = y * y;
            float q = Math.fma(Math.fma(Math.fma(Math.fma(z, TANH_Q4, TANH_Q3), z, TANH_Q2), z, TANH_Q1), z, TANH_Q0);
            return Math.fma(y * z, q, y) * cap;
        }
        if (s == Float.NEGATIVE_INFINITY) {
            return s;
        }
        float x = Math.max(ay * -2f, EXP_MIN);
        int ni = (int) (x * LOG2E - 0.5f);
        float k = ni;
        float r = Math.fma(k, -LN2_HI, x);
        r = Math.fma(k, -LN2_LO, r);
        float poly = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(EXP_P0, r, EXP_P1), r, EXP_P2), r, EXP_P3), r, EXP_P4), r, EXP_P5);
        poly = Math.fma(poly, r * r, r) + 1f;
        float t = poly * Float.intBitsToFloat((ni + 127) << 23);
        float big = Math.fma(t / (1f + t), cap * -2f, cap);
        return y < 0 ? -big : big;
    }
}
