package dev.pagedattn.cli;

import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvDtype;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code capacity}: how many sequences a model that mixes sliding-window (or chunked) and full layers keeps running in a budget of K/V
 * memory, with its groups' blocks in one shared pool ({@link HybridKvCache#sharedPool}) against a pool per group sized
 * for a guessed number of sequences ({@link HybridKvCache#forMemory}): one trace of requests served by
 * {@link ServingSim}'s scheduler on each. Bookkeeping only; the block counts are the model's, the pools hold one element
 * per slot.
 */
@Command(name = "capacity", mixinStandardHelpOptions = true,
        description = "Serve a trace of requests on a hybrid model's cache: one shared block pool against a pool per layer group.")
final class CapacityCommand implements Callable<Integer> {
    /** A model's layers and K/V heads. */
    enum Model {
        GPT_OSS_20B("gpt-oss-20b", 24, 2, 128, 8, 64),
        GPT_OSS_120B("gpt-oss-120b", 36, 2, 128, 8, 64),
        GEMMA_2_9B("gemma-2-9b", 42, 2, 4096, 8, 256),
        GEMMA_3_4B("gemma-3-4b", 34, 6, 1024, 4, 256),
        GEMMA_3_27B("gemma-3-27b", 62, 6, 1024, 16, 128),
        // Llama 4 Scout and Maverick: chunks of 8192 on three layers of four (attention_chunk_size), every fourth global
        LLAMA_4("llama-4", 48, 4, AttentionWindow.chunked(8192), 8, 128);

        final String flag;
        final int layers;
        final int fullEvery; // layers fullEvery - 1, 2 fullEvery - 1, ... see their whole context
        final int window;
        final int kvHeads;
        final int headDim;

        Model(String flag, int layers, int fullEvery, int window, int kvHeads, int headDim) {
            this.flag = flag;
            this.layers = layers;
            this.fullEvery = fullEvery;
            this.window = window;
            this.kvHeads = kvHeads;
            this.headDim = headDim;
        }

        int[] windows() {
            int[] w = new int[layers];
            for (int l = 0; l < layers; l++) {
                w[l] = l % fullEvery == fullEvery - 1 ? DecodeBatch.NO_WINDOW : window;
            }
            return w;
        }

        static Model parse(String text) {
            for (Model m : values()) {
                if (m.flag.equals(text)) {
                    return m;
                }
            }
            throw new IllegalArgumentException("--model=" + text + " is not one of "
                    + Arrays.stream(values()).map(m -> m.flag).collect(Collectors.joining(", ")));
        }
    }

    @Option(names = "--model", description = "gpt-oss-20b, gpt-oss-120b (window 128 every other layer), gemma-2-9b (4096 every"
            + " other layer), gemma-3-4b, gemma-3-27b (1024 in five layers of six), llama-4 (Scout and Maverick: chunks of 8192"
            + " in three layers of four) (default: ${DEFAULT-VALUE}).",
            defaultValue = "gpt-oss-20b")
    String model;

    @Option(names = "--kv-memory", description = "K/V memory of all layers (default: ${DEFAULT-VALUE}).", defaultValue = "4GB")
    String kvMemory;

    @Option(names = "--dtype", description = "K/V dtype: fp16, bf16, fp32, fp8, fp8-e5m2, int8 (default: ${DEFAULT-VALUE}).",
            defaultValue = "fp16")
    String dtype;

    @Option(names = "--block-size", description = "Tokens per block (default: ${DEFAULT-VALUE}).", defaultValue = "16")
    int blockSize;

    @Option(names = "--requests", description = "Requests in the trace (default: ${DEFAULT-VALUE}).", defaultValue = "1000")
    int requests;

    @Option(names = "--prompt", description = "Prompt tokens, N or MIN..MAX, uniform (default: ${DEFAULT-VALUE}).",
            defaultValue = "64..4096")
    String prompt;

    @Option(names = "--output", description = "Generated tokens, N or MIN..MAX, uniform (default: ${DEFAULT-VALUE}).",
            defaultValue = "16..1024")
    String output;

    @Option(names = "--max-seqs", description = "Most sequences running at once (vLLM's max_num_seqs; default: ${DEFAULT-VALUE}).",
            defaultValue = "256")
    int maxSeqs;

    @Option(names = "--batch-tokens", description = "Tokens a step appends, decode and prompt chunks together (vLLM's"
            + " max_num_batched_tokens; default: ${DEFAULT-VALUE}).", defaultValue = "8192")
    int batchTokens;

    @Option(names = "--chunk", description = "Most prompt tokens one sequence appends in a step (chunked prefill; default:"
            + " ${DEFAULT-VALUE}).", defaultValue = "512")
    int chunk;

    @Option(names = "--split-for", description = "The pool per group sized by HybridKvCache.forMemory for each of these numbers"
            + " of sequences, each appending at most --chunk tokens at a time (default: ${DEFAULT-VALUE}).",
            defaultValue = "16,32,64,128,256", split = ",")
    int[] splitFor;

    @Option(names = "--split-shares", description = "And a pool per group with each of these shares of the bytes (in percent)"
            + " for the windowed layers, the rest for the full ones (default: ${DEFAULT-VALUE}).",
            defaultValue = "10,25,50,75", split = ",")
    int[] splitShares;

    @Option(names = "--layers-per-group", description = "Layers a block of the shared pool holds (HybridKvCache.sharedPool;"
            + " default: the fewest layers one window has, vLLM's rule).")
    Integer layersPerGroup;

    @Option(names = "--seed", description = "Random seed of the trace (default: from the clock; always printed).")
    Long seed;

    @Override
    public Integer call() {
        Model m = Model.parse(model);
        long bytes = ByteSize.parse("--kv-memory", kvMemory);
        KvDtype kvDtype = KvDtype.parse(dtype);
        int[] promptRange = LengthRange.parse("--prompt", prompt);
        int[] outputRange = LengthRange.parse("--output", output);
        requirePositive("--requests", requests);
        requirePositive("--block-size", blockSize);
        requirePositive("--max-seqs", maxSeqs);
        requirePositive("--batch-tokens", batchTokens);
        requirePositive("--chunk", chunk);
        for (int n : splitFor) {
            requirePositive("--split-for", n);
        }
        for (int p : splitShares) {
            if (p < 1 || p > 99) {
                throw new IllegalArgumentException("--split-shares=" + p + " must be a percent in [1, 99]");
            }
        }
        long s = seed != null ? seed : System.nanoTime();
        List<ServingSim.Request> trace = trace(requests, promptRange, outputRange, s);
        int[] windows = m.windows();
        int windowed = (int) Arrays.stream(windows).filter(w -> w != DecodeBatch.NO_WINDOW).count();
        int[] gw = HybridKvCache.groupWindows(windows);                  // a pool per group: windowed, full
        int[] groupLayers = {windowed, m.layers - windowed};
        int per = layersPerGroup != null ? layersPerGroup : HybridKvCache.defaultLayersPerGroup(windows);
        if (per < 1 || per > Math.max(windowed, m.layers - windowed)) {
            throw new IllegalArgumentException("--layers-per-group=" + per + " is outside [1, " + Math.max(windowed,
                    m.layers - windowed) + "] (the most layers one window of " + m.flag + " has)");
        }
        int sharedBlocks = HybridKvCache.sharedBlocksForMemory(bytes, per, blockSize, m.kvHeads, m.headDim, kvDtype);
        HybridKvCache one = HybridKvCache.sharedPool(windows, sharedBlocks, per, blockSize, 1, 1, kvDtype, null);
        ServingSim.Result shared;
        try {
            shared = ServingSim.run(one, trace, maxSeqs, batchTokens, chunk);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--kv-memory=" + kvMemory + " (a shared pool of " + sharedBlocks + " blocks): "
                    + e.getMessage());
        }
        System.out.printf(Locale.ROOT, "capacity %s: %d layers (%d %s, %d full), %d kv-heads x %d, block %d, %s, %s of"
                        + " K/V; %d requests, prompt %s, output %s tokens (uniform), at most %d sequences, %d tokens a step,"
                        + " prompt chunks of %d; seed %d%n", m.flag, m.layers, windowed, AttentionWindow.describe(m.window), m.layers - windowed, m.kvHeads,
                m.headDim, blockSize, kvDtype.name().toLowerCase(Locale.ROOT), kvMemory, requests, prompt, output, maxSeqs,
                batchTokens, chunk, s);
        System.out.println("pools                                 blocks x layers a block      steps  tokens/step  mean running"
                + "  most  preemptions");
        row("one shared pool, groups of " + per + " layers", sharedBlocks + " x" + per, shared);
        int[] allFull = new int[m.layers]; // vLLM without its hybrid manager: every layer keeps every block
        Arrays.fill(allFull, DecodeBatch.NO_WINDOW);
        int plainBlocks = HybridKvCache.sharedBlocksForMemory(bytes, m.layers, blockSize, m.kvHeads, m.headDim, kvDtype);
        try {
            ServingSim.Result plain = ServingSim.run(HybridKvCache.of(allFull, new int[] {plainBlocks}, blockSize, 1, 1, kvDtype),
                    trace, maxSeqs, batchTokens, chunk);
            row("one pool, no window releases", plainBlocks + " x" + m.layers, plain);
        } catch (IllegalArgumentException e) {
            System.out.printf("one pool, no window releases (%d blocks): %s%n", plainBlocks, e.getMessage());
        }
        ServingSim.Result best = null;
        String bestLabel = null;
        List<String> labels = new ArrayList<>();
        List<int[]> plans = new ArrayList<>();
        for (int n : splitFor) {
            try {
                plans.add(HybridKvCache.blocksForMemory(bytes, blockSize, m.kvHeads, m.headDim, kvDtype, windows, n, chunk));
                labels.add("sized for " + n + " seqs");
            } catch (IllegalArgumentException e) {
                System.out.printf("a pool per group, sized for %d sequences: does not fit (%s)%n", n, e.getMessage());
            }
        }
        long slotBytes = 2L * blockSize * m.kvHeads * m.headDim * kvDtype.bytes(); // a block of one layer, K and V
        for (int p : splitShares) {
            int[] blocks = new int[gw.length];
            for (int g = 0; g < gw.length; g++) {
                long share = gw[g] == DecodeBatch.NO_WINDOW ? bytes * (100 - p) / 100 : bytes * p / 100;
                blocks[g] = (int) Math.min(Integer.MAX_VALUE, share / (groupLayers[g] * slotBytes));
            }
            if (Arrays.stream(blocks).min().orElse(0) < 1) {
                System.out.printf("a pool per group, %d%% of the bytes windowed: a group gets no block%n", p);
                continue;
            }
            plans.add(blocks);
            labels.add(p + "% windowed");
        }
        for (int i = 0; i < plans.size(); i++) {
            int[] groupBlocks = plans.get(i);
            ServingSim.Result r;
            try {
                r = ServingSim.run(HybridKvCache.of(windows, groupBlocks, blockSize, 1, 1, kvDtype), trace, maxSeqs, batchTokens, chunk);
            } catch (IllegalArgumentException e) {
                System.out.printf("a pool per group, %s (%s blocks): %s%n", labels.get(i),
                        Arrays.stream(groupBlocks).mapToObj(Integer::toString).collect(Collectors.joining(" + ")), e.getMessage());
                continue;
            }
            row("a pool per group, " + labels.get(i), groupBlocks[0] + " x" + groupLayers[0] + " + " + groupBlocks[1] + " x"
                    + groupLayers[1], r);
            if (best == null || r.steps() < best.steps()) {
                best = r;
                bestLabel = labels.get(i);
            }
        }
        if (best != null) {
            System.out.printf(Locale.ROOT, "the shared pool against the best split (%s): %.2fx the steps, %.2fx the"
                    + " tokens per step, %.2fx the mean running sequences%n", bestLabel, shared.steps() / (double) best.steps(),
                    shared.tokensPerStep() / best.tokensPerStep(), shared.meanRunning() / best.meanRunning());
        }
        return 0;
    }

    private static void row(String pools, String blocks, ServingSim.Result r) {
        System.out.printf(Locale.ROOT, "%-37s %-24s %10d %12.1f %13.1f %5d %12d%n", pools, blocks, r.steps(), r.tokensPerStep(),
                r.meanRunning(), r.peakRunning(), r.preemptions());
    }

    /** {@code n} requests, prompt and output lengths uniform in their ranges. */
    static List<ServingSim.Request> trace(int n, int[] prompt, int[] output, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        List<ServingSim.Request> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(new ServingSim.Request(prompt[0] + r.nextInt(prompt[1] - prompt[0] + 1),
                    output[0] + r.nextInt(output[1] - output[0] + 1)));
        }
        return out;
    }

    private static void requirePositive(String flag, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(flag + "=" + value + " must be >= 1");
        }
    }
}
