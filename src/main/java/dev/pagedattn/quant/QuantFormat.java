package dev.pagedattn.quant;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;

/**
 * The 8-bit K/V element formats and their codecs. A stored value is {@code decode(code) * scale};
 * storing {@code x} writes {@code encode(x / scale)}: the quotient rounded to the nearest
 * representable value (ties to even), saturated at {@code +-maxFinite}. NaN and infinities are
 * refused before anything is written, never stored.
 *
 * <pre>
 *  FP8_E4M3  S EEEE MMM  OCP "e4m3fn": bias 7, no infinities, S.1111.111 is NaN, max 448,
 *                        min normal 2^-6, min subnormal 2^-9 (vLLM's and NVIDIA's default fp8)
 *  FP8_E5M2  S EEEEE MM  IEEE-like: bias 15, S.11111.00 is +-inf, S.11111.xx NaN, max 57344,
 *                        min normal 2^-14, min subnormal 2^-16 (the top byte of an fp16)
 *  INT8      two's complement, symmetric: codes -127..127 only; 0x80 (-128) is never written
 * </pre>
 *
 * <p>Why these three: E4M3 has one more mantissa bit (relative error 2^-4 against E5M2's 2^-3) and
 * is the format vLLM, FlashInfer and TensorRT-LLM pick for K/V; E5M2 trades that bit for range
 * (useful without calibrated scales); INT8 is uniform, best for tensors without outliers.
 *
 * <p>The encoder works on the fp32 bit pattern, so it is exact: for a normal result the mantissa is
 * cut from 23 to {@code m} bits with a round-to-nearest-even increment (a carry moves into the
 * exponent, as it should); below the format's smallest normal the value is scaled by a power of two
 * (exact) so that the subnormal code is the rounded integer itself.
 */
public enum QuantFormat {
    FP8_E4M3(4, 3, 7, 0x7E),
    FP8_E5M2(5, 2, 15, 0x7B),
    INT8(0, 0, 0, 127);

    private final int maxCode;          // largest finite positive code
    private final int shift;            // fp32 mantissa bits dropped for a normal result
    private final int roundBias;        // half an fp8 ulp minus one, in fp32 mantissa units
    private final int rebias;           // (127 - bias) << manBits: fp32 -> fp8 exponent
    private final int minNormalBits;    // fp32 bits of the smallest normal of this format
    private final float subnormalScale; // 2^(bias + manBits - 1): subnormal value -> its code
    private final float[] values;       // [256] decode(code), the dequantisation table
    private final float maxFinite;

    QuantFormat(int expBits, int manBits, int bias, int maxCode) {
        this.maxCode = maxCode;
        this.shift = 23 - manBits;
        this.roundBias = (1 << (shift - 1)) - 1;
        this.rebias = (127 - bias) << manBits;
        this.minNormalBits = (127 + 1 - bias) << 23;
        this.subnormalScale = Math.scalb(1f, bias + manBits - 1);
        this.values = new float[256];
        for (int code = 0; code < 256; code++) {
            values[code] = expBits == 0 ? (byte) code : fp8Value(code, expBits, manBits, bias);
        }
        this.maxFinite = values[maxCode];
    }

    private static float fp8Value(int code, int expBits, int manBits, int bias) {
        int exp = (code >> manBits) & ((1 << expBits) - 1);
        int man = code & ((1 << manBits) - 1);
        float sign = (code & 0x80) != 0 ? -1f : 1f;
        int expMax = (1 << expBits) - 1;
        if (expBits == 4 && exp == expMax && man == (1 << manBits) - 1) {
            return Float.NaN;                              // e4m3fn: only S.1111.111 is special
        }
        if (expBits == 5 && exp == expMax) {
            return man == 0 ? sign * Float.POSITIVE_INFINITY : Float.NaN;
        }
        return exp == 0
                ? sign * Math.scalb((float) man, 1 - bias - manBits)
                : sign * Math.scalb((float) ((1 << manBits) | man), exp - bias - manBits);
    }

    /** Bytes per stored element: always 1, half of fp16. */
    public int bytes() {
        return 1;
    }

    /** Largest finite magnitude: 448, 57344 or 127; larger quotients saturate to it. */
    public float maxFinite() {
        return maxFinite;
    }

    /** The value of {@code code} (its low 8 bits; a signed {@code byte} works as well); exact. */
    public float decode(int code) {
        return values[code & 0xFF];
    }

    /** {@code decode(code)} for all 256 codes, a fresh copy: NaN (and +-inf for E5M2) where reserved. */
    public float[] table() {
        return values.clone();
    }

    /** The code of {@code x} (already divided by the scale): nearest, ties to even, saturating. */
    public byte encode(float x) {
        if (!Float.isFinite(x)) {
            throw new IllegalArgumentException("value=" + x + " is not finite: " + this + " stores finite values only");
        }
        return encodeFinite(x);
    }

    /** {@link #encode} without the finiteness check; +-inf saturates, NaN is undefined. */
    byte encodeFinite(float x) {
        if (this == INT8) {
            return (byte) Math.max(-127, Math.min(127, (int) Math.rint(x)));
        }
        int bits = Float.floatToRawIntBits(x);
        int sign = (bits >>> 24) & 0x80;
        int abs = bits & 0x7FFFFFFF;
        int code = abs < minNormalBits
                ? (int) Math.rint(Float.intBitsToFloat(abs) * subnormalScale)    // exact scaling, then RNE
                : ((abs + roundBias + ((abs >> shift) & 1)) >> shift) - rebias; // RNE on the fp32 mantissa
        return (byte) (sign | Math.min(code, maxCode));
    }

