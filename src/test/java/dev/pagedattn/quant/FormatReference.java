package dev.pagedattn.quant;

import java.math.BigDecimal;
import java.util.TreeMap;

/**
 * The formats as their specifications spell them, written independently of {@link QuantFormat}:
 * each code's exact value from its bit fields (BigDecimal), and rounding by searching the sorted
 * list of all finite values for the nearest one (ties to the even code), saturating at the largest.
 */
final class FormatReference {
    private final QuantFormat format;
    private final BigDecimal[] values = new BigDecimal[256]; // [code], null where NaN or inf
    private final TreeMap<Double, Integer> codeOfValue = new TreeMap<>(); // finite value -> code (+0 for 0)

    FormatReference(QuantFormat format) {
        this.format = format;
        for (int code = 0; code < 256; code++) {
            values[code] = spell(format, code);
            boolean negativeZero = values[code] != null && values[code].signum() == 0 && (code & 0x80) != 0;
            boolean int8Minus128 = format == QuantFormat.INT8 && code == 0x80; // symmetric: never written
            if (values[code] != null && !negativeZero && !int8Minus128) {
                codeOfValue.putIfAbsent(values[code].doubleValue(), code);
            }
        }
    }

    /** Exact value of {@code code}; null for NaN and infinities. */
    BigDecimal value(int code) {
        return values[code & 0xFF];
    }

    /** All distinct finite values the encoder may produce, ascending, with their codes (zero as +0). */
    TreeMap<Double, Integer> finiteValues() {
        return codeOfValue;
    }

    double max() {
        return codeOfValue.lastKey();
    }

    /** The nearest finite value to {@code x} (ties: the even code), or +-max beyond it; zero keeps x's sign. */
    double round(double x) {
        double a = Math.abs(x);
        double r;
        if (a >= max()) {
            r = max();
        } else {
            double lo = codeOfValue.floorKey(a);
            double hi = codeOfValue.ceilingKey(a);
            double dLo = a - lo;  // exact: both are short binary fractions in range
            double dHi = hi - a;
            r = dLo < dHi ? lo : dHi < dLo ? hi : (codeOfValue.get(lo) % 2 == 0 ? lo : hi);
        }
        return Math.copySign(r, x);
    }

    /** Spacing of the format's values at magnitude {@code a} (the binade of a, or the subnormal step). */
    double ulp(double a) {
        Double next = codeOfValue.higherKey(Math.abs(a));
        Double prev = codeOfValue.floorKey(Math.abs(a));
        if (next == null) {
            return prev - codeOfValue.lowerKey(prev);
        }
        return next - prev;
    }

    private static BigDecimal spell(QuantFormat format, int code) {
        return switch (format) {
            case INT8 -> BigDecimal.valueOf((byte) code);
            case FP8_E4M3 -> fp8(code, 4, 3, 7, false);
            case FP8_E5M2 -> fp8(code, 5, 2, 15, true);
        };
    }

    private static BigDecimal fp8(int code, int expBits, int manBits, int bias, boolean ieee) {
        int sign = code >> 7 & 1;
        int exp = code >> manBits & (1 << expBits) - 1;
        int man = code & (1 << manBits) - 1;
        int expAllOnes = (1 << expBits) - 1;
        if (ieee ? exp == expAllOnes : exp == expAllOnes && man == (1 << manBits) - 1) {
            return null;
        }
        BigDecimal significand = exp == 0
                ? BigDecimal.valueOf(man)
                : BigDecimal.valueOf((1L << manBits) + man);
        int power = (exp == 0 ? 1 : exp) - bias - manBits;
        BigDecimal two = BigDecimal.valueOf(2);
        BigDecimal magnitude = power >= 0 ? significand.multiply(two.pow(power))
                : significand.divide(two.pow(-power));
        return sign == 1 ? magnitude.negate() : magnitude;
    }

    @Override
    public String toString() {
        return format.toString();
    }
}
