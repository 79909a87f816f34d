package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.DecodeProblem.Shape;
import dev.pagedattn.cache.KvDtype;
import java.util.List;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * Attention sinks ({@link AttentionSinks}) on the JVM backends: decode against the fp64 reference with the same sinks on
 * random shapes long enough to be cut into split-K chunks (the merge and the unsplit path both add them), with and
 * without a window; prefill of one token per sequence against decode; a layer without sinks in a model whose other
 * layers have them is the plain decode, bit for bit; bad sinks are named errors (jqwik prints its seed on failure).
 */
class SinkProperties extends DecodeShapeArbitraries {

    @Property(tries = 60)
    void decodeMatchesTheReferenceWithSinks(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 1400) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll("groupSizes") int groupSize,
            @ForAll("headDims") int headDim,
            @ForAll("blockSizes") int blockSize,
            @ForAll KvDtype dtype,
            @ForAll("windowsOrNone") int window,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        Shape shape = Shape.of(lens, numKvHeads * groupSize, numKvHeads, headDim, blockSize, dtype);
        DecodeProblem p = DecodeProblem.random(shape, seed).windowed(window)
                .withSinks(DecodeWorkload.randomSinks(1, shape.numQHeads(), 1, seed));
        Accuracy.assertClose(p.decodeJvm(), p.reference(), p.describe());
    }

    @Property(tries = 30)
    void prefillOfOneTokenPerSequenceAgreesWithDecode(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 700) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll("windowsOrNone") int window,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeProblem p = DecodeProblem.random(Shape.of(lens, 8, 2, 64, blockSize, KvDtype.FP16), seed).windowed(window)
                .withSinks(DecodeWorkload.randomSinks(1, 8, 1, seed));
        assertOneTokenPrefillIsDecode(p, window);
    }

    @Property(tries = 20)
    void aLayerWithoutSinksIsThePlainDecode(
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 900) Integer> lengths,
            @ForAll("blockSizes") int blockSize,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        // gpt-oss-like: two layers, sinks in layer 0 only; the decode reads layer 1
        DecodeProblem p = DecodeProblem.random(Shape.of(lens, 4, 2, 32, blockSize, KvDtype.FP16).withLayers(2, 1), seed);
        AttentionSinks layer0 = DecodeWorkload.randomSinks(2, 4, 2, seed);
        assertTrue(layer0.has(0) && !layer0.has(1), layer0.toString());
        assertArrayEquals(p.decodeJvm().toHeapArray(), p.withSinks(layer0).decodeJvm().toHeapArray(), p.describe());
    }

    @Example
    void badSinksAreRefusedByName() {
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class,
                () -> AttentionSinks.of(new float[][] {{0f, Float.NaN}}));
        assertEquals("sinks[0][1]=NaN must be finite", nan.getMessage());
        IllegalArgumentException inf = assertThrows(IllegalArgumentException.class,
                () -> AttentionSinks.of(new float[][] {null, {Float.NEGATIVE_INFINITY}}));
        assertEquals("sinks[1][0]=-Infinity must be finite", inf.getMessage());
        AttentionSpec spec = new AttentionSpec(4, 2, 32, 0.2f);
        IllegalArgumentException heads = assertThrows(IllegalArgumentException.class,
                () -> spec.withSinks(AttentionSinks.of(new float[][] {{1f, 2f, 3f}})));
        assertEquals("sinks[0].length=3 does not match numQHeads=4", heads.getMessage());
        DecodeProblem p = DecodeProblem.random(Shape.of(new int[] {40, 7}, 4, 2, 32, 16, KvDtype.FP16), 11);
        AttentionSpec twoLayers = p.spec().withSinks(DecodeWorkload.randomSinks(2, 4, 1, 11));
        IllegalArgumentException layers = assertThrows(IllegalArgumentException.class,
                () -> new JvmDecodeAttention(p.cache(), twoLayers));
        assertEquals("sinks layers=2 does not match the cache's numLayers=1", layers.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AttentionSinks.of(null));
        // the caller's array is copied: changing it later changes nothing
        float[][] rows = {{1f, 2f, 3f, 4f}};
        AttentionSinks sinks = AttentionSinks.of(rows);
        rows[0][2] = 99f;
        assertEquals(3f, sinks.sink(0, 2));
    }
}
