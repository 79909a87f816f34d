package dev.pagedattn.cli;

import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** Decode attention for one shape, checked against the fp64 reference and timed. */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = "Run decode attention for a shape, compare with the fp64 reference, print error and time; exit 1 over tolerance.")
final class CheckCommand implements Callable<Integer> {
    @Mixin
    ShapeOptions shape = new ShapeOptions();

    @Mixin
    BackendOptions backendOptions = new BackendOptions();

    @Option(names = "--iterations", description = "Timed runs after one warm-up (default: ${DEFAULT-VALUE}).", defaultValue = "5")
    int iterations;

    @Option(names = "--variant", description = "Tornado kernel variant: auto, fused, splitk or parallel (default: ${DEFAULT-VALUE}).",
            defaultValue = "auto")
    String variant;

    @Option(names = "--kernel", description = "Tornado attention kernel for decode: auto, stream, chunk, warp, quads, pairs or latent (latent caches)"
            + " (default: auto, or the pagedattn.tornado.kernel system property).")
    String kernel;

    @Option(names = "--v-sums", description = "Precision of the V sums in the tornado backend's fp16 stream kernel (CUDA): fp32, or"
            + " fp16 (faster, relative error about 6e-4; README) (default: fp32, or the pagedattn.tornado.vSums system property).")
    String vSums;

    @Option(names = "--steps", description = "Decode steps; from the second on, every sequence first appends one new token"
            + " (on a GPU it travels through the staging scatter), and the step runs twice, the second time with nothing new to"
            + " write; with --query-len every sequence appends its next chunk"
            + " (default: ${DEFAULT-VALUE}).", defaultValue = "1")
    int steps;

    @Option(names = "--query-len", description = "New query tokens per sequence, N or MIN..MAX, the last ones of each"
            + " context (prefill); default: decode (one token).")
    String queryLen;

    @Option(names = "--window", description = "Sliding window: each query sees only the last W positions (decode, or with"
            + " --query-len prefill and the decode steps after it).")
    Integer window;

    @Option(names = "--chunk", description = "Chunked local attention, as Llama 4's local layers have it (8192 there): each"
            + " query sees only the positions of its own chunk of C, p - p %% C .. p (decode, or with --query-len prefill);"
            + " takes --release and --full-every as --window does. Not with --window.")
    Integer chunk;

    @Option(names = "--release", description = "With --window or --chunk: give every block wholly before a sequence's window back to the"
            + " pool (KvCache.releaseOutsideWindow) before the first step and before every later append, and let another"
            + " sequence fill the freed blocks with NaN K/V (8-bit: the format's largest value), so a step that reads a released"
            + " block fails its check. With --full-every: the windowed layers' group of a HybridKvCache releases.")
    boolean release;

    @Option(names = "--swap", description = "Decode: after the first step, swap every sequence to host memory and back"
            + " (KvCache.swapOut / swapIn; another sequence fills the freed blocks with NaN in between) and check the step"
            + " again over the sequences that came back.")
    boolean swap;

    @Option(names = "--full-every", description = "With --window (or --chunk) and --layers: every Nth layer (layers N-1, 2N-1, ...) sees its"
            + " whole context and the others the window, as models that mix sliding-window and full layers run (gpt-oss: 2,"
            + " Gemma 3: 6); default: every layer windowed. With --release the layers live in a HybridKvCache, whose windowed"
            + " group releases its blocks while the full layers keep theirs (decode, or prefill with --query-len).")
    Integer fullEvery;

    @Option(names = "--sinks", description = "Attention sinks, as gpt-oss has them: every query head of every layer gets a"
            + " sink logit, random in [0, 5) from the seed, that joins its softmax without a value (decode and prefill).")
    boolean sinks;

    @Option(names = "--soft-cap", description = "Logit soft-capping, as Gemma 2 has it (50 there): every score s becomes"
            + " X tanh(s / X) before the softmax (decode and prefill). Random inputs score within about +-1, so a cap below 1"
            + " is what tests it; the check prints how far the cap moves the fp64 result.")
    Float softCap;

    @Option(names = "--alibi", description = "ALiBi, as BLOOM and MPT have it: every query head's score of a key adds the"
            + " head's slope (the paper's, for --q-heads) times the key's distance back from the query (decode and prefill);"
            + " the check prints how far it moves the fp64 result.")
    boolean alibi;

