package dev.pagedattn.bench;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.cache.KvDtype;
import java.util.Arrays;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * One decode step of {@link JvmDecodeAttention} over sequences that share a prompt: {@code batch} sequences of
 * {@code context} tokens in runs of {@code sharers} forks of one {@code prefix}-token prompt
 * ({@code DecodeWorkload.sharedPrefix}), with cascade attention on or off ({@link JvmDecodeAttention#setCascade}).
 * {@code cascade=false} is the baseline of the same run; {@code sharers=1} (nothing shared) shows what cascade costs when
 * it finds nothing. Mean ms per step. Setup checks the step against the fp64 reference (relative L2 above 1e-4 fails).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
@State(Scope.Benchmark)
public class SharedPrefixDecodeBenchmark {

    /** Sequences per step. */
    @Param({"32"})
    public int batch;

    /** Tokens per sequence. */
    @Param({"4224"})
    public int context;

    /** Tokens of the shared prompt. */
    @Param({"4096"})
    public int prefix;

    /** Sequences per prompt: 1 shares nothing. */
    @Param({"1", "8"})
    public int sharers;

    /** Cascade attention on or off. */
    @Param({"true", "false"})
    public boolean cascade;

    /** K/V element type. */
    @Param({"fp16"})
    public String dtype;

    /** Backend threads: {@code all} or a number ({@code -Dpagedattn.jvm.threads}). */
    @Param({"all"})
    public String threads;

    private JvmDecodeAttention attention;
    private DecodeWorkload workload;
    private FloatArray out;

    @Setup(Level.Trial)
    public void setUp() {
        Bench.jvmBackendSetup(true, threads);
        int[] lengths = new int[batch];
        Arrays.fill(lengths, context);
        long seed = System.nanoTime();
        workload = DecodeWorkload.sharedPrefix(lengths, sharers, prefix, 32, 8, 128, 16, KvDtype.parse(dtype), seed);
        attention = new JvmDecodeAttention(workload.cache(), workload.spec());
        attention.setCascade(cascade);
        out = workload.poisonedOutput();
        double error = Bench.checkedDecode(attention, workload, out, seed);
        System.out.printf("shared-prefix decode: %d x %d in runs of %d over %d shared tokens, cascade=%b, %d threads; relL2=%.1e"
                        + " seed=%d%n", batch, context, sharers, prefix, cascade, attention.numThreads(), error, seed);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        attention.close();
    }

    @Benchmark
    public FloatArray decode() {
        attention.decode(workload.batch(), 0, workload.q(), out);
        return out;
    }
}
