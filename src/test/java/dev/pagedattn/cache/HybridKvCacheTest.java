package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.quant.KvScales;
import dev.pagedattn.quant.QuantFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link HybridKvCache}: layers grouped by window, sequences in lockstep over the groups, the windowed groups' blocks
 * released before each append while the full layers keep theirs, all-or-nothing appends, and bad input named.
 */
class HybridKvCacheTest {
    private static final int F = DecodeBatch.NO_WINDOW;
    private static final int BS = 4;

    /** gpt-oss's pattern on four layers: windows on the even ones. */
    private static HybridKvCache gptOssLike(int window, int windowBlocks, int fullBlocks) {
        return HybridKvCache.of(new int[] {window, F, window, F}, new int[] {windowBlocks, fullBlocks}, BS, 1, 2, KvDtype.FP32);
    }

    @Test
    void groupsLayersByWindowInTheOrderTheWindowsFirstAppear() {
        HybridKvCache cache = HybridKvCache.of(new int[] {F, 8, 8, F, 16, 8}, new int[] {4, 5, 6}, BS, 2, 8, KvDtype.FP16);
        assertArrayEquals(new int[] {F, 8, 16}, HybridKvCache.groupWindows(new int[] {F, 8, 8, F, 16, 8}));
        assertEquals(3, cache.numGroups());
        assertArrayEquals(new int[] {0, 3}, cache.layers(0));
        assertArrayEquals(new int[] {1, 2, 5}, cache.layers(1));
        assertArrayEquals(new int[] {4}, cache.layers(2));
        assertEquals(16, cache.window(2));
        assertEquals(1, cache.groupOf(5));
        assertEquals(2, cache.localLayer(5));
        assertEquals(8, cache.layerWindow(5));
        assertEquals(3, cache.group(1).config().numLayers());
        assertEquals(5, cache.group(1).config().numBlocks());
        assertEquals(cache.group(0).config().totalBytes() + cache.group(1).config().totalBytes()
                + cache.group(2).config().totalBytes(), cache.totalBytes());
    }

    @Test
    void windowedGroupsReleaseBeforeEachAppendWhileTheFullLayersKeepEverything() throws Exception {
        int window = 6;
        HybridKvCache cache = gptOssLike(window, 4, 20);
        int seq = cache.createSequence();
        int bound = HybridKvCache.windowBlocks(window, BS, 1); // ceil(7 / 4) + 1 = 3
        assertEquals(3, bound);
        for (int id = 1; id <= 60; id++) {
            append(cache, seq, id);
            PageTable windowed = cache.group(0).pageTable(seq);
            assertTrue(windowed.numBlocks() - windowed.numReleased() <= bound,
                    "after token " + id + " the windowed group holds " + (windowed.numBlocks() - windowed.numReleased()));
            cache.verify();
        }
        assertEquals(60, cache.length(seq));
        assertEquals(15, cache.group(1).numUsedBlocks(), "the full layers hold all 60 tokens");
        for (int p = 0; p < 60; p++) { // full layers read every position
            assertEquals(Tokens.k(p + 1, 1, 0, 1), cache.readK(seq, 1, p, 0, 1));
            assertEquals(Tokens.v(p + 1, 3, 0, 0), cache.readV(seq, 3, p, 0, 0));
        }
        int held = cache.group(0).firstHeldPosition(seq);
        assertTrue(held > 0 && held <= 60 - window + 1, "first held position " + held);
        for (int p = held; p < 60; p++) { // windowed layers read their window
            assertEquals(Tokens.k(p + 1, 2, 0, 0), cache.readK(seq, 2, p, 0, 0));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.readK(seq, 0, 0, 0, 0));
        assertTrue(e.getMessage().contains("position=0"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> cache.write(seq, 2, 0, new float[2], new float[2]));
        cache.write(seq, 1, 0, new float[] {7, 8}, new float[] {9, 10}); // a full layer's old position stays writable
        assertEquals(8f, cache.readK(seq, 1, 0, 0, 1));
    }

    @Test
    void anAppendTakesBlocksFromEveryGroupOrFromNone() throws Exception {
        HybridKvCache cache = gptOssLike(4, 8, 3);
        int a = cache.createSequence();
        for (int id = 1; id <= 12; id++) {
            append(cache, a, id); // 3 full blocks: the full group's pool is used up
        }
        long used = cache.numUsedBlocks();
        int[] windowTable = cache.group(0).pageTable(a).blocks();
        assertFalse(cache.canAppend(a, 1));
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.append(a, 1));
        assertEquals(1, e.numNeeded());
        assertEquals(0, e.numAllocatable());
        assertEquals(12, cache.length(a));
        assertEquals(used, cache.numUsedBlocks());
        assertArrayEquals(windowTable, cache.group(0).pageTable(a).blocks(), "the refused append released nothing");
        cache.verify();
    }

