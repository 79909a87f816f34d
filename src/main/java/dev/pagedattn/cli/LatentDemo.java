package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.DecodeAttention;
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
 * compressed KV, 64 rotary key), 16 query heads decoding over it with outputs 512 wide, on the JVM backend against fp64
 * and against the same vectors stored in a K and a V pool (the same bits, twice the bytes), and on the demo's tornado
 * backend (its latent kernel) against fp64.
 */
final class LatentDemo {
    private static final int LATENT = 512;
    private static final int ROPE = 64;
    private static final int HEADS = 16;
    private static final int[] LENGTHS = {70, 23};

    private LatentDemo() {
    }

    /**
     * Prints the lines ({@code dtype}: the demo's K/V; {@code backend}, {@code device}: the demo's); whether the steps
     * matched their reference and the JVM's its K/V twin.
     */
    static boolean run(int section, SplittableRandom random, KvDtype dtype, String backend, String device) throws OutOfBlocksException {
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
        double[] ref = ReferenceAttention.decode(cache, spec, 0, seqs, q);
        double rel = ReferenceAttention.relativeL2(out, ref);
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
                        + "   %d query heads decode %d sequences of %s tokens on the jvm backend, outputs %d wide per head:"
                        + " relative L2 error vs fp64 %.2e; the same vectors in a K and a V pool give %s -> %s%n",
                section, LATENT + ROPE, LATENT, ROPE, LATENT, config.bytesPerToken(), twinConfig.bytesPerToken(), HEADS,
                seqs.length, java.util.Arrays.toString(LENGTHS), LATENT, rel, same ? "the same bits" : "OTHER BITS",
                ok ? "PASS" : "FAIL");
        if (backend.equals("jvm")) {
            return ok;
        }
        FloatArray deviceOut = poisoned(spec.outputElements(seqs.length));
        try (DecodeAttention attention = Backends.create(backend, cache, spec, device, "auto")) {
            attention.decode(cache.batch(seqs), 0, q, deviceOut);
        }
        double deviceRel = ReferenceAttention.relativeL2(deviceOut, ref);
        boolean deviceOk = deviceRel <= 1e-4; // fp32 sums of the stored values, as the jvm step's
        System.out.printf("   The same step on the %s backend (its latent kernel: eight heads a work-group over rows staged once"
                + " for scores and values): relative L2 error vs fp64 %.2e -> %s%n", backend, deviceRel, deviceOk ? "PASS" : "FAIL");
        return ok && deviceOk;
    }

    private static FloatArray poisoned(long n) {
        FloatArray a = new FloatArray(Math.toIntExact(n));
        a.init(Float.NaN);
        return a;
    }
}
