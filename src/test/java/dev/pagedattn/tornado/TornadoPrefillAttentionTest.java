package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.JvmPrefillAttention;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import org.junit.jupiter.api.Test;

/** What the TornadoVM prefill backend checks before it touches the TornadoVM runtime (none in this JVM). */
class TornadoPrefillAttentionTest {

    @Test
    void aReservationIsCheckedAndNamesItsBadValue() {
        KvCache cache = new KvCache(KvCacheConfig.of(64, 16, 2, 64, KvDtype.FP16));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 8);
        try (TornadoPrefillAttention attention = new TornadoPrefillAttention(cache, spec, null)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> attention.reserve(0, 512, 100));
            assertEquals("maxSeqs=0 must be >= 1", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> attention.reserve(4, 0, 100));
            assertEquals("maxQueryTokens=0 must be >= 1", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> attention.reserve(4, 512, 0));
            assertEquals("maxTokensPerSeq=0 must be >= 1", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> attention.reserve(4, 512, 64 * 16 + 1));
            assertEquals("maxTokensPerSeq=1025 exceeds the pool's 1024 token slots", e.getMessage());
            attention.reserve(4, 512, 1024); // the whole pool for one sequence is fine
            assertEquals(0, attention.planBuilds(), "a reservation builds nothing until a prefill");
        }
        IllegalStateException closed = assertThrows(IllegalStateException.class, () -> { // its row copier's threads are gone too
            TornadoPrefillAttention a = new TornadoPrefillAttention(cache, spec, null);
            a.close();
            a.stepRows(null, 0);
        });
        assertEquals("prefill after close(): the device plans are released; create a new backend", closed.getMessage());
        // the JVM backend holds nothing per batch, but checks the same values
        try (PrefillAttention jvm = PrefillAttention.create("jvm", cache, spec, null)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> jvm.reserve(2, -1, 10));
            assertEquals("maxQueryTokens=-1 must be >= 1", e.getMessage());
            jvm.reserve(8, 2048, 4096);
        }
    }

    /**
     * A decode backend's prefill backend is one object per open decode backend, on its cache and its record of the cache's
     * writes; closing it leaves the decode backend open, and the next {@code prefill()} is a new one. The JVM backend keeps
     * nothing of its own, so an engine's pair there is a prefill backend of its own ({@link PrefillAttention#pairedWith}).
     */
    @Test
    void aDecodeBackendsPrefillSharesItUntilEitherCloses() {
        KvCache cache = new KvCache(KvCacheConfig.of(64, 16, 2, 64, KvDtype.FP16));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 8);
        TornadoDecodeAttention decoder = new TornadoDecodeAttention(cache, spec, null, "auto");
        TornadoPrefillAttention prefill = decoder.prefill();
        assertTrue(prefill.sharesPools());
        assertSame(prefill, decoder.prefill());
        assertSame(prefill, PrefillAttention.pairedWith(decoder, "tornado", cache, spec, null));
        assertFalse(new TornadoPrefillAttention(cache, spec, null).sharesPools());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> prefill.reserve(4, 0, 100));
        assertEquals("maxQueryTokens=0 must be >= 1", e.getMessage());
        prefill.close();
        IllegalStateException closed = assertThrows(IllegalStateException.class, () -> prefill.stepRows(null, 0));
        assertEquals("prefill after close(): the device plans are released; create a new backend", closed.getMessage());
        TornadoPrefillAttention again = decoder.prefill();
        assertNotSame(prefill, again);
        assertTrue(again.sharesPools());
        decoder.close();
        closed = assertThrows(IllegalStateException.class, decoder::prefill);
        assertEquals("decode after close(): the device plans are released; create a new backend", closed.getMessage());
        try (DecodeAttention jvm = new JvmDecodeAttention(cache, spec);
             PrefillAttention pair = PrefillAttention.pairedWith(jvm, "jvm", cache, spec, null)) {
            assertNull(jvm.prefill());
            assertInstanceOf(JvmPrefillAttention.class, pair);
        }
    }

    /** A split step's merge gets one work-item per output element (up to its cap); an unsplit one a single work-group. */
    @Test
    void aSplitStepsMergeCoversItsOutputs() {
        PrefillGrid split = new PrefillGrid(1, 32, 2912, 3, 768, PrefillGrid.Kernel.TENSOR);
        PrefillGrid whole = new PrefillGrid(1, 32, 8704, 1, 2048, PrefillGrid.Kernel.TENSOR);
        assertEquals(512 * 32 * 128, TornadoPrefillAttention.mergeGlobal(split, 512 * 32 * 128), "one sequence of 512 tokens");
        assertEquals(128, TornadoPrefillAttention.mergeGlobal(split, 5), "whole work-groups");
        assertEquals(128, TornadoPrefillAttention.mergeGlobal(whole, 512 * 32 * 128), "nothing to merge");
        assertEquals(TornadoPrefillAttention.HELPER_GROUPS * 128, TornadoPrefillAttention.mergeGlobal(split, 1L << 40), "capped");
    }

    /** A plan stages what one step of its query capacity writes: whole groups of 16 slots, at most 65536 (256 MB at Llama-3-8B's heads). */
    @Test
    void aPlanStagesItsQueryCapacityInSlots() {
        assertEquals(0, TornadoPrefillAttention.STAGING_SLOTS, "the default follows the plan (no -Dpagedattn.tornado.prefillStagingSlots)");
        assertEquals(16, TornadoPrefillAttention.stagingSlots(1));
        assertEquals(16, TornadoPrefillAttention.stagingSlots(16));
        assertEquals(32, TornadoPrefillAttention.stagingSlots(17));
        assertEquals(512, TornadoPrefillAttention.stagingSlots(512));
        assertEquals(4096, TornadoPrefillAttention.stagingSlots(4096));
        assertEquals(16384, TornadoPrefillAttention.stagingSlots(16384));
        assertEquals(65536, TornadoPrefillAttention.stagingSlots(1 << 20));
    }

    /** The scatter gets a work-item per staged element (whole work-groups, capped), one work-group when nothing is staged. */
    @Test
    void theScatterCoversItsStagedElements() {
        assertEquals(128, TornadoPrefillAttention.scatterGlobal(0, 1024));
        assertEquals(512 * 1024, TornadoPrefillAttention.scatterGlobal(512, 1024));
        assertEquals(128, TornadoPrefillAttention.scatterGlobal(1, 100));
        assertEquals(256, TornadoPrefillAttention.scatterGlobal(2, 100));
        assertEquals(TornadoPrefillAttention.HELPER_GROUPS * 128, TornadoPrefillAttention.scatterGlobal(65536, 1024), "capped");
    }
}
