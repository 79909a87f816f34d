package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The chunk kernel (all three twins: packed fp16 pair loads, 16-bit loads, fp32) run by the emulator
 * against the fp64 reference: fused and split-K, both schedules, chunks that end mid-block, partitions
 * shorter than a chunk, every group size 1-8 and head dims 16-256.
 */
class ChunkDecodeKernelsTest {
    private static final double TOLERANCE = 1e-5;

    @ParameterizedTest(name = "batch={0} ctx={1}..{2} q={3} kv={4} d={5} bs={6} {7}")
    @CsvSource({
            "2, 1, 70, 16, 2, 128, 16, FP16",
            "3, 1, 1, 4, 4, 128, 16, FP32",
            "2, 30, 200, 8, 1, 64, 7, FP16",
            "1, 100, 300, 3, 1, 256, 16, FP16",
            "2, 5, 50, 12, 2, 32, 3, FP32",
            "1, 20, 90, 5, 5, 16, 1, FP16",
            "2, 60, 130, 14, 2, 16, 32, FP32",
    })
    void everyTwinMatchesReference(int batch, int minLen, int maxLen, int qHeads, int kvHeads, int headDim, int blockSize,
                                   KvDtype dtype) {
        long seed = TestSeeds.fresh(String.format("chunk kernel batch=%d ctx=%d..%d q=%d kv=%d d=%d bs=%d %s", batch, minLen,
                maxLen, qHeads, kvHeads, headDim, blockSize, dtype));
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(batch, minLen, maxLen, seed), qHeads, kvHeads, headDim,
                blockSize, dtype, seed);
        assertTrue(ChunkDecodeKernels.supports(qHeads / kvHeads, headDim));
        double[] ref = w.reference();
        int longest = w.batch().maxContextLen();
        DecodeGrid fused = DecodeGrid.plan(w.spec(), batch, longest, false, 528, 256, DecodeGrid.Kernel.CHUNK);
        DecodeGrid split = DecodeGrid.plan(w.spec(), batch, longest, true, 1 << 20, 8, DecodeGrid.Kernel.CHUNK);
        for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
            for (DecodeGrid grid : new DecodeGrid[] {fused, split}) {
                check(grid + " " + s, ref, EmulatedDecode.attention(w, grid, s, false));
                if (dtype == KvDtype.FP16) {
                    check("getHalf2 " + grid + " " + s, ref, EmulatedDecode.attention(w, grid, s, true));
                }
            }
        }
    }

    private static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < TOLERANCE, what + ": relative L2 error " + rel);
    }
}