    @Test
    void whatTheWindowReleasesCountsTowardsTheAppend() throws Exception {
        HybridKvCache cache = gptOssLike(4, 2, 10);
        int a = cache.createSequence();
        for (int id = 1; id <= 8; id++) {
            append(cache, a, id); // the windowed group's 2 blocks are full
        }
        assertEquals(0, cache.group(0).numAllocatableBlocks());
        assertTrue(cache.canAppend(a, 1), "block 0 (positions 0..3) lies wholly before the window of position 7");
        append(cache, a, 9);
        assertEquals(4, cache.group(0).firstHeldPosition(a));
        cache.verify();
    }

    @Test
    void aSharedBlockOutsideTheWindowStaysWithItsOtherOwner() throws Exception {
        HybridKvCache cache = gptOssLike(4, 3, 10);
        int a = cache.createSequence();
        for (int id = 1; id <= 8; id++) {
            append(cache, a, id);
        }
        int b = cache.fork(a);
        append(cache, a, 9);  // the pool's third block: a releases block 0, which b keeps
        assertEquals(4, cache.group(0).firstHeldPosition(a));
        assertEquals(0, cache.group(0).firstHeldPosition(b));
        assertEquals(Tokens.k(1, 0, 0, 0), cache.readK(b, 0, 0, 0, 0));
        assertEquals(0, cache.group(0).numAllocatableBlocks());
        assertTrue(cache.canAppend(b, 1), "block 0 is b's alone now: b's release frees it for b's next block");
        assertFalse(cache.canAppend(a, 5), "a can release nothing more and needs a fourth block");
        cache.free(b);
        assertEquals(2, cache.group(0).numUsedBlocks());
        assertEquals(1, cache.numSequences());
        cache.verify();
    }

    @Test
    void refusesWhatBreaksTheLockstepAndNamesBadInput() {
        HybridKvCache cache = gptOssLike(4, 4, 4);
        cache.group(1).createSequence(); // behind the hybrid cache's back
        AssertionError broken = assertThrows(AssertionError.class, cache::verify);
        assertTrue(broken.getMessage().contains("group 1"), broken.getMessage());
        assertThrows(IllegalStateException.class, cache::createSequence);

        assertMessage("windows=[]", () -> HybridKvCache.of(new int[0], new int[0], BS, 1, 2, KvDtype.FP16));
        assertMessage("windows[1]=0", () -> HybridKvCache.of(new int[] {F, 0}, new int[] {1, 1}, BS, 1, 2, KvDtype.FP16));
        assertMessage("groupBlocks.length=1", () -> HybridKvCache.of(new int[] {F, 8}, new int[] {1}, BS, 1, 2, KvDtype.FP16));
        assertMessage("numBlocks=0", () -> HybridKvCache.of(new int[] {F, 8}, new int[] {1, 0}, BS, 1, 2, KvDtype.FP16));
        assertMessage("scales numLayers=3", () -> HybridKvCache.of(new int[] {F, 8}, new int[] {1, 1}, BS, 1, 2,
                KvDtype.FP8_E4M3, KvScales.unit(QuantFormat.FP8_E4M3, 3, 1)));
        HybridKvCache ok = gptOssLike(4, 4, 4);
        assertMessage("layer=4", () -> ok.groupOf(4));
        assertMessage("group=2", () -> ok.window(2));
        assertMessage("seq=9", () -> ok.free(9));
        assertMessage("numTokens=-1", () -> ok.append(ok.createSequence(), -1));
        assertMessage("window=0", () -> HybridKvCache.windowBlocks(0, BS, 1));
    }

    @Test
    void eachGroupTakesItsLayersScales() {
        Random random = TestRandom.create("eachGroupTakesItsLayersScales");
        float[][] k = new float[4][2];
        float[][] v = new float[4][2];
        for (int l = 0; l < 4; l++) {
            for (int h = 0; h < 2; h++) {
                k[l][h] = 0.5f + random.nextFloat();
                v[l][h] = 0.5f + random.nextFloat();
            }
        }
        KvScales scales = KvScales.perHead(QuantFormat.INT8, k, v);
        HybridKvCache cache = HybridKvCache.of(new int[] {8, F, 8, F}, new int[] {2, 2}, BS, 2, 4, KvDtype.INT8, scales);
        for (int l = 0; l < 4; l++) {
            KvScales group = cache.group(cache.groupOf(l)).scales();
            for (int h = 0; h < 2; h++) {
                assertEquals(k[l][h], group.k(cache.localLayer(l), h), "layer " + l + " head " + h);
                assertEquals(v[l][h], group.v(cache.localLayer(l), h), "layer " + l + " head " + h);
            }
        }
    }

