package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.Bf16;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.quant.QuantFormat;
import dev.pagedattn.tornado.DecodeGrid;
import dev.pagedattn.tornado.VSums;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import uk.ac.manchester.tornado.api.types.BFloat16;
import uk.ac.manchester.tornado.api.types.FP8;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The stream kernel and its 8-bit twins (FP8 E4M3, FP8 E5M2, INT8; per-head scales) run by the emulator against the fp64
 * reference: fused and split-K (up to 132 partitions, merged in 32 slices), both schedules, groups of 1-4 heads and larger
 * ones (at head dim 128 the G8 bodies, one work-group per eight heads: 5, 6, 8; 64: eight; at 64 and 256 one work-group per
 * four), block sizes that keep a tile in one block (16, 32) and ones that do not (1, 7, 17, 24), partitions and contexts that
 * end mid-tile, contexts of one token; head dims 64, 80, 96, 112, 128 and 256 in fp16 and 8-bit ({@code ...D256}: steps of 8
 * tokens, so block sizes 8 and 24 too; the 8-bit {@code ...D64}: a tile's tokens split between the lanes' halves; {@code ...D80},
 * {@code ...D96}, {@code ...D112}: a second V word for lanes 0..7, 0..15, 0..23 only in fp16, V words for lanes 0..19, 0..23,
 * 0..27 only in 8-bit, and at 80 and 112 8-bit K rows that end mid-part, so that lanes of parts 4..7 meet zero query values);
 * the bf16 bodies (the fp16 walks over two elements per word) at every head dim, groups of 1-8 heads, the same block sizes.
 */
class StreamDecodeKernelsTest {
    private static final double TOLERANCE = 1e-5;

