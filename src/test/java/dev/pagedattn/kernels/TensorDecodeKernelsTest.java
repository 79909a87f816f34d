package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.FP8;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The tensor-core decode body over FP8 E4M3 pools ({@link TensorDecodeKernels}), run by the emulator on the stream kernel's
 * grids (fused, balanced fine and coarse, split into partitions; both schedules) against the fp64 reference on the
 * dequantised values: groups of 1-8 heads (four- and eight-head work-groups) and 16 and 64 (several head tiles), block
 * sizes that keep a tile in one block and ones that do not, contexts that end mid-tile, per-head scales; queries scaled so
 * that segments end and restart; windows, chunks, soft cap, sinks and ALiBi. Replay a failure with
 * {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class TensorDecodeKernelsTest {
    /** The bar for a kernel against the reference on the dequantised values. */
    private static final double TOLERANCE = 1e-5;

    @ParameterizedTest(name = "batch={0} ctx={1}..{2} q={3} kv={4} bs={5} minPartition={6} q x{7}")
    @CsvSource({
            "2, 1, 70, 16, 4, 16, 16, 1",
            "2, 30, 200, 8, 4, 7, 32, 1",
            "1, 100, 300, 3, 1, 32, 48, 1",
            "2, 20, 90, 5, 5, 1, 16, 1",
            "2, 60, 130, 8, 2, 24, 64, 1",
            "2, 20, 90, 16, 2, 16, 32, 1",
            "2, 1, 60, 12, 2, 7, 16, 1",
            "1, 40, 80, 20, 4, 17, 16, 1",
            "1, 10, 70, 64, 1, 16, 32, 1",
            "3, 1, 1, 4, 1, 16, 16, 1",
            "2, 100, 260, 8, 2, 16, 64, 30",
            "2, 50, 120, 16, 2, 7, 32, 30",
    })
    void matchesReference(int batch, int minLen, int maxLen, int qHeads, int kvHeads, int blockSize, int minPartition, float qTimes) {
        long seed = TestSeeds.fresh(String.format("tensor decode batch=%d ctx=%d..%d q=%d kv=%d bs=%d q x%s", batch, minLen,
                maxLen, qHeads, kvHeads, blockSize, qTimes));
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(batch, minLen, maxLen, seed), qHeads, kvHeads, 128,
                blockSize, KvDtype.FP8_E4M3, seed, 0, 1, 0, TestScales.perHead(KvDtype.FP8_E4M3, kvHeads, seed));
        scaleQueries(w, qTimes);
        double[] ref = w.reference();
        for (DecodeGrid grid : grids(w, minPartition)) {
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                check(grid + " " + s + " seed=" + seed, ref, EmulatedDecode.attentionTensor(w, grid, s));
            }
        }
    }

    /** Windows and chunks, a soft cap with sinks, ALiBi: what the stream kernel's twin does, the tensor body does. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({
            "window 17 over blocks of 7, 17, 0, false, false",
            "window of one block, 16, 0, false, false",
            "chunks of 24, -24, 0, false, false",
            "soft cap 0.25 with sinks, 0, 0.25, true, false",
            "ALiBi, 0, 0, false, true",
            "window 40 and ALiBi, 40, 0, false, true",
    })
    void windowsCapsSinksAndAlibi(String what, int window, float cap, boolean sinks, boolean alibi) {
        long seed = TestSeeds.fresh("tensor decode " + what);
        int qHeads = 8;
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(2, 30, 130, seed), qHeads, 2, 128, 7, KvDtype.FP8_E4M3,
                seed, 0, 1, 0, TestScales.perHead(KvDtype.FP8_E4M3, 2, seed));
        if (window != 0) {
            w = w.windowed(window > 0 ? window : AttentionWindow.chunked(-window));
        }
        if (cap != 0f) {
            w = w.withSoftCap(cap);
        }
        if (sinks) {
            w = w.withSinks(DecodeWorkload.randomSinks(1, qHeads, 1, seed));
        }
        if (alibi) {
            w = w.withAlibi(AlibiSlopes.standard(qHeads));
        }
        double[] ref = w.reference();
        for (DecodeGrid grid : grids(w, 32)) {
            check(what + " " + grid + " seed=" + seed, ref, EmulatedDecode.attentionTensor(w, grid, KernelEmulator.Schedule.FORWARD));
        }
    }

    /** A word's four E4M3 codes as the kernel's two fp16 pairs: each exactly the code's value / 256, subnormals included. */
    @Test
    void everyE4m3CodeIsItsFp16PatternOver256() {
        for (int w = 0; w < 256; w++) {
            int word = w | (w ^ 0x5A) << 8 | (w ^ 0xA5) << 16 | (255 - w) << 24;
            int even = TensorDecodeKernels.e4m3Even(word);
            int odd = TensorDecodeKernels.e4m3Odd(word);
            int[] halves = {even & 0xFFFF, odd & 0xFFFF, even >>> 16, odd >>> 16};
            for (int c = 0; c < 4; c++) {
                byte code = (byte) (word >>> (8 * c));
                if ((code & 0x7F) == 0x7F) {
                    continue; // E4M3's NaN codes, which a pool never holds (writes reject NaN)
                }
                float want = FP8.e4m3ToFloat(code) / 256f;
                float got = new HalfFloat((short) halves[c]).getFloat32();
                assertEquals(want, got, 0f, "code 0x" + Integer.toHexString(code & 0xFF) + " in word 0x" + Integer.toHexString(word));
            }
        }
    }

    @Test
    void tileDimsArePoolDimsWithBitsZeroAndOneSwapped() {
        for (int d = 0; d < TensorDecodeKernels.HEAD_DIM; d++) {
            int p = TensorDecodeKernels.physicalDim(d);
            assertEquals(d, TensorDecodeKernels.physicalDim(p), "an involution");
            assertEquals(d >> 2, p >> 2, "inside the word of four codes");
        }
        assertEquals(2, TensorDecodeKernels.physicalDim(1));
        assertEquals(1, TensorDecodeKernels.physicalDim(2));
    }

    /** The stream kernel's grids for {@code w}: fused, balanced (fine and a coarse one of three groups), split. */
    static DecodeGrid[] grids(DecodeWorkload w, int minPartition) {
        int batch = w.batch().numSeqs();
        int longest = w.batch().maxContextLen();
        int kvHeads = w.spec().numKvHeads();
        int g = w.spec().groupSize();
        assertEquals(StreamDecodeKernels.headTiles(g, 128), TensorDecodeKernels.headTiles(g), "the stream grid's head tiles");
        DecodeGrid fused = DecodeGrid.plan(w.spec(), batch, longest, false, 528, 256, DecodeGrid.Kernel.STREAM);
        DecodeGrid fine = DecodeGrid.balanced(w.spec(), w.batch(), 1 << 20, minPartition);
        DecodeGrid coarse = DecodeGrid.balanced(w.spec(), w.batch(), 3, minPartition);
        int partitions = (longest + minPartition - 1) / minPartition;
        int headTiles = TensorDecodeKernels.headTiles(g);
        DecodeGrid split = new DecodeGrid(DecodeGrid.Kernel.STREAM, headTiles, minPartition, partitions,
                batch * kvHeads * headTiles * partitions, TensorDecodeKernels.LOCAL, 0, kvHeads * headTiles);
        return new DecodeGrid[] {fused, fine, coarse, split};
    }

    private static void scaleQueries(DecodeWorkload w, float times) {
        FloatArray q = w.q();
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, q.get(i) * times);
        }
    }

    private static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < TOLERANCE, what + ": relative L2 error " + rel + " (NaN: an output was not written)");
    }
}
