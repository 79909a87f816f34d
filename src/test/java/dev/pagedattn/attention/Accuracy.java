package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.fail;

import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** Compares a backend's output with the fp64 reference; failures name the case and its seed. */
final class Accuracy {
    /**
     * fp32 accumulation against fp64, measured over 1000 random shapes (head dims 8..256, contexts
     * up to 300, block sizes 1..32, fp16 and fp32): with the default scale, relative L2 up to
     * 4.1e-7 and max abs up to 1.6e-7; with custom scales up to 2 (scores up to ~50), relative L2
     * up to 2.1e-6 and max abs up to 3.8e-6, because the fp32 rounding of a score grows with its
     * size. A wrong block, head, layer or a dropped token gives errors of 1e-3 and more.
     */
    static final double REL_L2 = 1e-5;
    static final double MAX_ABS = 1e-5;

    private Accuracy() {
    }

    /** Measured errors of one comparison. */
    record Errors(double relativeL2, double maxAbs) {
        @Override
        public String toString() {
            return String.format("relativeL2=%.3e maxAbs=%.3e", relativeL2, maxAbs);
        }
    }

    /** Fails unless every element is finite and both errors are within the bounds. */
    static Errors assertClose(FloatArray got, double[] want, double relL2, double maxAbs, String what) {
        if (got.getSize() != want.length) {
            fail(what + ": got " + got.getSize() + " elements, want " + want.length);
        }
        for (int i = 0; i < want.length; i++) {
            if (!Float.isFinite(got.get(i))) {
                fail(what + ": element " + i + " is " + got.get(i) + " (unwritten or overflowed), reference " + want[i]);
            }
        }
        Errors e = new Errors(ReferenceAttention.relativeL2(got, want), ReferenceAttention.maxAbsError(got, want));
        if (!(e.relativeL2() <= relL2) || !(e.maxAbs() <= maxAbs)) {
            fail(what + ": " + e + " exceeds relativeL2<=" + relL2 + " maxAbs<=" + maxAbs);
        }
        return e;
    }

    static Errors assertClose(FloatArray got, double[] want, String what) {
        return assertClose(got, want, REL_L2, MAX_ABS, what);
    }

    /** Log-sum-exps against fp64: fp32 sums of up to ~1k terms, each within this times {@code max(1, |lse|)}. */
    static final double LSE = 2e-5;

    /** Fails unless every {@code lse[i]} is within {@link #LSE} of {@code ref[i]} (relative to {@code max(1, |ref[i]|)}). */
    static void assertLseClose(FloatArray lse, double[] ref, String what) {
        for (int i = 0; i < ref.length; i++) {
            double err = Math.abs(lse.get(i) - ref[i]);
            if (!(err <= LSE * Math.max(1, Math.abs(ref[i])))) {
                fail(what + ": lse[" + i + "]=" + lse.get(i) + " fp64 " + ref[i]);
            }
        }
    }
}
