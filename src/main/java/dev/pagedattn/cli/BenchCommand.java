package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.tornado.BandwidthProbe;
import dev.pagedattn.tornado.DecodeGrid;
import dev.pagedattn.tornado.TornadoDecodeAttention;
import dev.pagedattn.tornado.VSums;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The GPU sweep over the standard workload (benchmarks/README.md): every cell, every kernel variant that
 * applies, timed with TornadoVM's profiler and checked against the fp64 reference, next to a
 * bandwidth probe measured in the same run. Writes a CSV that {@code report} turns into tables and a chart.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "GPU decode sweep (standard workload) through TornadoVM: time, GB/s, %% of the measured read ceiling, error.")
final class BenchCommand implements Callable<Integer> {
    // The standard workload (benchmarks/README.md): Llama-3-8B attention.
    /** The standard workload's query heads (Llama-3-8B); other counts are named in the rows' notes. */
    private static final int STANDARD_Q_HEADS = 32;
    private static final int KV_HEADS = 8;
    private static final int STANDARD_HEAD_DIM = 128;
    private static final int STANDARD_BLOCK_SIZE = 16;

    /** What a row's variant name gets for {@code blockSize}: nothing for the standard workload's 16, else {@code +bsN}. */
    static String blockSuffix(int blockSize) {
        return blockSize == STANDARD_BLOCK_SIZE ? "" : "+bs" + blockSize;
    }

    @Option(names = "--batches", split = ",", description = "Batch sizes (default: ${DEFAULT-VALUE}).", defaultValue = "1,8,32,64,128,256")
    int[] batches;

    @Option(names = "--contexts", split = ",", description = "Context lengths (default: ${DEFAULT-VALUE}).",
            defaultValue = "1024,4096,8192,16384,32768")
    int[] contexts;

    @Option(names = "--ragged", description = "The ragged row as BATCHxMIN..MAX, or none (default: ${DEFAULT-VALUE}).",
            defaultValue = "64x1024..32768")
    String ragged;

    @Option(names = "--variants", split = ",", description = "Kernel variants (default: ${DEFAULT-VALUE}).",
            defaultValue = "auto,fused,splitk,parallel")
    String[] variants;

    @Option(names = "--kernels", split = ",", description = "Attention kernels for each variant: auto, stream, chunk, warp, quads, pairs "
            + "(default: auto, or the pagedattn.tornado.kernel system property; kernels the device cannot run are reported as errors).")
    String[] kernels;

    @Option(names = "--v-sums", split = ",", description = "Precisions of the stream kernel's V sums for each fp16 variant: fp32,"
            + " fp16 (default: fp32, or the pagedattn.tornado.vSums system property; fp16 rows are named VARIANT+fp16v).")
    String[] vSums;

    @Option(names = "--cells", split = ",", description = "Only these cells, as BATCHxCONTEXT (overrides --batches/--contexts; "
            + "the ragged row stays unless --ragged none).")
    String[] onlyCells;

    @Option(names = "--parallel-max-tokens", description = "Cells above this many tokens skip the slow @Parallel variant (default: ${DEFAULT-VALUE}).",
            defaultValue = "65536")
    long parallelMaxTokens;

    @Option(names = "--q-heads", description = "Query heads over the 8 KV heads (default: ${DEFAULT-VALUE}, Llama-3-8B;"
            + " 64: Llama-3-70B).", defaultValue = "" + STANDARD_Q_HEADS)
    int qHeads;

    @Option(names = "--head-dim", description = "Dims per head, a multiple of 8 up to 256 (default: ${DEFAULT-VALUE}, Llama-3-8B;"
            + " 64: Llama-3.2-1B; 256: Gemma-2).", defaultValue = "" + STANDARD_HEAD_DIM)
    int headDim;

    @Option(names = "--block-size", description = "Tokens per KV block of every cell (default: ${DEFAULT-VALUE}, the standard"
            + " workload's; other sizes get +bsN in the variant's name).", defaultValue = "" + STANDARD_BLOCK_SIZE)
    int blockSize;

    @Option(names = "--sinks", description = "Decode and prefill cells: attention sinks (gpt-oss) in every query head, random from"
            + " the seed; each cell is then timed next to the same cell without sinks in the same run.")
    boolean sinks;

    @Option(names = "--soft-cap", description = "Decode and prefill cells: logit soft-capping at X (Gemma 2: 50); each cell is"
            + " then timed next to the same cell without in the same run (with --sinks: with both, next to neither).")
    Float softCap;

