package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** Every GPU kernel variant, run on the JVM by the emulator, against the fp64 reference. */
class KernelVariantsTest {
    private static final double TOLERANCE = 1e-5;

    @ParameterizedTest(name = "batch={0} ctx={1}..{2} q={3} kv={4} d={5} bs={6} {7}")
    @CsvSource({
            "2, 1, 40, 8, 2, 64, 16, FP16",
            "3, 1, 1, 4, 4, 128, 16, FP32",
            "2, 16, 17, 8, 1, 80, 16, FP16",
            "2, 30, 70, 16, 2, 128, 1, FP32",
            "1, 100, 300, 8, 1, 256, 16, FP16",
            "2, 5, 50, 12, 1, 32, 3, FP32",
            "1, 20, 90, 2, 2, 8, 5, FP16",
    })
    void everyVariantMatchesReference(int batch, int minLen, int maxLen, int qHeads, int kvHeads, int headDim,
                                      int blockSize, KvDtype dtype) {
        long seed = new SplittableRandom().nextLong();
        System.out.printf("seed=%d batch=%d ctx=%d..%d q=%d kv=%d d=%d bs=%d %s%n", seed, batch, minLen, maxLen, qHeads, kvHeads,
                headDim, blockSize, dtype);
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(batch, minLen, maxLen, seed), qHeads, kvHeads, headDim,
                blockSize, dtype, seed);
        double[] ref = w.reference();
        int maxLenSeen = w.batch().maxContextLen();
        for (DecodeGrid.Kernel kernel : DecodeGrid.Kernel.values()) {
            if (kernel == DecodeGrid.Kernel.AUTO || kernel == DecodeGrid.Kernel.WARP && !WarpQuadDecodeKernels.supports(qHeads / kvHeads, headDim)) {
                continue;
            }
            DecodeGrid fused = DecodeGrid.plan(w.spec(), batch, maxLenSeen, false, 528, 256, kernel);
            DecodeGrid split = DecodeGrid.plan(w.spec(), batch, maxLenSeen, true, 1 << 20, 8, kernel);
            DecodeGrid split4 = DecodeGrid.plan(w.spec(), batch, maxLenSeen, true, 1 << 20, 24, kernel);
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                check("fused " + fused + " " + s, ref, EmulatedDecode.attention(w, fused, s));
                check("split-K " + split + " " + s, ref, EmulatedDecode.attention(w, split, s));
                if (kernel != DecodeGrid.Kernel.WARP) { // its warp rendezvous make it the slowest to emulate
                    check("split-K " + split4 + " " + s, ref, EmulatedDecode.attention(w, split4, s));
                }
            }
        }
        check("parallel", ref, EmulatedDecode.parallel(w));
    }

    private static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < TOLERANCE, what + ": relative L2 error " + rel);
    }
}
