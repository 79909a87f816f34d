package dev.pagedattn.rope;

import static dev.pagedattn.rope.RopeFrequenciesTest.assertNamed;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Models' config.json fields (as a JSON library hands them over: Integer, Long, Double, Boolean, nested maps) read into
 * the rule {@code transformers} builds from them; gpt-oss's YaRN without truncation against a numpy transcription of
 * {@code _compute_yarn_parameters}; Qwen2.5-VL's M-RoPE sections; rules whose frequencies change with the sequence, Qwen3-VL's
 * interleaved sections and bad fields named.
 */
class RopeConfigTest {
    @Test
    void llama31ReadsItsLlama3Scaling() {
        Map<String, Object> config = Map.of("hidden_size", 4096, "num_attention_heads", 32, "rope_theta", 500000.0,
                "max_position_embeddings", 131072, "rope_scaling", Map.of("factor", 8.0, "low_freq_factor", 1.0,
                        "high_freq_factor", 4.0, "original_max_position_embeddings", 8192, "rope_type", "llama3"));
        assertEquals(RopeFrequencies.llama3(128, 500000, 8, 1, 4, 8192), RopeConfig.frequencies(config));
        RotaryEmbedding rope = RopeConfig.embedding(config, RotaryEmbedding.Style.NEOX);
        assertEquals(128, rope.headDim());
        assertEquals(128, rope.rotaryDim());
    }

    @Test
    void plainConfigsReadTheirTheta() {
        // Mistral 7B v0.1 (no rope_theta: 10000), Qwen 2.5 7B, Gemma 2 9B (head_dim 256 beside hidden_size 3584)
        assertEquals(RopeFrequencies.standard(128, 10000),
                RopeConfig.frequencies(Map.of("hidden_size", 4096, "num_attention_heads", 32)));
        assertEquals(RopeFrequencies.standard(128, 1e6), RopeConfig.frequencies(Map.of("hidden_size", 3584,
                "num_attention_heads", 28, "rope_theta", 1000000.0, "rope_scaling", Map.of("rope_type", "default"))));
        assertEquals(RopeFrequencies.standard(256, 10000), RopeConfig.frequencies(Map.of("hidden_size", 3584,
                "num_attention_heads", 16, "head_dim", 256, "rope_theta", 10000.0)));
        // transformers 5: rope_parameters carries the theta
        assertEquals(RopeFrequencies.standard(128, 1e6), RopeConfig.frequencies(Map.of("head_dim", 128,
                "rope_parameters", Map.of("rope_type", "default", "rope_theta", 1000000.0))));
    }

    @Test
    void partialRotaryReadsEachModelsField() {
        // Phi-2: 2560 / 32 = 80 dims, 0.4 of them turned; GPT-NeoX: rotary_pct 0.25 of 96 and rotary_emb_base; GPT-J: 64
        assertEquals(RopeFrequencies.standard(32, 10000), RopeConfig.frequencies(Map.of("hidden_size", 2560,
                "num_attention_heads", 32, "partial_rotary_factor", 0.4, "rope_theta", 10000.0)));
        assertEquals(32, RopeConfig.embedding(Map.of("hidden_size", 2560, "num_attention_heads", 32, "partial_rotary_factor", 0.4),
                RotaryEmbedding.Style.NEOX).rotaryDim());
        assertEquals(RopeFrequencies.standard(24, 20000), RopeConfig.frequencies(Map.of("hidden_size", 6144,
                "num_attention_heads", 64, "rotary_pct", 0.25, "rotary_emb_base", 20000)));
        assertEquals(RopeFrequencies.standard(64, 10000), RopeConfig.frequencies(Map.of("n_embd", 4096, "hidden_size", 4096,
                "num_attention_heads", 16, "rotary_dim", 64)));
    }

