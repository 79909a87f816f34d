package dev.pagedattn.rope;

import java.util.Map;

/**
 * A model's rotary fields, read from its Hugging Face {@code config.json} as a map (parsed by the caller's JSON library;
 * numbers may be any {@link Number}), into {@link RopeFrequencies} and a {@link RotaryEmbedding}, as
 * {@code transformers} reads them:
 *
 * <pre>
 *  head dim     qk_rope_head_dim (DeepSeek's MLA: the rotary part alone), else head_dim, else hidden_size / num_attention_heads
 *  rotary dim   rotary_dim (GPT-J), else head dim x partial_rotary_factor (Phi-2: 0.4) or x rotary_pct (GPT-NeoX)
 *  theta        rope_theta, else rotary_emb_base (GPT-NeoX), else 10000
 *  scaling      rope_scaling (or transformers 5's rope_parameters, which also carries rope_theta): rope_type or type =
 *               default | linear (factor) | llama3 (factor, low_freq_factor, high_freq_factor,
 *               original_max_position_embeddings) | yarn (factor, original_max_position_embeddings else the config's
 *               max_position_embeddings, beta_fast 32, beta_slow 1, attention_factor, else mscale / mscale_all_dim,
 *               else 0.1 ln(factor) + 1; truncate true)
 *  per layer    frequencies(config, layerType): Gemma 3's sliding layers at rope_local_base_freq, unscaled;
 *               transformers 5's rope_parameters keyed by full_attention / sliding_attention
 * </pre>
 *
 * The rules whose frequencies change with the sequence (dynamic, longrope) are refused by name;
 * {@link RopeFrequencies#custom} takes any list a caller computes. A config with {@code mrope_section} (Qwen2-VL's
 * multimodal RoPE) makes a {@link MultimodalRotaryEmbedding} ({@link #multimodalEmbedding}); Qwen3-VL's interleaved
 * sections are refused. Every bad or missing field is named with its value.
 */
public final class RopeConfig {
    private static final String FULL = "full_attention";
    private static final String SLIDING = "sliding_attention";

    private RopeConfig() {
    }

    /** The rotation {@code config} describes, in {@code style} (config.json does not say which pairs the weights use). */
    public static RotaryEmbedding embedding(Map<String, ?> config, RotaryEmbedding.Style style) {
        int[] sections = mropeSections(config);
        if (sections != null) {
            throw new IllegalArgumentException("mrope_section=" + java.util.Arrays.toString(sections) + ": multimodal RoPE, whose"
                    + " tokens have three positions (RopeConfig.multimodalEmbedding)");
        }
        return new RotaryEmbedding(headDim(config), frequencies(config), style);
    }

    /**
     * The multimodal rotation (M-RoPE: Qwen2-VL, Qwen2.5-VL) {@code config} describes: its frequencies, its pairs cut
     * into {@code mrope_section}. Qwen3-VL's {@code mrope_interleaved} is refused by name.
     */
    public static MultimodalRotaryEmbedding multimodalEmbedding(Map<String, ?> config, RotaryEmbedding.Style style) {
        int[] sections = mropeSections(config);
        if (sections == null) {
            throw new IllegalArgumentException("config has no rope_scaling.mrope_section (or rope_parameters.mrope_section):"
                    + " not a multimodal RoPE");
        }
        return new MultimodalRotaryEmbedding(new RotaryEmbedding(headDim(config), frequencies(config), style), sections);
    }

    /** {@code mrope_section} of the config's rope_scaling or rope_parameters, or null. */
    private static int[] mropeSections(Map<String, ?> config) {
        if (config == null) {
            throw new IllegalArgumentException("config=null");
        }
        String where = config.get("rope_scaling") != null ? "rope_scaling" : "rope_parameters";
        Map<String, ?> scaling = map(config, where);
        Object v = scaling == null ? null : scaling.get("mrope_section");
        if (v == null) {
            return null;
        }
        if (!(v instanceof java.util.List<?> list) || list.isEmpty()) {
            throw new IllegalArgumentException(where + ".mrope_section=" + v + " is not a list of pair counts");
        }
        int[] sections = new int[list.size()];
        for (int i = 0; i < sections.length; i++) {
            if (!(list.get(i) instanceof Number n)) {
                throw new IllegalArgumentException(where + ".mrope_section=" + v + " is not a list of pair counts");
            }
            sections[i] = whole(where + ".mrope_section[" + i + "]", n.doubleValue());
        }
        return sections;
    }