    @Option(names = "--alibi", description = "Decode and prefill cells: ALiBi with the paper's slopes; each cell is then timed"
            + " next to the same cell without in the same run (with --sinks or --soft-cap: with all, next to none).")
    boolean alibi;

    @Option(names = "--tree", description = "Prefill cells: each sequence's new tokens verified as a random token tree"
            + " (speculative decoding; TreeMask), each cell then timed next to the same cell without (causal) in the same run.")
    boolean tree;

    @Option(names = "--spans", description = "Prefill cells: random bidirectional spans among each sequence's new tokens"
            + " (Gemma 3's image tokens; TreeMask.bidirectional), each cell then timed next to the same cell without in the same run.")
    boolean spans;

    @Option(names = "--non-causal", description = "Prefill cells: every query sees its sequence's whole context (cross-attention),"
            + " each cell then timed next to the same cell causal in the same run.")
    boolean nonCausal;

    private Extras extras = Extras.NONE; // --sinks, --soft-cap, --alibi, --tree and --non-causal, once checked

    @Option(names = "--window", description = "Decode cells: a sliding window of W tokens (DecodeBatch.window); each cell is then"
            + " timed next to the same batch over contexts of min(L, W) tokens (the same K/V bytes, no window) in the same run.")
    Integer window;

    @Option(names = "--chunk", description = "Decode cells: chunked local attention over chunks of C tokens (Llama 4's local"
            + " layers; AttentionWindow.chunked): each cell is then timed next to the same batch over contexts of the tokens"
            + " its last chunk holds, L - (L - 1) / C * C (no window), in the same run. Not with --window.")
    Integer chunk;

    @Option(names = "--release", description = "With --window or --chunk: each windowed decode cell is also timed after"
            + " KvCache.releaseOutsideWindow (every block before a sequence's window given back, then refilled with NaN by"
            + " another sequence), next to the same cell with every block kept, in the same run.")
    boolean release;

    @Option(names = "--lse", description = "Decode cells: each also timed with an lse array (decode(..., lse): the step's merge"
            + " writes every row's log-sum-exp; a fused step then runs its merge), next to the plain step, in the same run.")
    boolean lse;

    private boolean timingLse; // the cell being timed passes an lse array

    @Option(names = "--shared-prefix", description = "Decode cells: runs of --sharers sequences share their first P tokens (forks of"
            + " one prompt, the same physical blocks); each cell is then timed next to the same cell with every sequence in"
            + " blocks of its own, in the same run.")
    Integer sharedPrefix;

    @Option(names = "--sharers", description = "Sequences per shared prompt with --shared-prefix (default: ${DEFAULT-VALUE}).",
            defaultValue = "8")
    int sharers;

    @Option(names = "--iterations", description = "Timed runs per cell and variant (default: ${DEFAULT-VALUE}).", defaultValue = "20")
    int iterations;

    @Option(names = "--dtype", description = "KV dtype: fp16, bf16 (TornadoVM's CUDA backend only), fp32, fp8 (E4M3), fp8-e5m2 or int8 (8-bit: per-tensor scales for the"
            + " uniform random K/V; default: ${DEFAULT-VALUE}).", defaultValue = "fp16")
    String dtype;

    @Option(names = "--kv-scale", description = "Scales of 8-bit K/V: per-tensor or per-head (default: per-tensor).")
    String kvScale;

    @Option(names = "--device", description = "TornadoVM device as B:D.")
    String device;

    @Option(names = "--seed", description = "Random seed (default: from the clock; always printed).")
    Long seed;

    @Option(names = "--out", description = "CSV to write (default: ${DEFAULT-VALUE}).", defaultValue = "target/bench/ours.csv")
    Path out;

    @Option(names = "--sweeps", split = ",", description = "Which sweeps: decode, prefill, loop (an engine's decode loop over "
            + "the decode cells: see --loop-steps) (default: ${DEFAULT-VALUE}).", defaultValue = "decode,prefill")
    String[] sweeps;

    @Option(names = "--loop-steps", description = "Loop cells: decode steps, each appending one token per sequence "
            + "(default: ${DEFAULT-VALUE}).", defaultValue = "64")
    int loopSteps;

    @Option(names = "--loop-kv-memory", description = "Loop cells: size the cache to this many bytes of K and V, as an engine "
            + "gives its cache most of the card (such as 20GB; default: the batch and its new tokens).")
    String loopKvMemory;

    @Option(names = "--loop-reserve-seqs", description = "Loop cells: the reserved runs reserve this many sequences, as an "
            + "engine reserves its largest batch (vLLM's max_num_seqs) and then runs smaller ones (default: the cell's batch).")
    Integer loopReserveSeqs;

