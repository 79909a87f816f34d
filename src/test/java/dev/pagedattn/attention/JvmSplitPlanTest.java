package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The split-K rule and the work items it makes. */
class JvmSplitPlanTest {

    @Test
    void singleSequenceSplitsSoThatEveryCoreHasWork() {
        // B = 1, 8 KV heads, 16 threads, 8k tokens: 8 groups want 128 items -> 16 chunks of 512.
        assertEquals(512, JvmSplitPlan.chunkTokens(1, 8, 8192, 16, 16));
        // Two threads want 16 items: 2 chunks of 4096.
        assertEquals(4096, JvmSplitPlan.chunkTokens(1, 8, 8192, 16, 2));
        // Never below MIN_CHUNK_TOKENS, always whole blocks.
        assertEquals(JvmSplitPlan.MIN_CHUNK_TOKENS, JvmSplitPlan.chunkTokens(1, 1, 1000, 16, 64));
        assertEquals(264, JvmSplitPlan.chunkTokens(1, 1, 1000, 24, 64));
    }

    @Test
    void largeBatchesAreNotSplit() {
        // 8 x 8 groups = 64 >= 8 items per thread x 8 threads: one item per group.
        assertEquals(8192, JvmSplitPlan.chunkTokens(8, 8, 8192, 16, 8));
        assertEquals(4096, JvmSplitPlan.chunkTokens(32, 8, 4096, 16, 16));
        // A context shorter than a chunk is one item, rounded to whole blocks.
        assertEquals(112, JvmSplitPlan.chunkTokens(1, 8, 100, 16, 16));
    }

    /**
     * Random batches and thread counts: the items of each (sequence, KV head) cover its tokens
     * exactly once, in order, from block boundaries; a group with several chunks has its own
     * contiguous run of partial slots, one per chunk; single-chunk groups write directly.
     */
    @Test
    void itemsCoverEveryTokenOfEveryHeadOnce() {
        long seed = TestSeeds.fresh("itemsCoverEveryTokenOfEveryHeadOnce");
        SplittableRandom random = new SplittableRandom(seed);
        for (int round = 0; round < 200; round++) {
            int numKvHeads = 1 + random.nextInt(8);
            int blockSize = 1 + random.nextInt(32);
            int numSeqs = 1 + random.nextInt(6);
            int threads = 1 + random.nextInt(32);
            int[] lens = new int[numSeqs];
            int[][] tables = new int[numSeqs][];
            int numBlocks = 0;
            for (int s = 0; s < numSeqs; s++) {
                lens[s] = 1 + random.nextInt(random.nextBoolean() ? 40 : 5000);
                tables[s] = new int[(lens[s] + blockSize - 1) / blockSize];
                for (int j = 0; j < tables[s].length; j++) {
                    tables[s][j] = numBlocks++;
                }
            }
            KvCacheConfig config = KvCacheConfig.of(numBlocks, blockSize, numKvHeads, 8, KvDtype.FP32);
            DecodeBatch batch = DecodeBatch.of(config, tables, lens);
            JvmSplitPlan plan = new JvmSplitPlan(new AttentionSpec(numKvHeads * 2, numKvHeads, 8, 1f));
            plan.build(batch, threads);
            String what = "round " + round + " lens=" + Arrays.toString(lens) + " kvHeads=" + numKvHeads + " blockSize="
                    + blockSize + " threads=" + threads + " chunk=" + plan.chunkTokens() + " seed=" + seed;
            assertEquals(0, plan.chunkTokens() % blockSize, what);
            int[] covered = new int[numSeqs * numKvHeads]; // next token expected per group
            boolean[] slotUsed = new boolean[plan.numItems() + 1];
            for (int item = 0; item < plan.numItems(); item++) {
                int group = plan.group(item);
                assertEquals(plan.seq(item) * numKvHeads + plan.kvHead(item), group, what);
                assertEquals(covered[group], plan.fromToken(item), what + ": item " + item + " starts out of order");
                assertEquals(0, plan.fromToken(item) % blockSize, what);
                assertTrue(plan.toToken(item) > plan.fromToken(item), what);
                covered[group] = plan.toToken(item);
                int chunk = plan.fromToken(item) / plan.chunkTokens();
                if (plan.numChunks(group) == 1) {
                    assertEquals(JvmSplitPlan.NO_PARTIAL, plan.slot(item), what);
                } else {
                    assertEquals(plan.firstSlot(group) + chunk, plan.slot(item), what);
                    assertTrue(!slotUsed[plan.slot(item)], what + ": slot " + plan.slot(item) + " used twice");
                    slotUsed[plan.slot(item)] = true;
                }
            }
            for (int s = 0; s < numSeqs; s++) {
                for (int h = 0; h < numKvHeads; h++) {
                    assertEquals(lens[s], covered[s * numKvHeads + h], what + ": seq " + s + " head " + h);
                }
            }
        }
    }
}
