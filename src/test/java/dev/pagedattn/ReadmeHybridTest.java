package dev.pagedattn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.HybridAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.HybridBatch;
import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.io.IOException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The README's hybrid-model block ("Models that mix windowed and full layers") is code that runs: {@link #snippetRuns}
 * holds it between the marker comments, checks what it computed, and {@link #readmeShowsTheSnippetThisTestRuns} keeps
 * the README's block and that code the same text (edit both together).
 */
class ReadmeHybridTest {
    private static final String BEGIN = "// README hybrid: begin";
    private static final String END = "// README hybrid: end";
    private static final String MARKER = "**Models that mix windowed and full layers.**";

    @Test
    void snippetRuns() throws OutOfBlocksException {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("ReadmeHybridTest.snippetRuns"));
        long kvBytes = 150_000_000L;           // a card would give it tens of GB
        int n = 300;                                   // the prompt: past the window of 128
        int width = 8 * 64;
        float[][] k = new float[24][];
        float[][] v = new float[24][];
        for (int l = 0; l < 24; l++) {
            k[l] = uniform(random, n * width);
            v[l] = uniform(random, n * width);
        }
        float[] nextK = uniform(random, width);
        float[] nextV = uniform(random, width);
        FloatArray promptQ = FloatArray.fromArray(uniform(random, n * 64 * 64));
        FloatArray promptOut = new FloatArray(n * 64 * 64);
        FloatArray q = FloatArray.fromArray(uniform(random, 64 * 64));
        FloatArray out = new FloatArray(64 * 64);
        promptOut.init(Float.NaN);
        out.init(Float.NaN);
        // README hybrid: begin
        int[] windows = new int[24];                   // gpt-oss-20b: even layers through 128 tokens, odd ones full
        for (int l = 0; l < 24; l++) windows[l] = l % 2 == 0 ? 128 : DecodeBatch.NO_WINDOW;
        HybridKvCache cache = HybridKvCache.forMemory(kvBytes, 16, 8, 64, KvDtype.FP16, windows,
                /*maxSequences*/ 4, /*maxNewTokens per append*/ 512);   // or HybridKvCache.of(windows, blocksPerGroup, ...)
        AttentionSpec spec = AttentionSpec.of(cache.group(0).config(), /*numQHeads*/ 64);
        int seq = cache.createSequence();
        int pos = cache.append(seq, n);                // every group or none (OutOfBlocksException); windowed ones release first
        for (int layer = 0; layer < 24; layer++) {
            cache.writeTokens(seq, layer, pos, n, k[layer], v[layer]);    // the model's layer numbering
        }
        try (HybridAttention attention = HybridAttention.create("jvm", cache, spec, null, "auto")) {   // or "tornado"
            attention.prefill(cache.batch(seq), new int[] {n}, /*layer*/ 0, promptQ, promptOut);  // through its window
            pos = cache.append(seq, 1);                // the window moved: its group gives back what it left behind
            for (int layer = 0; layer < 24; layer++) {
                cache.write(seq, layer, pos, nextK, nextV);
            }
            HybridBatch batch = cache.batch(seq);      // once per step
            attention.decode(batch, /*layer*/ 1, q, out);                   // a full layer: its group's tables
        }
        // README hybrid: end
        assertEquals(n + 1, cache.length(seq));
        assertTrue(cache.group(0).firstHeldPosition(seq) > 0, "the windowed group released blocks before the window");
        assertEquals(0, cache.group(1).firstHeldPosition(seq), "the full layers keep every block");
        double rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache.group(1), spec, cache.localLayer(1),
                new int[] {seq}, q));
        assertTrue(rel < 1e-5, "layer 1's decode against fp64: relative L2 " + rel);
        for (int i = 0; i < promptOut.getSize(); i++) {
            assertTrue(Float.isFinite(promptOut.get(i)), "prefill output element " + i + " written");
        }
    }

    @Test
    void readmeShowsTheSnippetThisTestRuns() throws IOException {
        ReadmeBlocks.assertSame(MARKER, "src/test/java/dev/pagedattn/ReadmeHybridTest.java", BEGIN, END);
    }

    private static float[] uniform(SplittableRandom random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return a;
    }
}
