package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Shapes past what a pool or the JVM can hold end in one line naming the flags, exit 2, before
 * anything is allocated or printed; multi-layer caches and byte budgets work.
 */
class CheckCapacityTest {

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        // each of these died with a negative size, an IndexOutOfBounds or an OutOfMemoryError before
        "--batch 5000000 --context 1|--batch=5000000|blocks",
        "--context 2147483647|--context=2147483647|at most",
        "--batch 2000000000 --context 1|--batch=2000000000|blocks",
        "--batch 2000000 --context 1 --q-heads 64 --kv-heads 1 --head-dim 8 --block-size 1|--q-heads=64|left",
        "--batch 1024 --context 32768|--context=32768|at most 1048575 blocks",
        "--batch 4 --context 100 --kv-memory 1MB|--kv-memory=1MB|hold 15 blocks",
        "--batch 4 --context 100 --kv-memory 100|--kv-memory=100|holds no block",
        "--batch 4 --context 100 --kv-memory 12XB|--kv-memory=12XB|not a byte count",
        "--batch 4 --context 100 --layers 0|--layers=0|layers=0",
        "--batch 4 --context 100 --max-array-elements 0|--max-array-elements=0|outside",
        "--batch 4 --context 100 --max-array-elements 100|--max-array-elements=100|one KV head of a layer takes"})
    void impossibleShapesEndInOneLineNamingTheFlags(String args, String flag, String reason) {
        CliRun run = CliRun.of(("check " + args + " --iterations 1").split(" "));
        assertEquals(Main.EXIT_BAD_INPUT, run.exitCode(), run.err());
        String err = run.err().strip();
        assertTrue(err.startsWith("error: ") && !err.contains("\n"), "one line: " + err);
        assertTrue(err.contains(flag) && err.contains(reason), err);
        assertFalse(err.contains("Exception") || err.contains("\tat "), "no stack trace: " + err);
        assertEquals("", run.out(), "nothing printed before the error");
    }

    @Test
    void checkDecodesEveryLayerOfACacheSizedFromABudget() {
        long seed = TestSeeds.fresh("checkDecodesEveryLayerOfACacheSizedFromABudget");
        CliRun run = CliRun.of("check", "--q-heads", "4", "--kv-heads", "2", "--head-dim", "16", "--batch", "3", "--context", "5..40",
                "--layers", "3", "--kv-memory", "64KiB", "--iterations", "1", "--seed", Long.toString(seed));
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("layers=3"), run.out());
        for (int layer = 1; layer < 3; layer++) {
            assertTrue(run.out().matches("(?s).*layer " + layer + ": time [0-9.]+ ms .* relative L2=[0-9.e-]+ -> PASS.*"), run.out());
        }
    }

    @Test
    void checkSplitsALayerLargerThanTheArrayLimitIntoKvHeadShards() {
        long seed = TestSeeds.fresh("checkSplitsALayerLargerThanTheArrayLimitIntoKvHeadShards");
        // 3 x 60 tokens + 4 spare blocks each: 57 blocks x 4 slots x 16 dims = 3648 elements per KV head, two fit
        CliRun run = CliRun.of("check", "--q-heads", "12", "--kv-heads", "6", "--head-dim", "16", "--block-size", "4", "--batch", "3",
                "--context", "60", "--max-array-elements", "8000", "--steps", "2", "--iterations", "1", "--seed", Long.toString(seed));
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("shards=3 (2 KV heads per array)"), run.out());
        assertTrue(run.out().matches("(?s)(.*-> PASS.*){2}"), run.out());
        CliRun prefill = CliRun.of("check", "--q-heads", "8", "--kv-heads", "4", "--head-dim", "16", "--block-size", "4", "--batch", "2",
                "--context", "30", "--query-len", "1..9", "--window", "5", "--dtype", "int8", "--kv-scale", "per-head",
                "--max-array-elements", "2000", "--iterations", "1", "--seed", Long.toString(seed)); // 16+ blocks: one head each
        assertEquals(0, prefill.exitCode(), prefill.err());
        assertTrue(prefill.out().contains("shards=4 (1 KV head per array)") && prefill.out().contains("-> PASS"), prefill.out());
    }
}
