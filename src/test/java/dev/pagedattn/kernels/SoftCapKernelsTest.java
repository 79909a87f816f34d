package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Logit soft-capping ({@link AttentionSpec#softCap}, Gemma 2) through every GPU decode kernel variant, run by the
 * emulator as a plan of a soft-capped layer runs them (the cap in {@code partials} after the sinks,
 * {@link DecodeParams#SOFT_CAP}), against the fp64 reference with the same cap: the shapes of {@link SinkKernelsTest}
 * (every kernel family fused and split, the stream kernels' balanced grid, both schedules, windows, 8-bit, KV-head
 * shards), once with the cap alone and once with sinks too. The cap is small against the random inputs' scores (a few
 * tenths), as Gemma 2's 50 is against its scores: the cap must change the result (a kernel that skips it fails). Replay
 * a failure with
 * {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class SoftCapKernelsTest {
    /** A cap the random workloads' scores (standard deviation about 0.3) often exceed. */
    static final float CAP = 0.25f;

    static java.util.stream.Stream<SinkKernelsTest.Shape> shapes() {
        return SinkKernelsTest.shapes();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void everyVariantCapsTheScores(SinkKernelsTest.Shape shape) {
        long seed = TestSeeds.fresh("SoftCapKernelsTest " + shape);
        DecodeWorkload plain = shape.workload(seed);
        DecodeWorkload capped = plain.withSoftCap(CAP);
        DecodeWorkload both = capped.withSinks(DecodeWorkload.randomSinks(1, shape.qHeads(), 1, seed));
        double[] ref = capped.reference();
        double moved = ReferenceAttention.relativeL2(plain.reference(), ref);
        assertTrue(moved > 1e-3, "the cap must matter to the test: it moves the result by " + moved);
        for (DecodeWorkload w : new DecodeWorkload[] {capped, both}) {
            double[] want = w == capped ? ref : w.reference();
            String what = w == capped ? "cap " + CAP : "cap " + CAP + " and sinks";
            SinkKernelsTest.checkEveryVariant(w, want, what + " seed=" + seed);
        }
    }
}
