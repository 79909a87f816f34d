/**
 * Rotary position embeddings for the rows an engine gives the cache and the attention calls: a model's frequencies
 * ({@link dev.pagedattn.rope.RopeFrequencies}: the original rule, linear, Llama 3.1's and YaRN's scaling, or any list;
 * {@link dev.pagedattn.rope.RopeConfig} reads them from a model's config.json),
 * the in-place rotation of query and key rows by their positions ({@link dev.pagedattn.rope.RotaryEmbedding}, NEOX or
 * GPT-J pairs, partial rotary dims; {@link dev.pagedattn.rope.MultimodalRotaryEmbedding}: Qwen2-VL's M-RoPE) and its
 * fp64 reference ({@link dev.pagedattn.rope.ReferenceRotary}). Keys are
 * rotated before they are written, so the cache, its layout and every attention kernel know nothing of positions.
 */
package dev.pagedattn.rope;