    @Test
    void yarnReadsQwenDeepSeekAndGptOss() {
        // Qwen 2.5's long-context recipe: type (not rope_type), the paper's betas and attention factor
        assertEquals(RopeFrequencies.yarn(128, 1e6, 4, 32768), RopeConfig.frequencies(Map.of("hidden_size", 3584,
                "num_attention_heads", 28, "rope_theta", 1000000.0, "max_position_embeddings", 32768,
                "rope_scaling", Map.of("factor", 4.0, "original_max_position_embeddings", 32768, "type", "yarn"))));
        // DeepSeek V3: the rotary part is qk_rope_head_dim; mscale = mscale_all_dim gives an attention factor of 1
        RopeFrequencies deepSeek = RopeConfig.frequencies(Map.of("hidden_size", 7168, "num_attention_heads", 128,
                "qk_rope_head_dim", 64, "qk_nope_head_dim", 128, "rope_theta", 10000, "max_position_embeddings", 163840,
                "rope_scaling", Map.of("beta_fast", 32, "beta_slow", 1, "factor", 40, "mscale", 1.0, "mscale_all_dim", 1.0,
                        "original_max_position_embeddings", 4096, "type", "yarn")));
        assertEquals(RopeFrequencies.yarn(64, 10000, 40, 4096, 32, 1, 1.0), deepSeek);
        // gpt-oss: truncate false; values from numpy over transformers' formula
        RopeFrequencies gptOss = RopeConfig.frequencies(Map.of("head_dim", 64, "hidden_size", 2880, "num_attention_heads", 64,
                "rope_theta", 150000, "max_position_embeddings", 131072, "rope_scaling", Map.of("beta_fast", 32.0,
                        "beta_slow", 1.0, "factor", 32.0, "original_max_position_embeddings", 4096, "rope_type", "yarn",
                        "truncate", false)));
        assertEquals(1.3465735902799727, gptOss.attentionFactor(), 1e-15);
        double[][] want = {{0, 1.0}, {5, 0.15532298948448497}, {8, 0.050813274815461475}, {10, 0.019335001126540362},
            {12, 0.006794959489732219}, {15, 0.0010526021013863359}, {20, 1.818833668168956e-05}, {31, 3.0235114281192144e-07}};
        for (double[] w : want) {
            assertEquals(w[1], gptOss.inverseFrequency((int) w[0]), 1e-13 * w[1], "gpt-oss pair " + (int) w[0]);
        }
        assertEquals(RopeFrequencies.yarn(64, 150000, 32, 4096, 32, 1, 0.1 * Math.log(32) + 1, false), gptOss);
    }

    /**
     * Gemma 3 27B's text config: full layers at theta 1000000 with linear factor 8, sliding layers at
     * rope_local_base_freq 10000 unscaled; the same in transformers 5's rope_parameters per layer type; a model with
     * one rule gives it to both types.
     */
    @Test
    void gemma3sSlidingLayersTurnByTheirOwnRule() {
        Map<String, Object> gemma3 = Map.of("head_dim", 128, "hidden_size", 5376, "num_attention_heads", 32,
                "rope_theta", 1000000.0, "rope_local_base_freq", 10000.0, "rope_scaling", Map.of("factor", 8.0,
                        "rope_type", "linear"));
        Map<String, Object> v5 = Map.of("head_dim", 128, "rope_parameters", Map.of(
                "full_attention", Map.of("rope_type", "linear", "factor", 8.0, "rope_theta", 1000000.0),
                "sliding_attention", Map.of("rope_type", "default", "rope_theta", 10000.0)));
        for (Map<String, Object> config : java.util.List.of(gemma3, v5)) {
            assertEquals(RopeFrequencies.linear(128, 1e6, 8), RopeConfig.frequencies(config, "full_attention"));
            assertEquals(RopeFrequencies.standard(128, 10000), RopeConfig.frequencies(config, "sliding_attention"));
            assertEquals(RopeFrequencies.standard(128, 10000),
                    RopeConfig.embedding(config, "sliding_attention", RotaryEmbedding.Style.NEOX).frequencies());
        }
        assertEquals(RopeFrequencies.linear(128, 1e6, 8), RopeConfig.frequencies(gemma3));
        assertNamed("rope_parameters has a rule per layer type", () -> RopeConfig.frequencies(v5));
        Map<String, Object> llama = Map.of("hidden_size", 4096, "num_attention_heads", 32, "rope_theta", 500000.0);
        assertEquals(RopeConfig.frequencies(llama), RopeConfig.frequencies(llama, "sliding_attention"));
        assertNamed("layerType=chunked_attention is not full_attention or sliding_attention",
                () -> RopeConfig.frequencies(llama, "chunked_attention"));
    }

