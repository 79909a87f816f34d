package dev.pagedattn.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
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

/**
 * The memory-bandwidth ceiling the decode is read against: a vectorised sum over an off-heap
 * buffer, split into chunks that a fork-join pool of all cores sums in parallel (the same
 * scheduling as {@code JvmDecodeAttention}). A buffer much larger than the last-level cache
 * measures DRAM; a small one measures the caches. {@code :gigabytes} is GB/s read.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(1)
@State(Scope.Benchmark)
public class StreamBenchmark {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final long CHUNK_BYTES = 1L << 20;

    /** Buffer size in MiB. */
    @Param({"16", "1024"})
    public int megabytes;

    /** Worker threads: {@code all} (available processors, as the decode uses) or a number. */
    @Param({"all", "1"})
    public String threads;

    private Arena arena;
    private MemorySegment data; // [megabytes * 2^20 / 4] fp32
    private ForkJoinPool workers;
    private int numChunks;
    private double gigabytesPerCall;

    @Setup(Level.Trial)
    public void setUp() {
        Bench.requireCheckedOff();
        int numThreads = threads.equals("all") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(threads);
        long bytes = (long) megabytes << 20;
        arena = Arena.ofShared();
        data = arena.allocate(bytes, 64);
        for (long i = 0; i < bytes / Float.BYTES; i++) {
            data.setAtIndex(ValueLayout.JAVA_FLOAT, i, (i & 1023) * 0x1p-10f);
        }
        workers = new ForkJoinPool(numThreads);
        numChunks = (int) (bytes / CHUNK_BYTES);
        gigabytesPerCall = bytes / 1e9;
        System.out.printf("stream: %d MiB, %d threads, %d-lane float vectors%n", megabytes, numThreads, SPECIES.length());
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        workers.shutdown();
        arena.close();
    }

    @Benchmark
    public double sum(Bandwidth bandwidth) throws InterruptedException, ExecutionException {
        double s = workers.submit(() -> IntStream.range(0, numChunks).parallel().mapToDouble(this::sumChunk).sum()).get();
        bandwidth.gigabytes += gigabytesPerCall;
        return s;
    }

    /** Four independent accumulators keep enough loads in flight to saturate a core's memory port. */
    private double sumChunk(int chunk) {
        long from = chunk * CHUNK_BYTES;
        long step = SPECIES.vectorByteSize();
        FloatVector a0 = FloatVector.zero(SPECIES);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (long at = from, end = from + CHUNK_BYTES; at < end; at += 4 * step) {
            a0 = a0.add(FloatVector.fromMemorySegment(SPECIES, data, at, ByteOrder.nativeOrder()));
            a1 = a1.add(FloatVector.fromMemorySegment(SPECIES, data, at + step, ByteOrder.nativeOrder()));
            a2 = a2.add(FloatVector.fromMemorySegment(SPECIES, data, at + 2 * step, ByteOrder.nativeOrder()));
            a3 = a3.add(FloatVector.fromMemorySegment(SPECIES, data, at + 3 * step, ByteOrder.nativeOrder()));
        }
        return a0.add(a1).add(a2).add(a3).reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
    }
}
