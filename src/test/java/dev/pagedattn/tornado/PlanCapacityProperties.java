package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * The plan-capacity rule driven the way an engine drives it: a batch of sequences that grow by one token a step (and,
 * in continuous batching, more sequences joining), each step rebuilding the plan only when the rule says it does not
 * hold the batch. Every step must fit the plan it runs on, capacities never shrink, and the number of plans built
 * stays logarithmic without a reservation and is one with a reservation that covers the loop.
 */
class PlanCapacityProperties {

    /** A plan's capacity as TornadoDecodeAttention keeps it. */
    private record Cap(int seqs, int entries) {
    }

    /** The decode path's rule: the plan for this step, a new one only when the current one does not hold the batch. */
    private static Cap step(Cap plan, int n, int width, int reservedSeqs, int reservedColumns) {
        if (plan != null && PlanCapacity.holds(plan.seqs, plan.entries, n, width, reservedSeqs, reservedColumns)) {
            return plan;
        }
        int seqs = PlanCapacity.seqs(n, reservedSeqs, plan == null ? 0 : plan.seqs);
        return new Cap(seqs, PlanCapacity.tableEntries(n, width, seqs, reservedColumns, plan == null ? 0 : plan.entries));
    }

    private static int columns(int tokens, int blockSize) {
        return (tokens + blockSize - 1) / blockSize;
    }

    @Property(tries = 300)
    void aGrowingBatchFitsEveryPlanAndBuildsFewOfThem(@ForAll @IntRange(min = 1, max = 300) int startSeqs,
                                                       @ForAll @IntRange(min = 1, max = 40000) int startTokens,
                                                       @ForAll @IntRange(min = 1, max = 4000) int steps,
                                                       @ForAll @IntRange(min = 0, max = 4) int joinEvery,
                                                       @ForAll @IntRange(min = 1, max = 32) int blockSize) {
        Cap plan = null;
        int builds = 0;
        int n = startSeqs;
        int maxN = n;
        int maxWidth = 1;
        for (int s = 0; s < steps; s++) {
            if (joinEvery > 0 && s % (joinEvery * 16) == 0) {
                n++; // continuous batching: a request joins
            }
            int width = columns(startTokens + s, blockSize);
            Cap next = step(plan, n, width, 0, 0);
            if (next != plan) {
                builds++;
                if (plan != null) {
                    assertTrue(next.seqs >= plan.seqs && next.entries >= plan.entries, "capacities never shrink");
                }
                plan = next;
            }
            assertTrue(n <= plan.seqs && (long) n * width <= plan.entries, "step " + s + ": " + n + " x " + width + " fits " + plan);
            maxN = Math.max(maxN, n);
            maxWidth = Math.max(maxWidth, width);
        }
        // each build at least doubles the sequences or the entries, from at least n x width
        int bound = 2 + 32 - Integer.numberOfLeadingZeros(maxN) + 32 - Integer.numberOfLeadingZeros(maxWidth);
        assertTrue(builds <= bound, builds + " builds for a loop up to " + maxN + " x " + maxWidth + " (bound " + bound + ")");
    }

    @Property(tries = 300)
    void aReservationThatCoversTheLoopBuildsOnePlan(@ForAll @IntRange(min = 1, max = 256) int startSeqs,
                                                    @ForAll @IntRange(min = 1, max = 32768) int startTokens,
                                                    @ForAll @IntRange(min = 1, max = 2000) int steps,
                                                    @ForAll @IntRange(min = 1, max = 32) int blockSize) {
        int reservedSeqs = startSeqs;
        int reservedColumns = columns(startTokens + steps, blockSize);
        Cap plan = null;
        int builds = 0;
        for (int s = 0; s < steps; s++) {
            int width = columns(startTokens + s, blockSize);
            Cap next = step(plan, startSeqs, width, reservedSeqs, reservedColumns);
            builds += next != plan ? 1 : 0;
            plan = next;
            assertTrue((long) startSeqs * width <= plan.entries);
        }
        assertEquals(1, builds);
        assertEquals(reservedSeqs, plan.seqs, "a reservation is taken as it is, not rounded up");
        assertEquals((long) reservedSeqs * reservedColumns, plan.entries);
    }

