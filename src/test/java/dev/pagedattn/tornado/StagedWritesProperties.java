package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * A decode plan's executions driven the way an engine drives them: steps that write anything from nothing to a prefill
 * chunk of thousands of slots (another backend on the same cache wrote it), through {@link TornadoDecodeAttention#nextExecution}
 * as a plan's step calls it. Every slot is sent exactly once, each through a graph whose scatter reads the stage it was
 * staged into (the bulk graph reads the bulk stage, every other graph the steps' stage), and each step ends with one
 * execution whose graph holds the attention, and the merge when the step merges (only the plan's first execution and
 * bulk executions, whose graphs hold every task, launch an idle one). The bulk stage's first layout
 * (in the first graph, which also ran steps that wrote and merged) fails the stage rule.
 */
class StagedWritesProperties {

    @Property(tries = 400)
    void everySlotReachesTheDeviceThroughTheStageItsGraphReads(@ForAll @IntRange(min = 1, max = 16) int stagingBlocks,
                                                                 @ForAll @IntRange(min = 0, max = 64) int bulkBlocks,
                                                                 @ForAll boolean merges,
                                                                 @ForAll boolean taskSets,
                                                                 @ForAll @Size(min = 1, max = 12) List<@IntRange(min = 0, max = 20000) Integer> writes,
                                                                 @ForAll @Size(min = 12, max = 12) List<Boolean> fused) {
        int stagingSlots = 16 * stagingBlocks;
        int bulkSlots = taskSets && 16 * bulkBlocks > stagingSlots ? 16 * bulkBlocks : 0; // as a plan sizes it
        int[] sets = TornadoDecodeAttention.taskSets(taskSets, merges, bulkSlots > 0);
        boolean uploaded = false;
        for (int step = 0; step < writes.size(); step++) {
            int write = writes.get(step);
            boolean stepFused = !merges || fused.get(step);
            String c = "stagingSlots=" + stagingSlots + " bulkSlots=" + bulkSlots + " merges=" + merges + " taskSets=" + taskSets
                    + " step " + step + " of " + writes + " fused=" + stepFused;
            int sent = 0;
            int executions = 0;
            TornadoDecodeAttention.Execution x;
            boolean firstOfPlan;
            do {
                firstOfPlan = !uploaded;
                x = TornadoDecodeAttention.nextExecution(sets, write - sent, uploaded, stagingSlots, bulkSlots, stepFused);
                int tasks = sets[x.graph()];
                boolean bulkGraph = bulkSlots > 0 && x.graph() == sets.length - 1;
                assertEquals(x.bulk(), bulkGraph, c + ": the graph's scatter reads the stage the execution staged into");
                assertTrue(x.staged() <= (x.bulk() ? bulkSlots : stagingSlots), c + ": no more than the stage holds");
                if (!uploaded) {
                    assertEquals(0, x.graph(), c + ": the first execution runs the first graph (it uploads the pools)");
                }
                if (x.staged() > 0) {
                    assertTrue((tasks & TornadoDecodeAttention.SCATTER) != 0, c + ": a staged execution scatters");
                }
                sent += x.staged();
                executions++;
                uploaded = true;
                assertTrue(x.staged() > 0 || x.last(), c + ": every execution but a step's only one sends something");
            } while (!x.last());
            assertEquals(write, sent, c + ": every slot once");
            int tasks = sets[x.graph()];
            assertTrue((tasks & TornadoDecodeAttention.ATTENTION) != 0, c + ": the last execution attends");
            if (merges) {
                assertTrue(stepFused || (tasks & TornadoDecodeAttention.MERGE) != 0, c + ": it merges when the step does");
            }
            if (taskSets && merges && !firstOfPlan && !x.bulk()) { // the first and the bulk graph hold every task
                assertEquals(!stepFused, (tasks & TornadoDecodeAttention.MERGE) != 0, c + ": no idle merge");
            }
            int bound = bulkSlots > 0 ? 1 + (write + bulkSlots - 1) / bulkSlots : Math.max(1, (write + stagingSlots - 1) / stagingSlots);
            assertTrue(executions <= bound, c + ": " + executions + " executions, at most " + bound);
        }
    }

    @Example
    void aChunkAfterTheFirstStepGoesThroughTheBulkStage() {
        int[] sets = TornadoDecodeAttention.taskSets(true, true, true);
        // a plan for 32 sequences (32-slot steps) mirrors a prefill chunk of 32 x 512 tokens: 16 bulk executions
        int remaining = 32 * 512;
        int executions = 0;
        TornadoDecodeAttention.Execution x;
        do {
            x = TornadoDecodeAttention.nextExecution(sets, remaining, true, 32, 1024, false);
            assertTrue(x.bulk(), "bulk while more than a step's stage remains");
            remaining -= x.staged();
            executions++;
        } while (!x.last());
        assertEquals(16, executions);
        // the next step writes a token per sequence: the steps' stage, and the graph of every task that is not the bulk one
        x = TornadoDecodeAttention.nextExecution(sets, 32, true, 32, 1024, false);
        assertEquals(false, x.bulk());
        assertEquals(0, x.graph(), "scatter, attention and merge on the steps' stage: the first graph");
    }
}
