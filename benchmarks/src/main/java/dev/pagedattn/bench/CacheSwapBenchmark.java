package dev.pagedattn.bench;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.SwappedSequence;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@link KvCache#swapOut} then {@link KvCache#swapIn} of one sequence of {@code swapTokens} tokens at Llama-3-8B's shape
 * (32 layers, 8 KV heads of 128, fp16: 128 KiB per token, so 1024 tokens are 128 MiB each way), the host memory closed
 * after each round: what a swap preemption costs an engine on the host, against recomputing the prompt; with a swap
 * space set aside once or with fresh host memory per swap-out (whose first touch dominates).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class CacheSwapBenchmark {

    @State(Scope.Thread)
    public static class Swapping {
        @Param({"1024"})
        public int swapTokens;

        /** Whether the cache set host memory aside once ({@link KvCache#enableSwapSpace}) or each swap-out allocates it. */
        @Param({"false", "true"})
        public boolean swapSpace;

        KvCache cache;
        int seq;

        @Setup(Level.Trial)
        public void createCache() throws OutOfBlocksException {
            Bench.requireCheckedOff();
            int blocks = (swapTokens + Bench.BLOCK_SIZE - 1) / Bench.BLOCK_SIZE;
            cache = new KvCache(new KvCacheConfig(blocks, Bench.BLOCK_SIZE, 8, 128, KvDtype.FP16, 32));
            seq = cache.createSequence();
            cache.append(seq, swapTokens);
            if (swapSpace) {
                cache.enableSwapSpace(blocks * cache.swapBlockBytes());
            }
        }
    }

    /** One round trip: every held block, every layer, out to host memory and back. */
    @Benchmark
    public int swapOutAndIn(Swapping s) throws OutOfBlocksException {
        try (SwappedSequence out = s.cache.swapOut(s.seq)) {
            s.seq = s.cache.swapIn(out);
        }
        return s.seq;
    }
}
