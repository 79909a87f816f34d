package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.RandomKv;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.Arrays;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * A random decode problem built through the cache's public API, for any number of layers (unlike
 * {@link DecodeWorkload}, which is single-layer): sequences are appended round-robin in random
 * chunks from a shuffled pool, so their blocks are non-contiguous and interleaved; every layer
 * gets its own uniform [-1, 1) K and V.
 */
record DecodeProblem(Shape shape, long seed, KvCache cache, AttentionSpec spec, int[] seqs, DecodeBatch batch,
                     FloatArray q) { // q [numSeqs][numQHeads][headDim]

    /**
     * @param lengths context length per sequence
     * @param scale   softmax scale, or NaN for the default {@code 1/sqrt(headDim)}
     * @param layer   the layer the decode reads, in [0, numLayers)
     */
    record Shape(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize, KvDtype dtype,
                 int numLayers, int layer, float scale) {

        static Shape of(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize, KvDtype dtype) {
            return new Shape(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, 1, 0, Float.NaN);
        }

        Shape withLayers(int numLayers, int layer) {
            return new Shape(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, numLayers, layer, scale);
        }

        Shape withScale(float scale) {
            return new Shape(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, numLayers, layer, scale);
        }

        @Override
        public String toString() {
            return "lengths=" + Arrays.toString(lengths) + " qHeads=" + numQHeads + " kvHeads=" + numKvHeads
                    + " headDim=" + headDim + " blockSize=" + blockSize + " " + dtype + " layer=" + layer + "/" + numLayers
                    + (Float.isNaN(scale) ? "" : " scale=" + scale);
        }
    }

    static DecodeProblem random(Shape s, long seed) {
        return random(s, seed, null);
    }

    /** Same, into a cache with these 8-bit scales (null: the cache's default). */
    static DecodeProblem random(Shape s, long seed, dev.pagedattn.quant.KvScales scales) {
        SplittableRandom random = new SplittableRandom(seed);
        int numBlocks = 2; // spare blocks, so that the pool is not used up in order
        for (int len : s.lengths()) {
            numBlocks += (len + s.blockSize() - 1) / s.blockSize();
        }
        KvCacheConfig config = new KvCacheConfig(numBlocks, s.blockSize(), s.numKvHeads(), s.headDim(), s.dtype(), s.numLayers());
        AttentionSpec spec = Float.isNaN(s.scale())
                ? AttentionSpec.of(config, s.numQHeads())
                : new AttentionSpec(s.numQHeads(), s.numKvHeads(), s.headDim(), s.scale());
        KvCache cache = new KvCache(config, scales);
        RandomKv.shuffleFreeBlocks(cache, seed);
        int n = s.lengths().length;
        int[] seqs = new int[n];
        int[] done = new int[n];
        for (int i = 0; i < n; i++) {
            seqs[i] = cache.createSequence();
        }
        int width = config.tokenWidth();
        try {
            for (boolean more = true; more; ) {
                more = false;
                for (int i = 0; i < n; i++) {
                    int left = s.lengths()[i] - done[i];
                    if (left == 0) {
                        continue;
                    }
                    int chunk = Math.min(left, 1 + random.nextInt(2 * s.blockSize() + 1));
                    cache.append(seqs[i], chunk);
                    for (int layer = 0; layer < s.numLayers(); layer++) {
                        cache.writeTokens(seqs[i], layer, done[i], chunk, uniform(random, chunk * width), uniform(random, chunk * width));
                    }
                    done[i] += chunk;
                    more |= done[i] < s.lengths()[i];
                }
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError("a pool sized for the problem ran out", e);
        }
        FloatArray q = FloatArray.fromArray(uniform(random, (int) spec.queryElements(n)));
        return new DecodeProblem(s, seed, cache, spec, seqs, cache.batch(seqs), q);
    }

    static float[] uniform(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return a;
    }

    /** A fresh output poisoned with NaN. */
    FloatArray poisonedOutput() {
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        return out;
    }

    double[] reference() {
        return ReferenceAttention.decode(cache, spec, shape.layer(), seqs, q, batch.window(), n -> { });
    }

    /** This problem with a sliding window of {@code window} tokens (its batch's {@link DecodeBatch#window(int)}). */
    DecodeProblem windowed(int window) {
        return new DecodeProblem(shape, seed, cache, spec, seqs, batch.window(window), q);
    }

    /** This problem with attention sinks (its spec's {@link AttentionSpec#withSinks}). */
    DecodeProblem withSinks(AttentionSinks sinks) {
        return new DecodeProblem(shape, seed, cache, spec.withSinks(sinks), seqs, batch, q);
    }

    /** This problem with logit soft-capping at {@code softCap} (its spec's {@link AttentionSpec#withSoftCap}; 0: none). */
    DecodeProblem withSoftCap(float softCap) {
        return new DecodeProblem(shape, seed, cache, spec.withSoftCap(softCap), seqs, batch, q);
    }

    /** This problem with ALiBi (its spec's {@link AttentionSpec#withAlibi}). */
    DecodeProblem withAlibi(AlibiSlopes alibi) {
        return new DecodeProblem(shape, seed, cache, spec.withAlibi(alibi), seqs, batch, q);
    }

    /** One decode by a fresh JVM backend into a poisoned output. */
    FloatArray decodeJvm() {
        FloatArray out = poisonedOutput();
        try (JvmDecodeAttention attention = new JvmDecodeAttention(cache, spec)) {
            attention.decode(batch, shape.layer(), q, out);
        }
        return out;
    }

    /** Names the case for failure messages. */
    String describe() {
        return shape + (batch.windowed() ? " window=" + batch.window() : "") + (spec.sinks().any() ? " " + spec.sinks() : "")
                + (spec.hasSoftCap() ? " softCap=" + spec.softCap() : "") + (spec.hasAlibi() ? " " + spec.alibi() : "")
                + " seed=" + seed;
    }
}
