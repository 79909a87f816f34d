package dev.pagedattn.bench;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import java.util.Arrays;
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
 * One decode step of {@link JvmDecodeAttention} on a scaled-down standard workload
 * (benchmarks/README.md): head dim 128, sequences owning disjoint shuffled blocks, one query token each.
 * The primary score is decodes per second; {@code :gigabytes} is the effective bandwidth
 * (DecodeWorkload.minimumBytes per decode, GB/s), to be read against {@link StreamBenchmark}.
 *
 * <p>Cold K/V: a real decode step reads every layer's K/V once, so a layer's K/V is not in cache
 * when its turn comes. To measure that, setup builds {@code rotation} independent batches of
 * {@code batch} sequences whose K/V together exceed {@code rotationMB}, and consecutive calls
 * decode them in turn. {@code -p rotationMB=0} decodes one batch over and over (cache-warm when
 * it fits the last-level cache).
 *
 * <p>Setup checks the first batch against the fp64 reference and fails on a relative L2 error
 * above 1e-4, so a number is never reported for a wrong result.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Benchmark)
public class DecodeBenchmark {
    private static final int HEAD_DIM = 128;
    private static final double MAX_RELATIVE_L2 = 1e-4;

    /** Sequences per decode. */
    @Param({"1", "4"})
    public int batch;

    /** Tokens per sequence. */
    @Param({"1024", "4096"})
    public int context;

    /** Tokens per KV block. */
    @Param({"16"})
    public int blockSize;

    /**
     * {@code BATCHxCONTEXT}: when set (not {@code -}), the batch and context of this point, in place of
     * {@link #batch} x {@link #context}, so that a run can measure a list of cells rather than a
     * cross product; {@code run-jmh cells} measures issue 13's 1x8192, 8x8192 and 32x4096.
     */
    @Param({"-"})
    public String cell;

    /** Query heads / KV heads: {@code 32/8} is Llama-3-8B's GQA, {@code 8/8} is MHA with the same K/V bytes. */
    @Param({"32/8", "8/8"})
    public String heads;

    /** K/V element type. */
    @Param({"fp16", "fp32"})
    public String dtype;

    /** K/V MiB rotated through, so each decode reads K/V that the previous ones evicted; 0 = no rotation. */
    @Param({"256"})
    public int rotationMB;

    /**
     * Backend threads: {@code all} (the backend's default, all processors) or a number, passed as
     * {@code -Dpagedattn.jvm.threads} (read when the backend is made). {@code 1} measures one core,
     * which is also far less disturbed by other processes on a shared machine.
     */
    @Param({"all"})
    public String threads;

    private JvmDecodeAttention attention;
    private DecodeBatch[] batches; // [rotation]
    private FloatArray[] queries;  // [rotation] of [batch][numQHeads][HEAD_DIM]
    private FloatArray out;        // [batch][numQHeads][HEAD_DIM]
    private double gigabytesPerDecode;
    private int next;

    /** The value {@link JvmDecodeAttention#VECTOR} must have in this benchmark's fork. */
    protected boolean expectedVector() {
        return true;
    }

    @Setup(Level.Trial)
    public void setUp() {
        Bench.jvmBackendSetup(expectedVector(), threads);
        if (!cell.equals("-")) {
            String[] bxc = cell.split("x");
            batch = Integer.parseInt(bxc[0]);
            context = Integer.parseInt(bxc[1]);
        }
        String[] qkv = heads.split("/");
        int numQHeads = Integer.parseInt(qkv[0]);
        int numKvHeads = Integer.parseInt(qkv[1]);
        KvDtype kvDtype = KvDtype.parse(dtype);
        long kvBytesPerBatch = (long) batch * context * 2 * numKvHeads * HEAD_DIM * kvDtype.bytes();
        long rotationBytes = (long) rotationMB << 20;
        int rotation = (int) Math.max(1, (rotationBytes + kvBytesPerBatch - 1) / kvBytesPerBatch);
        long seed = System.nanoTime();

        int[] lengths = new int[rotation * batch];
        Arrays.fill(lengths, context);
        DecodeWorkload workload = DecodeWorkload.create(lengths, numQHeads, numKvHeads, HEAD_DIM, blockSize, kvDtype, seed);
        AttentionSpec spec = workload.spec();
        int[] seqs = workload.seqs();
        int queryElements = (int) spec.queryElements(batch);
        batches = new DecodeBatch[rotation];
        queries = new FloatArray[rotation];
        for (int r = 0; r < rotation; r++) {
            batches[r] = workload.cache().batch(Arrays.copyOfRange(seqs, r * batch, (r + 1) * batch));
            queries[r] = new FloatArray(queryElements);
            for (int i = 0; i < queryElements; i++) {
                queries[r].set(i, workload.q().get(r * queryElements + i));
            }
        }
        // Equal lengths: every batch moves exactly 1/rotation of the workload's minimum bytes.
        gigabytesPerDecode = workload.minimumBytes() / (double) rotation / 1e9;
        attention = new JvmDecodeAttention(workload.cache(), spec);
        out = new FloatArray(queryElements);
        out.init(Float.NaN); // unwritten elements fail the check below
        attention.decode(batches[0], 0, queries[0], out);
        double error = ReferenceAttention.relativeL2(out,
                ReferenceAttention.decode(workload.cache(), spec, 0, Arrays.copyOfRange(seqs, 0, batch), queries[0]));
        if (!(error <= MAX_RELATIVE_L2)) {
            throw new IllegalStateException("decode is wrong: relative L2 error " + error + " vs the fp64 reference (seed=" + seed + ")");
        }
        System.out.printf("decode: backend=%s vector=%b (%d-lane float vectors) threads=%d; %.2f MB per decode,"
                        + " %d batches rotated (%.0f MB K/V); check vs fp64 reference: relL2=%.1e seed=%d%n",
                attention.name(), JvmDecodeAttention.VECTOR, FloatVector.SPECIES_PREFERRED.length(),
                Integer.getInteger("pagedattn.jvm.threads", Runtime.getRuntime().availableProcessors()),
                gigabytesPerDecode * 1e3, rotation, rotation * kvBytesPerBatch / 1e6, error, seed);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        attention.close();
    }

    @Benchmark
    public FloatArray decode(Bandwidth bandwidth) {
        int i = next;
        next = i + 1 == batches.length ? 0 : i + 1;
        attention.decode(batches[i], 0, queries[i], out);
        bandwidth.gigabytes += gigabytesPerDecode;
        return out;
    }
}
