package dev.pagedattn.attention;

import dev.pagedattn.attention.DecodeProblem.Shape;
import java.util.SplittableRandom;

/**
 * Decode problems whose scores are all close to a large target: per KV head, keys are a random
 * direction {@code u} plus noise of 2% and every query of the group is {@code c * u} with
 * {@code scale * c * |u|^2 = target}.
 */
final class LargeScores {
    private LargeScores() {
    }

    static DecodeProblem problem(Shape shape, double target, long seed) {
        DecodeProblem p = DecodeProblem.random(shape, seed);
        SplittableRandom random = new SplittableRandom(seed ^ 0xB16L);
        int d = shape.headDim();
        int kvHeads = shape.numKvHeads();
        int g = p.spec().groupSize();
        float[][] u = new float[kvHeads][];
        double[] norm2 = new double[kvHeads];
        for (int h = 0; h < kvHeads; h++) {
            u[h] = DecodeProblem.uniform(random, d);
            for (float x : u[h]) {
                norm2[h] += (double) x * x;
            }
        }
        for (int s = 0; s < p.seqs().length; s++) {
            int seq = p.seqs()[s];
            int len = shape.lengths()[s];
            float[] k = new float[len * kvHeads * d]; // [len][kvHeads][d]
            float[] v = new float[k.length];
            for (int t = 0; t < len; t++) {
                for (int h = 0; h < kvHeads; h++) {
                    for (int e = 0; e < d; e++) {
                        int at = (t * kvHeads + h) * d + e;
                        k[at] = u[h][e] + (float) (0.02 * (random.nextDouble() * 2 - 1));
                        v[at] = p.cache().readV(seq, shape.layer(), t, h, e);
                    }
                }
            }
            try {
                p.cache().writeTokens(seq, shape.layer(), 0, len, k, v); // the problem's blocks are its own: no copy
            } catch (dev.pagedattn.cache.OutOfBlocksException e) {
                throw new AssertionError(e);
            }
            for (int qh = 0; qh < shape.numQHeads(); qh++) {
                int h = qh / g;
                double c = target / (p.spec().scale() * norm2[h]);
                for (int e = 0; e < d; e++) {
                    p.q().set((s * shape.numQHeads() + qh) * d + e, (float) (c * u[h][e]));
                }
            }
        }
        return p;
    }

    /** The largest |scale * q.k| of the problem, in fp64. */
    static double maxAbsScore(DecodeProblem p) {
        Shape shape = p.shape();
        int d = shape.headDim();
        double max = 0;
        for (int s = 0; s < p.seqs().length; s++) {
            for (int qh = 0; qh < shape.numQHeads(); qh++) {
                for (int t = 0; t < shape.lengths()[s]; t++) {
                    double dot = 0;
                    for (int e = 0; e < d; e++) {
                        dot += (double) p.q().get((s * shape.numQHeads() + qh) * d + e)
                                * p.cache().readK(p.seqs()[s], shape.layer(), t, qh / p.spec().groupSize(), e);
                    }
                    max = Math.max(max, Math.abs(p.spec().scale() * dot));
                }
            }
        }
        return max;
    }
}
