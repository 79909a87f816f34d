package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class KvCacheConfigTest {

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 7, 16, 17, 100})
    void acceptsAnyBlockSizeFromOne(int blockSize) {
        KvCacheConfig c = KvCacheConfig.of(10, blockSize, 2, 4, KvDtype.FP32);
        assertEquals(blockSize, c.blockSize());
        assertEquals(0, c.blocksFor(0));
        assertEquals(1, c.blocksFor(1));
        assertEquals(1, c.blocksFor(blockSize));
        assertEquals(2, c.blocksFor(blockSize + 1));
        assertEquals(10, c.blocksFor(10 * blockSize));
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource({
            "numBlocks, 0", "numBlocks, -1",
            "blockSize, 0", "blockSize, -16",
            "numKvHeads, 0", "numKvHeads, -2",
            "headDim, 0", "headDim, -128",
            "numLayers, 0", "numLayers, -1",
    })
    void rejectsNonPositiveShapeNamingTheValue(String name, int value) {
        int numBlocks = name.equals("numBlocks") ? value : 8;
        int blockSize = name.equals("blockSize") ? value : 16;
        int numKvHeads = name.equals("numKvHeads") ? value : 2;
        int headDim = name.equals("headDim") ? value : 64;
        int numLayers = name.equals("numLayers") ? value : 1;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new KvCacheConfig(numBlocks, blockSize, numKvHeads, headDim, KvDtype.FP16, numLayers));
        assertTrue(e.getMessage().contains(name + "=" + value), e.getMessage());
    }

    @Test
    void rejectsMissingDtype() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.of(8, 16, 2, 64, null));
        assertTrue(e.getMessage().contains("dtype=null"), e.getMessage());
    }

    @Test
    void parsesDtypeInAnyCaseAndNamesAnUnknownOne() {
        assertEquals(KvDtype.FP16, KvDtype.parse("fp16"));
        assertEquals(KvDtype.FP32, KvDtype.parse("FP32"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvDtype.parse("bf16"));
        assertTrue(e.getMessage().contains("dtype=bf16"), e.getMessage());
    }

    @Test
    void rejectsPoolOfMoreThan2To31Elements() {
        // 2^20 blocks * 16 slots * 8 heads * 128 dims = 2^34 elements
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.of(1 << 20, 16, 8, 128, KvDtype.FP16));
        assertTrue(e.getMessage().contains("numBlocks=1048576"), e.getMessage());
        assertTrue(e.getMessage().contains("elements=17179869184"), e.getMessage());
    }

    @Test
    void poolSizeLimitIsExactlyIntMaxElementsAcrossLayers() {
        // 2^31 - 1 elements is the largest int-indexed array: accepted (nothing is allocated here)
        KvCacheConfig largest = new KvCacheConfig(Integer.MAX_VALUE, 1, 1, 1, KvDtype.FP16, 1);
        assertEquals(2L * Integer.MAX_VALUE, largest.poolBytes());
        // 2^31 elements, one past the limit
        IllegalArgumentException one = assertThrows(IllegalArgumentException.class,
                () -> new KvCacheConfig(1 << 30, 1, 1, 2, KvDtype.FP32, 1));
        assertTrue(one.getMessage().contains("numBlocks=1073741824"), one.getMessage());
        // within the limit for one layer, beyond it for two
        new KvCacheConfig(1 << 29, 1, 1, 2, KvDtype.FP32, 1);
        IllegalArgumentException layers = assertThrows(IllegalArgumentException.class,
                () -> new KvCacheConfig(1 << 29, 1, 1, 2, KvDtype.FP32, 2));
        assertTrue(layers.getMessage().contains("numBlocks=536870912"), layers.getMessage());
        assertTrue(layers.getMessage().contains("elements=2147483648"), layers.getMessage());
    }

    @Test
    void derivedSizesFollowTheShape() {
        KvCacheConfig c = new KvCacheConfig(10, 16, 4, 64, KvDtype.FP16, 3);
        assertEquals(4 * 64, c.tokenWidth());
        assertEquals(3L * 10 * 4 * 16 * 64 * 2, c.poolBytes());
        assertEquals(1, KvCacheConfig.of(10, 16, 4, 64, KvDtype.FP32).numLayers());
        assertEquals(4, KvDtype.FP32.bytes());
        assertEquals(2, KvDtype.FP16.bytes());
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 16, 1000})
    void blocksForDoesNotOverflowNearIntMax(int blockSize) {
        KvCacheConfig c = KvCacheConfig.of(1, blockSize, 1, 1, KvDtype.FP32);
        assertEquals((int) (((long) Integer.MAX_VALUE + blockSize - 1) / blockSize), c.blocksFor(Integer.MAX_VALUE));
        assertEquals((int) (((long) Integer.MAX_VALUE - 1 + blockSize - 1) / blockSize), c.blocksFor(Integer.MAX_VALUE - 1));
    }
}