    @Option(names = "--step-rows", description = "Decode and loop cells: time the wall column through the backend's own query and output rows"
            + " (DecodeAttention.stepRows: on TornadoVM the arrays its plan sends, as an engine that writes its queries there), so that no call copies rows between"
            + " the caller's arrays and the plan's; the variant's name gets +steprows.")
    boolean stepRows;

    @Option(names = "--prefill-batches", split = ",", description = "Prefill cells: batch sizes (default: ${DEFAULT-VALUE}).",
            defaultValue = "1,8,32")
    int[] prefillBatches;

    @Option(names = "--prefill-prefix", description = "Prefill cells: cached prefix tokens per sequence (default: ${DEFAULT-VALUE}).",
            defaultValue = "8192")
    int prefillPrefix;

    @Option(names = "--prefill-query-len", description = "Prefill cells: new tokens per sequence (default: ${DEFAULT-VALUE}).",
            defaultValue = "512")
    int prefillQueryLen;

    @Option(names = "--prefill-out", description = "Prefill CSV to write (default: ${DEFAULT-VALUE}).",
            defaultValue = "target/bench/ours-prefill.csv")
    Path prefillOut;

    private List<DecodeGrid.Kernel> kernelList;
    private List<VSums> vSumsList;
    private String backend; // of the device, lower case: every row's variant starts with it
    private long rowStart; // System.nanoTime() when the previous decode row was printed (or the cells began)
    private int wrongRows; // rows whose output failed the fp64 check (BenchRow.WRONG, a loop line's FAIL): bench exits 1
    private KvScales scales; // of an 8-bit --dtype (the CLI's synthetic scales), null for fp16/fp32

