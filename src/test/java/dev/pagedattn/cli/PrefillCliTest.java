package dev.pagedattn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.TestSeeds;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The prefill side of the CLI: check --query-len/--window, the demo's prefix hit, bench's prefill flags. */
class PrefillCliTest {
    private static final String[] SMALL = {"--q-heads", "8", "--kv-heads", "2", "--head-dim", "32", "--block-size", "8",
            "--iterations", "1"};

    @Test
    void checkWithQueryLenAndWindowRunsPrefillChunksAgainstTheReference() {
        long seed = TestSeeds.fresh("checkWithQueryLenAndWindowRunsPrefillChunksAgainstTheReference");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "20..40", "--query-len", "1..9", "--window", "6",
                "--steps", "2", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("check prefill") && run.out().contains("window=6"), "describes the prefill shape");
        Matcher m = Pattern.compile("relative L2=([0-9.eE+-]+)").matcher(run.out());
        int checks = 0;
        while (m.find()) {
            assertTrue(Double.parseDouble(m.group(1)) < 1e-5, "relative L2 far above fp32 rounding: " + m.group(1));
            checks++;
        }
        assertEquals(2, checks, "one check per step");
        assertTrue(run.out().contains("TFLOP/s"), "prints the rate");
    }

    /** --window without --query-len: decode steps through a sliding window, each against the windowed fp64 reference. */
    @Test
    void checkWithAWindowDecodesThroughIt() {
        long seed = TestSeeds.fresh("checkWithAWindowDecodesThroughIt");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "20..90", "--window", "13", "--steps", "2",
                "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("window=13 backend=jvm"), run.out());
        assertEquals(3, Pattern.compile("relative L2=[0-9.e+-]+ max abs=[0-9.e+-]+ tolerance=1.0e-03 -> PASS").matcher(run.out())
                .results().count(), "the first step, the next and the next again: " + run);
    }

    /**
     * --release: the blocks before each window go back (and are refilled with NaN by another sequence) before the first
     * step and before every later append, in decode over two layers and in prefill chunks with decode steps after them;
     * every check passes, the line names what was released, and a --release without a window (or with full layers) is
     * refused by name.
     */
    @Test
    void checkWithReleaseGivesBackTheBlocksBeforeTheWindowAndStillPasses() {
        long seed = TestSeeds.fresh("checkWithReleaseGivesBackTheBlocksBeforeTheWindowAndStillPasses");
        CliRun decode = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "60..200", "--window", "13", "--steps", "3",
                "--layers", "2", "--release", "--seed", Long.toString(seed)));
        assertEquals(0, decode.exitCode(), decode.toString());
        Matcher released = Pattern.compile("released (\\d+) of the (\\d+) blocks the 3 sequences had for \\d+ tokens").matcher(decode.out());
        assertTrue(released.find() && Integer.parseInt(released.group(1)) >= 3 * (60 - 13 - 8) / 8, decode.out());
        assertEquals(6, Pattern.compile("-> PASS").matcher(decode.out()).results().count(), "layers 0 and 1, steps 2, 2 again, 3,"
                + " 3 again: " + decode);
        CliRun prefill = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "50..90", "--query-len", "1..9", "--window",
                "6", "--steps", "2", "--decode-steps", "2", "--dtype", "int8", "--release", "--seed", Long.toString(seed)));
        assertEquals(0, prefill.exitCode(), prefill.toString());
        assertTrue(prefill.out().contains("released "), prefill.out());
        assertEquals(6, Pattern.compile("-> PASS").matcher(prefill.out()).results().count(), "two chunks, two decodes after each: " + prefill);
        CliRun refused = CliRun.of(concat("check", SMALL, "--release"));
        assertEquals(2, refused.exitCode(), refused.toString());
        assertTrue(refused.err().startsWith("error: --release gives back the blocks before each sequence's window: it needs"
                + " --window"), refused.err());
    }

    /**
     * --chunk: chunked local attention in decode steps, in prefill chunks (with a token tree) and on Llama 4's layout (three
     * chunked layers of four in a HybridKvCache that releases), every check against fp64; bad values refused by name.
     */
    @Test
    void checkWithChunksRunsChunkedLocalAttention() {
        long seed = TestSeeds.fresh("checkWithChunksRunsChunkedLocalAttention");
        CliRun decode = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "20..90", "--chunk", "16", "--steps", "2",
                "--release", "--seed", Long.toString(seed)));
        assertEquals(0, decode.exitCode(), decode.toString());
        assertTrue(decode.out().contains("chunk=16 backend=jvm"), decode.out());
        assertEquals(3, Pattern.compile("-> PASS").matcher(decode.out()).results().count(), decode.toString());
        CliRun prefill = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "40..90", "--query-len", "5..30", "--chunk",
                "12", "--tree", "--steps", "2", "--decode-steps", "1", "--seed", Long.toString(seed)));
        assertEquals(0, prefill.exitCode(), prefill.toString());
        assertTrue(prefill.out().contains("check prefill") && prefill.out().contains("chunk=12"), prefill.out());
        assertEquals(4, Pattern.compile("-> PASS").matcher(prefill.out()).results().count(), "two chunks, a decode after each: "
                + prefill);
        CliRun hybrid = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "100..200", "--chunk", "24", "--layers", "4",
                "--full-every", "4", "--release", "--steps", "2", "--seed", Long.toString(seed)));
        assertEquals(0, hybrid.exitCode(), hybrid.toString());
        assertTrue(hybrid.out().contains("group 0 chunks of 24 (layers 0,1,2), group 1 full (layers 3)"), hybrid.out());
        assertEquals(8, Pattern.compile("layer [0-3] \\((chunks of 24|full), group [01]\\) decode: [^\\n]*-> PASS")
                .matcher(hybrid.out()).results().count(), "four layers, two steps: " + hybrid);
        CliRun.of(concat("check", SMALL, "--chunk", "0")).assertRefused("--chunk=0");
        CliRun.of(concat("check", SMALL, "--chunk", "8", "--window", "9")).assertRefused("--chunk=8", "--window=9");
        CliRun.of(concat("check", SMALL, "--chunk", "8", "--query-len", "3", "--non-causal")).assertRefused("--chunk=8");
    }

    /** --lse: the log-sum-exp of a decode step and of a prefill step against fp64; refused with the hybrid check. */
    @Test
    void checkWithLseChecksTheLogSumExp() {
        long seed = TestSeeds.fresh("checkWithLseChecksTheLogSumExp");
        Pattern line = Pattern.compile("log-sum-exp \\(lse\\) of (\\d+) rows x heads vs fp64: max error=([0-9.e+-]+) .*-> PASS");
        CliRun decode = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "20..90", "--sinks", "--lse", "--seed",
                Long.toString(seed)));
        assertEquals(0, decode.exitCode(), decode.toString());
        Matcher m = line.matcher(decode.out());
        assertTrue(m.find(), decode.out());
        assertEquals(24, Integer.parseInt(m.group(1)), "3 sequences x 8 heads");
        assertTrue(Double.parseDouble(m.group(2)) < 1e-5, decode.out());
        CliRun prefill = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "30..60", "--query-len", "5", "--chunk", "16",
                "--lse", "--seed", Long.toString(seed)));
        assertEquals(0, prefill.exitCode(), prefill.toString());
        m = line.matcher(prefill.out());
        assertTrue(m.find(), prefill.out());
        assertEquals(80, Integer.parseInt(m.group(1)), "10 queries x 8 heads");
        CliRun.of(concat("check", SMALL, "--lse", "--window", "16", "--full-every", "2", "--release")).assertRefused("--lse",
                "--full-every");
    }

    /**
     * --cascade: runs of forks decoded by CascadeAttention, output and lse against fp64, the groups printed, the step timed
     * next to the plain one; what it cannot take is refused by name.
     */
    @Test
    void checkWithCascadeDecodesSharedPromptsOnce() {
        long seed = TestSeeds.fresh("checkWithCascadeDecodesSharedPromptsOnce");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "7", "--context", "50..90", "--cascade", "40", "--sharers", "3",
                "--soft-cap", "0.5", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("groups (members x shared tokens): 3 x 40, 3 x 40"), run.out());
        assertTrue(Pattern.compile("error vs fp64 reference: relative L2=\\S+ .*-> PASS").matcher(run.out()).find(), run.out());
        assertTrue(run.out().contains("log-sum-exp (lse) of 56 rows x heads vs fp64"), run.out());
        assertTrue(Pattern.compile("cascade step median=\\S+ ms, plain step median=\\S+ ms").matcher(run.out()).find(), run.out());
        assertTrue(Pattern.compile("in a cascade step \\(medians\\): prefill calls \\S+ ms, decode calls \\S+ ms").matcher(run.out()).find(),
                run.out());
        CliRun.of(concat("check", SMALL, "--cascade", "40", "--context", "40")).assertRefused("--cascade=40", "shortest is 40");
        CliRun.of(concat("check", SMALL, "--cascade", "4")).assertRefused("--cascade=4", "--block-size=8");
        CliRun.of(concat("check", SMALL, "--cascade", "16", "--sinks")).assertRefused("--cascade=16", "--sinks");
        CliRun.of(concat("check", SMALL, "--cascade", "16", "--max-array-elements", "1000")).assertRefused("--max-array-elements");
    }

    /**
     * --release with --full-every: a HybridKvCache whose windowed layers release while the full layers keep every block;
     * decode steps and a prefill chunk with a decode step after it, every layer against its group's fp64 reference; the
     * line of held blocks shows the windowed group holding less; --step-rows is refused there by name.
     */
    @Test
    void checkWithReleaseAndFullEveryRunsAHybridCache() {
        long seed = TestSeeds.fresh("checkWithReleaseAndFullEveryRunsAHybridCache");
        CliRun decode = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "100..300", "--window", "13", "--layers", "4",
                "--full-every", "2", "--release", "--steps", "2", "--sinks", "--seed", Long.toString(seed)));
        assertEquals(0, decode.exitCode(), decode.toString());
        assertTrue(decode.out().contains("hybrid: a pool each for group 0 window 13 (layers 0,2), group 1 full (layers 1,3) sinks"), decode.out());
        Matcher held = Pattern.compile("hold (\\d+) blocks in group 0 and (\\d+) blocks in group 1").matcher(decode.out());
        assertTrue(held.find(), decode.out());
        int windowed = Integer.parseInt(held.group(1));
        assertTrue(windowed <= 3 * HYBRID_WINDOW_BLOCKS && windowed < Integer.parseInt(held.group(2)), decode.out());
        assertEquals(8, Pattern.compile("layer [0-3] \\((window 13|full), group [01]\\) decode: [^\\n]*-> PASS").matcher(decode.out())
                .results().count(), "four layers, two steps: " + decode);
        CliRun prefill = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "60..120", "--query-len", "5..20",
                "--window", "9", "--layers", "3", "--full-every", "3", "--release", "--steps", "2", "--dtype", "fp8",
                "--seed", Long.toString(seed)));
        assertEquals(0, prefill.exitCode(), prefill.toString());
        assertEquals(3, Pattern.compile("prefill: [^\\n]*-> PASS").matcher(prefill.out()).results().count(), prefill.toString());
        assertEquals(3, Pattern.compile("decode: [^\\n]*-> PASS").matcher(prefill.out()).results().count(), prefill.toString());
        CliRun refused = CliRun.of(concat("check", SMALL, "--window", "9", "--layers", "2", "--full-every", "2", "--release",
                "--step-rows"));
        assertEquals(2, refused.exitCode(), refused.toString());
        assertTrue(refused.err().startsWith("error: --release with --full-every checks a HybridKvCache: --step-rows"), refused.err());
    }

    /**
     * --hybrid-pool shared: the windows' layers in groups of the fewest one window has, on one pool; every layer of a decode
     * step and of a prefill chunk passes; without a hybrid cache, and with an unknown value, it is refused by name.
     */
    @Test
    void checkWithASharedHybridPoolCutsTheWindowsIntoGroupsOfOnePool() {
        long seed = TestSeeds.fresh("checkWithASharedHybridPoolCutsTheWindowsIntoGroupsOfOnePool");
        CliRun decode = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "100..300", "--window", "13", "--layers", "6",
                "--full-every", "3", "--release", "--hybrid-pool", "shared", "--steps", "2", "--seed", Long.toString(seed)));
        assertEquals(0, decode.exitCode(), decode.toString());
        assertTrue(decode.out().contains("for group 0 window 13 (layers 0,1), group 1 window 13 (layers 3,4), group 2 full"
                + " (layers 2,5)"), decode.out());
        assertTrue(Pattern.compile("hybrid: one pool of \\d+ blocks for").matcher(decode.out()).find(), decode.out());
        assertEquals(12, Pattern.compile("layer [0-5] \\((window 13|full), group [012]\\) decode: [^\\n]*-> PASS")
                .matcher(decode.out()).results().count(), "six layers, two steps: " + decode);
        CliRun prefill = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "60..120", "--query-len", "5..20",
                "--window", "9", "--layers", "4", "--full-every", "2", "--release", "--hybrid-pool", "shared", "--dtype", "int8",
                "--seed", Long.toString(seed)));
        assertEquals(0, prefill.exitCode(), prefill.toString());
        assertEquals(4, Pattern.compile("prefill: [^\\n]*-> PASS").matcher(prefill.out()).results().count(), prefill.toString());
        CliRun plain = CliRun.of(concat("check", SMALL, "--window", "9", "--hybrid-pool", "shared"));
        assertEquals(2, plain.exitCode(), plain.toString());
        assertTrue(plain.err().startsWith("error: --hybrid-pool=shared lays out a HybridKvCache"), plain.err());
        CliRun tornado = CliRun.of(concat("check", SMALL, "--window", "9", "--layers", "2", "--full-every", "2", "--release",
                "--hybrid-pool", "shared", "--backend", "tornado"));
        assertEquals(2, tornado.exitCode(), tornado.toString());
        assertTrue(tornado.err().startsWith("error: --hybrid-pool=shared runs on --backend jvm, not tornado"), tornado.err());
        assertEquals("", tornado.out(), tornado.toString());
        CliRun bad = CliRun.of(concat("check", SMALL, "--window", "9", "--layers", "2", "--full-every", "2", "--release",
                "--hybrid-pool", "one"));
        assertEquals(2, bad.exitCode(), bad.toString());
        assertTrue(bad.err().startsWith("error: --hybrid-pool=one is not one of split, shared"), bad.err());
    }

    /**
     * --swap: every sequence goes to host memory and back after the first step (the freed blocks refilled with NaN in
     * between), and the step over the new ids passes, as do the steps after it; with --query-len it is refused by name.
     */
    @Test
    void checkWithSwapDecodesTheSequencesThatCameBack() {
        long seed = TestSeeds.fresh("checkWithSwapDecodesTheSequencesThatCameBack");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "20..90", "--swap", "--steps", "2",
                "--dtype", "fp8", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains("after swapOut of seqs [0, 1, 2] and swapIn as [4, 5, 6] (their freed blocks refilled with"
                + " NaN in between):"), run.out());
        assertEquals(4, Pattern.compile("-> PASS").matcher(run.out()).results().count(), "first, swapped, step 2 and again: " + run);
        CliRun refused = CliRun.of(concat("check", SMALL, "--swap", "--query-len", "4"));
        assertEquals(2, refused.exitCode(), refused.toString());
        assertTrue(refused.err().startsWith("error: --swap checks a decode step after a swap to host memory and back: it takes no"
                + " --query-len=4"), refused.err());
    }

    /** ceil((13 + 1) / 8) + 1: the blocks a window of 13 touches at block size 8, with the block a token opens. */
    private static final int HYBRID_WINDOW_BLOCKS = 3;

    /** --full-every: a model's mix of windowed and full layers, each layer checked against its own reference. */
    @Test
    void checkWithFullEveryMixesWindowedAndFullLayers() {
        long seed = TestSeeds.fresh("checkWithFullEveryMixesWindowedAndFullLayers");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "30..200", "--layers", "4", "--window", "20",
                "--full-every", "2", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        for (String layer : new String[] {"layer 1 \\(whole context\\)", "layer 2 \\(window 20\\)", "layer 3 \\(whole context\\)"}) {
            assertTrue(Pattern.compile(layer + ": time [0-9.]+ ms [^\\n]*relative L2=[0-9.e+-]+ -> PASS").matcher(run.out()).find(),
                    layer + ": " + run.out());
        }
        CliRun bad = CliRun.of(concat("check", SMALL, "--layers", "2", "--window", "20", "--full-every", "1"));
        CliRun prefill = CliRun.of(concat("check", SMALL, "--layers", "2", "--window", "20", "--full-every", "2", "--query-len", "4"));
        assertEquals(2, prefill.exitCode(), prefill.toString());
        assertTrue(prefill.err().contains("with --query-len only with --release"), prefill.err());
        assertEquals(2, bad.exitCode(), bad.toString());
        assertTrue(bad.err().startsWith("error: --full-every=1 must be >= 2"), bad.err());
    }

    /**
     * --soft-cap: decode, then prefill chunks with the decode steps after them, each against the capped fp64 reference;
     * the check says how far the cap moves the result (a cap of 0.25 bends these random scores).
     */
    @Test
    void checkWithASoftCapCapsDecodeAndPrefill() {
        long seed = TestSeeds.fresh("checkWithASoftCapCapsDecodeAndPrefill");
        for (String[] mode : new String[][] {{"--steps", "2"}, {"--query-len", "1..9", "--decode-steps", "1", "--sinks"}}) {
            String[] options = Stream.concat(Stream.of(SMALL), Stream.of(mode)).toArray(String[]::new);
            CliRun run = CliRun.of(concat("check", options, "--batch", "3", "--context", "20..90", "--soft-cap", "0.25", "--seed",
                    Long.toString(seed)));
            assertEquals(0, run.exitCode(), run.toString());
            assertTrue(run.out().contains(mode.length > 2 ? "sinks+cap=0.25 backend=jvm" : " cap=0.25 backend=jvm"), run.out());
            Matcher moved = Pattern.compile("soft cap 0.25 moves the fp64 result by ([0-9.e+-]+) \\(relative L2\\)\n").matcher(run.out());
            assertTrue(moved.find() && Double.parseDouble(moved.group(1)) > 1e-3, "the cap matters to the check: " + run.out());
            assertTrue(Pattern.compile("relative L2=[0-9.e+-]+ max abs=[0-9.e+-]+ tolerance=1.0e-03 -> PASS").matcher(run.out()).find()
                    && !run.out().contains("FAIL"), run.toString());
        }
    }

    /**
     * {@code --tree}: every sequence's new tokens verified as a random token tree, over two chunks and with the decode
     * steps after each; the check says how far the trees move the result.
     */
    @Test
    void checkWithTreeVerifiesTokenTreesAgainstTheReference() {
        long seed = TestSeeds.fresh("checkWithTreeVerifiesTokenTreesAgainstTheReference");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "40..90", "--query-len", "2..40", "--tree",
                "--steps", "2", "--decode-steps", "1", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains(" trees backend=jvm"), run.out());
        Matcher moved = Pattern.compile("token trees move the fp64 result by ([0-9.e+-]+) \\(relative L2\\)\n").matcher(run.out());
        assertTrue(moved.find() && Double.parseDouble(moved.group(1)) > 1e-3, "the trees matter to the check: " + run.out());
        assertEquals(4, Pattern.compile("-> PASS").matcher(run.out()).results().count(), "two tree chunks, two decode steps: " + run);
        assertFalse(run.out().contains("FAIL"), run.toString());
    }

    /** {@code --spans}: random bidirectional spans among every sequence's new tokens, over two chunks, decode steps after each. */
    @Test
    void checkWithSpansLetsSpanTokensSeeEachOther() {
        long seed = TestSeeds.fresh("checkWithSpansLetsSpanTokensSeeEachOther");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "40..90", "--query-len", "2..40", "--spans",
                "--steps", "2", "--decode-steps", "1", "--window", "20", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains(" spans backend=jvm"), run.out());
        Matcher moved = Pattern.compile("bidirectional spans move the fp64 result by ([0-9.e+-]+) \\(relative L2\\)\n").matcher(run.out());
        assertTrue(moved.find() && Double.parseDouble(moved.group(1)) > 1e-3, "the spans matter to the check: " + run.out());
        assertEquals(4, Pattern.compile("-> PASS").matcher(run.out()).results().count(), "two chunks, two decode steps: " + run);
    }

    /** {@code --non-causal}: every query sees its whole context, over two chunks, with the decode steps after each. */
    @Test
    void checkWithNonCausalLetsEveryQuerySeeItsWholeContext() {
        long seed = TestSeeds.fresh("checkWithNonCausalLetsEveryQuerySeeItsWholeContext");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "40..90", "--query-len", "2..40", "--non-causal",
                "--steps", "2", "--decode-steps", "1", "--sinks", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertTrue(run.out().contains(" sinks+non-causal backend=jvm"), run.out());
        Matcher moved = Pattern.compile("dropping causality moves the fp64 result by ([0-9.e+-]+) \\(relative L2\\)\n").matcher(run.out());
        assertTrue(moved.find() && Double.parseDouble(moved.group(1)) > 1e-3, "non-causality matters to the check: " + run.out());
        assertEquals(4, Pattern.compile("-> PASS").matcher(run.out()).results().count(), "two chunks, two decode steps: " + run);
    }

    /** The decode steps after windowed prefill chunks see the same window. */
    @Test
    void checkWithAWindowDecodesAfterEachChunkThroughIt() {
        long seed = TestSeeds.fresh("checkWithAWindowDecodesAfterEachChunkThroughIt");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "2", "--context", "30..60", "--query-len", "1..9", "--window", "5",
                "--decode-steps", "2", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertEquals(3, Pattern.compile("-> PASS").matcher(run.out()).results().count(), "one prefill check, two decode checks: " + run);
    }

    @Test
    void checkThroughTheBackendsOwnRowsPasses() {
        long seed = TestSeeds.fresh("prefill checkThroughTheBackendsOwnRowsPasses");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "20..40", "--query-len", "1..9", "--steps", "2",
                "--step-rows", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertEquals(2, Pattern.compile("-> PASS").matcher(run.out()).results().count(), run.toString());
    }

    /** An engine's flow on one cache: each prefill chunk, then decode steps by a decode backend, every one checked. */
    @Test
    void checkWithDecodeStepsDecodesAfterEachPrefillChunkOnTheSameCache() {
        long seed = TestSeeds.fresh("checkWithDecodeStepsDecodesAfterEachPrefillChunkOnTheSameCache");
        CliRun run = CliRun.of(concat("check", SMALL, "--batch", "3", "--context", "20..40", "--query-len", "1..9", "--steps", "2",
                "--decode-steps", "3", "--seed", Long.toString(seed)));
        assertEquals(0, run.exitCode(), run.toString());
        assertEquals(6, Pattern.compile("then decode [123] of 3 by backend=jvm on the same cache[^\\n]*-> PASS").matcher(run.out())
                .results().count(), run.toString());
        assertEquals(8, Pattern.compile("-> PASS").matcher(run.out()).results().count(), "two prefill checks and six decode checks");
    }

    @Test
    void demoShowsAPrefixHitFollowedByPrefillOfTheRest() {
        CliRun run = CliRun.of("demo", "--seed", "2");
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(Pattern.compile("request 2: 64 prompt tokens, 48 cached \\(3 shared blocks").matcher(run.out()).find(),
                "the second request reuses the system prompt's full blocks");
        assertTrue(run.out().contains("bit-identical to a cache written from scratch"), "compares with a cache written from scratch");
        assertTrue(run.out().contains("then both decode two tokens (jvm backend, same cache)"), "decodes after the prefills");
        assertFalse(run.out().contains("FAIL") || run.out().contains("DIFFERS"));
    }

    static Stream<Arguments> badInputs() {
        return Stream.of(
                bad(new String[] {"check", "--query-len", "0"}, "--query-len=0"),
                bad(new String[] {"check", "--query-len", "5..x"}, "--query-len=5..x"),
                bad(new String[] {"check", "--query-len", "9..3"}, "--query-len=9..3"),
                bad(new String[] {"check", "--context", "10", "--query-len", "11"}, "--query-len=11", "--context is 10"),
                bad(new String[] {"check", "--window", "0"}, "--window=0"),
                bad(new String[] {"check", "--window", "-3", "--query-len", "4"}, "--window=-3"),
                bad(new String[] {"check", "--query-len", "4", "--steps", "0"}, "--steps=0"),
                bad(new String[] {"check", "--query-len", "4", "--decode-steps", "-1"}, "--decode-steps=-1"),
                bad(new String[] {"check", "--decode-steps", "2"}, "--decode-steps=2", "--query-len"),
                bad(new String[] {"check", "--query-len", "4", "--decode-steps", "1", "--pools", "both"}, "--pools=both", "shared, separate"),
                bad(new String[] {"check", "--query-len", "4", "--backend", "tornado"}, "tornado launcher"),
                bad(new String[] {"bench", "--sweeps", "decode,warmup"}, "--sweeps=decode,warmup"),
                bad(new String[] {"bench", "--prefill-query-len", "0"}, "--prefill-query-len=0"),
                bad(new String[] {"check", "--soft-cap", "-1"}, "--soft-cap=-1.0", "finite and > 0"),
                bad(new String[] {"check", "--soft-cap", "NaN", "--query-len", "4"}, "--soft-cap=NaN"),
                bad(new String[] {"bench", "--soft-cap", "0"}, "--soft-cap=0.0"),
                bad(new String[] {"check", "--tree"}, "--tree", "decode check"),
                bad(new String[] {"check", "--tree", "--alibi", "--query-len", "4"}, "--alibi with --tree"),
                bad(new String[] {"check", "--spans", "--tree", "--query-len", "4"}, "--spans with --tree"),
                bad(new String[] {"check", "--spans"}, "--spans", "decode check"),
                bad(new String[] {"check", "--non-causal", "--alibi", "--query-len", "4"}, "--non-causal with --alibi"),
                bad(new String[] {"check", "--non-causal", "--window", "8", "--query-len", "4"}, "--non-causal with --window=8"),
                bad(new String[] {"check", "--non-causal"}, "--non-causal", "decode check"),
                bad(new String[] {"check", "--tree", "--window", "8", "--layers", "2", "--full-every", "2", "--release"}, "--tree",
                        "hybrid check"),
                bad(new String[] {"bench", "--tree", "--sweeps", "decode,prefill"}, "--tree", "--sweeps=decode,prefill"));
    }

    private static Arguments bad(String[] args, String... fragments) {
        return Arguments.argumentSet(String.join(" ", args), args, fragments);
    }

    @ParameterizedTest
    @MethodSource("badInputs")
    void badPrefillInputExitsWith2AndNamesTheValue(String[] args, String[] fragments) {
        CliRun run = CliRun.of(args).assertRefused(fragments);
        assertFalse(run.out().contains("PASS") || run.out().contains("FAIL"), "ran a check despite bad input");
    }

    private static String[] concat(String command, String[] options, String... more) {
        String[] all = new String[1 + options.length + more.length];
        all[0] = command;
        System.arraycopy(options, 0, all, 1, options.length);
        System.arraycopy(more, 0, all, 1 + options.length, more.length);
        return all;
    }
}
