package dev.pagedattn.rope;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The frequency rules against values computed outside this library: {@code transformers}' formulas
 * ({@code _compute_llama3_parameters}, {@code _compute_yarn_parameters}) transcribed to numpy in fp64, for Llama 3.1's
 * config, Qwen 2.5's YaRN (factor 4 over 32768) and DeepSeek V3's (factor 40 over 4096, rotary dim 64); bad fields are
 * named errors.
 */
class RopeFrequenciesTest {
    private static final double REL = 1e-13;

    @Test
    void standardIsThetaToTheMinusTwoIOverD() {
        RopeFrequencies f = RopeFrequencies.standard(128, 10000);
        assertEquals(128, f.rotaryDim());
        assertEquals(1.0, f.inverseFrequency(0));
        assertClose(0.01, f.inverseFrequency(32)); // 10000^(-64/128)
        assertClose(Math.pow(10000, -126.0 / 128), f.inverseFrequency(63));
        assertEquals(1.0, f.attentionFactor());
    }

    @Test
    void linearDividesEveryFrequencyByTheFactor() {
        RopeFrequencies plain = RopeFrequencies.standard(64, 500000);
        RopeFrequencies linear = RopeFrequencies.linear(64, 500000, 4);
        for (int i = 0; i < 32; i++) {
            assertClose(plain.inverseFrequency(i) / 4, linear.inverseFrequency(i));
        }
    }

    /** Llama 3.1 8B's config: theta 500000, factor 8, low 1, high 4, original 8192; pairs 0-20 kept, 46-63 divided by 8. */
    @Test
    void llama3MatchesTransformersOnLlama31sConfig() {
        RopeFrequencies f = RopeFrequencies.llama3(128, 500000, 8, 1, 4, 8192);
        RopeFrequencies plain = RopeFrequencies.standard(128, 500000);
        assertClose(1.0, f.inverseFrequency(0));
        assertClose(0.016560440080994446, f.inverseFrequency(20));
        assertClose(0.0013718935677611381, f.inverseFrequency(30));
        assertClose(9.556212353964683e-05, f.inverseFrequency(35));
        assertClose(3.428102195952591e-05, f.inverseFrequency(40));
        assertClose(1.2297638677963614e-05, f.inverseFrequency(45));
        assertClose(3.068925988914511e-07, f.inverseFrequency(63));
        assertClose(plain.inverseFrequency(20), f.inverseFrequency(20));
        assertClose(plain.inverseFrequency(63) / 8, f.inverseFrequency(63));
    }

    @Test
    void yarnMatchesTransformersOnQwenAndDeepSeekConfigs() {
        RopeFrequencies qwen = RopeFrequencies.yarn(128, 1e6, 4, 32768);
        assertClose(1.138629436111989, qwen.attentionFactor());
        assertClose(1.0, qwen.inverseFrequency(0));
        assertClose(0.11547819846894583, qwen.inverseFrequency(10));
        assertClose(0.03924189758484536, qwen.inverseFrequency(15));
        assertClose(0.01333521432163324, qwen.inverseFrequency(20));
        assertClose(0.0010643609812470017, qwen.inverseFrequency(30));
        assertClose(4.445698525097307e-05, qwen.inverseFrequency(40));
        assertClose(3.102344401879299e-07, qwen.inverseFrequency(63));
        RopeFrequencies deepSeek = RopeFrequencies.yarn(64, 10000, 40, 4096, 32, 1, 1.0);
        assertEquals(1.0, deepSeek.attentionFactor());
        assertClose(1.0, deepSeek.inverseFrequency(0));
        assertClose(0.056234132519034905, deepSeek.inverseFrequency(10));
        assertClose(0.026879360111431223, deepSeek.inverseFrequency(12));
        assertClose(0.0007905694150420947, deepSeek.inverseFrequency(20));
        assertClose(1.8747355233311396e-05, deepSeek.inverseFrequency(25));
        assertClose(3.33380358040831e-06, deepSeek.inverseFrequency(31));
        assertClose(1.3688879454113936, RopeFrequencies.yarn(64, 10000, 40, 4096).attentionFactor());
    }

    @Test
    void customKeepsItsOwnCopy() {
        double[] mine = {1, 0.5, 0.25};
        RopeFrequencies f = RopeFrequencies.custom(mine, 1.5);
        mine[1] = 7;
        assertEquals(6, f.rotaryDim());
        assertEquals(0.5, f.inverseFrequency(1));
        assertEquals(1.5, f.attentionFactor());
        assertEquals(f, RopeFrequencies.custom(new double[] {1, 0.5, 0.25}, 1.5));
        assertTrue(f.toString().startsWith("custom(3 pairs"), f.toString());
    }

    @Test
    void badFieldsAreNamedErrors() {
        assertNamed("rotaryDim=7", () -> RopeFrequencies.standard(7, 10000));
        assertNamed("rotaryDim=0", () -> RopeFrequencies.standard(0, 10000));
        assertNamed("theta=1.0", () -> RopeFrequencies.standard(64, 1));
        assertNamed("theta=NaN", () -> RopeFrequencies.standard(64, Double.NaN));
        assertNamed("factor=0.5", () -> RopeFrequencies.linear(64, 10000, 0.5));
        assertNamed("factor=Infinity", () -> RopeFrequencies.yarn(64, 10000, Double.POSITIVE_INFINITY, 4096));
        assertNamed("lowFreqFactor=4.0, highFreqFactor=1.0", () -> RopeFrequencies.llama3(128, 500000, 8, 4, 1, 8192));
        assertNamed("originalMaxPositions=0", () -> RopeFrequencies.llama3(128, 500000, 8, 1, 4, 0));
        assertNamed("betaFast=1.0, betaSlow=32.0", () -> RopeFrequencies.yarn(64, 10000, 4, 4096, 1, 32, 1));
        assertNamed("attentionFactor=0.0", () -> RopeFrequencies.yarn(64, 10000, 4, 4096, 32, 1, 0));
        assertNamed("inverseFrequencies[1]=-1.0", () -> RopeFrequencies.custom(new double[] {1, -1}, 1));
        assertNamed("inverseFrequencies.length=0", () -> RopeFrequencies.custom(new double[0], 1));
    }

    private static void assertClose(double want, double got) {
        assertEquals(want, got, REL * Math.abs(want), "want " + want + ", got " + got);
    }

    static void assertNamed(String part, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), "message \"" + e.getMessage() + "\" should name " + part);
    }
}