    @Test
    void forMemoryGivesTheWindowedGroupsWhatTheirSequencesNeedAndTheFullLayersTheRest() {
        int[] windows = {128, F, 128, F, 128, F};
        long block = 2L * 16 * 8 * 64 * 2; // one block of one layer, K and V, fp16
        HybridKvCache cache = HybridKvCache.forMemory(1_000_000_000L, 16, 8, 64, KvDtype.FP16, windows, 32, 512);
        int windowBlocks = HybridKvCache.windowBlocks(128, 16, 512);
        assertEquals(41, windowBlocks); // ceil((128 + 512) / 16) + 1
        assertEquals(32 * windowBlocks, cache.group(0).config().numBlocks());
        assertEquals((1_000_000_000L - 32L * windowBlocks * 3 * block) / (3 * block), cache.group(1).config().numBlocks());
        assertTrue(cache.totalBytes() <= 1_000_000_000L);
        HybridKvCache windowedOnly = HybridKvCache.forMemory(100_000_000L, 16, 8, 64, KvDtype.FP16, new int[] {128, 64}, 4, 16);
        assertTrue(windowedOnly.totalBytes() <= 100_000_000L && windowedOnly.totalBytes() > 99_000_000L,
                "without full layers the windowed groups share the budget: " + windowedOnly.totalBytes());
        assertMessage("leaves no block for the full layers",
                () -> HybridKvCache.forMemory(32L * windowBlocks * 3 * block, 16, 8, 64, KvDtype.FP16, windows, 32, 512));
        assertMessage("maxSequences=0", () -> HybridKvCache.forMemory(1L << 30, 16, 8, 64, KvDtype.FP16, windows, 0, 1));
    }

    @Test
    void aSwappedSequenceComesBackInEveryGroupOrInNone() throws Exception {
        HybridKvCache cache = gptOssLike(6, 6, 12);
        int a = cache.createSequence();
        for (int id = 1; id <= 30; id++) {
            append(cache, a, id);
        }
        int windowedHeld = cache.group(0).pageTable(a).numBlocks() - cache.group(0).pageTable(a).numReleased();
        // host memory for the pools' bytes again: each group gets host blocks in proportion to its pool
        assertArrayEquals(new int[] {6, 12}, cache.enableSwapSpace(cache.totalBytes()));
        HybridKvCache.Swapped s = cache.swapOut(a);
        assertEquals(6 - windowedHeld, cache.group(0).numFreeSwapBlocks());
        assertEquals(12 - 8, cache.group(1).numFreeSwapBlocks());
        assertEquals(30, s.numTokens());
        assertEquals(0, cache.numUsedBlocks());
        int b = cache.createSequence();
        for (int id = 100; id < 140; id++) {
            append(cache, b, id);                                // 10 of the full group's 12 blocks
        }
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class, () -> cache.swapIn(s));
        assertEquals(8, e.numNeeded(), "the full group's 8 blocks");
        assertEquals(1, cache.numSequences());
        cache.free(b);
        int back = cache.swapIn(s);
        s.close();
        assertEquals(12, cache.group(1).numFreeSwapBlocks(), "closed: the host blocks are free again");
        assertEquals(windowedHeld, cache.group(0).numUsedBlocks(), "the windowed group gets back only what it held");
        // the last append (at length 29) released the blocks before position 23: 0..4
        assertEquals(20, cache.group(0).firstHeldPosition(back), "its released run kept");
        for (int p = 0; p < 30; p++) {
            assertEquals(Tokens.k(p + 1, 1, 0, 1), cache.readK(back, 1, p, 0, 1), "full layer, position " + p);
        }
        for (int p = cache.group(0).firstHeldPosition(back); p < 30; p++) {
            assertEquals(Tokens.k(p + 1, 2, 0, 0), cache.readK(back, 2, p, 0, 0), "windowed layer, position " + p);
        }
        cache.verify();
    }

    private static void append(HybridKvCache cache, int seq, int id) throws OutOfBlocksException {
        int pos = cache.append(seq, 1);
        KvCacheConfig c = cache.group(0).config();
        for (int layer = 0; layer < cache.numLayers(); layer++) {
            cache.write(seq, layer, pos, Tokens.k(c, layer, id), Tokens.v(c, layer, id));
        }
    }

    private interface Call {
        void run() throws Exception;
    }

    private static void assertMessage(String part, Call call) {
        Exception e = assertThrows(Exception.class, call::run);
        assertTrue(e instanceof IllegalArgumentException, e.toString());
        assertTrue(e.getMessage().contains(part), "expected '" + part + "' in: " + e.getMessage());
    }
}
