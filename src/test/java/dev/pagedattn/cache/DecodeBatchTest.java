package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;

/** Export of page tables for a decode: padded tables, lengths, and FlashInfer's CSR form. */
class DecodeBatchTest {

    private static KvCache randomCache(Random random, int blockSize, int[] lengths, int[] seqs) throws Exception {
        KvCacheConfig c = KvCacheConfig.of(200, blockSize, 1, 1, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        RandomKv.shuffleFreeBlocks(cache, random.nextLong());
        for (int i = 0; i < seqs.length; i++) {
            // sometimes a fork, so tables share blocks
            if (i > 0 && random.nextInt(3) == 0 && lengths[i - 1] <= lengths[i]) {
                seqs[i] = cache.fork(seqs[i - 1]);
                cache.append(seqs[i], lengths[i] - lengths[i - 1]);
            } else {
                seqs[i] = cache.createSequence();
                cache.append(seqs[i], lengths[i]);
            }
        }
        return cache;
    }

    /** 1-6 sequences of random lengths (sometimes forks) in a cache of a random block size of 1-6 tokens. */
    private record RandomBatch(KvCache cache, int[] seqs, int[] lengths, int blockSize) {
        static RandomBatch of(Random random) throws Exception {
            int n = 1 + random.nextInt(6);
            int[] seqs = new int[n];
            int blockSize = 1 + random.nextInt(6);
            int[] lengths = randomLengths(random, n, blockSize);
            return new RandomBatch(randomCache(random, blockSize, lengths, seqs), seqs, lengths, blockSize);
        }
    }

    private static int[] randomLengths(Random random, int n, int blockSize) {
        int[] lengths = new int[n];
        for (int i = 0; i < n; i++) {
            // exact multiples of the block size are the edge case for last_page_len
            lengths[i] = random.nextBoolean() ? (1 + random.nextInt(4)) * blockSize : 1 + random.nextInt(5 * blockSize);
        }
        return lengths;
    }

    /** skipBlocks: each row's table shifted by its skip, its length shortened by the skipped tokens; bad skips named. */
    @RepeatedTest(3)
    void skipBlocksShiftsEachRowAndRefusesWhatLeavesNothing() throws Exception {
        Random random = TestRandom.create("DecodeBatchTest.skipBlocksShiftsEachRowAndRefusesWhatLeavesNothing");
        RandomBatch r = RandomBatch.of(random);
        int n = r.seqs().length;
        int[] seqs = r.seqs();
        int blockSize = r.blockSize();
        int[] lengths = r.lengths();
        KvCache cache = r.cache();
        DecodeBatch batch = cache.batch(seqs);
        int[] skip = new int[n];
        for (int i = 0; i < n; i++) {
            skip[i] = random.nextInt((lengths[i] - 1) / blockSize + 1);
        }
        DecodeBatch skipped = batch.skipBlocks(skip);
        for (int i = 0; i < n; i++) {
            assertEquals(lengths[i] - skip[i] * blockSize, skipped.contextLen(i), "row " + i);
            for (int j = 0; j < cache.config().blocksFor(skipped.contextLen(i)); j++) {
                assertEquals(batch.block(i, j + skip[i]), skipped.block(i, j), "row " + i + " block " + j);
            }
        }
        skipped.requireFits(cache.config());
        int last = n - 1;
        int[] tooMany = skip.clone();
        tooMany[last] = (lengths[last] + blockSize - 1) / blockSize;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> batch.skipBlocks(tooMany));
        assertTrue(e.getMessage().startsWith("skip[" + last + "]=" + tooMany[last]), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> batch.skipBlocks(new int[n + 1]));
        int chunked = AttentionWindow.chunked(4 * blockSize);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> skipped.window(chunked)).getMessage().contains("skip"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> batch.window(chunked).skipBlocks(skip)).getMessage()
                .contains("chunk"));
        cache.free(seqs[last]);
        assertThrows(IllegalArgumentException.class, () -> skipped.requireFits(cache.config()), "a freed sequence is still stale");
    }

    /**
     * selectBlocks: each row's table the selected blocks in order, its length their tokens (the sequence's last block its
     * own count, the others whole); bad selections named; no window, skip or second selection on top; still stale-checked.
     */
    @RepeatedTest(3)
    void selectBlocksKeepsTheChosenBlocksAndRefusesBadSelections() throws Exception {
        Random random = TestRandom.create("DecodeBatchTest.selectBlocksKeepsTheChosenBlocksAndRefusesBadSelections");
        RandomBatch r = RandomBatch.of(random);
        int n = r.seqs().length;
        int bs = r.blockSize();
        int[] lengths = r.lengths();
        KvCache cache = r.cache();
        DecodeBatch batch = cache.batch(r.seqs());
        int[][] blocks = new int[n][];
        for (int i = 0; i < n; i++) {
            int used = (lengths[i] + bs - 1) / bs;
            int last = used - 1;
            blocks[i] = java.util.stream.IntStream.range(0, used).filter(j -> j == last || random.nextBoolean()).toArray();
        }
        DecodeBatch selected = batch.selectBlocks(blocks);
        assertTrue(selected.selected() && !batch.selected());
        for (int i = 0; i < n; i++) {
            int lastTokens = lengths[i] - ((lengths[i] + bs - 1) / bs - 1) * bs;
            assertEquals((blocks[i].length - 1) * bs + lastTokens, selected.contextLen(i), "row " + i);
            for (int k = 0; k < blocks[i].length; k++) {
                assertEquals(batch.block(i, blocks[i][k]), selected.block(i, k), "row " + i + " block " + k);
            }
            assertArrayEquals(blocks[i], selected.selectedBlocks(i));
        }
        selected.requireFits(cache.config());
        int[][] firsts = new int[n][];  // each sequence's first block alone: whole unless it is the sequence's last
        java.util.Arrays.setAll(firsts, i -> new int[] {0});
        DecodeBatch first = batch.selectBlocks(firsts);
        for (int i = 0; i < n; i++) {
            assertEquals(Math.min(bs, lengths[i]), first.contextLen(i), "row " + i + "'s first block");
        }
        int[][] bad = blocks.clone();
        bad[0] = new int[] {(lengths[0] + bs - 1) / bs};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> batch.selectBlocks(bad));
        assertTrue(e.getMessage().startsWith("blocks[0][0]=" + bad[0][0] + ": seq=" + r.seqs()[0]), e.getMessage());
        bad[0] = new int[] {0, 0};
        assertTrue(assertThrows(IllegalArgumentException.class, () -> batch.selectBlocks(bad)).getMessage().startsWith("blocks[0][1]=0"));
        bad[0] = new int[0];
        assertTrue(assertThrows(IllegalArgumentException.class, () -> batch.selectBlocks(bad)).getMessage().startsWith("blocks[0]=[]"));
        assertThrows(IllegalArgumentException.class, () -> batch.selectBlocks(new int[n + 1][]));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> selected.window(4)).getMessage().contains("selected blocks"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> batch.window(4).selectBlocks(blocks)).getMessage()
                .startsWith("selectBlocks on a batch with window="));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> selected.skipBlocks(new int[n])).getMessage()
                .contains("selected blocks"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> selected.selectBlocks(blocks)).getMessage()
                .contains("of selected blocks"));
        cache.free(r.seqs()[n - 1]);
        assertThrows(IllegalArgumentException.class, () -> selected.requireFits(cache.config()), "a freed sequence is still stale");
    }

    @RepeatedTest(5)
    void batchPadsBlockTablesWithNoBlockAndCarriesLengths() throws Exception {
        Random random = TestRandom.create("DecodeBatchTest.batchPadsBlockTablesWithNoBlockAndCarriesLengths");
        RandomBatch r = RandomBatch.of(random);
        int n = r.seqs().length;
        int[] seqs = r.seqs();
        int[] lengths = r.lengths();
        KvCache cache = r.cache();
        DecodeBatch batch = cache.batch(seqs);
        int maxBlocks = 0;
        for (int s : seqs) {
            maxBlocks = Math.max(maxBlocks, cache.pageTable(s).numBlocks());
        }
        assertEquals(n, batch.numSeqs());
        assertEquals(maxBlocks, batch.maxBlocksPerSeq());
        assertEquals(cache.config().blockSize(), batch.blockSize());
        assertArrayEquals(seqs, batch.seqIds());
        int[] flat = batch.blockTables();
        assertEquals(n * maxBlocks, flat.length);
        long total = 0;
        int maxLen = 0;
        for (int i = 0; i < n; i++) {
            int[] table = cache.pageTable(seqs[i]).blocks();
            assertEquals(cache.length(seqs[i]), batch.contextLen(i));
            assertEquals(cache.length(seqs[i]), batch.contextLens()[i]);
            assertEquals(seqs[i], batch.seqId(i));
            for (int j = 0; j < maxBlocks; j++) {
                int expected = j < table.length ? table[j] : BlockPool.NO_BLOCK;
                assertEquals(expected, batch.block(i, j), "row " + i + " column " + j);
                assertEquals(expected, flat[i * maxBlocks + j]);
            }
            total += batch.contextLen(i);
            maxLen = Math.max(maxLen, batch.contextLen(i));
        }
        assertEquals(total, batch.totalTokens());
        assertEquals(maxLen, batch.maxContextLen());
    }

    @Test
    void batchPaddedUsesTheGivenWidthAndRefusesATooNarrowOne() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(10, 4, 1, 1, KvDtype.FP32));
        int a = cache.createSequence();
        int b = cache.createSequence();
        cache.append(a, 9);
        cache.append(b, 2);
        DecodeBatch batch = cache.batchPadded(5, b, a);
        assertEquals(5, batch.maxBlocksPerSeq());
        assertArrayEquals(new int[] {2, 9}, batch.contextLens());
        int[] ta = cache.pageTable(a).blocks();
        int[] tb = cache.pageTable(b).blocks();
        int no = BlockPool.NO_BLOCK;
        assertArrayEquals(new int[] {tb[0], no, no, no, no, ta[0], ta[1], ta[2], no, no}, batch.blockTables());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.batchPadded(2, b, a));
        assertTrue(e.getMessage().contains("maxBlocksPerSeq=2") && e.getMessage().contains("blocks=3")
                && e.getMessage().contains("seq=" + a), e.getMessage());
    }

    @Test
    void batchCopiesAreIndependentOfTheCache() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(10, 4, 1, 1, KvDtype.FP32));
        int a = cache.createSequence();
        cache.append(a, 3);
        DecodeBatch batch = cache.batch(a);
        cache.append(a, 5);
        assertEquals(3, batch.contextLen(0));
        assertEquals(1, batch.maxBlocksPerSeq());
        batch.blockTables()[0] = 77;
        batch.contextLens()[0] = 77;
        assertEquals(3, batch.contextLen(0), "accessors return copies");
        assertEquals(cache.pageTable(a).block(0), batch.block(0, 0));
    }

    @Test
    void batchOfAnEmptySequenceIsRefused() {
        KvCache cache = new KvCache(KvCacheConfig.of(10, 4, 1, 1, KvDtype.FP32));
        int a = cache.createSequence();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.batch(a));
        assertTrue(e.getMessage().contains("contextLens[0]=0") && e.getMessage().contains("seq=" + a), e.getMessage());
    }

    @RepeatedTest(5)
    void csrMatchesFlashInferDefinition() throws Exception {
        Random random = TestRandom.create("DecodeBatchTest.csrMatchesFlashInferDefinition");
        int n = 1 + random.nextInt(6);
        int[] seqs = new int[n];
        int bs = 1 + random.nextInt(6);
        int[] lengths = randomLengths(random, n, bs);
        KvCache cache = randomCache(random, bs, lengths, seqs);
        CsrPageTable csr = cache.csr(seqs);
        // FlashInfer: kv_indptr[0] = 0, pages of request i are kv_indices[kv_indptr[i] .. kv_indptr[i+1]),
        // kv_last_page_len[i] = tokens in its last page, in [1, page_size]
        assertEquals(n, csr.numSeqs());
        assertEquals(n + 1, csr.indptr().length);
        assertEquals(0, csr.indptr()[0]);
        int at = 0;
        for (int i = 0; i < n; i++) {
            int len = cache.length(seqs[i]);
            int[] pages = cache.pageTable(seqs[i]).blocks();
            assertEquals(at, csr.indptr()[i]);
            assertEquals(at + pages.length, csr.indptr()[i + 1]);
            assertArrayEquals(pages, java.util.Arrays.copyOfRange(csr.indices(), at, at + pages.length), "pages of seq " + i);
            int last = csr.lastPageLen()[i];
            assertTrue(last >= 1 && last <= bs, "last_page_len=" + last);
            assertEquals((pages.length - 1) * bs + last, len, "pages * page_size + last_page_len gives the length");
            at += pages.length;
        }
        assertEquals(at, csr.indices().length);
    }

    @Test
    void csrOfKnownTables() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(10, 4, 1, 1, KvDtype.FP32));
        int a = cache.createSequence();
        int b = cache.createSequence();
        int c = cache.createSequence();
        cache.append(a, 8);   // blocks 0 1, full last page
        cache.append(b, 1);   // block 2
        cache.append(c, 9);   // blocks 3 4 5
        CsrPageTable csr = cache.csr(a, b, c);
        assertArrayEquals(new int[] {0, 2, 3, 6}, csr.indptr());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, csr.indices());
        assertArrayEquals(new int[] {4, 1, 1}, csr.lastPageLen());
    }

    // ---- DecodeBatch.of: caller-made tables ----

    private static final KvCacheConfig SHAPE = KvCacheConfig.of(8, 4, 1, 1, KvDtype.FP32);

    @Test
    void ofBuildsAPaddedBatchFromRaggedTables() {
        DecodeBatch batch = DecodeBatch.of(SHAPE, new int[][] {{3}, {5, 6, 7}}, new int[] {2, 10});
        assertEquals(3, batch.maxBlocksPerSeq());
        int no = BlockPool.NO_BLOCK;
        assertArrayEquals(new int[] {3, no, no, 5, 6, 7}, batch.blockTables());
        assertArrayEquals(new int[] {0, 1}, batch.seqIds());
        assertArrayEquals(new int[] {2, 10}, batch.contextLens());
    }

    @Test
    void ofPadsColumnsPastTheLengthWithNoBlock() {
        // the class promises NO_BLOCK past ceil(contextLen / blockSize), even when the caller passes more
        DecodeBatch batch = DecodeBatch.of(SHAPE, new int[][] {{1, 2, 3}, {4, 5}}, new int[] {3, 5});
        int no = BlockPool.NO_BLOCK;
        assertArrayEquals(new int[] {1, no, no, 4, 5, no}, batch.blockTables());
    }

    /** A windowed step reads the blocks from its first visible token's on: those are what it checks against a cache. */
    @Test
    void aWindowedBatchChecksTheBlocksItsWindowReads() {
        KvCacheConfig big = KvCacheConfig.of(100, SHAPE.blockSize(), SHAPE.numKvHeads(), SHAPE.headDim(), SHAPE.dtype());
        int bs = SHAPE.blockSize();
        DecodeBatch batch = DecodeBatch.of(big, new int[][] {{90, 91, 3}}, new int[] {3 * bs});
        IllegalArgumentException whole = assertThrows(IllegalArgumentException.class, () -> batch.requireFits(SHAPE));
        assertTrue(whole.getMessage().startsWith("blockTables[0][0]=90 is outside [0, " + SHAPE.numBlocks() + ")"), whole.getMessage());
        batch.window(bs).requireFits(SHAPE);      // the last block only
        IllegalArgumentException wider = assertThrows(IllegalArgumentException.class, () -> batch.window(bs + 1).requireFits(SHAPE));
        assertTrue(wider.getMessage().startsWith("blockTables[0][1]=91"), wider.getMessage());
    }

    @Test
    void ofRefusesAZeroOrNegativeLength() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
                () -> DecodeBatch.of(SHAPE, new int[][] {{1}, {2}}, new int[] {3, 0}));
        assertTrue(zero.getMessage().contains("contextLens[1]=0"), zero.getMessage());
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
                () -> DecodeBatch.of(SHAPE, new int[][] {{1}}, new int[] {-4}));
        assertTrue(negative.getMessage().contains("contextLens[0]=-4"), negative.getMessage());
    }

    @Test
    void ofRefusesABlockIdOutsideThePool() {
        for (int bad : new int[] {8, -1, -7, Integer.MAX_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> DecodeBatch.of(SHAPE, new int[][] {{1}, {2, bad}}, new int[] {1, 5}));
            assertTrue(e.getMessage().contains("blockTables[1][1]=" + bad) && e.getMessage().contains("[0, 8)"), e.getMessage());
        }
    }

    @Test
    void ofRefusesATableTooShortForItsLength() {
        IllegalArgumentException widest = assertThrows(IllegalArgumentException.class,
                () -> DecodeBatch.of(SHAPE, new int[][] {{1, 2}}, new int[] {9}));
        assertTrue(widest.getMessage().contains("contextLens[0]=9") && widest.getMessage().contains("needs 3 blocks")
                && widest.getMessage().contains("maxBlocksPerSeq=2"), widest.getMessage());
        // shorter than another row: its missing column is padding, which is not a block
        IllegalArgumentException ragged = assertThrows(IllegalArgumentException.class,
                () -> DecodeBatch.of(SHAPE, new int[][] {{1, 2, 3}, {4}}, new int[] {9, 5}));
        assertTrue(ragged.getMessage().contains("blockTables[1][1]=" + BlockPool.NO_BLOCK), ragged.getMessage());
    }

    @Test
    void ofRefusesMismatchedOrMissingArrays() {
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                () -> DecodeBatch.of(SHAPE, new int[][] {{1}, {2}}, new int[] {3}));
        assertTrue(count.getMessage().contains("tables.length=2 contextLens.length=1"), count.getMessage());
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
                () -> DecodeBatch.of(SHAPE, new int[0][], new int[0]));
        assertTrue(empty.getMessage().contains("tables.length=0"), empty.getMessage());
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> DecodeBatch.of(SHAPE, null, new int[] {1}));
        assertTrue(none.getMessage().contains("tables.length=null"), none.getMessage());
    }
}
