package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Sliding-window block release on the JVM backends: a windowed decode or prefill gives the same bits after
 * {@code KvCache.releaseOutsideWindow} / {@code releaseBefore} as before, though the released blocks were taken by
 * another sequence and filled with NaN; and an engine's decode loop that releases after every step computes, bit for bit,
 * what the same loop computes without releasing, while holding at most a window's blocks per sequence, in a pool too
 * small for the loop without release (jqwik prints its seed on failure).
 */
class ReleasedWindowProperties extends DecodeShapeArbitraries {

    @Property(tries = 60)
    void aWindowedDecodeIsTheSameAfterTheRelease(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 1200) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("windows") int window,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeWorkload w = DecodeWorkload.create(lens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype, seed)
                .windowed(window);
        FloatArray before = decode(w);
        DecodeWorkload released = w.releasedOutsideWindow();
        for (int i = 0; i < lens.length; i++) {
            int first = DecodeBatch.firstVisible(lens[i], window);
            assertEquals(first / blockSize * blockSize, w.cache().firstHeldPosition(w.seqs()[i]), "seq " + i + " released");
        }
        assertArrayEquals(before.toHeapArray(), decode(released).toHeapArray(),
                "lengths=" + lengths + " bs=" + blockSize + " " + dtype + " window=" + window + " seed=" + seed);
    }

    @Property(tries = 40)
    void aWindowedPrefillIsTheSameAfterTheRelease(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 300) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll("windows") int window,
            @ForAll @IntRange(min = 1, max = 1000) int qSeed,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        PrefillWorkload w = PrefillWorkload.create(lens, PrefillCase.queryLens(lens, qSeed), window, 8, 2, 32, blockSize,
                KvDtype.FP16, seed);
        double[] ref = w.reference();
        FloatArray before = prefill(w);
        PrefillWorkload released = w.releasedOutsideWindow();
        String what = "lengths=" + lengths + " bs=" + blockSize + " window=" + window + " seed=" + seed;
        assertArrayEquals(before.toHeapArray(), prefill(released).toHeapArray(), what);
        assertArrayEquals(ref, released.reference(), what + ": the fp64 reference reads only held blocks");
    }

    @Property(tries = 25)
    void anEngineLoopThatReleasesComputesWhatOneThatKeepsEverythingDoes(
            @ForAll @IntRange(min = 1, max = 3) int numSeqs,
            @ForAll("blockSizes") int blockSize,
            @ForAll @IntRange(min = 1, max = 40) int window,
            @ForAll @IntRange(min = 1, max = 60) int prompt,
            @ForAll long seed) throws OutOfBlocksException {
        int steps = 2 * window + 3 * blockSize;
        int held = (window + blockSize - 1) / blockSize + 1;      // the blocks a window can touch, a partial one at each end
        int maxLen = prompt + steps;
        KvCache keeping = new KvCache(KvCacheConfig.of(numSeqs * ((maxLen + blockSize - 1) / blockSize), blockSize, 2, 16,
                KvDtype.FP16));
        // released before each step's append, a sequence holds a window's blocks and the one the append may open
        KvCache releasing = new KvCache(KvCacheConfig.of(numSeqs * Math.max(held + 1, (prompt + blockSize - 1) / blockSize + 1),
                blockSize, 2, 16, KvDtype.FP16));
        assertTrue(releasing.config().numBlocks() < keeping.config().numBlocks(),
                "the releasing loop's pool is smaller than what the loop needs without release");
        AttentionSpec spec = AttentionSpec.of(keeping.config(), 4);
        int[] a = new int[numSeqs];
        int[] b = new int[numSeqs];
        SplittableRandom random = new SplittableRandom(seed);
        int width = keeping.config().tokenWidth();
        for (int i = 0; i < numSeqs; i++) {
            a[i] = keeping.createSequence();
            b[i] = releasing.createSequence();
            float[] k = DecodeProblem.uniform(random, prompt * width);
            float[] v = DecodeProblem.uniform(random, prompt * width);
            keeping.appendTokens(a[i], k, v);
            releasing.appendTokens(b[i], k, v);
        }
        try (JvmDecodeAttention keep = new JvmDecodeAttention(keeping, spec);
             JvmDecodeAttention release = new JvmDecodeAttention(releasing, spec)) {
            for (int step = 0; step < steps; step++) {
                for (int i = 0; i < numSeqs; i++) {
                    releasing.releaseOutsideWindow(b[i], window);  // after the last step, before this one's append
                    float[] k = DecodeProblem.uniform(random, width);
                    float[] v = DecodeProblem.uniform(random, width);
                    keeping.appendTokens(a[i], k, v);
                    releasing.appendTokens(b[i], k, v);
                }
                FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, (int) spec.queryElements(numSeqs)));
                FloatArray outKeep = new FloatArray(q.getSize());
                FloatArray outRelease = new FloatArray(q.getSize());
                outKeep.init(Float.NaN);
                outRelease.init(Float.NaN);
                keep.decode(keeping.batch(a).window(window), 0, q, outKeep);
                release.decode(releasing.batch(b).window(window), 0, q, outRelease);
                assertArrayEquals(outKeep.toHeapArray(), outRelease.toHeapArray(), "step " + step + " seed=" + seed);
                for (int i = 0; i < numSeqs; i++) {
                    int blocks = releasing.pageTable(b[i]).numBlocks() - releasing.pageTable(b[i]).numReleased();
                    assertTrue(blocks <= held + 1, "seq " + i + " holds " + blocks + " blocks at step " + step);
                }
            }
        }
    }

    private static FloatArray decode(DecodeWorkload w) {
        FloatArray out = w.poisonedOutput();
        try (JvmDecodeAttention attention = new JvmDecodeAttention(w.cache(), w.spec())) {
            attention.decode(w.batch(), 0, w.q(), out);
        }
        return out;
    }

    private static FloatArray prefill(PrefillWorkload w) {
        FloatArray out = w.poisonedOutput();
        try (JvmPrefillAttention attention = new JvmPrefillAttention(w.kv().cache(), w.spec())) {
            attention.prefill(w.batch(), 0, w.q(), out);
        }
        return out;
    }

    /** Windows of one token, inside a block, around block sizes, and longer than most contexts. */
    @Provide
    Arbitrary<Integer> windows() {
        return Arbitraries.oneOf(Arbitraries.of(1, 2, 15, 16, 17, 31, 32, 33), Arbitraries.integers().between(1, 1300));
    }
}
