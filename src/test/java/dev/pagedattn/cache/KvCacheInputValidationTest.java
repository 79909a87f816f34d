package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Caller mistakes: each throws IllegalArgumentException naming the bad value, and loses nothing
 * already stored (the whole cache, K/V included, is compared before and after).
 */
class KvCacheInputValidationTest {
    // two layers, 2 heads x 3 dims, blocks of 4
    private static final KvCacheConfig C = new KvCacheConfig(8, 4, 2, 3, KvDtype.FP32, 2);
    private static final int UNKNOWN = 4242;

    private KvCache cache;
    private int seq;     // 6 tokens, sole owner
    private int shared;  // 5 tokens, forked twice from one parent: every block shared
    private CacheSnapshot before;

    @BeforeEach
    void fill() throws Exception {
        cache = new KvCache(C);
        seq = cache.createSequence();
        Tokens.append(cache, seq, Tokens.range(0, 6));
        shared = cache.createSequence();
        Tokens.append(cache, shared, Tokens.range(10, 5));
        cache.fork(shared);
        before = CacheSnapshot.of(cache);
    }

    private void assertRefused(String expectedInMessage, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(expectedInMessage), "message '" + e.getMessage() + "' lacks '" + expectedInMessage + "'");
        assertEquals(before, CacheSnapshot.of(cache), "a refused call changed the cache");
        cache.verify();
    }

    static Stream<Arguments> callsOnASequence() {
        float[] one = new float[C.tokenWidth()];
        return Stream.of(
                Arguments.of("length", (SeqCall) (c, s) -> c.length(s)),
                Arguments.of("pageTable", (SeqCall) (c, s) -> c.pageTable(s)),
                Arguments.of("blocksNeeded", (SeqCall) (c, s) -> c.blocksNeeded(s, 1)),
                Arguments.of("canAppend", (SeqCall) (c, s) -> c.canAppend(s, 1)),
                Arguments.of("append", (SeqCall) (c, s) -> c.append(s, 1)),
                Arguments.of("write", (SeqCall) (c, s) -> c.write(s, 0, 0, one, one)),
                Arguments.of("writeTokens", (SeqCall) (c, s) -> c.writeTokens(s, 0, 0, 1, one, one)),
                Arguments.of("fork", (SeqCall) (c, s) -> c.fork(s)),
                Arguments.of("free", (SeqCall) (c, s) -> c.free(s)),
                Arguments.of("readK", (SeqCall) (c, s) -> c.readK(s, 0, 0, 0, 0)),
                Arguments.of("readV", (SeqCall) (c, s) -> c.readV(s, 0, 0, 0, 0)),
                Arguments.of("batch", (SeqCall) (c, s) -> c.batch(0, s)),
                Arguments.of("batchPadded", (SeqCall) (c, s) -> c.batchPadded(4, s)),
                Arguments.of("csr", (SeqCall) (c, s) -> c.csr(s)));
    }

    interface SeqCall {
        void call(KvCache cache, int seq) throws Exception;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("callsOnASequence")
    void unknownSequenceIsNamed(String method, SeqCall call) {
        assertRefused("seq=" + UNKNOWN + " does not exist", () -> call.call(cache, UNKNOWN));
        assertRefused("seq=-1 does not exist", () -> call.call(cache, -1));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("callsOnASequence")
    void freedSequenceIsUnknown(String method, SeqCall call) throws Exception {
        int gone = cache.createSequence();
        Tokens.append(cache, gone, 1);
        cache.free(gone);
        before = CacheSnapshot.of(cache);
        assertRefused("seq=" + gone + " does not exist", () -> call.call(cache, gone));
    }

    @Test
    void negativeTokenCountsAreRefused() {
        float[] none = new float[0];
        assertRefused("numTokens=-1", () -> cache.append(seq, -1));
        assertRefused("numTokens=-3", () -> cache.blocksNeeded(seq, -3));
        assertRefused("numTokens=-1", () -> cache.canAppend(seq, -1));
        assertRefused("numTokens=-2", () -> cache.writeTokens(seq, 0, 0, -2, none, none));
    }

    @Test
    void wrongKvArrayLengthsAreRefused() {
        int w = C.tokenWidth();
        assertRefused("k.length=" + (w - 1), () -> cache.write(seq, 0, 0, new float[w - 1], new float[w]));
        assertRefused("v.length=" + (w + 1), () -> cache.write(seq, 0, 0, new float[w], new float[w + 1]));
        assertRefused("k.length=null", () -> cache.write(seq, 0, 0, null, new float[w]));
        assertRefused("v.length=null", () -> cache.write(seq, 0, 0, new float[w], null));
        assertRefused("k.length=" + w, () -> cache.writeTokens(seq, 0, 0, 2, new float[w], new float[2 * w]));
    }

    @Test
    void writesOutsideTheReservedLengthAreRefused() {
        float[] one = new float[C.tokenWidth()];
        float[] two = new float[2 * C.tokenWidth()];
        assertRefused("position=6", () -> cache.write(seq, 0, 6, one, one));
        assertRefused("reserved length=6", () -> cache.write(seq, 0, 6, one, one));
        assertRefused("position=-1", () -> cache.write(seq, 0, -1, one, one));
        assertRefused("position=5 numTokens=2", () -> cache.writeTokens(seq, 0, 5, 2, two, two));
        // a start position plus count that overflows int must not slip past the check
        assertRefused("numTokens=" + Integer.MAX_VALUE, () -> cache.writeTokens(seq, 0, 3, Integer.MAX_VALUE, one, one));
        assertRefused("position=1073741824", () -> cache.writeTokens(seq, 0, 1 << 30, (1 << 30) + 1, one, one));
    }

    @Test
    void layerOutsideTheCacheIsRefused() {
        float[] one = new float[C.tokenWidth()];
        assertRefused("layer=2", () -> cache.write(seq, 2, 0, one, one));
        assertRefused("layer=-1", () -> cache.writeTokens(seq, -1, 0, 1, one, one));
        assertRefused("layer=2", () -> cache.readK(seq, 2, 0, 0, 0));
        assertRefused("layer=-1", () -> cache.readV(seq, -1, 0, 0, 0));
    }

    @Test
    void readsOutsideTheSequenceOrShapeAreRefused() {
        assertRefused("position=6", () -> cache.readK(seq, 0, 6, 0, 0));
        assertRefused("position=-1", () -> cache.readV(seq, 0, -1, 0, 0));
        assertRefused("kvHead=2", () -> cache.readK(seq, 0, 0, 2, 0));
        assertRefused("kvHead=-1", () -> cache.readV(seq, 0, 0, -1, 0));
        assertRefused("dim=3", () -> cache.readK(seq, 0, 0, 0, 3));
        assertRefused("dim=-1", () -> cache.readV(seq, 0, 0, 0, -1));
    }

    @Test
    void appendTokensNeedsOneLayerAndWholeTokens() throws Exception {
        int w = C.tokenWidth();
        assertRefused("numLayers=2", () -> cache.appendTokens(seq, new float[w], new float[w]));
        KvCache single = new KvCache(KvCacheConfig.of(4, 4, 2, 3, KvDtype.FP32));
        int s = single.createSequence();
        Tokens.append(single, s, 1, 2);
        CacheSnapshot singleBefore = CacheSnapshot.of(single);
        for (Object[] bad : List.of(
                new Object[] {"k.length=5", new float[5], new float[5]},
                new Object[] {"k.length=null", null, new float[w]},
                new Object[] {"v.length=" + (w - 1), new float[w], new float[w - 1]},
                new Object[] {"v.length=null", new float[2 * w], null})) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> single.appendTokens(s, (float[]) bad[1], (float[]) bad[2]));
            assertTrue(e.getMessage().contains((String) bad[0]), e.getMessage());
            assertEquals(singleBefore, CacheSnapshot.of(single));
        }
    }

    @Test
    void emptyBatchIsRefused() {
        assertRefused("seqs is empty", () -> cache.batch());
        assertRefused("seqs is empty", () -> cache.batchPadded(3));
        assertRefused("seqs is empty", () -> cache.csr());
    }

    @Test
    void pageTableNamesALogicalBlockOutsideIt() {
        PageTable t = cache.pageTable(seq);
        assertRefused("logicalBlock=2", () -> t.block(2));
        assertRefused("logicalBlock=-1", () -> t.block(-1));
    }
}
