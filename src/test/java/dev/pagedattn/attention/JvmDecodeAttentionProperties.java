package dev.pagedattn.attention;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvDtype;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/** The JVM backend against the fp64 reference on random shapes (jqwik also prints its own seed on failure). */
class JvmDecodeAttentionProperties {

    @Property(tries = 200)
    void matchesReferenceOnRandomShapes(
            @ForAll @Size(min = 1, max = 5) List<@IntRange(min = 1, max = 120) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 3) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll @IntRange(min = 1, max = 3) int numLayers,
            @ForAll @IntRange(min = 0, max = 2) int layerPick,
            @ForAll("scales") float scale,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        Shape shape = new Shape(lens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype,
                numLayers, layerPick % numLayers, scale);
        DecodeProblem p = DecodeProblem.random(shape, seed);
        Accuracy.assertClose(p.decodeJvm(), p.reference(), p.describe());
    }

    @Provide
    Arbitrary<Integer> groupSizes() {
        return Arbitraries.of(1, 2, 3, 4, 6, 8, 12); // 6 and 12: four heads at a time, then the rest one by one
    }

    @Provide
    Arbitrary<Integer> headDims() {
        return Arbitraries.integers().between(1, AttentionSpec.MAX_HEAD_DIM / 8).map(n -> 8 * n);
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return Arbitraries.of(1, 2, 3, 7, 8, 16, 17, 32);
    }

    /** NaN stands for the default {@code 1/sqrt(headDim)}. */
    @Provide
    Arbitrary<Float> scales() {
        return Arbitraries.oneOf(Arbitraries.just(Float.NaN), Arbitraries.floats().between(0.01f, 2f));
    }
}