    @Option(names = "--tree", description = "With --query-len: each sequence's new tokens form a random token tree (speculative"
            + " decoding's verification step; TreeMask): a new token sees the cached context and, of the new tokens, only its"
            + " ancestors and itself; the check prints how far the trees move the fp64 result.")
    boolean tree;

    @Option(names = "--spans", description = "With --query-len: random bidirectional spans among each sequence's new tokens"
            + " (TreeMask.bidirectional, Gemma 3's image tokens): a token in a span also sees its span's later tokens; the"
            + " check prints how far the spans move the fp64 result.")
    boolean spans;

    @Option(names = "--non-causal", description = "With --query-len: every query sees its sequence's whole context (FlashInfer's"
            + " causal=False: cross-attention, encoders); no --window, --tree or --alibi.")
    boolean nonCausal;

    @Option(names = "--step-rows", description = "Decode or prefill through the backend's own query and output rows (stepRows;"
            + " on TornadoVM the arrays its plan sends), their rows past the batch poisoned with NaN.")
    boolean stepRows;

    @Option(names = "--decode-steps", description = "With --query-len: after each prefill step, this many decode steps (one new"
            + " token per sequence each) by a decode backend of the same kind on the same cache, each checked against fp64"
            + " (default: ${DEFAULT-VALUE}).", defaultValue = "0")
    int decodeSteps;

    @Option(names = "--pools", description = "With --decode-steps on backend=tornado: shared, the prefill backend's task graphs in"
            + " the decode backend's plans on one device copy of the pools (TornadoDecodeAttention.prefill()); separate, each"
            + " backend with its own copy, a chunk sent to both (default: ${DEFAULT-VALUE}).", defaultValue = "shared")
    String pools;

    @Option(names = "--hybrid-pool", description = "With --full-every and --release: split, a block pool per group"
            + " (HybridKvCache.of); shared, every group's blocks from one pool, each window's layers cut into groups of the"
            + " fewest layers one window has (HybridKvCache.sharedPool, JVM backend only; default: ${DEFAULT-VALUE}).",
            defaultValue = "split")
    String hybridPool;

    @Option(names = "--lse", description = "Also write each row's and head's log-sum-exp (decode or prefill with an lse array;"
            + " FlashInfer's return_lse) on the first step and check it against fp64 (every backend; not with --full-every).")
    boolean lse;

    @Option(names = "--cascade", description = "Cascade decode (CascadeAttention): runs of --sharers sequences forked from one"
            + " prompt of P tokens, each prefix attended once per run (a non-causal prefill) and merged with the forks' own"
            + " tokens by log-sum-exp; output and lse checked against fp64, the step timed next to the plain step. Takes"
            + " --soft-cap; one decode step of one layer.")
    Integer cascade;

    @Option(names = "--sharers", description = "With --cascade: sequences per shared prompt (default: ${DEFAULT-VALUE}).",
            defaultValue = "8")
    int sharers;

    @Option(names = "--select-blocks", description = "Block-sparse decode (Quest's page selection; DecodeBatch.selectBlocks):"
            + " each sequence attends K of its blocks, chosen at random from the seed, its last always (all of them when it has"
            + " K or fewer); checked against fp64 over those positions (bench-cpu --select-blocks times it).")
    Integer selectBlocks;

    @Option(names = "--tolerance", description = "Largest accepted relative L2 error (default: ${DEFAULT-VALUE}).", defaultValue = "1e-3")
    double tolerance;

