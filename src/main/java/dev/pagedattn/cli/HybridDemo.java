package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.HybridAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PageTable;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The demo's line on models that mix windowed and full layers: gpt-oss's pattern on four layers (the even ones through a
 * window) in a {@link HybridKvCache}, two sequences grown token by token while the windowed group releases, then one
 * step of every layer through {@link HybridAttention} against the fp64 reference.
 */
final class HybridDemo {
    private static final int WINDOW = 8;
    private static final int TOKENS = 60;

    private HybridDemo() {
    }

    /** Prints the lines ({@code dtype}: the demo's K/V); whether every layer matched its reference. */
    static boolean run(String backend, String device, SplittableRandom random, KvDtype dtype) throws OutOfBlocksException {
        int f = DecodeBatch.NO_WINDOW;
        int[] windows = {WINDOW, f, WINDOW, f};
        int bs = 4;
        HybridKvCache cache = HybridKvCache.of(windows, new int[] {8, 32}, bs, 2, 16, dtype);
        HybridKvCache shared = HybridKvCache.sharedPool(windows, 40, bs, 2, 16, dtype); // the same 40 blocks, one pool
        int[] seqs = {cache.createSequence(), cache.createSequence()};
        int[] sharedSeqs = {shared.createSequence(), shared.createSequence()};
        int width = cache.group(0).config().tokenWidth();
        for (int t = 0; t < TOKENS; t++) {
            for (int i = 0; i < seqs.length; i++) {
                int pos = cache.append(seqs[i], 1);   // the windowed group first gives back what the window left behind
                shared.append(sharedSeqs[i], 1);
                for (int layer = 0; layer < windows.length; layer++) {
                    float[] k = HybridCheck.uniform(random, width);
                    float[] v = HybridCheck.uniform(random, width);
                    cache.write(seqs[i], layer, pos, k, v);
                    shared.write(sharedSeqs[i], layer, pos, k, v);
                }
            }
        }
        AttentionSpec spec = AttentionSpec.of(cache.group(0).config(), 8);
        HybridBatch batch = cache.batch(seqs);
        int rows = (int) spec.queryElements(seqs.length);
        double worst = 0;
        boolean sameOnOnePool = true;
        HybridBatch sharedBatch = shared.batch(sharedSeqs);
        try (HybridAttention attention = HybridAttention.create(backend, cache, spec, device, "auto");
             HybridAttention onShared = HybridAttention.create("jvm", shared, spec, null, "auto")) {
            for (int layer = 0; layer < windows.length; layer++) {
                FloatArray q = FloatArray.fromArray(HybridCheck.uniform(random, rows));
                FloatArray out = new FloatArray(rows);
                out.init(Float.NaN);
                attention.decode(batch, layer, q, out);
                FloatArray outShared = new FloatArray(rows);
                outShared.init(Float.NaN);
                onShared.decode(sharedBatch, layer, q, outShared);
                sameOnOnePool &= !backend.equals("jvm") || PrefixCommand.sameBits(out, outShared);
                double sharedRel = ReferenceAttention.relativeL2(outShared, ReferenceAttention.decode(shared.group(shared.groupOf(layer)),
                        spec, shared.localLayer(layer), sharedSeqs, q, shared.layerWindow(layer), n -> { }));
                sameOnOnePool &= sharedRel <= 1e-4;
                int g = cache.groupOf(layer);
                double[] ref = ReferenceAttention.decode(cache.group(g), spec, cache.localLayer(layer), seqs, q,
                        cache.layerWindow(layer), n -> { });
                double rel = ReferenceAttention.relativeL2(out, ref);
                worst = Double.isNaN(rel) ? Double.NaN : Math.max(worst, rel);
            }
        }
        boolean ok = worst <= 1e-4 && sameOnOnePool; // NaN fails
        PageTable windowed = cache.group(0).pageTable(seqs[0]);
        System.out.printf("   A model that mixes windowed and full layers (gpt-oss: every other layer through a window) keeps them"
                        + " in a HybridKvCache, a pool and page tables per window: layers 0 and 2 (window %d) and 1 and 3 (full)."
                        + " After %d tokens each of %d sequences holds %d blocks of the windowed layers (the rest went back as it"
                        + " grew) and %d of the full ones: %d bytes of K/V in use where a KvCache, whose blocks hold every"
                        + " layer, would hold %d. Each layer's step through HybridAttention: worst relative L2 error %.2e; the"
                        + " same model on one pool of the same 40 blocks for both groups (HybridKvCache.sharedPool, vLLM's hybrid"
                        + " manager; JVM backend), %d of them in use: %s -> %s%n",
                WINDOW, TOKENS, seqs.length, windowed.numBlocks() - windowed.numReleased(),
                cache.group(1).pageTable(seqs[0]).numBlocks(), cache.usedBytes(), plainBytes(cache, seqs.length), worst,
                shared.numUsedBlocks(), backend.equals("jvm") ? (sameOnOnePool ? "the same bits" : "DIFFERENT bits")
                        : (sameOnOnePool ? "close to fp64" : "FAR from fp64"), ok ? "PASS" : "FAIL");
        return ok;
    }

    /** Bytes a plain KvCache of the same layers holds for {@code numSeqs} sequences of {@link #TOKENS} tokens. */
    private static long plainBytes(HybridKvCache cache, int numSeqs) {
        var c = cache.group(0).config();
        long perLayerBlock = c.totalBytes() / c.numBlocks() / c.numLayers();
        return (long) numSeqs * c.blocksFor(TOKENS) * cache.numLayers() * perLayerBlock;
    }
}
