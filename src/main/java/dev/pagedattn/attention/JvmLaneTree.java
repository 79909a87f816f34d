package dev.pagedattn.attention;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Sums of the lanes of float vectors in a fixed order (bit-reproducible, the same bits interpreted
 * and compiled; {@code reduceLanes} leaves its order to the implementation):
 *
 * <ul>
 *   <li>{@link #sumOfEach}: the transposed tree. {@code LANES} vectors in, one vector out whose lane
 *       r is the sum of the lanes of vector r. Level w (w = LANES/2, ..., 1) combines vector k with
 *       vector k + w (k < w): a lane j with bit w clear keeps {@code a[j] + a[j + w]}, a lane with
 *       bit w set keeps {@code b[j - w] + b[j]}, so one blend, one blend-and-swap and one add halve
 *       two vectors' partial sums at once. For 16 lanes: 15 combines (60 vector ops) for 16 sums,
 *       against 8 ops and a lane read per sum for the fold of one vector at a time.
 *   <li>{@link #dot}: one vector's lanes folded, {@code ((v0 + v8) + (v4 + v12)) + ...} (prefill's dot products).
 * </ul>
 *
 * <p>Vectors never cross a method boundary here (arrays in, arrays out): a Vector API value
 * returned from a method that C2 did not inline is a heap object, allocated per call (that made
 * the fp16 widening 2-4x slower when its helper was compiled on its own; benchmarks/NOTES.md).
 */
final class JvmLaneTree {
    static final VectorSpecies<Float> FLOATS = Fp16Widening.FLOATS;
    static final int LANES = FLOATS.length();
    // SWAP_w: lane j takes lane j ^ w. HIGH_w: the lanes with bit w set. Constants per level (not an
    // array) so that C2 sees each as a constant; the levels a species does not have are never used.
    private static final VectorShuffle<Float> SWAP_8 = swap(8);
    private static final VectorShuffle<Float> SWAP_4 = swap(4);
    private static final VectorShuffle<Float> SWAP_2 = swap(2);
    private static final VectorShuffle<Float> SWAP_1 = swap(1);
    private static final VectorMask<Float> HIGH_8 = high(8);
    private static final VectorMask<Float> HIGH_4 = high(4);
    private static final VectorMask<Float> HIGH_2 = high(2);
    private static final VectorMask<Float> HIGH_1 = high(1);
    // Fold shuffles: FOLD_k moves lane i + k to lane i.
    private static final VectorShuffle<Float> FOLD_8 = VectorShuffle.iota(FLOATS, 8, 1, true);
    private static final VectorShuffle<Float> FOLD_4 = VectorShuffle.iota(FLOATS, 4, 1, true);
    private static final VectorShuffle<Float> FOLD_2 = VectorShuffle.iota(FLOATS, 2, 1, true);
    private static final VectorShuffle<Float> FOLD_1 = VectorShuffle.iota(FLOATS, 1, 1, true);

    private JvmLaneTree() {
    }

    private static VectorShuffle<Float> swap(int w) {
        return VectorShuffle.fromOp(FLOATS, j -> (j ^ w) % LANES);
    }

    private static VectorMask<Float> high(int w) {
        boolean[] bits = new boolean[LANES];
        for (int j = 0; j < LANES; j++) {
            bits[j] = (j & w) != 0;
        }
        return VectorMask.fromArray(FLOATS, bits, 0);
    }

    /**
     * {@code out[outOff + r] = } the sum of the lanes of vector r, for {@code r < LANES}, where vector
     * r is {@code p[from + r * LANES ..]} ({@code [LANES][LANES]}); {@code p}'s vectors are
     * overwritten. Lanes of different vectors never mix, so a vector of garbage spoils only its own sum.
     */
    static void sumOfEach(float[] p, int from, float[] out, int outOff) {
        if (LANES >= 16) {
            level(p, from, 8, SWAP_8, HIGH_8);
        }
        if (LANES >= 8) {
            level(p, from, 4, SWAP_4, HIGH_4);
        }
        level(p, from, 2, SWAP_2, HIGH_2);
        level(p, from, 1, SWAP_1, HIGH_1);
        FloatVector.fromArray(FLOATS, p, from).intoArray(out, outOff);
    }

    /** Vector k of p becomes the combination of vectors k and k + w, for k < w. */
    private static void level(float[] p, int from, int w, VectorShuffle<Float> swap, VectorMask<Float> high) {
        for (int k = 0; k < w; k++) {
            FloatVector a = FloatVector.fromArray(FLOATS, p, from + k * LANES);
            FloatVector b = FloatVector.fromArray(FLOATS, p, from + (k + w) * LANES);
            a.blend(b, high).add(b.blend(a, high).rearrange(swap)).intoArray(p, from + k * LANES);
        }
    }

    /**
     * The largest of {@code a[from, from + n)}, n a multiple of {@code LANES} (the same in any order). The loop starts
     * from -inf so that its trip count is n / LANES for every n: written with the first vector before the loop, a JVM whose
     * profile had seen only one-vector rows deoptimised it on the first longer row and then, in about one test JVM of six,
     * ran it for good without C2's vector intrinsics (96 bytes allocated per call; benchmarks/NOTES.md, thirty-seventh
     * session). {@link #sum} is written the same way.
     */
    static float max(float[] a, int from, int n) {
        FloatVector m = FloatVector.broadcast(FLOATS, Float.NEGATIVE_INFINITY);
        for (int i = from, end = from + n; i < end; i += LANES) {
            m = m.max(FloatVector.fromArray(FLOATS, a, i));
        }
        return m.reduceLanes(VectorOperators.MAX);
    }

    /**
     * The sum of {@code a[from, from + n)}, n a multiple of {@code LANES}, its terms non-negative (a softmax's): vectors
     * added lane-wise in order onto zero, then the lanes folded as in {@link #dot}.
     */
    static float sum(float[] a, int from, int n) {
        FloatVector v = FloatVector.zero(FLOATS); // 0 + x is x for the non-negative terms of a softmax sum
        for (int i = from, end = from + n; i < end; i += LANES) {
            v = v.add(FloatVector.fromArray(FLOATS, a, i));
        }
        if (LANES >= 16) {
            v = v.add(v.rearrange(FOLD_8));
        }
        if (LANES >= 8) {
            v = v.add(v.rearrange(FOLD_4));
        }
        v = v.add(v.rearrange(FOLD_2));
        return v.add(v.rearrange(FOLD_1)).lane(0);
    }

    /**
     * Whether a row of {@code n} floats fits the register paths of {@link #dots} and
     * {@code JvmDecodeAttention.axpyRows}: 4, 8 or 16 whole vectors (16 only with 16-lane vectors, whose 32
     * registers hold them; head dims 64, 128 and 256 on AVX-512, 32 and 64 on AVX2).
     */
    static boolean registerRow(int n) {
        int m = n / LANES;
        return n % LANES == 0 && (m == 4 || m == 8 || m == 16 && LANES >= 16);
    }

    /**
     * {@code out[outOff + t] = dot(q, qOff, k, t * n, n, true)} for {@code t} in {@code [from, to)}, bit for bit:
     * for a {@link #registerRow} the query's vectors stay in registers for all the rows of {@code k}, so each
     * score loads only its key's row; any other {@code n} calls {@link #dot} per row.
     */
    static void dots(float[] q, int qOff, float[] k, int n, int from, int to, float[] out, int outOff) {
        if (!registerRow(n)) {
            for (int t = from; t < to; t++) {
                out[outOff + t] = dot(q, qOff, k, t * n, n, true);
            }
            return;
        }
        int m = n / LANES;
        FloatVector z = FloatVector.zero(FLOATS);
        FloatVector q0 = FloatVector.fromArray(FLOATS, q, qOff);
        FloatVector q1 = FloatVector.fromArray(FLOATS, q, qOff + LANES);
        FloatVector q2 = FloatVector.fromArray(FLOATS, q, qOff + 2 * LANES);
        FloatVector q3 = FloatVector.fromArray(FLOATS, q, qOff + 3 * LANES);
        FloatVector q4 = m < 8 ? z : FloatVector.fromArray(FLOATS, q, qOff + 4 * LANES);
        FloatVector q5 = m < 8 ? z : FloatVector.fromArray(FLOATS, q, qOff + 5 * LANES);
        FloatVector q6 = m < 8 ? z : FloatVector.fromArray(FLOATS, q, qOff + 6 * LANES);
        FloatVector q7 = m < 8 ? z : FloatVector.fromArray(FLOATS, q, qOff + 7 * LANES);
        FloatVector q8 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 8 * LANES);
        FloatVector q9 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 9 * LANES);
        FloatVector q10 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 10 * LANES);
        FloatVector q11 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 11 * LANES);
        FloatVector q12 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 12 * LANES);
        FloatVector q13 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 13 * LANES);
        FloatVector q14 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 14 * LANES);
        FloatVector q15 = m < 16 ? z : FloatVector.fromArray(FLOATS, q, qOff + 15 * LANES);
        for (int t = from; t < to; t++) {
            int r = t * n;
            FloatVector v = z;   // the fma chain of dot, in the same order
            v = q0.fma(FloatVector.fromArray(FLOATS, k, r), v);
            v = q1.fma(FloatVector.fromArray(FLOATS, k, r + LANES), v);
            v = q2.fma(FloatVector.fromArray(FLOATS, k, r + 2 * LANES), v);
            v = q3.fma(FloatVector.fromArray(FLOATS, k, r + 3 * LANES), v);
            if (m >= 8) {
                v = q4.fma(FloatVector.fromArray(FLOATS, k, r + 4 * LANES), v);
                v = q5.fma(FloatVector.fromArray(FLOATS, k, r + 5 * LANES), v);
                v = q6.fma(FloatVector.fromArray(FLOATS, k, r + 6 * LANES), v);
                v = q7.fma(FloatVector.fromArray(FLOATS, k, r + 7 * LANES), v);
            }
            if (m >= 16) {
                v = q8.fma(FloatVector.fromArray(FLOATS, k, r + 8 * LANES), v);
                v = q9.fma(FloatVector.fromArray(FLOATS, k, r + 9 * LANES), v);
                v = q10.fma(FloatVector.fromArray(FLOATS, k, r + 10 * LANES), v);
                v = q11.fma(FloatVector.fromArray(FLOATS, k, r + 11 * LANES), v);
                v = q12.fma(FloatVector.fromArray(FLOATS, k, r + 12 * LANES), v);
                v = q13.fma(FloatVector.fromArray(FLOATS, k, r + 13 * LANES), v);
                v = q14.fma(FloatVector.fromArray(FLOATS, k, r + 14 * LANES), v);
                v = q15.fma(FloatVector.fromArray(FLOATS, k, r + 15 * LANES), v);
            }
            if (LANES >= 16) {
                v = v.add(v.rearrange(FOLD_8));
            }
            if (LANES >= 8) {
                v = v.add(v.rearrange(FOLD_4));
            }
            v = v.add(v.rearrange(FOLD_2));
            out[outOff + t] = v.add(v.rearrange(FOLD_1)).lane(0);
        }
    }

    /**
     * {@code sum a[aOff + i] * b[bOff + i]} for {@code i < n}: lane-wise fused multiply-adds, the
     * lanes folded by a fixed tree ({@code ((v0 + v8) + (v4 + v12)) + ...} for 16 lanes), then a
     * scalar tail. Species of 4 to 16 lanes.
     */
    static float dot(float[] a, int aOff, float[] b, int bOff, int n, boolean vector) {
        int i = 0;
        float s = 0;
        if (vector) {
            FloatVector v = FloatVector.zero(FLOATS);
            for (int bound = FLOATS.loopBound(n); i < bound; i += LANES) {
                v = FloatVector.fromArray(FLOATS, a, aOff + i).fma(FloatVector.fromArray(FLOATS, b, bOff + i), v);
            }
            if (LANES >= 16) {
                v = v.add(v.rearrange(FOLD_8));
            }
            if (LANES >= 8) {
                v = v.add(v.rearrange(FOLD_4));
            }
            v = v.add(v.rearrange(FOLD_2));
            s = v.add(v.rearrange(FOLD_1)).lane(0);
        }
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }
}