    @Property(tries = 200)
    void fewerSequencesMayUseTheFreedEntriesForWiderTables(@ForAll @IntRange(min = 2, max = 64) int seqs,
                                                           @ForAll @IntRange(min = 1, max = 512) int width) {
        Cap plan = step(null, seqs, width, 0, 0);
        // one sequence left, its table seqs times as wide: the entries hold it without a new plan
        int wider = plan.entries;
        assertTrue(PlanCapacity.holds(plan.seqs, plan.entries, 1, wider, 0, 0));
        assertTrue(!PlanCapacity.holds(plan.seqs, plan.entries, 1, wider + 1, 0, 0), "one entry more does not fit");
        assertTrue(!PlanCapacity.holds(plan.seqs, plan.entries, plan.seqs + 1, 1, 0, 0), "one sequence more does not fit");
    }

    @Example
    void powersOfTwoAndTheirEdges() {
        assertEquals(1, PlanCapacity.nextPowerOfTwo(0));
        assertEquals(1, PlanCapacity.nextPowerOfTwo(1));
        assertEquals(2, PlanCapacity.nextPowerOfTwo(2));
        assertEquals(4, PlanCapacity.nextPowerOfTwo(3));
        assertEquals(64, PlanCapacity.nextPowerOfTwo(63));
        assertEquals(64, PlanCapacity.nextPowerOfTwo(64));
        assertEquals(128, PlanCapacity.nextPowerOfTwo(65));
        assertEquals(1 << 30, PlanCapacity.nextPowerOfTwo((1 << 29) + 1));
        assertEquals((1 << 30) + 1, PlanCapacity.nextPowerOfTwo((1 << 30) + 1), "no overflow past 2^30");
        assertEquals(300, PlanCapacity.withHeadroom(200, 0.5, 0, Integer.MAX_VALUE));
        assertEquals(400, PlanCapacity.withHeadroom(200, 1.0, 0, Integer.MAX_VALUE));
        assertEquals(500, PlanCapacity.withHeadroom(200, 1.0, 500, Integer.MAX_VALUE), "never below the current capacity");
        assertEquals(Integer.MAX_VALUE - 1, PlanCapacity.withHeadroom(Integer.MAX_VALUE - 1, 1.0, 0, Integer.MAX_VALUE),
                "the headroom is dropped where it does not fit");
    }

    @Example
    void aTableGetsAtLeastHalfAgainItsWidth() {
        // one sequence at 1000 tokens (63 columns of 16): its plan holds it up to 2048 tokens (128 columns)
        Cap plan = step(null, 1, 63, 0, 0);
        assertEquals(new Cap(1, 128), plan);
        assertEquals(plan, step(plan, 1, 128, 0, 0));
        assertEquals(new Cap(1, 256), step(plan, 1, 129, 0, 0));
        assertEquals(256, PlanCapacity.tableEntries(1, 86, 1, 0, 0), "86 x 1.5 = 129 -> 256");
        assertEquals(8 * 128, PlanCapacity.tableEntries(5, 64, 8, 0, 0), "the plan's sequences, not the batch's, times the columns");
        assertEquals(8 * 100, PlanCapacity.tableEntries(5, 64, 8, 100, 0), "reserved columns are taken as they are");
    }

    @Example
    void tablesLargerThanOneArrayAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PlanCapacity.tableEntries(65536, 65536, 65536, 0, 0));
        assertTrue(e.getMessage().contains("numSeqs=65536 x maxBlocksPerSeq=65536"), e.getMessage());
        // headroom past one array is capped, the batch itself still fits
        assertEquals(PlanCapacity.MAX_ENTRIES, PlanCapacity.tableEntries(1, 1 << 30, 4, 0, 0));
    }
}
