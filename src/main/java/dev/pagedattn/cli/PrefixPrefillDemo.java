package dev.pagedattn.cli;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.Backends;
import dev.pagedattn.attention.CascadeAttention;
import dev.pagedattn.attention.DecodeAttention;
import dev.pagedattn.attention.PrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.ReferencePrefill;
import dev.pagedattn.attention.TreeMask;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import dev.pagedattn.cache.PrefixCache;
import java.util.Arrays;
import java.util.SplittableRandom;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The demo's last part: a prefix-cache hit followed by prefill of the rest. Two requests share a
 * system prompt; the second reuses its full blocks and computes attention only for its new tokens,
 * over the cached ones and causally over each other.
 */
final class PrefixPrefillDemo {
    private static final int SYSTEM_TOKENS = 50;
    /**
     * Bound on a prefill output's relative L2 error: the GPU's tensor-core kernels round the queries and probabilities to
     * fp16 (about 2e-4 here), so the demo takes check's default bound, not the decode lines' 1e-4.
     */
    private static final double PREFILL_BOUND = 1e-3;

    private final KvCache cache;
    private final AttentionSpec spec;
    private final SplittableRandom random;

    private PrefixPrefillDemo(SplittableRandom random, KvDtype dtype) {
        KvCacheConfig config = KvCacheConfig.of(32, 16, 2, 64, dtype);
        this.cache = new KvCache(config);
        this.spec = AttentionSpec.of(config, 8);
        this.random = random;
    }

    /** Prints the walk-through; returns whether both prefills matched the fp64 reference (and, on jvm, the from-scratch cache bit for bit). */
    static boolean run(String backend, String device, SplittableRandom random, int step, KvDtype dtype) throws OutOfBlocksException {
        return new PrefixPrefillDemo(random, dtype).show(backend, device, step);
    }

    private boolean show(String backend, String device, int step) throws OutOfBlocksException {
        PrefixCache prefix = cache.enablePrefixCaching();
        int[] system = random.ints(SYSTEM_TOKENS, 0, 128_000).toArray();
        int[] first = concat(system, random.ints(10, 0, 128_000).toArray());
        int[] second = concat(system, random.ints(14, 0, 128_000).toArray());
        System.out.printf("%d. Prefix caching, then prefill (a fresh cache, %d blocks x %d tokens): two requests share a %d-token system prompt.%n",
                step, cache.config().numBlocks(), cache.config().blockSize(), SYSTEM_TOKENS);
        boolean ok = true;
        try (DecodeAttention decoder = Backends.create(backend, cache, spec, device, "auto");
             PrefillAttention attention = PrefillAttention.pairedWith(decoder, backend, cache, spec, device)) {
            PrefixCache.Admission a = prefix.admit(first, null);
            writeKv(a.seq(), first, a.numCachedTokens());
            prefix.commit(a.seq());
            System.out.printf("   request 1: %d prompt tokens, %d cached -> prefill of %d new tokens (causal among themselves)%n",
                    first.length, a.numCachedTokens(), first.length - a.numCachedTokens());
            ok &= prefill(attention, a, "request 1", null);
            PrefixCache.Admission b = prefix.admit(second, null);
            writeKv(b.seq(), second, b.numCachedTokens());
            System.out.printf("   request 2: %d prompt tokens, %d cached (%d shared blocks: %s) -> prefill of %d new tokens over the cached ones%n",
                    second.length, b.numCachedTokens(), b.numCachedTokens() / cache.config().blockSize(),
                    Arrays.toString(Arrays.copyOf(cache.pageTable(b.seq()).blocks(), b.numCachedTokens() / cache.config().blockSize())),
                    second.length - b.numCachedTokens());
            ok &= prefill(attention, b, "request 2", backend.equals("jvm") ? second : null);
            ok &= decode(decoder, a.seq(), b.seq());
            ok &= cascade(decoder, attention, a.seq(), b.seq());
            ok &= verifyTree(attention, decoder, a.seq());
        }
        PrefixCache.Metrics m = prefix.metrics();
        System.out.printf("   prefix cache: %d of %d block lookups hit (%.0f%%), %d tokens reused%n", m.blockHits(), m.blockLookups(),
                100 * m.hitRate(), m.tokensReused());
        return ok;
    }

