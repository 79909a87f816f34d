package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * A plan's row copies split over threads move every row exactly once, to the right shard and place, in both
 * directions; small copies stay on the caller; the thread count property names a bad value.
 */
class RowCopierTest {
    private static final int ROW_FLOATS = 32 * 128; // Llama-3-8B's query heads x head dim

    @Test
    void largeCopiesAreSplitAndMoveEveryRowToItsShard() {
        long seed = TestSeeds.fresh("RowCopierTest");
        SplittableRandom r = new SplittableRandom(seed);
        for (int shards : new int[] {1, 4}) {
            for (int rows : new int[] {1, 63, 130}) { // 16 KB rows: 1 MB from 64 rows on
                try (RowCopier copier = new RowCopier(3)) {
                    ShardRows parts = new ShardRows(shards, 130, ROW_FLOATS, 0, copier);
                    FloatArray q = new FloatArray(rows * ROW_FLOATS);
                    for (int i = 0; i < q.getSize(); i++) {
                        q.set(i, (float) r.nextDouble(-1, 1));
                    }
                    for (int s = 0; s < shards; s++) {
                        parts.q(s).init(Float.NaN);
                    }
                    parts.load(q, rows);
                    int part = ROW_FLOATS / shards;
                    for (int s = 0; s < shards; s++) {
                        for (int row = 0; row < 130; row++) {
                            for (int e = 0; e < part; e++) {
                                float got = parts.q(s).get(row * part + e);
                                int sh = shards, n = rows, ss = s, rr = row, ee = e;
                                java.util.function.Supplier<String> where = () -> "shards=" + sh + " rows=" + n + " shard " + ss
                                        + " row " + rr + " element " + ee + " seed=" + seed;
                                if (row < rows) {
                                    assertEquals(q.get(row * ROW_FLOATS + s * part + e), got, where);
                                } else {
                                    assertTrue(Float.isNaN(got), () -> "a row past the batch was written: " + where.get());
                                }
                            }
                        }
                        for (int i = 0; i < parts.out(s).getSize(); i++) { // the kernels' output, back to the caller
                            parts.out(s).set(i, q.get((s * 7 + i) % q.getSize()) + s);
                        }
                    }
                    FloatArray out = new FloatArray(rows * ROW_FLOATS + 5);
                    out.init(Float.NaN);
                    parts.store(out, rows);
                    for (int row = 0; row < rows; row++) {
                        for (int s = 0; s < shards; s++) {
                            for (int e = 0; e < part; e++) {
                                int sh = shards, n = rows, rr = row;
                                assertEquals(parts.out(s).get(row * part + e), out.get(row * ROW_FLOATS + s * part + e),
                                        () -> "out shards=" + sh + " rows=" + n + " row " + rr + " seed=" + seed);
                            }
                        }
                    }
                    for (int i = rows * ROW_FLOATS; i < out.getSize(); i++) {
                        assertTrue(Float.isNaN(out.get(i)), "the caller's array was written past the batch's rows");
                    }
                    assertEquals(rows * ROW_FLOATS * 4L >= RowCopier.PARALLEL_BYTES, copier.started(),
                            "helpers start exactly when a copy reaches " + RowCopier.PARALLEL_BYTES + " bytes (rows=" + rows + ")");
                }
            }
        }
    }

    @Test
    void aCopyIsCutByThreadsAndShareSize() {
        long row = ROW_FLOATS * 4L;
        assertEquals(1, RowCopier.items(63, row, 8), "under 1 MB: the caller alone");
        assertEquals(4, RowCopier.items(64, row, 8), "1 MB: shares of 256 KB");
        assertEquals(8, RowCopier.items(256, row, 8), "4 MB: every thread");
        assertEquals(1, RowCopier.items(256, row, 1), "one thread");
        assertEquals(2, RowCopier.items(2, 1L << 20, 8), "never more pieces than rows");
    }

    @Test
    void theThreadCountIsCheckedAndNamesItsBadValue() {
        assertEquals(8, RowCopier.parseThreads(null, 16));
        assertEquals(8, RowCopier.parseThreads(null, 64));
        assertEquals(1, RowCopier.parseThreads(null, 2));
        assertEquals(3, RowCopier.parseThreads(" 3", 2));
        for (String bad : new String[] {"0", "-2", "four", ""}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> RowCopier.parseThreads(bad, 16));
            assertEquals("pagedattn.tornado.copyThreads=" + bad + " is not a whole number >= 1", e.getMessage());
        }
        assertFalse(new RowCopier(1).started());
        assertThrows(IllegalArgumentException.class, () -> new RowCopier(0));
    }
}
