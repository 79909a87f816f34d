package dev.pagedattn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.JvmPrefillAttention;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.ReferencePrefill;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.attention.TreeMask;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.io.IOException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The README's token-tree block ("Token trees and rollback") is code that runs: {@link #snippetRuns} holds it between the
 * marker comments and checks what it computed; {@link #readmeShowsTheSnippetThisTestRuns} keeps both the same text.
 */
class ReadmeTreeTest {
    private static final String BEGIN = "// README tree: begin";
    private static final String END = "// README tree: end";
    private static final String MARKER = "**Token trees and rollback (speculative decoding).**";

    @Test
    void snippetRuns() throws OutOfBlocksException {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("ReadmeTreeTest.snippetRuns"));
        KvCache cache = new KvCache(KvCacheConfig.of(16, 4, 2, 8, KvDtype.FP32));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 4);
        int seq = cache.createSequence();
        int context = 10;
        cache.appendTokens(seq, uniform(random, context * 16), uniform(random, context * 16));
        float[] draftK = uniform(random, 6 * 16);
        float[] draftV = uniform(random, 6 * 16);
        FloatArray q = FloatArray.fromArray(uniform(random, 6 * 4 * 8));
        FloatArray out = new FloatArray(6 * 4 * 8);
        out.init(Float.NaN);
        PrefillAttention attention = new JvmPrefillAttention(cache, spec);
        // README tree: begin
        int[] parents = {-1, 0, 0, 1, 2, 2};                                 // draft 0 the root, 1 and 2 its children, ...
        int first = cache.append(seq, parents.length);                       // the drafts' K/V after the accepted context
        cache.writeTokens(seq, 0, first, parents.length, draftK, draftV);    // every layer
        PrefillBatch batch = PrefillBatch.of(cache.batch(seq), new int[] {parents.length}, PrefillBatch.NO_WINDOW)
                .withMasks(TreeMask.fromParents(parents));                    // draft j sees the context, its ancestors, itself
        attention.prefill(batch, 0, q, out);                                  // the JVM or the TornadoVM backend, every kernel
        int length = cache.compact(seq, first, new int[] {first, first + 2, first + 5});   // accepted 0 -> 2 -> 5: moved into place
        // README tree: end
        assertEquals(context + 3, length);
        assertEquals(context + 3, cache.length(seq));
        int[] accepted = {0, 2, 5};
        for (int i = 0; i < 3; i++) {
            assertEquals(draftK[accepted[i] * 16 + 9], cache.readK(seq, 0, context + i, 1, 1), "accepted draft " + i);
        }
        double[] want = ReferencePrefill.prefill(cache, spec, 0, new int[] {seq}, PrefillBatch.of(cache.batch(seq), new int[] {1},
                PrefillBatch.NO_WINDOW), FloatArray.fromArray(slice(q, 5 * 32, 32)));
        attention.close();
        // draft 5 saw the context and drafts 0, 2, 5: now the last three tokens, what a causal row at the end sees
        double rel = ReferenceAttention.relativeL2(FloatArray.fromArray(slice(out, 5 * 32, 32)), want);
        assertTrue(rel < 1e-5, "draft 5 against its path alone: relative L2 " + rel);
    }

    @Test
    void readmeShowsTheSnippetThisTestRuns() throws IOException {
        ReadmeBlocks.assertSame(MARKER, "src/test/java/dev/pagedattn/ReadmeTreeTest.java", BEGIN, END);
    }

    private static float[] slice(FloatArray a, int from, int n) {
        float[] s = new float[n];
        for (int i = 0; i < n; i++) {
            s[i] = a.get(from + i);
        }
        return s;
    }

    private static float[] uniform(SplittableRandom random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return a;
    }
}
