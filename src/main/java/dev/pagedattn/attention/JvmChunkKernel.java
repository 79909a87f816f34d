package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.KvLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The inner loop of the JVM backend: one query group (the {@code groupSize} query heads of one KV
 * head) of one sequence over one chunk of its context, with an online softmax per block. One
 * instance per worker thread holds that worker's scratch, so a decode step allocates nothing.
 *
 * <p>Per logical block the K tile of the head (one contiguous run, see {@link KvLayout}) is widened
 * once into fp32 scratch ({@link Fp16Widening} for fp16, a bulk copy for fp32,
 * {@link EightBitWidening} times the head's scale for the 8-bit dtypes) and used by every
 * query head of the group (GQA reuse); then the V tile. After {@link #attend} the instance holds
 * the chunk's unnormalised accumulator, running max and sum per head: {@link #writeOutput}
 * normalises them into the output, {@link #writePartial} stores them for a split-K merge.
 *
 * <p>Bit-reproducible: every sum has a fixed order (the lanes of a dot product are folded by a
 * fixed tree of vector adds, not {@code reduceLanes}, whose order may differ between the
 * interpreter and C2), so a (sequence, head, chunk) gives the same bits on any thread.
 */
final class JvmChunkKernel {
    private static final VectorSpecies<Float> FLOATS = Fp16Widening.FLOATS;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    // Fold shuffles: FOLD_k moves lane i + k to lane i. Separate constants (not an array) so that
    // C2 sees each shuffle as a constant; the folds a species does not need are never used.
    private static final VectorShuffle<Float> FOLD_8 = VectorShuffle.iota(FLOATS, 8, 1, true);
    private static final VectorShuffle<Float> FOLD_4 = VectorShuffle.iota(FLOATS, 4, 1, true);
    private static final VectorShuffle<Float> FOLD_2 = VectorShuffle.iota(FLOATS, 2, 1, true);
    private static final VectorShuffle<Float> FOLD_1 = VectorShuffle.iota(FLOATS, 1, 1, true);

    private final int headDim;
    private final int groupSize;
    private final int blockSize;
    private final boolean fp16;
    private final dev.pagedattn.quant.QuantFormat format; // 8-bit dtypes only
    private final float[] codes;  // [256] decode(code) of the 8-bit format, null for fp16/fp32
    private final boolean vector;
    private final float[] qs;     // [groupSize][headDim], pre-scaled by the softmax scale
    private final float[] acc;    // [groupSize][headDim], unnormalised
    private final float[] max;    // [groupSize] running max of the scores
    private final float[] sum;    // [groupSize] running sum of exp(score - max)
    private final float[] scores; // [groupSize][blockSize] scores, then probabilities, of one block
    private final float[] tile;   // [blockSize][headDim] the current K or V tile in fp32

    JvmChunkKernel(AttentionSpec spec, int blockSize, KvDtype dtype, boolean vector) {
        this.headDim = spec.headDim();
        this.groupSize = spec.groupSize();
        this.blockSize = blockSize;
        this.fp16 = dtype == KvDtype.FP16;
        this.format = dtype.format();
        this.codes = dtype.isQuantized() ? format.table() : null;
        this.vector = vector;
        this.qs = new float[groupSize * headDim];
        this.acc = new float[groupSize * headDim];
        this.max = new float[groupSize];
        this.sum = new float[groupSize];
        this.scores = new float[groupSize * blockSize];
        this.tile = new float[blockSize * headDim];
    }

    /**
     * Attends query heads {@code [kvHead * groupSize, (kvHead + 1) * groupSize)} of row {@code seq}
     * over its tokens {@code [fromToken, toToken)}; {@code fromToken} is a multiple of the block size.
     *
     * @param keys   the K pool, {@code [poolElements]} of the pool's dtype
     * @param values the V pool, same shape
     * @param kScale the K scale of (layer, kvHead) for 8-bit pools (ignored otherwise)
     * @param vScale the V scale of (layer, kvHead) for 8-bit pools (ignored otherwise)
     * @param q      {@code [numSeqs][numQHeads][headDim]} fp32
     */
    void attend(MemorySegment keys, MemorySegment values, float kScale, float vScale, KvLayout layout, DecodeBatch batch, int layer,
                int seq, int kvHead, int fromToken, int toToken, MemorySegment q, int numQHeads, float scale) {
        int d = headDim;
        int g = groupSize;
        int bs = blockSize;
        long qBase = (long) (seq * numQHeads + kvHead * g) * d;
        MemorySegment.copy(q, FLOAT, qBase * Float.BYTES, qs, 0, g * d);
        for (int i = 0; i < g * d; i++) {
            qs[i] *= scale;
        }
        java.util.Arrays.fill(acc, 0f);
        java.util.Arrays.fill(max, Float.NEGATIVE_INFINITY);
        java.util.Arrays.fill(sum, 0f);
        for (int start = fromToken; start < toToken; start += bs) {
            int n = Math.min(bs, toToken - start);
            int base = layout.tileBase(batch.block(seq, start / bs), kvHead);
            load(keys, base, n * d, kScale);
            for (int h = 0; h < g; h++) {
                scoreBlock(h, n);
            }
            load(values, base, n * d, vScale);
            for (int h = 0; h < g; h++) {
                accumulate(h, n);
            }
        }
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
        } else {
            MemorySegment.copy(pool, FLOAT, (long) index * Float.BYTES, tile, 0, length);
        }
    }

    /** Scores of head h against the n keys in {@link #tile}, folded into the running softmax. */
    private void scoreBlock(int h, int n) {
        int d = headDim;
        int p = h * blockSize;
        float blockMax = Float.NEGATIVE_INFINITY;
        for (int t = 0; t < n; t++) {
            float s = dot(qs, h * d, tile, t * d, d, vector);
            scores[p + t] = s;
            blockMax = Math.max(blockMax, s);
        }
        float newMax = Math.max(max[h], blockMax);
        float correction = (float) Math.exp(max[h] - newMax); // exp(-inf) = 0 on the first block
        int t = 0;
        if (vector) {
            FloatVector m = FloatVector.broadcast(FLOATS, newMax);
            for (int bound = FLOATS.loopBound(n); t < bound; t += FLOATS.length()) {
                expNonPositive(FloatVector.fromArray(FLOATS, scores, p + t).sub(m)).intoArray(scores, p + t);
            }
        }
        for (; t < n; t++) {
            scores[p + t] = (float) Math.exp(scores[p + t] - newMax);
        }
        float blockSum = 0;
        for (t = 0; t < n; t++) {
            blockSum += scores[p + t];
        }
        sum[h] = sum[h] * correction + blockSum;
        max[h] = newMax;
        if (correction != 1f) {
            for (int i = h * d, end = i + d; i < end; i++) {
                acc[i] *= correction;
            }
        }
    }

    /** {@code acc[h] += sum_t p[h][t] * V[t]} over the n values in {@link #tile}. */
    private void accumulate(int h, int n) {
        int d = headDim;
        int p = h * blockSize;
        int i = 0;
        if (vector) {
            // Per lane-chunk of the head: the accumulator stays in a register over the block's tokens.
            for (int bound = FLOATS.loopBound(d); i < bound; i += FLOATS.length()) {
                FloatVector a = FloatVector.fromArray(FLOATS, acc, h * d + i);
                for (int t = 0; t < n; t++) {
                    a = FloatVector.fromArray(FLOATS, tile, t * d + i).fma(FloatVector.broadcast(FLOATS, scores[p + t]), a);
                }
                a.intoArray(acc, h * d + i);
            }
        }
        for (; i < d; i++) {
            float a = acc[h * d + i];
            for (int t = 0; t < n; t++) {
                a += scores[p + t] * tile[t * d + i];
            }
            acc[h * d + i] = a;
        }
    }

    /** Writes {@code acc / sum} of every head to {@code out} ({@code [numSeqs][numQHeads][headDim]} fp32) at row {@code seq}. */
    void writeOutput(MemorySegment out, int seq, int kvHead, int numQHeads) {
        normaliseInto(out, (long) (seq * numQHeads + kvHead * groupSize) * headDim);
    }

    private void normaliseInto(MemorySegment out, long element) {
        int d = headDim;
        for (int h = 0; h < groupSize; h++) {
            float inv = 1f / sum[h];
            for (int i = h * d, end = i + d; i < end; i++) {
                acc[i] *= inv;
            }
        }
        MemorySegment.copy(acc, 0, out, FLOAT, element * Float.BYTES, groupSize * d);
    }

    /** Stores the chunk's state as partial {@code slot} of {@code partials}. */
    void writePartial(JvmSplitPlan partials, int slot) {
        partials.store(slot, acc, max, sum);
    }

    /**
     * Merges partials {@code [firstSlot, firstSlot + numChunks)} (one sequence's chunks in context
     * order) with log-sum-exp weights and writes the normalised result to {@code out}, as
     * {@link #writeOutput}. The order is fixed, so the bits do not depend on which thread merges.
     */
    void mergeInto(JvmSplitPlan partials, int firstSlot, int numChunks, MemorySegment out, int seq, int kvHead, int numQHeads) {
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
        java.util.Arrays.fill(acc, 0f);
        for (int c = 0; c < numChunks; c++) {
            int slot = firstSlot + c;
            for (int h = 0; h < groupSize; h++) {
                float w = (float) Math.exp(pMax[slot * groupSize + h] - max[h]);
                sum[h] += w * pSum[slot * groupSize + h];
                int from = (slot * groupSize + h) * d;
                for (int i = 0; i < d; i++) {
                    acc[h * d + i] += w * pAcc[from + i];
                }
            }
        }
        normaliseInto(out, (long) (seq * numQHeads + kvHead * groupSize) * d);
    }

    /**
     * Lane 0 of the result is the sum of all lanes of v, added as a fixed tree:
     * {@code ((v0 + v8) + (v4 + v12)) + ...} for 16 lanes. Species of 4 to 16 lanes.
     */
    static FloatVector foldLanes(FloatVector v) {
        int lanes = FLOATS.length();
        if (lanes >= 16) {
            v = v.add(v.rearrange(FOLD_8));
        }
        if (lanes >= 8) {
            v = v.add(v.rearrange(FOLD_4));
        }
        v = v.add(v.rearrange(FOLD_2));
        return v.add(v.rearrange(FOLD_1));
    }

    /**
     * {@code exp(x)} for lanes {@code x <= 0} (scores minus their running max), within 2 ulp of
     * {@link Math#exp} and exactly 1 at 0; lanes below -87.3 give about 1e-38 instead of a
     * subnormal or 0, which no softmax sum can tell apart. Cephes' {@code expf}: {@code x = n ln2 + r}
     * with |r| <= ln2/2 (ln2 in two parts, so r is exact), a degree-7 polynomial for {@code e^r}, and
     * {@code 2^n} built in the exponent bits. Only IEEE adds, multiplies and fmas, so the interpreter
     * and C2 agree to the bit ({@code VectorOperators.EXP} may not: C2 calls a vendor library).
     */
    static FloatVector expNonPositive(FloatVector x) {
        x = x.max(-87.3f);
        // n = round(x / ln2): truncation of t - 0.5 rounds to nearest for t <= 0
        IntVector ni = (IntVector) x.mul(1.44269504088896341f).sub(0.5f).convert(VectorOperators.F2I, 0);
        FloatVector n = (FloatVector) ni.convert(VectorOperators.I2F, 0);
        FloatVector r = n.fma(FloatVector.broadcast(FLOATS, -0.693359375f), x); // x - n*ln2 in two parts (Cody-Waite)
        r = n.fma(FloatVector.broadcast(FLOATS, 2.12194440e-4f), r);
        FloatVector poly = FloatVector.broadcast(FLOATS, 1.9875691500e-4f)
                .fma(r, FloatVector.broadcast(FLOATS, 1.3981999507e-3f))
                .fma(r, FloatVector.broadcast(FLOATS, 8.3334519073e-3f))
                .fma(r, FloatVector.broadcast(FLOATS, 4.1665795894e-2f))
                .fma(r, FloatVector.broadcast(FLOATS, 1.6666665459e-1f))
                .fma(r, FloatVector.broadcast(FLOATS, 5.0000001201e-1f))
                .fma(r.mul(r), r).add(1f);
        IntVector scaleBits = ni.add(127).lanewise(VectorOperators.LSHL, 23);
        return poly.mul(scaleBits.reinterpretAsFloats());
    }

    /**
     * {@code sum a[aOff + i] * b[bOff + i]} for {@code i < n}: lane-wise fused multiply-adds, the
     * lanes folded by a fixed tree, then a scalar tail.
     */
    static float dot(float[] a, int aOff, float[] b, int bOff, int n, boolean vector) {
        int i = 0;
        float s = 0;
        if (vector) {
            FloatVector v = FloatVector.zero(FLOATS);
            for (int bound = FLOATS.loopBound(n); i < bound; i += FLOATS.length()) {
                v = FloatVector.fromArray(FLOATS, a, aOff + i).fma(FloatVector.fromArray(FLOATS, b, bOff + i), v);
            }
            v = foldLanes(v);
            s = v.lane(0);
        }
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }
}
