package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Decode with a sliding window on the JVM backend: against the fp64 reference over each sequence's last {@code window}
 * tokens, on random shapes whose contexts are long enough to be cut into split-K chunks (so a chunk may start at the
 * window's first token inside a block); against the prefill path's one-token queries with the same window; and a window
 * no shorter than every context is the unwindowed decode, bit for bit; the same for chunked local attention
 * ({@code AttentionWindow.chunked}: each query over its own chunk) (jqwik prints its seed on failure).
 */
class WindowedDecodeProperties extends DecodeShapeArbitraries {

    @Property(tries = 120)
    void matchesReferenceOverTheWindow(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 1400) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("windows") int window,
            @ForAll boolean chunks,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        Shape shape = Shape.of(lens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype);
        // a sliding window of W, or chunks of W (Llama 4): each query over its own chunk
        DecodeProblem p = DecodeProblem.random(shape, seed).windowed(chunks ? AttentionWindow.chunked(window) : window);
        Accuracy.assertClose(p.decodeJvm(), p.reference(), p.describe());
    }

    @Property(tries = 30)
    void agreesWithPrefillOfOneTokenPerSequence(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 700) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll("windows") int window,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeProblem p = DecodeProblem.random(Shape.of(lens, 8, 2, 64, blockSize, KvDtype.FP16), seed);
        DecodeProblem w = p.windowed(window);
        FloatArray out = w.poisonedOutput();
        int[] ones = new int[lens.length];
        java.util.Arrays.fill(ones, 1);
        try (PrefillAttention prefill = new JvmPrefillAttention(p.cache(), p.spec())) {
            prefill.prefill(dev.pagedattn.attention.PrefillBatch.of(p.batch(), ones, window), 0, p.q(), out);
        }
        Accuracy.assertClose(w.decodeJvm(), toDoubles(out), w.describe() + " against prefill");
    }

    @Property(tries = 20)
    void chunksAgreeWithPrefillOfOneTokenPerSequence(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 700) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll("windows") int chunk,
            @ForAll long seed) {
        agreesWithPrefillOfOneTokenPerSequence(lengths, blockSize, AttentionWindow.chunked(chunk), seed);
    }

    @Property(tries = 30)
    void aWindowAsLongAsEveryContextIsNoWindow(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 900) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll @IntRange(min = 0, max = 50) int slack,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeProblem p = DecodeProblem.random(Shape.of(lens, 4, 1, 32, blockSize, KvDtype.FP32), seed);
        int longest = java.util.Arrays.stream(lens).max().orElseThrow();
        assertArrayEquals(p.decodeJvm().toHeapArray(), p.windowed(longest + slack).decodeJvm().toHeapArray(), p.describe());
    }

    @Example
    void aBadWindowIsRefusedAndChangesNothing() {
        DecodeProblem p = DecodeProblem.random(Shape.of(new int[] {40, 7}, 4, 2, 32, 16, KvDtype.FP16), 11);
        for (int bad : new int[] {0, Integer.MIN_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> p.batch().window(bad));
            assertTrue(e.getMessage().startsWith("window=" + bad + " "), e.getMessage());
        }
        // a negative window is chunks: the queries at positions 39 and 6 see their own chunks of 3 (39 and 6 start them)
        DecodeBatch c = p.batch().window(AttentionWindow.chunked(3));
        assertEquals(-3, c.window());
        assertEquals(39, c.firstVisible(0));
        assertEquals(6, c.firstVisible(1));
        assertEquals(2, c.visibleTokens());
        assertEquals(36, p.batch().window(AttentionWindow.chunked(4)).firstVisible(0));
        assertThrows(IllegalArgumentException.class, () -> AttentionWindow.chunked(0));
        assertFalse(p.batch().windowed());
        assertEquals(DecodeBatch.NO_WINDOW, p.batch().window());
        DecodeBatch w = p.batch().window(10);
        assertEquals(10, w.window());
        assertEquals(30, w.firstVisible(0));
        assertEquals(0, w.firstVisible(1));
        assertEquals(17, w.visibleTokens());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PrefillBatch.of(w, new int[] {1, 1}, PrefillBatch.NO_WINDOW));
        assertTrue(e.getMessage().startsWith("kv window=10"), e.getMessage());
    }

    static double[] toDoubles(FloatArray a) {
        double[] d = new double[a.getSize()];
        for (int i = 0; i < d.length; i++) {
            d[i] = a.get(i);
        }
        return d;
    }

    /** Windows of one token, inside a block, around block sizes, and longer than most contexts. */
    @Provide
    Arbitrary<Integer> windows() {
        return Arbitraries.oneOf(Arbitraries.of(1, 2, 15, 16, 17, 31, 32, 33), Arbitraries.integers().between(1, 1500));
    }
}
