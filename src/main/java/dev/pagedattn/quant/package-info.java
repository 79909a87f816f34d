/**
 * 8-bit K/V formats: the codecs ({@link dev.pagedattn.quant.QuantFormat}: FP8 E4M3, FP8 E5M2,
 * INT8, round to nearest even, saturating, refusing NaN/Inf), their scales per tensor or per KV
 * head ({@link dev.pagedattn.quant.KvScales}, computed by {@link dev.pagedattn.quant.ScaleCalibrator}),
 * and the lookup-table dequantisation that kernels use ({@link dev.pagedattn.quant.DequantTable}).
 * Nothing here knows about pools or offsets: the cache quantizes rows on write, kernels
 * dequantize codes on read, and {@link dev.pagedattn.cache.KvLayout} still owns every offset.
 */
package dev.pagedattn.quant;
