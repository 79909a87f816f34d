package dev.pagedattn;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.JvmPrefillAttention;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.ReferencePrefill;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.rope.ReferenceRotary;
import dev.pagedattn.rope.RopeFrequencies;
import dev.pagedattn.rope.RotaryEmbedding;
import java.io.IOException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The README's rotary block ("Rotary position embeddings") is code that runs: {@link #snippetRuns} holds it between the
 * marker comments and checks what it computed (the keys written rotated at their slots' positions, the prefill over
 * them against fp64); {@link #readmeShowsTheSnippetThisTestRuns} keeps both the same text.
 */
class ReadmeRopeTest {
    private static final String BEGIN = "// README rope: begin";
    private static final String END = "// README rope: end";
    private static final String MARKER = "\n### Rotary position embeddings (RoPE)\n";

    @Test
    void snippetRuns() throws OutOfBlocksException {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("ReadmeRopeTest.snippetRuns"));
        KvCache cache = new KvCache(KvCacheConfig.of(16, 16, 8, 128, KvDtype.FP32));
        AttentionSpec spec = AttentionSpec.of(cache.config(), 32);
        int seq = cache.createSequence();
        cache.appendTokens(seq, uniform(random, 20 * 1024), uniform(random, 20 * 1024)); // 20 tokens before
        int n = 5;
        float[] k = uniform(random, n * 1024);
        float[] v = uniform(random, n * 1024);
        float[] kBefore = k.clone();
        FloatArray q = FloatArray.fromArray(uniform(random, n * 32 * 128));
        FloatArray out = new FloatArray(n * 32 * 128);
        out.init(Float.NaN);
        PrefillAttention attention = new JvmPrefillAttention(cache, spec);
        // README rope: begin
        RotaryEmbedding rope = new RotaryEmbedding(/*headDim*/ 128,
                RopeFrequencies.llama3(/*rotaryDim*/ 128, /*theta*/ 500000, /*factor*/ 8, /*low*/ 1, /*high*/ 4, /*original*/ 8192),
                RotaryEmbedding.Style.NEOX);                      // Hugging Face's Llama checkpoints pair dims i and i + 64
        int first = cache.append(seq, n);                         // the new tokens sit at positions first .. first + n - 1
        rope.apply(k, /*kvHeads*/ 8, first, n);                   // [n][kvHeads][headDim], in place, before the write
        cache.writeTokens(seq, 0, first, n, k, v);                // every layer, each with its own k
        rope.apply(q, /*qHeads*/ 32, first, n);                   // FloatArray [n][qHeads][headDim]
        attention.prefill(PrefillBatch.of(cache.batch(seq), new int[] {n}, PrefillBatch.NO_WINDOW), 0, q, out);
        // README rope: end
        attention.close();
        int[] positions = {20, 21, 22, 23, 24};
        double[] want = ReferenceRotary.rotate(rope, kBefore, 8, positions);
        double keys = ReferenceAttention.relativeL2(FloatArray.fromArray(k), want);
        assertTrue(keys > 0 && keys < 4e-7, "keys rotated at positions 20..24: relative L2 " + keys);
        for (int i = 0; i < k.length; i += 97) {
            assertTrue(cache.readK(seq, 0, 20 + i / 1024, i / 128 % 8, i % 128) == k[i], "stored rotated key " + i);
        }
        double rel = ReferenceAttention.relativeL2(out, ReferencePrefill.prefill(cache, spec, 0, new int[] {seq},
                PrefillBatch.of(cache.batch(seq), new int[] {n}, PrefillBatch.NO_WINDOW), q));
        assertTrue(rel > 0 && rel < 1e-5, "prefill over the rotated keys: relative L2 " + rel);
    }

    @Test
    void readmeShowsTheSnippetThisTestRuns() throws IOException {
        ReadmeBlocks.assertSame(MARKER, "src/test/java/dev/pagedattn/ReadmeRopeTest.java", BEGIN, END);
    }

    private static float[] uniform(SplittableRandom random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return a;
    }
}