    /**
     * Quantizes {@code length} values of {@code src} from {@code srcOffset} (e.g. one head's row of
     * {@code headDim}) into {@code dst} from {@code dstOffset}: {@code dst[i] = encode(src[i] / scale)}.
     * A non-finite value is reported by its index and nothing is written.
     */
    public void quantize(float[] src, int srcOffset, int length, float scale, byte[] dst, int dstOffset) {
        checkRow(src, srcOffset, length, scale);
        checkRange("dst", dst == null ? -1 : dst.length, dstOffset, length);
        for (int i = 0; i < length; i++) {
            dst[dstOffset + i] = encodeFinite(src[srcOffset + i] / scale);
        }
    }

    /** {@link #quantize(float[], int, int, float, byte[], int)} into a TornadoVM byte array (a pool). */
    public void quantize(float[] src, int srcOffset, int length, float scale, ByteArray dst, int dstOffset) {
        quantize(src, srcOffset, length, scale, dst == null ? null : dst.getSegment(), dstOffset);
    }

    /**
     * {@link #quantize(float[], int, int, float, byte[], int)} into the bytes of off-heap memory from
     * byte {@code dstOffset}: the payload of any TornadoVM native array, e.g. an {@code IntArray}
     * pool that packs four codes per word for kernels that load 32 bits at a time.
     */
    public void quantize(float[] src, int srcOffset, int length, float scale, MemorySegment dst, long dstOffset) {
        checkRow(src, srcOffset, length, scale);
        checkRange("dst", dst == null ? -1 : dst.byteSize(), dstOffset, length);
        for (int i = 0; i < length; i++) {
            dst.set(ValueLayout.JAVA_BYTE, dstOffset + i, encodeFinite(src[srcOffset + i] / scale));
        }
    }

    /** {@code dst[i] = decode(src[i]) * scale} for {@code length} codes; exact up to the fp32 product. */
    public void dequantize(byte[] src, int srcOffset, int length, float scale, float[] dst, int dstOffset) {
        checkScale(scale);
        checkRange("src", src == null ? -1 : src.length, srcOffset, length);
        checkRange("dst", dst == null ? -1 : dst.length, dstOffset, length);
        for (int i = 0; i < length; i++) {
            dst[dstOffset + i] = values[src[srcOffset + i] & 0xFF] * scale;
        }
    }

    /** {@link #dequantize(byte[], int, int, float, float[], int)} from a TornadoVM byte array (a pool). */
    public void dequantize(ByteArray src, int srcOffset, int length, float scale, float[] dst, int dstOffset) {
        dequantize(src == null ? null : src.getSegment(), srcOffset, length, scale, dst, dstOffset);
    }

    /** {@link #dequantize(byte[], int, int, float, float[], int)} from the bytes of off-heap memory. */
    public void dequantize(MemorySegment src, long srcOffset, int length, float scale, float[] dst, int dstOffset) {
        checkScale(scale);
        checkRange("src", src == null ? -1 : src.byteSize(), srcOffset, length);
        checkRange("dst", dst == null ? -1 : dst.length, dstOffset, length);
        for (int i = 0; i < length; i++) {
            dst[dstOffset + i] = values[src.get(ValueLayout.JAVA_BYTE, srcOffset + i) & 0xFF] * scale;
        }
    }

    /**
     * Refuses NaN and +-inf in {@code values[offset .. offset+length)}, naming the first one as
     * {@code name[index]=value}. Callers that store several rows (all heads of a token, all tokens
     * of a prompt) check them all first, so that a refused write changes nothing.
     */
    public static void requireFinite(String name, float[] values, int offset, int length) {
        checkRange(name, values == null ? -1 : values.length, offset, length);
        for (int i = offset; i < offset + length; i++) {
            if (!Float.isFinite(values[i])) {
                throw new IllegalArgumentException(name + "[" + i + "]=" + values[i]
                        + " is not finite: 8-bit K/V formats store finite values only; nothing was written");
            }
        }
    }

    /** A usable scale: finite, positive and normal (a subnormal scale would overflow every quotient). */
    public static void checkScale(float scale) {
        if (!(scale >= Float.MIN_NORMAL) || scale == Float.POSITIVE_INFINITY) {
            throw new IllegalArgumentException("scale=" + scale + " must be finite and >= " + Float.MIN_NORMAL);
        }
    }

    /**
     * Parses {@code fp8} (= {@code fp8-e4m3}), {@code fp8-e5m2} and {@code int8}, any case,
     * {@code _} or {@code -}; the message names the bad value.
     */
    public static QuantFormat parse(String text) {
        String key = text == null ? "" : text.trim().toUpperCase(java.util.Locale.ROOT).replace('-', '_');
        if (key.equals("FP8")) {
            return FP8_E4M3;
        }
        for (QuantFormat f : values()) {
            if (f.name().equals(key)) {
                return f;
            }
        }
        throw new IllegalArgumentException("format=" + text + " is not an 8-bit format (use fp8, fp8-e4m3, fp8-e5m2 or int8)");
    }

    private static void checkRow(float[] src, int srcOffset, int length, float scale) {
        checkScale(scale);
        requireFinite("src", src, srcOffset, length);
    }

    private static void checkRange(String name, long arrayLength, long offset, int length) {
        if (arrayLength < 0) {
            throw new IllegalArgumentException(name + "=null");
        }
        if (offset < 0 || length < 0 || offset > arrayLength - length) {
            throw new IllegalArgumentException(name + " offset=" + offset + " length=" + length
                    + " is outside " + name + ".length=" + arrayLength);
        }
    }
}
