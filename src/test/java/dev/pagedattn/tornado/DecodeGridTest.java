package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.PageTable;
import dev.pagedattn.kernels.DecodeParams;
import dev.pagedattn.kernels.PagedDecodeKernels;
import dev.pagedattn.kernels.HeadPairDecodeKernels;
import dev.pagedattn.kernels.HeadQuadDecodeKernels;
import dev.pagedattn.kernels.StreamDecodeKernels;
import dev.pagedattn.kernels.WarpQuadDecodeKernels;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

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
        AttentionSpec g8 = new AttentionSpec(64, 8, 128, 0.1f);   // groups of 8: two stream work-groups per KV head
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g8, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.CHUNK, DecodeGrid.resolve(DecodeGrid.Kernel.CHUNK, g8, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.CHUNK, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g8, Backend.CUDA, KvDtype.FP32));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.STREAM, g8, Backend.CUDA, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g8, Backend.PTX, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.PTX, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.OPENCL, KvDtype.FP16));
        AttentionSpec d48 = new AttentionSpec(32, 8, 48, 0.1f);   // 6 lanes (8 per quad, 2 idle): no stream or chunk body
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d48, Backend.PTX, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d48, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d48, Backend.OPENCL, KvDtype.FP16));
        for (int d : new int[] {80, 112}) {   // Phi-2's heads (MHA at 80) and a group of four at 112: the stream bodies on CUDA
            for (AttentionSpec spec : new AttentionSpec[] {new AttentionSpec(32, 32, d, 0.1f), new AttentionSpec(32, 8, d, 0.1f)}) {
                assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, spec, Backend.CUDA, KvDtype.FP16));
                assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, spec, Backend.CUDA, KvDtype.INT8));
                assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, spec, Backend.PTX, KvDtype.FP8_E4M3));
                assertEquals(spec.groupSize() < 3 ? DecodeGrid.Kernel.PAIRS : DecodeGrid.Kernel.WARP,
                        DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, spec, Backend.PTX, KvDtype.FP16));
            }
        }
        AttentionSpec mha = new AttentionSpec(16, 16, 128, 0.1f);
        assertEquals(DecodeGrid.Kernel.PAIRS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, mha, Backend.PTX, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, mha, Backend.CUDA, KvDtype.FP16));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.WARP, LLAMA, Backend.OPENCL, KvDtype.FP16));
        assertTrue(e.getMessage().contains("pagedattn.tornado.kernel=warp") && e.getMessage().contains("backend=OPENCL"),
                e.getMessage());
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.WARP, d48, Backend.PTX, KvDtype.FP16));
        e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.resolve(DecodeGrid.Kernel.CHUNK, d48, Backend.CUDA, KvDtype.FP16));
        assertTrue(e.getMessage().contains("pagedattn.tornado.kernel=chunk") && e.getMessage().contains("headDim=48"), e.getMessage());
        for (Object[] refused : new Object[][] {{LLAMA, Backend.PTX, KvDtype.FP16, "backend=PTX"},
                {LLAMA, Backend.CUDA, KvDtype.FP32, "dtype=FP32"}, {d48, Backend.CUDA, KvDtype.FP16, "headDim=48"},
                {LLAMA, Backend.OPENCL, KvDtype.INT8, "backend=OPENCL"}, {d48, Backend.CUDA, KvDtype.FP8_E4M3, "headDim=48"}}) {
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
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.PTX, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.CUDA, KvDtype.FP8_E4M3));
        IllegalArgumentException ptx = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.STREAM, LLAMA, Backend.PTX, KvDtype.FP8_E4M3));
        assertTrue(ptx.getMessage().startsWith("pagedattn.tornado.kernel=stream") && ptx.getMessage().contains("backend=PTX")
                && ptx.getMessage().contains("dtype=FP8_E4M3"), ptx.getMessage());
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.WARP, LLAMA, Backend.CUDA, KvDtype.FP8_E4M3));
        // INT8 takes the stream twins on PTX too (their codes sign-extended by a cast); FP8 keeps the warp twin there
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.PTX, KvDtype.INT8));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.STREAM, LLAMA, Backend.PTX, KvDtype.INT8));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.PTX, KvDtype.FP8_E5M2));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.OPENCL, KvDtype.INT8));
        AttentionSpec g8 = new AttentionSpec(64, 8, 128, 0.1f);
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g8, Backend.CUDA, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.WARP, g8, Backend.CUDA, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g8, Backend.PTX, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, Backend.OPENCL, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.QUADS, LLAMA, Backend.PTX, KvDtype.FP8_E4M3));
        AttentionSpec d48 = new AttentionSpec(32, 8, 48, 0.1f);   // no stream twin; the warp twin with two idle lanes per quad
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d48, Backend.PTX, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.WARP, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d48, Backend.CUDA, KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.Kernel.QUADS, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, d48, Backend.OPENCL, KvDtype.FP8_E4M3));
        for (DecodeGrid.Kernel k : new DecodeGrid.Kernel[] {DecodeGrid.Kernel.CHUNK, DecodeGrid.Kernel.PAIRS}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> DecodeGrid.resolve(k, LLAMA, Backend.CUDA, KvDtype.FP8_E4M3));
            assertTrue(e.getMessage().startsWith("pagedattn.tornado.kernel=" + k.name().toLowerCase()), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.WARP, LLAMA, Backend.OPENCL, KvDtype.FP8_E4M3));
        assertTrue(e.getMessage().contains("backend=OPENCL"), e.getMessage());
    }

    /**
     * bf16 pools: the stream kernel's bf16 bodies on the CUDA backend at every head dim they cover, any group; PTX and
     * OpenCL, other head dims and every other kernel are refused by name (the message names the backend or the kernel).
     */
    @Test
    void bf16PoolsGetTheStreamBodiesOnCudaAndANamedRefusalElsewhere() {
        for (int d : new int[] {64, 80, 96, 112, 128, 256}) {
            for (int g : new int[] {1, 4, 8, 16}) {
                AttentionSpec spec = new AttentionSpec(8 * g, 8, d, 0.1f);
                assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, spec, Backend.CUDA, KvDtype.BF16));
                assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.STREAM, spec, Backend.CUDA, KvDtype.BF16));
            }
        }
        for (Backend b : new Backend[] {Backend.PTX, Backend.OPENCL}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, LLAMA, b, KvDtype.BF16));
            assertTrue(e.getMessage().startsWith("dtype=BF16 needs TornadoVM's CUDA backend") && e.getMessage().contains("backend=" + b),
                    e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, new AttentionSpec(32, 8, 48, 0.1f), Backend.CUDA, KvDtype.BF16));
        assertTrue(e.getMessage().contains("headDim=48"), e.getMessage());
        for (DecodeGrid.Kernel k : new DecodeGrid.Kernel[] {DecodeGrid.Kernel.WARP, DecodeGrid.Kernel.QUADS, DecodeGrid.Kernel.CHUNK,
                DecodeGrid.Kernel.PAIRS}) {
            e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.resolve(k, LLAMA, Backend.CUDA, KvDtype.BF16));
            assertTrue(e.getMessage().startsWith("pagedattn.tornado.kernel=" + k.name().toLowerCase() + ": bf16"), e.getMessage());
        }
    }

    @Test
    void groupsAboveEightHeadsGetTheStreamKernelsOrANamedRefusal() {
        AttentionSpec g16 = new AttentionSpec(32, 2, 128, 0.1f);   // Llama-3.1-405B's groups of 16
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g16, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g16, Backend.CUDA, KvDtype.FP8_E4M3));
        IllegalArgumentException ptxG16 = assertThrows(IllegalArgumentException.class,   // not checked there: refused by name
                () -> DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g16, Backend.PTX, KvDtype.INT8));
        assertTrue(ptxG16.getMessage().startsWith("groupSize=16") && ptxG16.getMessage().contains("backend=PTX"), ptxG16.getMessage());
        AttentionSpec g16d64 = new AttentionSpec(32, 2, 64, 0.1f);  // the stream kernel's D64 bodies, fp16 and 8-bit
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g16d64, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g16d64, Backend.CUDA, KvDtype.FP8_E4M3));
        AttentionSpec g16d96 = new AttentionSpec(32, 2, 96, 0.1f);   // the stream kernel's D96 bodies, fp16 and 8-bit
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g16d96, Backend.CUDA, KvDtype.FP16));
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, g16d96, Backend.CUDA, KvDtype.INT8));
        AttentionSpec g16d48 = new AttentionSpec(32, 2, 48, 0.1f);
        assertEquals(DecodeGrid.Kernel.STREAM, DecodeGrid.resolve(DecodeGrid.Kernel.AUTO, new AttentionSpec(32, 2, 256, 0.1f), Backend.CUDA,
                KvDtype.FP16));
        Object[][] refused = {
                {DecodeGrid.Kernel.AUTO, g16, Backend.PTX, KvDtype.FP16, "kernel=warp on backend=PTX"},
                {DecodeGrid.Kernel.AUTO, g16, Backend.OPENCL, KvDtype.FP32, "kernel=quads on backend=OPENCL"},
                {DecodeGrid.Kernel.AUTO, g16, Backend.CUDA, KvDtype.FP32, "kernel=warp on backend=CUDA"},
                {DecodeGrid.Kernel.AUTO, g16d48, Backend.CUDA, KvDtype.FP16, "kernel=warp on backend=CUDA"},
                {DecodeGrid.Kernel.AUTO, g16d48, Backend.CUDA, KvDtype.FP8_E4M3, "kernel=warp on backend=CUDA"},
                {DecodeGrid.Kernel.WARP, g16, Backend.CUDA, KvDtype.FP16, "kernel=warp on backend=CUDA"},
                {DecodeGrid.Kernel.AUTO, g16, Backend.PTX, KvDtype.FP8_E4M3, "kernel=warp on backend=PTX"},
                {DecodeGrid.Kernel.QUADS, g16, Backend.CUDA, KvDtype.INT8, "kernel=quads on backend=CUDA"}};
        for (Object[] r : refused) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DecodeGrid.resolve(
                    (DecodeGrid.Kernel) r[0], (AttentionSpec) r[1], (Backend) r[2], (KvDtype) r[3]));
            assertTrue(e.getMessage().startsWith("groupSize=16 (q-heads 32 / kv-heads 2) is above 8")
                    && e.getMessage().contains((String) r[4]), e.getMessage());
        }
    }

    @Test
    void warpGridsOfShortContextsSplitDownToTheWarpFloor() {
        // PTX's warp kernel: 1 x 1k is 8 work-groups unsplit; cut into partitions of 128 tokens (not 512) it is 64
        assertEquals(128, DecodeGrid.WARP_MIN_PARTITION_TOKENS);
        DecodeGrid one = DecodeGrid.plan(LLAMA, batch(1024), true, DecodeGrid.Kernel.WARP, KvDtype.FP16);
        assertEquals(8, one.maxPartitions(), one.toString());
        assertEquals(128, one.partitionTokens(), one.toString());
        assertEquals(64, one.numGroups(), one.toString());
        // 8 x 1k: 64 groups unsplit, 528 / 64 = 8 partitions of 128; 8-bit pools take the same grid
        DecodeGrid eight = DecodeGrid.plan(LLAMA, batch(1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024), true,
                DecodeGrid.Kernel.WARP, KvDtype.FP8_E4M3);
        assertEquals(8, eight.maxPartitions(), eight.toString());
        assertEquals(512, eight.numGroups(), eight.toString());
        // the quad kernel keeps partitions of at least 512 tokens
        DecodeGrid quads = DecodeGrid.plan(LLAMA, batch(1024), true, DecodeGrid.Kernel.QUADS, KvDtype.FP16);
        assertEquals(2, quads.maxPartitions(), quads.toString());
        // long contexts are cut by the target, not the floor: 1 x 32k in 66 partitions either way
        assertEquals(66, DecodeGrid.plan(LLAMA, batch(32768), true, DecodeGrid.Kernel.WARP, KvDtype.FP16).maxPartitions());
    }

    @Test
    void eightHeadBodiesSplitWholeWavesAtHalfTheFloor() {
        // a G8 work-group does eight heads' work per token: its whole-wave split may cut partitions down to 512 tokens
        AttentionSpec llama70b = new AttentionSpec(64, 8, 128, 0.088f);
        AttentionSpec llama8b = new AttentionSpec(32, 8, 128, 0.088f);
        // (waves of 1584: the G8 body with fp16 V sums; with fp32 V sums it plans waves of 2112, below)
        int target = DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, llama70b, KvDtype.FP16, true);
        int floor = DecodeGrid.STREAM_MIN_PARTITION_TOKENS;
        // 128 x 2k, G8: 1024 groups (0.65 of a wave) -> three partitions of 688 tokens, two nearly full waves
        DecodeGrid g8 = DecodeGrid.plan(llama70b, 128, 2048, true, target, floor, DecodeGrid.Kernel.STREAM);
        assertEquals(3, g8.maxPartitions(), g8.toString());
        assertEquals(688, g8.partitionTokens(), g8.toString());
        // 256 x 1k, G8: 2048 groups (1.3 waves) -> two partitions of 512
        assertEquals(2, DecodeGrid.plan(llama70b, 256, 1024, true, target, floor, DecodeGrid.Kernel.STREAM).maxPartitions());
        // four-head bodies keep the floor of 1024: 256 x 1k and 128 x 2k (also 2048 and 1024 groups) unsplit
        assertEquals(1, DecodeGrid.plan(llama8b, 256, 1024, true, target, floor, DecodeGrid.Kernel.STREAM).maxPartitions());
        assertEquals(1, DecodeGrid.plan(llama8b, 128, 2048, true, target, floor, DecodeGrid.Kernel.STREAM).maxPartitions());
        // on waves of 2112, 128 x 2k's 1024 groups become two partitions of 1024 (0.97 of a wave)
        DecodeGrid lean = DecodeGrid.plan(llama70b, 128, 2048, true, DecodeGrid.STREAM_TARGET_GROUPS_LEAN, floor,
                DecodeGrid.Kernel.STREAM);
        assertEquals(2, lean.maxPartitions(), lean.toString());
        assertEquals(DecodeGrid.STREAM_WAVE_PARTITION_TOKENS / 2, DecodeGrid.wavePartitionTokens(llama70b));
        assertEquals(DecodeGrid.STREAM_WAVE_PARTITION_TOKENS, DecodeGrid.wavePartitionTokens(llama8b));
    }

    @Test
    void headDim64StreamGridsFillTheWarpsItsRegistersAllow() {
        // attentionF16x2D64 takes 127 registers: 16 one-warp groups per SM, so its grids aim at 132 x 16 groups
        AttentionSpec llama1b = new AttentionSpec(32, 8, 64, 0.125f);
        DecodeBatch b = batch(32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768);
        DecodeGrid d64 = DecodeGrid.plan(llama1b, b, true, DecodeGrid.Kernel.STREAM, KvDtype.FP16);
        DecodeGrid d128 = DecodeGrid.plan(LLAMA, b, true, DecodeGrid.Kernel.STREAM, KvDtype.FP16);
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS_LEAN, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, llama1b, KvDtype.FP16));
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS_LEAN, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM,
                new AttentionSpec(16, 8, 256, 0.06f), KvDtype.INT8));
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, LLAMA, KvDtype.FP16));
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, LLAMA, KvDtype.FP8_E4M3));
        // 8-bit at 128 with groups of one or two heads (Llama-2-7B's MHA): 126-128 registers, the lean target; fp16 there 168
        AttentionSpec llama2 = new AttentionSpec(32, 32, 128, 0.088f);
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS_LEAN, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, llama2, KvDtype.INT8));
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS_LEAN, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM,
                new AttentionSpec(16, 8, 128, 0.088f), KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM,
                new AttentionSpec(24, 8, 128, 0.088f), KvDtype.FP8_E4M3));
        assertEquals(DecodeGrid.STREAM_TARGET_GROUPS, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, llama2, KvDtype.FP16));
        assertEquals(DecodeGrid.TARGET_GROUPS, DecodeGrid.targetGroups(DecodeGrid.Kernel.CHUNK, llama1b, KvDtype.FP16));
        assertTrue(d64.numGroups() > d128.numGroups() && d64.numGroups() <= 2112, d64 + " / " + d128);
    }

    @Test
    void ptxRunsTheInt8TwinsOnTheLeanGridForGroupsOfEightAt128AndAtSmallerDimsForOneWorkGroupOfHeads() {
        // H100, PTX backend: 2112 groups took 0.88-0.98x the time of 1584 at head dim 128 with groups of eight and at 80,
        // 96 and 112 with groups of up to four; at 96 and 112 with groups of eight (two work-groups of four heads)
        // 0.95-1.01x; groups of sixteen at 128 (two G8 work-groups) were not timed. At 64 (groups of four) and 256 (groups
        // of two), lean by the CUDA rule, 2112 took 0.89-0.99x on PTX too. On the CUDA backend the 8-bit twins took
        // 1.01-1.20x on 2112 at 128, so the rule is the backend's
        int lean = DecodeGrid.STREAM_TARGET_GROUPS_LEAN;
        int full = DecodeGrid.STREAM_TARGET_GROUPS;
        DecodeGrid.Kernel stream = DecodeGrid.Kernel.STREAM;
        AttentionSpec g8 = new AttentionSpec(64, 8, 128, 0.088f);
        assertEquals(lean, DecodeGrid.targetGroups(stream, g8, KvDtype.INT8, false, Backend.PTX));
        for (int d : new int[] {80, 96, 112}) {
            float scale = (float) (1 / Math.sqrt(d));
            int expected = d == 112 ? full : lean;  // at 112 the JIT cap of 168 on 1584 groups is faster still (below)
            for (int groups : new int[] {1, 2, 4}) {
                assertEquals(expected, DecodeGrid.targetGroups(stream, new AttentionSpec(8 * groups, 8, d, scale), KvDtype.INT8, false,
                        Backend.PTX), "d" + d + " groups of " + groups);
            }
            assertEquals(full, DecodeGrid.targetGroups(stream, new AttentionSpec(64, 8, d, scale), KvDtype.INT8, false, Backend.PTX),
                    "d" + d + " groups of 8");
        }
        assertEquals(lean, DecodeGrid.targetGroups(stream, new AttentionSpec(32, 8, 64, 0.125f), KvDtype.INT8, false, Backend.PTX));
        assertEquals(lean, DecodeGrid.targetGroups(stream, new AttentionSpec(16, 8, 256, 0.0625f), KvDtype.INT8, false, Backend.PTX));
        assertEquals(full, DecodeGrid.targetGroups(stream, LLAMA, KvDtype.INT8, false, Backend.CUDA));
        assertEquals(full, DecodeGrid.targetGroups(stream, new AttentionSpec(128, 8, 128, 0.088f), KvDtype.INT8, false, Backend.PTX));
        assertEquals(full, DecodeGrid.targetGroups(stream, g8, KvDtype.INT8, false, Backend.CUDA));
        assertEquals(full, DecodeGrid.targetGroups(stream, new AttentionSpec(32, 8, 112, 0.09f), KvDtype.INT8, false, Backend.CUDA));
        assertEquals(full, DecodeGrid.targetGroups(stream, LLAMA, KvDtype.INT8));  // the CUDA rule without a backend
        assertEquals(full, DecodeGrid.targetGroups(stream, LLAMA, KvDtype.FP8_E4M3, false, Backend.PTX));
        assertEquals(full, DecodeGrid.targetGroups(stream, LLAMA, KvDtype.FP16, false, Backend.PTX));
        assertEquals(DecodeGrid.TARGET_GROUPS, DecodeGrid.targetGroups(DecodeGrid.Kernel.WARP, g8, KvDtype.INT8, false, Backend.PTX));
        // 8 x 32k with groups of eight: the PTX plan cuts more, shorter partitions than the CUDA plan, within one lean wave
        DecodeBatch b = batch(32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768);
        DecodeGrid ptx = DecodeGrid.plan(g8, b, true, stream, KvDtype.INT8, false, false, Backend.PTX);
        DecodeGrid cuda = DecodeGrid.plan(g8, b, true, stream, KvDtype.INT8, false, false, Backend.CUDA);
        assertTrue(ptx.numGroups() > cuda.numGroups() && ptx.numGroups() <= lean && cuda.numGroups() <= full, ptx + " / " + cuda);
    }

    @Test
    void ptxRunsTheFourHeadInt8TwinUnderAJitCapOf168OnTheFullGrid() {
        // H100, PTX backend, INT8 at head dim 128: the JIT cap of 168 on 1584 groups against the process's 128 on 2112
        // took 0.71-0.73x the time with groups of one, 0.66-0.68x with two, 0.95-0.98x with four; at 112 0.80-0.81x,
        // 0.93x and 0.97-0.98x. With eight (the G8 body) 1.08-1.10x, at head dims 80 and 96 1.01-1.19x with one to four,
        // so those keep the process's cap and their grids
        DecodeGrid.Kernel stream = DecodeGrid.Kernel.STREAM;
        for (int d : new int[] {112, 128}) {
            for (int groups = 1; groups <= 4; groups++) {
                String shape = "d" + d + " groups of " + groups;
                AttentionSpec spec = new AttentionSpec(8 * groups, 8, d, (float) (1 / Math.sqrt(d)));
                assertEquals("CU_JIT_OPTIMIZATION_LEVEL 4 CU_JIT_MAX_REGISTERS 168", DecodeGrid.ptxJitFlags(stream, spec, KvDtype.INT8, Backend.PTX),
                        shape);
                assertEquals(DecodeGrid.STREAM_TARGET_GROUPS, DecodeGrid.targetGroups(stream, spec, KvDtype.INT8, false, Backend.PTX),
                        shape);
                DecodeGrid ptx = DecodeGrid.plan(spec, batch(32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768), true, stream,
                        KvDtype.INT8, false, false, Backend.PTX);
                assertTrue(ptx.numGroups() <= DecodeGrid.STREAM_TARGET_GROUPS && ptx.numGroups() > DecodeGrid.STREAM_TARGET_GROUPS / 2,
                        shape + ": " + ptx);
            }
        }
        assertNull(DecodeGrid.ptxJitFlags(stream, new AttentionSpec(32, 8, 80, 0.11f), KvDtype.INT8, Backend.PTX));
        assertNull(DecodeGrid.ptxJitFlags(stream, new AttentionSpec(64, 8, 112, 0.09f), KvDtype.INT8, Backend.PTX));  // two work-groups
        assertNull(DecodeGrid.ptxJitFlags(stream, new AttentionSpec(64, 8, 128, 0.088f), KvDtype.INT8, Backend.PTX));  // G8 body
        assertNull(DecodeGrid.ptxJitFlags(stream, new AttentionSpec(32, 8, 96, 0.1f), KvDtype.INT8, Backend.PTX));
        assertNull(DecodeGrid.ptxJitFlags(stream, new AttentionSpec(32, 8, 64, 0.125f), KvDtype.INT8, Backend.PTX));
        assertNull(DecodeGrid.ptxJitFlags(stream, LLAMA, KvDtype.INT8, Backend.CUDA));
        assertNull(DecodeGrid.ptxJitFlags(stream, LLAMA, KvDtype.FP8_E4M3, Backend.PTX));
        assertNull(DecodeGrid.ptxJitFlags(stream, LLAMA, KvDtype.FP16, Backend.PTX));
        assertNull(DecodeGrid.ptxJitFlags(DecodeGrid.Kernel.WARP, LLAMA, KvDtype.INT8, Backend.PTX));
    }

    @Test
    void oneHeadGroupsAtHeadDims80And96GetTheLeanTargetWhereItMeasuredFaster() {
        // MHA: the body's other three heads are compiled away; nvcc on the printed CUDA C gives 128 registers at 80
        // (fp16 and 8-bit), 122 for the 8-bit twins at 96, 136-138 for fp16 at 96 and 112; larger groups 146-168.
        // FP8 at 112 ran 0.83x on the lean grid (H200), so 112 keeps the full target.
        AttentionSpec phi2 = new AttentionSpec(32, 32, 80, 0.11f);
        int lean = DecodeGrid.STREAM_TARGET_GROUPS_LEAN;
        int full = DecodeGrid.STREAM_TARGET_GROUPS;
        assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, phi2, KvDtype.FP16));
        assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, phi2, KvDtype.INT8));
        AttentionSpec mha96 = new AttentionSpec(32, 32, 96, 0.1f);
        assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, mha96, KvDtype.FP16));
        assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, mha96, KvDtype.FP8_E4M3));
        AttentionSpec mha112 = new AttentionSpec(32, 32, 112, 0.1f);
        assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, mha112, KvDtype.FP16));
        assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, mha112, KvDtype.FP8_E4M3));
        for (int d : new int[] {80, 96, 112}) {
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, new AttentionSpec(32, 16, d, 0.1f), KvDtype.FP8_E5M2));
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, new AttentionSpec(32, 8, d, 0.1f), KvDtype.FP16));
        }
        // the plan of 8 x 32k at Phi-2's heads over 8 KV heads aims at the lean target
        DecodeBatch b = batch(32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768);
        AttentionSpec mha8 = new AttentionSpec(8, 8, 80, 0.11f);
        DecodeGrid g = DecodeGrid.plan(mha8, b, true, DecodeGrid.Kernel.STREAM, KvDtype.FP16);
        assertTrue(g.numGroups() > full && g.numGroups() <= lean, g.toString());
    }

    @Test
    void theBoundedTwinRunsWhereItsGridFillsTheWavesMuchBetter() {
        // 256 x 1k: 2048 one-warp groups are 65% of two waves of 1584 but 97% of one wave of 2112 (H100: 0.86x the time)
        assertTrue(DecodeGrid.boundedTwinPays(LLAMA, uniform(256, 1024), true, KvDtype.FP16, false));
        assertTrue(DecodeGrid.boundedTwinPays(LLAMA, uniform(256, 1024), false, KvDtype.FP16, false));
        assertTrue(DecodeGrid.boundedTwinPays(LLAMA, uniform(512, 1024), true, KvDtype.FP16, false)); // 86% of 3 waves, 97% of 2
        DecodeGrid bounded = DecodeGrid.plan(LLAMA, uniform(256, 1024), true, DecodeGrid.Kernel.STREAM, KvDtype.FP16, true, false);
        assertEquals(2048, bounded.numGroups());
        assertEquals(1, bounded.maxPartitions());
        // grids that fill their waves either way keep the unbounded body (H100: the twin 1.01-1.09x the time there), and so
        // does 128 x 1k, whose bounded grid would fill its wave only by cutting each sequence in two
        int[][] cells = {{8, 32768}, {32, 8192}, {64, 4096}, {64, 8192}, {128, 4096}, {1, 32768}, {8, 8192}, {128, 1024}, {192, 1024}};
        for (int[] c : cells) {
            assertFalse(DecodeGrid.boundedTwinPays(LLAMA, uniform(c[0], c[1]), true, KvDtype.FP16, false), c[0] + " x " + c[1]);
        }
        // only the fp16 body at head dim 128 with up to four heads and fp32 V sums has the twin
        assertFalse(DecodeGrid.boundedTwinPays(LLAMA, uniform(256, 1024), true, KvDtype.FP16, true));
        assertFalse(DecodeGrid.boundedTwinPays(LLAMA, uniform(256, 1024), true, KvDtype.FP8_E4M3, false));
        assertFalse(DecodeGrid.boundedTwinPays(new AttentionSpec(64, 8, 128, 0.088f), uniform(256, 1024), true, KvDtype.FP16, false));
        assertFalse(DecodeGrid.boundedTwinPays(new AttentionSpec(32, 8, 64, 0.125f), uniform(256, 1024), true, KvDtype.FP16, false));
        assertTrue(DecodeGrid.boundedTwinPays(new AttentionSpec(32, 32, 128, 0.088f), uniform(64, 1024), true, KvDtype.FP16, false)); // MHA: 2048 pairs
        // a ragged batch's balanced grid fills its waves by construction
        int[] ragged = new int[256];
        java.util.Arrays.fill(ragged, 600);
        ragged[0] = 4000;
        assertFalse(DecodeGrid.boundedTwinPays(LLAMA, batch(ragged), true, KvDtype.FP16, false));
        assertEquals(1.0, DecodeGrid.waveFill(1584, 1584));
        assertEquals(2048.0 / 3168, DecodeGrid.waveFill(2048, 1584));
    }

    @Test
    void groupsOfFiveToEightAtHeadDim128GetTheLeanGridInFp16WithFp32VSums() {
        // attentionF16x2G8: 128 registers (nvcc 13.0), 0.89-0.95x the time on 2112 groups against 1584 (H100); its fp16-V-sums
        // twin takes 142, the INT8 G8 twin 158 and the bf16 G8 body 155, so they keep 1584, as do groups of up to four heads (148)
        int full = DecodeGrid.STREAM_TARGET_GROUPS;
        int lean = DecodeGrid.STREAM_TARGET_GROUPS_LEAN;
        for (int qHeads : new int[] {40, 48, 56, 64}) {
            AttentionSpec spec = new AttentionSpec(qHeads, 8, 128, 0.088f);
            assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.FP16), spec.toString());
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.FP16, true), spec.toString());
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.INT8), spec.toString());
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.FP8_E4M3), spec.toString());
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.BF16), spec.toString());
        }
        for (int qHeads : new int[] {8, 16, 24, 32}) {
            AttentionSpec spec = new AttentionSpec(qHeads, 8, 128, 0.088f);
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.FP16), spec.toString());
        }
        // 8 x 32k at Llama-3-70B's heads: the lean grid as measured (2112 groups), 1584 with fp16 V sums
        AttentionSpec llama70b = new AttentionSpec(64, 8, 128, 0.088f);
        DecodeBatch b = batch(32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768);
        DecodeGrid g = DecodeGrid.plan(llama70b, b, true, DecodeGrid.Kernel.STREAM, KvDtype.FP16);
        DecodeGrid halfV = DecodeGrid.plan(llama70b, b, true, DecodeGrid.Kernel.STREAM, KvDtype.FP16, false, true);
        assertTrue(g.numGroups() > full && g.numGroups() <= lean, g.toString());
        assertTrue(halfV.numGroups() <= full, halfV.toString());
        int[] oneK = new int[256];
        java.util.Arrays.fill(oneK, 1024);
        assertFalse(DecodeGrid.boundedTwinPays(llama70b, batch(oneK), true, KvDtype.FP16, false)); // no bounded G8 twin
    }

    @Test
    void headDim256GridsFollowTheBodysRegistersAndItsBoundedTwin() {
        // groups of three or more heads: 128-144 registers unbounded (NVRTC 144 at four; H100: 1.21-1.23x the time on the
        // lean grid), so 1584 groups; groups of one or two (96-108) and the 8-bit twins (128) keep 2112
        int full = DecodeGrid.STREAM_TARGET_GROUPS;
        int lean = DecodeGrid.STREAM_TARGET_GROUPS_LEAN;
        for (int qHeads : new int[] {24, 32, 64}) {
            AttentionSpec spec = new AttentionSpec(qHeads, 8, 256, 0.0625f);
            assertEquals(full, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.FP16), spec.toString());
            assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.INT8), spec.toString());
            assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, spec, KvDtype.FP8_E4M3), spec.toString());
        }
        AttentionSpec gemma2 = new AttentionSpec(16, 8, 256, 0.0625f);
        assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, gemma2, KvDtype.FP16));
        assertEquals(lean, DecodeGrid.targetGroups(DecodeGrid.Kernel.STREAM, new AttentionSpec(16, 16, 256, 0.0625f), KvDtype.FP16));
        // the bounded twin (attentionF16x2D256Bounded, 128 registers) where 1584 misses a wave by much: 256 x 1k (H100: 0.84x
        // the time with the bound on the body itself), not where the grid fills its waves either way (1.02-1.05x)
        AttentionSpec four = new AttentionSpec(32, 8, 256, 0.0625f);
        assertTrue(DecodeGrid.boundedTwinPays(four, uniform(256, 1024), true, KvDtype.FP16, false));
        for (int[] c : new int[][] {{8, 32768}, {64, 8192}, {128, 4096}, {1, 32768}, {8, 8192}}) {
            assertFalse(DecodeGrid.boundedTwinPays(four, uniform(c[0], c[1]), true, KvDtype.FP16, false), c[0] + " x " + c[1]);
        }
        assertFalse(DecodeGrid.boundedTwinPays(four, uniform(256, 1024), true, KvDtype.FP16, true)); // fp16 V sums: no twin
        assertFalse(DecodeGrid.boundedTwinPays(gemma2, uniform(256, 1024), true, KvDtype.FP16, false)); // lean already
        DecodeGrid g = DecodeGrid.plan(four, uniform(8, 32768), true, DecodeGrid.Kernel.STREAM, KvDtype.FP16);
        assertTrue(g.numGroups() > 1584 / 2 && g.numGroups() <= 1584, g.toString());
    }

    private static DecodeBatch uniform(int n, int len) {
        int[] lens = new int[n];
        java.util.Arrays.fill(lens, len);
        return batch(lens);
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

    private static DecodeBatch batch(int... lens) {
        KvCacheConfig config = KvCacheConfig.of(4096, 16, LLAMA.numKvHeads(), LLAMA.headDim(), KvDtype.FP16);
        int[][] tables = new int[lens.length][];
        for (int i = 0; i < lens.length; i++) {
            tables[i] = new int[config.blocksFor(lens[i])];
        }
        return DecodeBatch.of(config, tables, lens);
    }

    @Test
    void streamKernelsCutRaggedBatchesBalancedAndUniformOnesByPartitions() {
        DecodeBatch ragged = batch(1000, 17, 5000, 1);
        assertTrue(DecodeGrid.plan(LLAMA, ragged, true, DecodeGrid.Kernel.STREAM, KvDtype.FP16).balanced() == DecodeGrid.BALANCED);
        assertFalse(DecodeGrid.plan(LLAMA, ragged, false, DecodeGrid.Kernel.STREAM, KvDtype.FP16).balanced()); // fused
        assertFalse(DecodeGrid.plan(LLAMA, ragged, true, DecodeGrid.Kernel.WARP, KvDtype.FP16).balanced());
        assertFalse(DecodeGrid.plan(LLAMA, batch(4096, 4000, 4096), true, DecodeGrid.Kernel.STREAM, KvDtype.FP16).balanced());
        // 63 + 2 + 313 + 1 = 379 tiles per KV head, 3032 in all: 31 per work-group over 98 of them at 100 targeted;
        // the longest pair (313 tiles) spans at most ceil(312 / 31) + 1 = 12
        DecodeGrid g = DecodeGrid.balanced(LLAMA, ragged, 100, 64);
        assertEquals(31, g.tilesPerGroup());
        assertEquals(98, g.numGroups());
        assertEquals(12, g.maxPartitions());
        assertEquals(StreamDecodeKernels.LOCAL, g.localSize());
        assertEquals(4, DecodeGrid.balanced(LLAMA, ragged, 1 << 20, 64).tilesPerGroup()); // never below 64 tokens
    }

    /**
     * The params a balanced grid writes, against a plain walk over the tiles: each work-group's first sequence,
     * and for every (sequence, query head) row the number of work-groups its pair's tiles span, which is what
     * the merge reads back ({@link PagedDecodeKernels#partitionsOf}) and never more than the grid's partitions.
     */
    @Test
    void balancedParamsMatchAWalkOverTheTiles() {
        int[] lens = {1000, 17, 5000, 1, 16, 33, 2048};
        DecodeBatch b = batch(lens);
        IntArray cl = IntArray.fromArray(lens);
        // groups of 4 (one work-group per KV head), 5 (fp16: one, of eight heads; 8-bit: two, the second with one query
        // head) and 8 (fp16: one; 8-bit: two)
        for (AttentionSpec spec : new AttentionSpec[] {LLAMA, new AttentionSpec(10, 2, 128, 0.1f), new AttentionSpec(64, 8, 128, 0.1f)})
        for (KvDtype dtype : new KvDtype[] {KvDtype.FP16, KvDtype.FP8_E4M3}) {
            int headTiles = StreamDecodeKernels.headTiles(spec.groupSize(), spec.headDim());
            for (int target : new int[] {1, 3, 7, 100, 1584}) {
                DecodeGrid g = DecodeGrid.balanced(spec, b, target, 16);
                assertEquals(headTiles, g.headTiles(), g.toString());
                IntArray params = new IntArray(DecodeParams.capacity(lens.length, g.numGroups()));
                g.writeParams(params, lens, lens.length, 0, b.maxBlocksPerSeq(), 0, false);
                int r = g.tilesPerGroup();
                int[] groupOfTile = new int[(int) params.get(DecodeParams.TOTAL_TILES)];
                int[] seqOfTile = new int[groupOfTile.length];
                int[] headOfTile = new int[groupOfTile.length];
                int t = 0;
                for (int s = 0; s < lens.length; s++) {
                    for (int h = 0; h < spec.numKvHeads() * headTiles; h++) { // (KV head, head tile) pairs
                        for (int i = 0; i < (lens[s] + 15) / 16; i++, t++) {
                            groupOfTile[t] = t / r;
                            seqOfTile[t] = s;
                            headOfTile[t] = h;
                        }
                    }
                }
                assertEquals(groupOfTile.length, t);
                assertEquals(g.numGroups(), groupOfTile[t - 1] + 1, g.toString());
                int groupSeqs = params.get(DecodeParams.GROUP_SEQS);
                for (int grp = 0; grp < g.numGroups(); grp++) {
                    assertEquals(seqOfTile[grp * r], params.get(groupSeqs + grp), g + " work-group " + grp);
                }
                for (int s = 0; s < lens.length; s++) {
                    for (int qh = 0; qh < spec.numQHeads(); qh++) {
                        int perTile = StreamDecodeKernels.eightHeads(spec.groupSize(), spec.headDim()) ? 8 : 4;
                        int kv = qh / spec.groupSize() * headTiles + qh % spec.groupSize() / perTile; // its pair
                        java.util.Set<Integer> groups = new java.util.HashSet<>();
                        for (int i = 0; i < t; i++) {
                            if (seqOfTile[i] == s && headOfTile[i] == kv) {
                                groups.add(groupOfTile[i]);
                            }
                        }
                        int parts = PagedDecodeKernels.partitionsOf(cl, params, s, qh, spec.numQHeads(), 0, r);
                        assertEquals(groups.size(), parts, g + " sequence " + s + " head " + qh);
                        assertTrue(parts <= g.maxPartitions(), g + " sequence " + s);
                    }
                }
            }
        }
    }

    @Test
    void balancedParamsRefuseABatchWithMoreTilesThanPlanned() {
        DecodeGrid g = DecodeGrid.balanced(LLAMA, batch(100, 3000), 64, 64);
        int[] longer = {100, 6000};
        IntArray params = new IntArray(DecodeParams.capacity(2, 4096));
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> g.writeParams(params, longer, 2, 0, 400, 0, false));
        assertTrue(e.getMessage().contains("planned for fewer tiles than this batch's 3056"), e.getMessage());
    }

    @Test
    void aPackedPlansBalancedParamsStopWhereItsLengthsStart() {
        // packed inputs (the lengths and tables after the grid's slots, DecodeParams.LENS): a balanced grid's
        // work-group list may not run into the lengths, whatever room the array has after them
        int[] lens = {1000, 17, 5000};
        DecodeBatch b = batch(lens);
        DecodeGrid g = DecodeGrid.balanced(LLAMA, b, 64, 16);
        int slots = DecodeParams.capacity(lens.length, g.numGroups());
        IntArray params = new IntArray(slots + lens.length + 4096);
        params.set(DecodeParams.LENS, slots);
        g.writeParams(params, lens, lens.length, 0, b.maxBlocksPerSeq(), 0, false); // fits exactly
        assertEquals(g.numGroups(), slots - params.get(DecodeParams.GROUP_SEQS), "the list ends at the last grid slot");
        params.set(DecodeParams.LENS, slots - 1);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> g.writeParams(params, lens, lens.length, 0, b.maxBlocksPerSeq(), 0, false));
        assertTrue(e.getMessage().contains("params of " + (slots - 1) + " slots cannot hold"), e.getMessage());
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

    /**
     * A windowed batch's kernel tables start each row at the block of its walk origin (the window's first token rounded
     * down to 16), hold every block from there to the row's end, and are as wide as the widest such row; the spans the
     * grid is planned on run from the same origin. Unwindowed, they are the batch's own.
     */
    @Test
    void aWindowedBatchSendsItsRowsFromTheWindowsFirstBlock() {
        for (int bs : new int[] {1, 7, 16, 32}) {
            KvCacheConfig config = KvCacheConfig.of(4096, bs, 1, 8, KvDtype.FP16);
            int[] lens = {1, 40, 333, 1000};
            int[][] rows = new int[lens.length][];
            int next = 0;
            for (int i = 0; i < lens.length; i++) {
                rows[i] = new int[config.blocksFor(lens[i])];
                for (int j = 0; j < rows[i].length; j++) {
                    rows[i][j] = next++ % config.numBlocks();
                }
            }
            DecodeBatch whole = DecodeBatch.of(config, rows, lens);
            DecodeGrid.Tables same = DecodeGrid.tables(whole);
            assertEquals(whole.maxBlocksPerSeq(), same.width());
            assertTrue(java.util.Arrays.equals(whole.blockTables(), same.flat()));
            for (int window : new int[] {1, 15, 16, 17, 100, 999, 1000}) {
                DecodeBatch w = whole.window(window);
                DecodeGrid.Tables t = DecodeGrid.tables(w);
                int[] spans = DecodeGrid.spans(w);
                int widest = 1;
                for (int i = 0; i < lens.length; i++) {
                    int first = Math.max(0, lens[i] - window);
                    int origin = first / 16 * 16;
                    assertEquals(lens[i] - origin, spans[i], "bs=" + bs + " window=" + window + " row " + i);
                    int from = origin / bs;
                    assertEquals(from, PagedDecodeKernels.firstTableBlock(first, bs));
                    widest = Math.max(widest, config.blocksFor(lens[i]) - from);
                    for (int pos = origin; pos < lens[i]; pos++) {
                        assertEquals(whole.block(i, pos / bs), t.flat()[i * t.width() + pos / bs - from],
                                "bs=" + bs + " window=" + window + " row " + i + " position " + pos);
                    }
                }
                assertEquals(widest, t.width(), "bs=" + bs + " window=" + window);
            }
        }
    }

    /**
     * After {@code KvCache.releaseOutsideWindow}, a windowed batch's kernel tables hold no released column: where a row's
     * walk origin (16-token aligned) lies in a block wholly before the window, that column reads as the row's first held
     * block, so a tile load there reads the row's own K/V; every column of the window reads its own block.
     */
    @Test
    void releasedColumnsReachTheKernelsAsTheRowsFirstHeldBlock() throws Exception {
        for (int bs : new int[] {1, 3, 7, 16}) {
            KvCache cache = new KvCache(KvCacheConfig.of(4096, bs, 1, 8, KvDtype.FP16));
            int[] lens = {5, 40, 333};
            int[] seqs = new int[lens.length];
            for (int i = 0; i < lens.length; i++) {
                seqs[i] = cache.createSequence();
                cache.append(seqs[i], lens[i]);
            }
            for (int window : new int[] {100, 17, 10, 1}) {    // each release keeps what the next, shorter window sees
                for (int seq : seqs) {
                    cache.releaseOutsideWindow(seq, window);
                }
                DecodeBatch w = cache.batch(seqs).window(window);
                DecodeGrid.Tables t = DecodeGrid.tables(w);
                boolean substituted = false;
                for (int i = 0; i < lens.length; i++) {
                    int first = w.firstVisible(i);
                    int from = PagedDecodeKernels.firstTableBlock(first, bs);
                    for (int j = from; j < cache.config().blocksFor(lens[i]); j++) {
                        int sent = t.flat()[i * t.width() + j - from];
                        String at = "bs=" + bs + " window=" + window + " row " + i + " column " + j;
                        if (j < w.firstHeld(i) / bs) {
                            assertEquals(PageTable.RELEASED, w.block(i, j), at);
                            assertEquals(w.block(i, w.firstHeld(i) / bs), sent, at);
                            substituted = true;
                        } else {
                            assertEquals(w.block(i, j), sent, at);
                        }
                    }
                }
                assertTrue(substituted || bs == 16 || bs == 1, "bs=" + bs + " window=" + window
                        + ": some walk origin should lie in a released block");
            }
        }
    }
}
