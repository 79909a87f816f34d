package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The CLI end to end: exit codes 0 (ok), 1 (check failed), 2 (bad input, one-line message). */
class MainTest {
    /** A small shape for check runs: a few ms of work. */
    private static final String[] SMALL = {"--q-heads", "8", "--kv-heads", "2", "--head-dim", "64",
        "--block-size", "16", "--iterations", "2"};

    /** Stands in for a command whose first use of a library class fails that class's property check. */
    @picocli.CommandLine.Command(name = "probe")
    static final class BadPropertyCommand implements java.util.concurrent.Callable<Integer> {
        @Override
        public Integer call() {
            throw new ExceptionInInitializerError(new IllegalArgumentException("pagedattn.tornado.mergeRows=yes is not one of auto, true, false"));
        }
    }

    @Test
    void aBadLibraryPropertyIsBadInputOnOneLine() {
        picocli.CommandLine cl = new picocli.CommandLine(new BadPropertyCommand());
        java.io.StringWriter err = new java.io.StringWriter();
        cl.setErr(new java.io.PrintWriter(err, true));
        assertEquals(Main.EXIT_BAD_INPUT, Main.run(cl, new String[0]));
        assertEquals("error: pagedattn.tornado.mergeRows=yes is not one of auto, true, false" + System.lineSeparator(), err.toString());
    }

