package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.quant.KvScales;
import dev.pagedattn.rope.RopeFrequencies;
import dev.pagedattn.rope.RotaryEmbedding;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The demo's line on rotary embeddings: one prompt's keys written twice into a cache of the demo's shape, rotated
 * ({@link RotaryEmbedding}, Llama 3.1's frequencies) at positions 0.. and at positions 1,000,000.., with each sequence's
 * query rotated at its own last position, decoded in one step by the demo's backend. The two outputs differ only by the
 * pools' rounding of differently rotated keys (RoPE's scores depend on distances only; 2e-7 apart in fp32 pools, up to
 * 9e-2 in FP8 E5M2's); a query one position off shows what a real difference looks like. What passes or fails is the
 * step against fp64 over the stored keys.
 */
final class RotaryDemo {
    private static final int SHIFT = 1_000_000;
    private static final int TOKENS = 40;

    private RotaryDemo() {
    }

    /** Prints the line; whether the step matched fp64. */
    static boolean run(KvCacheConfig demoConfig, KvScales scales, AttentionSpec spec, String backend, String device,
            SplittableRandom random) throws OutOfBlocksException {
        KvCacheConfig config = KvCacheConfig.of(8, demoConfig.blockSize(), demoConfig.numKvHeads(), demoConfig.headDim(),
                demoConfig.dtype());
        KvCache cache = new KvCache(config, scales);
        int headDim = config.headDim();
        RotaryEmbedding rope = new RotaryEmbedding(headDim, RopeFrequencies.llama3(headDim, 500000, 8, 1, 4, 8192),
                RotaryEmbedding.Style.NEOX);
        // 0.7 x uniform [-1, 1): a rotated pair stays within 0.7 sqrt(2) < 1, the 8-bit scales' range
        float[] k = scaled(HybridCheck.uniform(random, TOKENS * config.tokenWidth()), 0.7f);
        float[] v = HybridCheck.uniform(random, TOKENS * config.tokenWidth());
        // a query 8x the keys' scale attends sharply, so a position off moves its output as much as a model's would
        float[] q = scaled(HybridCheck.uniform(random, (int) spec.queryElements(1)), 8f);
        int rows = (int) spec.queryElements(1);
        int[] seqs = new int[2];
        float[] rotatedQ = new float[3 * rows];   // [near, far, far one position off][numQHeads][headDim]
        for (int i = 0; i < 2; i++) {
            float[] rk = k.clone();
            rope.apply(rk, config.numKvHeads(), i * SHIFT, TOKENS);
            seqs[i] = cache.createSequence();
            cache.appendTokens(seqs[i], rk, v);
            System.arraycopy(q, 0, rotatedQ, i * rows, rows);
        }
        System.arraycopy(q, 0, rotatedQ, 2 * rows, rows);
        FloatArray all = FloatArray.fromArray(rotatedQ);
        rope.apply(all, spec.numQHeads(), new int[] {TOKENS - 1, SHIFT + TOKENS - 1, SHIFT + TOKENS});
        FloatArray step = FloatArray.fromArray(java.util.Arrays.copyOf(all.toHeapArray(), 2 * rows));
        FloatArray offQ = FloatArray.fromArray(java.util.Arrays.copyOfRange(all.toHeapArray(), 2 * rows, 3 * rows));
        FloatArray out = DemoCommand.poisoned(2 * rows);
        FloatArray offOut = DemoCommand.poisoned(rows);
        try (DecodeAttention attention = Backends.create(backend, cache, spec, device, "auto")) {
            attention.decode(cache.batch(seqs), 0, step, out);
            attention.decode(cache.batch(seqs[1]), 0, offQ, offOut);
        }
        double rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, seqs, step));
        double[] near = new double[rows];
        for (int i = 0; i < rows; i++) {
            near[i] = out.get(i);
        }
        FloatArray far = FloatArray.fromArray(java.util.Arrays.copyOfRange(out.toHeapArray(), rows, 2 * rows));
        double shifted = ReferenceAttention.relativeL2(far, near);
        double off = ReferenceAttention.relativeL2(offOut, near);
        boolean ok = rel <= 1e-4; // the shift moves outputs by the pools' rounding only: 2e-7 in fp32, up to 9e-2 in FP8 E5M2
        System.out.printf("   The same prompt's keys with rotary embeddings (RotaryEmbedding, Llama 3.1's frequencies), written as"
                + " two sequences at positions 0..%d and %d..%d, each query rotated at its last position: one step gives them"
                + " outputs %.1e apart (the pools' rounding; a query one position off: %.0f%%); vs fp64 over the stored keys:"
                + " relative L2 error %.2e -> %s%n", TOKENS - 1, SHIFT, SHIFT + TOKENS - 1, shifted, 100 * off, rel,
                ok ? "PASS" : "FAIL");
        return ok;
    }

    private static float[] scaled(float[] a, float by) {
        for (int i = 0; i < a.length; i++) {
            a[i] *= by;
        }
        return a;
    }
}