    @Override
    public Integer call() {
        // Everything that can refuse the run does so before the first line is printed.
        shape.validateHeads();
        shape.kvDtype();
        if (iterations < 1) {
            throw new IllegalArgumentException("--iterations=" + iterations + " must be >= 1");
        }
        if (!(tolerance > 0) || Double.isInfinite(tolerance)) { // NaN fails the first test
            throw new IllegalArgumentException("--tolerance=" + tolerance + " must be a finite number > 0");
        }
        backendOptions.validate();
        BackendOptions.requireVariant("--variant", variant);
        if (kernel != null) {
            BackendOptions.requireKernel(kernel);
            if (!backendOptions.backend.equals("tornado") || queryLen != null) {
                throw new IllegalArgumentException("--kernel=" + kernel + " chooses the tornado backend's decode kernel: it needs"
                        + " --backend tornado and no --query-len");
            }
        }
        if (vSums != null) {
            BackendOptions.requireVSums(vSums);
            if (!backendOptions.backend.equals("tornado") || queryLen != null) {
                throw new IllegalArgumentException("--v-sums=" + vSums + " chooses the tornado backend's decode kernel: it needs"
                        + " --backend tornado and no --query-len");
            }
        }
        if (steps < 1) {
            throw new IllegalArgumentException("--steps=" + steps + " must be >= 1");
        }
        if (decodeSteps < 0) {
            throw new IllegalArgumentException("--decode-steps=" + decodeSteps + " must be >= 0");
        }
        if (decodeSteps > 0 && queryLen == null) {
            throw new IllegalArgumentException("--decode-steps=" + decodeSteps + " follows prefill steps: it needs --query-len");
        }
        int layerWindow = PrefillCheck.window(window, chunk); // --window W, --chunk C (a negative value), or none
        boolean windowed = layerWindow != PrefillBatch.NO_WINDOW;
        if (fullEvery != null && (fullEvery < 2 || !windowed || (queryLen != null && !release))) {
            throw new IllegalArgumentException("--full-every=" + fullEvery + " must be >= 2, with --window or --chunk, and with"
                    + " --query-len only with --release");
        }
        if (release && !windowed) {
            throw new IllegalArgumentException("--release gives back the blocks before each sequence's window: it needs --window"
                    + " or --chunk");
        }
        boolean hybrid = release && fullEvery != null;
        if (shape.latentDim > 0 && (hybrid || cascade != null)) {
            throw new IllegalArgumentException("--latent-dim=" + shape.latentDim + " checks decode and prefill over one latent cache:"
                    + " not with " + (hybrid ? "--full-every and --release (a HybridKvCache)" : "--cascade (CascadeAttention)"));
        }
        if (swap && (queryLen != null || hybrid)) {
            throw new IllegalArgumentException("--swap checks a decode step after a swap to host memory and back: it takes no"
                    + (queryLen != null ? " --query-len=" + queryLen : " --full-every with --release"));
        }
        if (hybrid && (stepRows || decodeSteps > 0)) {
            throw new IllegalArgumentException("--release with --full-every checks a HybridKvCache: --step-rows and --decode-steps="
                    + decodeSteps + " are not taken there (--steps N decodes N - 1 steps after the first)");
        }
        if (!pools.equals("shared") && !pools.equals("separate")) {
            throw new IllegalArgumentException("--pools=" + pools + " is not one of shared, separate");
        }
        if (!hybridPool.equals("split") && !hybridPool.equals("shared")) {
            throw new IllegalArgumentException("--hybrid-pool=" + hybridPool + " is not one of split, shared");
        }
        if (hybridPool.equals("shared") && !hybrid) {
            throw new IllegalArgumentException("--hybrid-pool=shared lays out a HybridKvCache: it needs --full-every and --release");
        }
        if (hybridPool.equals("shared") && !backendOptions.backend.equals("jvm")) {
            throw new IllegalArgumentException("--hybrid-pool=shared runs on --backend jvm, not " + backendOptions.backend
                    + " (the TornadoVM backends need a pool per group)");
        }
        if (lse && hybrid) {
            throw new IllegalArgumentException("--lse checks the log-sum-exp of one layer's decode or prefill: not with --full-every"
                    + " and --release");
        }
        if (selectBlocks != null) {
            String other = queryLen != null ? "--query-len" : cascade != null ? "--cascade" : windowed ? "--window or --chunk" : alibi ? "--alibi" : swap ? "--swap"
                    : steps > 1 ? "--steps=" + steps : lse ? "--lse" : shape.layers != 1 ? "--layers=" + shape.layers : null;
            if (selectBlocks < 1 || other != null) {
                throw new IllegalArgumentException("--select-blocks=" + selectBlocks + " checks one decode step over selected"
                        + " blocks: at least 1" + (other == null ? "" : "; not with " + other));
            }
        }
        if (cascade != null) {
            String other = queryLen != null ? "--query-len" : windowed ? "--window or --chunk" : fullEvery != null ? "--full-every"
                    : swap ? "--swap" : steps > 1 ? "--steps=" + steps : sinks ? "--sinks" : alibi ? "--alibi" : stepRows ? "--step-rows"
                    : lse ? "--lse (it checks the lse itself)" : shape.layers != 1 ? "--layers=" + shape.layers
                    : shape.kvMemory != null ? "--kv-memory"
                    : shape.maxArrayElements != dev.pagedattn.cache.KvCacheConfig.MAX_POOL_ELEMENTS ? "--max-array-elements" : null;
            if (cascade < shape.blockSize || sharers < 1 || other != null) {
                throw new IllegalArgumentException("--cascade=" + cascade + " --sharers=" + sharers + ": the prompt must hold at least"
                        + " one block (--block-size=" + shape.blockSize + "), the runs at least one sequence"
                        + (other == null ? "" : "; not with " + other));
            }
            int shortest = Arrays.stream(shape.lengths()).min().orElse(0);
            if (shortest <= cascade) {
                throw new IllegalArgumentException("--cascade=" + cascade + " needs every context longer than the prompt: the shortest"
                        + " is " + shortest);
            }
            shape.kvScales();
            return CascadeCheck.run(shape, cascade, sharers, backendOptions.backend, backendOptions.device, variant, kernel, vSums,
                    iterations, tolerance, Extras.of(false, softCap, false, false, false).softCap());
        }
        shape.kvScales(); // refuses a bad --dtype/--kv-scale pair before anything is built
        shape.requireFits();
        Extras extras = Extras.of(sinks, softCap, alibi, tree, spans, nonCausal);
        if (nonCausal && windowed) {
            throw new IllegalArgumentException("--non-causal with" + PrefillCheck.label(layerWindow).replace(" ", " --")
                    + ": a non-causal query sees its whole context");
        }
        if (hybrid || queryLen == null) {
            extras.requirePrefill(hybrid ? "the hybrid check (--full-every with --release)" : "a decode check (no --query-len)");
        }
        if (hybrid) {
            return HybridCheck.run(shape, layerWindow, fullEvery, queryLen, hybridPool.equals("shared"), backendOptions.backend,
                    backendOptions.device, variant, kernel, vSums, steps, tolerance, extras);
        }
        if (queryLen != null) {
            return PrefillCheck.run(shape, queryLen, layerWindow, backendOptions.backend, backendOptions.device,
                    iterations, tolerance, steps, stepRows, decodeSteps, pools.equals("shared"), extras, release, lse);
        }
        int[] lengths = shape.lengths();
        // every sequence appends steps - 1 tokens after the first step: the cache holds them from the start
        DecodeWorkload plain = build(shape, lengths, steps - 1).windowed(layerWindow);
        if (selectBlocks != null) {
            plain = plain.selectedBlocks(selection(plain.batch(), selectBlocks, shape.seed()));
        }
        DecodeWorkload w = extras.apply(plain, shape.layers, shape.qHeads, shape.seed());
        if (release) { // the later steps' tokens keep their blocks: one per sequence and step, at most
            w = w.releasedOutsideWindow(lengths.length * (steps - 1));
        }
        FloatArray out = w.poisonedOutput();
        long[] nanos = new long[iterations];
        String backend = backendOptions.backend;
        try (DecodeAttention attention = Backends.create(backend, w.cache(), w.spec(), backendOptions.device, variant, kernel, vSums)) {
            System.out.println("check " + shape.describe(lengths) + ShapeOptions.shards(w.cache())
                    + PrefillCheck.label(layerWindow) + extras.describe() + " backend=" + backend);
            if (release) {
                PrefillCheck.printReleased(w.cache(), w.seqs());
            }
            if (extras.softCap() > 0 || extras.alibi()) {
                PrefillCheck.printExtrasMove(extras, ReferenceAttention.relativeL2(plain.reference(), w.reference()));
            }
            decode(attention, w.batch(), 0, w.q(), out); // warm-up
            out.init(Float.NaN);
            for (int i = 0; i < iterations; i++) {
                long t0 = System.nanoTime();
                decode(attention, w.batch(), 0, w.q(), out);
                long wall = System.nanoTime() - t0;
                nanos[i] = attention.lastDeviceNanos() > 0 ? attention.lastDeviceNanos() : wall;
            }
            int status = report(w, w.batch(), out, nanos, tolerance, attention.name());
            if (selectBlocks != null) {
                printSelection(w);
            }
            if (lse) {
                status = Math.max(status, checkLse(attention, w, w.batch(), tolerance));
            }
            status = Math.max(status, checkOtherLayers(w, attention, tolerance));
            if (swap) {
                int[] before = w.seqs();
                w = w.swappedOutAndIn();
                status = Math.max(status, decodeOnce(w, w.batch(), out, attention, tolerance, "after swapOut of seqs "
                        + Arrays.toString(before) + " and swapIn as " + Arrays.toString(w.seqs()) + " (their freed blocks"
                        + " refilled with NaN in between):"));
            }
            SplittableRandom random = new SplittableRandom(shape.seed() + 1);
            for (int step = 2; step <= steps; step++) {
                if (release) {
                    PrefillCheck.releaseOutsideWindow(w.cache(), w.seqs(), layerWindow);
                }
                DecodeBatch batch = appendOneToken(w, random).window(layerWindow);
                status = Math.max(status, decodeOnce(w, batch, out, attention, tolerance,
                        "step " + step + " (every sequence one token longer):"));
                // the same step again, with nothing written since: on TornadoVM, a task graph without the scatter task
                status = Math.max(status, decodeOnce(w, batch, out, attention, tolerance,
                        "step " + step + " again (nothing written since):"));
            }
            return status;
        }
    }