    @Override
    public Integer call() throws IOException {
        // without the options, the properties a plan reads by itself (as check's --kernel and --v-sums)
        kernelList = kernels == null ? List.of(DecodeGrid.KERNEL) : Arrays.stream(kernels).map(DecodeGrid.Kernel::parse).toList();
        vSumsList = vSums == null ? List.of(VSums.DEFAULT) : Arrays.stream(vSums).map(BackendOptions::requireVSums).distinct().toList();
        if (vSumsList.contains(VSums.FP16) && !dtype.equalsIgnoreCase("fp16")) {
            throw new IllegalArgumentException("--v-sums=fp16 needs --dtype fp16 (the fp16 stream kernel's), not --dtype=" + dtype);
        }
        List<String> sweepList = Arrays.asList(sweeps);
        for (String sweep : sweeps) {
            if (!sweep.equals("decode") && !sweep.equals("prefill") && !sweep.equals("loop")) {
                throw new IllegalArgumentException("--sweeps=" + String.join(",", sweeps) + ": " + sweep + " is not one of decode, prefill, loop");
            }
        }
        if (prefillPrefix < 0 || prefillQueryLen < 1) {
            throw new IllegalArgumentException("--prefill-prefix=" + prefillPrefix + " --prefill-query-len=" + prefillQueryLen
                    + ": need prefix >= 0 and query-len >= 1");
        }
        if (qHeads < KV_HEADS || qHeads % KV_HEADS != 0) {
            throw new IllegalArgumentException("--q-heads=" + qHeads + " must be a multiple of the " + KV_HEADS + " KV heads");
        }
        if (blockSize < 1) {
            throw new IllegalArgumentException("--block-size=" + blockSize + " must be >= 1");
        }
        if (headDim < 8 || headDim > 256 || headDim % 8 != 0) {
            throw new IllegalArgumentException("--head-dim=" + headDim + " must be a multiple of 8 in [8, 256]");
        }
        if (loopReserveSeqs != null && loopReserveSeqs < 1) {
            throw new IllegalArgumentException("--loop-reserve-seqs=" + loopReserveSeqs + " must be >= 1");
        }
        extras = Extras.of(sinks, softCap, alibi, tree, spans, nonCausal);
        if (sweepList.contains("decode") || sweepList.contains("loop")) {
            extras.requirePrefill("--sweeps=" + String.join(",", sweeps));
        }
        int slidingWindow = PrefillCheck.window(window, chunk); // --window W, --chunk C (a negative value), or none
        boolean anyWindow = slidingWindow != DecodeBatch.NO_WINDOW;
        if (release && (!anyWindow || extras.any())) {
            throw new IllegalArgumentException("--release times windowed cells with and without their blocks before the window:"
                    + " it needs --window or --chunk and no --sinks, --soft-cap or --alibi");
        }
        if (sharedPrefix != null && (sharedPrefix < 1 || sharers < 1 || anyWindow || extras.any())) {
            throw new IllegalArgumentException("--shared-prefix=" + sharedPrefix + " --sharers=" + sharers + ": both must be >= 1,"
                    + " without --window, --sinks, --soft-cap or --alibi");
        }
        if (lse && (anyWindow || extras.any() || sharedPrefix != null || Arrays.asList(variants).contains("parallel"))) {
            throw new IllegalArgumentException("--lse times plain decode cells with and without log-sum-exps: not with --window,"
                    + " --chunk, --sinks, --soft-cap, --alibi, --shared-prefix or --variants parallel");
        }
        BackendOptions.requireDevice(device);
        for (String v : variants) {
            BackendOptions.requireVariant("--variants", v);
        }
        if (!Backends.tornadoRuntimePresent()) {
            throw new IllegalArgumentException("bench needs the TornadoVM runtime: run it through bin/pa-tornado (README, 'Running on a GPU')");
        }
        if (iterations < 1) {
            throw new IllegalArgumentException("--iterations=" + iterations + " must be >= 1");
        }
        if (loopSteps < 2) {
            throw new IllegalArgumentException("--loop-steps=" + loopSteps + " must be >= 2");
        }
        long loopKvBytes = loopKvMemory == null ? 0 : ByteSize.parse("--loop-kv-memory", loopKvMemory);
        KvDtype kvDtype = KvDtype.parse(dtype);
        scales = ShapeOptions.syntheticScales(kvDtype, kvScale, 1, KV_HEADS); // refuses --kv-scale with fp16/fp32
        long s = seed != null ? seed : System.nanoTime();
        if (sweepList.contains("decode")) {
            decodeSweep(kvDtype, s, slidingWindow);
        } else {
            System.out.printf("bench: seed=%d dtype=%s %s only%n", s, dtype, String.join(" and ", sweepList));
        }
        if (sweepList.contains("loop")) {
            wrongRows += LoopBench.run(cells(s), loopSteps, loopKvBytes, loopReserveSeqs == null ? 0 : loopReserveSeqs, qHeads,
                    KV_HEADS, headDim, blockSize, kvDtype, scales, device, s, stepRows);
        }
        if (sweepList.contains("prefill")) {
            wrongRows += PrefillBench.run(prefillBatches, prefillPrefix, prefillQueryLen, qHeads, KV_HEADS, headDim, blockSize,
                    kvDtype, scales, device, iterations, s, prefillOut, extras);
        }
        if (wrongRows > 0) {
            System.err.printf("bench: %d row(s) failed the fp64 check (decode and prefill rows: WRONG, status \"%s\" in the CSV;"
                    + " loop lines: FAIL); seed=%d%n", wrongRows, BenchRow.WRONG, s);
            return 1;
        }
        return 0;
    }

