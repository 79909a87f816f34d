package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Field;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class BlockPoolTest {

    @Test
    void freshPoolHandsOutEveryBlockOnceInIdOrder() {
        BlockPool pool = new BlockPool(5);
        assertEquals(5, pool.numFree());
        assertEquals(5, pool.numAllocatable());
        assertEquals(0, pool.numUsed());
        for (int i = 0; i < 5; i++) {
            assertEquals(i, pool.allocate());
            assertEquals(1, pool.refCount(i));
        }
        assertEquals(BlockPool.NO_BLOCK, pool.allocate());
        assertEquals(5, pool.numUsed());
        assertEquals(0, pool.numAllocatable());
        pool.verify();
    }

    @Test
    void freedBlockIsReusedBeforeUntouchedOnes() {
        BlockPool pool = new BlockPool(8);
        int a = pool.allocate();
        int b = pool.allocate();
        pool.allocate();
        pool.release(b, false);
        pool.release(a, false);
        assertEquals(a, pool.allocate(), "last released first");
        assertEquals(b, pool.allocate());
        assertEquals(3, pool.allocate(), "then the untouched blocks");
        pool.verify();
    }

    @Test
    void retainAddsOwnersAndOnlyTheLastReleaseFrees() {
        BlockPool pool = new BlockPool(4);
        int b = pool.allocate();
        pool.retain(b);
        pool.retain(b);
        assertEquals(3, pool.refCount(b));
        pool.release(b, false);
        pool.release(b, false);
        assertEquals(1, pool.refCount(b));
        assertEquals(3, pool.numFree());
        pool.release(b, false);
        assertEquals(0, pool.refCount(b));
        assertEquals(4, pool.numFree());
        pool.verify();
    }

    @Test
    void doubleFreeIsRefusedAndChangesNothing() {
        BlockPool pool = new BlockPool(4);
        int b = pool.allocate();
        pool.allocate();
        pool.release(b, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pool.release(b, false));
        assertTrue(e.getMessage().contains("block=" + b) && e.getMessage().contains("double free"), e.getMessage());
        assertEquals(3, pool.numFree());
        assertEquals(1, pool.numUsed());
        pool.verify();
        assertEquals(b, pool.allocate(), "the block is on the free stack exactly once");
        assertEquals(2, pool.allocate());
    }

    @Test
    void retainOfAFreeBlockIsRefused() {
        BlockPool pool = new BlockPool(4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pool.retain(2));
        assertTrue(e.getMessage().contains("block=2") && e.getMessage().contains("free"), e.getMessage());
        assertEquals(0, pool.refCount(2));
        pool.verify();
    }

    @Test
    void idsOutsideThePoolAreRefused() {
        BlockPool pool = new BlockPool(4);
        for (int bad : new int[] {-1, 4, Integer.MAX_VALUE, BlockPool.NO_BLOCK}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pool.refCount(bad));
            assertTrue(e.getMessage().contains("block=" + bad), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> pool.release(bad, false));
            assertThrows(IllegalArgumentException.class, () -> pool.retain(bad));
            assertThrows(IllegalArgumentException.class, () -> pool.isEvictable(bad));
        }
        pool.verify();
    }

    @Test
    void releasedCachedBlockBecomesEvictableNotFree() {
        BlockPool pool = new BlockPool(3);
        int b = pool.allocate();
        pool.release(b, true);
        assertTrue(pool.isEvictable(b));
        assertEquals(0, pool.refCount(b));
        assertEquals(2, pool.numFree());
        assertEquals(1, pool.numEvictable());
        assertEquals(3, pool.numAllocatable());
        assertEquals(0, pool.numUsed());
        pool.verify();
    }

    @Test
    void allocateTakesFreeBlocksBeforeEvictingAndThenEvictsLeastRecentlyReleased() {
        BlockPool pool = new BlockPool(4);
        List<Integer> evicted = new ArrayList<>();
        pool.addEvictionListener(evicted::add);
        int[] b = {pool.allocate(), pool.allocate(), pool.allocate(), pool.allocate()};
        pool.release(b[2], true);
        pool.release(b[0], true);
        pool.release(b[3], false);
        pool.release(b[1], true);
        assertArrayEquals(new int[] {b[2], b[0], b[1]}, pool.evictionOrder());
        assertEquals(b[3], pool.allocate(), "the free block goes first");
        assertTrue(evicted.isEmpty());
        assertEquals(b[2], pool.allocate());
        assertEquals(b[0], pool.allocate());
        assertEquals(List.of(b[2], b[0]), evicted);
        assertArrayEquals(new int[] {b[1]}, pool.evictionOrder());
        assertFalse(pool.isEvictable(b[2]));
        assertEquals(1, pool.refCount(b[2]));
        pool.verify();
    }

    @Test
    void retainRevivesAnEvictableBlockAndTakesItOffTheLruList() {
        BlockPool pool = new BlockPool(3);
        int a = pool.allocate();
        int b = pool.allocate();
        int c = pool.allocate();
        pool.release(a, true);
        pool.release(b, true);
        pool.release(c, true);
        pool.retain(b);
        assertEquals(1, pool.refCount(b));
        assertFalse(pool.isEvictable(b));
        assertArrayEquals(new int[] {a, c}, pool.evictionOrder());
        assertEquals(2, pool.numAllocatable());
        pool.verify();
        assertEquals(a, pool.allocate());
        assertEquals(c, pool.allocate());
        assertEquals(BlockPool.NO_BLOCK, pool.allocate(), "the revived block is never evicted");
        pool.verify();
    }

    @Test
    void dropCachedTurnsAnEvictableBlockFreeAndRefusesOthers() {
        BlockPool pool = new BlockPool(2);
        int a = pool.allocate();
        int b = pool.allocate();
        pool.release(a, true);
        pool.dropCached(a);
        assertFalse(pool.isEvictable(a));
        assertEquals(1, pool.numFree());
        assertEquals(0, pool.numEvictable());
        IllegalArgumentException used = assertThrows(IllegalArgumentException.class, () -> pool.dropCached(b));
        assertTrue(used.getMessage().contains("block=" + b + " is not evictable"), used.getMessage());
        IllegalArgumentException free = assertThrows(IllegalArgumentException.class, () -> pool.dropCached(a));
        assertTrue(free.getMessage().contains("block=" + a), free.getMessage());
        pool.verify();
    }

    @Test
    void countersAlwaysAddUpUnderRandomOperations() {
        Random random = TestRandom.create("BlockPoolTest.countersAlwaysAddUpUnderRandomOperations");
        int n = 1 + random.nextInt(40);
        BlockPool pool = new BlockPool(n);
        int[] model = new int[n];           // expected reference counts
        boolean[] modelCached = new boolean[n];
        for (int step = 0; step < 5_000; step++) {
            int op = random.nextInt(4);
            if (op == 0) {
                int b = pool.allocate();
                if (countUnused(model, modelCached, false) + countUnused(model, modelCached, true) == 0) {
                    assertEquals(BlockPool.NO_BLOCK, b);
                } else {
                    assertEquals(0, model[b], "allocate handed out a used block");
                    if (countUnused(model, modelCached, false) > 0) {
                        assertFalse(modelCached[b], "evicted block " + b + " while free blocks were left");
                    }
                    model[b] = 1;
                    modelCached[b] = false;
                }
            } else {
                int b = random.nextInt(n);
                if (op == 1 && (model[b] > 0 || modelCached[b])) {
                    pool.retain(b);
                    model[b]++;
                } else if (op >= 2 && model[b] > 0) {
                    boolean keep = random.nextBoolean();
                    pool.release(b, keep);
                    if (--model[b] == 0) {
                        modelCached[b] = keep;
                    }
                }
            }
            pool.verify();
            int used = 0;
            int evictable = 0;
            for (int b = 0; b < n; b++) {
                assertEquals(model[b], pool.refCount(b));
                used += model[b] > 0 ? 1 : 0;
                evictable += model[b] == 0 && modelCached[b] ? 1 : 0;
                assertEquals(model[b] == 0 && modelCached[b], pool.isEvictable(b));
            }
            assertEquals(used, pool.numUsed());
            assertEquals(evictable, pool.numEvictable());
            assertEquals(n - used - evictable, pool.numFree());
        }
    }

    /** Blocks with no owner that hold cached content ({@code cached}) or none. */
    private static int countUnused(int[] model, boolean[] modelCached, boolean cached) {
        int c = 0;
        for (int b = 0; b < model.length; b++) {
            c += model[b] == 0 && modelCached[b] == cached ? 1 : 0;
        }
        return c;
    }

    @Test
    void allocateRetainAndReleaseTakeConstantTime() {
        // A quarter-million-block pool drained and refilled twice, in random order, with evictions: an
        // O(numBlocks) step anywhere would need ~10^11 operations and hit the timeout.
        Random random = TestRandom.create("BlockPoolTest.allocateRetainAndReleaseTakeConstantTime");
        int n = 1 << 18;
        BlockPool pool = new BlockPool(n);
        int[] blocks = new int[n];
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (int round = 0; round < 2; round++) {
                for (int i = 0; i < n; i++) {
                    blocks[i] = pool.allocate();
                    pool.retain(blocks[i]);
                    pool.release(blocks[i], false);
                }
                for (int i = n - 1; i > 0; i--) {
                    int j = random.nextInt(i + 1);
                    int t = blocks[i];
                    blocks[i] = blocks[j];
                    blocks[j] = t;
                }
                for (int i = 0; i < n; i++) {
                    pool.release(blocks[i], (i & 1) == 0);
                }
            }
        });
        assertEquals(n, pool.numAllocatable());
        assertEquals(n / 2, pool.numEvictable());
        pool.verify();
    }

    @Test
    void freeStackHoldsEachBlockAtMostOnce() {
        BlockPool pool = new BlockPool(6);
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < 6; i++) {
            assertTrue(seen.add(pool.allocate()));
        }
        for (int b : seen) {
            assertFalse(pool.isOnFreeStack(b));
            pool.release(b, false);
            assertTrue(pool.isOnFreeStack(b));
        }
    }

    // ---- verify() must catch a broken pool (state corrupted through reflection) ----

    @Test
    void verifyCatchesAFreeBlockWithAReferenceCount() throws Exception {
        BlockPool pool = new BlockPool(4);
        pool.allocate();
        ((int[]) field(pool, "refCounts"))[3] = 1;
        AssertionError e = assertThrows(AssertionError.class, pool::verify);
        assertTrue(e.getMessage().contains("free block 3 has refCount=1"), e.getMessage());
    }

    @Test
    void verifyCatchesABlockTwiceOnTheFreeStack() throws Exception {
        BlockPool pool = new BlockPool(4);
        int[] stack = (int[]) field(pool, "freeStack");
        stack[0] = stack[1];
        AssertionError e = assertThrows(AssertionError.class, pool::verify);
        assertTrue(e.getMessage().contains("twice on the free stack"), e.getMessage());
    }

    @Test
    void verifyCatchesALostBlock() throws Exception {
        BlockPool pool = new BlockPool(4);
        int b = pool.allocate();
        ((int[]) field(pool, "refCounts"))[b] = 0; // neither used, free nor evictable
        AssertionError e = assertThrows(AssertionError.class, pool::verify);
        assertTrue(e.getMessage().contains("block " + b + " is neither free, evictable nor referenced"), e.getMessage());
    }

    @Test
    void verifyCatchesAWrongEvictableCount() throws Exception {
        BlockPool pool = new BlockPool(4);
        int b = pool.allocate();
        pool.release(b, true);
        Field f = BlockPool.class.getDeclaredField("numEvictable");
        f.setAccessible(true);
        f.setInt(pool, 2);
        AssertionError e = assertThrows(AssertionError.class, pool::verify);
        assertTrue(e.getMessage().contains("LRU list length 1 != numEvictable 2"), e.getMessage());
    }

    @Test
    void verifyCatchesAReferencedBlockOnTheLruList() throws Exception {
        BlockPool pool = new BlockPool(4);
        int b = pool.allocate();
        pool.release(b, true);
        ((int[]) field(pool, "refCounts"))[b] = 2;
        AssertionError e = assertThrows(AssertionError.class, pool::verify);
        assertTrue(e.getMessage().contains("evictable block " + b + " has refCount=2"), e.getMessage());
    }

    static Object field(Object owner, String name) throws ReflectiveOperationException {
        Field f = owner.getClass().getDeclaredField(name);
        f.setAccessible(true);
        return f.get(owner);
    }
}