    /**
     * One decode of {@code batch} in {@code layer} into {@code out}: through the caller's arrays, or with
     * {@code --step-rows} through the backend's own rows, whose rows past the batch hold NaN.
     */
    private void decode(DecodeAttention attention, DecodeBatch batch, int layer, FloatArray q, FloatArray out) {
        if (!stepRows) {
            attention.decode(batch, layer, q, out);
            return;
        }
        StepRows rows = OwnRows.poisonedWith(attention.stepRows(batch, layer), q);
        attention.decode(batch, layer, rows.q(), rows.out());
        OwnRows.copyOut(rows, out);
    }

    /** One poisoned, timed decode of {@code batch}, reported under {@code title}; the report's status. */
    private int decodeOnce(DecodeWorkload w, DecodeBatch batch, FloatArray out, DecodeAttention attention, double tolerance,
                                  String title) {
        out.init(Float.NaN);
        long t0 = System.nanoTime();
        decode(attention, batch, 0, w.q(), out);
        long wall = System.nanoTime() - t0;
        System.out.println(title);
        return report(w, batch, out, new long[] {attention.lastDeviceNanos() > 0 ? attention.lastDeviceNanos() : wall}, tolerance,
                attention.name());
    }

    /** {@code k} of each row's blocks of {@code batch}, chosen at random from {@code seed}, its last always (all when it has k or fewer). */
    static int[][] selection(DecodeBatch batch, int k, long seed) {
        SplittableRandom random = new SplittableRandom(seed ^ 0x5E1EC7L);
        int[][] blocks = new int[batch.numSeqs()][];
        for (int i = 0; i < blocks.length; i++) {
            int used = (batch.contextLen(i) + batch.blockSize() - 1) / batch.blockSize();
            int[] order = random.ints(0, used - 1).distinct().limit(Math.min(k, used) - 1).toArray(); // the others, at random
            blocks[i] = java.util.stream.IntStream.concat(Arrays.stream(order), java.util.stream.IntStream.of(used - 1)).sorted().toArray();
        }
        return blocks;
    }

