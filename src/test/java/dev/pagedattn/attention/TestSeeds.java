package dev.pagedattn.attention;

import java.util.SplittableRandom;

/**
 * Fresh random seeds for tests, always printed, so that a failure can be replayed: run the test
 * again with {@code -Dpagedattn.test.seed=<seed>} and every seed it asks for is that one.
 */
public final class TestSeeds {
    private static final SplittableRandom SOURCE = new SplittableRandom();

    private TestSeeds() {
    }

    /** A new seed for {@code what} (or the replay seed), printed to stdout. */
    public static synchronized long fresh(String what) {
        Long replay = Long.getLong("pagedattn.test.seed");
        long seed = replay != null ? replay : SOURCE.nextLong();
        System.out.println(what + ": seed=" + seed + " (replay with -Dpagedattn.test.seed=" + seed + ")");
        return seed;
    }
}
