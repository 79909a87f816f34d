package dev.pagedattn.tornado;

/**
 * Precision of the probability-weighted sums of V in the fp16 stream kernel
 * ({@link dev.pagedattn.kernels.StreamDecodeKernels}, CUDA backend).
 *
 * <p>{@link #FP32} (the default): every product p x v is an fp32 FMA, as in the fp64-checked kernels
 * everywhere else (relative L2 error about 1e-6 against fp64). {@link #FP16}: within each tile of 16
 * tokens a lane's sums are fp16 pairs ({@code __hfma2}: the probabilities rounded to fp16, products and
 * 16-term sums in fp16), added to fp32 accumulators at the tile's end; scores, softmax and the sums
 * across tiles stay fp32. Like vLLM's fp16 decode kernel, which rounds the probabilities to fp16
 * before the V products, and FlashInfer's opt-in fp16 reductions, it trades precision for
 * instructions: about 76 warp instructions per (token, KV head) instead of 86 on an H200, 0.95-0.98x the
 * time per step on the standard cells (256 x 1k: 1.01x), and a relative L2 error of about 6e-4 on random
 * inputs, twice cuDNN's own (benchmarks/NOTES.md, "v1"). A tile's sum of 16 products overflows fp16 when
 * |V| exceeds 4096. fp16 K/V only.
 */
public enum VSums {
    FP32,
    FP16;

    /** {@code -Dpagedattn.tornado.vSums=fp32|fp16} (default fp32). */
    public static final VSums DEFAULT = parse(System.getProperty("pagedattn.tornado.vSums", "fp32"));

    /** {@code fp32} or {@code fp16}, any case. */
    public static VSums parse(String name) {
        for (VSums v : values()) {
            if (v.name().equalsIgnoreCase(name)) {
                return v;
            }
        }
        throw new IllegalArgumentException("v-sums=" + name + " is not one of fp32, fp16");
    }
}