    /** The decode cells, each variant timed and checked, next to TornadoVM's read and copy probes; rows to {@link #out}. */
    private void decodeSweep(KvDtype kvDtype, long s, int slidingWindow) throws IOException {
        System.out.printf("bench: seed=%d dtype=%s q-heads=%d head-dim=%d variants=%s%n", s, dtype, qHeads, headDim,
                String.join(",", variants));
        backend = TornadoDecodeAttention.backendOf(device).name().toLowerCase(java.util.Locale.ROOT);
        BandwidthProbe.Result probe = BandwidthProbe.measure(2L << 30, 10, device);
        System.out.printf("ceiling probe (TornadoVM, %d MiB): read %.0f GB/s, @Parallel copy %.0f GB/s (read+write)%n",
                probe.bytes() >> 20, probe.readGBs(), probe.copyGBs());
        List<BenchRow> rows = new ArrayList<>();
        rows.add(new BenchRow("ours", "probe-read", "fp32", 0, "0", 0, "ok", Double.NaN, Double.NaN, Double.NaN, probe.bytes(),
                probe.readGBs(), 100, Double.NaN, backend + ": grid-stride read kernel"));
        rows.add(new BenchRow("ours", "probe-copy", "fp32", 0, "0", 0, "ok", Double.NaN, Double.NaN, Double.NaN, 2 * probe.bytes(),
                probe.copyGBs(), 100 * probe.copyGBs() / probe.readGBs(), Double.NaN, backend + ": @Parallel copy; read+write bytes"));
        List<int[]> cells = cells(s);
        rowStart = System.nanoTime();
        // The first cell a process times ran 1.2-1.7x slow on an H200 whatever it was (its plan warmed up like every
        // other; benchmarks/NOTES.md, t98): the first cell is run once untimed, so that every reported cell is a later one.
        if (!cells.isEmpty()) {
            System.out.printf("warm-up: %d x %d once, not reported%n", cells.get(0).length, cells.get(0)[0]);
            cell(cells.get(0), "warm-up", kvDtype, s, probe.readGBs(), slidingWindow, false, false);
        }
        String raggedContext = ragged.equals("none") ? null : ragged.split("x")[1];
        for (int i = 0; i < cells.size(); i++) {
            int[] lengths = cells.get(i);
            String context = i == cells.size() - 1 && raggedContext != null ? raggedContext : Integer.toString(lengths[0]);
            if (sharedPrefix != null) {
                if (Arrays.stream(lengths).anyMatch(l -> l < sharedPrefix)) {
                    throw new IllegalArgumentException("--shared-prefix=" + sharedPrefix + " is longer than the cell " + lengths.length
                            + "x" + context);
                }
                List<BenchRow> shared = cell(lengths, context + "/shared" + sharedPrefix, kvDtype, s, probe.readGBs(), slidingWindow,
                        false, false, sharedPrefix);
                List<BenchRow> own = cell(lengths, context, kvDtype, s, probe.readGBs(), slidingWindow, false, false);
                for (int k = 0; k < Math.min(shared.size(), own.size()); k++) {
                    System.out.printf("%5d x %-12s %-13s runs of %d sharing %d tokens / nothing shared: %.2fx the time%n",
                            lengths.length, context, shared.get(k).variant(), sharers, sharedPrefix,
                            shared.get(k).minUs() / own.get(k).minUs());
                }
                rows.addAll(shared);
                rows.addAll(own);
            } else if (extras.any()) {
                String plainContext = context + (slidingWindow == DecodeBatch.NO_WINDOW ? "" : "/w" + slidingWindow);
                List<BenchRow> with = cell(lengths, plainContext + "/" + extras.label(), kvDtype, s, probe.readGBs(), slidingWindow, true,
                        false);
                List<BenchRow> plain = cell(lengths, plainContext, kvDtype, s, probe.readGBs(), slidingWindow, false, false);
                for (int k = 0; k < Math.min(with.size(), plain.size()); k++) {
                    System.out.printf("%5d x %-12s %-13s with %s / without: %.2fx the time%n", lengths.length, plainContext,
                            with.get(k).variant(), extras.label(), with.get(k).minUs() / plain.get(k).minUs());
                }
                rows.addAll(with);
                rows.addAll(plain);
            } else if (lse) {
                timingLse = true;
                List<BenchRow> with = cell(lengths, context + "/lse", kvDtype, s, probe.readGBs(), slidingWindow, false, false);
                timingLse = false;
                List<BenchRow> plain = cell(lengths, context, kvDtype, s, probe.readGBs(), slidingWindow, false, false);
                for (int k = 0; k < Math.min(with.size(), plain.size()); k++) {
                    System.out.printf("%5d x %-12s %-13s with lse / without: %.2fx the device time, %.2fx the wall time%n",
                            lengths.length, context, with.get(k).variant(), with.get(k).minUs() / plain.get(k).minUs(),
                            with.get(k).wallMedianUs() / plain.get(k).wallMedianUs());
                }
                rows.addAll(with);
                rows.addAll(plain);
            } else if (slidingWindow == DecodeBatch.NO_WINDOW) {
                rows.addAll(cell(lengths, context, kvDtype, s, probe.readGBs(), slidingWindow, false, false));
            } else {
                String tag = PrefillCheck.cellTag(slidingWindow);
                String what = AttentionWindow.describe(slidingWindow);
                List<BenchRow> windowed = cell(lengths, context + tag, kvDtype, s, probe.readGBs(), slidingWindow, false, false);
                int[] visible = Arrays.stream(lengths).map(l -> l - DecodeBatch.firstVisible(l, slidingWindow)).toArray();
                List<BenchRow> same = cell(visible, Integer.toString(visible[0]), kvDtype, s, probe.readGBs(), DecodeBatch.NO_WINDOW,
                        false, false);
                if (release) {
                    List<BenchRow> released = cell(lengths, context + tag + "/released", kvDtype, s, probe.readGBs(),
                            slidingWindow, false, true);
                    for (int k = 0; k < Math.min(windowed.size(), released.size()); k++) {
                        System.out.printf("%5d x %-12s %-13s %s, blocks before it released / kept: %.2fx the time%n",
                                lengths.length, context, released.get(k).variant(), what,
                                released.get(k).minUs() / windowed.get(k).minUs());
                    }
                    rows.addAll(released);
                }
                for (int k = 0; k < Math.min(windowed.size(), same.size()); k++) {
                    System.out.printf("%5d x %-12s %-13s %s over %s tokens / no window over %s: %.2fx the time%n", lengths.length,
                            context, windowed.get(k).variant(), what, context, visible[0],
                            windowed.get(k).minUs() / same.get(k).minUs());
                }
                rows.addAll(windowed);
                rows.addAll(same);
            }
            write(rows);
        }
        System.out.println("wrote " + out);
        wrongRows += (int) rows.stream().filter(row -> row.status().equals(BenchRow.WRONG)).count();
    }

