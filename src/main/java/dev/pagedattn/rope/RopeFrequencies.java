package dev.pagedattn.rope;

import java.util.Arrays;

/**
 * A model's rotary frequencies: pair {@code i} of the rotated dims turns by {@code position * inverseFrequency(i)}
 * radians, and {@link #attentionFactor()} multiplies both parts of each rotated pair (YaRN's magnitude correction; 1
 * elsewhere). Computed in fp64 from the fields of a model's config, under Hugging Face's names ({@code rope_theta},
 * {@code rope_scaling}: {@code factor}, {@code low_freq_factor}, {@code original_max_position_embeddings}, ...), by the
 * formulas of {@code transformers}' {@code modeling_rope_utils} and vLLM's rotary embeddings. Where those compute in
 * fp32, this computes in fp64: frequencies and angles are the exact ones, rounded once, to fp32, when a row is rotated.
 *
 * <pre>
 *  inverse frequencies [rotaryDim / 2]  fp64, finite, > 0; pair i is dims (i, i + rotaryDim/2) or (2i, 2i + 1) by
 *                                       {@link RotaryEmbedding.Style}
 * </pre>
 *
 * <p>Dynamic NTK scaling (its frequencies depend on the sequence's length) and LongRoPE's switch between two factor
 * lists are not rules here; {@link #custom} takes any list a caller computes.
 */
public final class RopeFrequencies {
    private final String description;
    private final double[] inverseFrequencies;  // [rotaryDim / 2]; a copy the caller cannot change
    private final double attentionFactor;

    private RopeFrequencies(String description, double[] inverseFrequencies, double attentionFactor) {
        this.description = description;
        this.inverseFrequencies = inverseFrequencies;
        this.attentionFactor = attentionFactor;
    }

    /**
     * The original rule (Su et al.; Llama 2, Mistral, Qwen): {@code theta^(-2i / rotaryDim)}; {@code theta} is
     * {@code rope_theta} (10000 for Llama 2, 500000 for Llama 3, 1000000 for Qwen 2.5).
     */
    public static RopeFrequencies standard(int rotaryDim, double theta) {
        return new RopeFrequencies("standard(theta=" + theta + ")", base(rotaryDim, theta), 1);
    }

    /** Position interpolation ({@code rope_type: linear}): every frequency divided by {@code factor} >= 1. */
    public static RopeFrequencies linear(int rotaryDim, double theta, double factor) {
        requireFactor(factor);
        double[] f = base(rotaryDim, theta);
        for (int i = 0; i < f.length; i++) {
            f[i] /= factor;
        }
        return new RopeFrequencies("linear(theta=" + theta + ", factor=" + factor + ")", f, 1);
    }

    /**
     * Llama 3.1's rule ({@code rope_type: llama3}; Llama 3.1 and 3.2: factor 8 (32 for 3.2), low 1, high 4, original
     * 8192): a pair whose wavelength is shorter than {@code original / high} keeps its frequency, one longer than
     * {@code original / low} is divided by {@code factor}, and those between are blended linearly in
     * {@code original / wavelength}.
     */
    public static RopeFrequencies llama3(int rotaryDim, double theta, double factor, double lowFreqFactor,
            double highFreqFactor, int originalMaxPositions) {
        requireFactor(factor);
        if (!(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor) || !Double.isFinite(highFreqFactor)) {
            throw new IllegalArgumentException("lowFreqFactor=" + lowFreqFactor + ", highFreqFactor=" + highFreqFactor
                    + ": need 0 < lowFreqFactor < highFreqFactor, both finite");
        }
        requireOriginal(originalMaxPositions);
        double[] f = base(rotaryDim, theta);
        double lowFreqWavelength = originalMaxPositions / lowFreqFactor;
        double highFreqWavelength = originalMaxPositions / highFreqFactor;
        for (int i = 0; i < f.length; i++) {
            double wavelength = 2 * Math.PI / f[i];
            if (wavelength > lowFreqWavelength) {
                f[i] /= factor;
            } else if (wavelength >= highFreqWavelength) {
                double smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                f[i] = (1 - smooth) * f[i] / factor + smooth * f[i];
            }
        }
        return new RopeFrequencies("llama3(theta=" + theta + ", factor=" + factor + ", low=" + lowFreqFactor + ", high="
                + highFreqFactor + ", original=" + originalMaxPositions + ")", f, 1);
    }

    /**
     * YaRN ({@code rope_type: yarn}; Qwen 2.5 long-context) with the paper's {@code beta_fast = 32}, {@code beta_slow = 1}
     * and attention factor {@code 0.1 ln(factor) + 1}. DeepSeek V2/V3's configs set the attention factor by their
     * {@code mscale} fields: the seven-argument form.
     */
    public static RopeFrequencies yarn(int rotaryDim, double theta, double factor, int originalMaxPositions) {
        requireFactor(factor);
        return yarn(rotaryDim, theta, factor, originalMaxPositions, 32, 1, 0.1 * Math.log(factor) + 1);
    }

    /**
     * YaRN: pairs that turn more than {@code betaFast} times over {@code originalMaxPositions} keep their frequency, those
     * that turn fewer than {@code betaSlow} times are divided by {@code factor}, and a linear ramp over the dims between
     * (its ends floored and ceiled, {@code transformers}' default) blends the two. {@code attentionFactor} scales every
     * rotated pair: DeepSeek's {@code mscale} / {@code mscale_all_dim} ratio where a config gives them (1 for DeepSeek
     * V3).
     */
    public static RopeFrequencies yarn(int rotaryDim, double theta, double factor, int originalMaxPositions,
            double betaFast, double betaSlow, double attentionFactor) {
        return yarn(rotaryDim, theta, factor, originalMaxPositions, betaFast, betaSlow, attentionFactor, true);
    }

