package dev.pagedattn.cli;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.HybridAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.ReferencePrefill;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * {@code check --window W --full-every N --release}: a model that mixes sliding-window and full layers on a
 * {@link HybridKvCache}. Each sequence's last token (with {@code --query-len}: its last chunk) is appended after the rest
 * of its context, so the windowed layers' group releases what that token's (chunk's first query's) window no longer
 * sees, as an engine's appends do; another sequence then refills the freed blocks with NaN K/V (8-bit: the format's
 * largest value). Every layer is decoded (or prefilled) through {@link HybridAttention} and checked against the fp64
 * reference read from its group; with {@code --steps}, every later step appends one token per sequence first.
 */
final class HybridCheck {
    private HybridCheck() {
    }

    static int run(ShapeOptions shape, int window, int fullEvery, String queryLen, boolean sharedPool, String backend, String device,
                   String variant, String kernel, String vSums, int steps, double tolerance, Extras extras) {
        int layers = shape.layers;
        int[] windows = new int[layers];
        for (int l = 0; l < layers; l++) {
            windows[l] = l % fullEvery == fullEvery - 1 ? DecodeBatch.NO_WINDOW : window;
        }
        int[] lengths = shape.lengths();
        int[] qLens = queryLen == null ? null : PrefillCheck.queryLens(queryLen, lengths, shape.seed());
        int bs = shape.blockSize;
        int numSeqs = lengths.length;
        long all = 0;
        for (int len : lengths) {
            all += (len + steps + bs - 1) / bs;
        }
        // each group could hold every token (the windowed one before its release), the full one the NaN sequence's too
        int windowedBlocks = Math.toIntExact(all);
        int fullBlocks = Math.toIntExact(all + windowedBlocks);
        int[] gw = HybridKvCache.groupWindows(windows);
        int[] groupBlocks = new int[gw.length];
        for (int g = 0; g < gw.length; g++) {
            groupBlocks[g] = gw[g] == DecodeBatch.NO_WINDOW ? fullBlocks : windowedBlocks;
        }
        HybridKvCache cache = sharedPool ? shared(windows, windowedBlocks, fullBlocks, shape)
                : HybridKvCache.of(windows, groupBlocks, bs, shape.kvHeads, shape.headDim, shape.kvDtype(), shape.kvScales());
        AttentionSpec spec = AttentionSpec.of(cache.group(0).config(), shape.qHeads);
        spec = extras.sinks() ? spec.withSinks(DecodeWorkload.randomSinks(layers, shape.qHeads, 1, shape.seed())) : spec;
        spec = extras.softCap() > 0 ? spec.withSoftCap(extras.softCap()) : spec;
        spec = extras.alibi() ? spec.withAlibi(AlibiSlopes.standard(shape.qHeads)) : spec;
        SplittableRandom random = new SplittableRandom(shape.seed());
        int[] seqs = new int[numSeqs];
        for (int i = 0; i < numSeqs; i++) {
            seqs[i] = cache.createSequence();
            int last = qLens == null ? 1 : qLens[i];
            appendRandom(cache, seqs[i], lengths[i] - last, random);
            appendRandom(cache, seqs[i], last, random); // the windowed group releases what these tokens' windows miss
        }
        long[] held = heldBlocks(cache, seqs);
        poisonFreeBlocks(cache, numSeqs * (steps - 1));
        System.out.println("check " + shape.describe(lengths) + " hybrid: " + describe(cache) + extras.describe() + " backend="
                + backend + " (times: one call each; on tornado a layer's first call builds its plan)");
        System.out.println(heldLine(cache, held, lengths));
        int status = 0;
        try (HybridAttention attention = HybridAttention.create(backend, cache, spec, device, variant, kernel, vSums)) {
            if (qLens != null) {
                status = prefillEveryLayer(cache, spec, attention, seqs, qLens, random, tolerance);
            } else {
                status = decodeEveryLayer(cache, spec, attention, seqs, random, tolerance, "step 1:");
            }
            for (int step = 2; step <= steps; step++) {
                for (int seq : seqs) {
                    appendRandom(cache, seq, 1, random);
                }
                status = Math.max(status, decodeEveryLayer(cache, spec, attention, seqs, random, tolerance,
                        "step " + step + " (every sequence one token longer):"));
            }
        }
        return status;
    }