    /** The decode cells' context lengths: --cells, else --batches x --contexts; then the ragged row unless none. */
    private List<int[]> cells(long s) {
        List<int[]> cells = new ArrayList<>();
        if (onlyCells != null) {
            for (String cell : onlyCells) {
                String[] bx = cell.split("x");
                if (bx.length != 2 || !bx[0].matches("\\d+") || !bx[1].matches("\\d+")) {
                    throw new IllegalArgumentException("--cells=" + cell + " is not BATCHxCONTEXT");
                }
                int c = Integer.parseInt(bx[1]);
                cells.add(DecodeWorkload.lengths(Integer.parseInt(bx[0]), c, c, s));
            }
        } else {
            for (int b : batches) {
                for (int c : contexts) {
                    cells.add(DecodeWorkload.lengths(b, c, c, s));
                }
            }
        }
        if (!ragged.equals("none")) {
            String[] bx = ragged.split("x");
            String[] mm = bx[1].split("\\.\\.");
            cells.add(DecodeWorkload.lengths(Integer.parseInt(bx[0]), Integer.parseInt(mm[0]), Integer.parseInt(mm[1]), s));
        }
        return cells;
    }

    private List<BenchRow> cell(int[] lengths, String context, KvDtype kvDtype, long s, double ceiling, int slidingWindow,
                                boolean withExtras, boolean released) {
        return cell(lengths, context, kvDtype, s, ceiling, slidingWindow, withExtras, released, 0);
    }

    /** {@code shared} > 0: runs of {@link #sharers} sequences share their first {@code shared} tokens' blocks. */
    private List<BenchRow> cell(int[] lengths, String context, KvDtype kvDtype, long s, double ceiling, int slidingWindow,
                                boolean withExtras, boolean released, int shared) {
        long tokens = Arrays.stream(lengths).asLongStream().sum();
        long blocks = Arrays.stream(lengths).mapToLong(l -> (l + blockSize - 1) / blockSize).sum();
        List<BenchRow> rows = new ArrayList<>();
        String dt = dtype.toLowerCase();
        if (blocks > KvCacheConfig.maxBlocks(blockSize, KV_HEADS, headDim)) { // even one int-indexed array per KV head is too small
            rows.add(new BenchRow("ours", "all", dt, lengths.length, context, tokens, "does-not-fit", Double.NaN, Double.NaN,
                    Double.NaN, 0, Double.NaN, Double.NaN, Double.NaN, "one KV head of a layer over 2^31 elements (one native array)"));
            System.out.printf("%5d x %-12s does not fit: one KV head of the layer is over one native array%n", lengths.length, context);
            return rows;
        }
        // 8-bit: the CLI's scales for K/V uniform in [-1, 1) (absmax 1 over the format's largest value)
        long wSeed = s + lengths.length * 31L + tokens;
        DecodeWorkload w = shared > 0
                ? DecodeWorkload.sharedPrefix(lengths, sharers, shared, qHeads, KV_HEADS, headDim, blockSize, kvDtype, wSeed, scales)
                : DecodeWorkload.create(lengths, qHeads, KV_HEADS, headDim, blockSize, kvDtype, wSeed, 0, 1, 0, scales)
                        .windowed(slidingWindow);
        if (withExtras) {
            w = extras.apply(w, 1, qHeads, s);
        }
        if (released) {
            w = w.releasedOutsideWindow();
        }
        double[] ref = w.reference();
        for (String variant : variants) {
            if (variant.equals("parallel") && withExtras) {
                continue; // no sinks, soft-capping or ALiBi in the @Parallel variant: refused by the backend
            }
            if (variant.equals("parallel") && tokens > parallelMaxTokens) {
                rows.add(new BenchRow("ours", variant, dt, lengths.length, context, tokens, "skipped", Double.NaN, Double.NaN,
                        Double.NaN, w.minimumBytes(), Double.NaN, Double.NaN, Double.NaN, "too slow above --parallel-max-tokens"));
                continue;
            }
            for (DecodeGrid.Kernel kernel : kernelList) {
                if (variant.equals("parallel") && kernel != kernelList.get(0)) {
                    continue; // the @Parallel variant has no KernelContext kernel to choose
                }
                for (VSums v : vSumsList) {
                    if (v == VSums.FP16 && variant.equals("parallel")) {
                        continue; // fp16 V sums are the stream kernel's
                    }
                    rows.add(run(w, ref, variant, kernel, v, context, ceiling));
                }
            }
        }
        return rows;
    }

