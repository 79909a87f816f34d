package dev.pagedattn.bench;

import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PrefixCache;
import java.util.SplittableRandom;
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
 * {@link PrefixCache#admit} of a prompt whose every full block is cached (a shared system prompt
 * in use by another sequence): hash and confirm {@code promptTokens/blockSize} blocks, share them,
 * take one block for the last, partial one. Each admission creates a sequence, so as in
 * {@link CacheAppendBenchmark} each iteration times a batch of {@value #CALLS} calls and an
 * untimed teardown frees the admitted sequences.
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 30, batchSize = PrefixAdmitBenchmark.CALLS)
@Measurement(iterations = 20, batchSize = PrefixAdmitBenchmark.CALLS)
@OperationsPerInvocation(PrefixAdmitBenchmark.CALLS) // JMH divides a single shot's time by this, not by the batch size
@Fork(1)
@State(Scope.Thread)
public class PrefixAdmitBenchmark {
    static final int CALLS = 4096;

    /** Full cached blocks of the prompt are {@code promptTokens / blockSize}; one more token starts a new block. */
    @Param({"1024"})
    public int promptTokens;

    private KvCache cache;
    private PrefixCache prefixCache;
    private int[] prompt;     // [promptTokens + 1] token ids
    private int[] admitted;   // sequence ids admitted in this iteration
    private int numAdmitted;

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) throws OutOfBlocksException {
        Bench.requireCheckedOff();
        int calls = Bench.callsPerIteration(params);
        int promptBlocks = (promptTokens + 1 + Bench.BLOCK_SIZE - 1) / Bench.BLOCK_SIZE;
        cache = new KvCache(Bench.bookkeepingConfig(promptBlocks + calls));
        prefixCache = cache.enablePrefixCaching();
        SplittableRandom random = new SplittableRandom(1);
        prompt = new int[promptTokens + 1];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = random.nextInt(128_000);
        }
        int owner = prefixCache.admit(prompt, null).seq(); // stays alive: its blocks are in use, never evicted
        prefixCache.commit(owner);
        int probe = prefixCache.admit(prompt, null).seq();
        if (cache.length(probe) != prompt.length || prefixCache.metrics().blockHits() != promptTokens / Bench.BLOCK_SIZE) {
            throw new IllegalStateException("prefix cache setup: expected " + promptTokens / Bench.BLOCK_SIZE
                    + " block hits, got " + prefixCache.metrics().blockHits());
        }
        cache.free(probe);
        admitted = new int[calls];
    }

    @TearDown(Level.Iteration)
    public void freeAdmitted() {
        for (int i = 0; i < numAdmitted; i++) {
            cache.free(admitted[i]);
        }
        numAdmitted = 0;
    }

    @Benchmark
    public PrefixCache.Admission admitHit() throws OutOfBlocksException {
        PrefixCache.Admission a = prefixCache.admit(prompt, null);
        admitted[numAdmitted++] = a.seq();
        return a;
    }
}
