package dev.pagedattn.rope;

import java.lang.foreign.MemorySegment;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Rotary position embeddings (RoPE), applied in place to query and key rows before the keys are written to the cache
 * and the queries reach {@code decode} or {@code prefill}, as vLLM's rotary embedding and FlashInfer's
 * {@code apply_rope_pos_ids} do. The cache stores rotated keys, so every backend and kernel of this library attends
 * over them unchanged.
 *
 * <pre>
 *  rows       [numTokens][numHeads][headDim]  fp32 (float[] or FloatArray), rotated in place; token t at positions[t]
 *  positions  [numTokens]                      0 .. 2^31 - 1, or firstPosition + t
 *  pair i of a head (i < rotaryDim / 2), turned by angle = position * inverseFrequency(i), dims counted from rotaryOffset:
 *    NEOX  dims (i, i + rotaryDim / 2)   x' = a (x cos - y sin),  y' = a (y cos + x sin)   a = attention factor
 *    GPTJ  dims (2i, 2i + 1)
 *  the other dims pass through: rotaryOffset 0 and rotaryDim < headDim is partial rotary (GPT-NeoX, Phi-2, ChatGLM);
 *  DeepSeek's MLA turns the last 64 of its 576 (its latent vectors and absorbed queries: rotaryOffset 512)
 * </pre>
 *
 * <p>Angles are fp64 ({@link RotaryAngles}: three small tables combined by angle addition, rounded once to fp32), so
 * position 2^31 - 1 is as exact as position 1. Each element is then
 * {@code fma(x, a cos, partner * (-+a sin))} in fp32, the same bits in a vector lane and in the scalar tail. The object
 * is immutable; calls on disjoint rows may run on many threads.
 */
public final class RotaryEmbedding {
    /** Which dims form a rotated pair. */
    public enum Style {
        /** Dims i and i + rotaryDim / 2 (GPT-NeoX; Hugging Face's {@code rotate_half}: Llama, Mistral, Qwen checkpoints there). */
        NEOX,
        /** Dims 2i and 2i + 1 (GPT-J, Meta's original Llama checkpoints, ChatGLM; vLLM's {@code is_neox_style=False}). */
        GPTJ
    }


    private final int headDim;
    private final int rotaryOffset;         // the first rotated dim of a head
    private final int half;                 // rotaryDim / 2
    private final Style style;
    private final RopeFrequencies frequencies;
    private final RotaryAngles angles;

    /** Rotation of the first {@code frequencies.rotaryDim()} of every head's {@code headDim} dims in {@code style}. */
    public RotaryEmbedding(int headDim, RopeFrequencies frequencies, Style style) {
        this(headDim, 0, frequencies, style);
    }

    /**
     * Rotation of dims {@code rotaryOffset .. rotaryOffset + frequencies.rotaryDim() - 1} of every head's {@code headDim}
     * in {@code style} (DeepSeek's MLA: headDim 576, rotaryOffset 512, rotary dim 64, GPTJ pairs as vLLM runs it).
     */
    public RotaryEmbedding(int headDim, int rotaryOffset, RopeFrequencies frequencies, Style style) {
        if (frequencies == null || style == null) {
            throw new IllegalArgumentException("frequencies=" + frequencies + ", style=" + style + ": both required");
        }
        if (rotaryOffset < 0 || (long) rotaryOffset + frequencies.rotaryDim() > headDim) {
            throw new IllegalArgumentException("headDim=" + headDim + " must be >= rotaryOffset=" + rotaryOffset + " + rotaryDim="
                    + frequencies.rotaryDim() + ", rotaryOffset >= 0");
        }
        this.headDim = headDim;
        this.rotaryOffset = rotaryOffset;
        this.half = frequencies.rotaryDim() / 2;
        this.style = style;
        this.frequencies = frequencies;
        this.angles = new RotaryAngles(frequencies);
    }

    public int headDim() {
        return headDim;
    }

    public int rotaryDim() {
        return 2 * half;
    }

    /** The first rotated dim of a head. */
    public int rotaryOffset() {
        return rotaryOffset;
    }

    public Style style() {
        return style;
    }

    public RopeFrequencies frequencies() {
        return frequencies;
    }

    /** Rotates {@code positions.length} tokens of {@code numHeads} heads in {@code rows}, token t at {@code positions[t]}. */
    public void apply(float[] rows, int numHeads, int[] positions) {
        int[] p = requirePositions(positions);
        rotate(heap(rows), null, rows.length, numHeads, p.length, (t, cos, sin) -> angles.of(p[t], cos, sin));
    }

    /** Rotates {@code numTokens} tokens of {@code numHeads} heads in {@code rows}, token t at {@code firstPosition + t}. */
    public void apply(float[] rows, int numHeads, int firstPosition, int numTokens) {
        int first = requireRange(firstPosition, numTokens);
        rotate(heap(rows), null, rows.length, numHeads, numTokens, (t, cos, sin) -> angles.of(first + t, cos, sin));
    }

    /** As {@link #apply(float[], int, int[])}, on a TornadoVM array (the rows a backend's {@code decode} reads). */
    public void apply(FloatArray rows, int numHeads, int[] positions) {
        int[] p = requirePositions(positions);
        rotate(null, segment(rows), rows.getSize(), numHeads, p.length, (t, cos, sin) -> angles.of(p[t], cos, sin));
    }

