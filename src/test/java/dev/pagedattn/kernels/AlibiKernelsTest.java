package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * ALiBi ({@link AttentionSpec#alibi}) through every GPU decode kernel variant, run by the emulator as a plan of a layer
 * with ALiBi runs them (each shard's query heads' slopes in its {@code partials} after the sinks and the cap,
 * {@link DecodeParams#ALIBI}), against the fp64 reference with the same slopes: the shapes of {@link SinkKernelsTest}
 * (every kernel family fused and split, the stream kernels' balanced grid, both schedules, windows, 8-bit, KV-head
 * shards), once with the paper's slopes alone and once with a soft cap and sinks too. The slopes must change the result
 * (a kernel that skips them fails). Replay a failure with {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class AlibiKernelsTest {

    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.pagedattn.kernels.SinkKernelsTest#shapes")
    void everyVariantAddsTheBiases(SinkKernelsTest.Shape shape) {
        long seed = TestSeeds.fresh("AlibiKernelsTest " + shape);
        DecodeWorkload plain = shape.workload(seed);
        DecodeWorkload alibi = plain.withAlibi(AlibiSlopes.standard(shape.qHeads()));
        DecodeWorkload all = alibi.withSoftCap(SoftCapKernelsTest.CAP).withSinks(DecodeWorkload.randomSinks(1, shape.qHeads(), 1, seed));
        double[] ref = alibi.reference();
        double moved = ReferenceAttention.relativeL2(plain.reference(), ref);
        assertTrue(moved > 1e-3, "ALiBi must matter to the test: it moves the result by " + moved);
        for (DecodeWorkload w : new DecodeWorkload[] {alibi, all}) {
            double[] want = w == alibi ? ref : w.reference();
            String what = w == alibi ? "alibi" : "alibi, cap " + SoftCapKernelsTest.CAP + " and sinks";
            SinkKernelsTest.checkEveryVariant(w, want, what + " seed=" + seed);
        }
    }
}