    /** The frequencies {@code config} describes. */
    public static RopeFrequencies frequencies(Map<String, ?> config) {
        if (config == null) {
            throw new IllegalArgumentException("config=null");
        }
        Map<String, ?> scaling = map(config, "rope_scaling");
        String where = "rope_scaling";
        if (scaling == null) {
            scaling = map(config, "rope_parameters");
            where = "rope_parameters";
            if (scaling != null && (scaling.get(FULL) instanceof Map || scaling.get(SLIDING) instanceof Map)) {
                throw new IllegalArgumentException("rope_parameters has a rule per layer type (" + scaling.keySet() + "): use"
                        + " RopeConfig.frequencies(config, layerType)");
            }
        }
        double theta = number(config, "rope_theta", Double.NaN);
        if (Double.isNaN(theta) && scaling != null) {
            theta = number(scaling, where, "rope_theta", Double.NaN);
        }
        return rule(config, scaling, where, theta);
    }

    /**
     * The frequencies of the layers of {@code layerType} ({@code full_attention} or {@code sliding_attention}, the
     * config's {@code layer_types} values) in a model whose windowed layers turn by a rule of their own: Gemma 3's
     * {@code rope_local_base_freq} (10000, unscaled, beside the full layers' 1000000 with linear factor 8), or
     * transformers 5's {@code rope_parameters} holding one rule per layer type. Other configs give both types
     * {@link #frequencies(Map)}.
     */
    public static RopeFrequencies frequencies(Map<String, ?> config, String layerType) {
        if (config == null) {
            throw new IllegalArgumentException("config=null");
        }
        if (!FULL.equals(layerType) && !SLIDING.equals(layerType)) {
            throw new IllegalArgumentException("layerType=" + layerType + " is not " + FULL + " or " + SLIDING);
        }
        Map<String, ?> perType = map(config, "rope_parameters");
        if (perType != null && perType.get(layerType) instanceof Map) {
            Map<String, ?> rule = map(perType, layerType);
            String where = "rope_parameters." + layerType;
            double theta = number(rule, where, "rope_theta", Double.NaN);
            return rule(config, rule, where, Double.isNaN(theta) ? number(config, "rope_theta", Double.NaN) : theta);
        }
        if (SLIDING.equals(layerType) && config.get("rope_local_base_freq") != null) {
            return RopeFrequencies.standard(rotaryDim(config, null, null), number(config, "rope_local_base_freq", Double.NaN));
        }
        return frequencies(config);
    }

    /** As {@link #embedding(Map, RotaryEmbedding.Style)}, for the layers of {@code layerType}. */
    public static RotaryEmbedding embedding(Map<String, ?> config, String layerType, RotaryEmbedding.Style style) {
        return new RotaryEmbedding(headDim(config), frequencies(config, layerType), style);
    }

    /** The rule of {@code scaling} (null: the standard one) at {@code theta} (NaN: the config's other names, or 10000). */
    private static RopeFrequencies rule(Map<String, ?> config, Map<String, ?> scaling, String where, double theta) {
        if (Double.isNaN(theta)) {
            theta = number(config, "rotary_emb_base", 10000);
        }
        int rotaryDim = rotaryDim(config, scaling, where);
        String type = scaling == null ? "default" : text(scaling, "rope_type", text(scaling, "type", "default"));
        if (scaling != null && Boolean.TRUE.equals(scaling.get("mrope_interleaved"))) {
            throw new IllegalArgumentException(where + ".mrope_interleaved=true is not supported: Qwen3-VL's interleaved"
                    + " sections (MultimodalRotaryEmbedding cuts contiguous ones)");
        }
        if (type.equals("mrope")) {
            type = "default"; // Qwen2-VL's frequencies; its sections are multimodalEmbedding's
        }
        return switch (type) {
            case "default" -> RopeFrequencies.standard(rotaryDim, theta);
            case "linear" -> RopeFrequencies.linear(rotaryDim, theta, required(scaling, where, "factor", type));
            case "llama3" -> RopeFrequencies.llama3(rotaryDim, theta, required(scaling, where, "factor", type),
                    required(scaling, where, "low_freq_factor", type), required(scaling, where, "high_freq_factor", type),
                    whole(where + ".original_max_position_embeddings", required(scaling, where, "original_max_position_embeddings", type)));
            case "yarn" -> yarn(config, scaling, where, rotaryDim, theta);
            case "dynamic", "longrope" -> throw new IllegalArgumentException(where + ".rope_type=" + type + " is not supported: its"
                    + " frequencies change with the sequence's length (compute them and use RopeFrequencies.custom)");
            default -> throw new IllegalArgumentException(where + ".rope_type=" + type + " is not one of default, linear,"
                    + " llama3, yarn");
        };
    }

