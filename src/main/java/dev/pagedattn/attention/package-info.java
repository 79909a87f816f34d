/**
 * Decode attention over the paged KV cache: the backend-neutral API ({@link dev.pagedattn.attention.DecodeAttention},
 * {@link dev.pagedattn.attention.AttentionSpec}), the multi-threaded plain-JVM backend
 * ({@link dev.pagedattn.attention.JvmDecodeAttention}) that the GPU path is checked against, and the
 * fp64 textbook reference ({@link dev.pagedattn.attention.ReferenceAttention}) that checks both.
 */
package dev.pagedattn.attention;
