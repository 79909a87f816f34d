package dev.pagedattn.attention;

import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.KvDtype;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

/**
 * One prefill shape for the tests: context and query lengths per sequence, heads, block size,
 * dtype and window; {@link #workload} makes a fresh random problem of it.
 */
public record PrefillCase(String name, int[] lengths, int[] qLens, int numQHeads, int numKvHeads, int headDim, int blockSize,
                          KvDtype dtype, int window) {

    /** Query lengths for a property's contexts: {@code 1 + (seed (i + 7)) mod lens[i]} for sequence {@code i}, in [1, lens[i]]. */
    public static int[] queryLens(int[] lens, int seed) {
        int[] qLens = new int[lens.length];
        for (int i = 0; i < lens.length; i++) {
            qLens[i] = 1 + (seed * (i + 7)) % lens[i];
        }
        return qLens;
    }

    public static PrefillCase of(String name, int[] lengths, int[] qLens, int numQHeads, int numKvHeads, int headDim,
                                 int blockSize, KvDtype dtype, int window) {
        return new PrefillCase(name, lengths, qLens, numQHeads, numKvHeads, headDim, blockSize, dtype, window);
    }

    /** The shapes of issue 11, for the JVM backend and the kernel emulator. */
    public static Stream<PrefillCase> issueShapes() {
        List<PrefillCase> cases = new ArrayList<>();
        cases.add(PrefillCase.of("qLen 1 (decode)", new int[] {1, 17, 40}, new int[] {1, 1, 1}, 8, 2, 64, 16, KvDtype.FP16, PrefillBatch.NO_WINDOW));
        cases.add(PrefillCase.of("qLen = block size", new int[] {16, 50}, new int[] {16, 16}, 8, 2, 64, 16, KvDtype.FP16, PrefillBatch.NO_WINDOW));
        cases.add(PrefillCase.of("qLen = block size + 1", new int[] {17, 50}, new int[] {17, 17}, 4, 4, 32, 16, KvDtype.FP32, PrefillBatch.NO_WINDOW));
        cases.add(PrefillCase.of("whole prompt, ragged", new int[] {5, 33, 21}, new int[] {5, 33, 21}, 8, 2, 40, 8, KvDtype.FP16, PrefillBatch.NO_WINDOW));
        // a second chunk longer than the first: 40 new tokens over a 24-token prefix
        cases.add(PrefillCase.of("qLen > previous chunk", new int[] {64, 30}, new int[] {40, 29}, 8, 1, 32, 16, KvDtype.FP32, PrefillBatch.NO_WINDOW));
        cases.add(PrefillCase.of("window < block", new int[] {70, 9}, new int[] {20, 9}, 8, 2, 64, 16, KvDtype.FP16, 5));
        cases.add(PrefillCase.of("window 1", new int[] {33}, new int[] {12}, 4, 2, 16, 4, KvDtype.FP32, 1));
        cases.add(PrefillCase.of("window > context", new int[] {33, 12}, new int[] {3, 12}, 4, 2, 16, 4, KvDtype.FP32, 100));
        cases.add(PrefillCase.of("window across blocks", new int[] {90}, new int[] {37}, 4, 1, 24, 8, KvDtype.FP16, 19));
        cases.add(PrefillCase.of("MQA 64 heads", new int[] {40, 19}, new int[] {9, 19}, 64, 1, 32, 16, KvDtype.FP16, PrefillBatch.NO_WINDOW));
        cases.add(PrefillCase.of("MHA", new int[] {25}, new int[] {25}, 4, 4, 8, 1, KvDtype.FP32, PrefillBatch.NO_WINDOW));
        cases.add(PrefillCase.of("head dim 256", new int[] {20}, new int[] {18}, 2, 1, 256, 16, KvDtype.FP16, 11));
        // chunked local attention (Llama 4): a query sees its own chunk only, so rows on both sides of a chunk boundary
        cases.add(PrefillCase.of("chunks of 8 inside blocks of 16", new int[] {70, 9}, new int[] {30, 9}, 8, 2, 64, 16, KvDtype.FP16,
                AttentionWindow.chunked(8)));
        cases.add(PrefillCase.of("chunks of 20 across blocks of 8", new int[] {90, 41}, new int[] {45, 2}, 4, 1, 24, 8, KvDtype.FP32,
                AttentionWindow.chunked(20)));
        cases.add(PrefillCase.of("chunks of 1", new int[] {33}, new int[] {12}, 4, 2, 16, 4, KvDtype.FP32, AttentionWindow.chunked(1)));
        cases.add(PrefillCase.of("head dim 80 block 5", new int[] {31, 3}, new int[] {7, 2}, 6, 3, 80, 5, KvDtype.FP32, PrefillBatch.NO_WINDOW));
        return cases.stream();
    }

    /** 8-bit dtypes get a different K and V scale per KV head ({@link TestScales#perHead}). */
    public PrefillWorkload workload(long seed) {
        return PrefillWorkload.create(lengths, qLens, window, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, 0,
                TestScales.perHead(dtype, numKvHeads, seed));
    }

    @Override
    public String toString() {
        return name + " context=" + Arrays.toString(lengths) + " qLen=" + Arrays.toString(qLens) + " heads=" + numQHeads + "/"
                + numKvHeads + " d=" + headDim + " bs=" + blockSize + " " + dtype
                + (window == PrefillBatch.NO_WINDOW ? "" : " " + AttentionWindow.describe(window));
    }
}
