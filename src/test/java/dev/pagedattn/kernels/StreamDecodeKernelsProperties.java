package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.DecodeGrid;
import dev.pagedattn.tornado.VSums;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The stream kernels in the emulator against the fp64 reference on random ragged batches, head dims 64, 128 and 256 (fp16), any group size
 * (larger than four: several work-groups per KV head) and random grids: fused, partitions of random length, and
 * balanced grids of random size (jqwik prints its seed on failure).
 */
class StreamDecodeKernelsProperties {

    @Property(tries = 25)
    void matchesReferenceOnRandomShapesAndGrids(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 160) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll @IntRange(min = 1, max = 12) int groupSize,
            @ForAll("blockSizes") int blockSize,
            @ForAll("dtypes") KvDtype dtype,
            @ForAll("headDims") int fp16HeadDim,
            @ForAll("grids") String grid,
            @ForAll @IntRange(min = 1, max = 8) int minPartitionTiles,
            @ForAll @IntRange(min = 1, max = 40) int targetGroups,
            @ForAll KernelEmulator.Schedule schedule,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        int qHeads = numKvHeads * groupSize;
        int headDim = dtype.isQuantized() ? StreamDecodeKernels.HEAD_DIM : fp16HeadDim; // the 8-bit twins: 128 only
        DecodeWorkload w = DecodeWorkload.create(lens, qHeads, numKvHeads, headDim, blockSize, dtype, seed, 0, 1, 0,
                TestScales.perHead(dtype, numKvHeads, seed));
        DecodeGrid g = grid(w, grid, targetGroups, minPartitionTiles);
        FloatArray out = EmulatedDecode.attention(w, g, schedule);
        double rel = ReferenceAttention.relativeL2(out, w.reference());
        assertTrue(rel < 1e-5, g + " " + schedule + " " + dtype + " groupSize=" + groupSize + " headDim=" + headDim + " seed=" + seed
                + ": relative L2 " + rel);
    }

    /** {@link VSums#FP16}: the fp16 twin on random shapes and grids, at fp16's precision (a lost token or head costs > 1e-2). */
    @Property(tries = 15)
    void fp16VSumsMatchReferenceOnRandomShapesAndGrids(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 160) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll @IntRange(min = 1, max = 12) int groupSize,
            @ForAll("blockSizes") int blockSize,
            @ForAll("headDims") int headDim,
            @ForAll("grids") String grid,
            @ForAll @IntRange(min = 1, max = 8) int minPartitionTiles,
            @ForAll @IntRange(min = 1, max = 40) int targetGroups,
            @ForAll KernelEmulator.Schedule schedule,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeWorkload w = DecodeWorkload.create(lens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, KvDtype.FP16, seed);
        DecodeGrid g = grid(w, grid, targetGroups, minPartitionTiles);
        double rel = ReferenceAttention.relativeL2(EmulatedDecode.attention(w, g, schedule, false, VSums.FP16), w.reference());
        assertTrue(rel < 2e-3, g + " " + schedule + " groupSize=" + groupSize + " headDim=" + headDim + " seed=" + seed
                + ": relative L2 " + rel);
    }

    /** The stream kernel's grid of kind {@code grid} (fused, partitions of at least {@code minPartitionTiles} tiles, balanced). */
    private static DecodeGrid grid(DecodeWorkload w, String grid, int targetGroups, int minPartitionTiles) {
        int seqs = w.batch().numSeqs();
        int longest = w.batch().maxContextLen();
        int minPartition = minPartitionTiles * StreamDecodeKernels.TILE;
        KvDtype dtype = w.cache().config().dtype();
        return switch (grid) {
            case "fused" -> DecodeGrid.plan(w.spec(), seqs, longest, false, targetGroups, minPartition, DecodeGrid.Kernel.STREAM);
            case "partitions" -> DecodeGrid.plan(w.spec(), seqs, longest, true, targetGroups, minPartition, DecodeGrid.Kernel.STREAM);
            default -> DecodeGrid.balanced(w.spec(), w.batch(), targetGroups, minPartition);
        };
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return Arbitraries.of(1, 7, 16, 17, 32);
    }

    /** The fp16 kernels' head dims ({@code attentionF16x2}, {@code attentionF16x2D64}, {@code attentionF16x2D256}). */
    @Provide
    Arbitrary<Integer> headDims() {
        return Arbitraries.of(StreamDecodeKernels.HEAD_DIM, StreamDecodeKernels.HEAD_DIM_64, StreamDecodeKernels.HEAD_DIM_256);
    }

    @Provide
    Arbitrary<KvDtype> dtypes() {
        return Arbitraries.of(KvDtype.FP16, KvDtype.FP8_E4M3, KvDtype.FP8_E5M2, KvDtype.INT8);
    }

    @Provide
    Arbitrary<String> grids() {
        return Arbitraries.of("fused", "partitions", "balanced");
    }
}
