package dev.pagedattn.bench;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.cache.KvCacheConfig;
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
 * One decode step of {@link JvmDecodeAttention} over multi-head latent attention's cache (DeepSeek's MLA): {@code heads}
 * query heads over one 576-element vector per token (512 compressed KV, 64 rotary key). {@code latent=true} stores it in a
 * latent cache ({@code KvCacheConfig.latent}: one pool, the values its first 512 elements, outputs 512 wide);
 * {@code latent=false}, the baseline of the same run, stores the same shape in a K and a V pool (values 576 wide). Mean ms
 * per step. Setup checks the step against the fp64 reference (relative L2 above 1e-4 fails).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
@State(Scope.Benchmark)
public class LatentDecodeBenchmark {
    private static final int LATENT = 512;
    private static final int ROPE = 64;

    /** Sequences per step. */
    @Param({"8"})
    public int batch;

    /** Tokens per sequence. */
    @Param({"4096"})
    public int context;

    /** Query heads over the one latent head: 16 (DeepSeek-V2-Lite), 128 (DeepSeek-V3). */
    @Param({"16", "128"})
    public int heads;

    /** A latent cache, or the same vectors in a K and a V pool. */
    @Param({"true", "false"})
    public boolean latent;

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
        KvDtype kvDtype = KvDtype.parse(dtype);
        workload = DecodeWorkload.create(lengths, heads, 1, LATENT + ROPE, 64, kvDtype, seed, 0L, 1, 0, null,
                KvCacheConfig.MAX_POOL_ELEMENTS, latent ? LATENT : 0);
        attention = new JvmDecodeAttention(workload.cache(), workload.spec());
        out = workload.poisonedOutput();
        Bench.checkedDecode(attention, workload, out, seed);
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
