package dev.pagedattn.attention;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The arithmetic of one query group (its {@code groupSize} query heads) against one widened K or V
 * tile of {@code n <= blockSize} tokens, over the scratch arrays of its {@link JvmChunkKernel}.
 *
 * <p>Every widened vector serves four query heads while it is in a register (GQA reuse). Scores:
 * per pair of keys and lane-chunk, two K loads and four q loads feed eight fused multiply-adds into
 * lane-wise partial sums, whose lanes {@link JvmLaneTree#sumOfEach} then sums sixteen (head, key)
 * pairs at a time. V accumulation: per token, two V loads and four broadcast probabilities feed
 * eight fmas into the accumulators of four heads and two lane-chunks, kept in registers over the
 * block's tokens. Heads past the last multiple of four go one at a time; dimensions past the last
 * whole vector (all of them on the scalar path) by plain loops, in order after the vector part.
 * No Vector API value crosses a method boundary (see {@link JvmLaneTree}).
 */
final class JvmGroupTile {
    private static final VectorSpecies<Float> FLOATS = JvmLaneTree.FLOATS;
    private static final int LANES = JvmLaneTree.LANES;

    private final int headDim;
    private final int paddedBlock; // row stride of scores: blockSize rounded up to whole vectors
    private final int vectorDims;  // dimensions [0, vectorDims) go by vectors (0 on the scalar path)
    private final int valueDim;    // dimensions of a value: headDim, or a latent cache's first latentDim
    private final int valueVectorDims; // value dimensions [0, valueVectorDims) go by vectors (may pass valueDim: unused lanes)
    private final boolean vector;
    private final float[] qs;      // [rows][headDim], pre-scaled
    private final float[] acc;     // [rows][headDim], unnormalised
    private final float[] scores;  // [rows][paddedBlock] scores, then probabilities
    private final float[] lanes;   // [rows][paddedBlock][LANES] lane-wise partial dot products; null on the scalar path
    private final float[] tile;    // [blockSize][headDim] the widened K or V tile

    /** {@code rows}: the most query rows one call serves (a group's heads, or those of several sequences, see {@link JvmChunkKernel}). */
    JvmGroupTile(int headDim, int valueDim, int rows, int paddedBlock, boolean vector, float[] qs, float[] acc, float[] scores,
                 float[] tile) {
        this.headDim = headDim;
        this.paddedBlock = paddedBlock;
        this.vectorDims = vector ? FLOATS.loopBound(headDim) : 0;
        this.valueDim = valueDim;
        // whole vectors over the values' dims, the last one reaching past valueDim where the row has room (as a row of
        // valueDim == headDim would take them: the same bits), then a scalar tail
        this.valueVectorDims = vector ? Math.min(vectorDims, (valueDim + LANES - 1) / LANES * LANES) : 0;
        this.vector = vector;
        this.qs = qs;
        this.acc = acc;
        this.scores = scores;
        this.lanes = vector ? new float[rows * paddedBlock * LANES] : null;
        this.tile = tile;
    }

    /**
     * {@code scores[h][t] = qs[h] . tile[t]} for rows {@code h} in {@code [first, first + rows)} and keys {@code t < n} (padding
     * lanes hold garbage). Each row's bits do not depend on its neighbours: a row in a group of four and a row alone take
     * the same fmas in the same order.
     */
    void scores(int n, int first, int rows) {
        int d = headDim;
        int g = first + rows;
        int pb = paddedBlock;
        if (vector) {
            int quads = first + rows / 4 * 4;
            for (int h = first; h < quads; h += 4) {
                int t = 0;
                for (; t + 2 <= n; t += 2) {
                    lanesOfFourTwo(t, h);
                }
                if (t < n) {
                    lanesOfFour(t, h);
                }
            }
            for (int h = quads; h < g; h++) {
                for (int t = 0; t < n; t++) {
                    lanesOfOne(t, h);
                }
            }
            for (int h = first; h < g; h++) {
                for (int t = 0; t < n; t += LANES) {
                    JvmLaneTree.sumOfEach(lanes, (h * pb + t) * LANES, scores, h * pb + t);
                }
            }
        }
        if (vectorDims < d) { // the dimensions past the last whole vector, in order after it
            for (int h = first; h < g; h++) {
                for (int t = 0; t < n; t++) {
                    float s = vector ? scores[h * pb + t] : 0f;
                    for (int i = vectorDims; i < d; i++) {
                        s += qs[h * d + i] * tile[t * d + i];
                    }
                    scores[h * pb + t] = s;
                }
            }
        }
    }

    /** Lane-wise partial dot products of heads h .. h + 3 with key t: each K vector loaded once for four heads. */
    private void lanesOfFour(int t, int h) {
        int d = headDim;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int i = 0, k = t * d, q = h * d; i < vectorDims; i += LANES) {
            FloatVector key = FloatVector.fromArray(FLOATS, tile, k + i);
            a0 = FloatVector.fromArray(FLOATS, qs, q + i).fma(key, a0);
            a1 = FloatVector.fromArray(FLOATS, qs, q + d + i).fma(key, a1);
            a2 = FloatVector.fromArray(FLOATS, qs, q + 2 * d + i).fma(key, a2);
            a3 = FloatVector.fromArray(FLOATS, qs, q + 3 * d + i).fma(key, a3);
        }
        int at = (h * paddedBlock + t) * LANES;
        int headStride = paddedBlock * LANES;
        a0.intoArray(lanes, at);
        a1.intoArray(lanes, at + headStride);
        a2.intoArray(lanes, at + 2 * headStride);
        a3.intoArray(lanes, at + 3 * headStride);
    }

    /**
     * {@link #lanesOfFour} for keys t and t + 1 at once: each q vector loaded once serves two keys,
     * each K vector four heads (8 accumulators; a third fewer loads per fma than one key at a time).
     */
    private void lanesOfFourTwo(int t, int h) {
        int d = headDim;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector b0 = a0;
        FloatVector b1 = a0;
        FloatVector b2 = a0;
        FloatVector b3 = a0;
        for (int i = 0, k = t * d, q = h * d; i < vectorDims; i += LANES) {
            FloatVector key = FloatVector.fromArray(FLOATS, tile, k + i);
            FloatVector next = FloatVector.fromArray(FLOATS, tile, k + d + i);
            FloatVector q0 = FloatVector.fromArray(FLOATS, qs, q + i);
            a0 = q0.fma(key, a0);
            b0 = q0.fma(next, b0);
            FloatVector q1 = FloatVector.fromArray(FLOATS, qs, q + d + i);
            a1 = q1.fma(key, a1);
            b1 = q1.fma(next, b1);
            FloatVector q2 = FloatVector.fromArray(FLOATS, qs, q + 2 * d + i);
            a2 = q2.fma(key, a2);
            b2 = q2.fma(next, b2);
            FloatVector q3 = FloatVector.fromArray(FLOATS, qs, q + 3 * d + i);
            a3 = q3.fma(key, a3);
            b3 = q3.fma(next, b3);
        }
        int at = (h * paddedBlock + t) * LANES;
        int headStride = paddedBlock * LANES;
        a0.intoArray(lanes, at);
        a1.intoArray(lanes, at + headStride);
        a2.intoArray(lanes, at + 2 * headStride);
        a3.intoArray(lanes, at + 3 * headStride);
        b0.intoArray(lanes, at + LANES);
        b1.intoArray(lanes, at + LANES + headStride);
        b2.intoArray(lanes, at + LANES + 2 * headStride);
        b3.intoArray(lanes, at + LANES + 3 * headStride);
    }

    /** As {@link #lanesOfFour} for head h alone (groups not a multiple of four). */
    private void lanesOfOne(int t, int h) {
        int d = headDim;
        FloatVector a = FloatVector.zero(FLOATS);
        for (int i = 0, k = t * d, q = h * d; i < vectorDims; i += LANES) {
            a = FloatVector.fromArray(FLOATS, qs, q + i).fma(FloatVector.fromArray(FLOATS, tile, k + i), a);
        }
        a.intoArray(lanes, (h * paddedBlock + t) * LANES);
    }

    /**
     * {@code acc[h] += sum_t p[h][t] * V[t]} over the n values in {@code tile} (each the first {@code valueDim} elements of
     * a row of {@code headDim}), for rows {@code [first, first + rows)}. Each lane-chunk of dimensions has accumulators of
     * its own, so a dimension's bits do not depend on how many follow it.
     */
    void accumulate(int n, int first, int rows) {
        int d = headDim;
        int vectorDims = valueVectorDims;
        int g = first + rows;
        int quads = first + rows / 4 * 4;
        for (int h = first; h < quads; h += 4) {
            int i = 0;
            for (; i + 2 * LANES <= vectorDims; i += 2 * LANES) {
                accumulateFourTwo(n, h, i);
            }
            if (i < vectorDims) {
                accumulateFour(n, h, i);
            }
        }
        for (int h = quads; h < g; h++) {
            for (int i = 0; i < vectorDims; i += LANES) {
                accumulateOne(n, h, i);
            }
        }
        for (int h = first; h < g; h++) {
            int p = h * paddedBlock;
            for (int i = vectorDims; i < valueDim; i++) { // none where the vectors reached past valueDim
                float a = acc[h * d + i];
                for (int t = 0; t < n; t++) {
                    a += scores[p + t] * tile[t * d + i];
                }
                acc[h * d + i] = a;
            }
        }
    }

    /** Lane-chunk {@code [i, i + LANES)} of heads h .. h + 3: four accumulators in registers over the tokens, each V vector loaded once. */
    private void accumulateFour(int n, int h, int i) {
        int d = headDim;
        int pb = paddedBlock;
        int p = h * pb;
        int o = h * d + i;
        FloatVector a0 = FloatVector.fromArray(FLOATS, acc, o);
        FloatVector a1 = FloatVector.fromArray(FLOATS, acc, o + d);
        FloatVector a2 = FloatVector.fromArray(FLOATS, acc, o + 2 * d);
        FloatVector a3 = FloatVector.fromArray(FLOATS, acc, o + 3 * d);
        for (int t = 0; t < n; t++) {
            FloatVector v = FloatVector.fromArray(FLOATS, tile, t * d + i);
            a0 = v.fma(FloatVector.broadcast(FLOATS, scores[p + t]), a0);
            a1 = v.fma(FloatVector.broadcast(FLOATS, scores[p + pb + t]), a1);
            a2 = v.fma(FloatVector.broadcast(FLOATS, scores[p + 2 * pb + t]), a2);
            a3 = v.fma(FloatVector.broadcast(FLOATS, scores[p + 3 * pb + t]), a3);
        }
        a0.intoArray(acc, o);
        a1.intoArray(acc, o + d);
        a2.intoArray(acc, o + 2 * d);
        a3.intoArray(acc, o + 3 * d);
    }

    /**
     * {@link #accumulateFour} for lane-chunks i and i + LANES at once: each broadcast probability
     * serves two V vectors (8 accumulators), so a third fewer loads per fma.
     */
    private void accumulateFourTwo(int n, int h, int i) {
        int d = headDim;
        int pb = paddedBlock;
        int p = h * pb;
        int o = h * d + i;
        int l = LANES;
        FloatVector a0 = FloatVector.fromArray(FLOATS, acc, o);
        FloatVector a1 = FloatVector.fromArray(FLOATS, acc, o + d);
        FloatVector a2 = FloatVector.fromArray(FLOATS, acc, o + 2 * d);
        FloatVector a3 = FloatVector.fromArray(FLOATS, acc, o + 3 * d);
        FloatVector b0 = FloatVector.fromArray(FLOATS, acc, o + l);
        FloatVector b1 = FloatVector.fromArray(FLOATS, acc, o + d + l);
        FloatVector b2 = FloatVector.fromArray(FLOATS, acc, o + 2 * d + l);
        FloatVector b3 = FloatVector.fromArray(FLOATS, acc, o + 3 * d + l);
        for (int t = 0; t < n; t++) {
            FloatVector v = FloatVector.fromArray(FLOATS, tile, t * d + i);
            FloatVector w = FloatVector.fromArray(FLOATS, tile, t * d + i + l);
            FloatVector p0 = FloatVector.broadcast(FLOATS, scores[p + t]);
            a0 = v.fma(p0, a0);
            b0 = w.fma(p0, b0);
            FloatVector p1 = FloatVector.broadcast(FLOATS, scores[p + pb + t]);
            a1 = v.fma(p1, a1);
            b1 = w.fma(p1, b1);
            FloatVector p2 = FloatVector.broadcast(FLOATS, scores[p + 2 * pb + t]);
            a2 = v.fma(p2, a2);
            b2 = w.fma(p2, b2);
            FloatVector p3 = FloatVector.broadcast(FLOATS, scores[p + 3 * pb + t]);
            a3 = v.fma(p3, a3);
            b3 = w.fma(p3, b3);
        }
        a0.intoArray(acc, o);
        a1.intoArray(acc, o + d);
        a2.intoArray(acc, o + 2 * d);
        a3.intoArray(acc, o + 3 * d);
        b0.intoArray(acc, o + l);
        b1.intoArray(acc, o + d + l);
        b2.intoArray(acc, o + 2 * d + l);
        b3.intoArray(acc, o + 3 * d + l);
    }

    /** As {@link #accumulateFour} for head h alone. */
    private void accumulateOne(int n, int h, int i) {
        int d = headDim;
        int p = h * paddedBlock;
        FloatVector a = FloatVector.fromArray(FLOATS, acc, h * d + i);
        for (int t = 0; t < n; t++) {
            a = FloatVector.fromArray(FLOATS, tile, t * d + i).fma(FloatVector.broadcast(FLOATS, scores[p + t]), a);
        }
        a.intoArray(acc, h * d + i);
    }
}
