package dev.pagedattn.cache;

import java.util.Random;

/**
 * Fresh random inputs with a printed seed. Rerun a failure with
 * {@code bin/pa test -Dtest=Class#method -Dpagedattn.test.seed=<seed>}.
 */
final class TestRandom {
    private TestRandom() {
    }

    static Random create(String testName) {
        Long fixed = Long.getLong("pagedattn.test.seed");
        long seed = fixed != null ? fixed : System.nanoTime() ^ Thread.currentThread().threadId() * 0x9E3779B97F4A7C15L;
        System.out.println("[seed] " + testName + " pagedattn.test.seed=" + seed);
        return new Random(seed);
    }
}
