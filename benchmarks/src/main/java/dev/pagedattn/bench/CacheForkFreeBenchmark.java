package dev.pagedattn.bench;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.RandomKv;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * {@link KvCache#fork} (parallel sampling, beam search) and {@link KvCache#free} (a request ends)
 * of a sequence of {@code forkFreeTokens} tokens: both are O(blocks). Single-shot batches as in
 * {@link CacheAppendBenchmark}: forks pile up and frees run out, so each iteration times
 * {@value #CALLS} calls and an untimed {@code Level.Iteration} setup/teardown resets the cache.
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 30, batchSize = CacheForkFreeBenchmark.CALLS)
@Measurement(iterations = 20, batchSize = CacheForkFreeBenchmark.CALLS)
@OperationsPerInvocation(CacheForkFreeBenchmark.CALLS) // JMH divides a single shot's time by this, not by the batch size
@Fork(1)
public class CacheForkFreeBenchmark {
    static final int CALLS = 2048;

    /** One parent sequence; the children forked in an iteration are freed after it. */
    @State(Scope.Thread)
    public static class Parent {
        @Param({"1024"})
        public int forkFreeTokens;

        KvCache cache;
        int parent;
        int[] children;
        int numChildren;

        @Setup(Level.Trial)
        public void createCache(BenchmarkParams params) throws OutOfBlocksException {
            Bench.requireCheckedOff();
            cache = new KvCache(Bench.bookkeepingConfig((forkFreeTokens + Bench.BLOCK_SIZE - 1) / Bench.BLOCK_SIZE));
            parent = cache.createSequence();
            cache.append(parent, forkFreeTokens);
            children = new int[Bench.callsPerIteration(params)];
        }

        @TearDown(Level.Iteration)
        public void freeChildren() {
            for (int i = 0; i < numChildren; i++) {
                cache.free(children[i]);
            }
            numChildren = 0;
        }
    }

    /** Sequences that own their blocks alone, created untimed before each iteration. */
    @State(Scope.Thread)
    public static class Owners {
        @Param({"1024"})
        public int forkFreeTokens;

        KvCache cache;
        int[] seqs;
        int next;

        @Setup(Level.Trial)
        public void createCache(BenchmarkParams params) {
            Bench.requireCheckedOff();
            seqs = new int[Bench.callsPerIteration(params)];
            cache = new KvCache(Bench.bookkeepingConfig(seqs.length * ((forkFreeTokens + Bench.BLOCK_SIZE - 1) / Bench.BLOCK_SIZE)));
            RandomKv.shuffleFreeBlocks(cache, 1); // blocks scattered over the pool, as after a while of serving
        }

        @Setup(Level.Iteration)
        public void createSequences() throws OutOfBlocksException {
            for (int i = 0; i < seqs.length; i++) {
                seqs[i] = cache.createSequence();
                cache.append(seqs[i], forkFreeTokens);
            }
            next = 0;
        }

        @TearDown(Level.Iteration)
        public void freeLeftovers() {
            for (int i = next; i < seqs.length; i++) {
                cache.free(seqs[i]);
            }
        }
    }

    /** A child sharing all of the parent's blocks: one reference count up per block, a page-table copy. */
    @Benchmark
    public int fork(Parent p) {
        int child = p.cache.fork(p.parent);
        p.children[p.numChildren++] = child;
        return child;
    }

    /** The sole owner goes away: every block back to the free stack, tail first. */
    @Benchmark
    public void free(Owners o) {
        o.cache.free(o.seqs[o.next++]);
    }
}
