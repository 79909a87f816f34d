package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * A device mirror of a layer split into KV-head shards stays equal to the host pools: the plans'
 * per-shard staging ({@link PlanParts#stage}) and scatter, run by the emulator after appends,
 * copy-on-write forks and writes, leave every shard's mirror bit for bit equal to its host array.
 */
class ShardedStagingTest {
    private static final int HEADS = 6;
    private static final int DIM = 8;
    private static final int BLOCK = 4;
    private static final int BLOCKS = 12;

    @Test
    void everyShardsMirrorFollowsItsHostArray() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("ShardedStagingTest");
        SplittableRandom r = new SplittableRandom(seed);
        KvCache cache = new KvCache(new KvCacheConfig(BLOCKS, BLOCK, HEADS, DIM, KvDtype.FP16, 1, BLOCKS * BLOCK * 2 * DIM));
        KvCacheConfig config = cache.config();
        assertEquals(3, config.poolShards(), "two heads per array");
        cache.dirtySlots().track();
        int shards = config.poolShards();
        int width = config.headsPerShard() * DIM;
        HalfFloatArray[] mirrorK = new HalfFloatArray[shards];
        HalfFloatArray[] mirrorV = new HalfFloatArray[shards];
        for (int s = 0; s < shards; s++) {  // the first execution uploads the (zeroed) pools
            mirrorK[s] = new HalfFloatArray(config.shardElements());
            mirrorV[s] = new HalfFloatArray(config.shardElements());
            mirrorK[s].init(new HalfFloat(0f));
            mirrorV[s].init(new HalfFloat(0f));
        }
        cache.dirtySlots().drain(0);
        int a = cache.createSequence();
        cache.appendTokens(a, random(r, 9 * HEADS * DIM), random(r, 9 * HEADS * DIM));
        sync(cache, mirrorK, mirrorV, 4, width, false, false);
        int b = cache.fork(a);                                  // shares a's partly filled last block
        cache.appendTokens(b, random(r, 2 * HEADS * DIM), random(r, 2 * HEADS * DIM)); // copy-on-write
        cache.appendTokens(a, random(r, HEADS * DIM), random(r, HEADS * DIM));
        sync(cache, mirrorK, mirrorV, 4, width, true, true);    // more dirty slots than staging rows: several rounds;
                                                                // a packed plan's layout (slots in params, K and V in one stage)
        cache.appendTokens(b, random(r, 3 * HEADS * DIM), random(r, 3 * HEADS * DIM));
        sync(cache, mirrorK, mirrorV, 2, width, false, true);   // a decode plan's bulk stage: its own offsets, K and V in one stage
        for (int s = 0; s < shards; s++) {
            KvPool k = cache.keys(0, s);
            KvPool v = cache.values(0, s);
            for (int i = 0; i < config.shardElements(); i++) {
                assertEquals(k.get(i), mirrorK[s].get(i).getFloat32(), "K shard " + s + " element " + i + " seed=" + seed);
                assertEquals(v.get(i), mirrorV[s].get(i).getFloat32(), "V shard " + s + " element " + i + " seed=" + seed);
            }
        }
    }

    /**
     * A prefill's staging of many slots, split over a {@link RowCopier}'s threads, fills each shard's stage arrays and slot
     * offsets exactly as one thread does (the shares' rows land at their own places, none is skipped or copied twice).
     */
    @Test
    void stagingOnSeveralThreadsMatchesOneThread() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("ShardedStagingTest.threads");
        SplittableRandom r = new SplittableRandom(seed);
        int heads = 8;
        int dim = 128;
        KvCache cache = new KvCache(new KvCacheConfig(64, 16, heads, dim, KvDtype.FP16, 1, 64 * 16 * 4 * dim));
        KvCacheConfig config = cache.config();
        assertEquals(2, config.poolShards(), "four heads per array");
        cache.dirtySlots().track();
        int a = cache.createSequence();
        int b = cache.createSequence();
        cache.appendTokens(a, random(r, 300 * heads * dim), random(r, 300 * heads * dim));
        cache.appendTokens(b, random(r, 700 * heads * dim), random(r, 700 * heads * dim));
        int[] dirty = cache.dirtySlots().drain(0);
        int from = 37;                      // a later execution's share of the dirty slots
        int rows = dirty.length - from;     // 963 rows of 4 KB (K and V of four heads): four shares on four threads
        int width = config.headsPerShard() * dim;
        assertEquals(4, RowCopier.items(rows, 4L * width, 4), "the copy is split");
        try (RowCopier copier = new RowCopier(4)) {
            for (int s = 0; s < config.poolShards(); s++) {
                IntArray offsets = new IntArray(rows);
                HalfFloatArray stageK = new HalfFloatArray(rows * width);
                HalfFloatArray stageV = new HalfFloatArray(rows * width);
                offsets.init(-1);
                stageK.init(new HalfFloat(Float.NaN));
                stageV.init(new HalfFloat(Float.NaN));
                PlanParts.stage(cache, 0, s, dirty, from, rows, offsets, stageK, stageV, 0, copier);
                IntArray wantOffsets = new IntArray(rows);
                HalfFloatArray wantK = new HalfFloatArray(rows * width);
                HalfFloatArray wantV = new HalfFloatArray(rows * width);
                PlanParts.stage(cache, 0, s, dirty, from, rows, wantOffsets, wantK, wantV);
                for (int i = 0; i < rows; i++) {
                    assertEquals(wantOffsets.get(i), offsets.get(i), "slot offset " + i + " of shard " + s + " seed=" + seed);
                }
                for (int i = 0; i < rows * width; i++) {
                    assertEquals(wantK.get(i).getHalfFloatValue(), stageK.get(i).getHalfFloatValue(), "K " + i + " shard " + s + " seed=" + seed);
                    assertEquals(wantV.get(i).getHalfFloatValue(), stageV.get(i).getHalfFloatValue(), "V " + i + " shard " + s + " seed=" + seed);
                }
            }
            assertEquals(true, copier.started(), "helpers ran");
        }
    }

    /**
     * What a plan's step does with the dirty slots: stage {@code rows} at a time per shard, scatter per shard;
     * {@code slotsInParams}: the slots' offsets inside params ({@code -Dpagedattn.tornado.packedInputs}); {@code oneStage}:
     * the V rows after the K rows of one stage array (packed inputs, and a decode plan's bulk stage).
     */
    private static void sync(KvCache cache, HalfFloatArray[] mirrorK, HalfFloatArray[] mirrorV, int rows, int width,
                             boolean slotsInParams, boolean oneStage) {
        int[] dirty = cache.dirtySlots().drain(0);
        int slotBase = slotsInParams ? DecodeParams.SIZE + 3 : 0;
        IntArray params = new IntArray(DecodeParams.SIZE + (slotsInParams ? 3 + rows : 0));
        IntArray slotOffsets = slotsInParams ? params : new IntArray(rows);
        params.set(DecodeParams.SLOTS, slotBase);
        params.set(DecodeParams.STAGE_V, oneStage ? rows * width : 0);
        for (int done = 0; done < dirty.length; done += rows) {
            int staged = Math.min(rows, dirty.length - done);
            params.set(DecodeParams.NUM_NEW_SLOTS, staged);
            for (int s = 0; s < mirrorK.length; s++) {
                HalfFloatArray stageK = new HalfFloatArray((oneStage ? 2 : 1) * rows * width);
                HalfFloatArray stageV = oneStage ? stageK : new HalfFloatArray(rows * width);
                PlanParts.stage(cache, 0, s, dirty, done, staged, slotOffsets, slotBase, stageK, stageV, oneStage ? 2L * rows * width : 0);
                HalfFloatArray k = mirrorK[s];
                HalfFloatArray v = mirrorV[s];
                KernelEmulator.launch(64, 32, KernelEmulator.Schedule.REVERSE, ctx -> ScatterKernels.scatterF16(ctx, k, v, stageK,
                        stageV, slotOffsets, params, cache.config().headsPerShard(), DIM, BLOCK));
            }
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
