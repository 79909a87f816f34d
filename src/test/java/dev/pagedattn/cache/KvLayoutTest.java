package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;

class KvLayoutTest {

    private static KvCacheConfig randomShape(Random random) {
        return new KvCacheConfig(1 + random.nextInt(6), 1 + random.nextInt(5), 1 + random.nextInt(4),
                1 + random.nextInt(6), KvDtype.FP32, 1 + random.nextInt(3));
    }

    @RepeatedTest(5)
    void offsetIsBlockHeadSlotDimRowMajorAndCoversALayersPoolOnce() {
        Random random = TestRandom.create("KvLayoutTest.offsetIsBlockHeadSlotDimRowMajorAndCoversALayersPoolOnce");
        KvCacheConfig c = randomShape(random);
        KvLayout layout = new KvLayout(c);
        assertEquals((long) c.numBlocks() * c.numKvHeads() * c.blockSize() * c.headDim(), layout.poolElements());
        assertEquals(c.layerPoolElements(), layout.poolElements());
        boolean[] hit = new boolean[layout.poolElements()];
        for (int b = 0; b < c.numBlocks(); b++) {
            for (int h = 0; h < c.numKvHeads(); h++) {
                for (int s = 0; s < c.blockSize(); s++) {
                    for (int d = 0; d < c.headDim(); d++) {
                        int expected = ((b * c.numKvHeads() + h) * c.blockSize() + s) * c.headDim() + d;
                        int got = layout.offset(b, h, s, d);
                        assertEquals(expected, got, c + " (b,h,s,d)=" + b + "," + h + "," + s + "," + d);
                        assertEquals(got, KvLayout.offset(0, layout.blockStride(), layout.headStride(), c.headDim(), b, h, s, d));
                        assertFalse(hit[got], "offset " + got + " used twice");
                        hit[got] = true;
                    }
                }
                assertEquals(layout.offset(b, h, 0, 0), layout.slotOffset(b * c.blockSize()) + h * layout.headStride());
            }
        }
    }

    @RepeatedTest(5)
    void aShardedLayerCoversEveryShardsArrayOnceWithItsOwnHeads() {
        Random random = TestRandom.create("KvLayoutTest.aShardedLayerCoversEveryShardsArrayOnceWithItsOwnHeads");
        KvCacheConfig whole = randomShape(random);
        int headsPerArray = 1 + random.nextInt(whole.numKvHeads());
        KvCacheConfig c = new KvCacheConfig(whole.numBlocks(), whole.blockSize(), whole.numKvHeads(), whole.headDim(), KvDtype.FP32,
                whole.numLayers(), whole.numBlocks() * whole.blockSize() * headsPerArray * whole.headDim());
        KvLayout layout = new KvLayout(c);
        int per = c.headsPerShard();
        assertTrue(per <= headsPerArray && c.numKvHeads() % per == 0, c + " heads per shard " + per);
        assertEquals(c.shardElements(), layout.poolElements());
        boolean[][] hit = new boolean[c.poolShards()][layout.poolElements()];
        for (int b = 0; b < c.numBlocks(); b++) {
            for (int h = 0; h < c.numKvHeads(); h++) {
                assertEquals(h / per, layout.shardOf(h));
                for (int s = 0; s < c.blockSize(); s++) {
                    for (int d = 0; d < c.headDim(); d++) {
                        int got = layout.offset(b, h, s, d);
                        assertEquals(((b * per + h % per) * c.blockSize() + s) * c.headDim() + d, got);
                        assertEquals(h % per, layout.kvHeadOf(got), "the head within its shard");
                        assertFalse(hit[h / per][got], "offset " + got + " of shard " + h / per + " used twice");
                        hit[h / per][got] = true;
                    }
                }
                assertEquals(layout.offset(b, h, 0, 0), layout.slotOffset(b * c.blockSize()) + h % per * layout.headStride());
            }
        }
        for (boolean[] shard : hit) {
            for (boolean h : shard) {
                assertTrue(h, "every element of every shard's array is addressed");
            }
        }
    }

    @Test
    void stridesMatchTheDrawing() {
        KvCacheConfig c = new KvCacheConfig(7, 16, 4, 128, KvDtype.FP16, 3);
        KvLayout layout = new KvLayout(c);
        assertEquals(16 * 128, layout.headStride());
        assertEquals(4 * 16 * 128, layout.blockStride());
        assertEquals(7 * 4 * 16 * 128, layout.poolElements(), "one layer's pool; every layer has its own");
    }

    @RepeatedTest(3)
    void tileOfOneBlockAndHeadIsOneContiguousRun() {
        Random random = TestRandom.create("KvLayoutTest.tileOfOneBlockAndHeadIsOneContiguousRun");
        KvCacheConfig c = randomShape(random);
        KvLayout layout = new KvLayout(c);
        for (int b = 0; b < c.numBlocks(); b++) {
            for (int h = 0; h < c.numKvHeads(); h++) {
                int base = layout.tileBase(b, h);
                int i = 0;
                for (int s = 0; s < c.blockSize(); s++) {
                    for (int d = 0; d < c.headDim(); d++) {
                        assertEquals(base + i++, layout.offset(b, h, s, d), "tile (" + b + "," + h + ") has a gap");
                    }
                }
                assertEquals(c.blockSize() * c.headDim(), i);
                assertEquals(layout.headStride(), i);
            }
        }
    }

    @Test
    void cacheWritesLandAtLayoutOffsets() throws Exception {
        KvCacheConfig c = new KvCacheConfig(4, 3, 2, 5, KvDtype.FP32, 2);
        KvCache cache = new KvCache(c);
        RandomKv.shuffleFreeBlocks(cache, 42);
        int seq = cache.createSequence();
        cache.append(seq, 7);
        int[] table = cache.pageTable(seq).blocks();
        for (int layer = 0; layer < 2; layer++) {
            cache.writeTokens(seq, layer, 0, 7, Tokens.k(c, layer, Tokens.range(100, 7)), Tokens.v(c, layer, Tokens.range(100, 7)));
        }
        for (int layer = 0; layer < 2; layer++) {
            for (int p = 0; p < 7; p++) {
                for (int h = 0; h < 2; h++) {
                    for (int d = 0; d < 5; d++) {
                        int at = cache.layout().offset(table[p / 3], h, p % 3, d);
                        assertEquals(Tokens.k(100 + p, layer, h, d), cache.keys(layer).get(at));
                        assertEquals(Tokens.v(100 + p, layer, h, d), cache.values(layer).get(at));
                        assertEquals(Tokens.k(100 + p, layer, h, d), cache.keys(layer).floatArray().get(at), "native array content");
                    }
                }
            }
        }
    }
}