    /** One pool for every group, as many blocks as the split groups would have together. */
    private static HybridKvCache shared(int[] windows, int windowedBlocks, int fullBlocks, ShapeOptions shape) {
        int per = HybridKvCache.defaultLayersPerGroup(windows);
        long blocks = 0;
        for (int w : HybridKvCache.groupWindows(windows)) {
            long layers = Arrays.stream(windows).filter(x -> x == w).count();
            blocks += (layers + per - 1) / per * (long) (w == DecodeBatch.NO_WINDOW ? fullBlocks : windowedBlocks);
        }
        return HybridKvCache.sharedPool(windows, Math.toIntExact(blocks), per, shape.blockSize, shape.kvHeads, shape.headDim,
                shape.kvDtype(), shape.kvScales());
    }

    private static int decodeEveryLayer(HybridKvCache cache, AttentionSpec spec, HybridAttention attention, int[] seqs,
                                        SplittableRandom random, double tolerance, String title) {
        System.out.println(title);
        HybridBatch batch = cache.batch(seqs);
        return everyLayer(cache, "decode", (int) spec.queryElements(seqs.length), random, tolerance, (layer, q, out) -> {
            attention.decode(batch, layer, q, out);
            return attention.lastDeviceNanos();
        }, (layer, q) -> {
            int g = cache.groupOf(layer);
            return ReferenceAttention.decode(cache.group(g), spec.forLayers(cache.layers(g)), cache.localLayer(layer), seqs, q,
                    cache.layerWindow(layer), n -> { });
        });
    }

    private static int prefillEveryLayer(HybridKvCache cache, AttentionSpec spec, HybridAttention attention, int[] seqs,
                                         int[] qLens, SplittableRandom random, double tolerance) {
        System.out.println("prefill of each sequence's last " + describeLens(qLens) + " tokens:");
        HybridBatch kv = cache.batch(seqs);
        int rows = (int) spec.queryElements(Arrays.stream(qLens).sum());
        return everyLayer(cache, "prefill", rows, random, tolerance, (layer, q, out) -> {
            attention.prefill(kv, qLens, layer, q, out);
            return attention.lastPrefillDeviceNanos();
        }, (layer, q) -> {
            int g = cache.groupOf(layer);
            PrefillBatch batch = PrefillBatch.of(kv.group(g).window(DecodeBatch.NO_WINDOW), qLens, cache.window(g));
            return ReferencePrefill.prefill(cache.group(g), spec.forLayers(cache.layers(g)), cache.localLayer(layer), seqs, batch, q);
        });
    }

    /** One call of a layer into {@code out}; the device's nanoseconds, or -1 without a device clock. */
    private interface LayerCall {
        long run(int layer, FloatArray q, FloatArray out);
    }

    /** The fp64 reference of a layer's call for queries {@code q}. */
    private interface LayerReference {
        double[] of(int layer, FloatArray q);
    }

    /** Every layer once, with fresh queries and a poisoned output, each reported against its reference; the worst status. */
    private static int everyLayer(HybridKvCache cache, String what, int rows, SplittableRandom random, double tolerance,
                                  LayerCall call, LayerReference reference) {
        int status = 0;
        for (int layer = 0; layer < cache.numLayers(); layer++) {
            FloatArray q = FloatArray.fromArray(uniform(random, rows));
            FloatArray out = new FloatArray(rows);
            out.init(Float.NaN);
            long t0 = System.nanoTime();
            long device = call.run(layer, q, out);
            long nanos = device > 0 ? device : System.nanoTime() - t0;
            double rel = ReferenceAttention.relativeL2(out, reference.of(layer, q));
            status = Math.max(status, report(cache, layer, what, nanos, rel, tolerance));
        }
        return status;
    }

    private static int report(HybridKvCache cache, int layer, String what, long nanos, double rel, double tolerance) {
        boolean ok = rel <= tolerance; // NaN fails
        int w = cache.layerWindow(layer);
        System.out.printf("layer %d (%s, group %d) %s: time %.3f ms, error vs fp64 reference: relative L2=%.3e"
                        + " tolerance=%.1e -> %s%n", layer,
                AttentionWindow.describe(w), cache.groupOf(layer), what, nanos / 1e6, rel, tolerance,
                ok ? "PASS" : "FAIL");
        return ok ? 0 : Main.EXIT_CHECK_FAILED;
    }

