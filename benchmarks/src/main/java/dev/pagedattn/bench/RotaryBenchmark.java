package dev.pagedattn.bench;

import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.rope.ReferenceRotary;
import dev.pagedattn.rope.RopeFrequencies;
import dev.pagedattn.rope.RotaryEmbedding;
import java.util.SplittableRandom;
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
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Rotary embeddings of {@code tokens} tokens' query and key rows (32 query and 8 KV heads of 128 dims, Llama 3.1's
 * frequencies) on one thread, each token at its own position in [0, 131072). {@code impl=library}: {@link RotaryEmbedding}
 * (fp64 angles from three tables, rounded once; Vector API). {@code impl=cache}, the baseline of the same run: vLLM's
 * way, a table of fp32 cos and sin for every position up to the model's 131072 (64 MB here), read per token, and a plain
 * loop of the same fma per element. {@code -p rows=floatArray} (library only) turns TornadoVM arrays instead of
 * {@code float[]}. Mean us per call. Setup checks both against the fp64 rotation.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
@State(Scope.Benchmark)
public class RotaryBenchmark {
    private static final int HEAD_DIM = 128;
    private static final int Q_HEADS = 32;
    private static final int KV_HEADS = 8;
    private static final int MAX_POSITIONS = 131072;

    /** Tokens per call: a decode step's batch, or a prefill chunk. */
    @Param({"1", "32", "512"})
    public int tokens;

    /** Pairs (i, i + 64) or (2i, 2i + 1). */
    @Param({"NEOX", "GPTJ"})
    public String style;

    /** The library, or a per-position fp32 table with a plain loop. */
    @Param({"library", "cache"})
    public String impl;

    /** The library's rows as a {@code float[]} or a TornadoVM {@code FloatArray} (off-heap, each head staged on the heap). */
    @Param({"array"})
    public String rows;

    private RotaryEmbedding rope;
    private float[] cosSin;     // impl=cache: [MAX_POSITIONS][cos 64 | sin 64]
    private float[] q;          // [tokens][Q_HEADS][HEAD_DIM]
    private float[] k;          // [tokens][KV_HEADS][HEAD_DIM]
    private FloatArray offHeapQ; // rows=floatArray: q and k off-heap
    private FloatArray offHeapK;
    private int[] positions;    // [tokens]

    @Setup(Level.Trial)
    public void setUp() {
        RotaryEmbedding.Style s = RotaryEmbedding.Style.valueOf(style);
        rope = new RotaryEmbedding(HEAD_DIM, RopeFrequencies.llama3(HEAD_DIM, 500000, 8, 1, 4, 8192), s);
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        q = new float[tokens * Q_HEADS * HEAD_DIM];
        k = new float[tokens * KV_HEADS * HEAD_DIM];
        for (float[] a : new float[][] {q, k}) {
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (random.nextDouble() * 2 - 1);
            }
        }
        positions = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            positions[t] = random.nextInt(MAX_POSITIONS);
        }
        if (impl.equals("cache")) {
            int half = HEAD_DIM / 2;
            cosSin = new float[MAX_POSITIONS * HEAD_DIM];
            float[] c = new float[half];
            float[] sn = new float[half];
            for (int p = 0; p < MAX_POSITIONS; p++) {
                rope.angles(p, c, sn);
                System.arraycopy(c, 0, cosSin, p * HEAD_DIM, half);
                System.arraycopy(sn, 0, cosSin, p * HEAD_DIM + half, half);
            }
        } else if (!impl.equals("library")) {
            throw new IllegalArgumentException("impl=" + impl + " is not library or cache");
        }
        if (rows.equals("floatArray")) {
            if (cosSin != null) {
                throw new IllegalArgumentException("rows=floatArray times the library only (impl=library)");
            }
            offHeapQ = FloatArray.fromArray(q);
            offHeapK = FloatArray.fromArray(k);
        } else if (!rows.equals("array")) {
            throw new IllegalArgumentException("rows=" + rows + " is not array or floatArray");
        }
        float[] rq = q.clone();
        rotate(rq, Q_HEADS);
        double rel = ReferenceAttention.relativeL2(FloatArray.fromArray(rq), ReferenceRotary.rotate(rope, q, Q_HEADS, positions));
        if (!(rel < 1e-6)) {
            throw new IllegalStateException(impl + " " + style + ": relative L2 " + rel + " against fp64");
        }
    }

    /** Both row sets turned in place: each call turns them further, which costs what a first turn costs. */
    @Benchmark
    public Object rotate() {
        if (offHeapQ != null) {
            rope.apply(offHeapQ, Q_HEADS, positions);
            rope.apply(offHeapK, KV_HEADS, positions);
            return offHeapK;
        }
        rotate(q, Q_HEADS);
        rotate(k, KV_HEADS);
        return k;
    }

    private void rotate(float[] rows, int heads) {
        if (cosSin == null) {
            rope.apply(rows, heads, positions);
            return;
        }
        int half = HEAD_DIM / 2;
        boolean neox = rope.style() == RotaryEmbedding.Style.NEOX;
        for (int t = 0; t < positions.length; t++) {
            int table = positions[t] * HEAD_DIM;
            for (int h = 0; h < heads; h++) {
                int head = (t * heads + h) * HEAD_DIM;
                for (int i = 0; i < half; i++) {
                    float c = cosSin[table + i];
                    float s = cosSin[table + half + i];
                    int xAt = head + (neox ? i : 2 * i);
                    int yAt = head + (neox ? half + i : 2 * i + 1);
                    float x = rows[xAt];
                    float y = rows[yAt];
                    rows[xAt] = Math.fma(x, c, y * -s);
                    rows[yAt] = Math.fma(y, c, x * s);
                }
            }
        }
    }
}
