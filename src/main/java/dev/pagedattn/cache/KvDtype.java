package dev.pagedattn.cache;

import dev.pagedattn.quant.QuantFormat;

/**
 * Element type of the K and V pools. Attention always accumulates in fp32. The 8-bit dtypes store
 * {@link QuantFormat} codes with the cache's {@link dev.pagedattn.quant.KvScales}: a stored value
 * is {@code decode(code) * scale(layer, kvHead)}.
 */
public enum KvDtype {
    FP16(2, null),
    /** bfloat16: fp32's range in 2 bytes (the JVM backends and TornadoVM's CUDA backend). */
    BF16(2, null),
    FP32(4, null),
    FP8_E4M3(1, QuantFormat.FP8_E4M3),
    FP8_E5M2(1, QuantFormat.FP8_E5M2),
    INT8(1, QuantFormat.INT8);

    private final int bytes;
    private final QuantFormat format;

    KvDtype(int bytes, QuantFormat format) {
        this.bytes = bytes;
        this.format = format;
    }

    /** Bytes per stored element. */
    public int bytes() {
        return bytes;
    }

    /** The 8-bit codec, or null for fp16/fp32. */
    public QuantFormat format() {
        return format;
    }

    /** True for the 8-bit dtypes (codes plus scales). */
    public boolean isQuantized() {
        return format != null;
    }

    /**
     * True where a pool's TornadoVM array is an {@code IntArray} of packed elements: four 8-bit codes or two bf16
     * elements per word, element {@code i} at byte {@code i * bytes()} of the pool's memory either way.
     */
    public boolean packsWords() {
        return isQuantized() || this == BF16;
    }

    /** log2 of the elements a 32-bit word holds: 2 for 8-bit codes, 1 for bf16 (and fp16), 0 for fp32. */
    public int wordShift() {
        return Integer.numberOfTrailingZeros(Integer.BYTES / bytes);
    }

    /** The dtype storing {@code format}. */
    public static KvDtype of(QuantFormat format) {
        for (KvDtype d : values()) {
            if (d.format == format && format != null) {
                return d;
            }
        }
        throw new IllegalArgumentException("format=" + format + " has no KvDtype");
    }

    /**
     * Parses {@code fp16}, {@code bf16}, {@code fp32}, {@code fp8} (= {@code fp8-e4m3}), {@code fp8-e5m2} and
     * {@code int8} (any case, {@code -} or {@code _}); the message names the bad value.
     */
    public static KvDtype parse(String text) {
        String key = text == null ? "" : text.trim().toUpperCase(java.util.Locale.ROOT).replace('-', '_');
        if (key.equals("FP8")) {
            return FP8_E4M3;
        }
        for (KvDtype d : values()) {
            if (d.name().equals(key)) {
                return d;
            }
        }
        throw new IllegalArgumentException("dtype=" + text + " is not supported (use fp16, bf16, fp32, fp8, fp8-e5m2 or int8)");
    }
}
