package dev.pagedattn.attention;

import dev.pagedattn.cache.KvDtype;
import java.util.Arrays;

/**
 * One prefill shape for the tests: context and query lengths per sequence, heads, block size,
 * dtype and window; {@link #workload} makes a fresh random problem of it.
 */
public record PrefillCase(String name, int[] lengths, int[] qLens, int numQHeads, int numKvHeads, int headDim, int blockSize,
                          KvDtype dtype, int window) {

    public static PrefillCase of(String name, int[] lengths, int[] qLens, int numQHeads, int numKvHeads, int headDim,
                                 int blockSize, KvDtype dtype, int window) {
        return new PrefillCase(name, lengths, qLens, numQHeads, numKvHeads, headDim, blockSize, dtype, window);
    }

    public PrefillWorkload workload(long seed) {
        return PrefillWorkload.create(lengths, qLens, window, numQHeads, numKvHeads, headDim, blockSize, dtype, seed);
    }

    @Override
    public String toString() {
        return name + " context=" + Arrays.toString(lengths) + " qLen=" + Arrays.toString(qLens) + " heads=" + numQHeads + "/"
                + numKvHeads + " d=" + headDim + " bs=" + blockSize + " " + dtype
                + (window == PrefillBatch.NO_WINDOW ? "" : " window=" + window);
    }
}