    /** What the selection attends: its tokens against the sequences' (one line; bench-cpu --select-blocks times the two). */
    private static void printSelection(DecodeWorkload w) {
        System.out.printf("selected blocks: %d of the sequences' %d tokens attended%n", w.batch().visibleTokens(),
                w.cache().batch(w.seqs()).visibleTokens());
    }

    private static DecodeBatch appendOneToken(DecodeWorkload w, SplittableRandom random) {
        int width = w.cache().config().tokenWidth();
        for (int seq : w.seqs()) {
            float[] k = new float[width];
            float[] v = new float[width];
            for (int i = 0; i < width; i++) {
                k[i] = (float) (random.nextDouble() * 2 - 1);
                v[i] = (float) (random.nextDouble() * 2 - 1);
            }
            try {
                w.cache().append(seq, 1);
                w.cache().write(seq, 0, w.cache().length(seq) - 1, k, w.cache().config().isLatent() ? null : v);
            } catch (OutOfBlocksException e) {
                throw new AssertionError("the workload's cache was sized for every step's new token", e);
            }
        }
        return w.cache().batch(w.seqs());
    }

    /** Decodes the batch in every layer after the first, each against the fp64 reference; one line per layer. */
    private int checkOtherLayers(DecodeWorkload w, DecodeAttention attention, double tolerance) {
        int status = 0;
        FloatArray out = w.poisonedOutput();
        for (int layer = 1; layer < w.cache().config().numLayers(); layer++) {
            // a model that mixes windowed and full layers decodes each layer through its own view of the step's batch
            DecodeBatch batch = fullEvery != null && layer % fullEvery == fullEvery - 1 ? w.batch().window(DecodeBatch.NO_WINDOW)
                    : w.batch();
            out.init(Float.NaN);
            long t0 = System.nanoTime();
            decode(attention, batch, layer, w.q(), out);
            long nanos = attention.lastDeviceNanos() > 0 ? attention.lastDeviceNanos() : System.nanoTime() - t0;
            double rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(w.cache(), w.spec(), layer, w.seqs(), w.q(),
                    batch.window(), n -> { }));
            boolean ok = rel <= tolerance; // NaN fails
            System.out.printf("layer %d%s: time %.3f ms (one decode; tornado: builds the layer's plan), relative L2=%.3e -> %s%n",
                    layer, batch.windowed() ? " (" + AttentionWindow.describe(batch.window()) + ")" : batch == w.batch() ? "" : " (whole context)",
                    nanos / 1e6, rel, ok ? "PASS" : "FAIL");
            status = Math.max(status, ok ? 0 : Main.EXIT_CHECK_FAILED);
        }
        return status;
    }

    /** The shape's workload, with room for every sequence to append {@code spareTokensPerSeq} more tokens. */
    static DecodeWorkload build(ShapeOptions shape, int[] lengths, int spareTokensPerSeq) {
        return DecodeWorkload.create(lengths, shape.qHeads, shape.kvHeads, shape.headDim, shape.blockSize,
                shape.kvDtype(), shape.seed(), shape.kvMemoryBytes(), shape.layers, spareTokensPerSeq, shape.kvScales(),
                shape.maxArrayElements(), shape.latentDim);
    }

    /** {@link PrefillCheck#checkLse} for a decode step of {@code batch} (layer 0). */
    private static int checkLse(DecodeAttention attention, DecodeWorkload w, DecodeBatch batch, double tolerance) {
        int rows = batch.numSeqs() * w.spec().numQHeads();
        FloatArray out = w.poisonedOutput();
        FloatArray lse = new FloatArray(rows);
        lse.init(Float.NaN);
        attention.decode(batch, 0, w.q(), out, lse);
        double[] ref = new double[rows];
        ReferenceAttention.decode(w.cache(), w.spec(), 0, w.seqs(), w.q(), batch.window(), ref);
        return PrefillCheck.reportLse(lse, ref, tolerance);
    }

    static int report(DecodeWorkload w, DecodeBatch batch, FloatArray out, long[] nanos, double tolerance, String name) {
        double[] ref;
        double work = 4.0 * batch.visibleTokens() * w.spec().numQHeads() * w.spec().headDim();
        if (batch.selected()) { // the workload's own batch: its reference reads the selected positions
            ref = w.reference();
        } else {
            try (Progress p = new Progress("fp64 reference", batch.numSeqs(), work)) {
                ref = ReferenceAttention.decode(w.cache(), w.spec(), 0, w.seqs(), w.q(), batch.window(), p.consumer());
            }
        }
        double rel = ReferenceAttention.relativeL2(out, ref);
        double abs = ReferenceAttention.maxAbsError(out, ref);
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        long min = sorted[0];
        long median = sorted[sorted.length / 2];
        double gbs = w.minimumBytes(batch) / (double) min;
        boolean ok = rel <= tolerance; // NaN fails
        System.out.printf("backend=%s time min=%.3f ms median=%.3f ms max=%.3f ms  effective=%.2f GB/s (minimum bytes %d)%n",
                name, min / 1e6, median / 1e6, sorted[sorted.length - 1] / 1e6, gbs, w.minimumBytes(batch));
        System.out.printf("error vs fp64 reference: relative L2=%.3e max abs=%.3e tolerance=%.1e -> %s%n",
                rel, abs, tolerance, ok ? "PASS" : "FAIL");
        return ok ? 0 : Main.EXIT_CHECK_FAILED;
    }
}
