package dev.pagedattn.bench;

import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.JvmPrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.PrefillWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.KvDtype;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
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
 * One prefill call of {@link JvmPrefillAttention}: {@code batch} sequences, each bringing {@code queryLen} new
 * tokens over a cached prefix of {@code prefix} tokens (causal, no window), head dim {@code headDim}. Compute-bound: the
 * summary reads the score as GFLOP/s ({@link PrefillWorkload#flops()}: 4 per visible (query, key) pair, head
 * and dim). {@link ScalarPrefillBenchmark} measures the same points without the Vector API, in the same run.
 *
 * <p>Setup checks the output against the fp64 reference and fails on a relative L2 error above 1e-4.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
@State(Scope.Benchmark)
public class PrefillBenchmark {
    private static final double MAX_RELATIVE_L2 = 1e-4;

    /** Sequences per call. */
    @Param({"1"})
    public int batch;

    /** Cached tokens per sequence before the new ones. */
    @Param({"2048"})
    public int prefix;

    /** New query tokens per sequence. */
    @Param({"64", "256"})
    public int queryLen;

    /** Query heads / KV heads. */
    @Param({"32/8"})
    public String heads;

    /** Head dimension (Llama-3: 128; Gemma: 256; small models: 64). */
    @Param({"128"})
    public int headDim;

    /** K/V element type. */
    @Param({"fp16"})
    public String dtype;

    /**
     * Each sequence's new tokens verified as a random token tree ({@link PrefillWorkload#withRandomTrees}, speculative
     * decoding) instead of causally: what a {@code TreeMask} costs the JVM backend.
     */
    @Param({"false"})
    public boolean tree;

    /**
     * Each sequence's new tokens with random bidirectional spans ({@link PrefillWorkload#withRandomSpans}, Gemma 3's image
     * tokens) instead of causal: what such a mask costs the JVM backend. Not with {@link #tree}.
     */
    @Param({"false"})
    public boolean spans;

    /** Backend threads: {@code all} or a number ({@code -Dpagedattn.jvm.threads}). */
    @Param({"all"})
    public String threads;

    private JvmPrefillAttention attention;
    private PrefillBatch prefillBatch;
    private FloatArray q;
    private FloatArray out;

    /** The value {@link JvmDecodeAttention#VECTOR} must have in this benchmark's fork. */
    protected boolean expectedVector() {
        return true;
    }

    @Setup(Level.Trial)
    public void setUp() {
        Bench.jvmBackendSetup(expectedVector(), threads);
        String[] qkv = heads.split("/");
        int[] lengths = new int[batch];
        int[] qLens = new int[batch];
        java.util.Arrays.fill(lengths, prefix + queryLen);
        java.util.Arrays.fill(qLens, queryLen);
        long seed = System.nanoTime();
        PrefillWorkload w = PrefillWorkload.create(lengths, qLens, PrefillBatch.NO_WINDOW, Integer.parseInt(qkv[0]),
                Integer.parseInt(qkv[1]), headDim, 16, KvDtype.parse(dtype), seed);
        if (tree && spans) {
            throw new IllegalArgumentException("tree=true with spans=true: a sequence takes one mask");
        }
        w = tree ? w.withRandomTrees(seed) : spans ? w.withRandomSpans(seed) : w;
        prefillBatch = w.batch();
        q = w.q();
        attention = new JvmPrefillAttention(w.kv().cache(), w.spec());
        out = w.poisonedOutput(); // unwritten elements fail the check below
        attention.prefill(prefillBatch, 0, q, out);
        double error = ReferenceAttention.relativeL2(out, w.reference());
        if (!(error <= MAX_RELATIVE_L2)) {
            throw new IllegalStateException("prefill is wrong: relative L2 error " + error + " vs the fp64 reference (seed=" + seed + ")");
        }
        System.out.printf("prefill: backend=%s vector=%b (%d-lane float vectors) threads=%d; %.3f GFLOP per call;"
                        + " check vs fp64 reference: relL2=%.1e seed=%d%n",
                attention.name(), JvmDecodeAttention.VECTOR, FloatVector.SPECIES_PREFERRED.length(),
                Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors()), w.flops() / 1e9, error, seed);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        attention.close();
    }

    @Benchmark
    public FloatArray prefill() {
        attention.prefill(prefillBatch, 0, q, out);
        return out;
    }
}