    /** As {@link #apply(float[], int, int, int)}, on a TornadoVM array. */
    public void apply(FloatArray rows, int numHeads, int firstPosition, int numTokens) {
        int first = requireRange(firstPosition, numTokens);
        rotate(null, segment(rows), rows.getSize(), numHeads, numTokens, (t, cos, sin) -> angles.of(first + t, cos, sin));
    }

    /** The angle tables ({@link MultimodalRotaryEmbedding} reads them per position stream). */
    RotaryAngles angleTables() {
        return angles;
    }

    /**
     * The rotation of {@code position}: {@code cos[i]} and {@code sin[i]} (each [rotaryDim / 2]) get the attention factor
     * times cos and sin of pair i's angle, rounded to fp32 (what a GPU kernel of a caller's own would use).
     */
    public void angles(int position, float[] cos, float[] sin) {
        if (position < 0) {
            throw new IllegalArgumentException("position=" + position + " must be >= 0");
        }
        if (cos == null || sin == null || cos.length < half || sin.length < half) {
            throw new IllegalArgumentException("cos.length=" + (cos == null ? "null" : cos.length) + ", sin.length="
                    + (sin == null ? "null" : sin.length) + ": each must be >= rotaryDim / 2 = " + half);
        }
        angles.of(position, cos, sin);
    }

    @Override
    public String toString() {
        return "RotaryEmbedding(headDim=" + headDim + (rotaryOffset > 0 ? ", rotaryOffset=" + rotaryOffset : "") + ", rotaryDim="
                + rotaryDim() + ", " + style + ", " + frequencies + ")";
    }

    /** The fp32 factors of every pair of token {@code t} of a call ({@link RotaryAngles#of} at its position). */
    @FunctionalInterface
    interface TokenAngles {
        void of(int t, float[] cos, float[] sin);
    }

    /**
     * Turns {@code numTokens} tokens of {@code numHeads} heads, token t by {@code tokenAngles}; exactly one of
     * {@code heapRows} ({@code float[]}) and {@code segmentRows} (a FloatArray's) is given, {@code size} its length.
     */
    void rotate(float[] heapRows, MemorySegment segmentRows, long size, int numHeads, int numTokens, TokenAngles tokenAngles) {
        if (numHeads < 1) {
            throw new IllegalArgumentException("numHeads=" + numHeads + " must be >= 1");
        }
        long need = (long) numTokens * numHeads * headDim;
        if (size < need) {
            throw new IllegalArgumentException((heapRows != null ? "rows.length=" : "rows.getSize()=") + size
                    + " must be >= numTokens x numHeads x headDim = " + numTokens + " x " + numHeads + " x " + headDim + " = "
                    + need);
        }
        int rotary = 2 * half;
        float[] cos = new float[half];
        float[] sin = new float[half];
        float[] factors = new float[rotary];    // GPTJ: [cos0, cos0, cos1, cos1, ...]
        float[] signedSin = new float[rotary];  // GPTJ: [-sin0, sin0, -sin1, sin1, ...]
        for (int t = 0; t < numTokens; t++) {
            tokenAngles.of(t, cos, sin);
            if (style == Style.GPTJ) {
                for (int i = 0; i < half; i++) {
                    factors[2 * i] = cos[i];
                    factors[2 * i + 1] = cos[i];
                    signedSin[2 * i] = -sin[i];
                    signedSin[2 * i + 1] = sin[i];
                }
            }
            for (int h = 0; h < numHeads; h++) {
                long head = ((long) t * numHeads + h) * headDim + rotaryOffset;
                if (heapRows != null) {
                    if (style == Style.NEOX) {
                        RotaryRows.halves(heapRows, (int) head, half, cos, sin);
                    } else {
                        RotaryRows.pairs(heapRows, (int) head, half, factors, signedSin);
                    }
                } else if (style == Style.NEOX) {
                    RotaryRows.halves(segmentRows, head, half, cos, sin);
                } else {
                    RotaryRows.pairs(segmentRows, head, half, factors, signedSin);
                }
            }
        }
    }

    static float[] heap(float[] rows) {
        if (rows == null) {
            throw new IllegalArgumentException("rows=null");
        }
        return rows;
    }

    static MemorySegment segment(FloatArray rows) {
        if (rows == null) {
            throw new IllegalArgumentException("rows=null");
        }
        return rows.getSegment();
    }

    /** Every position checked before any row turns, so a bad one changes nothing. */
    private static int[] requirePositions(int[] positions) {
        if (positions == null) {
            throw new IllegalArgumentException("positions=null");
        }
        for (int t = 0; t < positions.length; t++) {
            if (positions[t] < 0) {
                throw new IllegalArgumentException("positions[" + t + "]=" + positions[t] + " must be >= 0");
            }
        }
        return positions;
    }

    private static int requireRange(int firstPosition, int numTokens) {
        if (firstPosition < 0 || numTokens < 0 || (long) firstPosition + numTokens - 1 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("firstPosition=" + firstPosition + ", numTokens=" + numTokens
                    + ": need firstPosition >= 0, numTokens >= 0 and the last position <= " + Integer.MAX_VALUE);
        }
        return firstPosition;
    }
}
