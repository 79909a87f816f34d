package dev.pagedattn.attention;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Provide;

/**
 * The shape generators the decode properties share (jqwik finds a superclass's providers): query groups of 1..8, head
 * dims from 8 to 128 with a padded one (80), and block sizes around the 16-token tile (1, 3, 7, 16, 17, 32).
 */
abstract class DecodeShapeArbitraries {

    @Provide
    Arbitrary<Integer> groupSizes() {
        return Arbitraries.of(1, 3, 4, 8);
    }

    @Provide
    Arbitrary<Integer> headDims() {
        return Arbitraries.of(8, 64, 80, 128);
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return Arbitraries.of(1, 3, 7, 16, 17, 32);
    }
}
