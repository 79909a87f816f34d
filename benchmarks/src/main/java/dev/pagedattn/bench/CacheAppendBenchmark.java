package dev.pagedattn.bench;

import dev.pagedattn.cache.KvCache;
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
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * {@link KvCache#append}: reserving slots for new tokens, the scheduler's per-step call.
 *
 * <p>An append changes the cache for good (the pool drains, blocks fill up), so there is no
 * steady state to time: like JMH's sample 26 (batch size) each iteration is one timed batch of
 * {@value #CALLS} calls on a cache reset by an untimed {@code Level.Iteration} setup, and the
 * score is time per call. Round-robin over many sequences, as a decode step appends one token to
 * every sequence of the batch.
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 30, batchSize = CacheAppendBenchmark.CALLS)
@Measurement(iterations = 20, batchSize = CacheAppendBenchmark.CALLS)
@OperationsPerInvocation(CacheAppendBenchmark.CALLS) // JMH divides a single shot's time by this, not by the batch size
@Fork(1)
public class CacheAppendBenchmark {
    static final int CALLS = 15 * 1024;

    /** Empty sequences: appending one block's worth of tokens takes exactly one new block from the pool. */
    @State(Scope.Thread)
    public static class EmptySequences {
        KvCache cache;
        int[] seqs;
        int next;

        @Setup(Level.Trial)
        public void createCache(BenchmarkParams params) {
            Bench.requireCheckedOff();
            int calls = Bench.callsPerIteration(params);
            cache = new KvCache(Bench.bookkeepingConfig(calls));
            seqs = new int[Math.min(1024, calls)];
        }

        @Setup(Level.Iteration)
        public void freshSequences() {
            for (int s : seqs) {
                if (cache.contains(s)) {
                    cache.free(s);
                }
            }
            for (int i = 0; i < seqs.length; i++) {
                seqs[i] = cache.createSequence();
            }
            next = 0;
        }

        int nextSeq() {
            int s = seqs[next];
            next = next + 1 == seqs.length ? 0 : next + 1;
            return s;
        }
    }

    /** Sequences holding one token: the next {@code blockSize - 1} appends of one token land in that block. */
    @State(Scope.Thread)
    public static class PartlyFilledBlocks {
        KvCache cache;
        int[] seqs;
        int next;

        @Setup(Level.Trial)
        public void createCache(BenchmarkParams params) {
            Bench.requireCheckedOff();
            int numSeqs = (Bench.callsPerIteration(params) + Bench.BLOCK_SIZE - 2) / (Bench.BLOCK_SIZE - 1);
            cache = new KvCache(Bench.bookkeepingConfig(numSeqs));
            seqs = new int[numSeqs];
        }

        @Setup(Level.Iteration)
        public void freshSequences() throws OutOfBlocksException {
            for (int s : seqs) {
                if (cache.contains(s)) {
                    cache.free(s);
                }
            }
            for (int i = 0; i < seqs.length; i++) {
                seqs[i] = cache.createSequence();
                cache.append(seqs[i], 1);
            }
            next = 0;
        }

        int nextSeq() {
            int s = seqs[next];
            next = next + 1 == seqs.length ? 0 : next + 1;
            return s;
        }
    }

    /** Append that allocates: {@code blockSize} tokens to a block-aligned sequence take one new block. */
    @Benchmark
    public int appendNewBlock(EmptySequences s) throws OutOfBlocksException {
        return s.cache.append(s.nextSeq(), Bench.BLOCK_SIZE);
    }

    /** Append of one token into the sequence's partly filled last block: no allocation. */
    @Benchmark
    public int appendIntoBlock(PartlyFilledBlocks s) throws OutOfBlocksException {
        return s.cache.append(s.nextSeq(), 1);
    }
}
