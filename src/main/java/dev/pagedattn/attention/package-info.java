/**
 * Decode attention over the paged KV cache: the backend-neutral API ({@link dev.pagedattn.attention.DecodeAttention},
 * {@link dev.pagedattn.attention.AttentionSpec}, with its per-layer {@link dev.pagedattn.attention.AttentionSinks}), the
 * multi-threaded plain-JVM backend
 * ({@link dev.pagedattn.attention.JvmDecodeAttention}, with its split rule, worker pool, inner loop and fp16
 * widening in the {@code Jvm*} and {@code Fp16Widening} classes) that the GPU path is checked against, and the
 * fp64 textbook reference ({@link dev.pagedattn.attention.ReferenceAttention}) that checks both; and
 * the same three for prefill, many causal query tokens per sequence
 * ({@link dev.pagedattn.attention.PrefillAttention}, {@link dev.pagedattn.attention.PrefillBatch},
 * {@link dev.pagedattn.attention.JvmPrefillAttention}, {@link dev.pagedattn.attention.ReferencePrefill}).
 */
package dev.pagedattn.attention;
