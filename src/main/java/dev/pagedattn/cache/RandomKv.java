package dev.pagedattn.cache;

import java.util.Random;

/**
 * Random content for benchmarks and tests: fills the pools and shuffles which physical blocks
 * allocations get, so that large workloads build in seconds and block ids are not trivially
 * ascending. Not part of a serving workflow.
 */
public final class RandomKv {
    private RandomKv() {
    }

    /**
     * Fills every element of every K and V pool with uniform random values in [-1, 1), in
     * parallel; deterministic for a seed. Every slot is marked dirty for device mirrors.
     */
    public static void fillUniform(KvCache cache, long seed) {
        synchronized (cache) {
            cache.store().fillUniform(seed);
        }
    }

    /** Randomises which physical blocks later allocations get (no effect on correctness). */
    public static void shuffleFreeBlocks(KvCache cache, long seed) {
        synchronized (cache) {
            cache.blockPool().shuffleFree(new Random(seed));
        }
    }
}
