package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.AttentionWindow;
import dev.pagedattn.cache.BlockPool;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * A prefill as the decode of its query rows ({@link PrefillBatch#decodeRows}, {@link DecodeBatch#perQueryRows}): the form in
 * which the TornadoVM backend prefills a latent (MLA) cache. Decoding it on the JVM backend with the packed queries must
 * give the prefill's fp64 reference, outputs and log-sum-exps, for causal batches through windows and chunks, with sinks,
 * caps and ALiBi, and for non-causal ones; what has no decode form is refused by name.
 */
class DecodeRowsTest {

    /** Decodes {@code batch.decodeRows()} into poisoned rows and checks them and their lse against the prefill's fp64 reference. */
    private static void decodeRowsMatchPrefill(LatentAttentionTest.Pair p, boolean latent, AttentionSpec spec, PrefillBatch batch,
                                               long seed, String what) {
        int n = batch.totalQueries();
        FloatArray q = LatentAttentionTest.randomQueries(spec, n, seed);
        FloatArray out = LatentAttentionTest.poisoned(spec.outputElements(n));
        FloatArray lse = LatentAttentionTest.poisoned((long) n * spec.numQHeads());
        DecodeBatch rows = batch.decodeRows();
        assertEquals(n, rows.numSeqs(), what + ": one decode row per query");
        try (JvmDecodeAttention decode = new JvmDecodeAttention(latent ? p.latent() : p.twin(), spec)) {
            decode.decode(rows, 0, q, out, lse);
        }
        double[] refLse = new double[n * spec.numQHeads()];
        int[] seqs = latent ? p.seqs() : p.twinSeqs();
        Accuracy.assertClose(out, ReferencePrefill.prefill(latent ? p.latent() : p.twin(), spec, 0, seqs, batch, q, refLse), what);
        Accuracy.assertLseClose(lse, refLse, what);
    }

    @Test
    void aLatentPrefillThroughAWindowWithSinksCapAndAlibiIsTheDecodeOfItsRows() {
        long seed = TestSeeds.fresh("DecodeRowsTest latent window sinks cap alibi");
        LatentAttentionTest.Pair p = LatentAttentionTest.build(new int[] {150, 61, 9}, 512, 64, 16, 16, KvDtype.FP16, 1, 0.07f,
                false, seed);
        AttentionSpec spec = p.spec().withSinks(DecodeWorkload.randomSinks(1, 16, 1, seed)).withSoftCap(3f)
                .withAlibi(AlibiSlopes.standard(16));
        PrefillBatch batch = PrefillBatch.of(p.latent().batch(p.seqs()), new int[] {40, 61, 1}, 25);
        decodeRowsMatchPrefill(p, true, spec, batch, seed, "latent prefill as rows, window 25, seed=" + seed);
        decodeRowsMatchPrefill(p, true, p.spec(), PrefillBatch.of(p.latent().batch(p.seqs()), new int[] {150, 3, 9},
                PrefillBatch.NO_WINDOW), ~seed, "latent prefill as rows, whole prompts, seed=" + seed);
    }

    @Test
    void chunkedWindowsAndNonCausalBatchesOfAKvCacheAreTheDecodeOfTheirRows() {
        long seed = TestSeeds.fresh("DecodeRowsTest chunks and non-causal");
        LatentAttentionTest.Pair p = LatentAttentionTest.build(new int[] {100, 33}, 24, 8, 6, 7, KvDtype.FP32, 1, 0.2f, true, seed);
        AttentionSpec spec = p.twinSpec();
        DecodeBatch kv = p.twin().batch(p.twinSeqs());
        decodeRowsMatchPrefill(p, false, spec, PrefillBatch.of(kv, new int[] {70, 33}, AttentionWindow.chunked(16)), seed,
                "K/V prefill as rows, chunks of 16, seed=" + seed);
        decodeRowsMatchPrefill(p, false, spec, PrefillBatch.nonCausal(kv, new int[] {5, 40}), ~seed,
                "non-causal prefill as rows (40 queries over 33 tokens), seed=" + seed);
    }

    @Test
    void rowsCopyTheirSequencesTablesUpToTheirLengthAndRefuseWhatHasNoDecodeForm() {
        long seed = TestSeeds.fresh("DecodeRowsTest tables and refusals");
        LatentAttentionTest.Pair p = LatentAttentionTest.build(new int[] {40, 20}, 24, 8, 4, 8, KvDtype.FP16, 1, 0.2f, false, seed);
        DecodeBatch kv = p.latent().batch(p.seqs());
        DecodeBatch rows = PrefillBatch.of(kv, new int[] {3, 1}, PrefillBatch.NO_WINDOW).decodeRows();
        assertEquals(java.util.List.of(38, 39, 40, 20), java.util.Arrays.stream(rows.contextLens()).boxed().toList());
        int w = rows.maxBlocksPerSeq();
        int[] tables = rows.blockTables();
        for (int j = 0; j < w; j++) {
            assertEquals(j < 5 ? kv.block(0, j) : BlockPool.NO_BLOCK, tables[2 * w + j], "row 2 (seq 0 at 40 tokens), column " + j);
            assertEquals(j < 3 ? kv.block(1, j) : BlockPool.NO_BLOCK, tables[3 * w + j], "row 3 (seq 1 at 20 tokens), column " + j);
        }
        IllegalArgumentException masked = assertThrows(IllegalArgumentException.class,
                () -> PrefillBatch.of(kv, new int[] {3, 1}, PrefillBatch.NO_WINDOW).withMasks(TreeMask.fromParents(-1, 0, 0), null)
                        .decodeRows());
        assertTrue(masked.getMessage().startsWith("token-tree masks: a masked row may skip positions of its prefix"), masked.getMessage());
        assertEquals("rowOf[1]=2: the batch has rows 0..1",
                assertThrows(IllegalArgumentException.class, () -> kv.perQueryRows(new int[] {0, 2}, new int[] {1, 1})).getMessage());
        assertEquals("lens[0]=41: row 0 (seq=" + p.seqs()[0] + ") has 40 tokens",
                assertThrows(IllegalArgumentException.class, () -> kv.perQueryRows(new int[] {0}, new int[] {41})).getMessage());
        assertEquals("lens[1]=0: row 1 (seq=" + p.seqs()[1] + ") has 20 tokens",
                assertThrows(IllegalArgumentException.class, () -> kv.perQueryRows(new int[] {0, 1}, new int[] {1, 0})).getMessage());
        assertThrows(IllegalArgumentException.class, () -> kv.selectBlocks(new int[] {0}, new int[] {1}).perQueryRows(new int[] {0},
                new int[] {1}));
        // the rows keep their sequences' staleness check: a freed sequence's rows are refused
        p.latent().free(p.seqs()[1]);
        IllegalArgumentException stale = assertThrows(IllegalArgumentException.class, () -> rows.requireFits(p.latent().config()));
        assertTrue(stale.getMessage().startsWith("seq=" + p.seqs()[1] + " of this batch was freed"), stale.getMessage());
    }
}