    private BenchRow run(DecodeWorkload w, double[] ref, String variant, DecodeGrid.Kernel kernel, VSums vSums, String context,
                         double ceiling) {
        AttentionSpec spec = w.spec();
        int batch = w.batch().numSeqs();
        long tokens = w.batch().totalTokens();
        String dt = dtype.toLowerCase();
        String name = backend + ":" + (kernel == DecodeGrid.Kernel.AUTO || variant.equals("parallel") ? variant
                : variant + "/" + kernel.name().toLowerCase()) + (vSums == VSums.FP16 ? "+fp16v" : "") + (stepRows ? "+steprows" : "")
                + (timingLse ? "+lse" : "") + blockSuffix(blockSize);
        try {
            // device time: steps launched one by one under TornadoVM's profiler
            long[] nanos;
            double rel;
            String grid;
            try (TornadoDecodeAttention attention = new TornadoDecodeAttention(w.cache(), spec, device, variant, kernel, false, vSums)) {
                FloatArray result = w.poisonedOutput();
                nanos = timeSteps(attention, w, w.q(), result, lseArray(w), TornadoDecodeAttention::lastDeviceNanos);
                rel = ReferenceAttention.relativeL2(result, ref);
                grid = attention.backend() + " " + (variant.equals("parallel") ? "@Parallel"
                        : attention.gridFor(w.batch()).toString().replace("DecodeGrid", "").replace(",", ";")
                        + (attention.boundedFor(w.batch()) ? " bounded twin" : ""))
                        + Optional.ofNullable(attention.ptxJitFlags()).map(f -> "; JIT flags " + f).orElse("")
                        + (w.cache().config().poolShards() > 1 ? " per shard; " + w.cache().config().poolShards() + " KV-head shards" : "")
                        + (spec.numQHeads() != STANDARD_Q_HEADS ? "; " + spec.numQHeads() + " query heads" : "")
                        + (spec.headDim() != STANDARD_HEAD_DIM ? "; head dim " + spec.headDim() : "");
            }
            // wall time as an engine sees it: decode called -> output in the caller's array, the plan as
            // the library builds it by default (CUDA graphs where the backend has them), checked again
            long[] wall;
            try (TornadoDecodeAttention attention = new TornadoDecodeAttention(w.cache(), spec, device, variant, kernel,
                    TornadoDecodeAttention.CUDA_GRAPH, vSums)) {
                FloatArray result = w.poisonedOutput();
                if (stepRows) { // the engine writes its queries into the plan's rows and reads the outputs there
                    StepRows rows = OwnRows.poisonedWith(attention.stepRows(w.batch(), 0), w.q()); // rows past the batch: NaN
                    wall = timeSteps(attention, w, rows.q(), rows.out(), lseArray(w), null);
                    OwnRows.copyOut(rows, result);
                } else {
                    wall = timeSteps(attention, w, w.q(), result, lseArray(w), null);
                }
                rel = Math.max(rel, ReferenceAttention.relativeL2(result, ref));
            }
            double gbs = w.minimumBytes() / (double) nanos[0];
            BenchRow row = new BenchRow("ours", name, dt, batch, context, tokens, BenchRow.status(rel),
                    nanos[0] / 1e3, nanos[nanos.length / 2] / 1e3, nanos[nanos.length - 1] / 1e3, w.minimumBytes(), gbs,
                    100 * gbs / ceiling, rel, grid, wall[0] / 1e3, wall[wall.length / 2] / 1e3);
            System.out.printf("%5d x %-12s %-13s min %9.1f us  median %9.1f us  %7.1f GB/s  %5.1f%% of read ceiling  rel L2 %.2e%s"
                            + "  wall min %8.1f us median %8.1f us  %s%n",
                    batch, context, name, row.minUs(), row.medianUs(), gbs, row.pctCeiling(), rel, BenchRow.wrongMark(rel), row.wallMinUs(),
                    row.wallMedianUs(), sinceLastRow());
            return row;
        } catch (RuntimeException e) {
            String why = causes(e);
            System.out.printf("%5d x %-12s %-13s error: %s  %s%n", batch, context, name, why, sinceLastRow());
            return new BenchRow("ours", name, dt, batch, context, tokens, "error", Double.NaN, Double.NaN, Double.NaN,
                    w.minimumBytes(), Double.NaN, Double.NaN, Double.NaN, why);
        }
    }

