package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.TestScales;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.KvPool;
import dev.pagedattn.quant.DequantTable;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/** The 8-bit kernels' shared pieces against the cache's own exact reads, for every format. */
class PackedCodesTest {

    @ParameterizedTest
    @EnumSource(value = KvDtype.class, names = {"FP8_E4M3", "FP8_E5M2", "INT8"})
    void theArgumentHoldsTheTableAndScalesAndValueDecodesEveryElement(KvDtype dtype) {
        long seed = TestSeeds.fresh("PackedCodesTest " + dtype);
        DecodeWorkload w = DecodeWorkload.create(new int[] {37, 5}, 8, 2, 32, 16, dtype, seed, 0, 1, 0,
                TestScales.perHead(dtype, 2, seed));
        KvCache cache = w.cache();
        float kFactor = 0.125f;
        FloatArray dequant = PackedCodes.argument(cache, 0, kFactor);
        assertEquals(DequantTable.SIZE + 4, dequant.getSize());
        for (int code = 0; code < DequantTable.SIZE; code++) {
            assertEquals(dtype.format().decode(code), dequant.get(code), "code " + code);
        }
        for (int h = 0; h < 2; h++) {
            assertEquals(cache.keys(0).scale(h) * kFactor, dequant.get(DequantTable.SIZE + h), "K scale of head " + h);
            assertEquals(cache.values(0).scale(h), dequant.get(DequantTable.SIZE + 2 + h), "V scale of head " + h);
        }
        // every element the kernels read: value (unscaled) x the head's scale is the pool's exact read
        KvPool k = cache.keys(0);
        SplittableRandom random = new SplittableRandom(seed);
        for (int n = 0; n < 2000; n++) {
            int i = random.nextInt(k.size());
            int head = cache.layout().kvHeadOf(i);
            assertEquals(k.get(i), PackedCodes.value(k.wordArray(), dequant, i) * k.scale(head), "element " + i);
        }
    }
}