    @Test
    void demoPassesAndPrintsThePageTables() {
        CliRun run = CliRun.of("demo", "--seed", "1");
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("seed=1"), "prints its seed");
        // seq 0 holds 40 tokens of block size 16: three blocks, the last 8/16 full.
        assertTrue(Pattern.compile("seq 0 +40 tokens: logical 0 -> physical \\d+, logical 1 -> physical \\d+, logical 2 -> physical \\d+"
                + " \\(last block 8/16 full\\)").matcher(run.out()).find(), "page table of seq 0");
        assertTrue(run.out().contains("-> PASS"), "decode checked against the reference");
        assertTrue(Pattern.compile("sliding window of 8 tokens \\(batch.window\\(8\\)\\): each sequence sees its last 8 positions"
                + " \\(seq 0: 32\\.\\.39\\); vs fp64 over those: relative L2 error [0-9.e+-]+ -> PASS").matcher(run.out()).find(),
                "the windowed step, checked: " + run.out());
        assertTrue(Pattern.compile("over selected blocks only \\(batch.selectBlocks, Quest's page selection\\): each sequence attends"
                + " its first and newest blocks \\(seq 0: blocks \\[0, 2\\], 24 of its 40 tokens\\); vs fp64 over those: relative L2"
                + " error [0-9.e+-]+ -> PASS").matcher(run.out()).find(), "the selected blocks' step, checked: " + run.out());
        assertTrue(Pattern.compile("with attention sinks \\(spec.withSinks, gpt-oss\\): a logit per query head \\(head 0: [0-9.]+\\)"
                + " joins its softmax without a value, moving the output by [1-9][0-9]*%; vs fp64 with them: relative L2 error"
                + " [0-9.e+-]+ -> PASS").matcher(run.out()).find(), "the step with sinks, checked: " + run.out());
        assertTrue(Pattern.compile("with logit soft-capping at 0.5 \\(spec.withSoftCap, Gemma 2\\): every score s becomes 0.5"
                + " tanh\\(s / 0.5\\), moving the output by (0\\.[1-9]|[1-9])[0-9.]*%; vs fp64 with it: relative L2 error"
                + " [0-9.e+-]+ -> PASS").matcher(run.out()).find(), "the step with a soft cap, checked: " + run.out());
        assertTrue(Pattern.compile("with ALiBi \\(spec.withAlibi, BLOOM, MPT\\): query head h adds slope_h x \\(key - query\\) to each"
                + " score \\(the paper's slopes: head 0 0.5, head 7 0.00390625\\), moving the output by [1-9][0-9]*%; vs fp64 with it:"
                + " relative L2 error [0-9.e+-]+ -> PASS").matcher(run.out()).find(), "the step with ALiBi, checked: " + run.out());
        assertTrue(Pattern.compile("The same prompt's keys with rotary embeddings \\(RotaryEmbedding, Llama 3.1's frequencies\\),"
                + " written as two sequences at positions 0..39 and 1000000..1000039, each query rotated at its last position: one"
                + " step gives them outputs [0-9.]+e-0[4-9] apart \\(the pools' rounding; a query one position off: [1-9][0-9]%\\);"
                + " vs fp64 over the stored keys: relative L2 error [0-9.e+-]+ -> PASS").matcher(run.out()).find(),
                "the rotary line (fp16 pools: outputs within 1e-3 of each other), checked: " + run.out());
        // seq 3 (the fork of seq 0, 41 tokens) keeps 33..40 through a window of 8: blocks 0 and 1 go back
        assertTrue(Pattern.compile("releaseOutsideWindow\\(seq, 8\\) on seqs \\[1, 2, 3\\], as a model whose every layer sees a window"
                + " of 8 does \\(Mistral 7B v0.1\\): [1-9]\\d* blocks wholly before their windows go back to the pool \\(seq 3 keeps"
                + " positions 32..40 of its 41\\)\\. Free blocks: \\d+ of \\d+\\. The windowed step over what they keep: relative L2"
                + " error [0-9.e+-]+ -> PASS").matcher(run.out()).find(), "the release, checked: " + run.out());
        assertTrue(Pattern.compile("swapOut\\(seq 3\\): the K/V of the 1 block it holds \\(8192 bytes, every layer\\) go to host"
                + " memory, the block back to the pool \\(free blocks: \\d+\\); swapIn: seq 4, with its length, released run and K/V"
                + " in blocks of its own\\. The windowed step over it gives the same bits as before -> PASS").matcher(run.out()).find(),
                "the swap, checked: " + run.out());
        assertTrue(Pattern.compile("export\\(seq 1\\): \\d+ bytes \\(its shape, length, released run and K/V\\); importSequence into"
                + " a new cache of the same shape, as a decode instance after a prefill instance: seq 0 there, holding 2 blocks\\."
                + " The windowed step there gives this cache's bits -> PASS").matcher(run.out()).find(), "the transfer: " + run.out());
        // 60 tokens through a window of 8 in blocks of 4: positions 52..59 lie in blocks 13 and 14, block 12 stays until the
        // next append; the full layers hold 15 blocks; 2 x (3 + 15) blocks of 2 layers x 512 bytes against 2 x 15 x 4 x 512
        assertTrue(run.out().contains("After 60 tokens each of 2 sequences holds 3 blocks of the windowed layers (the rest went back"
                + " as it grew) and 15 of the full ones: 36864 bytes of K/V in use where a KvCache, whose blocks hold every layer,"
                + " would hold 61440."), "the hybrid model's line: " + run.out());
        assertTrue(Pattern.compile("Each layer's step through HybridAttention: worst relative L2 error [0-9.e+-]+; the same model"
                + " on one pool of the same 40 blocks for both groups \\(HybridKvCache.sharedPool, vLLM's hybrid manager; JVM"
                + " backend\\), 36 of them in use: the same bits -> PASS").matcher(run.out()).find(),
                "the hybrid model's steps, checked, and on one shared pool the same bits: " + run.out());
        assertTrue(Pattern.compile("through CascadeAttention: the 48 tokens they share read once for both .* -> PASS")
                .matcher(run.out()).find(), run.out());
        assertTrue(Pattern.compile("verifies a tree of 6 drafts \\(parents \\[-1, 0, 0, 1, 2, 2\\]\\) in one prefill with a TreeMask,"
                + " each draft seeing the context, its ancestors and itself: relative L2 error vs fp64 [0-9.e+-]+; compact keeps"
                + " the accepted path 0 -> 2 -> 5 \\(length \\d+, the rest dropped\\) and the next decode step over it: [0-9.e+-]+"
                + " -> PASS").matcher(run.out()).find(), "the token tree, checked: " + run.out());
        assertTrue(Pattern.compile("7\\. A latent cache for multi-head latent attention .*: 1152 bytes per token where a K and a V"
                + " pool would take 2304\\.\n.*outputs 512 wide per head: relative L2 error vs fp64 [0-9.e+-]+; the same vectors"
                + " in a K and a V pool give the same bits -> PASS").matcher(run.out()).find(), "the latent cache: " + run.out());
        assertEquals("", run.err());
    }

    @Test
    void demoPassesForAFreshSeed() {
        long seed = TestSeeds.fresh("demoPassesForAFreshSeed");
        CliRun run = CliRun.of("demo", "--seed", Long.toString(seed));
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("-> PASS"));
    }

    @Test
    void checkOnASmallShapePrintsErrorAndTimeAndPasses() {
        long seed = TestSeeds.fresh("checkOnASmallShapePrintsErrorAndTimeAndPasses");
        CliRun run = CliRun.of(concat(SMALL, "check", "--batch", "3", "--context", "40", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("seed=" + seed), "prints the seed");
        assertTrue(Pattern.compile("time min=[0-9.]+ ms median=[0-9.]+ ms").matcher(run.out()).find(), "prints the time");
        assertTrue(relativeL2(run.out()) < 1e-5, "relative L2 far above fp32 rounding");
        assertTrue(run.out().contains("-> PASS"));
    }

    @Test
    void checkRunsALatentCacheInDecodeAndPrefill() {
        long seed = TestSeeds.fresh("checkRunsALatentCacheInDecodeAndPrefill");
        String[] latent = {"--q-heads", "16", "--kv-heads", "1", "--head-dim", "576", "--latent-dim", "512", "--block-size", "64",
            "--iterations", "1", "--batch", "2", "--context", "70..200", "--seed", Long.toString(seed)};
        CliRun decode = CliRun.of(concat(latent, "check", "--steps", "2"));
        assertEquals(0, decode.exitCode(), decode.err());
        assertTrue(decode.out().contains("head-dim=576 block-size=64 dtype=fp16 seed=" + seed + " latent-dim=512"), decode.out());
        assertEquals(3, decode.out().lines().filter(l -> l.endsWith("-> PASS")).count(), decode.out());
        CliRun prefill = CliRun.of(concat(latent, "check", "--query-len", "1..40", "--decode-steps", "1", "--dtype", "int8"));
        assertEquals(0, prefill.exitCode(), prefill.err());
        assertTrue(relativeL2(prefill.out()) < 1e-5, prefill.out());
        assertEquals(2, prefill.out().lines().filter(l -> l.endsWith("-> PASS")).count(), prefill.out());
    }

    @Test
    void checkDecodesSelectedBlocks() {
        long seed = TestSeeds.fresh("checkDecodesSelectedBlocks");
        CliRun run = CliRun.of(concat(SMALL, "check", "--batch", "3", "--context", "40..200", "--select-blocks", "3", "--sinks",
                "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(relativeL2(run.out()) < 1e-5, run.out());
        Matcher m = Pattern.compile("selected blocks: (\\d+) of the sequences' (\\d+) tokens attended").matcher(run.out());
        assertTrue(m.find(), run.out());
        int attended = Integer.parseInt(m.group(1));
        assertTrue(attended >= 3 && attended <= 3 * 3 * 16 && attended < Integer.parseInt(m.group(2)), run.out());
    }

    @Test
    void checkAcceptsRaggedContextsAndFp32() {
        long seed = TestSeeds.fresh("checkAcceptsRaggedContextsAndFp32");
        CliRun run = CliRun.of(concat(SMALL, "check", "--context", "5..40", "--dtype", "fp32", "--batch", "6",
                "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.err());
        Matcher m = Pattern.compile("context=5\\.\\.40 \\((\\d+) tokens\\)").matcher(run.out());
        assertTrue(m.find(), "describes the ragged context");
        int total = Integer.parseInt(m.group(1));
        assertTrue(total >= 6 * 5 && total <= 6 * 40, "total tokens " + total + " outside 6 x [5, 40]");
        assertTrue(run.out().contains("dtype=fp32"));
        assertTrue(relativeL2(run.out()) < 1e-5);
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"fp8", "fp8-e5m2", "int8"})
    void checkAndDemoRunEightBitKvOnTheJvmBackend(String dtype) {
        long seed = TestSeeds.fresh("checkAndDemoRunEightBitKvOnTheJvmBackend " + dtype);
        CliRun run = CliRun.of(concat(SMALL, "check", "--context", "5..40", "--dtype", dtype, "--kv-scale", "per-head", "--batch", "3",
                "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("kv-scale=per-head"), run.out());
        assertTrue(relativeL2(run.out()) < 1e-5);
        CliRun demo = CliRun.of("demo", "--dtype", dtype, "--seed", Long.toString(seed));
        assertEquals(0, demo.exitCode(), demo.err());
        assertTrue(demo.out().contains("8-bit K/V") && !demo.out().contains("FAIL"), demo.out());
    }

    /**
     * fp16 K/V are exact in fp32 and fp64 alike, but fp32 accumulation over 64 tokens is not
     * exact, so a relative L2 of 0 (the only value under 1e-30) does not happen; the test checks
     * the printed error is really above the tolerance.
     */
    @Test
    void checkFailsWithExitCode1WhenTheErrorExceedsTheTolerance() {
        long seed = TestSeeds.fresh("checkFailsWithExitCode1WhenTheErrorExceedsTheTolerance");
        CliRun run = CliRun.of(concat(SMALL, "check", "--batch", "2", "--context", "64", "--dtype", "fp16", "--tolerance", "1e-30",
                "--seed", Long.toString(seed)));
        assertTrue(relativeL2(run.out()) > 1e-30, "the error is not over the tolerance");
        assertEquals(Main.EXIT_CHECK_FAILED, run.exitCode());
        assertTrue(run.out().contains("-> FAIL"));
    }

    @Test
    void prefixReportsSavingAndHitRateForASharedSystemPrompt() {
        CliRun run = CliRun.of("prefix", "--seed", "3", "--requests", "4");
        assertEquals(0, run.exitCode(), run.err());
        // 560-token prompts, block size 16: 35 blocks each; the 31 full blocks of the 500-token
        // system prompt are shared, so requests 1..3 add 4 blocks each: 35 + 12 = 47 of 140.
        assertTrue(run.out().contains("blocks in use: 47 with prefix caching, 140 without -> 93 blocks"), "saving");
        // Lookups: (560 - 1) / 16 = 34 per request; hits 31 x 3 = 93 of 136.
        assertTrue(run.out().contains("block lookups=136 hits=93 hit rate=68.4%"), "hit rate");
        assertTrue(run.out().contains("(bit for bit): yes"));
        assertTrue(run.out().matches("(?s).*the step over the cached blocks: \\d+ of its work items read the shared blocks once.*"),
                run.out());
    }

    /**
     * prefix --host-memory: the 4 requests' 47 blocks (all full and published: 560 tokens are 35 blocks of 16) are evicted
     * by an unrelated request into host memory; a new request with the system prompt brings its 31 blocks back and computes
     * what a cache written from scratch does. With 1 MB (15 blocks) host memory drops blocks to make room.
     */
    @Test
    void prefixWithHostMemoryBringsTheSystemPromptBack() {
        CliRun run = CliRun.of("prefix", "--seed", "3", "--requests", "4", "--host-memory", "16MB");
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("host memory: 244 blocks (16.0 MB); an unrelated request took the whole pool: 47 blocks evicted,"
                + " 47 of them copied to host memory first (0 dropped to make room)"), run.out());
        assertTrue(run.out().contains("a new request with the system prompt: 496 of 560 prompt tokens cached, 31 blocks brought back"
                + " from host memory; its attention == a cache written from scratch (bit for bit): yes"), run.out());
        assertTrue(run.out().contains("KV events a router would receive (PrefixCache.takeEvents): 47 blocks stored on device\n"),
                run.out());
        assertTrue(run.out().contains("KV events a router would receive (PrefixCache.takeEvents): 47 blocks removed from device,"
                + " 31 blocks removed from host, 31 blocks stored on device, 47 blocks stored on host"), run.out());
        CliRun small = CliRun.of("prefix", "--seed", "3", "--requests", "4", "--host-memory", "1MB");
        assertEquals(0, small.exitCode(), small.toString());
        assertTrue(small.out().contains("host memory: 15 blocks (983040 bytes); an unrelated request took the whole pool: 47 blocks"
                + " evicted, 47 of them copied to host memory first (32 dropped to make room)"), small.out());
        assertTrue(small.out().contains("47 blocks removed from device, 47 blocks removed from host, 15 blocks stored on device, 47"
                + " blocks stored on host"), "32 dropped and 15 brought back: " + small.out());
        CliRun bad = CliRun.of("prefix", "--host-memory", "1KB");
        assertEquals(2, bad.exitCode(), bad.toString());
        assertTrue(bad.err().startsWith("error: --host-memory=1KB: bytes=1000 must hold at least one block"), bad.err());
    }

    /**
     * prefix --window --full-every: a hybrid cache; the full layer reuses the system prompt's 31 blocks, the windowed one
     * only those its window of 128 sees from the first recomputed token (496) on: blocks 23..30, 8 per request.
     */
    @Test
    void prefixOnAHybridCacheSharesWhatEachGroupSees() {
        CliRun run = CliRun.of("prefix", "--seed", "3", "--requests", "4", "--window", "128", "--full-every", "2");
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("request 3: 496 of 560 prompt tokens already cached (the windowed layers reuse them from"
                + " position 368 on); after 4 generated tokens it holds 9 blocks of the windowed layers and 36 of the full"), run.out());
        assertTrue(run.out().contains("windowed layers' metrics: requests=4 block lookups=136 hits=24 "), run.out());
        assertTrue(run.out().contains("full layer's metrics: requests=4 block lookups=136 hits=93 "), run.out());
        assertTrue(run.out().contains("(bit for bit): yes"), run.out());
        CliRun bad = CliRun.of("prefix", "--window", "128");
        assertEquals(2, bad.exitCode(), bad.toString());
        assertTrue(bad.err().startsWith("error: --window=128 --full-every=null go together"), bad.err());
    }

    /**
     * prefix --chunk --full-every (Llama 4's layout): the chunked layers reuse only the first recomputed token's (496) chunk
     * of 128 (from 384), and after 4 generated tokens (position 563, chunk from 512) hold blocks 32..35.
     */
    @Test
    void prefixOnAChunkedHybridCacheSharesTheFirstRecomputedTokensChunk() {
        CliRun run = CliRun.of("prefix", "--seed", "3", "--requests", "4", "--chunk", "128", "--full-every", "4");
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("layers 0..2 through chunks of 128, layer 3 full"), run.out());
        assertTrue(run.out().contains("request 3: 496 of 560 prompt tokens already cached (the windowed layers reuse them from"
                + " position 384 on); after 4 generated tokens it holds 4 blocks of the windowed layers and 36 of the full"), run.out());
        assertTrue(run.out().contains("(bit for bit): yes"), run.out());
        CliRun.of("prefix", "--chunk", "0", "--full-every", "4").assertRefused("--chunk=0");
        CliRun.of("prefix", "--chunk", "64").assertRefused("--chunk=64", "--full-every=null");
    }

    /**
     * prefix --hybrid-pool shared: the same hits and holdings with every group's blocks from one pool, whose used blocks
     * are those of both groups' tables; refused without a hybrid cache.
     */
    @Test
    void prefixOnASharedHybridPoolHitsAsTheSplitOneDoes() {
        CliRun run = CliRun.of("prefix", "--seed", "3", "--requests", "4", "--window", "128", "--full-every", "2", "--hybrid-pool",
                "shared");
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("request 3: 496 of 560 prompt tokens already cached (the windowed layers reuse them from"
                + " position 368 on); after 4 generated tokens it holds 9 blocks of the windowed layers and 36 of the full"), run.out());
        assertTrue(run.out().contains("blocks in use: 75 of one pool of 290"), "24 windowed + 51 full, as split: " + run.out());
        assertTrue(run.out().contains("windowed layers' metrics: requests=4 block lookups=136 hits=24 "), run.out());
        assertTrue(run.out().contains("full layer's metrics: requests=4 block lookups=136 hits=93 "), run.out());
        assertTrue(run.out().contains("(bit for bit): yes"), run.out());
        CliRun bad = CliRun.of("prefix", "--hybrid-pool", "shared");
        assertEquals(2, bad.exitCode(), bad.toString());
        assertTrue(bad.err().startsWith("error: --hybrid-pool=shared lays out a HybridKvCache"), bad.err());
    }

    @Test
    void helpListsTheCommands() {
        CliRun run = CliRun.of("--help");
        assertEquals(0, run.exitCode());
        for (String command : new String[] {"demo", "check", "prefix", "capacity", "bench"}) {
            assertTrue(run.out().contains(command), command);
        }
    }

    /** Every command's help renders as written: picocli warns on stderr of a description it cannot format (a bare %). */
    @Test
    void everyCommandsHelpRendersWithoutWarnings() {
        for (String command : Main.commandLine().getSubcommands().keySet()) {
            CliRun run = CliRun.of(command, "--help");
            assertEquals(0, run.exitCode(), command + ": " + run);
            assertEquals("", run.err(), command + ": " + run);
            assertTrue(run.out().contains("Usage:"), command + ": " + run);
        }
    }

    static Stream<Arguments> badInputs() {
        return Stream.of(
                bad(new String[] {"check", "--head-dim", "81"}, "--head-dim=81"),
                bad(new String[] {"check", "--head-dim", "1032"}, "--head-dim=1032"),
                bad(new String[] {"check", "--latent-dim", "512", "--head-dim", "576"}, "--latent-dim=512", "--kv-heads 1, not 8"),
                bad(new String[] {"check", "--latent-dim", "200", "--head-dim", "128", "--kv-heads", "1"}, "--latent-dim=200",
                        "--head-dim=128"),
                bad(new String[] {"check", "--latent-dim", "-1"}, "--latent-dim=-1"),
                bad(new String[] {"check", "--select-blocks", "0"}, "--select-blocks=0"),
                bad(new String[] {"check", "--select-blocks", "4", "--window", "64"}, "--select-blocks=4", "--window"),
                bad(new String[] {"check", "--select-blocks", "4", "--query-len", "8"}, "--select-blocks=4", "--query-len"),
                bad(new String[] {"check", "--latent-dim", "64", "--kv-heads", "1", "--q-heads", "4", "--cascade", "32"},
                        "--latent-dim=64", "--cascade"),
                bad(new String[] {"check", "--context", "0"}, "--context=0"),
                bad(new String[] {"check", "--context", "5..x"}, "--context=5..x"),
                bad(new String[] {"check", "--context", "9..3"}, "--context=9..3"),
                bad(new String[] {"check", "--context", "..7"}, "--context=..7"),
                bad(new String[] {"check", "--batch", "0"}, "--batch=0"),
                bad(new String[] {"check", "--q-heads", "12", "--kv-heads", "8"}, "--q-heads=12", "--kv-heads=8"),
                bad(new String[] {"check", "--kv-heads", "0"}, "--kv-heads=0"),
                bad(new String[] {"check", "--dtype", "fp9"}, "fp9"),
                bad(new String[] {"check", "--dtype", "fp8", "--kv-scale", "per-row"}, "--kv-scale=per-row"),
                bad(new String[] {"check", "--dtype", "fp16", "--kv-scale", "per-head"}, "--kv-scale=per-head", "8-bit"),
                bad(new String[] {"demo", "--dtype", "int4"}, "dtype=int4"),
                bad(new String[] {"demo", "--dtype", "int8", "--kv-scale", "bogus"}, "--kv-scale=bogus"),
                bad(new String[] {"check", "--block-size", "0"}, "--block-size=0"),
                bad(new String[] {"check", "--backend", "cuda"}, "--backend=cuda"),
                bad(new String[] {"check", "--iterations", "0"}, "--iterations=0"),
                bad(new String[] {"check", "--tolerance", "0"}, "--tolerance=0"),
                bad(new String[] {"check", "--tolerance", "NaN"}, "--tolerance=NaN"),
                bad(new String[] {"check", "--tolerance", "Infinity"}, "--tolerance=Infinity"),
                bad(new String[] {"check", "--tolerance", "1e400"}, "--tolerance=Infinity"),
                bad(new String[] {"check", "--tolerance=-1e-3"}, "--tolerance=-0.001"),
                bad(new String[] {"check", "--variant", "bogus"}, "--variant=bogus"),
                bad(new String[] {"check", "--kernel", "bogus", "--backend", "tornado"}, "--kernel=bogus", "stream"),
                bad(new String[] {"check", "--kernel", "stream"}, "--kernel=stream", "--backend tornado"),
                bad(new String[] {"check", "--kernel", "stream", "--backend", "tornado", "--query-len", "4"}, "--kernel=stream", "--query-len"),
                bad(new String[] {"check", "--v-sums", "fp8", "--backend", "tornado"}, "--v-sums=fp8", "fp32, fp16"),
                bad(new String[] {"check", "--v-sums", "fp16"}, "--v-sums=fp16", "--backend tornado"),
                bad(new String[] {"bench", "--v-sums", "fp32,half"}, "--v-sums=half"),
                bad(new String[] {"bench", "--v-sums", "fp16", "--dtype", "fp8"}, "--v-sums=fp16", "--dtype=fp8"),
                bad(new String[] {"bench", "--q-heads", "12"}, "--q-heads=12"),
                bad(new String[] {"bench", "--shared-prefix", "0"}, "--shared-prefix=0"),
                bad(new String[] {"bench", "--shared-prefix", "64", "--window", "32"}, "--shared-prefix=64", "--window"),
                bad(new String[] {"bench", "--head-dim", "100"}, "--head-dim=100"),
                bad(new String[] {"bench", "--block-size", "0"}, "--block-size=0"),
                bad(new String[] {"bench", "--sweeps", "loop", "--loop-reserve-seqs", "0"}, "--loop-reserve-seqs=0"),
                bad(new String[] {"bench", "--head-dim", "512"}, "--head-dim=512"),
                bad(new String[] {"bench", "--release"}, "--release", "--window"),
                bad(new String[] {"bench", "--release", "--window", "64", "--sinks"}, "--release", "--sinks"),
                bad(new String[] {"bench", "--lse", "--window", "64"}, "--lse", "--window"),
                bad(new String[] {"check", "--device", "garbage"}, "--device=garbage"),
                bad(new String[] {"check", "--device", "99999999999:0"}, "--device=99999999999:0"),
                bad(new String[] {"demo", "--device", "garbage"}, "--device=garbage"),
                bad(new String[] {"demo", "--backend", "cuda"}, "--backend=cuda"),
                bad(new String[] {"demo", "--backend", "tornado"}, "tornado launcher"),
                bad(new String[] {"bench", "--device", "garbage"}, "--device=garbage"),
                bad(new String[] {"bench", "--variants", "auto,bogus"}, "--variants=bogus"),
                bad(new String[] {"check", "--batch", "many"}, "--batch", "many"),
                bad(new String[] {"check", "--no-such-flag"}, "--no-such-flag"),
                bad(new String[] {"frobnicate"}, "frobnicate"),
                bad(new String[] {"prefix", "--requests", "0"}, "--requests=0"),
                bad(new String[] {"prefix", "--block-size", "0"}, "--block-size=0"),
                bad(new String[] {"prefix", "--system-prompt", "0", "--suffix", "0"}, "--system-prompt=0", "--suffix=0"),
                bad(new String[] {"demo", "--seed", "abc"}, "abc"),
                bad(concat(SMALL, "check", "--context", "8", "--backend", "tornado"), "tornado launcher"),
                bad(new String[] {"bench"}, "TornadoVM"));
    }

    private static Arguments bad(String[] args, String... fragments) {
        return Arguments.argumentSet(String.join(" ", args), args, fragments);
    }

    @ParameterizedTest
    @MethodSource("badInputs")
    void badInputExitsWith2AndAOneLineMessageNamingTheValue(String[] args, String[] fragments) {
        CliRun run = CliRun.of(args).assertRefused(fragments);
        assertEquals("", run.out(), "printed output before refusing the input (validate first, then print)");
    }

    /** The cache is sized for every step's new token: 69 appends cross 5 block boundaries per sequence. */
    @Test
    void checkRunsEveryStepItIsAskedFor() {
        long seed = TestSeeds.fresh("checkRunsEveryStepItIsAskedFor");
        CliRun run = CliRun.of(concat(SMALL, "check", "--batch", "2", "--context", "16", "--steps", "70",
                "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("step 70 (every sequence one token longer)"), run.toString());
        assertTrue(run.out().contains("step 70 again (nothing written since)"), run.toString());
        // the first step, then steps 2..70 twice each (with a new token, then with nothing new)
        assertEquals(1 + 2 * 69, Pattern.compile("-> PASS").matcher(run.out()).results().count(), run.toString());
    }

    /** Through the backend's own rows (the JVM backend's: exactly the batch's), over layers and steps. */
    @Test
    void checkThroughTheBackendsOwnRowsPasses() {
        long seed = TestSeeds.fresh("checkThroughTheBackendsOwnRowsPasses");
        CliRun run = CliRun.of(concat(SMALL, "check", "--batch", "3", "--context", "1..40", "--layers", "2", "--steps", "3",
                "--step-rows", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertEquals(1 + 1 + 2 * 2, Pattern.compile("-> PASS").matcher(run.out()).results().count(), run.toString());
        assertTrue(relativeL2(run.out()) < 1e-5, run.toString());
    }

    private static double relativeL2(String out) {
        Matcher m = Pattern.compile("relative L2=([0-9.eE+-]+)").matcher(out);
        assertTrue(m.find(), "no relative L2 in the output");
        return Double.parseDouble(m.group(1));
    }

    private static String[] concat(String[] options, String command, String... more) {
        String[] all = new String[1 + options.length + more.length];
        all[0] = command;
        System.arraycopy(options, 0, all, 1, options.length);
        System.arraycopy(more, 0, all, 1 + options.length, more.length);
        return all;
    }
}
