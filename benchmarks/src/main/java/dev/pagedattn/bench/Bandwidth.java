package dev.pagedattn.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * Bytes moved, as a JMH secondary result: a throughput benchmark adds what one call must read,
 * and JMH prints the counter per second, i.e. {@code <benchmark>:gigabytes} in "ops/s" is GB/s
 * (10^9 bytes per second). JMH zeroes the counter before each iteration.
 */
@State(Scope.Thread)
@AuxCounters(AuxCounters.Type.OPERATIONS)
public class Bandwidth {
    /** Gigabytes (10^9 bytes) moved in this iteration. */
    public double gigabytes;
}
