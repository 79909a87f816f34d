package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Block-sparse decode ({@link DecodeBatch#selectBlocks}, Quest's page selection) on the JVM backend: against the fp64
 * reference over the selected positions, and bit for bit against a sequence that holds only the selected tokens.
 */
public class SelectedBlocksTest {

    /** Each sequence's held blocks, each kept with probability one half, its last always (the newest tokens). */
    public static int[][] randomSelection(DecodeBatch batch, SplittableRandom random) {
        int[][] blocks = new int[batch.numSeqs()][];
        for (int i = 0; i < blocks.length; i++) {
            int last = (batch.contextLen(i) + batch.blockSize() - 1) / batch.blockSize() - 1;
            blocks[i] = IntStream.rangeClosed(0, last).filter(j -> j == last || random.nextBoolean()).toArray();
        }
        return blocks;
    }

    @Property(tries = 60)
    void selectedBlocksMatchTheReference(
            @ForAll @Size(min = 1, max = 4) java.util.List<@IntRange(min = 1, max = 150) Integer> lengths,
            @ForAll @IntRange(min = 1, max = 2) int numKvHeads,
            @ForAll @IntRange(min = 1, max = 6) int groupSize,
            @ForAll @IntRange(min = 1, max = 8) int headEighths,
            @ForAll @IntRange(min = 1, max = 20) int blockSize,
            @ForAll KvDtype dtype,
            @ForAll boolean sinksAndCap,
            @ForAll long seed) {
        int[] lens = lengths.stream().mapToInt(Integer::intValue).toArray();
        DecodeWorkload w = DecodeWorkload.create(lens, numKvHeads * groupSize, numKvHeads, 8 * headEighths, blockSize, dtype, seed,
                0, 1, 0, TestScales.perHead(dtype, numKvHeads, seed));
        if (sinksAndCap) {
            w = w.withSinks(DecodeWorkload.randomSinks(1, numKvHeads * groupSize, 1, seed)).withSoftCap(3f);
        }
        DecodeWorkload s = w.selectedBlocks(randomSelection(w.batch(), new SplittableRandom(seed)));
        FloatArray out = s.poisonedOutput();
        try (JvmDecodeAttention a = new JvmDecodeAttention(s.cache(), s.spec())) {
            a.decode(s.batch(), 0, s.q(), out);
        }
        Accuracy.assertClose(out, s.reference(), "selected blocks " + lengths + " block=" + blockSize + " " + dtype + " seed=" + seed);
    }

    /** The same bits as a sequence written with only the selected tokens (the backend reads only tables and lengths). */
    @Test
    void aSelectionDecodesAsTheSequenceOfItsTokens() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("SelectedBlocksTest.aSelectionDecodesAsTheSequenceOfItsTokens");
        int[] lens = {700, 129, 64};
        DecodeWorkload w = DecodeWorkload.create(lens, 8, 2, 64, 16, KvDtype.FP16, seed, 0, 1, 200);
        int[][] blocks = randomSelection(w.batch(), new SplittableRandom(seed));
        DecodeWorkload s = w.selectedBlocks(blocks);
        KvCache cache = w.cache();
        int width = cache.config().tokenWidth();
        int[] copies = new int[lens.length];
        for (int i = 0; i < lens.length; i++) {
            int seq = w.seqs()[i];
            int bs = 16;
            int len = lens[i];
            int[] positions = Arrays.stream(blocks[i]).flatMap(j -> IntStream.range(j * bs, Math.min(len, (j + 1) * bs))).toArray();
            copies[i] = cache.createSequence();
            cache.append(copies[i], positions.length);
            float[] k = new float[positions.length * width];
            float[] v = new float[positions.length * width];
            for (int t = 0; t < positions.length; t++) {
                for (int h = 0; h < 2; h++) {
                    for (int d = 0; d < 64; d++) {
                        k[t * width + h * 64 + d] = cache.readK(seq, 0, positions[t], h, d);
                        v[t * width + h * 64 + d] = cache.readV(seq, 0, positions[t], h, d);
                    }
                }
            }
            cache.writeTokens(copies[i], 0, 0, positions.length, k, v);
        }
        FloatArray sparse = s.poisonedOutput();
        FloatArray dense = s.poisonedOutput();
        try (JvmDecodeAttention a = new JvmDecodeAttention(cache, s.spec())) {
            a.decode(s.batch(), 0, s.q(), sparse);
            a.decode(cache.batch(copies), 0, s.q(), dense);
        }
        Accuracy.assertClose(sparse, s.reference(), "selected blocks seed=" + seed);
        for (int i = 0; i < sparse.getSize(); i++) {
            if (Float.floatToRawIntBits(sparse.get(i)) != Float.floatToRawIntBits(dense.get(i))) {
                throw new AssertionError("element " + i + ": selected " + sparse.get(i) + ", copied tokens " + dense.get(i) + " seed=" + seed);
            }
        }
    }

    @Test
    void alibiAndPrefillAreRefusedOnASelection() {
        long seed = TestSeeds.fresh("SelectedBlocksTest.alibiAndPrefillAreRefusedOnASelection");
        DecodeWorkload w = DecodeWorkload.create(new int[] {40, 9}, 4, 1, 16, 8, KvDtype.FP32, seed);
        DecodeBatch selected = w.batch().selectBlocks(new int[] {0, 4}, new int[] {1});
        AttentionSpec alibi = w.spec().withAlibi(AlibiSlopes.standard(4));
        try (JvmDecodeAttention a = new JvmDecodeAttention(w.cache(), alibi)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> a.decode(selected, 0, w.q(), w.poisonedOutput()));
            assertTrue(e.getMessage().startsWith("batch of selected blocks (selectBlocks) and spec has ALiBi"), e.getMessage());
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> PrefillBatch.of(selected, new int[] {1, 1}, PrefillBatch.NO_WINDOW))
                .getMessage().startsWith("kv of selected blocks"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> PrefillBatch.nonCausal(selected, new int[] {1, 1}))
                .getMessage().startsWith("kv of selected blocks"));
    }
}
