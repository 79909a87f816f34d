package dev.pagedattn.attention;

import dev.pagedattn.cache.KvDtype;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** The JVM prefill backend against the fp64 reference on random ragged shapes and windows (jqwik prints its seed on failure). */
class JvmPrefillAttentionProperties {

    @Property(tries = 60)
    void matchesReferenceOnRandomShapes(
            @ForAll @Size(min = 1, max = 4) List<@IntRange(min = 1, max = 90) Integer> lengths,
            @ForAll @IntRange(min = 0, max = 1000) int qLenSeed,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("windows") int window,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        int[] qLens = PrefillCase.queryLens(lens, qLenSeed);
        PrefillCase c = PrefillCase.of("random", lens, qLens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype, window);
        PrefillWorkload w = c.workload(seed);
        FloatArray out = w.poisonedOutput();
        try (JvmPrefillAttention attention = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
            attention.prefill(w.batch(), 0, w.q(), out);
        }
        Accuracy.assertClose(out, w.reference(), c + " seed=" + seed + " qLens=" + Arrays.toString(qLens));
    }

    /**
     * Random token trees, bidirectional spans and custom masks over every sequence's new tokens (all dtypes, windows, group
     * sizes) against the fp64 reference; and a chain (every token's parent the one before it) gives the bits of the batch
     * without masks.
     */
    @Property(tries = 40)
    void followsTokenTrees(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 2, max = 90) Integer> lengths,
            @ForAll @IntRange(min = 0, max = 1000) int qLenSeed,
            @ForAll("groupSizes") int groupSize,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("windows") int window,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        int[] qLens = PrefillCase.queryLens(lens, qLenSeed);
        PrefillCase c = PrefillCase.of("random trees", lens, qLens, 2 * groupSize, 2, 16, blockSize, dtype, window);
        PrefillWorkload plain = c.workload(seed);
        PrefillWorkload trees = plain.withRandomTrees(seed);
        TreeMask[] chains = new TreeMask[qLens.length];
        for (int i = 0; i < chains.length; i++) {
            chains[i] = TreeMask.causal(qLens[i]);
        }
        PrefillWorkload spans = plain.withRandomSpans(seed);
        PrefillWorkload custom = plain.withRandomCustomMasks(seed);
        FloatArray out = trees.poisonedOutput();
        FloatArray spanOut = spans.poisonedOutput();
        FloatArray customOut = custom.poisonedOutput();
        FloatArray causal = plain.poisonedOutput();
        FloatArray chained = plain.poisonedOutput();
        try (JvmPrefillAttention attention = new JvmPrefillAttention(plain.kv().cache(), plain.spec())) {
            attention.prefill(trees.batch(), 0, trees.q(), out);
            attention.prefill(spans.batch(), 0, spans.q(), spanOut);
            attention.prefill(custom.batch(), 0, custom.q(), customOut);
            attention.prefill(plain.batch(), 0, plain.q(), causal);
            attention.prefill(plain.batch().withMasks(chains), 0, plain.q(), chained);
        }
        String what = c + " seed=" + seed + " qLens=" + Arrays.toString(qLens);
        Accuracy.assertClose(out, trees.reference(), what);
        Accuracy.assertClose(spanOut, spans.reference(), what + " bidirectional spans");
        Accuracy.assertClose(customOut, custom.reference(), what + " custom masks");
        for (int i = 0; i < causal.getSize(); i++) {
            if (Float.floatToRawIntBits(causal.get(i)) != Float.floatToRawIntBits(chained.get(i))) {
                throw new AssertionError(what + ": a chain's mask changed output " + i + ": " + chained.get(i) + " vs " + causal.get(i));
            }
        }
    }

    @Provide
    Arbitrary<Integer> groupSizes() {
        return Arbitraries.of(1, 3, 4, 8, 16);
    }

    @Provide
    Arbitrary<Integer> headDims() {
        return Arbitraries.of(8, 16, 40, 64, 128);
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return Arbitraries.of(1, 3, 8, 16, 17);
    }

    @Provide
    Arbitrary<Integer> windows() {
        return Arbitraries.oneOf(Arbitraries.just(PrefillBatch.NO_WINDOW), Arbitraries.integers().between(1, 40));
    }
}
