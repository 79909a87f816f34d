package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The demo's line on multi-head latent attention (DeepSeek's MLA): a latent cache of one 576-element vector per token (512
 * compressed KV, 64 rotary key), 16 query heads decoding over it on the JVM backend with outputs 512 wide, against fp64,
 * and against the same vectors stored in a K and a V pool (the same bits, twice the bytes).
 */
final class LatentDemo {
    private static final int LATENT = 512;
    private static final int ROPE = 64;
    private static final int HEADS = 16;
    private static final int[] LENGTHS = {70, 23};

    private LatentDemo() {
    }

    /** Prints the lines ({@code dtype}: the demo's K/V); whether the step matched its reference and its K/V twin. */
    static boolean run(int section, SplittableRandom random, KvDtype dtype) throws OutOfBlocksException {
        KvCacheConfig config = KvCacheConfig.latent(8, 16, LATENT, ROPE, dtype, 1);
        KvCacheConfig twinConfig = new KvCacheConfig(8, 16, 1, LATENT + ROPE, dtype, 1);
        // the demo's K/V are uniform in [-1, 1): the CLI's synthetic scales, one for keys and values alike
        KvCache cache = new KvCache(config, ShapeOptions.syntheticScales(dtype, null, 1, 1));
        KvCache twin = new KvCache(twinConfig, ShapeOptions.syntheticScales(dtype, null, 1, 1));
        int[] seqs = new int[LENGTHS.length];
        int[] twinSeqs = new int[LENGTHS.length];
        for (int i = 0; i < LENGTHS.length; i++) {
            float[] vectors = HybridCheck.uniform(random, LENGTHS[i] * config.tokenWidth());
            seqs[i] = cache.createSequence();
            cache.appendTokens(seqs[i], vectors, null);
            twinSeqs[i] = twin.createSequence();
            twin.appendTokens(twinSeqs[i], vectors, vectors);
        }
        float scale = (float) (1 / Math.sqrt(128 + ROPE)); // MLA's: qk_nope_head_dim + qk_rope_head_dim
        AttentionSpec spec = AttentionSpec.of(config, HEADS).withScale(scale);
        AttentionSpec twinSpec = AttentionSpec.of(twinConfig, HEADS).withScale(scale);
        FloatArray q = FloatArray.fromArray(HybridCheck.uniform(random, (int) spec.queryElements(seqs.length)));
        FloatArray out = poisoned(spec.outputElements(seqs.length));
        FloatArray twinOut = poisoned(twinSpec.outputElements(seqs.length));
        try (JvmDecodeAttention attention = new JvmDecodeAttention(cache, spec);
             JvmDecodeAttention kv = new JvmDecodeAttention(twin, twinSpec)) {
            attention.decode(cache.batch(seqs), 0, q, out);
            kv.decode(twin.batch(twinSeqs), 0, q, twinOut);
        }
        double rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, seqs, q));
        boolean same = true;
        for (int r = 0; r < seqs.length * HEADS; r++) {
            for (int e = 0; e < LATENT; e++) {
                same &= Float.floatToRawIntBits(out.get(r * LATENT + e)) == Float.floatToRawIntBits(twinOut.get(r * (LATENT + ROPE) + e));
            }
        }
        boolean ok = rel <= 1e-4 && same;
        System.out.printf("%d. A latent cache for multi-head latent attention (DeepSeek's MLA; KvCacheConfig.latent): one vector of"
                        + " %d elements per token (%d compressed KV, then %d rotary key), its first %d the values, in one pool:"
                        + " %d bytes per token where a K and a V pool would take %d.%n"
                        + "   %d query heads decode %d sequences of %s tokens on the jvm backend (the TornadoVM backends take"
                        + " no latent cache), outputs %d wide per head: relative L2 error vs fp64 %.2e; the same vectors in a"
                        + " K and a V pool give %s -> %s%n",
                section, LATENT + ROPE, LATENT, ROPE, LATENT, config.bytesPerToken(), twinConfig.bytesPerToken(), HEADS,
                seqs.length, java.util.Arrays.toString(LENGTHS), LATENT, rel, same ? "the same bits" : "OTHER BITS",
                ok ? "PASS" : "FAIL");
        return ok;
    }

    private static FloatArray poisoned(long n) {
        FloatArray a = new FloatArray(Math.toIntExact(n));
        a.init(Float.NaN);
        return a;
    }
}
