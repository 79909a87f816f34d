package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.SelectedBlocksTest;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.tornado.DecodeGrid;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Block-sparse decode ({@link DecodeBatch#selectBlocks}) through the GPU kernels, run by the emulator: every kernel that
 * takes a shape of {@link KernelVariantsTest}, fused and split, in both schedules, over a random selection of each
 * sequence's blocks (its last always), against the fp64 reference over the selected positions. The kernels read only
 * the selection's tables and lengths.
 */
class SelectedBlocksKernelsTest {
    private static final double TOLERANCE = 1e-5;

    static java.util.stream.Stream<KernelVariantsTest.Shape> shapes() {
        return KernelVariantsTest.shapes().filter(s -> s.maxLen() > s.blockSize()); // at least two blocks to choose from
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void everyKernelReadsASelection(KernelVariantsTest.Shape shape) {
        long seed = TestSeeds.fresh("SelectedBlocksKernelsTest " + shape);
        DecodeWorkload w = DecodeWorkload.create(DecodeWorkload.lengths(shape.batch(), shape.minLen(), shape.maxLen(), seed),
                shape.qHeads(), shape.kvHeads(), shape.headDim(), shape.blockSize(), shape.dtype(), seed, 0, 1, 0,
                TestScales.perHead(shape.dtype(), shape.kvHeads(), seed));
        DecodeWorkload selected = w.selectedBlocks(SelectedBlocksTest.randomSelection(w.batch(), new SplittableRandom(seed)));
        double[] ref = selected.reference();
        for (DecodeGrid grid : KernelVariantsTest.grids(selected)) {
            for (KernelEmulator.Schedule s : KernelEmulator.Schedule.values()) {
                FloatArray out = EmulatedDecode.attention(selected, grid, s);
                double rel = ReferenceAttention.relativeL2(out, ref);
                assertTrue(rel < TOLERANCE, grid + " " + s + ": relative L2 error " + rel + " seed=" + seed);
            }
        }
    }
}