    /** Appends {@code n} random tokens to {@code seq}, K/V in every layer. */
    private static void appendRandom(HybridKvCache cache, int seq, int n, SplittableRandom random) {
        if (n == 0) {
            return;
        }
        int width = cache.group(0).config().tokenWidth();
        try {
            int first = cache.append(seq, n);
            int chunk = Math.min(n, 4096);
            for (int from = 0; from < n; from += chunk) {
                int count = Math.min(chunk, n - from);
                for (int layer = 0; layer < cache.numLayers(); layer++) {
                    cache.writeTokens(seq, layer, first + from, count, uniform(random, count * width), uniform(random, count * width));
                }
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError("the check's hybrid cache was sized for every token", e);
        }
    }

    /**
     * A new sequence takes every block the windowed groups can hand out but {@code spareBlocks} each (the blocks they
     * released) and fills them with NaN K/V in every layer (8-bit pools: the format's largest value).
     */
    private static void poisonFreeBlocks(HybridKvCache cache, int spareBlocks) {
        int tokens = Integer.MAX_VALUE;
        int windowed = 0;
        for (int g = 0; g < cache.numGroups(); g++) {
            if (cache.window(g) != DecodeBatch.NO_WINDOW) {
                windowed++;
                tokens = Math.min(tokens, Math.max(0, cache.group(g).numAllocatableBlocks() - spareBlocks) * cache.group(g).config().blockSize());
            }
        }
        if (cache.sharesPool() && windowed > 0) { // one pool: the junk sequence takes a block in every group per blockSize tokens
            int free = cache.group(0).numAllocatableBlocks() - spareBlocks * windowed;
            tokens = Math.max(0, free / cache.numGroups()) * cache.group(0).config().blockSize();
        }
        if (tokens == Integer.MAX_VALUE || tokens == 0) {
            return;
        }
        int junk = cache.createSequence();
        KvCacheConfig c = cache.group(0).config(); // every group's K/V shape is the same
        try {
            cache.append(junk, tokens);
            DecodeWorkload.writePoison(tokens, c.tokenWidth(), cache.numLayers(), c.dtype(),
                    (layer, from, n, k, v) -> cache.writeTokens(junk, layer, from, n, k, v));
        } catch (OutOfBlocksException e) {
            throw new AssertionError("the allocatable blocks ran out", e);
        }
    }

    /** Blocks the sequences hold in each group. */
    private static long[] heldBlocks(HybridKvCache cache, int[] seqs) {
        long[] held = new long[cache.numGroups()];
        for (int g = 0; g < held.length; g++) {
            for (int seq : seqs) {
                dev.pagedattn.cache.PageTable t = cache.group(g).pageTable(seq);
                held[g] += t.numBlocks() - t.numReleased();
            }
        }
        return held;
    }

    private static String heldLine(HybridKvCache cache, long[] held, int[] lengths) {
        long bytes = 0;
        long plain = 0;
        int bs = cache.group(0).config().blockSize();
        long layerBlockBytes = cache.group(0).config().totalBytes() / cache.group(0).config().numBlocks()
                / cache.group(0).config().numLayers();
        StringBuilder groups = new StringBuilder();
        for (int g = 0; g < held.length; g++) {
            bytes += held[g] * cache.blockBytes(g);
            groups.append(g == 0 ? "" : g == held.length - 1 ? " and " : ", ").append(held[g]).append(" blocks in group ").append(g);
        }
        for (int len : lengths) {
            plain += (long) ((len + bs - 1) / bs) * cache.numLayers() * layerBlockBytes;
        }
        return String.format("the %d sequences hold %s after the windowed group's release: %.1f MB of K/V, where one"
                + " KvCache block of every layer per %d tokens would hold %.1f MB (%.2fx); another sequence refilled the freed"
                + " blocks with NaN", lengths.length, groups, bytes / 1e6, bs, plain / 1e6, plain / (double) bytes);
    }

    private static String describe(HybridKvCache cache) {
        String pools = cache.sharesPool() ? "one pool of " + cache.group(0).config().numBlocks() + " blocks for " : "a pool each for ";
        return pools + java.util.stream.IntStream.range(0, cache.numGroups())
                .mapToObj(g -> "group " + g + " " + AttentionWindow.describe(cache.window(g))
                        + " (layers " + Arrays.stream(cache.layers(g)).mapToObj(Integer::toString).collect(Collectors.joining(","))
                        + ")")
                .collect(Collectors.joining(", "));
    }

    private static String describeLens(int[] qLens) {
        int min = Arrays.stream(qLens).min().orElse(0);
        int max = Arrays.stream(qLens).max().orElse(0);
        return min == max ? Integer.toString(min) : min + ".." + max;
    }

    /** {@code n} values uniform in [-1, 1). */
    static float[] uniform(SplittableRandom random, int n) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return out;
    }
}
