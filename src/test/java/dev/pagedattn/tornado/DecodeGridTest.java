package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.kernels.HeadPairDecodeKernels;
import dev.pagedattn.kernels.HeadQuadDecodeKernels;
import dev.pagedattn.kernels.StreamDecodeKernels;
import dev.pagedattn.kernels.WarpQuadDecodeKernels;
import org.junit.jupiter.api.Test;

/** The host's rule for kernels, partitions and grid sizes. */
class DecodeGridTest {
    private static final AttentionSpec LLAMA = new AttentionSpec(32, 8, 128, 0.088f);

    @Test
    void largeBatchesRunFusedWithOnePartition() {
        DecodeGrid g = DecodeGrid.plan(LLAMA, 64, 8192, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals(1, g.maxPartitions());
        assertTrue(g.fused());
        assertEquals(64 * 8, g.numGroups());
        assertEquals(DecodeGrid.Kernel.QUADS, g.kernel());
        assertEquals(HeadQuadDecodeKernels.localSize(8, 128), g.localSize());
        assertEquals(g.numGroups() * g.localSize(), g.attentionGlobalSize());
    }

    @Test
    void smallBatchLongContextSplitsToFillTheGpu() {
        DecodeGrid g = DecodeGrid.plan(LLAMA, 1, 32768, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals(66, g.maxPartitions()); // 8 work-groups unsplit: 528 / 8 = 66 partitions fill one wave
        assertEquals(497, g.partitionTokens());
        assertEquals(528, g.numGroups());
        DecodeGrid min = DecodeGrid.plan(LLAMA, 1, 32768, true, 528, 512, DecodeGrid.Kernel.AUTO);
        assertEquals(64, min.maxPartitions()); // the minimum partition wins
        assertEquals(512, min.partitionTokens());
        assertTrue(g.partitionTokens() * g.maxPartitions() >= 32768);
        assertTrue(g.partitionTokens() * (g.maxPartitions() - 1) < 32768);
    }

    @Test
    void partitionsNeverGetSmallerThanTheMinimum() {
        DecodeGrid g = DecodeGrid.plan(LLAMA, 1, 1000, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals(3, g.maxPartitions());
        assertEquals(334, g.partitionTokens());
    }

    @Test
    void raggedBatchesSplitEvenIfTheGridIsLarge() {
        // 64 sequences: 512 work-groups unsplit, but the longest is 4x the mean
        DecodeGrid g = DecodeGrid.plan(LLAMA, 64, 32768, 64L * 8192, true, 528, 256, DecodeGrid.Kernel.AUTO);
        long p0 = (64L * 8192 * 8 + 4 * 528 - 1) / (4 * 528); // about four waves of 528 work-groups: 1986 tokens
        assertEquals(2048, g.partitionTokens());               // 32768 cut into round(32768 / 1986) = 16 equal parts
        assertEquals(16, g.maxPartitions());
        assertTrue(Math.abs(g.partitionTokens() - p0) < p0 / 2);
        DecodeGrid uniform = DecodeGrid.plan(LLAMA, 64, 8192, 64L * 8192, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals(1, uniform.maxPartitions());
    }

    @Test
    void partitionsAreEqualWithoutAShortLeftover() {
        // 32 x 8192: 256 work-groups unsplit; two partitions of 4096 make one wave of 512
        DecodeGrid g = DecodeGrid.plan(LLAMA, 32, 8192, true, 528, 512, DecodeGrid.Kernel.AUTO);
        assertEquals(4096, g.partitionTokens());
        assertEquals(2, g.maxPartitions());
        assertEquals(512, g.numGroups());
        for (int len : new int[] {1000, 4097, 8191, 12345, 32768}) {
            DecodeGrid h = DecodeGrid.plan(LLAMA, 2, len, true, 528, 512, DecodeGrid.Kernel.AUTO);
            long leftover = len - (long) h.partitionTokens() * (h.maxPartitions() - 1);
            assertTrue(h.partitionTokens() >= 512 && leftover > 0 && (h.maxPartitions() == 1 || leftover > h.partitionTokens() / 2),
                    "len=" + len + " partition=" + h.partitionTokens() + " parts=" + h.maxPartitions());
        }
    }

    @Test
    void autoPicksTheKernelFromTheBackendAndTheShape() {
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.CHUNK, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.CUDA, KvDtype.FP32));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.CUDA, KvDtype.FP8_E4M3));
        AttentionSpec g8 = new AttentionSpec(64, 8, 128, 0.1f);   // groups of 8: more heads than the stream kernel holds
        assertEquals(DecodeGrid.Kernel.CHUNK, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g8, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.PTX, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.OPENCL, KvDtype.FP16));
        AttentionSpec d80 = new AttentionSpec(32, 8, 80, 0.1f);   // 10 lanes: not a power of two
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d80, Backend.PTX, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d80, Backend.CUDA, KvDtype.FP16));
        AttentionSpec mha = new AttentionSpec(16, 16, 128, 0.1f);
        assertEquals(DecodeGrid.Kernel.PAIRS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, mha, Backend.PTX, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, mha, Backend.CUDA, KvDtype.FP16));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.WARP, LLAMA, Backend.OPENCL, KvDtype.FP16));
        assertTrue(e.getMessage().contains("pagedattn.tornado.kernel=warp") && e.getMessage().contains("backend=OPENCL"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.resolve(DecodeGrid.Kernel.WARP, d80, Backend.PTX, KvDtype.FP16));
        assertTrue(e.getMessage().contains("headDim=80"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.resolve(DecodeGrid.Kernel.CHUNK, d80, Backend.CUDA, KvDtype.FP16));
        assertTrue(e.getMessage().contains("pagedattn.tornado.kernel=chunk") && e.getMessage().contains("headDim=80"), e.getMessage());
        for (Object[] refused : new Object[][] {{LLAMA, Backend.PTX, KvDtype.FP16, "backend=PTX"},
                {LLAMA, Backend.CUDA, KvDtype.FP32, "dtype=FP32"}, {g8, Backend.CUDA, KvDtype.FP16, "groupSize=8"},
                {d80, Backend.CUDA, KvDtype.FP16, "headDim=80"}, {LLAMA, Backend.OPENCL, KvDtype.INT8, "backend=OPENCL"},
                {g8, Backend.CUDA, KvDtype.FP8_E4M3, "groupSize=8"}}) {
            e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.resolve(DecodeGrid.Kernel.STREAM,
                    (AttentionSpec) refused[0], (Backend) refused[1], (KvDtype) refused[2]));
            assertTrue(e.getMessage().startsWith("pagedattn.tornado.kernel=stream") && e.getMessage().contains((String) refused[3]),
                    e.getMessage());
        }
        DecodeGrid g = DecodeGrid.plan(LLAMA, 64, 8192, true, 528, 512, DecodeGrid.Kernel.WARP);
        assertEquals(DecodeGrid.Kernel.WARP, g.kernel());
        assertEquals(WarpQuadDecodeKernels.localSize(4, 128), g.localSize());
    }

    @Test
    void eightBitPoolsGetTheStreamTwinOnCudaTheWarpTwinWhereItRunsAndTheQuadTwinElsewhere() {
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolveEightBit(DecodeGrid.Kernel.AUTO, LLAMA, Backend.PTX));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolveEightBit(DecodeGrid.Kernel.AUTO, LLAMA, Backend.CUDA));
        IllegalArgumentException ptx = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolveEightBit(DecodeGrid.Kernel.STREAM, LLAMA, Backend.PTX));
        assertTrue(ptx.getMessage().startsWith("pagedattn.tornado.kernel=stream") && ptx.getMessage().contains("backend=PTX"),
                ptx.getMessage());
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolveEightBit(DecodeGrid.Kernel.WARP, LLAMA, Backend.CUDA));
        AttentionSpec g8 = new AttentionSpec(64, 8, 128, 0.1f);
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolveEightBit(DecodeGrid.Kernel.AUTO, g8, Backend.CUDA));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolveEightBit(DecodeGrid.Kernel.AUTO, LLAMA, Backend.OPENCL));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolveEightBit(DecodeGrid.Kernel.QUADS, LLAMA, Backend.PTX));
        AttentionSpec d80 = new AttentionSpec(32, 8, 80, 0.1f);
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolveEightBit(DecodeGrid.Kernel.AUTO, d80, Backend.PTX));
        for (DecodeGrid.Kernel k : new DecodeGrid.Kernel[] {DecodeGrid.Kernel.CHUNK, DecodeGrid.Kernel.PAIRS}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> DecodeGrid.resolveEightBit(k, LLAMA, Backend.CUDA));
            assertTrue(e.getMessage().startsWith("pagedattn.tornado.kernel=" + k.name().toLowerCase()), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolveEightBit(DecodeGrid.Kernel.WARP, LLAMA, Backend.OPENCL));
        assertTrue(e.getMessage().contains("backend=OPENCL"), e.getMessage());
    }

    @Test
    void streamGridsAreOneWarpPerGroupCutIntoWholeTiles() {
        DecodeGrid g = DecodeGrid.plan(LLAMA, 8, 32768, true, 1056, 128, DecodeGrid.Kernel.STREAM);
        assertEquals(StreamDecodeKernels.LOCAL, g.localSize());
        assertEquals(16, g.maxPartitions());      // 64 (sequence, KV head) pairs x 16 partitions fill 1056 one-warp groups
        assertEquals(2048, g.partitionTokens());
        // uniform batches fill whole waves: 1024 groups are 0.65 of a wave of 1584, 3 partitions two full waves
        assertEquals(3, DecodeGrid.plan(LLAMA, 128, 8192, true, 1584, 64, DecodeGrid.Kernel.STREAM).maxPartitions());
        assertEquals(3, DecodeGrid.plan(LLAMA, 256, 4096, true, 1584, 64, DecodeGrid.Kernel.STREAM).maxPartitions());
        assertEquals(1, DecodeGrid.plan(LLAMA, 256, 1024, true, 1584, 64, DecodeGrid.Kernel.STREAM).maxPartitions());
        assertEquals(1, DecodeGrid.plan(LLAMA, 128, 16384, true, 1584, 64, DecodeGrid.Kernel.STREAM).maxPartitions());
        assertEquals(3, DecodeGrid.plan(LLAMA, 64, 8192, true, 1584, 64, DecodeGrid.Kernel.STREAM).maxPartitions());
        assertEquals(3, DecodeGrid.plan(LLAMA, 64, 1024, true, 1584, 64, DecodeGrid.Kernel.STREAM).maxPartitions());
        assertEquals(1, DecodeGrid.plan(LLAMA, 256, 1024, false, 1584, 64, DecodeGrid.Kernel.STREAM).maxPartitions());
        DecodeGrid odd = DecodeGrid.plan(LLAMA, 1, 1000, true, 1056, 128, DecodeGrid.Kernel.STREAM);
        assertEquals(144, odd.partitionTokens()); // 1000 / 7 = 143 rounded up to whole 16-token tiles
        assertEquals(7, odd.maxPartitions());
        assertEquals(8 * 7, odd.numGroups());
    }

    @Test
    void fusedVariantNeverSplits() {
        assertEquals(1, DecodeGrid.plan(LLAMA, 1, 32768, false).maxPartitions());
    }

    @Test
    void autoPicksPairsForSmallGroupsAndTilesLargeOnes() {
        AttentionSpec mha = new AttentionSpec(16, 16, 128, 0.1f);
        DecodeGrid g = DecodeGrid.plan(mha, 4, 100, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals(DecodeGrid.Kernel.PAIRS, g.kernel());
        assertEquals(HeadPairDecodeKernels.localSize(1, 128), g.localSize());
        AttentionSpec mqa = new AttentionSpec(32, 1, 64, 0.1f);
        assertEquals(4, DecodeGrid.plan(mqa, 1, 10, false).headTiles());
        assertEquals(HeadPairDecodeKernels.localSize(32, 64),
                DecodeGrid.plan(mqa, 1, 10, false, 528, 256, DecodeGrid.Kernel.PAIRS).localSize());
    }

    @Test
    void localSizesDivideIntoWholeTokenRows() {
        for (int g : new int[] {1, 2, 3, 4, 5, 8, 12}) {
            for (int d = 8; d <= 256; d += 8) {
                int quad = HeadQuadDecodeKernels.localSize(g, d);
                int pair = HeadPairDecodeKernels.localSize(g, d);
                assertEquals(0, quad % HeadQuadDecodeKernels.rowThreads(g, d), "quads g=" + g + " d=" + d);
                assertEquals(0, pair % HeadPairDecodeKernels.rowThreads(g, d), "pairs g=" + g + " d=" + d);
                assertTrue(quad <= HeadQuadDecodeKernels.MAX_LOCAL && pair <= HeadPairDecodeKernels.MAX_LOCAL);
            }
        }
    }

    @Test
    void badKernelNameAndTunablesAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.Kernel.parse("warps"));
        assertTrue(e.getMessage().contains("pagedattn.tornado.kernel=warps"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.plan(LLAMA, 1, 10, true, 0, 256, DecodeGrid.Kernel.QUADS));
        assertTrue(e.getMessage().contains("targetGroups=0"), e.getMessage());
    }
}
