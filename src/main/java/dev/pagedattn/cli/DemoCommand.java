package dev.pagedattn.cli;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.AttentionSinks;
import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PageTable;
import dev.pagedattn.cache.RandomKv;
import dev.pagedattn.quant.KvScales;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** A readable walk through the workflow: cache, page tables, fork and copy-on-write, decode, check. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Walk through the cache and a decode step on a small example, checked against the fp64 reference.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--seed", description = "Random seed (default: from the clock; always printed).")
    Long seed;

    @Mixin
    BackendOptions backendOptions = new BackendOptions();

    @Option(names = "--kv-memory", description = "Size the cache to this many bytes of K and V (such as 64KiB; default: 32 blocks).")
    String kvMemory;

    @Option(names = "--dtype", description = "KV dtype: fp16, bf16 (the JVM backend and TornadoVM's CUDA backend), fp32, fp8 (E4M3), fp8-e5m2 or int8 (8-bit: every backend;"
            + " default: ${DEFAULT-VALUE}).", defaultValue = "fp16")
    String dtype;

    @Option(names = "--kv-scale", description = "Scales of 8-bit K/V: per-tensor or per-head (default: per-tensor).")
    String kvScale;

    private KvCache cache;
    private SplittableRandom random;

    @Override
    public Integer call() throws OutOfBlocksException {
        backendOptions.validate();
        KvDtype kvDtype = KvDtype.parse(dtype);
        KvScales scales = ShapeOptions.syntheticScales(kvDtype, kvScale, 1, 2); // the demo's K/V are uniform in [-1, 1)
        long s = seed != null ? seed : System.nanoTime();
        random = new SplittableRandom(s);
        KvCacheConfig config = KvCacheConfig.of(32, 16, 2, 64, kvDtype);
        if (kvMemory != null) {
            try {
                config = KvCacheConfig.forMemory(ByteSize.parse("--kv-memory", kvMemory), 16, 2, 64, 1, kvDtype);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(e.getMessage().startsWith("--kv-memory") ? e.getMessage()
                        : "--kv-memory=" + kvMemory + ": " + e.getMessage());
            }
        }
        if (config.numBlocks() < 8) {
            throw new IllegalArgumentException("--kv-memory=" + kvMemory + " holds " + config.numBlocks()
                    + " blocks; the demo needs 8 (" + 8 * config.bytesPerToken() * config.blockSize() + " bytes)");
        }
        AttentionSpec spec = AttentionSpec.of(config, 8);
        cache = new KvCache(config, scales);
        RandomKv.shuffleFreeBlocks(cache, s);
        // The backend exists before the first line is printed, so that one it cannot create (no
        // TornadoVM runtime, a query group the tornado backend refuses) fails the demo before it starts.
        try (DecodeAttention attention = Backends.create(backendOptions.backend, cache, spec, backendOptions.device, "auto")) {
            return walkThrough(s, config, spec, attention);
        }
    }

    private int walkThrough(long s, KvCacheConfig config, AttentionSpec spec, DecodeAttention attention) throws OutOfBlocksException {
        System.out.printf("paged-attention demo (seed=%d)%n%n", s);
        System.out.printf("1. A KV cache of %d physical blocks x %d tokens, %d KV heads x %d dims, %s: %d KB per pool.%n"
                        + "   Query heads: %d (GQA, %d per KV head). Free blocks: %d.%n%n",
                config.numBlocks(), config.blockSize(), config.numKvHeads(), config.headDim(), config.dtype(),
                config.layerPoolBytes() / 1024, spec.numQHeads(), spec.groupSize(), cache.numAllocatableBlocks());
        if (cache.scales() != null) {
            System.out.printf("   8-bit K/V: each element a code, read as decode(code) x scale; %s scales k=v=%.3g (absmax 1 / %s).%n%n",
                    cache.scales().mode().name().toLowerCase().replace('_', '-'), cache.scales().k(0, 0), cache.scales().format().maxFinite());
        }

        int a = prompt(40);
        int b = prompt(17);
        int c = prompt(5);
        System.out.println("2. Three prompts loaded (random K/V), each through its own page table:");
        show("seq " + a, a);
        show("seq " + b, b);
        show("seq " + c, c);

        int f = cache.fork(a);
        System.out.printf("%n3. fork(seq %d) -> seq %d shares all %d blocks (reference count 2 each):%n", a, f, cache.pageTable(f).numBlocks());
        show("seq " + f, f);
        int lastShared = cache.pageTable(a).block(2);
        appendRandom(f, 1);
        System.out.printf("   Appending one token to seq %d copies its shared, half-full last block first (copy-on-write):%n", f);
        show("seq " + a, a);
        show("seq " + f, f);
        System.out.printf("   physical block %d now has reference count %d; seq %d never sees seq %d's new token.%n%n",
                lastShared, cache.pool().refCount(lastShared), a, f);

        int[] seqs = {a, b, c, f};
        DecodeBatch batch = cache.batch(seqs);
        FloatArray q = new FloatArray((int) spec.queryElements(seqs.length));
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        long nanos = Long.MAX_VALUE;
        for (int i = 0; i < 200; i++) { // the first runs warm up the JIT; report the fastest
            out.init(Float.NaN);
            long t0 = System.nanoTime();
            attention.decode(batch, 0, q, out);
            nanos = Math.min(nanos, System.nanoTime() - t0);
        }
        double[] ref = ReferenceAttention.decode(cache, spec, 0, seqs, q);
        double rel = ReferenceAttention.relativeL2(out, ref);
        double abs = ReferenceAttention.maxAbsError(out, ref);
        boolean ok = rel <= 1e-4;
        System.out.printf("4. Decode attention, one query token per sequence, lengths %s, %s backend:%n",
                java.util.Arrays.toString(batch.contextLens()), backendOptions.backend);
        System.out.printf("   block tables [%d][%d] (-1 = padding): %s%n", batch.numSeqs(), batch.maxBlocksPerSeq(),
                java.util.Arrays.toString(batch.blockTables()));
        System.out.printf("   time %.3f ms (fastest of 200 runs, wall clock); vs fp64 reference: relative L2 error %.2e, max abs error %.2e -> %s%n",
                nanos / 1e6, rel, abs, ok ? "PASS" : "FAIL");
        // a sliding-window layer (Mistral, Gemma, gpt-oss) decodes the same batch through a view of it
        int window = 8;
        DecodeBatch windowed = batch.window(window);   // a view: the same tables, no copy
        out.init(Float.NaN);
        attention.decode(windowed, 0, q, out);
        double windowRel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, seqs, q, window, n -> { }));
        boolean windowOk = windowRel <= 1e-4;
        ok &= windowOk;
        System.out.printf("   The same step through a sliding window of %d tokens (batch.window(%d)): each sequence sees its last %d"
                + " positions (seq %d: %d..%d); vs fp64 over those: relative L2 error %.2e -> %s%n", window, window, window,
                seqs[0], windowed.firstVisible(0), windowed.contextLen(0) - 1, windowRel, windowOk ? "PASS" : "FAIL");
        // query-aware sparsity (Quest): the step attends only chosen blocks of each sequence, here its first and its newest
        int bs = config.blockSize();
        int[][] chosen = new int[seqs.length][];
        for (int i = 0; i < seqs.length; i++) {
            int newest = (batch.contextLen(i) - 1) / bs;
            chosen[i] = newest == 0 ? new int[] {0} : new int[] {0, newest};
        }
        DecodeBatch sparse = batch.selectBlocks(chosen); // tables of the chosen blocks only, on any backend
        out.init(Float.NaN);
        attention.decode(sparse, 0, q, out);
        double sparseRel = ReferenceAttention.relativeL2(out, ReferenceAttention.decodeSelected(cache, spec, 0, seqs, q, chosen));
        boolean sparseOk = sparseRel <= 1e-4;
        ok &= sparseOk;
        System.out.printf("   The same step over selected blocks only (batch.selectBlocks, Quest's page selection): each sequence"
                + " attends its first and newest blocks (seq %d: blocks %s, %d of its %d tokens); vs fp64 over those: relative L2"
                + " error %.2e -> %s%n", seqs[0], java.util.Arrays.toString(chosen[0]), sparse.contextLen(0), batch.contextLen(0),
                sparseRel, sparseOk ? "PASS" : "FAIL");
        // gpt-oss's attention sinks: one learned logit per query head joins the head's softmax without a value
        float[] headSinks = new float[spec.numQHeads()];  // [numQHeads] of the one layer
        for (int h = 0; h < headSinks.length; h++) {
            headSinks[h] = (float) (random.nextDouble() * 3);
        }
        AttentionSpec withSinks = spec.withSinks(AttentionSinks.of(new float[][] {headSinks}));
        double sinkRel = stepWith(withSinks, cache, batch, seqs, q, out);
        double moved = ReferenceAttention.relativeL2(out, ref);
        boolean sinkOk = sinkRel <= 1e-4;
        ok &= sinkOk;
        System.out.printf("   The same step with attention sinks (spec.withSinks, gpt-oss): a logit per query head (head 0: %.2f) joins"
                + " its softmax without a value, moving the output by %.0f%%; vs fp64 with them: relative L2 error %.2e -> %s%n",
                headSinks[0], 100 * moved, sinkRel, sinkOk ? "PASS" : "FAIL");
        // Gemma 2's logit soft-capping: every score s becomes cap * tanh(s / cap) (Gemma 2: 50, for scores far larger
        // than these random ones, which a cap of 0.5 bends as much)
        float softCap = 0.5f;
        AttentionSpec capped = spec.withSoftCap(softCap);
        double capRel = stepWith(capped, cache, batch, seqs, q, out);
        double capMoved = ReferenceAttention.relativeL2(out, ref);
        boolean capOk = capRel <= 1e-4;
        ok &= capOk;
        System.out.printf("   The same step with logit soft-capping at %.1f (spec.withSoftCap, Gemma 2): every score s becomes"
                + " %.1f tanh(s / %.1f), moving the output by %.1f%%; vs fp64 with it: relative L2 error %.2e -> %s%n",
                softCap, softCap, softCap, 100 * capMoved, capRel, capOk ? "PASS" : "FAIL");
        // ALiBi (BLOOM, MPT): query head h adds slope_h * (key - query) to each score, no position embedding needed
        AttentionSpec alibi = spec.withAlibi(AlibiSlopes.standard(spec.numQHeads()));
        double alibiRel = stepWith(alibi, cache, batch, seqs, q, out);
        double alibiMoved = ReferenceAttention.relativeL2(out, ref);
        boolean alibiOk = alibiRel <= 1e-4;
        ok &= alibiOk;
        System.out.printf("   The same step with ALiBi (spec.withAlibi, BLOOM, MPT): query head h adds slope_h x (key - query) to"
                + " each score (the paper's slopes: head 0 %s, head %d %s), moving the output by %.0f%%; vs fp64 with it:"
                + " relative L2 error %.2e -> %s%n", alibi.alibi().slope(0), spec.numQHeads() - 1,
                alibi.alibi().slope(spec.numQHeads() - 1), 100 * alibiMoved, alibiRel, alibiOk ? "PASS" : "FAIL");
        ok &= RotaryDemo.run(config, cache.scales(), spec, backendOptions.backend, backendOptions.device, random);
        System.out.println();

        cache.free(a);
        System.out.printf("5. free(seq %d): its unshared blocks return to the pool. Free blocks: %d of %d.%n",
                a, cache.numAllocatableBlocks(), config.numBlocks());
        ok &= releaseOutsideWindow(new int[] {b, c, f}, window, spec, attention, q);
        ok &= swapOutAndIn(f, window, spec, attention, q);
        ok &= exportAndImport(b, window, spec, attention, q);
        // TornadoVM's bf16 kernels are the CUDA backend's stream bodies (head dims 64-256, no latent caches): the hybrid
        // cache's head dim 16 and the latent cache run on the JVM backend then, said so in a line
        boolean bf16Gpu = config.dtype() == KvDtype.BF16 && !backendOptions.backend.equals("jvm");
        String smallShapes = bf16Gpu ? "jvm" : backendOptions.backend;
        if (bf16Gpu) {
            System.out.println("   (bf16 on the tornado backend: the next demo's head dim 16 and section 7's latent cache run on the JVM"
                    + " backend; TornadoVM reads bf16 at head dims 64-256 only.)");
        }
        ok &= HybridDemo.run(smallShapes, backendOptions.device, random, config.dtype());
        System.out.println();
        ok &= PrefixPrefillDemo.run(backendOptions.backend, backendOptions.device, random, 6, config.dtype());
        System.out.println();
        ok &= LatentDemo.run(7, random, config.dtype(), smallShapes, backendOptions.device);
        return ok ? 0 : Main.EXIT_CHECK_FAILED;
    }

    /**
     * A model whose every layer attends through a window (Mistral 7B v0.1) gives back the blocks before each window
     * ({@code KvCache.releaseOutsideWindow}) and decodes through the window over what the sequences keep; the step's
     * queries are {@code q}'s rows 1.. (the demo's batch without its first, freed, sequence). Whether it passed.
     */
    private boolean releaseOutsideWindow(int[] seqs, int window, AttentionSpec spec, DecodeAttention attention, FloatArray q) {
        int released = 0;
        for (int seq : seqs) {
            released += cache.releaseOutsideWindow(seq, window);
        }
        DecodeBatch batch = cache.batch(seqs).window(window);   // a batch taken before the release is refused
        int row = (int) spec.queryElements(1);
        FloatArray rows = new FloatArray(seqs.length * row);
        for (int i = 0; i < rows.getSize(); i++) {
            rows.set(i, q.get(row + i));
        }
        FloatArray out = poisoned(rows.getSize());
        attention.decode(batch, 0, rows, out);
        double rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, seqs, rows, window, n -> { }));
        boolean ok = rel <= 1e-4;
        int last = seqs[seqs.length - 1];
        System.out.printf("   releaseOutsideWindow(seq, %d) on seqs %s, as a model whose every layer sees a window of %d does"
                        + " (Mistral 7B v0.1): %d blocks wholly before their windows go back to the pool (seq %d keeps positions"
                        + " %d..%d of its %d). Free blocks: %d of %d. The windowed step over what they keep: relative L2 error"
                        + " %.2e -> %s%n", window, java.util.Arrays.toString(seqs), window, released, last,
                cache.firstHeldPosition(last), cache.length(last) - 1, cache.length(last), cache.numAllocatableBlocks(),
                cache.config().numBlocks(), rel, ok ? "PASS" : "FAIL");
        return ok;
    }

    /**
     * Swaps {@code seq} (released before a window of {@code window}) to host memory and back, and checks that the windowed
     * step over the sequence that comes back gives the bits it gave before (queries: {@code q}'s first row). Whether it did.
     */
    private boolean swapOutAndIn(int seq, int window, AttentionSpec spec, DecodeAttention attention, FloatArray q)
            throws OutOfBlocksException {
        FloatArray row = firstRow(spec, q);
        FloatArray before = poisoned(row.getSize());
        FloatArray after = poisoned(row.getSize());
        attention.decode(cache.batch(seq).window(window), 0, row, before);
        int held = cache.pageTable(seq).numBlocks() - cache.pageTable(seq).numReleased();
        dev.pagedattn.cache.SwappedSequence swapped = cache.swapOut(seq);
        int free = cache.numAllocatableBlocks();
        int back = cache.swapIn(swapped);
        long bytes = swapped.bytes();
        swapped.close();                                    // its host memory, now rather than when collected
        attention.decode(cache.batch(back).window(window), 0, row, after);
        boolean ok = PrefixCommand.sameBits(before, after);
        System.out.printf("   swapOut(seq %d): the K/V of the %d block%s it holds (%d bytes, every layer) go to host memory, the"
                        + " block%s back to the pool (free blocks: %d); swapIn: seq %d, with its length, released run and K/V in"
                        + " blocks of its own. The windowed step over it gives the same bits as before -> %s%n", seq, held,
                held == 1 ? "" : "s", bytes, held == 1 ? "" : "s", free, back, ok ? "PASS" : "FAIL");
        return ok;
    }

    /**
     * Writes {@code seq} as a record ({@code KvCache.export}), reads it into a new cache of the same shape (a decode
     * instance after a prefill instance; {@code importSequence}) and checks that a backend of the same kind there gives the
     * windowed step's bits of this cache (queries: {@code q}'s first row). Whether it did.
     */
    private boolean exportAndImport(int seq, int window, AttentionSpec spec, DecodeAttention attention, FloatArray q)
            throws OutOfBlocksException {
        FloatArray row = firstRow(spec, q);
        FloatArray here = poisoned(row.getSize());
        FloatArray there = poisoned(row.getSize());
        attention.decode(cache.batch(seq).window(window), 0, row, here);
        java.io.ByteArrayOutputStream record = new java.io.ByteArrayOutputStream();
        KvCache other = new KvCache(cache.config(), cache.scales());
        long bytes;
        int imported;
        try {
            bytes = cache.export(seq, record);
            imported = other.importSequence(new java.io.ByteArrayInputStream(record.toByteArray()));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("byte arrays do not fail", e);
        }
        try (DecodeAttention decoder = Backends.create(backendOptions.backend, other, spec, backendOptions.device, "auto")) {
            decoder.decode(other.batch(imported).window(window), 0, row, there);
        }
        boolean ok = PrefixCommand.sameBits(here, there);
        System.out.printf("   export(seq %d): %d bytes (its shape, length, released run and K/V); importSequence into a new cache"
                        + " of the same shape, as a decode instance after a prefill instance: seq %d there, holding %d blocks."
                        + " The windowed step there gives this cache's bits -> %s%n", seq, bytes, imported,
                other.pageTable(imported).numBlocks() - other.pageTable(imported).numReleased(), ok ? "PASS" : "FAIL");
        return ok;
    }

    /** The first sequence's query row of {@code q}. */
    private static FloatArray firstRow(AttentionSpec spec, FloatArray q) {
        FloatArray row = new FloatArray((int) spec.queryElements(1));
        for (int i = 0; i < row.getSize(); i++) {
            row.set(i, q.get(i));
        }
        return row;
    }

    /** {@code n} floats of NaN: an output a step must overwrite. */
    static FloatArray poisoned(int n) {
        FloatArray out = new FloatArray(n);
        out.init(Float.NaN);
        return out;
    }

    private int prompt(int tokens) throws OutOfBlocksException {
        int seq = cache.createSequence();
        appendRandom(seq, tokens);
        return seq;
    }

    private void appendRandom(int seq, int tokens) throws OutOfBlocksException {
        float[] k = new float[tokens * cache.config().tokenWidth()];
        float[] v = new float[k.length];
        for (int i = 0; i < k.length; i++) {
            k[i] = (float) (random.nextDouble() * 2 - 1);
            v[i] = (float) (random.nextDouble() * 2 - 1);
        }
        cache.appendTokens(seq, k, v);
    }

    private void show(String name, int seq) {
        PageTable t = cache.pageTable(seq);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < t.numBlocks(); i++) {
            if (i > 0) {
                sb.append(", ");
            }
            sb.append("logical ").append(i).append(" -> physical ").append(t.block(i));
        }
        int bs = cache.config().blockSize();
        int last = t.numTokens() - (t.numBlocks() - 1) * bs;
        System.out.printf("   %-7s %3d tokens: %s (last block %d/%d full)%n", name, t.numTokens(), sb, last, bs);
    }

    /**
     * One step of {@code batch} (layer 0) by a backend of {@code spec} (the demo's spec with sinks or a cap), its output
     * left in {@code out}; returns its relative L2 error against the fp64 reference of that spec.
     */
    private double stepWith(AttentionSpec spec, KvCache cache, DecodeBatch batch, int[] seqs, FloatArray q, FloatArray out) {
        try (DecodeAttention attention = Backends.create(backendOptions.backend, cache, spec, backendOptions.device, "auto")) {
            out.init(Float.NaN);
            attention.decode(batch, 0, q, out);
        }
        return ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, seqs, q));
    }
}