    @ParameterizedTest(name = "batch={0} ctx={1}..{2} q={3} kv={4} bs={5} minPartition={6} {7} d={8}")
    @CsvSource({
            "2, 1, 70, 16, 4, 16, 16, FP16, 128",
            "3, 1, 1, 4, 4, 16, 16, FP16, 128",
            "2, 30, 200, 8, 4, 7, 32, FP16, 128",
            "1, 100, 300, 3, 1, 32, 48, FP16, 128",
            "2, 5, 50, 4, 2, 17, 16, FP16, 128",
            "2, 20, 90, 5, 5, 1, 16, FP16, 128",
            "2, 60, 130, 8, 2, 24, 64, FP16, 128",
            "1, 1500, 2100, 4, 1, 16, 16, FP16, 128",
            "2, 1, 70, 16, 4, 16, 16, FP8_E4M3, 128",
            "2, 30, 200, 8, 4, 7, 32, FP8_E5M2, 128",
            "2, 20, 90, 5, 5, 1, 16, INT8, 128",
            "2, 60, 130, 8, 2, 24, 64, FP8_E4M3, 128",
            "2, 20, 90, 16, 2, 16, 32, FP16, 128",
            "2, 1, 60, 12, 2, 7, 16, FP16, 128",
            "1, 40, 80, 20, 4, 17, 16, FP16, 128",
            "2, 10, 70, 64, 1, 16, 32, FP16, 128",
            "2, 20, 90, 16, 2, 16, 32, FP8_E4M3, 128",
            "2, 1, 60, 12, 2, 7, 16, INT8, 128",
            "2, 30, 200, 64, 8, 17, 32, FP8_E5M2, 128",
            "1, 100, 300, 5, 1, 16, 48, INT8, 128",
            "2, 1, 70, 8, 4, 16, 16, FP8_E4M3, 256",
            "2, 30, 200, 16, 8, 7, 32, INT8, 256",
            "2, 20, 90, 5, 5, 8, 16, FP8_E5M2, 256",
            "1, 100, 300, 4, 1, 24, 48, FP8_E4M3, 256",
            "2, 1, 60, 16, 2, 17, 16, INT8, 256",
            "2, 1, 70, 32, 32, 16, 16, FP16, 96",
            "2, 30, 200, 8, 4, 7, 32, FP16, 96",
            "1, 100, 300, 12, 2, 17, 48, FP16, 96",
            "3, 1, 1, 4, 1, 1, 16, FP16, 96",
            "2, 1, 70, 32, 32, 16, 16, FP8_E4M3, 96",
            "2, 30, 200, 12, 4, 7, 32, INT8, 96",
            "1, 100, 300, 8, 1, 17, 48, FP8_E5M2, 96",
            "2, 1, 70, 8, 2, 16, 16, FP8_E4M3, 64",
            "2, 30, 200, 32, 8, 7, 32, INT8, 64",
            "2, 20, 90, 5, 5, 1, 16, FP8_E5M2, 64",
            "1, 100, 300, 14, 2, 17, 48, INT8, 64",
            "3, 1, 1, 4, 1, 16, 16, FP8_E4M3, 64",
            "2, 1, 70, 16, 4, 16, 16, FP16, 64",
            "2, 30, 200, 8, 4, 7, 32, FP16, 64",
            "1, 100, 300, 3, 1, 32, 48, FP16, 64",
            "2, 20, 90, 5, 5, 1, 16, FP16, 64",
            "2, 60, 130, 8, 2, 24, 64, FP16, 64",
            "2, 1, 60, 14, 2, 17, 16, FP16, 64",
            "2, 1, 70, 8, 4, 16, 16, FP16, 256",
            "2, 30, 200, 16, 8, 7, 32, FP16, 256",
            "1, 100, 300, 4, 1, 8, 48, FP16, 256",
            "2, 20, 90, 5, 5, 1, 16, FP16, 256",
            "2, 60, 130, 8, 1, 24, 64, FP16, 256",
            "2, 1, 60, 32, 2, 17, 16, FP16, 256",
            "3, 1, 1, 4, 2, 16, 16, FP16, 256",
            "2, 1, 70, 32, 32, 16, 16, FP16, 80",
            "2, 30, 200, 8, 4, 7, 32, FP16, 80",
            "1, 100, 300, 12, 2, 17, 48, FP16, 80",
            "3, 1, 1, 4, 1, 1, 16, FP16, 80",
            "2, 1, 70, 32, 32, 16, 16, FP8_E4M3, 80",
            "2, 30, 200, 12, 4, 7, 32, INT8, 80",
            "1, 100, 300, 8, 1, 17, 48, FP8_E5M2, 80",
            "2, 1, 70, 16, 4, 16, 16, FP16, 112",
            "2, 30, 200, 5, 5, 7, 32, FP16, 112",
            "1, 100, 300, 16, 2, 24, 48, FP16, 112",
            "2, 1, 70, 8, 8, 16, 16, INT8, 112",
            "2, 30, 200, 12, 2, 7, 32, FP8_E4M3, 112",
            "1, 100, 300, 4, 1, 17, 48, FP8_E5M2, 112",
            "2, 1, 70, 16, 4, 16, 16, BF16, 128",
            "3, 1, 1, 4, 4, 16, 16, BF16, 128",
            "2, 30, 200, 8, 4, 7, 32, BF16, 128",
            "2, 20, 90, 5, 5, 1, 16, BF16, 128",
            "2, 20, 90, 16, 2, 24, 32, BF16, 128",
            "2, 1, 60, 12, 2, 17, 16, BF16, 128",
            "2, 30, 200, 8, 4, 7, 32, BF16, 64",
            "2, 1, 70, 32, 32, 16, 16, BF16, 80",
            "1, 100, 300, 12, 2, 17, 48, BF16, 96",
            "2, 30, 200, 5, 5, 7, 32, BF16, 112",
            "2, 30, 200, 16, 8, 7, 32, BF16, 256",
            "3, 1, 1, 4, 2, 16, 16, BF16, 256",
    })
    void matchesReference(int batch, int minLen, int maxLen, int qHeads, int kvHeads, int blockSize, int minPartition, KvDtype dtype,
                          int headDim) {
        long seed = TestSeeds.fresh(String.format("stream kernel batch=%d ctx=%d..%d q=%d kv=%d bs=%d %s d=%d", batch, minLen,
                maxLen, qHeads, kvHeads, blockSize, dtype, headDim));
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(batch, minLen, maxLen, seed), qHeads, kvHeads, headDim,
                blockSize, dtype, seed, 0, 1, 0, TestScales.perHead(dtype, kvHeads, seed)); // 8-bit: per-head scales
        assertTrue(dtype.isQuantized() ? StreamDecodeKernels.supportsEightBit(qHeads / kvHeads, headDim)
                : StreamDecodeKernels.supports(qHeads / kvHeads, headDim));
        double[] ref = w.reference(); // 8-bit: on the dequantised values, exactly
        int longest = w.batch().maxContextLen();
        DecodeGrid fused = DecodeGrid.plan(w.spec(), batch, longest, false, 528, 256, DecodeGrid.Kernel.STREAM);
        // balanced grids: ranges of minPartition / 16 tiles (pieces end mid-range and mid-pair), and three
        // work-groups whose ranges cover several pairs each
        DecodeGrid fine = DecodeGrid.balanced(w.spec(), w.batch(), 1 << 20, minPartition);
        DecodeGrid coarse = DecodeGrid.balanced(w.spec(), w.batch(), 3, minPartition);
        assertTrue(fine.balanced() && coarse.balanced() && coarse.numGroups() <= 3, fine + " / " + coarse);
        assertEquals(Math.max(1, minPartition / 16), fine.tilesPerGroup(), fine.toString());
        // the partition grid (DecodeGrid.BALANCED=false): partitions of minPartition tokens
        int partitions = (longest + minPartition - 1) / minPartition;
        int headTiles = StreamDecodeKernels.headTiles(qHeads / kvHeads, headDim);
        DecodeGrid split = new DecodeGrid(DecodeGrid.Kernel.STREAM, headTiles, minPartition, partitions,
                batch * kvHeads * headTiles * partitions, StreamDecodeKernels.LOCAL, 0, kvHeads * headTiles);
        for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
            for (DecodeGrid grid : new DecodeGrid[] {fused, fine, coarse, split}) {
                FloatArray out = EmulatedDecode.attention(w, grid, s);
                double rel = ReferenceAttention.relativeL2(out, ref);
                assertTrue(rel < TOLERANCE, grid + " " + s + ": relative L2 error " + rel);
                if (grid == coarse && s == KernelEmulator.Schedule.FORWARD) {
                    // a packed plan's params (the balanced grid's regions, then the lengths and tables): the same bits
                    assertArrayEquals(out.toHeapArray(),
                            EmulatedDecode.attention(w, grid, s, false, VSums.FP32, true).toHeapArray(), grid + " packed inputs");
                }
            }
        }
    }

    /**
     * {@link VSums#FP16}: the fp16 stream kernel's twin with a tile's V sums in fp16 pairs, against fp64. Its error
     * is fp16's (the probabilities and a tile's products rounded to 11 bits: about 6e-4 on these random inputs), so the
     * bound is 2e-3, far below what a lost token or head costs (above 1e-2), and it must exceed the fp32 kernel's.
     */
    @ParameterizedTest(name = "fp16 V sums batch={0} ctx={1}..{2} q={3} kv={4} bs={5} d={6}")
    @CsvSource({
            "2, 1, 70, 16, 4, 16, 128",
            "2, 30, 200, 8, 4, 7, 128",
            "1, 1500, 2100, 4, 1, 16, 128",
            "2, 10, 70, 64, 1, 32, 128",
            "2, 20, 90, 5, 5, 1, 128",
            "2, 30, 200, 8, 4, 7, 64",
            "2, 20, 90, 5, 5, 17, 64",
            "2, 30, 200, 16, 8, 7, 256",
            "2, 20, 90, 4, 1, 17, 256",
            "2, 30, 200, 8, 8, 7, 96",
            "2, 30, 200, 8, 8, 7, 80",
            "2, 20, 90, 12, 2, 17, 112",
    })
    void fp16VSumsMatchReference(int batch, int minLen, int maxLen, int qHeads, int kvHeads, int blockSize, int headDim) {
        long seed = TestSeeds.fresh(String.format("stream kernel fp16 V sums batch=%d ctx=%d..%d q=%d kv=%d bs=%d d=%d", batch, minLen,
                maxLen, qHeads, kvHeads, blockSize, headDim));
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(batch, minLen, maxLen, seed), qHeads, kvHeads, headDim,
                blockSize, KvDtype.FP16, seed, 0, 1, 0, null);
        double[] ref = w.reference();
        int longest = w.batch().maxContextLen();
        DecodeGrid fused = DecodeGrid.plan(w.spec(), batch, longest, false, 528, 256, DecodeGrid.Kernel.STREAM);
        DecodeGrid fine = DecodeGrid.balanced(w.spec(), w.batch(), 1 << 20, 32);
        int partitions = (longest + 47) / 48;
        int headTiles = StreamDecodeKernels.headTiles(qHeads / kvHeads, headDim);
        DecodeGrid split = new DecodeGrid(DecodeGrid.Kernel.STREAM, headTiles, 48, partitions,
                batch * kvHeads * headTiles * partitions, StreamDecodeKernels.LOCAL, 0, kvHeads * headTiles);
        double exact = ReferenceAttention.relativeL2(EmulatedDecode.attention(w, fused, KernelEmulator.Schedule.values()[0]), ref);
        for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
            for (DecodeGrid grid : new DecodeGrid[] {fused, fine, split}) {
                double rel = ReferenceAttention.relativeL2(EmulatedDecode.attention(w, grid, s, false, VSums.FP16), ref);
                // the fp16 sums must show their rounding, unless every context is one token (a weight of exactly 1: no rounding)
                assertTrue(rel < 2e-3 && (rel > exact || longest == 1), grid + " " + s + ": relative L2 error " + rel + " (fp32 sums: " + exact + ")");
            }
        }
    }

    /** The emulator runs the bf16 bodies through the compile-time API's decoder: it must be the cache's own for every bit pattern. */
    @Test
    void bf16DecoderIsTheCachesOwn() {
        for (int bits = 0; bits < 1 << 16; bits++) {
            float want = Bf16.toFloat((short) bits);
            float got = BFloat16.bf16ToFloat((short) bits);
            assertTrue(Float.floatToIntBits(want) == Float.floatToIntBits(got) || Float.isNaN(want) && Float.isNaN(got),
                    "bf16 bits " + Integer.toHexString(bits) + ": " + got + " against " + want);
        }
    }

    /** The emulator runs the FP8 twins through the compile-time API's decoders: they must be the formats' own. */
    @Test
    void fp8DecodersAreTheFormatsOwn() {
        for (int c = 0; c < 256; c++) {
            assertEquals(Float.floatToIntBits(QuantFormat.FP8_E4M3.decode(c)), Float.floatToIntBits(FP8.e4m3ToFloat((byte) c)), "E4M3 code " + c);
            assertEquals(Float.floatToIntBits(QuantFormat.FP8_E5M2.decode(c)), Float.floatToIntBits(FP8.e5m2ToFloat((byte) c)), "E5M2 code " + c);
        }
    }

    @Test
    void shapesItCovers() {
        assertTrue(StreamDecodeKernels.supports(4, 128));
        assertTrue(StreamDecodeKernels.supports(1, 128));
        assertTrue(StreamDecodeKernels.supports(5, 128));
        assertEquals(1, StreamDecodeKernels.headTiles(4));
        assertEquals(2, StreamDecodeKernels.headTiles(5));
        assertEquals(2, StreamDecodeKernels.headTiles(8));
        assertEquals(16, StreamDecodeKernels.headTiles(64));
        // fp16 groups of more than four at head dim 128 run the G8 bodies: one work-group per eight query heads
        assertEquals(1, StreamDecodeKernels.headTiles(5, 128));
        assertEquals(1, StreamDecodeKernels.headTiles(8, 128));
        assertEquals(8, StreamDecodeKernels.headTiles(64, 128));
        assertEquals(2, StreamDecodeKernels.headTiles(8, 64));
        assertEquals(1, StreamDecodeKernels.headTiles(4, 128));
        assertTrue(StreamDecodeKernels.supports(4, 64));
        assertTrue(StreamDecodeKernels.supports(7, 64));
        assertTrue(StreamDecodeKernels.supports(4, 96));
        assertTrue(StreamDecodeKernels.supports(4, 80));
        assertTrue(StreamDecodeKernels.supports(1, 112));
        assertFalse(StreamDecodeKernels.supports(4, 48));
        assertFalse(StreamDecodeKernels.supports(4, 160));
        assertTrue(StreamDecodeKernels.supports(2, 256));
        assertFalse(StreamDecodeKernels.supports(4, 192));
        assertFalse(StreamDecodeKernels.supports(0, 128));
        assertTrue(StreamDecodeKernels.supportsEightBit(4, 128));
        assertTrue(StreamDecodeKernels.supportsEightBit(8, 256));
        assertTrue(StreamDecodeKernels.supportsEightBit(4, 64));
        assertTrue(StreamDecodeKernels.supportsEightBit(4, 96));
        assertTrue(StreamDecodeKernels.supportsEightBit(1, 80));
        assertTrue(StreamDecodeKernels.supportsEightBit(6, 112));
    }
}