    /** The head dim the rotation's rows have: qk_rope_head_dim, head_dim, or hidden_size / num_attention_heads. */
    public static int headDim(Map<String, ?> config) {
        double rope = number(config, "qk_rope_head_dim", Double.NaN);
        if (!Double.isNaN(rope)) {
            return whole("qk_rope_head_dim", rope);
        }
        double head = number(config, "head_dim", Double.NaN);
        if (!Double.isNaN(head)) {
            return whole("head_dim", head);
        }
        double hidden = number(config, "hidden_size", Double.NaN);
        double heads = number(config, "num_attention_heads", Double.NaN);
        if (Double.isNaN(hidden) || Double.isNaN(heads)) {
            throw new IllegalArgumentException("config has no head dim: needs qk_rope_head_dim, head_dim, or hidden_size and"
                    + " num_attention_heads");
        }
        int h = whole("num_attention_heads", heads);
        int size = whole("hidden_size", hidden);
        if (h < 1 || size % h != 0) {
            throw new IllegalArgumentException("hidden_size=" + size + " is not a multiple of num_attention_heads=" + h);
        }
        return size / h;
    }

    private static int rotaryDim(Map<String, ?> config, Map<String, ?> scaling, String where) {
        double explicit = number(config, "rotary_dim", Double.NaN);
        if (!Double.isNaN(explicit)) {
            return whole("rotary_dim", explicit);
        }
        double fraction = number(config, "partial_rotary_factor", Double.NaN);
        if (Double.isNaN(fraction) && scaling != null) {
            fraction = number(scaling, where, "partial_rotary_factor", Double.NaN);
        }
        if (Double.isNaN(fraction)) {
            fraction = number(config, "rotary_pct", 1);
        }
        if (!(fraction > 0 && fraction <= 1)) {
            throw new IllegalArgumentException("partial_rotary_factor=" + fraction + " must be in (0, 1]");
        }
        return (int) (headDim(config) * fraction); // transformers' int(head_dim * partial_rotary_factor)
    }

    private static RopeFrequencies yarn(Map<String, ?> config, Map<String, ?> scaling, String where, int rotaryDim,
            double theta) {
        double factor = required(scaling, where, "factor", "yarn");
        double original = number(scaling, where, "original_max_position_embeddings", Double.NaN);
        if (Double.isNaN(original)) {
            original = number(config, "max_position_embeddings", Double.NaN);
        }
        if (Double.isNaN(original)) {
            throw new IllegalArgumentException(where + ".original_max_position_embeddings is missing (rope_type=yarn), and so"
                    + " is max_position_embeddings");
        }
        double betaFast = number(scaling, where, "beta_fast", 0);
        double betaSlow = number(scaling, where, "beta_slow", 0);
        double attention = number(scaling, where, "attention_factor", Double.NaN);
        if (Double.isNaN(attention)) {
            double mscale = number(scaling, where, "mscale", 0);
            double mscaleAllDim = number(scaling, where, "mscale_all_dim", 0);
            attention = mscale != 0 && mscaleAllDim != 0 ? mscale(factor, mscale) / mscale(factor, mscaleAllDim) : mscale(factor, 1);
        }
        Object truncate = scaling.get("truncate");
        if (truncate != null && !(truncate instanceof Boolean)) {
            throw new IllegalArgumentException(where + ".truncate=" + truncate + " is not true or false");
        }
        return RopeFrequencies.yarn(rotaryDim, theta, factor, whole(where + ".original_max_position_embeddings", original),
                betaFast != 0 ? betaFast : 32, betaSlow != 0 ? betaSlow : 1, attention, truncate == null || (Boolean) truncate);
    }

    /** transformers' get_mscale: 1 at factors up to 1. */
    private static double mscale(double factor, double mscale) {
        return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, ?> map(Map<String, ?> config, String key) {
        Object v = config.get(key);
        if (v == null) {
            return null;
        }
        if (!(v instanceof Map)) {
            throw new IllegalArgumentException(key + "=" + v + " is not an object");
        }
        return (Map<String, ?>) v;
    }

    private static double number(Map<String, ?> config, String key, double absent) {
        return number(config, null, key, absent);
    }

    private static double number(Map<String, ?> map, String where, String key, double absent) {
        Object v = map.get(key);
        if (v == null) {
            return absent;
        }
        if (!(v instanceof Number n) || !Double.isFinite(n.doubleValue())) {
            throw new IllegalArgumentException((where == null ? "" : where + ".") + key + "=" + v + " is not a finite number");
        }
        return n.doubleValue();
    }

    private static double required(Map<String, ?> scaling, String where, String key, String type) {
        double v = number(scaling, where, key, Double.NaN);
        if (Double.isNaN(v)) {
            throw new IllegalArgumentException(where + "." + key + " is missing (rope_type=" + type + ")");
        }
        return v;
    }

    private static String text(Map<String, ?> map, String key, String absent) {
        Object v = map.get(key);
        return v == null ? absent : v.toString();
    }

    private static int whole(String key, double v) {
        if (v != Math.rint(v) || v < 1 || v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(key + "=" + v + " is not a whole number >= 1");
        }
        return (int) v;
    }
}
