package dev.pagedattn.bench;

import dev.pagedattn.cache.CsrPageTable;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.RandomKv;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PageTable;
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

/**
 * Read-only cache calls, in a steady state: a page-table snapshot, one element found through the
 * page table, and the batch exports a decode step makes (padded block tables, FlashInfer CSR)
 * for {@code lookupBatch} sequences of {@code lookupContext} tokens on shuffled blocks.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Thread)
public class CacheLookupBenchmark {
    private static final int NUM_POSITIONS = 1024; // a power of two

    @Param({"32"})
    public int lookupBatch;

    @Param({"1024"})
    public int lookupContext;

    private KvCache cache;
    private int[] seqs;       // [lookupBatch]
    private int[] positions;  // [NUM_POSITIONS] random (row, position) pairs, packed
    private int next;

    @Setup(Level.Trial)
    public void setUp() throws OutOfBlocksException {
        Bench.requireCheckedOff();
        int blocksPerSeq = (lookupContext + Bench.BLOCK_SIZE - 1) / Bench.BLOCK_SIZE;
        cache = new KvCache(Bench.bookkeepingConfig(lookupBatch * blocksPerSeq));
        RandomKv.shuffleFreeBlocks(cache, 1);
        seqs = new int[lookupBatch];
        for (int i = 0; i < lookupBatch; i++) {
            seqs[i] = cache.createSequence();
            cache.append(seqs[i], lookupContext);
        }
        SplittableRandom random = new SplittableRandom(1);
        positions = new int[2 * NUM_POSITIONS];
        for (int i = 0; i < NUM_POSITIONS; i++) {
            positions[2 * i] = seqs[random.nextInt(lookupBatch)];
            positions[2 * i + 1] = random.nextInt(lookupContext);
        }
    }

    /** A copy of one sequence's page table. */
    @Benchmark
    public PageTable pageTable() {
        return cache.pageTable(seqs[0]);
    }

    /** (sequence, position) to physical block and slot to one K element: the lookup a gather does per token. */
    @Benchmark
    public float readThroughPageTable() {
        int i = next;
        next = (i + 1) & (NUM_POSITIONS - 1);
        return cache.readK(positions[2 * i], 0, positions[2 * i + 1], 0, 0);
    }

    /** The padded block tables and lengths of a decode step, validated. */
    @Benchmark
    public DecodeBatch exportBatch() {
        return cache.batch(seqs);
    }

    /** The same batch as FlashInfer's CSR page table. */
    @Benchmark
    public CsrPageTable exportCsr() {
        return cache.csr(seqs);
    }
}
