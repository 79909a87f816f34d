package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Decode with a sliding window ({@code DecodeBatch.window}) through every GPU kernel variant, run by the emulator, against
 * the fp64 reference over each sequence's last {@code window} tokens: fused, split into two partitions and (the stream
 * kernels) a balanced grid of pieces of two tiles, both emulator schedules. Windows of one token, shorter than a block,
 * of a block, one past it and longer than some contexts; first visible tokens inside blocks of 3, 7, 16, 17 and 32 tokens
 * (at 32 the first may lie in a block's second tile). A window at least as long as every context must give the same bits
 * as no window. Chunked local attention ({@code AttentionWindow.chunked}) walks the last token's chunk the same way. Then
 * the blocks wholly before each window are released and reused with NaN, and every variant must
 * still match. Replay a failure with {@code -Dpagedattn.test.seed=<printed seed>}.
 */
class WindowedDecodeKernelsTest {
    private static final double TOLERANCE = 1e-5;

    record Shape(String covers, int batch, int minLen, int maxLen, int qHeads, int kvHeads, int headDim, int blockSize,
                 KvDtype dtype, int window) {
        @Override
        public String toString() {
            return String.format("%s: batch=%d ctx=%d..%d q=%d kv=%d d=%d bs=%d %s %s", covers, batch, minLen, maxLen,
                    qHeads, kvHeads, headDim, blockSize, dtype, AttentionWindow.describe(window));
        }
    }

    static Stream<Shape> shapes() {
        return Stream.of(
                new Shape("GQA fp16, window inside a block", 2, 20, 60, 8, 2, 32, 16, KvDtype.FP16, 7),
                new Shape("MQA fp32, window of one token", 2, 5, 30, 4, 1, 16, 3, KvDtype.FP32, 1),
                new Shape("stream fp16, head dim 128, block size 7, window 17", 2, 20, 70, 8, 2, 128, 7, KvDtype.FP16, 17),
                new Shape("stream fp16, head dim 64, block size 17, window longer than some contexts", 3, 10, 60, 8, 2, 64, 17,
                        KvDtype.FP16, 40),
                new Shape("8-bit E4M3, group of 8 (stream G8 twin), window of a block", 1, 30, 60, 8, 1, 128, 16, KvDtype.FP8_E4M3, 16),
                new Shape("8-bit INT8, group of 2 (stream twin), block size 32, window one past a block", 2, 40, 90, 4, 2, 128, 32,
                        KvDtype.INT8, 33),
                new Shape("fp32, two head tiles (group of 12), window 3", 1, 10, 30, 12, 1, 8, 16, KvDtype.FP32, 3),
                new Shape("8-bit E5M2, MQA, head dim 64, block size 3, window 10", 2, 12, 40, 4, 1, 64, 3, KvDtype.FP8_E5M2, 10),
                new Shape("fp16 head dim 256, window 20", 1, 25, 50, 2, 1, 256, 16, KvDtype.FP16, 20),
                // chunked local attention (Llama 4): the walk starts at the last token's chunk
                new Shape("stream fp16, head dim 128, chunks of 16 over blocks of 16", 3, 20, 70, 8, 2, 128, 16, KvDtype.FP16,
                        AttentionWindow.chunked(16)),
                new Shape("GQA fp16, chunks of 7 inside blocks of 16", 2, 20, 60, 8, 2, 32, 16, KvDtype.FP16, AttentionWindow.chunked(7)),
                new Shape("8-bit E4M3, stream twin, chunks of 24 over blocks of 7", 2, 30, 80, 8, 2, 128, 7, KvDtype.FP8_E4M3,
                        AttentionWindow.chunked(24)),
                new Shape("MQA fp32, chunks of 1", 2, 5, 30, 4, 1, 16, 3, KvDtype.FP32, AttentionWindow.chunked(1)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void everyVariantSeesOnlyTheWindow(Shape shape) {
        long seed = TestSeeds.fresh("WindowedDecodeKernelsTest " + shape);
        DecodeWorkload whole = DecodeWorkload.create(DecodeWorkload.lengths(shape.batch(), shape.minLen(), shape.maxLen(), seed),
                shape.qHeads(), shape.kvHeads(), shape.headDim(), shape.blockSize(), shape.dtype(), seed, 0, 1, 0,
                TestScales.perHead(shape.dtype(), shape.kvHeads(), seed));
        DecodeWorkload w = whole.windowed(shape.window());
        double[] ref = w.reference();
        for (DecodeGrid grid : KernelVariantsTest.grids(w)) {
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                check(grid + " " + s, ref, EmulatedDecode.attention(w, grid, s));
            }
        }
        if (shape.dtype() == KvDtype.FP16 && StreamDecodeKernels.supports(w.spec().groupSize(), w.spec().headDim())) {
            DecodeGrid balanced = DecodeGrid.balanced(w.spec(), w.batch(), 1 << 20, 2 * StreamDecodeKernels.TILE);
            assertTrue(balanced.balanced(), "the test wants a balanced grid: " + balanced);
            check(balanced + " balanced", ref, EmulatedDecode.attention(w, balanced, KernelEmulator.Schedule.FORWARD));
        }
        if (!shape.dtype().isQuantized()) {
            check("parallel", ref, EmulatedDecode.parallel(w));
        }
        // a window (or chunk) no shorter than any context is no window: the same walk, the same bits
        DecodeWorkload wide = whole.windowed(AttentionWindow.isChunked(shape.window()) ? AttentionWindow.chunked(shape.maxLen())
                : shape.maxLen());
        for (DecodeGrid grid : KernelVariantsTest.grids(whole)) {
            assertArrayEquals(EmulatedDecode.attention(whole, grid, KernelEmulator.Schedule.FORWARD).toHeapArray(),
                    EmulatedDecode.attention(wide, grid, KernelEmulator.Schedule.FORWARD).toHeapArray(), grid + " window=maxLen");
        }
        // the blocks wholly before each window released, then taken and filled with NaN by another sequence: every
        // variant must give what it gave before (a walk from a tile boundary below the window's first token reads the
        // row's first held block for a released column: DecodeBatch.kernelBlock)
        DecodeWorkload released = w.releasedOutsideWindow();
        for (int i = 0; i < released.batch().numSeqs(); i++) {
            int first = released.batch().firstVisible(i);
            assertEquals(first / shape.blockSize() * shape.blockSize(), released.batch().firstHeld(i), shape + " row " + i);
        }
        for (DecodeGrid grid : KernelVariantsTest.grids(released)) {
            check(grid + " released", ref, EmulatedDecode.attention(released, grid, KernelEmulator.Schedule.REVERSE));
        }
        if (shape.dtype() == KvDtype.FP16 && StreamDecodeKernels.supports(w.spec().groupSize(), w.spec().headDim())) {
            DecodeGrid balanced = DecodeGrid.balanced(w.spec(), released.batch(), 1 << 20, 2 * StreamDecodeKernels.TILE);
            check(balanced + " balanced released", ref, EmulatedDecode.attention(released, balanced, KernelEmulator.Schedule.FORWARD));
        }
        if (!shape.dtype().isQuantized()) {
            check("parallel released", ref, EmulatedDecode.parallel(released));
        }
    }

    private static void check(String what, double[] ref, FloatArray out) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < TOLERANCE, what + ": relative L2 error " + rel);
    }
}
