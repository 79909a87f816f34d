package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.kernels.HeadPairDecodeKernels;
import dev.pagedattn.kernels.HeadQuadDecodeKernels;
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
        assertEquals(128, g.maxPartitions()); // 32768 * 8 / (4 * 528) < 256 tokens: the minimum partition wins
        assertEquals(256, g.partitionTokens());
        assertTrue(g.numGroups() >= 528);
        assertTrue(g.partitionTokens() * g.maxPartitions() >= 32768);
        assertTrue(g.partitionTokens() * (g.maxPartitions() - 1) < 32768);
    }

    @Test
    void partitionsNeverGetSmallerThanTheMinimum() {
        DecodeGrid g = DecodeGrid.plan(LLAMA, 1, 1000, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals(4, g.maxPartitions());
        assertTrue(g.partitionTokens() >= 250);
    }

    @Test
    void raggedBatchesSplitEvenIfTheGridIsLarge() {
        // 64 sequences: 512 work-groups unsplit, but the longest is 4x the mean
        DecodeGrid g = DecodeGrid.plan(LLAMA, 64, 32768, 64L * 8192, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals((64L * 8192 * 8 + 4 * 528 - 1) / (4 * 528), g.partitionTokens());
        assertTrue(g.maxPartitions() > 1);
        DecodeGrid uniform = DecodeGrid.plan(LLAMA, 64, 8192, 64L * 8192, true, 528, 256, DecodeGrid.Kernel.AUTO);
        assertEquals(1, uniform.maxPartitions());
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
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.Kernel.parse("warp"));
        assertTrue(e.getMessage().contains("pagedattn.tornado.kernel=warp"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.plan(LLAMA, 1, 10, true, 0, 256, DecodeGrid.Kernel.QUADS));
        assertTrue(e.getMessage().contains("targetGroups=0"), e.getMessage());
    }
}
