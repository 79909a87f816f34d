package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;

/** Fork, copy-on-write of a shared last block, and freeing shared blocks. */
class KvCacheForkTest {

    @Test
    void forkSharesEveryBlockAndAddsOneReference() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(8, 4, 2, 3, KvDtype.FP32));
        int parent = cache.createSequence();
        Tokens.append(cache, parent, Tokens.range(0, 10));
        int child = cache.fork(parent);
        assertNotEquals(parent, child);
        assertArrayEquals(cache.pageTable(parent).blocks(), cache.pageTable(child).blocks());
        assertEquals(10, cache.length(child));
        for (int b : cache.pageTable(parent).blocks()) {
            assertEquals(2, cache.pool().refCount(b));
        }
        int grandChild = cache.fork(child);
        for (int b : cache.pageTable(parent).blocks()) {
            assertEquals(3, cache.pool().refCount(b));
        }
        assertEquals(3, cache.numUsedBlocks(), "forks take no blocks");
        Tokens.assertHolds(cache, child, Tokens.range(0, 10));
        Tokens.assertHolds(cache, grandChild, Tokens.range(0, 10));
    }

    @Test
    void forkOfAnEmptySequenceIsEmpty() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(2, 4, 1, 1, KvDtype.FP32));
        int parent = cache.createSequence();
        int child = cache.fork(parent);
        assertEquals(0, cache.length(child));
        Tokens.append(cache, child, 5);
        assertEquals(0, cache.length(parent));
        assertEquals(1, cache.numUsedBlocks());
    }

    @RepeatedTest(4)
    void forkSharesBlocksUntilFirstWriteAndThenCopiesThePartlyFilledLastBlock() throws Exception {
        Random random = TestRandom.create("KvCacheForkTest.forkSharesBlocksUntilFirstWriteAndThenCopiesThePartlyFilledLastBlock");
        int blockSize = 2 + random.nextInt(6);
        KvCacheConfig c = new KvCacheConfig(16, blockSize, 2, 3, KvDtype.FP32, 1 + random.nextInt(2));
        KvCache cache = new KvCache(c);
        RandomKv.shuffleFreeBlocks(cache, random.nextLong());
        int parent = cache.createSequence();
        int filled = 1 + random.nextInt(blockSize - 1);         // slots used in the last block
        int n = random.nextInt(3) * blockSize + filled;
        int[] prompt = Tokens.range(100, n);
        Tokens.append(cache, parent, prompt);
        int child = cache.fork(parent);
        int[] shared = cache.pageTable(parent).blocks();
        int last = shared[shared.length - 1];

        assertEquals(1, cache.blocksNeeded(child, 1), "the shared last block must be copied");
        int k = 1 + random.nextInt(blockSize - filled);         // stays in the last block
        int[] childNew = Tokens.range(500, k);
        assertEquals(n, Tokens.append(cache, child, childNew));

        int[] childTable = cache.pageTable(child).blocks();
        assertArrayEquals(java.util.Arrays.copyOf(shared, shared.length - 1), java.util.Arrays.copyOf(childTable, shared.length - 1),
                "full blocks stay shared");
        int copy = childTable[shared.length - 1];
        assertNotEquals(last, copy);
        assertEquals(1, cache.pool().refCount(last), "parent owns the original alone now");
        assertEquals(1, cache.pool().refCount(copy));
        for (int i = 0; i < shared.length - 1; i++) {
            assertEquals(2, cache.pool().refCount(shared[i]));
        }

        // the parent now writes into its own (original) last block without another copy
        int[] parentNew = Tokens.range(700, k);
        assertEquals(0, cache.blocksNeeded(parent, k));
        Tokens.append(cache, parent, parentNew);
        assertArrayEquals(shared, cache.pageTable(parent).blocks());

        // neither sees the other's new tokens; the copy carries the already filled slots
        Tokens.assertHolds(cache, parent, Tokens.concat(prompt, parentNew));
        Tokens.assertHolds(cache, child, Tokens.concat(prompt, childNew));
    }

    @Test
    void copyCarriesFilledSlotsOfEveryLayerAndHead() throws Exception {
        KvCacheConfig c = new KvCacheConfig(6, 4, 3, 2, KvDtype.FP16, 3);
        KvCache cache = new KvCache(c);
        int parent = cache.createSequence();
        Tokens.append(cache, parent, 1, 2, 3, 4, 5, 6); // block 1 holds 2 of 4 slots
        int child = cache.fork(parent);
        Tokens.append(cache, child, 9);
        int from = cache.pageTable(parent).block(1);
        int to = cache.pageTable(child).block(1);
        assertNotEquals(from, to, "the child's half-full block was copied");
        KvLayout layout = cache.layout();
        for (int layer = 0; layer < 3; layer++) {
            for (int h = 0; h < 3; h++) {
                for (int s = 0; s < 2; s++) {
                    for (int d = 0; d < 2; d++) {
                        assertEquals(cache.keys(layer).get(layout.offset(from, h, s, d)),
                                cache.keys(layer).get(layout.offset(to, h, s, d)));
                        assertEquals(cache.values(layer).get(layout.offset(from, h, s, d)),
                                cache.values(layer).get(layout.offset(to, h, s, d)));
                    }
                }
            }
        }
        Tokens.assertHolds(cache, child, 1, 2, 3, 4, 5, 6, 9);
        Tokens.assertHolds(cache, parent, 1, 2, 3, 4, 5, 6);
    }

    @Test
    void fullSharedLastBlockIsNotCopied() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(8, 4, 1, 2, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        int parent = cache.createSequence();
        Tokens.append(cache, parent, Tokens.range(0, 8));
        int child = cache.fork(parent);
        int[] shared = cache.pageTable(parent).blocks();
        assertEquals(1, cache.blocksNeeded(child, 1), "one new block, no copy");
        Tokens.append(cache, child, 50);
        Tokens.append(cache, parent, 60);
        assertArrayEquals(shared, java.util.Arrays.copyOf(cache.pageTable(child).blocks(), 2));
        assertEquals(2, cache.pool().refCount(shared[1]));
        assertNotEquals(cache.pageTable(parent).block(2), cache.pageTable(child).block(2));
        assertEquals(4, cache.numUsedBlocks());
        Tokens.assertHolds(cache, child, Tokens.concat(Tokens.range(0, 8), 50));
        Tokens.assertHolds(cache, parent, Tokens.concat(Tokens.range(0, 8), 60));
    }

    @Test
    void appendSpanningTheSharedBlockCopiesItAndAddsBlocks() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(10, 4, 1, 1, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        int parent = cache.createSequence();
        Tokens.append(cache, parent, Tokens.range(0, 6));
        int child = cache.fork(parent);
        assertEquals(1 + 2, cache.blocksNeeded(child, 2 + 8), "copy + two new blocks");
        Tokens.append(cache, child, Tokens.range(100, 10));
        assertEquals(4, cache.pageTable(child).numBlocks());
        assertEquals(2, cache.pool().refCount(cache.pageTable(child).block(0)), "full block still shared");
        assertEquals(5, cache.numUsedBlocks(), "parent's two, the copy and two new");
        Tokens.assertHolds(cache, child, Tokens.concat(Tokens.range(0, 6), Tokens.range(100, 10)));
        Tokens.assertHolds(cache, parent, Tokens.range(0, 6));
    }

    @Test
    void writingIntoASharedBlockCopiesItFirst() throws Exception {
        KvCacheConfig c = new KvCacheConfig(8, 4, 1, 2, KvDtype.FP32, 2);
        KvCache cache = new KvCache(c);
        int parent = cache.createSequence();
        Tokens.append(cache, parent, Tokens.range(0, 6));
        int child = cache.fork(parent);
        int[] shared = cache.pageTable(parent).blocks();
        cache.write(child, 0, 5, Tokens.k(c, 0, 9), Tokens.v(c, 0, 9));
        int[] childTable = cache.pageTable(child).blocks();
        assertEquals(shared[0], childTable[0], "the untouched block stays shared");
        assertNotEquals(shared[1], childTable[1], "the written block was copied");
        assertArrayEquals(shared, cache.pageTable(parent).blocks(), "the parent keeps its blocks");
        assertEquals(1, cache.pool().refCount(shared[1]));
        Tokens.assertHolds(cache, parent, Tokens.range(0, 6));
        // layer 0 of position 5 is the new token, layer 1 still the copied old one
        assertEquals(Tokens.k(9, 0, 0, 1), cache.readK(child, 0, 5, 0, 1));
        assertEquals(Tokens.k(5, 1, 0, 1), cache.readK(child, 1, 5, 0, 1));
        assertEquals(Tokens.k(4, 0, 0, 0), cache.readK(child, 0, 4, 0, 0), "the copy carries the filled slots");
        // a bulk write over a still-shared block copies just that block
        cache.writeTokens(parent, 0, 2, 3, Tokens.k(c, 0, 7, 8, 9), Tokens.v(c, 0, 7, 8, 9));
        assertNotEquals(shared[0], cache.pageTable(parent).block(0));
        assertEquals(shared[1], cache.pageTable(parent).block(1), "sole owner of block 1 now: written in place");
        assertEquals(Tokens.k(8, 0, 0, 0), cache.readK(parent, 0, 3, 0, 0));
        assertEquals(Tokens.k(3, 0, 0, 0), cache.readK(child, 0, 3, 0, 0), "the child keeps the original block 0");
        cache.verify();
    }

    @Test
    void appendThenForkThenWriteLeavesEverySlotWritableByItsOwner() throws Exception {
        // the defect: append(s,1), fork(s); both writes were refused and the slot stayed 0 while decode read it
        KvCacheConfig c = KvCacheConfig.of(4, 4, 1, 2, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        int s = cache.createSequence();
        int pos = cache.append(s, 1);
        int child = cache.fork(s);
        cache.write(s, 0, pos, Tokens.k(c, 0, 7), Tokens.v(c, 0, 7));
        cache.write(child, 0, pos, Tokens.k(c, 0, 8), Tokens.v(c, 0, 8));
        Tokens.assertHolds(cache, s, 7);
        Tokens.assertHolds(cache, child, 8);
        assertEquals(2, cache.numUsedBlocks());
    }

    @Test
    void aWriteThatMustCopyWithNoBlockLeftThrowsAndChangesNothing() throws Exception {
        KvCacheConfig c = KvCacheConfig.of(1, 4, 1, 2, KvDtype.FP32);
        KvCache cache = new KvCache(c);
        int s = cache.createSequence();
        int pos = cache.append(s, 1);
        int child = cache.fork(s);
        CacheSnapshot before = CacheSnapshot.of(cache);
        OutOfBlocksException e = assertThrows(OutOfBlocksException.class,
                () -> cache.write(child, 0, pos, Tokens.k(c, 0, 8), Tokens.v(c, 0, 8)));
        assertEquals(1, e.numNeeded());
        assertEquals(0, e.numAllocatable());
        assertEquals(before, CacheSnapshot.of(cache));
        assertEquals(0f, cache.readK(child, 0, pos, 0, 0), "nothing was written");
        cache.free(s);
        cache.write(child, 0, pos, Tokens.k(c, 0, 8), Tokens.v(c, 0, 8)); // sole owner now: in place
        Tokens.assertHolds(cache, child, 8);
    }

    @RepeatedTest(3)
    void sharedBlocksGoBackOnlyWhenTheLastOwnerIsFreed() throws Exception {
        Random random = TestRandom.create("KvCacheForkTest.sharedBlocksGoBackOnlyWhenTheLastOwnerIsFreed");
        KvCache cache = new KvCache(KvCacheConfig.of(20, 3, 1, 1, KvDtype.FP32));
        int root = cache.createSequence();
        Tokens.append(cache, root, Tokens.range(0, 7));
        int[] rootBlocks = cache.pageTable(root).blocks();
        int[] seqs = {root, cache.fork(root), cache.fork(root), cache.fork(root)};
        for (int i = 1; i < seqs.length; i++) {
            Tokens.append(cache, seqs[i], Tokens.range(100 * i, 1 + random.nextInt(5)));
        }
        // free in random order; a shared block stays until its last owner goes
        java.util.List<Integer> order = new java.util.ArrayList<>(List.of(0, 1, 2, 3));
        java.util.Collections.shuffle(order, random);
        for (int k = 0; k < order.size(); k++) {
            cache.free(seqs[order.get(k)]);
            int owners = order.size() - k - 1;
            for (int j = 0; j < 2; j++) { // the two full blocks of root are shared by all
                assertEquals(owners, cache.pool().refCount(rootBlocks[j]), "after freeing " + (k + 1) + " sequences");
            }
            for (int s = 0; s < seqs.length; s++) {
                if (cache.contains(seqs[s])) {
                    assertEquals(rootBlocks[0], cache.pageTable(seqs[s]).block(0));
                }
            }
        }
        assertEquals(0, cache.numUsedBlocks());
        assertEquals(20, cache.numAllocatableBlocks());
    }

    @Test
    void forkedChildKeepsDataAfterParentIsFreed() throws Exception {
        KvCache cache = new KvCache(KvCacheConfig.of(6, 4, 2, 2, KvDtype.FP32));
        int parent = cache.createSequence();
        Tokens.append(cache, parent, Tokens.range(0, 6));
        int child = cache.fork(parent);
        cache.free(parent);
        assertEquals(2, cache.numUsedBlocks());
        for (int b : cache.pageTable(child).blocks()) {
            assertEquals(1, cache.pool().refCount(b));
        }
        // sole owner now: appending writes in place, no copy
        int[] before = cache.pageTable(child).blocks();
        Tokens.append(cache, child, 40);
        assertArrayEquals(before, cache.pageTable(child).blocks());
        Tokens.assertHolds(cache, child, Tokens.concat(Tokens.range(0, 6), 40));
        // reuse of the freed pool does not disturb the child
        int other = cache.createSequence();
        Tokens.append(cache, other, Tokens.range(200, 16));
        Tokens.assertHolds(cache, child, Tokens.concat(Tokens.range(0, 6), 40));
    }
}
