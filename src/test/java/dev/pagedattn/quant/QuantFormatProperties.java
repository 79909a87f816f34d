package dev.pagedattn.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.EnumMap;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;

/**
 * Every fp32 input, not just the samples of the example tests: the encoder picks the nearest
 * value of the format (ties to even, checked against {@link FormatReference}'s search of the
 * sorted value list) and is monotone in value order.
 */
class QuantFormatProperties {
    private static final Map<QuantFormat, FormatReference> SPECS = new EnumMap<>(QuantFormat.class);

    static {
        for (QuantFormat f : QuantFormat.values()) {
            SPECS.put(f, new FormatReference(f));
        }
    }

    /** Any finite bit pattern, values around each format's range, exact ties and their neighbours. */
    @Provide
    Arbitrary<Float> floats() {
        Arbitrary<Float> anyFinite = Arbitraries.integers().map(Float::intBitsToFloat).filter(Float::isFinite);
        Arbitrary<Float> int8Range = uniform(140);
        Arbitrary<Float> e4m3Range = uniform(500);
        Arbitrary<Float> e5m2Range = uniform(70000);
        Arbitrary<Float> logUniform = Arbitraries.randomValue(r ->  // 2^-24 .. 2^20, both signs: every binade
                (r.nextBoolean() ? 1f : -1f) * (float) Math.exp(r.nextDouble(Math.log(0x1p-24), Math.log(0x1p20))));
        Arbitrary<Float> nearTies = Combinators.combine(Arbitraries.of(QuantFormat.class),
                Arbitraries.integers().between(0, 255), Arbitraries.integers().between(-2, 2), Arbitraries.of(1f, -1f))
                .as(QuantFormatProperties::nearTie);
        return Arbitraries.frequencyOf(Tuple.of(2, anyFinite), Tuple.of(2, int8Range), Tuple.of(2, e4m3Range),
                Tuple.of(2, e5m2Range), Tuple.of(2, logUniform), Tuple.of(2, nearTies));
    }

    /** Uniform in (-range, range), full fp32 precision (jqwik's own floats() are decimals of a fixed scale). */
    private static Arbitrary<Float> uniform(float range) {
        return Arbitraries.randomValue(r -> (float) r.nextDouble(-range, range));
    }

    /** The midpoint between the {@code index}-th and the next finite value of {@code f}, nudged by {@code ulps}. */
    private static float nearTie(QuantFormat f, int index, int ulps, float sign) {
        Double[] values = SPECS.get(f).finiteValues().keySet().toArray(new Double[0]);
        int i = index % (values.length - 1);
        float tie = (float) ((values[i] + values[i + 1]) / 2);   // exact: one more mantissa bit than the format
        for (int n = 0; n < Math.abs(ulps); n++) {
            tie = ulps > 0 ? Math.nextUp(tie) : Math.nextDown(tie);
        }
        return sign * tie;
    }

    @Property(tries = 3000)
    void encodeIsTheNearestValueTiesToEven(@ForAll QuantFormat format, @ForAll("floats") float x) {
        double expected = SPECS.get(format).round(x);
        float got = format.decode(format.encode(x));
        if (format == QuantFormat.INT8) {
            assertEquals(expected + 0.0, got, format + " x=" + x);    // INT8 has no -0
        } else {
            assertEquals(expected, got, format + " x=" + x);          // fp8 keeps the sign of zero
        }
    }

    @Property(tries = 5000)  // two parameters: more combined edge cases than 3000 tries
    void encodeIsMonotoneInValueOrder(@ForAll QuantFormat format, @ForAll("floats") float x, @ForAll("floats") float y) {
        float lo = Math.min(x, y);
        float hi = Math.max(x, y);
        assertTrue(format.decode(format.encode(lo)) <= format.decode(format.encode(hi)),
                format + " q(" + lo + ")=" + format.decode(format.encode(lo)) + " > q(" + hi + ")="
                        + format.decode(format.encode(hi)));
    }
}