    /**
     * The seconds since the previous decode row, as {@code [12.3 s]}: the row's workload and fp64 reference (the first variant
     * of a cell), its two plans, warm-up, timed steps and checks. What a device script needs to budget its calls.
     */
    private String sinceLastRow() {
        long now = System.nanoTime();
        String took = String.format(java.util.Locale.ROOT, "[%.1f s]", (now - rowStart) / 1e9);
        rowStart = now;
        return took;
    }

    /** A step's log-sum-exp array while an lse cell is timed ({@code --lse}), else null. */
    private FloatArray lseArray(DecodeWorkload w) {
        return timingLse ? new FloatArray(w.batch().numSeqs() * w.spec().numQHeads()) : null;
    }

    /** The exception and its causes, one line (TornadoVM wraps the reason a run failed in a generic bailout). */
    static String causes(Throwable e) {
        StringBuilder b = new StringBuilder();
        for (Throwable t = e; t != null && b.length() < 600; t = t.getCause() == t ? null : t.getCause()) {
            String m = String.valueOf(t.getMessage()).replaceAll("\u001B\\[[0-9;]*m", "").replaceAll("\\s+", " ").strip();
            b.append(b.length() == 0 ? "" : " <- ").append(t.getClass().getSimpleName()).append(": ").append(m);
        }
        return b.toString();
    }

    /**
     * Untimed steps before a plan's timed ones: the first uploads and compiles, and TornadoVM's host path of an
     * {@code execute()} runs in the JVM's interpreter, then in C1's code, until C2 has compiled it, which takes
     * thousands of calls. On an H200 a 1 x 1k call took 300-415 us of wall time after 3 warm-up steps, 123-150 us after
     * 100 and 48-60 us after 5000 (benchmarks/NOTES.md, twenty-fifth and twenty-sixth sessions); an engine calls decode
     * thousands of times, so the steady state is what it sees. A plan is warmed for {@link #WARMUP_NANOS} or
     * {@link #WARMUP_MAX_STEPS} calls, whichever ends first, and at least {@link #WARMUP_MIN_STEPS}.
     */
    static final long WARMUP_NANOS = 2_000_000_000L;
    static final int WARMUP_MAX_STEPS = 10_000;
    static final int WARMUP_MIN_STEPS = 3;

    /**
     * Runs {@code step} as the warm-up above: for {@link #WARMUP_NANOS} or {@link #WARMUP_MAX_STEPS} calls, whichever ends
     * first, and at least {@link #WARMUP_MIN_STEPS}.
     */
    static void warmUp(Runnable step) {
        long end = System.nanoTime() + WARMUP_NANOS;
        for (int i = 0; i < WARMUP_MIN_STEPS || i < WARMUP_MAX_STEPS && System.nanoTime() < end; i++) {
            step.run();
        }
    }

    /**
     * The warm-up above, then {@code iterations} timed steps, sorted: device time when {@code deviceTime}
     * is given, else wall time of the call. The last step's output stays in {@code result} (poisoned first).
     */
    private long[] timeSteps(TornadoDecodeAttention attention, DecodeWorkload w, FloatArray q, FloatArray result, FloatArray lse,
                             java.util.function.ToLongFunction<TornadoDecodeAttention> deviceTime) {
        warmUp(() -> attention.decode(w.batch(), 0, q, result, lse)); // upload, JIT, warm-up
        long[] times = new long[iterations];
        for (int i = 0; i < iterations; i++) {
            if (i == iterations - 1) {
                result.init(Float.NaN);
            }
            long t0 = System.nanoTime();
            attention.decode(w.batch(), 0, q, result, lse);
            times[i] = deviceTime != null ? deviceTime.applyAsLong(attention) : System.nanoTime() - t0;
        }
        Arrays.sort(times);
        return times;
    }

    private void write(List<BenchRow> rows) throws IOException {
        if (out.getParent() != null) {
            Files.createDirectories(out.getParent());
        }
        List<String> lines = new ArrayList<>();
        lines.add(BenchRow.HEADER);
        rows.forEach(r -> lines.add(r.toCsv()));
        Files.write(out, lines);
    }
}