    /** Qwen2.5-VL 7B: type mrope (older configs) or default with mrope_section (transformers' current form). */
    @Test
    void qwen25VlReadsItsSections() {
        for (String type : new String[] {"mrope", "default"}) {
            Map<String, Object> config = Map.of("hidden_size", 3584, "num_attention_heads", 28, "rope_theta", 1000000.0,
                    "rope_scaling", Map.of("type", type, "mrope_section", java.util.List.of(16, 24, 24)));
            assertEquals(RopeFrequencies.standard(128, 1e6), RopeConfig.frequencies(config));
            MultimodalRotaryEmbedding mrope = RopeConfig.multimodalEmbedding(config, RotaryEmbedding.Style.NEOX);
            org.junit.jupiter.api.Assertions.assertArrayEquals(new int[] {16, 24, 24}, mrope.sections());
            assertEquals(128, mrope.rotation().headDim());
        }
    }

    @Test
    void rulesThatChangeWithTheSequenceAndBadFieldsAreNamed() {
        Map<String, Object> base = Map.of("hidden_size", 4096, "num_attention_heads", 32);
        assertNamed("rope_scaling.rope_type=dynamic is not supported", () -> RopeConfig.frequencies(with(base, "rope_scaling",
                Map.of("rope_type", "dynamic", "factor", 2.0))));
        assertNamed("rope_scaling.rope_type=longrope is not supported", () -> RopeConfig.frequencies(with(base, "rope_scaling",
                Map.of("type", "longrope"))));
        assertNamed("mrope_section=[16, 24, 24]: multimodal RoPE", () -> RopeConfig.embedding(with(base, "rope_scaling",
                Map.of("type", "mrope", "mrope_section", java.util.List.of(16, 24, 24))), RotaryEmbedding.Style.NEOX));
        assertNamed("rope_scaling.mrope_interleaved=true is not supported", () -> RopeConfig.frequencies(with(base,
                "rope_scaling", Map.of("rope_type", "default", "mrope_section", java.util.List.of(24, 20, 20),
                        "mrope_interleaved", true))));
        assertNamed("config has no rope_scaling.mrope_section", () -> RopeConfig.multimodalEmbedding(base, RotaryEmbedding.Style.NEOX));
        assertNamed("rope_scaling.mrope_section=16 is not a list", () -> RopeConfig.multimodalEmbedding(with(base,
                "rope_scaling", Map.of("type", "mrope", "mrope_section", 16)), RotaryEmbedding.Style.NEOX));
        assertNamed("rope_scaling.rope_type=ntk is not one of default, linear, llama3, yarn",
                () -> RopeConfig.frequencies(with(base, "rope_scaling", Map.of("rope_type", "ntk"))));
        assertNamed("rope_scaling.factor is missing (rope_type=llama3)", () -> RopeConfig.frequencies(with(base, "rope_scaling",
                Map.of("rope_type", "llama3"))));
        assertNamed("rope_scaling.factor=eight is not a finite number", () -> RopeConfig.frequencies(with(base,
                "rope_scaling", Map.of("rope_type", "linear", "factor", "eight"))));
        assertNamed("rope_scaling.truncate=no is not true or false", () -> RopeConfig.frequencies(with(base, "rope_scaling",
                Map.of("rope_type", "yarn", "factor", 4.0, "original_max_position_embeddings", 4096, "truncate", "no"))));
        assertNamed("original_max_position_embeddings is missing (rope_type=yarn), and so is max_position_embeddings",
                () -> RopeConfig.frequencies(with(base, "rope_scaling", Map.of("rope_type", "yarn", "factor", 4.0))));
        assertNamed("rope_scaling=linear is not an object", () -> RopeConfig.frequencies(with(base, "rope_scaling", "linear")));
        assertNamed("config has no head dim", () -> RopeConfig.frequencies(Map.of("rope_theta", 10000.0)));
        assertNamed("hidden_size=4096 is not a multiple of num_attention_heads=48",
                () -> RopeConfig.frequencies(Map.of("hidden_size", 4096, "num_attention_heads", 48)));
        assertNamed("head_dim=127.5 is not a whole number", () -> RopeConfig.frequencies(Map.of("head_dim", 127.5)));
        assertNamed("partial_rotary_factor=1.5 must be in (0, 1]", () -> RopeConfig.frequencies(with(base,
                "partial_rotary_factor", 1.5)));
        assertNamed("theta=1.0 must be finite and > 1", () -> RopeConfig.frequencies(with(base, "rope_theta", 1)));
        assertNamed("config=null", () -> RopeConfig.frequencies(null));
    }

    private static Map<String, Object> with(Map<String, Object> base, String key, Object value) {
        java.util.HashMap<String, Object> m = new java.util.HashMap<>(base);
        m.put(key, value);
        return m;
    }
}