    /** Prefill of the admission's new tokens, checked against fp64 (and, given the prompt, a cache written from scratch). */
    private boolean prefill(PrefillAttention attention, PrefixCache.Admission a, String name, int[] prompt) {
        int newTokens = a.numPromptTokens() - a.numCachedTokens();
        PrefillBatch batch = PrefillBatch.of(cache.batch(a.seq()), new int[] {newTokens}, PrefillBatch.NO_WINDOW);
        FloatArray q = new FloatArray(newTokens * spec.numQHeads() * spec.headDim());
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        attention.prefill(batch, 0, q, out);
        double rel = ReferenceAttention.relativeL2(out, ReferencePrefill.prefill(cache, spec, 0, new int[] {a.seq()}, batch, q));
        boolean ok = rel <= PREFILL_BOUND;
        String scratch = "";
        if (prompt != null) {
            boolean same = sameAsFromScratch(prompt, newTokens, q, out);
            scratch = same ? "; bit-identical to a cache written from scratch" : "; DIFFERS from a cache written from scratch";
            ok &= same;
        }
        System.out.printf("   %s: %s backend, relative L2 error vs fp64 %.2e -> %s%s%n", name, attention.name(), rel,
                ok ? "PASS" : "FAIL", scratch);
        return ok;
    }

    /** Both requests generate two tokens: each appends its token's K/V and one decode step attends over the whole context. */
    private boolean decode(DecodeAttention decoder, int... seqs) throws OutOfBlocksException {
        double worst = 0;
        for (int step = 0; step < 2; step++) {
            double rel = PrefillCheck.decodeNextToken(decoder, cache, spec, seqs, random);
            worst = Double.isNaN(rel) || Double.isNaN(worst) ? Double.NaN : Math.max(worst, rel);
        }
        boolean ok = worst <= 1e-4; // NaN fails
        System.out.printf("   then both decode two tokens (%s backend, same cache): relative L2 error vs fp64 at most %.2e -> %s%n",
                decoder.name(), worst, ok ? "PASS" : "FAIL");
        return ok;
    }

    /**
     * One more step of both requests through {@link CascadeAttention}: the blocks they share (the system prompt's full ones)
     * read once for both, each one's own tokens on their own, the parts merged by log-sum-exp; output and lse against fp64.
     */
    private boolean cascade(DecodeAttention decoder, PrefillAttention attention, int... seqs) {
        FloatArray q = new FloatArray(seqs.length * spec.numQHeads() * spec.headDim());
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        FloatArray out = new FloatArray(q.getSize());
        FloatArray lse = new FloatArray(seqs.length * spec.numQHeads());
        out.init(Float.NaN);
        lse.init(Float.NaN);
        int shared;
        try (CascadeAttention plan = CascadeAttention.plan(cache, spec, seqs, cache.config().blockSize())) {
            shared = plan.groups() == 1 ? plan.sharedTokens(0) : 0;
            plan.decode(decoder, attention, 0, q, out, lse);
        }
        double[] refLse = new double[lse.getSize()];
        double rel = ReferenceAttention.relativeL2(out, ReferenceAttention.decode(cache, spec, 0, seqs, q, DecodeBatch.NO_WINDOW, refLse));
        double lseErr = 0;
        for (int i = 0; i < refLse.length; i++) { // Math.max keeps a NaN
            lseErr = Math.max(lseErr, Math.abs(lse.get(i) - refLse[i]) / Math.max(1, Math.abs(refLse[i])));
        }
        boolean ok = shared > 0 && rel <= PREFILL_BOUND && lseErr <= 1e-4; // NaN fails
        System.out.printf("   then one step of both through CascadeAttention: the %d tokens they share read once for both (a non-causal"
                + " prefill of their queries), their own tokens each, merged by log-sum-exp: relative L2 error vs fp64 %.2e, log-sum-exp"
                + " %.2e -> %s%n", shared, rel, lseErr, ok ? "PASS" : "FAIL");
        return ok;
    }

