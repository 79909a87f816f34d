package dev.pagedattn.cli;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The CPU cells of the JVM backend (issue 13): per cell and dtype a workload, a time-bounded
 * warm-up (C2 must have compiled the Vector API code, or the first steps run interpreted), then
 * timed steps over the same K/V (as PyTorch's peer does), one check against the fp64 reference,
 * and a memory-read probe (a vector sum over a large off-heap buffer on all threads) in the same
 * run. Rows go to stdout and, with --out, to a CSV that benchmarks/cpu-sweep.sh reads. A feature's cost is measured
 * against the same cell without it, in the same process: {@code --soft-cap} (takes the pairing over
 * {@code --sinks}, whose rows then both carry sinks), else {@code --sinks}, else {@code --window}; {@code --alibi} before
 * all of them (both rows carry the sinks and the cap); {@code --latent-dim} before those (a latent cache against the same
 * vectors stored in a K and a V pool, both rows carrying the rest).
 */
@Command(name = "bench-cpu", mixinStandardHelpOptions = true,
        description = "Time the JVM backend on the CPU cells (min and median step time) next to a memory-read probe; CSV with --out.")
final class BenchCpuCommand implements Callable<Integer> {
    static final String HEADER = "impl,cell,dtype,batch,context,threads,steps,min_ms,median_ms,max_ms,gbs_at_min,rel_l2,status";

    @Option(names = "--cells", split = ",", description = "BATCHxCONTEXT cells (default: ${DEFAULT-VALUE}).",
            defaultValue = "1x8192,8x8192,32x4096")
    List<String> cells;

    @Option(names = "--dtypes", split = ",", description = "K/V dtypes (default: ${DEFAULT-VALUE}).", defaultValue = "fp32,fp16")
    List<String> dtypes;

    @Option(names = "--q-heads", description = "Query heads (default: ${DEFAULT-VALUE}).", defaultValue = "32")
    int qHeads;

    @Option(names = "--kv-heads", description = "KV heads (default: ${DEFAULT-VALUE}).", defaultValue = "8")
    int kvHeads;

    @Option(names = "--head-dim", description = "Head dimension (default: ${DEFAULT-VALUE}).", defaultValue = "128")
    int headDim;

    @Option(names = "--block-size", description = "Tokens per KV block (default: ${DEFAULT-VALUE}).", defaultValue = "16")
    int blockSize;

    @Option(names = "--steps", description = "Timed decode steps per cell (default: ${DEFAULT-VALUE}).", defaultValue = "50")
    int steps;

    @Option(names = "--warmup-seconds", description = "Untimed decode steps for this long first (default: ${DEFAULT-VALUE}).",
            defaultValue = "3")
    double warmupSeconds;

    @Option(names = "--probe-mib", description = "Memory-read probe buffer in MiB, 0 = no probe (default: ${DEFAULT-VALUE}).",
            defaultValue = "4096")
    int probeMib;

    @Option(names = "--seed", description = "Random seed (default: ${DEFAULT-VALUE}).", defaultValue = "1")
    long seed;

    @Option(names = "--threads", description = "Decode and probe threads (default: pagedattn.jvm.threads, else all processors).")
    Integer threads;

    @Option(names = "--window", description = "A sliding window of W tokens (DecodeBatch.window): each cell BxL windowed (row"
            + " BxL/wW), then Bx min(L, W) without a window (the same K/V bytes) in the same run.")
    Integer window;

    @Option(names = "--chunk", description = "Chunked local attention over chunks of C tokens (Llama 4; AttentionWindow.chunked):"
            + " each cell BxL through them (row BxL/cC), then B x (the tokens of its last chunk) without a window in the same"
            + " run. Not with --window.")
    Integer chunk;

    @Option(names = "--sinks", description = "Attention sinks (gpt-oss) in every query head, random from the seed: each cell"
            + " with sinks (row BxL/sinks), then without, in the same run.")
    boolean sinks;

    @Option(names = "--soft-cap", description = "Logit soft-capping at X > 0 (Gemma 2: 50): each cell capped (row BxL/capX),"
            + " then without, in the same run (with --sinks both carry sinks).")
    Float softCap;

    @Option(names = "--alibi", description = "ALiBi with the paper's slopes (BLOOM, MPT): each cell with it (row BxL/alibi),"
            + " then without, in the same run (with --sinks or --soft-cap both carry them).")
    boolean alibi;

    @Option(names = "--shared-prefix", description = "Runs of --sharers sequences share their first P tokens (forks of one"
            + " prompt): each cell BxL timed with cascade attention (row BxL/sharedP), then without, on the same cache, in the"
            + " same run (both carry --window, --sinks, --soft-cap, --alibi).")
    Integer sharedPrefix;

    @Option(names = "--sharers", description = "Sequences per shared prompt with --shared-prefix (default: ${DEFAULT-VALUE}).",
            defaultValue = "8")
    int sharers;

    @Option(names = "--latent-dim", description = "Multi-head latent attention (DeepSeek's MLA): each cell over a latent cache"
            + " of one --head-dim vector per token whose first N elements are the values (row BxL/latentN; needs --kv-heads 1),"
            + " then over the same shape stored in a K and a V pool (values --head-dim wide), in the same run.")
    Integer latentDim;

    @Option(names = "--select-blocks", description = "Block-sparse decode (Quest's page selection): each cell BxL with every"
            + " sequence attending K of its blocks, chosen at random, its last always (row BxL/selectK), then the same batch over"
            + " every block, in the same run (not with --latent-dim or --shared-prefix).")
    Integer selectBlocks;

    @Option(names = "--rope", description = "After each cell's decode row, the rotary embedding of that step's new query and key"
            + " rows (Llama 3.1's frequencies, NEOX pairs, one thread; row rope-neox) and its time against the step's.")
    boolean rope;

    @Option(names = "--out", description = "Also write the rows to this CSV file.")
    Path out;

    @Override
    public Integer call() throws IOException {
        if (steps < 1) {
            throw new IllegalArgumentException("--steps=" + steps + " must be >= 1");
        }
        if (!(warmupSeconds >= 0)) {
            throw new IllegalArgumentException("--warmup-seconds=" + warmupSeconds + " must be >= 0");
        }
        if (probeMib < 0) {
            throw new IllegalArgumentException("--probe-mib=" + probeMib + " must be >= 0");
        }
        if (threads != null) {
            if (threads < 1) {
                throw new IllegalArgumentException("--threads=" + threads + " must be >= 1");
            }
            System.setProperty("pagedattn.jvm.threads", Integer.toString(threads)); // read when a backend is made
        }
        List<int[]> shapes = new ArrayList<>();
        for (String cell : cells) {
            shapes.add(parseCell(cell));
        }
        List<KvDtype> kvDtypes = dtypes.stream().map(KvDtype::parse).toList();
        int slidingWindow = PrefillCheck.window(window, chunk); // --window W, --chunk C (a negative value), or none
        if (sharedPrefix != null) {
            if (sharedPrefix < 1) {
                throw new IllegalArgumentException("--shared-prefix=" + sharedPrefix + " must be >= 1");
            }
            if (sharers < 1) {
                throw new IllegalArgumentException("--sharers=" + sharers + " must be >= 1");
            }
            for (int[] shape : shapes) {
                if (shape[1] < sharedPrefix) {
                    throw new IllegalArgumentException("--cells: cell=" + shape[0] + "x" + shape[1] + " is shorter than"
                            + " --shared-prefix=" + sharedPrefix);
                }
            }
        }
        float cap = Extras.of(sinks, softCap, false, false, false).softCap(); // names a bad cap
        if (selectBlocks != null && (selectBlocks < 1 || latentDim != null || sharedPrefix != null || slidingWindow != DecodeBatch.NO_WINDOW
                || alibi)) {
            throw new IllegalArgumentException("--select-blocks=" + selectBlocks + " must be >= 1, without --latent-dim,"
                    + " --shared-prefix, --window, --chunk or --alibi");
        }
        if (latentDim != null) {
            if (latentDim < 1 || latentDim > headDim || kvHeads != 1) {
                throw new IllegalArgumentException("--latent-dim=" + latentDim + " must be in [1, --head-dim=" + headDim
                        + "] with --kv-heads 1 (--kv-heads=" + kvHeads + ")");
            }
            if (sharedPrefix != null) {
                throw new IllegalArgumentException("--latent-dim=" + latentDim + " pairs a latent cache with a K and V one: not"
                        + " with --shared-prefix");
            }
        }
        // The settings a reader needs to compare runs across machines (the lane count follows the CPU and -XX:MaxVectorSize).
        System.err.printf("# jvm backend: %d threads, %d float lanes, vector=%s, prefetch=%s%n",
                Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors()),
                FloatVector.SPECIES_PREFERRED.length(), JvmDecodeAttention.VECTOR, JvmDecodeAttention.PREFETCH);
        List<String> rows = new ArrayList<>();
        PrintStream console = System.out;
        console.println(HEADER);
        if (probeMib > 0) {
            rows.add(probe(probeMib));
            console.println(rows.getLast());
        }
        for (int[] shape : shapes) {
            for (KvDtype dtype : kvDtypes) {
                if (sharedPrefix != null) {
                    DecodeWorkload w = workload(shape[0], shape[1], dtype, slidingWindow, sinks, cap, alibi);
                    String label = label(shape[0], shape[1], slidingWindow, sinks, cap, alibi) + "/shared" + sharedPrefix;
                    String[] pair = timeCascade(w, label, dtype);
                    rows.add(pair[0]);
                    console.println(rows.getLast());
                    String cascade = rows.getLast();
                    rows.add(pair[1]);
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: runs of %d sharing %d tokens: cascade / plain: %.2fx the time%n", shape[0],
                            shape[1], dtype.name().toLowerCase(), sharers, sharedPrefix, minMs(cascade) / minMs(rows.getLast()));
                    continue;
                }
                if (selectBlocks != null) {
                    DecodeWorkload all = workload(shape[0], shape[1], dtype, slidingWindow, sinks, cap, false);
                    DecodeWorkload some = all.selectedBlocks(CheckCommand.selection(all.batch(), selectBlocks, seed));
                    String label = label(shape[0], shape[1], slidingWindow, sinks, cap, false);
                    rows.add(time(some, label + "/select" + selectBlocks, dtype, JvmDecodeAttention.CASCADE));
                    console.println(rows.getLast());
                    String selected = rows.getLast();
                    rows.add(time(all, label, dtype, JvmDecodeAttention.CASCADE));
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: %d selected blocks of each sequence (%d of %d tokens) / every block: %.2fx the"
                            + " time%n", shape[0], shape[1], dtype.name().toLowerCase(), selectBlocks, some.batch().visibleTokens(),
                            all.batch().visibleTokens(), minMs(selected) / minMs(rows.getLast()));
                    continue;
                }
                rows.add(cell(shape[0], shape[1], dtype, slidingWindow, sinks, cap, alibi, latentDim == null ? 0 : latentDim));
                console.println(rows.getLast());
                String step = rows.getLast();
                if (latentDim != null) {
                    String latent = rows.getLast();
                    rows.add(cell(shape[0], shape[1], dtype, slidingWindow, sinks, cap, alibi, 0));
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: latent (one %d-element vector per token, values its first %d) / K and V"
                            + " pools: %.2fx the time%n", shape[0], shape[1], dtype.name().toLowerCase(), headDim, latentDim,
                            minMs(latent) / minMs(rows.getLast()));
                } else if (alibi) {
                    String biased = rows.getLast();
                    rows.add(cell(shape[0], shape[1], dtype, slidingWindow, sinks, cap, false));
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: alibi / no alibi: %.2fx the time%n", shape[0], shape[1],
                            dtype.name().toLowerCase(), minMs(biased) / minMs(rows.getLast()));
                } else if (cap > 0) {
                    String capped = rows.getLast();
                    rows.add(cell(shape[0], shape[1], dtype, slidingWindow, sinks, 0f, false));
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: soft cap %s / no cap: %.2fx the time%n", shape[0], shape[1],
                            dtype.name().toLowerCase(), Extras.plain(cap), minMs(capped) / minMs(rows.getLast()));
                } else if (sinks) {
                    String sunk = rows.getLast();
                    rows.add(cell(shape[0], shape[1], dtype, slidingWindow, false, 0f, false));
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: with sinks / without: %.2fx the time%n", shape[0], shape[1],
                            dtype.name().toLowerCase(), minMs(sunk) / minMs(rows.getLast()));
                } else if (slidingWindow != DecodeBatch.NO_WINDOW) {
                    String windowed = rows.getLast();
                    int visible = shape[1] - DecodeBatch.firstVisible(shape[1], slidingWindow);
                    rows.add(cell(shape[0], visible, dtype, DecodeBatch.NO_WINDOW, false, 0f, false));
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: %s / no window over %d tokens: %.2fx the time%n", shape[0], shape[1],
                            dtype.name().toLowerCase(), AttentionWindow.describe(slidingWindow), visible,
                            minMs(windowed) / minMs(rows.getLast()));
                }
                if (rope) {
                    rows.add(RopeBench.row(shape[0], shape[1], qHeads, kvHeads, headDim, steps, warmupSeconds, seed));
                    console.println(rows.getLast());
                    System.err.printf("# %dx%d %s: rotary embedding of the step's new rows / the decode step: %.4fx the time%n",
                            shape[0], shape[1], dtype.name().toLowerCase(), minMs(rows.getLast()) / minMs(step));
                }
            }
        }
        if (out != null) {
            List<String> lines = new ArrayList<>();
            lines.add(HEADER);
            lines.addAll(rows);
            Files.write(out, lines);
        }
        return 0;
    }

    private static int[] parseCell(String cell) {
        String[] parts = cell.trim().split("x");
        try {
            if (parts.length == 2) {
                int batch = Integer.parseInt(parts[0]);
                int context = Integer.parseInt(parts[1]);
                if (batch >= 1 && context >= 1) {
                    return new int[] {batch, context};
                }
            }
        } catch (NumberFormatException e) {
            // named below
        }
        throw new IllegalArgumentException("--cells: cell=" + cell + " is not BATCHxCONTEXT with both >= 1");
    }

    /** A row's min_ms column. */
    private static double minMs(String row) {
        return Double.parseDouble(row.split(",")[7]);
    }

    /** One timed and checked row; {@code cap}: the soft cap, 0 for none. */
    private String cell(int batch, int context, KvDtype dtype, int slidingWindow, boolean withSinks, float cap, boolean withAlibi) {
        return cell(batch, context, dtype, slidingWindow, withSinks, cap, withAlibi, 0);
    }

    /** Same, over a latent cache whose values are the first {@code latent} elements of each vector (0: K and V pools). */
    private String cell(int batch, int context, KvDtype dtype, int slidingWindow, boolean withSinks, float cap, boolean withAlibi,
                        int latent) {
        return time(workload(batch, context, dtype, slidingWindow, withSinks, cap, withAlibi, latent),
                label(batch, context, slidingWindow, withSinks, cap, withAlibi) + (latent > 0 ? "/latent" + latent : ""), dtype,
                JvmDecodeAttention.CASCADE);
    }

    /** A cell's workload: {@code batch} sequences of {@code context} tokens (with --shared-prefix, in runs of forks). */
    private DecodeWorkload workload(int batch, int context, KvDtype dtype, int slidingWindow, boolean withSinks, float cap,
                                    boolean withAlibi) {
        return workload(batch, context, dtype, slidingWindow, withSinks, cap, withAlibi, 0);
    }

    private DecodeWorkload workload(int batch, int context, KvDtype dtype, int slidingWindow, boolean withSinks, float cap,
                                    boolean withAlibi, int latent) {
        int[] lengths = new int[batch];
        Arrays.fill(lengths, context);
        // 8-bit pools get the CLI's synthetic scales (random K/V are uniform in [-1, 1): nothing saturates)
        DecodeWorkload w = sharedPrefix != null
                ? DecodeWorkload.sharedPrefix(lengths, sharers, sharedPrefix, qHeads, kvHeads, headDim, blockSize, dtype, seed,
                        ShapeOptions.syntheticScales(dtype, null, 1, kvHeads)).windowed(slidingWindow)
                : DecodeWorkload.create(lengths, qHeads, kvHeads, headDim, blockSize, dtype, seed, 0L, 1, 0,
                        ShapeOptions.syntheticScales(dtype, null, 1, kvHeads), dev.pagedattn.cache.KvCacheConfig.MAX_POOL_ELEMENTS,
                        latent).windowed(slidingWindow);
        if (withSinks) {
            w = w.withSinks(DecodeWorkload.randomSinks(1, qHeads, 1, seed));
        }
        if (cap > 0) {
            w = w.withSoftCap(cap);
        }
        if (withAlibi) {
            w = w.withAlibi(AlibiSlopes.standard(qHeads));
        }
        return w;
    }

    private static String label(int batch, int context, int slidingWindow, boolean withSinks, float cap, boolean withAlibi) {
        return batch + "x" + context + PrefillCheck.cellTag(slidingWindow) + (withSinks ? "/sinks" : "")
                + (cap > 0 ? "/cap" + Extras.plain(cap) : "") + (withAlibi ? "/alibi" : "");
    }

    /** Warms, times and checks a backend over {@code w}; one CSV row. */
    private String time(DecodeWorkload w, String label, KvDtype dtype, boolean cascade) {
        long[] nanos = new long[steps];
        FloatArray result = w.poisonedOutput();
        int numThreads;
        try (JvmDecodeAttention attention = new JvmDecodeAttention(w.cache(), w.spec())) {
            attention.setCascade(cascade);
            numThreads = attention.numThreads();
            warm(attention, w, result);
            for (int i = 0; i < steps; i++) {
                nanos[i] = timedStep(attention, w, result);
            }
        }
        return row(w, label, dtype, numThreads, nanos, ReferenceAttention.relativeL2(result, w.reference()));
    }

    /**
     * Cascade attention against the plain step on one backend over {@code w}: both warmed, then their steps alternate (so
     * that neither gets a cooler cache or a later compilation); two rows, cascade first, each checked against fp64.
     */
    private String[] timeCascade(DecodeWorkload w, String label, KvDtype dtype) {
        long[][] nanos = new long[2][steps];
        FloatArray[] results = {w.poisonedOutput(), w.poisonedOutput()};
        int numThreads;
        try (JvmDecodeAttention attention = new JvmDecodeAttention(w.cache(), w.spec())) {
            numThreads = attention.numThreads();
            for (int k = 0; k < 2; k++) {
                attention.setCascade(k == 0);
                warm(attention, w, results[k]);
            }
            for (int i = 0; i < 2 * steps; i++) {
                int k = i % 2;
                attention.setCascade(k == 0);
                nanos[k][i / 2] = timedStep(attention, w, results[k]);
            }
        }
        double[] reference = w.reference();
        return new String[] {
            row(w, label, dtype, numThreads, nanos[0], ReferenceAttention.relativeL2(results[0], reference)),
            row(w, label + "/plain", dtype, numThreads, nanos[1], ReferenceAttention.relativeL2(results[1], reference))
        };
    }

    /** Steps for --warmup-seconds (C2 must have compiled the Vector API code), then poisons {@code result}. */
    private void warm(JvmDecodeAttention attention, DecodeWorkload w, FloatArray result) {
        long warmupEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
        do {
            attention.decode(w.batch(), 0, w.q(), result);
        } while (System.nanoTime() < warmupEnd);
        result.init(Float.NaN);
    }

    private static long timedStep(JvmDecodeAttention attention, DecodeWorkload w, FloatArray result) {
        long t0 = System.nanoTime();
        attention.decode(w.batch(), 0, w.q(), result);
        return System.nanoTime() - t0;
    }

    private String row(DecodeWorkload w, String label, KvDtype dtype, int numThreads, long[] nanos, double relL2) {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        double gbs = w.minimumBytes() / (double) sorted[0];
        return String.format("jvm,%s,%s,%d,%d,%d,%d,%.4f,%.4f,%.4f,%.2f,%.2e,%s", label, dtype.name().toLowerCase(),
                w.batch().numSeqs(), w.batch().maxContextLen(), numThreads, steps, sorted[0] / 1e6, sorted[steps / 2] / 1e6,
                sorted[steps - 1] / 1e6, gbs, relL2, relL2 <= 1e-3 ? "ok" : "wrong");
    }

    /** GB/s of a vectorised sum over {@code mib} MiB off-heap, chunked over all processors; min and median of 10 passes. */
    private String probe(int mib) {
        VectorSpecies<Float> species = FloatVector.SPECIES_PREFERRED;
        long chunk = 1L << 20;
        long bytes = (long) mib << 20;
        int numThreads = Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors());
        int passes = 10;
        long[] nanos = new long[passes];
        try (Arena arena = Arena.ofShared(); var pool = new java.util.concurrent.ForkJoinPool(numThreads)) {
            MemorySegment data = arena.allocate(bytes, 64);
            pool.submit(() -> IntStream.range(0, (int) (bytes / chunk)).parallel()
                    .forEach(c -> data.asSlice(c * chunk, chunk).fill((byte) (c & 0x3f)))).join();
            double sink = 0;
            for (int p = -2; p < passes; p++) {
                long t0 = System.nanoTime();
                sink += pool.submit(() -> IntStream.range(0, (int) (bytes / chunk)).parallel().mapToDouble(c -> {
                    FloatVector a0 = FloatVector.zero(species);
                    FloatVector a1 = a0;
                    long step = species.vectorByteSize();
                    for (long at = c * chunk, end = at + chunk; at < end; at += 2 * step) {
                        a0 = a0.add(FloatVector.fromMemorySegment(species, data, at, ByteOrder.nativeOrder()));
                        a1 = a1.add(FloatVector.fromMemorySegment(species, data, at + step, ByteOrder.nativeOrder()));
                    }
                    return a0.add(a1).reduceLanes(VectorOperators.ADD);
                }).sum()).join();
                if (p >= 0) {
                    nanos[p] = System.nanoTime() - t0;
                }
            }
            long[] sorted = nanos.clone();
            Arrays.sort(sorted);
            return String.format("jvm-read-probe,%dMiB,fp32,1,%d,%d,%d,%.4f,%.4f,%.4f,%.2f,,%s", mib, mib, numThreads, passes,
                    sorted[0] / 1e6, sorted[passes / 2] / 1e6, sorted[passes - 1] / 1e6, bytes / (double) sorted[0],
                    Double.isNaN(sink) ? "nan" : "ok");
        }
    }
}
