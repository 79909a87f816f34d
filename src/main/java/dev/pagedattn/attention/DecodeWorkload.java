package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * A random decode problem: a cache whose sequences own disjoint, shuffled physical blocks filled
 * with uniform random K/V in [-1, 1) (written straight into the pools, in parallel, so that
 * gigabyte-sized benchmark caches build in seconds), one random query per sequence, and the batch
 * that reads them. Used by the CLI's check and bench, the tests and the benchmarks, so they all measure the
 * same thing. Deterministic for a seed.
 */
public final class DecodeWorkload {
    private final KvCache cache;
    private final AttentionSpec spec;
    private final int[] seqs;
    private final DecodeBatch batch;
    private final FloatArray q; // [numSeqs][numQHeads][headDim]

    private DecodeWorkload(KvCache cache, AttentionSpec spec, int[] seqs, FloatArray q) {
        this.cache = cache;
        this.spec = spec;
        this.seqs = seqs;
        this.batch = cache.batch(seqs);
        this.q = q;
    }

    /**
     * Builds the workload (the fill is parallel: gigabyte caches take seconds), with a few spare
     * blocks for later appends where the pool has room.
     *
     * @param lengths context length per sequence, each >= 1
     */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed) {
        return create(lengths, numQHeads, numKvHeads, headDim, blockSize, dtype, seed, 0);
    }

    /**
     * As {@link #create(int[], int, int, int, int, KvDtype, long)}, with room for every sequence to
     * append {@code spareTokensPerSeq} more tokens (decode steps), guaranteed.
     */
    public static DecodeWorkload create(int[] lengths, int numQHeads, int numKvHeads, int headDim, int blockSize,
                                        KvDtype dtype, long seed, int spareTokensPerSeq) {
        if (lengths.length == 0) {
            throw new IllegalArgumentException("batch=0 must be >= 1");
        }
        if (spareTokensPerSeq < 0) {
            throw new IllegalArgumentException("spareTokensPerSeq=" + spareTokensPerSeq + " must be >= 0");
        }
        long blocks = 0; // what the contexts and the guaranteed appends need
        for (int len : lengths) {
            if (len < 1) {
                throw new IllegalArgumentException("context=" + len + " must be >= 1");
            }
            blocks += ((long) len + spareTokensPerSeq + blockSize - 1) / blockSize;
        }
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("blocks=" + blocks + " do not fit one pool");
        }
        // A few more spare blocks per sequence, where the pool has room, for appends beyond the guaranteed ones.
        long perBlock = (long) numKvHeads * blockSize * headDim;
        long spare = Math.max(0, Math.min(4L * lengths.length, Integer.MAX_VALUE / perBlock - blocks));
        KvCacheConfig config = KvCacheConfig.of((int) (blocks + spare), blockSize, numKvHeads, headDim, dtype);
        AttentionSpec spec = AttentionSpec.of(config, numQHeads);
        KvCache cache = new KvCache(config);
        cache.shuffleFreeBlocks(seed);
        int[] seqs = new int[lengths.length];
        try {
            for (int i = 0; i < lengths.length; i++) {
                seqs[i] = cache.createSequence();
                cache.append(seqs[i], lengths[i]);
            }
        } catch (OutOfBlocksException e) {
            throw new AssertionError("a pool sized for the workload ran out", e);
        }
        // Random K/V straight into the pools (parallel): every slot of every sequence gets a value.
        cache.fillUniform(seed);
        SplittableRandom random = new SplittableRandom(seed);
        FloatArray q = new FloatArray((int) spec.queryElements(lengths.length));
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        return new DecodeWorkload(cache, spec, seqs, q);
    }

    /** Uniform lengths in {@code [min, max]} for {@code batch} sequences. */
    public static int[] lengths(int batch, int min, int max, long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0x1E57L);
        int[] out = new int[batch];
        for (int i = 0; i < batch; i++) {
            out[i] = min == max ? min : min + r.nextInt(max - min + 1);
        }
        return out;
    }

    public KvCache cache() {
        return cache;
    }

    public AttentionSpec spec() {
        return spec;
    }

    public int[] seqs() {
        return seqs.clone();
    }

    public DecodeBatch batch() {
        return batch;
    }

    public FloatArray q() {
        return q;
    }

    /** A fresh output array poisoned with NaN, so unwritten elements fail every check. */
    public FloatArray poisonedOutput() {
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        return out;
    }

    /** The fp64 reference for this workload. */
    public double[] reference() {
        return ReferenceAttention.decode(cache, spec, 0, seqs, q);
    }

    /**
     * Minimum bytes a decode must move (benchmarks/README.md): K and V once, q in and out at 2 bytes,
     * block tables and lengths.
     */
    public long minimumBytes() {
        return minimumBytes(batch);
    }

    /** Minimum bytes for {@code batch} over this workload's cache (after appends, say). */
    public long minimumBytes(DecodeBatch batch) {
        long kv = batch.totalTokens() * 2L * spec.numKvHeads() * spec.headDim() * cache.config().dtype().bytes();
        long qo = (long) batch.numSeqs() * spec.numQHeads() * spec.headDim() * 4;
        long tables = 0;
        for (int i = 0; i < batch.numSeqs(); i++) {
            tables += 4L * cache.config().blocksFor(batch.contextLen(i));
        }
        return kv + qo + tables + 4L * batch.numSeqs();
    }
}
