package dev.pagedattn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.StepRows;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.CsrPageTable;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.io.IOException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The README's API section is code that compiles and runs: {@link #readmeSnippetRuns} holds it
 * between the two marker comments, and {@link #readmeShowsTheSnippetThisTestRuns} keeps the
 * README's block and that code the same text (edit both together).
 */
class ReadmeApiTest {
    private static final String BEGIN = "// README API: begin";
    private static final String END = "// README API: end";
    private FloatArray queries;    // what the snippet's engine writes into the backend's rows
    private FloatArray inPlaceOut; // what it read back

    private void writeQueries(FloatArray rows) {
        for (int i = 0; i < queries.getSize(); i++) {
            rows.set(i, queries.get(i));
        }
    }

    private void readOutputs(FloatArray rows) {
        inPlaceOut = new FloatArray(queries.getSize());
        for (int i = 0; i < queries.getSize(); i++) {
            inPlaceOut.set(i, rows.get(i));
        }
    }

    @Test
    void readmeSnippetRuns() throws OutOfBlocksException {
        SplittableRandom random = new SplittableRandom(TestSeeds.fresh("ReadmeApiTest.readmeSnippetRuns"));
        int promptTokens = 40;
        int width = 8 * 128; // numKvHeads x headDim of the snippet's cache
        float[] promptK = uniform(random, promptTokens * width);
        float[] promptV = uniform(random, promptTokens * width);
        float[] k = uniform(random, width);
        float[] v = uniform(random, width);
        FloatArray q = FloatArray.fromArray(uniform(random, 2 * 32 * 128));
        FloatArray out = new FloatArray(2 * 32 * 128);
        out.init(Float.NaN);
        queries = q;

        // README API: begin
        KvCacheConfig config = KvCacheConfig.of(/*numBlocks*/ 4096, /*blockSize*/ 16, /*kvHeads*/ 8, /*headDim*/ 128, KvDtype.FP16);
        // or sized from a byte budget, all layers: KvCacheConfig.forMemory(60_000_000_000L, 16, 8, 128, /*layers*/ 32, KvDtype.FP16)
        KvCache cache = new KvCache(config);

        int seq = cache.createSequence();
        cache.appendTokens(seq, promptK, promptV);      // [numTokens][numKvHeads][headDim] each; throws OutOfBlocksException
        int child = cache.fork(seq);                    // shares every block; copy-on-write on its first append or write
        if (cache.canAppend(child, 1)) {
            int pos = cache.append(child, 1);           // reserve a slot (copies a shared, partly filled last block)
            cache.write(child, 0, pos, k, v);           // layer 0, one token, all KV heads (copies a block still shared)
        }

        AttentionSpec spec = AttentionSpec.of(config, /*numQHeads*/ 32);   // scale defaults to 1/sqrt(headDim)
        // gpt-oss's sinks: spec = spec.withSinks(AttentionSinks.of(sinks));  // sinks[layer][qHead], see "Attention sinks"
        // Gemma 2's logit soft cap: spec = spec.withSoftCap(50f);           // see "Logit soft-capping"
        // BLOOM's and MPT's ALiBi: spec = spec.withAlibi(AlibiSlopes.standard(32));  // see "ALiBi"
        try (DecodeAttention attention = Backends.create("jvm", cache, spec, null, "auto")) {  // or "tornado"
            DecodeBatch batch = cache.batch(seq, child);                    // padded block tables + lengths
            attention.decode(batch, /*layer*/ 0, q, out);                   // q, out: FloatArray [numSeqs][numQHeads][headDim]
            StepRows rows = attention.stepRows(batch, 0);                   // or the backend's own rows (a GPU plan's: no copies)
            writeQueries(rows.q());                                         // your engine's queries there, laid out as q
            attention.decode(batch, 0, rows.q(), rows.out());
            readOutputs(rows.out());                                        // the outputs, laid out as out
        }
        cache.releaseOutsideWindow(child, 4096);      // every layer windowed (Mistral 7B v0.1): blocks before it go back
        CsrPageTable csr = cache.csr(seq, child);       // FlashInfer's indptr / indices / last_page_len
        cache.free(seq);
        // README API: end

        // The child (41 tokens: the prompt and the written one) decoded as the fp64 reference does.
        int n = spec.numQHeads() * spec.headDim();
        FloatArray childQ = new FloatArray(n);
        FloatArray childOut = new FloatArray(n);
        for (int i = 0; i < n; i++) {
            childQ.set(i, q.get(n + i));
            childOut.set(i, out.get(n + i));
        }
        double[] ref = ReferenceAttention.decode(cache, spec, 0, new int[] {child}, childQ);
        double rel = ReferenceAttention.relativeL2(childOut, ref);
        assertTrue(rel < 1e-5, "relative L2 error of the child's decode: " + rel);
        for (int i = 0; i < out.getSize(); i++) { // the same decode through the backend's own rows
            assertEquals(out.get(i), inPlaceOut.get(i), "output element " + i + " through stepRows");
        }
        assertEquals(promptTokens + 1, cache.length(child));
        assertEquals(3, csr.indptr()[1], "the parent's 40 tokens in blocks of 16");
    }

    @Test
    void readmeShowsTheSnippetThisTestRuns() throws IOException {
        ReadmeBlocks.assertSame("\n## API\n", "src/test/java/dev/pagedattn/ReadmeApiTest.java", BEGIN, END);
    }

    private static float[] uniform(SplittableRandom random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return a;
    }
}
