package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.quant.QuantFormat;
import dev.pagedattn.tornado.DecodeGrid;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The tensor-core decode kernel for 8-bit pools ({@link TensorDecodeKernels}: FP8 E4M3, FP8 E5M2, INT8;
 * per-head scales) run by the emulator, whose {@code mma} is the m16n8k16 product in fp32, against the
 * fp64 reference on the dequantised values: fused and split-K, both schedules, groups of 1-4 heads,
 * block sizes that keep a tile in one block and ones that do not, partitions and contexts that end
 * mid-tile, contexts of one token, and queries scaled up so that the scores span hundreds (segments
 * end early and fold often). The split of queries and probabilities into two fp16 parts keeps it
 * as tight as the fp32 kernels.
 */
class TensorDecodeKernelsTest {
    private static final double TOLERANCE = 1e-5;

    @ParameterizedTest(name = "batch={0} ctx={1}..{2} q={3} kv={4} bs={5} minPartition={6} {7} qx{8}")
    @CsvSource({
            "2, 1, 70, 16, 4, 16, 16, FP8_E4M3, 1",
            "3, 1, 1, 4, 4, 16, 16, INT8, 1",
            "2, 30, 200, 8, 4, 7, 32, FP8_E5M2, 1",
            "1, 100, 300, 3, 1, 32, 48, FP8_E4M3, 1",
            "2, 5, 50, 4, 2, 17, 16, INT8, 1",
            "2, 20, 90, 5, 5, 1, 16, FP8_E5M2, 1",
            "1, 600, 700, 4, 1, 16, 1024, FP8_E4M3, 1",
            "2, 60, 300, 8, 2, 24, 64, FP8_E4M3, 40",
            "1, 300, 500, 4, 1, 16, 128, INT8, 40",
    })
    void matchesReference(int batch, int minLen, int maxLen, int qHeads, int kvHeads, int blockSize, int minPartition, KvDtype dtype,
                          float qScale) {
        long seed = TestSeeds.fresh(String.format("tensor kernel batch=%d ctx=%d..%d q=%d kv=%d bs=%d %s qx%s", batch, minLen,
                maxLen, qHeads, kvHeads, blockSize, dtype, qScale));
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(batch, minLen, maxLen, seed), qHeads, kvHeads, 128,
                blockSize, dtype, seed, 0, 1, 0, TestScales.perHead(dtype, kvHeads, seed));
        FloatArray q = w.q();
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, q.get(i) * qScale);
        }
        assertTrue(TensorDecodeKernels.supports(qHeads / kvHeads, 128));
        double[] ref = w.reference(); // on the dequantised values, exactly
        int longest = w.batch().maxContextLen();
        DecodeGrid fused = DecodeGrid.plan(w.spec(), batch, longest, false, 528, 256, DecodeGrid.Kernel.TENSOR);
        DecodeGrid split = DecodeGrid.plan(w.spec(), batch, longest, true, 1 << 20, minPartition, DecodeGrid.Kernel.TENSOR);
        assertEquals(0, split.partitionTokens() % 16, "partitions are whole tiles: " + split);
        for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
            for (DecodeGrid grid : new DecodeGrid[] {fused, split}) {
                FloatArray out = EmulatedDecode.attention(w, grid, s);
                double rel = ReferenceAttention.relativeL2(out, ref);
                assertTrue(rel < TOLERANCE, grid + " " + s + " seed=" + seed + ": relative L2 error " + rel);
            }
        }
    }

    /** Every code of each format widens, by the kernel's bit operations alone, to the fp16 of its value over the format's power of two. */
    @Test
    void codesWidenToExactFp16() {
        for (int c = 0; c < 256; c++) {
            int b = (byte) c;
            int e5 = (c << 8) & 0xFFFF;
            assertEquals(QuantFormat.FP8_E5M2.decode(c), new HalfFloat((short) e5).getFloat32(), "E5M2 code " + c);
            int e4z = (c << 8) & 0xFF00;
            int e4 = ((e4z >> 1) & 0x3F80) | (e4z & 0x8000);
            if (!Float.isNaN(QuantFormat.FP8_E4M3.decode(c))) { // S.1111.111, never stored
                assertEquals(QuantFormat.FP8_E4M3.decode(c), new HalfFloat((short) e4).getFloat32() * 256f, "E4M3 code " + c);
            }
            int i8 = (b & 0x8000) | Math.abs(b);
            assertEquals(QuantFormat.INT8.decode(c), new HalfFloat((short) i8).getFloat32() * 16777216f, "INT8 code " + c);
        }
    }

    @Test
    void shapesItCovers() {
        assertTrue(TensorDecodeKernels.supports(4, 128));
        assertTrue(TensorDecodeKernels.supports(1, 128));
        assertFalse(TensorDecodeKernels.supports(5, 128));
        assertFalse(TensorDecodeKernels.supports(4, 64));
        assertFalse(TensorDecodeKernels.supports(0, 128));
    }
}
