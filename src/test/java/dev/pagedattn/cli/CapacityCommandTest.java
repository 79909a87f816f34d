package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvDtype;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * {@link ServingSim}, the scheduler {@code capacity} runs, on random traces: every request served with exactly its
 * output, prompts prefilled at least once, the cache empty at the end, never more than {@code maxSeqs} running, and
 * preemptions where the blocks run short; and the {@code capacity} command's table and refusals.
 */
class CapacityCommandTest {
    private static final int F = DecodeBatch.NO_WINDOW;

    @Test
    void everyRequestIsServedWithItsOutputAndTheCacheEndsEmpty() {
        long seed = TestSeeds.fresh("everyRequestIsServedWithItsOutputAndTheCacheEndsEmpty");
        List<ServingSim.Request> trace = CapacityCommand.trace(60, new int[] {1, 300}, new int[] {1, 80}, seed);
        long prompts = trace.stream().mapToLong(ServingSim.Request::prompt).sum();
        long outputs = trace.stream().mapToLong(ServingSim.Request::output).sum();
        int[] windows = {32, F, 32, F};
        for (HybridKvCache cache : List.of(HybridKvCache.sharedPool(windows, 200, 8, 1, 1, KvDtype.FP16),
                HybridKvCache.of(windows, new int[] {60, 140}, 8, 1, 1, KvDtype.FP16),
                HybridKvCache.sharedPool(windows, 2_000, 8, 1, 1, KvDtype.FP16))) {
            ServingSim.Result r = ServingSim.run(cache, trace, 12, 256, 64);
            String what = "seed=" + seed + " shared=" + cache.sharesPool() + " " + r;
            assertEquals(outputs, r.generated(), what);
            assertTrue(r.prefilled() >= prompts, what);
            assertTrue(r.peakRunning() <= 12 && r.meanRunning() <= r.peakRunning(), what);
            assertTrue(r.steps() >= outputs / 12, what);
            assertEquals(0, cache.numSequences(), what);
            assertEquals(0, cache.numUsedBlocks(), what);
            cache.verify();
            if (cache.group(0).config().numBlocks() == 2_000) {
                assertEquals(0, r.preemptions(), "room for every sequence: " + what);
                assertEquals(prompts, r.prefilled(), what);
            }
        }
        HybridKvCache tight = HybridKvCache.sharedPool(windows, 64, 8, 1, 1, KvDtype.FP16);
        ServingSim.Result r = ServingSim.run(tight, trace, 12, 256, 64);
        assertTrue(r.preemptions() > 0 && r.prefilled() > prompts, "64 blocks for 12 sequences of up to 380 tokens: " + r);
    }

    @Test
    void aCacheTooSmallForOneRequestIsNamed() {
        List<ServingSim.Request> trace = List.of(new ServingSim.Request(10, 5), new ServingSim.Request(100, 50));
        HybridKvCache cache = HybridKvCache.sharedPool(new int[] {8, F}, 10, 8, 1, 1, KvDtype.FP16);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ServingSim.run(cache, trace, 4, 64, 16));
        assertTrue(e.getMessage().contains("request 1 (prompt 100, output 50)"), e.getMessage());
    }

    @Test
    void capacityPrintsTheSharedPoolNextToEachSplit() {
        long seed = TestSeeds.fresh("capacityPrintsTheSharedPoolNextToEachSplit");
        CliRun run = CliRun.of("capacity", "--model", "gpt-oss-20b", "--kv-memory", "256MB", "--requests", "40", "--prompt",
                "64..1024", "--output", "8..128", "--split-for", "2,4,4096", "--split-shares", "50", "--seed", Long.toString(seed));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("capacity gpt-oss-20b: 24 layers (12 window 128, 12 full), 8 kv-heads x 64"), run.out());
        Matcher shared = Pattern.compile("one shared pool, groups of 12 layers +(\\d+) x12 +(\\d+) ").matcher(run.out());
        assertTrue(shared.find(), run.out());
        long blockBytes = 2L * 12 * 16 * 8 * 64 * 2;
        assertEquals(256_000_000L / blockBytes, Long.parseLong(shared.group(1)), run.out());
        Matcher plain = Pattern.compile("one pool, no window releases +(\\d+) x24 +(\\d+) ").matcher(run.out());
        assertTrue(plain.find(), run.out());
        assertEquals(256_000_000L / (2L * 24 * 16 * 8 * 64 * 2), Long.parseLong(plain.group(1)), run.out());
        assertTrue(Long.parseLong(plain.group(2)) >= Long.parseLong(shared.group(2)),
                "blocks that hold every layer and are never released serve no more: " + run.out());
        assertEquals(2, Pattern.compile("a pool per group, sized for (2|4) seqs +\\d+ x12 \\+ \\d+ x12 +\\d+ ").matcher(run.out())
                .results().count(), run.out());
        assertTrue(run.out().contains("a pool per group, sized for 4096 sequences: does not fit"), run.out());
        long full = 256_000_000L / 2 / (12L * 2 * 16 * 8 * 64 * 2);
        assertTrue(Pattern.compile("a pool per group, 50% windowed +" + full + " x12 \\+ " + full + " x12 +\\d+ ").matcher(run.out())
                .find(), run.out());
        assertTrue(Pattern.compile("the shared pool against the best split \\((sized for (2|4) seqs|50% windowed)\\): \\d+\\.\\d\\dx"
                + " the steps").matcher(run.out()).find(), run.out());
    }

    @Test
    void badFlagsAreNamed() {
        String[][] cases = {
                {"--model", "llama", "--model=llama is not one of gpt-oss-20b"},
                {"--prompt", "9..3", "--prompt=9..3 needs 1 <= MIN <= MAX"},
                {"--output", "x", "--output=x is not a length"},
                {"--kv-memory", "lots", "--kv-memory=lots"},
                {"--max-seqs", "0", "--max-seqs=0 must be >= 1"},
                {"--split-for", "8,0", "--split-for=0 must be >= 1"},
                {"--split-shares", "50,100", "--split-shares=100 must be a percent in [1, 99]"},
                {"--dtype", "fp4", "dtype=fp4 is not supported"},
        };
        for (String[] c : cases) {
            CliRun run = CliRun.of("capacity", c[0], c[1]);
            assertEquals(2, run.exitCode(), run.toString());
            assertTrue(run.err().startsWith("error: " + c[2]), run.toString());
            assertEquals("", run.out(), run.toString());
        }
        CliRun small = CliRun.of("capacity", "--kv-memory", "1MB", "--requests", "3", "--seed", "5");
        assertEquals(2, small.exitCode(), small.toString());
        assertTrue(small.err().startsWith("error: --kv-memory=1MB (a shared pool of 2 blocks): the cache cannot hold request"),
                small.toString());
        assertEquals("", small.out(), small.toString());
    }
}
