package dev.pagedattn.rope;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * One head's rotation, given its pairs' fp32 factors: whole vectors of the preferred species, then a scalar tail of the
 * same operations in the same order, so every element gets the same bits wherever it falls. Each style comes twice,
 * for {@code float[]} rows and for a FloatArray's off-heap segment (the Vector API loads heap segments only when they are
 * backed by {@code byte[]}); {@code RotaryEmbeddingTest} holds the twins to the same bits.
 *
 * <pre>
 *  head          the index of the head's first rotated element (its rotaryOffset included)
 *  half          rotaryDim / 2
 *  cos, sin      [half]        NEOX: pair i is (head + i, head + half + i)
 *  factors       [2 half]      GPTJ: cos of pair j / 2 at j; signedSin: -sin at 2i, +sin at 2i + 1
 * </pre>
 */
final class RotaryRows {
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    /** Lane j takes lane j ^ 1: each GPTJ pair's partner. */
    private static final VectorShuffle<Float> SWAP_PAIRS = VectorShuffle.fromOp(FLOATS, j -> j ^ 1);

    private RotaryRows() {
    }

    /** NEOX: x at head + i, y at head + half + i. */
    static void halves(float[] a, int head, int half, float[] cos, float[] sin) {
        int i = 0;
        for (; i <= half - LANES; i += LANES) {
            FloatVector x = FloatVector.fromArray(FLOATS, a, head + i);
            FloatVector y = FloatVector.fromArray(FLOATS, a, head + half + i);
            FloatVector c = FloatVector.fromArray(FLOATS, cos, i);
            FloatVector s = FloatVector.fromArray(FLOATS, sin, i);
            x.fma(c, y.mul(s.neg())).intoArray(a, head + i);
            y.fma(c, x.mul(s)).intoArray(a, head + half + i);
        }
        for (; i < half; i++) {
            float x = a[head + i];
            float y = a[head + half + i];
            a[head + i] = Math.fma(x, cos[i], y * -sin[i]);
            a[head + half + i] = Math.fma(y, cos[i], x * sin[i]);
        }
    }

    /** GPTJ: element j and its partner j ^ 1, {@code fma(x_j, factors_j, x_(j^1) * signedSin_j)}. */
    static void pairs(float[] a, int head, int half, float[] factors, float[] signedSin) {
        int rotary = 2 * half;
        int j = 0;
        for (; j <= rotary - LANES; j += LANES) {
            FloatVector x = FloatVector.fromArray(FLOATS, a, head + j);
            FloatVector c = FloatVector.fromArray(FLOATS, factors, j);
            FloatVector s = FloatVector.fromArray(FLOATS, signedSin, j);
            x.fma(c, x.rearrange(SWAP_PAIRS).mul(s)).intoArray(a, head + j);
        }
        for (; j < rotary; j += 2) {
            float x = a[head + j];
            float y = a[head + j + 1];
            a[head + j] = Math.fma(x, factors[j], y * signedSin[j]);
            a[head + j + 1] = Math.fma(y, factors[j + 1], x * signedSin[j + 1]);
        }
    }

    /**
     * {@link #halves(float[], int, int, float[], float[])} on off-heap rows (a FloatArray's segment), the same
     * operations in the same order: the same bits ({@code RotaryEmbeddingTest}).
     */
    static void halves(MemorySegment a, long head, int half, float[] cos, float[] sin) {
        int i = 0;
        for (; i <= half - LANES; i += LANES) {
            long xAt = (head + i) * Float.BYTES;
            long yAt = (head + half + i) * Float.BYTES;
            FloatVector x = FloatVector.fromMemorySegment(FLOATS, a, xAt, ByteOrder.nativeOrder());
            FloatVector y = FloatVector.fromMemorySegment(FLOATS, a, yAt, ByteOrder.nativeOrder());
            FloatVector c = FloatVector.fromArray(FLOATS, cos, i);
            FloatVector s = FloatVector.fromArray(FLOATS, sin, i);
            x.fma(c, y.mul(s.neg())).intoMemorySegment(a, xAt, ByteOrder.nativeOrder());
            y.fma(c, x.mul(s)).intoMemorySegment(a, yAt, ByteOrder.nativeOrder());
        }
        for (; i < half; i++) {
            float x = a.getAtIndex(ValueLayout.JAVA_FLOAT, head + i);
            float y = a.getAtIndex(ValueLayout.JAVA_FLOAT, head + half + i);
            a.setAtIndex(ValueLayout.JAVA_FLOAT, head + i, Math.fma(x, cos[i], y * -sin[i]));
            a.setAtIndex(ValueLayout.JAVA_FLOAT, head + half + i, Math.fma(y, cos[i], x * sin[i]));
        }
    }

    /** {@link #pairs(float[], int, int, float[], float[])} on off-heap rows, the same operations in the same order. */
    static void pairs(MemorySegment a, long head, int half, float[] factors, float[] signedSin) {
        int rotary = 2 * half;
        int j = 0;
        for (; j <= rotary - LANES; j += LANES) {
            long at = (head + j) * Float.BYTES;
            FloatVector x = FloatVector.fromMemorySegment(FLOATS, a, at, ByteOrder.nativeOrder());
            FloatVector c = FloatVector.fromArray(FLOATS, factors, j);
            FloatVector s = FloatVector.fromArray(FLOATS, signedSin, j);
            x.fma(c, x.rearrange(SWAP_PAIRS).mul(s)).intoMemorySegment(a, at, ByteOrder.nativeOrder());
        }
        for (; j < rotary; j += 2) {
            float x = a.getAtIndex(ValueLayout.JAVA_FLOAT, head + j);
            float y = a.getAtIndex(ValueLayout.JAVA_FLOAT, head + j + 1);
            a.setAtIndex(ValueLayout.JAVA_FLOAT, head + j, Math.fma(x, factors[j], y * signedSin[j]));
            a.setAtIndex(ValueLayout.JAVA_FLOAT, head + j + 1, Math.fma(y, factors[j + 1], x * signedSin[j + 1]));
        }
    }
}
