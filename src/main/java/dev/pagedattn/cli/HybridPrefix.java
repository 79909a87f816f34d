package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.HybridAttention;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PageTable;
import dev.pagedattn.cache.PrefixCache;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * {@code prefix --window W --full-every N}: the prefix-caching walk-through on a {@link HybridKvCache} of N layers, the
 * first N - 1 through a window of W (or, with {@code --chunk C}, chunks of C: Llama 4, N = 4) and the last full (gpt-oss:
 * N = 2; Gemma 3: 6). Each request is admitted (every group
 * shares what it can serve; the windowed group starts at its window), written and committed, then generates a few tokens
 * (the windowed group releases); the blocks each group holds are printed next to a cache without prefix caching, and the
 * attention of every layer is compared bit for bit with a hybrid cache written from scratch.
 */
final class HybridPrefix {
    private static final int GENERATED = 4;

    private HybridPrefix() {
    }

    static int run(int requests, int systemTokens, int suffixTokens, int blockSize, int window, int fullEvery, boolean sharedPool,
                   long seed, SplittableRandom random) throws OutOfBlocksException {
        int[] windows = new int[fullEvery];
        java.util.Arrays.fill(windows, window);
        windows[fullEvery - 1] = DecodeBatch.NO_WINDOW;
        int promptLen = systemTokens + suffixTokens;
        int perRequest = (promptLen + GENERATED + blockSize - 1) / blockSize;
        HybridKvCache cache = sharedPool // groups of one layer: fullEvery - 1 windowed ones and the full one, on one pool
                ? HybridKvCache.sharedPool(windows, fullEvery * (perRequest * requests + 1), blockSize, 8, 128, KvDtype.FP16)
                : HybridKvCache.of(windows, new int[] {perRequest * requests + 1, perRequest * requests + 1}, blockSize, 8, 128,
                        KvDtype.FP16);
        cache.enablePrefixCaching();
        int full = cache.numGroups() - 1; // the windowed groups come first; each holds what group 0 holds
        System.out.printf("prefix caching on a hybrid cache (seed=%d): %d requests = %d shared system-prompt tokens + %d own"
                        + " tokens, then %d generated; block size %d; %d layers: %s through %s, layer %d full; 8 KV"
                        + " heads x 128 dims fp16%n", seed, requests, systemTokens, suffixTokens, GENERATED, blockSize, fullEvery,
                fullEvery == 2 ? "layer 0" : "layers 0.." + (fullEvery - 2),
                AttentionWindow.isChunked(window) ? AttentionWindow.describe(window) : "a window of " + window, fullEvery - 1);
        int[] system = PrefixCommand.randomTokens(random, systemTokens);
        int[] seqs = new int[requests];
        int[][] tokens = new int[requests][];
        for (int r = 0; r < requests; r++) {
            int[] prompt = new int[promptLen];
            System.arraycopy(system, 0, prompt, 0, systemTokens);
            System.arraycopy(PrefixCommand.randomTokens(random, suffixTokens), 0, prompt, systemTokens, suffixTokens);
            PrefixCache.Admission a = cache.admit(prompt, null);
            SyntheticKv.write(cache, a.seq(), prompt, a.numCachedTokens());
            cache.commit(a.seq());
            int held = cache.group(0).firstHeldPosition(a.seq());
            int[] generated = PrefixCommand.randomTokens(random, GENERATED);
            int[] all = java.util.Arrays.copyOf(prompt, promptLen + GENERATED);
            for (int t = 0; t < GENERATED; t++) { // one token per step: the windowed group releases before each append
                cache.append(a.seq(), new int[] {generated[t]});
                all[promptLen + t] = generated[t];
                SyntheticKv.write(cache, a.seq(), java.util.Arrays.copyOf(all, promptLen + t + 1), promptLen + t);
            }
            seqs[r] = a.seq();
            tokens[r] = all;
            System.out.printf("  request %d: %d of %d prompt tokens already cached (the windowed layers reuse them from position"
                            + " %d on); after %d generated tokens it holds %d blocks of the windowed layers and %d of the full%n",
                    r, a.numCachedTokens(), promptLen, held, GENERATED, heldBlocks(cache, 0, a.seq()), heldBlocks(cache, full, a.seq()));
        }
        long plainBlocks = (long) requests * ((promptLen + GENERATED + blockSize - 1) / blockSize);
        if (sharedPool) {
            System.out.printf("blocks in use: %d of one pool of %d, where a hybrid cache without prefix caching would hold about"
                            + " %d in the full layer alone%n", cache.numUsedBlocks(), cache.group(0).config().numBlocks(), plainBlocks);
        } else {
            System.out.printf("blocks in use: windowed layers %d, full layer %d, where a hybrid cache without prefix caching would"
                            + " hold about %d in the full layer%n", cache.group(0).numUsedBlocks(), cache.group(full).numUsedBlocks(),
                    plainBlocks);
        }
        for (int g : new int[] {0, full}) {
            System.out.print(g == 0 ? (full > 1 ? "each windowed layer's " : "windowed layers' ") : "full layer's ");
            PrefixCommand.printMetrics(cache.group(g).prefixCache().metrics());
        }
        boolean same = sameAsFromScratch(cache, windows, seqs, tokens, random);
        System.out.println("every layer's attention over the shared blocks == over a hybrid cache written from scratch (bit for"
                + " bit): " + (same ? "yes" : "NO"));
        return same ? 0 : Main.EXIT_CHECK_FAILED;
    }

    private static int heldBlocks(HybridKvCache cache, int group, int seq) {
        PageTable t = cache.group(group).pageTable(seq);
        return t.numBlocks() - t.numReleased();
    }

    private static boolean sameAsFromScratch(HybridKvCache cached, int[] windows, int[] seqs, int[][] tokens,
                                             SplittableRandom random) throws OutOfBlocksException {
        int bs = cached.group(0).config().blockSize();
        int blocks = 0;
        for (int[] t : tokens) {
            blocks += (t.length + bs - 1) / bs;
        }
        HybridKvCache plain = HybridKvCache.of(windows, new int[] {blocks, blocks}, bs, 8, 128, KvDtype.FP16);
        int[] plainSeqs = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            plainSeqs[i] = plain.createSequence();
            plain.append(plainSeqs[i], tokens[i].length);
            SyntheticKv.write(plain, plainSeqs[i], tokens[i], 0);
        }
        AttentionSpec spec = AttentionSpec.of(plain.group(0).config(), 32);
        int rows = (int) spec.queryElements(seqs.length);
        HybridBatch a = cached.batch(seqs);
        HybridBatch b = plain.batch(plainSeqs);
        try (HybridAttention x = HybridAttention.create("jvm", cached, spec, null, "auto");
             HybridAttention y = HybridAttention.create("jvm", plain, spec, null, "auto")) {
            for (int layer = 0; layer < windows.length; layer++) {
                FloatArray q = new FloatArray(rows);
                for (int i = 0; i < rows; i++) {
                    q.set(i, (float) (random.nextDouble() * 2 - 1));
                }
                FloatArray outA = new FloatArray(rows);
                FloatArray outB = new FloatArray(rows);
                outA.init(Float.NaN);
                outB.init(Float.NaN);
                x.decode(a, layer, q, outA);
                y.decode(b, layer, q, outB);
                if (!PrefixCommand.sameBits(outA, outB)) {
                    return false;
                }
            }
        }
        return true;
    }
}