    /**
     * YaRN with the ramp's ends floored and ceiled ({@code truncate}, {@code transformers}' default) or not (gpt-oss's
     * config: {@code "truncate": false}).
     */
    public static RopeFrequencies yarn(int rotaryDim, double theta, double factor, int originalMaxPositions,
            double betaFast, double betaSlow, double attentionFactor, boolean truncate) {
        requireFactor(factor);
        requireOriginal(originalMaxPositions);
        if (!(betaSlow > 0) || !(betaFast > betaSlow) || !Double.isFinite(betaFast)) {
            throw new IllegalArgumentException("betaFast=" + betaFast + ", betaSlow=" + betaSlow
                    + ": need 0 < betaSlow < betaFast, both finite");
        }
        double[] f = base(rotaryDim, theta);
        double low = correctionDim(betaFast, rotaryDim, theta, originalMaxPositions);
        double high = correctionDim(betaSlow, rotaryDim, theta, originalMaxPositions);
        low = Math.max(truncate ? Math.floor(low) : low, 0);
        high = Math.min(truncate ? Math.ceil(high) : high, rotaryDim - 1);
        if (low == high) {
            high += 0.001; // transformers' guard against an empty ramp
        }
        for (int i = 0; i < f.length; i++) {
            double interpolated = Math.min(Math.max((i - low) / (high - low), 0), 1); // 0: keep, 1: divide by factor
            f[i] = f[i] / factor * interpolated + f[i] * (1 - interpolated);
        }
        return new RopeFrequencies("yarn(theta=" + theta + ", factor=" + factor + ", original=" + originalMaxPositions
                + ", betaFast=" + betaFast + ", betaSlow=" + betaSlow + ", attentionFactor=" + attentionFactor
                + (truncate ? "" : ", truncate=false") + ")", f,
                requireAttentionFactor(attentionFactor));
    }

    /**
     * Any frequencies a caller computed (LongRoPE's per-pair factors, a model's own rule): {@code inverseFrequencies}
     * [rotaryDim / 2], copied, each finite and > 0.
     */
    public static RopeFrequencies custom(double[] inverseFrequencies, double attentionFactor) {
        if (inverseFrequencies == null || inverseFrequencies.length == 0) {
            throw new IllegalArgumentException("inverseFrequencies.length=" + (inverseFrequencies == null ? "null" : 0)
                    + " must be >= 1 (rotaryDim / 2)");
        }
        double[] f = inverseFrequencies.clone();
        for (int i = 0; i < f.length; i++) {
            if (!(f[i] > 0) || !Double.isFinite(f[i])) {
                throw new IllegalArgumentException("inverseFrequencies[" + i + "]=" + f[i] + " must be finite and > 0");
            }
        }
        return new RopeFrequencies("custom(" + f.length + " pairs, attentionFactor=" + attentionFactor + ")", f,
                requireAttentionFactor(attentionFactor));
    }

    /** Rotated dims: twice the number of frequencies. */
    public int rotaryDim() {
        return 2 * inverseFrequencies.length;
    }

    /** Radians per position of pair {@code i}. */
    public double inverseFrequency(int i) {
        return inverseFrequencies[i];
    }

    /** The factor on every rotated element (YaRN's; 1 for the other rules). */
    public double attentionFactor() {
        return attentionFactor;
    }

    @Override
    public String toString() {
        return description;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof RopeFrequencies r && Arrays.equals(inverseFrequencies, r.inverseFrequencies)
                && attentionFactor == r.attentionFactor;
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inverseFrequencies) + Double.hashCode(attentionFactor);
    }

    private static double[] base(int rotaryDim, double theta) {
        if (rotaryDim < 2 || rotaryDim % 2 != 0) {
            throw new IllegalArgumentException("rotaryDim=" + rotaryDim + " must be even and >= 2");
        }
        if (!(theta > 1) || !Double.isFinite(theta)) {
            throw new IllegalArgumentException("theta=" + theta + " must be finite and > 1");
        }
        double[] f = new double[rotaryDim / 2];
        for (int i = 0; i < f.length; i++) {
            f[i] = 1 / Math.pow(theta, 2.0 * i / rotaryDim);
        }
        return f;
    }

    /** The dim (fractional) whose pair turns {@code rotations} times over {@code original} positions. */
    private static double correctionDim(double rotations, int rotaryDim, double theta, int original) {
        return rotaryDim * Math.log(original / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
    }

    private static void requireFactor(double factor) {
        if (!(factor >= 1) || !Double.isFinite(factor)) {
            throw new IllegalArgumentException("factor=" + factor + " must be finite and >= 1");
        }
    }

    private static void requireOriginal(int originalMaxPositions) {
        if (originalMaxPositions < 1) {
            throw new IllegalArgumentException("originalMaxPositions=" + originalMaxPositions + " must be >= 1");
        }
    }

    private static double requireAttentionFactor(double attentionFactor) {
        if (!(attentionFactor > 0) || !Double.isFinite(attentionFactor)) {
            throw new IllegalArgumentException("attentionFactor=" + attentionFactor + " must be finite and > 0");
        }
        return attentionFactor;
    }
}
