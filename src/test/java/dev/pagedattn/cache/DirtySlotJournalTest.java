package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The journal a device mirror drains: per layer, each slot once, ascending, bounded by the pool. */
class DirtySlotJournalTest {
    private static final KvCacheConfig C = new KvCacheConfig(6, 4, 1, 2, KvDtype.FP32, 3);

    @Test
    void writesAreListedPerLayerOnceAndAscending() throws Exception {
        KvCache cache = new KvCache(C);
        cache.dirtySlots().track();
        int seq = cache.createSequence();
        cache.append(seq, 6);
        int[] table = cache.pageTable(seq).blocks();
        cache.write(seq, 1, 5, Tokens.k(C, 1, 9), Tokens.v(C, 1, 9));
        cache.write(seq, 1, 0, Tokens.k(C, 1, 8), Tokens.v(C, 1, 8));
        cache.write(seq, 1, 5, Tokens.k(C, 1, 7), Tokens.v(C, 1, 7)); // the same slot again
        int[] expected = {table[0] * 4, table[1] * 4 + 1};
        java.util.Arrays.sort(expected);
        assertArrayEquals(expected, cache.dirtySlots().drain(1));
        assertArrayEquals(new int[0], cache.dirtySlots().drain(1), "a drain empties the layer");
        assertArrayEquals(new int[0], cache.dirtySlots().drain(0), "layer 0 was not written");
        assertEquals(cache.layout().offset(table[1], 0, 1, 0), cache.layout().slotOffset(table[1] * 4 + 1));
    }

    @Test
    void copyOnWriteMarksTheCopiedSlotsOfEveryLayer() throws Exception {
        KvCache cache = new KvCache(C);
        int parent = cache.createSequence();
        Tokens.append(cache, parent, 1, 2, 3, 4, 5, 6);
        cache.dirtySlots().track(); // slots written before tracking are the mirror's first upload
        int child = cache.fork(parent);
        cache.append(child, 1);
        int copy = cache.pageTable(child).block(1);
        for (int layer = 0; layer < 3; layer++) {
            assertArrayEquals(new int[] {copy * 4, copy * 4 + 1}, cache.dirtySlots().drain(layer), "layer " + layer);
        }
    }

    @Test
    void aLongUndrainedRunStaysBoundedByThePool() throws Exception {
        KvCache cache = new KvCache(C);
        cache.dirtySlots().track();
        int seq = cache.createSequence();
        cache.append(seq, 4);
        for (int i = 0; i < 10_000; i++) {
            cache.write(seq, 0, i % 4, Tokens.k(C, 0, i), Tokens.v(C, 0, i));
        }
        assertEquals(4, cache.dirtySlots().drain(0).length);
    }

    /** Two mirrors of one cache (a decode and a prefill backend) each see every write once, whenever each drains. */
    @Test
    void eachReaderListsTheWritesSinceItsOwnLastDrain() throws Exception {
        KvCache cache = new KvCache(C);
        int seq = cache.createSequence();
        cache.append(seq, 8);
        int[] table = cache.pageTable(seq).blocks();
        cache.write(seq, 0, 0, Tokens.k(C, 0, 1), Tokens.v(C, 0, 1));      // before any reader: a new mirror uploads it
        DirtySlotJournal.Reader decode = cache.dirtySlots().reader();
        cache.write(seq, 0, 1, Tokens.k(C, 0, 2), Tokens.v(C, 0, 2));
        DirtySlotJournal.Reader prefill = cache.dirtySlots().reader();
        cache.write(seq, 0, 5, Tokens.k(C, 0, 3), Tokens.v(C, 0, 3));
        assertArrayEquals(sorted(table[0] * 4 + 1, table[1] * 4 + 1), decode.drain(0), "decode: both writes since it opened");
        cache.write(seq, 0, 6, Tokens.k(C, 0, 4), Tokens.v(C, 0, 4));
        assertArrayEquals(new int[] {table[1] * 4 + 1, table[1] * 4 + 2}, prefill.drain(0), "prefill: its own two, undrained by decode");
        assertArrayEquals(new int[] {table[1] * 4 + 2}, decode.drain(0), "decode: only the write since its drain");
        cache.dirtySlots().track();                                        // the shared reader sits beside them
        prefill.close();
        cache.write(seq, 0, 7, Tokens.k(C, 0, 5), Tokens.v(C, 0, 5));
        assertArrayEquals(new int[] {table[1] * 4 + 3}, decode.drain(0));
        assertArrayEquals(new int[] {table[1] * 4 + 3}, cache.dirtySlots().drain(0));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> prefill.drain(0));
        assertEquals("drain after close(): this reader records nothing any more", e.getMessage());
        prefill.close(); // idempotent
        assertArrayEquals(new int[0], decode.drain(1), "layer 1 was not written");
    }

    @Test
    void drainingWithoutTrackingOrOutsideTheLayersIsRefused() {
        KvCache cache = new KvCache(C);
        assertThrows(IllegalStateException.class, () -> cache.dirtySlots().drain(0));
        cache.dirtySlots().track();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.dirtySlots().drain(3));
        assertEquals("layer=3 is outside [0, 3)", e.getMessage());
    }

    private static int[] sorted(int... slots) {
        int[] s = slots.clone();
        java.util.Arrays.sort(s);
        return s;
    }
}
