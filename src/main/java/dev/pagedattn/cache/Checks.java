package dev.pagedattn.cache;

/**
 * Switches for hot-path verification, read once from system properties.
 *
 * <p>{@code -Dpagedattn.checked=true} verifies every cache invariant after every operation
 * (free + used == total, reference counts == page-table references, no free block referenced).
 * The test suite runs with it on; benchmarks run with it off and say so.
 */
public final class Checks {
    /** True when {@code pagedattn.checked} is set to true. */
    public static final boolean CHECKED = Boolean.getBoolean("pagedattn.checked");

    private Checks() {
    }
}
