package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.KvPool;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.kernels.DecodeParams;
import dev.pagedattn.kernels.KernelEmulator;
import dev.pagedattn.kernels.ScatterKernels;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * What a decode plan does for a latent (MLA) cache besides its kernel: the device mirror of the one pool follows the host
 * pool through staging ({@link PlanParts#stage}, K rows only) and the latent scatter (run by the emulator) after appends,
 * copy-on-write forks and writes, bit for bit; and the step's rows ({@link ShardRows}) keep queries {@code headDim} wide
 * and outputs (and the log-sum-exps after them) at the value width.
 */
class LatentStagingTest {
    private static final int LATENT = 48;
    private static final int ROPE = 16;
    private static final int DIM = LATENT + ROPE;
    private static final int BLOCK = 4;

    @Test
    void theMirrorOfTheOnePoolFollowsItsHostArray() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("LatentStagingTest");
        SplittableRandom r = new SplittableRandom(seed);
        KvCache cache = new KvCache(KvCacheConfig.latent(12, BLOCK, LATENT, ROPE, KvDtype.FP16, 1));
        KvCacheConfig config = cache.config();
        assertSame(cache.keys(0).array(), cache.values(0).array(), "a latent cache's values are its keys' pool");
        cache.dirtySlots().track();
        HalfFloatArray mirror = new HalfFloatArray(config.shardElements());
        mirror.init(new HalfFloat(0f));  // the first execution uploads the (zeroed) pool
        cache.dirtySlots().drain(0);
        int a = cache.createSequence();
        cache.appendTokens(a, random(r, 9 * DIM), null);
        sync(cache, mirror, 4, false);
        int b = cache.fork(a);                               // shares a's partly filled last block
        cache.appendTokens(b, random(r, 2 * DIM), null);     // copy-on-write
        cache.appendTokens(a, random(r, DIM), null);
        sync(cache, mirror, 4, true);                        // several rounds; the packed layout (K rows, then V's room)
        cache.writeTokens(b, 0, 3, 2, random(r, 2 * DIM), null);
        sync(cache, mirror, 2, false);
        KvPool pool = cache.keys(0);
        for (int i = 0; i < config.shardElements(); i++) {
            assertEquals(pool.get(i), mirror.get(i).getFloat32(), "element " + i + " seed=" + seed);
        }
    }

    @Test
    void stepRowsKeepQueriesAtTheHeadDimAndOutputsAtTheValueWidth() {
        int heads = 3;
        ShardRows rows = new ShardRows(1, 4, heads * DIM, heads * LATENT, heads, null);
        assertEquals(4 * heads * DIM, rows.q(0).getSize());
        assertEquals(4 * heads * LATENT, rows.lseAt(), "log-sum-exps after four output rows at the value width");
        assertEquals(4 * heads * LATENT + 4 * heads, rows.out(0).getSize());
        FloatArray userQ = new FloatArray(2 * heads * DIM);
        for (int i = 0; i < userQ.getSize(); i++) {
            userQ.set(i, i);
        }
        rows.load(userQ, 2);
        for (int i = 0; i < 2 * heads * DIM; i++) {
            assertEquals(i, rows.q(0).get(i));
        }
        for (int i = 0; i < rows.out(0).getSize(); i++) {
            rows.out(0).set(i, -i);
        }
        FloatArray userOut = new FloatArray(2 * heads * LATENT);
        rows.store(userOut, 2);
        for (int i = 0; i < userOut.getSize(); i++) {
            assertEquals(-i, userOut.get(i), "output element " + i);
        }
        FloatArray lse = new FloatArray(2 * heads);
        rows.storeLse(lse, 2);
        assertEquals(-(4 * heads * LATENT), lse.get(0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ShardRows.requireCallRows(null,
                new FloatArray(2 * heads * DIM), new FloatArray(2 * heads * DIM), 2L * heads * DIM, 2L * heads * LATENT, "numSeqs"));
        assertTrue(e.getMessage().startsWith("out"), e.getMessage());
        ShardRows.requireCallRows(null, new FloatArray(2 * heads * DIM), new FloatArray(2 * heads * LATENT), 2L * heads * DIM,
                2L * heads * LATENT, "numSeqs");
    }

    /** A plan's step: stage {@code rows} dirty slots at a time (K rows only), scatter them into the one pool. */
    private static void sync(KvCache cache, HalfFloatArray mirror, int rows, boolean oneStage) {
        int[] dirty = cache.dirtySlots().drain(0);
        IntArray params = new IntArray(DecodeParams.SIZE);
        IntArray slotOffsets = new IntArray(rows);
        params.set(DecodeParams.STAGE_V, oneStage ? rows * DIM : 0);
        for (int done = 0; done < dirty.length; done += rows) {
            int staged = Math.min(rows, dirty.length - done);
            params.set(DecodeParams.NUM_NEW_SLOTS, staged);
            HalfFloatArray stageK = new HalfFloatArray((oneStage ? 2 : 1) * rows * DIM);
            HalfFloatArray stageV = oneStage ? stageK : new HalfFloatArray(rows * DIM);
            stageK.init(new HalfFloat(Float.NaN));
            PlanParts.stage(cache, 0, 0, dirty, done, staged, slotOffsets, 0, stageK, stageV, oneStage ? 2L * rows * DIM : 0);
            KernelEmulator.launch(64, 32, KernelEmulator.Schedule.REVERSE, ctx -> ScatterKernels.scatterLatentF16(ctx, mirror, stageK,
                    slotOffsets, params, DIM));
        }
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextDouble(-1, 1);
        }
        return a;
    }
}
