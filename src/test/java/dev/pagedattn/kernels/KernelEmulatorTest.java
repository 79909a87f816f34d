package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/** The emulator itself: ids, shared local memory, barriers, atomics, warp operations, and that missing barriers fail. */
class KernelEmulatorTest {

    /** Tree sum of each group's values in local memory: needs a barrier after every step. */
    static void groupSum(KernelContext ctx, FloatArray in, FloatArray out, boolean barriers) {
        float[] buf = ctx.allocateFloatLocalArray(64);
        int lid = ctx.localIdx;
        buf[lid] = in.get(ctx.globalIdx);
        if (barriers) {
            ctx.localBarrier();
        }
        for (int stride = ctx.localGroupSizeX / 2; stride > 0; stride /= 2) {
            if (lid < stride) {
                buf[lid] += buf[lid + stride];
            }
            if (barriers) {
                ctx.localBarrier();
            }
        }
        if (lid == 0) {
            out.set(ctx.groupIdx, buf[0]);
        }
    }

    @ParameterizedTest
    @EnumSource(KernelEmulator.Schedule.class)
    void idsAndSizesFollowTheGrid(KernelEmulator.Schedule schedule) {
        IntArray global = new IntArray(96);
        IntArray local = new IntArray(96);
        IntArray group = new IntArray(96);
        IntArray sizes = new IntArray(96);
        KernelEmulator.launch(96, 32, schedule, ctx -> {
            global.set(ctx.globalIdx, ctx.globalIdx);
            local.set(ctx.globalIdx, ctx.localIdx);
            group.set(ctx.globalIdx, ctx.groupIdx);
            sizes.set(ctx.globalIdx, ctx.localGroupSizeX * 1000 + ctx.globalGroupSizeX);
        });
        for (int i = 0; i < 96; i++) {
            assertEquals(i, global.get(i));
            assertEquals(i % 32, local.get(i));
            assertEquals(i / 32, group.get(i));
            assertEquals(32 * 1000 + 96, sizes.get(i));
        }
    }

    @ParameterizedTest
    @EnumSource(KernelEmulator.Schedule.class)
    void localMemoryIsSharedPerGroupAndBarriersOrderPhases(KernelEmulator.Schedule schedule) {
        FloatArray in = new FloatArray(256);
        for (int i = 0; i < 256; i++) {
            in.set(i, i);
        }
        FloatArray out = new FloatArray(4);
        KernelEmulator.launch(256, 64, schedule, ctx -> groupSum(ctx, in, out, true));
        for (int g = 0; g < 4; g++) {
            float expected = 0;
            for (int i = g * 64; i < (g + 1) * 64; i++) {
                expected += i;
            }
            assertEquals(expected, out.get(g), 0f, "group " + g);
        }
    }

