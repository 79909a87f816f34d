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
        assertEquals(KvDtype.BF16, KvDtype.parse("bf16"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvDtype.parse("int4"));
        assertTrue(e.getMessage().contains("dtype=int4"), e.getMessage());
    }

    @Test
    void splitsALayerOver2To31ElementsByKvHeadAndRejectsOneHeadOverIt() {
        // (2^19 - 1) blocks * 16 slots * 8 heads * 128 dims, just under 2^33 elements: four arrays of two heads
        KvCacheConfig big = KvCacheConfig.of((1 << 19) - 1, 16, 8, 128, KvDtype.FP16);
        assertEquals(4, big.poolShards());
        assertEquals((1L << 33) - 8 * 16 * 128, big.layerPoolElements());
        assertEquals((1 << 31) - 2 * 16 * 128, big.shardElements());
        // one more block and two heads are 2^31 elements, one more than an int-indexed array holds: a head per array
        assertEquals(8, KvCacheConfig.of(1 << 19, 16, 8, 128, KvDtype.FP16).poolShards());
        // 2^20 blocks: 2^31 elements per KV head, over one array even with a head per array
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.of(1 << 20, 16, 8, 128, KvDtype.FP16));
        assertTrue(e.getMessage().contains("numBlocks=1048576"), e.getMessage());
        assertTrue(e.getMessage().contains("17179869184 elements"), e.getMessage());
        assertTrue(e.getMessage().contains("at most numBlocks=" + KvCacheConfig.MAX_POOL_ELEMENTS / (16 * 128)), e.getMessage());
        // three int dimensions whose product overflows a long are refused, not wrapped
        assertThrows(IllegalArgumentException.class, () -> KvCacheConfig.of(2, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE,
                KvDtype.FP16));
    }

    @Test
    void poolSizeLimitAppliesToEachLayerNotToTheWholeCache() {
        // the largest int-indexed array less TornadoVM's header: accepted (nothing is allocated here)
        KvCacheConfig largest = new KvCacheConfig(KvCacheConfig.MAX_POOL_ELEMENTS, 1, 1, 1, KvDtype.FP16, 1);
        assertEquals(2L * KvCacheConfig.MAX_POOL_ELEMENTS, largest.layerPoolBytes());
        IllegalArgumentException one = assertThrows(IllegalArgumentException.class,
                () -> new KvCacheConfig(KvCacheConfig.MAX_POOL_ELEMENTS + 1, 1, 1, 1, KvDtype.FP16, 1));
        assertTrue(one.getMessage().contains("numBlocks=" + (KvCacheConfig.MAX_POOL_ELEMENTS + 1)), one.getMessage());
        // 32 layers of a pool that holds 2^30 elements each: 2^35 per pool kind in all, accepted
        KvCacheConfig llama = new KvCacheConfig(1 << 16, 16, 8, 128, KvDtype.FP16, 32);
        assertEquals(1 << 30, llama.layerPoolElements());
        assertEquals(2L * 32 * (1L << 31), llama.totalBytes());
        assertEquals(2L * 32 * 8 * 128 * 2, llama.bytesPerToken(), "128 KiB of K/V per token for Llama-3-8B");
    }

    @Test
    void forMemoryFitsAsManyBlocksAsTheBudgetHolds() {
        // Llama-3-8B: 32 layers x 8 KV heads x 128 dims, fp16: 128 KiB per token, 2 MiB per block of 16
        KvCacheConfig c = KvCacheConfig.forMemory(60_000_000_000L, 16, 8, 128, 32, KvDtype.FP16);
        assertEquals(60_000_000_000L / (2L * 1024 * 1024), c.numBlocks());
        assertTrue(c.totalBytes() <= 60_000_000_000L && c.totalBytes() + 2L * 1024 * 1024 > 60_000_000_000L, "" + c.totalBytes());
        assertEquals(32, c.numLayers());
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.forMemory(1000, 16, 8, 128, 32, KvDtype.FP16));
        assertTrue(none.getMessage().contains("bytes=1000") && none.getMessage().contains("2097152"), none.getMessage());
        // one layer of 64 GB: split into eight arrays, one per KV head, each under 2^31 elements
        KvCacheConfig one = KvCacheConfig.forMemory(64_000_000_000L, 16, 8, 128, 1, KvDtype.FP16);
        assertEquals(8, one.poolShards());
        assertTrue(one.shardElements() <= KvCacheConfig.MAX_POOL_ELEMENTS);
        // one layer cannot take 100 GB: even one array per KV head would pass 2^31 elements
        IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.forMemory(100_000_000_000L, 16, 8, 128, 1, KvDtype.FP16));
        assertTrue(big.getMessage().contains("bytes=100000000000") && big.getMessage().contains("at most"), big.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KvCacheConfig.forMemory(-1, 16, 8, 128, 1, KvDtype.FP16));
    }

    @Test
    void derivedSizesFollowTheShape() {
        KvCacheConfig c = new KvCacheConfig(10, 16, 4, 64, KvDtype.FP16, 3);
        assertEquals(4 * 64, c.tokenWidth());
        assertEquals(10L * 4 * 16 * 64 * 2, c.layerPoolBytes(), "one layer's K (or V) pool");
        assertEquals(2L * 3 * 10 * 4 * 16 * 64 * 2, c.totalBytes(), "K and V of three layers");
        assertEquals(160, c.numTokenSlots());
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
