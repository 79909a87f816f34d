package dev.pagedattn.cli;

import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.rope.ReferenceRotary;
import dev.pagedattn.rope.RopeFrequencies;
import dev.pagedattn.rope.RotaryEmbedding;
import java.util.Arrays;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * What rotary embeddings add to a decode step on the JVM (bench-cpu --rope): a step's new query rows ({@code batch x
 * qHeads}) and key rows ({@code batch x kvHeads}), each sequence's token at position {@code context - 1}, rotated on one
 * thread with Llama 3.1's frequencies in NEOX pairs (as Hugging Face's checkpoints hold them); warmed, timed, and checked
 * once against the fp64 rotation. One CSV row in bench-cpu's columns (bytes: the rows read and written).
 */
final class RopeBench {
    private RopeBench() {
    }

    static String row(int batch, int context, int qHeads, int kvHeads, int headDim, int steps, double warmupSeconds, long seed) {
        RotaryEmbedding rope = new RotaryEmbedding(headDim, RopeFrequencies.llama3(headDim, 500000, 8, 1, 4, 8192),
                RotaryEmbedding.Style.NEOX);
        SplittableRandom random = new SplittableRandom(seed);
        float[] q = new float[batch * qHeads * headDim];
        float[] k = new float[batch * kvHeads * headDim];
        for (float[] a : new float[][] {q, k}) {
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (random.nextDouble() * 2 - 1);
            }
        }
        int[] positions = new int[batch];
        Arrays.fill(positions, context - 1);
        float[] rq = q.clone();
        float[] rk = k.clone();
        rope.apply(rq, qHeads, positions);
        rope.apply(rk, kvHeads, positions);
        double relL2 = Math.max(
                ReferenceAttention.relativeL2(FloatArray.fromArray(rq), ReferenceRotary.rotate(rope, q, qHeads, positions)),
                ReferenceAttention.relativeL2(FloatArray.fromArray(rk), ReferenceRotary.rotate(rope, k, kvHeads, positions)));
        long warmupEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
        do {
            rotate(rope, q, k, rq, rk, qHeads, kvHeads, positions);
        } while (System.nanoTime() < warmupEnd);
        long[] nanos = new long[steps];
        for (int i = 0; i < steps; i++) {
            nanos[i] = rotate(rope, q, k, rq, rk, qHeads, kvHeads, positions);
        }
        Arrays.sort(nanos);
        double bytes = 2.0 * Float.BYTES * (q.length + k.length);
        return String.format("rope-neox,%dx%d,fp32,%d,%d,1,%d,%.4f,%.4f,%.4f,%.2f,%.2e,%s", batch, context, batch, context, steps,
                nanos[0] / 1e6, nanos[steps / 2] / 1e6, nanos[steps - 1] / 1e6, bytes / nanos[0], relL2,
                relL2 <= 1e-6 ? "ok" : "wrong");
    }

    /** Rows restored from {@code q} and {@code k} (untimed), then one timed rotation of both. */
    private static long rotate(RotaryEmbedding rope, float[] q, float[] k, float[] rq, float[] rk, int qHeads, int kvHeads,
            int[] positions) {
        System.arraycopy(q, 0, rq, 0, q.length);
        System.arraycopy(k, 0, rk, 0, k.length);
        long t0 = System.nanoTime();
        rope.apply(rq, qHeads, positions);
        rope.apply(rk, kvHeads, positions);
        return System.nanoTime() - t0;
    }
}