    @Test
    void aKernelThatForgetsItsBarriersFailsInSomeSchedule() {
        FloatArray in = new FloatArray(64);
        in.init(1f);
        boolean wrong = false;
        for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
            FloatArray out = new FloatArray(1);
            KernelEmulator.launch(64, 64, s, ctx -> groupSum(ctx, in, out, false));
            wrong |= out.get(0) != 64f;
        }
        assertTrue(wrong, "a reduction without barriers must give a wrong sum in at least one schedule");
    }

    @Test
    void localArraysStartPoisoned() {
        FloatArray out = new FloatArray(8);
        KernelEmulator.launch(8, 8, KernelEmulator.Schedule.FORWARD, ctx -> {
            float[] buf = ctx.allocateFloatLocalArray(8);
            out.set(ctx.localIdx, buf[(ctx.localIdx + 1) % 8]);
        });
        for (int i = 0; i < 8; i++) {
            assertTrue(Float.isNaN(out.get(i)));
        }
    }

    @ParameterizedTest
    @EnumSource(KernelEmulator.Schedule.class)
    void atomicAddCountsEveryWorkItem(KernelEmulator.Schedule schedule) {
        IntArray counter = new IntArray(1);
        FloatArray sum = new FloatArray(1);
        KernelEmulator.launch(512, 128, schedule, ctx -> {
            ctx.atomicAdd(counter, 0, 1);
            ctx.atomicAdd(sum, 0, 0.5f);
            int[] local = ctx.allocateIntLocalArray(1);
            if (ctx.localIdx == 0) {
                local[0] = 0;
            }
            ctx.localBarrier();
            ctx.atomicAdd(local, 0, 1);
            ctx.localBarrier();
            if (ctx.localIdx == 0 && local[0] != 128) {
                throw new IllegalStateException("local count " + local[0]);
            }
        });
        assertEquals(512, counter.get(0));
        assertEquals(256f, sum.get(0));
    }

    @Test
    void divergentBarrierIsReported() {
        AssertionError e = assertThrows(AssertionError.class, () -> KernelEmulator.launch(4, 4, KernelEmulator.Schedule.FORWARD, ctx -> {
            if (ctx.localIdx != 0) {
                ctx.localBarrier();
            }
        }));
        assertTrue(e.getMessage().contains("barrier divergence"), e.getMessage());
    }

    @Test
    void kernelExceptionsSurfaceWithTheWorkItem() {
        AssertionError e = assertThrows(AssertionError.class, () -> KernelEmulator.launch(8, 4, KernelEmulator.Schedule.FORWARD, ctx -> {
            int[] a = new int[2];
            a[ctx.localIdx] = 1; // index 2 and 3 are out of bounds
        }));
        assertTrue(e.getMessage().contains("work-item 2"), e.getMessage());
    }

    @Test
    void badGridIsRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KernelEmulator.launch(100, 64, KernelEmulator.Schedule.FORWARD, ctx -> { }));
        assertTrue(e.getMessage().contains("globalSize=100"), e.getMessage());
    }

    @ParameterizedTest
    @EnumSource(KernelEmulator.Schedule.class)
    void shuffleDownReadsTheLaneDeltaAheadAndClampsAtLane31(KernelEmulator.Schedule schedule) {
        FloatArray out = new FloatArray(128 * 3);
        KernelEmulator.launch(128, 64, schedule, ctx -> {
            float mine = 1000f * ctx.groupIdx + ctx.localIdx;
            out.set(3 * ctx.globalIdx, ctx.simdShuffleDown(mine, 1));
            out.set(3 * ctx.globalIdx + 1, ctx.simdShuffleDown(mine, 16));
            out.set(3 * ctx.globalIdx + 2, ctx.simdShuffleDown(mine, 0));
        });
        for (int i = 0; i < 128; i++) {
            int group = i / 64;
            int local = i % 64;
            int lane = local % 32;
            float mine = 1000f * group + local;
            assertEquals(lane + 1 < 32 ? mine + 1 : mine, out.get(3 * i), "delta 1, work-item " + i);
            assertEquals(lane + 16 < 32 ? mine + 16 : mine, out.get(3 * i + 1), "delta 16, work-item " + i);
            assertEquals(mine, out.get(3 * i + 2), "delta 0, work-item " + i);
        }
    }

    @ParameterizedTest
    @EnumSource(KernelEmulator.Schedule.class)
    void broadcastAndSumCoverExactlyTheWarp(KernelEmulator.Schedule schedule) {
        FloatArray first = new FloatArray(96);
        FloatArray sum = new FloatArray(96);
        KernelEmulator.launch(96, 96, schedule, ctx -> {
            first.set(ctx.globalIdx, ctx.simdBroadcastFirst(ctx.localIdx * 2f));
            sum.set(ctx.globalIdx, ctx.simdSum(ctx.localIdx));
        });
        for (int i = 0; i < 96; i++) {
            int warp = i / 32;
            float expectedSum = 0f;
            for (int l = 32 * warp; l < 32 * warp + 32; l++) {
                expectedSum += l;
            }
            assertEquals(64f * warp, first.get(i), "work-item " + i);
            assertEquals(expectedSum, sum.get(i), "work-item " + i);
        }
    }

    @ParameterizedTest
    @EnumSource(KernelEmulator.Schedule.class)
    void warpsRunIndependentlyBetweenBarriers(KernelEmulator.Schedule schedule) {
        // warp 0 does three shuffles while warp 1 does one; a barrier then joins them
        FloatArray out = new FloatArray(64);
        KernelEmulator.launch(64, 64, schedule, ctx -> {
            float x = ctx.localIdx;
            int rounds = ctx.localIdx < 32 ? 3 : 1;
            for (int r = 0; r < rounds; r++) {
                x = ctx.simdShuffleDown(x, 1);
            }
            float[] buf = ctx.allocateFloatLocalArray(64);
            buf[ctx.localIdx] = x;
            ctx.localBarrier();
            out.set(ctx.localIdx, buf[63 - ctx.localIdx]);
        });
        for (int i = 0; i < 64; i++) {
            int src = 63 - i;
            int lane = src % 32;
            float expected = src < 32 ? Math.min(lane + 3, 31) : Math.min(lane + 1, 31) + 32;
            assertEquals(expected, out.get(i), "work-item " + i);
        }
    }

    @Test
    void aShuffleSkippedByOneLaneIsReported() {
        AssertionError e = assertThrows(AssertionError.class, () -> KernelEmulator.launch(32, 32, KernelEmulator.Schedule.FORWARD, ctx -> {
            if (ctx.localIdx != 5) {
                ctx.simdShuffleDown(1f, 1);
            }
        }));
        assertTrue(e.getMessage().contains("warp divergence"), e.getMessage());
    }

    @Test
    void lanesAtDifferentWarpOperationsAreReported() {
        AssertionError e = assertThrows(AssertionError.class, () -> KernelEmulator.launch(32, 32, KernelEmulator.Schedule.REVERSE, ctx -> {
            if (ctx.localIdx < 16) {
                ctx.simdShuffleDown(1f, 1);
            } else {
                ctx.simdBroadcastFirst(1f);
            }
        }));
        assertTrue(e.getMessage().contains("different warp operations"), e.getMessage());
    }

    @Test
    void warpOperationsNeedWholeWarps() {
        AssertionError e = assertThrows(AssertionError.class, () -> KernelEmulator.launch(48, 48, KernelEmulator.Schedule.FORWARD,
                ctx -> ctx.simdBroadcastFirst(1f)));
        assertTrue(e.getMessage().contains("localSize=48"), e.getMessage());
    }

    @Test
    void aPlainKernelContextRefusesWarpOperations() {
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                () -> new KernelContext().simdShuffleDown(1f, 1));
        assertTrue(e.getMessage().contains("simdShuffleDown"), e.getMessage());
    }
}