    /**
     * Speculative decoding on {@code seq}: a tree of six drafts appended and verified in one prefill with a {@link TreeMask}
     * (checked against fp64), the accepted path compacted into place ({@link KvCache#compact}), then a decode step over it.
     */
    private boolean verifyTree(PrefillAttention attention, DecodeAttention decoder, int seq) throws OutOfBlocksException {
        int[] parents = {-1, 0, 0, 1, 2, 2};
        int n = parents.length;
        int first = cache.append(seq, n);
        int width = cache.config().tokenWidth();
        float[] k = new float[n * width];
        float[] v = new float[n * width];
        for (int i = 0; i < k.length; i++) {
            k[i] = (float) (random.nextDouble() * 2 - 1);
            v[i] = (float) (random.nextDouble() * 2 - 1);
        }
        cache.writeTokens(seq, 0, first, n, k, v);
        PrefillBatch batch = PrefillBatch.of(cache.batch(seq), new int[] {n}, PrefillBatch.NO_WINDOW)
                .withMasks(TreeMask.fromParents(parents));
        FloatArray q = new FloatArray(n * spec.numQHeads() * spec.headDim());
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, (float) (random.nextDouble() * 2 - 1));
        }
        FloatArray out = new FloatArray(q.getSize());
        out.init(Float.NaN);
        attention.prefill(batch, 0, q, out);
        double rel = ReferenceAttention.relativeL2(out, ReferencePrefill.prefill(cache, spec, 0, new int[] {seq}, batch, q));
        int length = cache.compact(seq, first, new int[] {first, first + 2, first + 5});
        double next = PrefillCheck.decodeNextToken(decoder, cache, spec, new int[] {seq}, random);
        boolean ok = rel <= PREFILL_BOUND && next <= 1e-4;
        System.out.printf("   then request 1 verifies a tree of %d drafts (parents %s) in one prefill with a TreeMask, each draft"
                        + " seeing the context, its ancestors and itself: relative L2 error vs fp64 %.2e; compact keeps the"
                        + " accepted path 0 -> 2 -> 5 (length %d, the rest dropped) and the next decode step over it: %.2e -> %s%n",
                n, Arrays.toString(parents), rel, length, next, ok ? "PASS" : "FAIL");
        return ok;
    }

    private boolean sameAsFromScratch(int[] prompt, int newTokens, FloatArray q, FloatArray out) {
        KvCache plain = new KvCache(cache.config());
        FloatArray b = new FloatArray(q.getSize());
        b.init(Float.NaN);
        try (PrefillAttention jvm = PrefillAttention.create("jvm", plain, spec, null)) {
            int seq = plain.createSequence();
            plain.append(seq, prompt.length);
            writeKvInto(plain, seq, prompt, 0);
            jvm.prefill(PrefillBatch.of(plain.batch(seq), new int[] {newTokens}, PrefillBatch.NO_WINDOW), 0, q, b);
        } catch (OutOfBlocksException e) {
            throw new AssertionError("a fresh cache of the same size cannot hold one prompt", e);
        }
        for (int i = 0; i < out.getSize(); i++) {
            if (Float.floatToRawIntBits(out.get(i)) != Float.floatToRawIntBits(b.get(i))) {
                return false;
            }
        }
        return true;
    }

    private void writeKv(int seq, int[] tokens, int from) throws OutOfBlocksException {
        writeKvInto(cache, seq, tokens, from);
    }

    /** K/V of positions {@code [from, tokens.length)}: a fixed function of (token id, position), as a model's would be. */
    private static void writeKvInto(KvCache target, int seq, int[] tokens, int from) throws OutOfBlocksException {
        int n = tokens.length - from;
        int width = target.config().tokenWidth();
        float[] k = new float[n * width];
        float[] v = new float[n * width];
        for (int i = 0; i < n; i++) {
            int pos = from + i;
            SplittableRandom r = new SplittableRandom(tokens[pos] * 0x9E3779B97F4A7C15L + pos * 0xC2B2AE3D27D4EB4FL);
            for (int e = 0; e < width; e++) {
                k[i * width + e] = (float) (r.nextDouble() * 2 - 1);
                v[i * width + e] = (float) (r.nextDouble() * 2 - 1);
            }
        }
        target.writeTokens(seq, 0, from, n, k, v);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
