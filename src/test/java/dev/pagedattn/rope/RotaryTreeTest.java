package dev.pagedattn.rope;

import static dev.pagedattn.rope.RopeFrequenciesTest.assertNamed;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.JvmDecodeAttention;
import dev.pagedattn.attention.JvmPrefillAttention;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.attention.TreeMask;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The batches' query positions as rotary embeddings take them: a token tree's drafts at context + depth, so that after
 * speculative decoding accepts a path and {@code compact} moves it into place, the cache holds the bits a sequence
 * written token by token would hold, and decodes the same; a ragged prefill's rows and a decode step's rows at their own
 * positions; a non-causal batch refused.
 */
class RotaryTreeTest {
    private static final int KV_HEADS = 2;
    private static final int Q_HEADS = 4;
    private static final int HEAD_DIM = 64;
    private static final int WIDTH = KV_HEADS * HEAD_DIM;

    @Test
    void anAcceptedPathOfDraftsTurnedAtTheirDepthsIsTheSequenceWrittenInOrder() throws OutOfBlocksException {
        long seed = TestSeeds.fresh("anAcceptedPathOfDraftsTurnedAtTheirDepthsIsTheSequenceWrittenInOrder");
        SplittableRandom random = new SplittableRandom(seed);
        RotaryEmbedding rope = new RotaryEmbedding(HEAD_DIM, RopeFrequencies.llama3(HEAD_DIM, 500000, 8, 1, 4, 8192),
                RotaryEmbedding.Style.NEOX);
        int context = 37;
        int[] parents = {-1, 0, 0, 1, 2, 2};
        int[] accepted = {0, 2, 5};
        float[] contextK = RotaryEmbeddingTest.randomRows(random, context * WIDTH);
        float[] contextV = RotaryEmbeddingTest.randomRows(random, context * WIDTH);
        float[] draftK = RotaryEmbeddingTest.randomRows(random, parents.length * WIDTH);
        float[] draftV = RotaryEmbeddingTest.randomRows(random, parents.length * WIDTH);
        float[] draftQ = RotaryEmbeddingTest.randomRows(random, parents.length * Q_HEADS * HEAD_DIM);
        float[] nextQ = RotaryEmbeddingTest.randomRows(random, Q_HEADS * HEAD_DIM);

        // the tree: drafts turned at context + depth, written at slots context .. context + 5, verified, compacted
        KvCache tree = cacheWith(rope, contextK, contextV);
        int seq = 0;
        int first = tree.append(seq, parents.length);
        PrefillBatch batch = PrefillBatch.of(tree.batch(seq), new int[] {parents.length}, PrefillBatch.NO_WINDOW)
                .withMasks(TreeMask.fromParents(parents));
        int[] positions = batch.queryPositions();
        assertArrayEquals(new int[] {context, context + 1, context + 1, context + 2, context + 2, context + 2}, positions);
        float[] k = draftK.clone();
        rope.apply(k, KV_HEADS, positions);
        tree.writeTokens(seq, 0, first, parents.length, k, draftV);
        FloatArray q = FloatArray.fromArray(draftQ);
        rope.apply(q, Q_HEADS, positions);
        AttentionSpec spec = AttentionSpec.of(tree.config(), Q_HEADS);
        FloatArray verified = RotaryAttentionTest.poisoned(parents.length * Q_HEADS * HEAD_DIM);
        try (JvmPrefillAttention prefill = new JvmPrefillAttention(tree, spec)) {
            prefill.prefill(batch, 0, q, verified);
        }
        tree.compact(seq, first, new int[] {first + accepted[0], first + accepted[1], first + accepted[2]});

        // the same tokens written in order: context, then the accepted drafts at positions context .. context + 2
        KvCache linear = cacheWith(rope, contextK, contextV);
        float[] pathK = new float[accepted.length * WIDTH];
        float[] pathV = new float[accepted.length * WIDTH];
        for (int a = 0; a < accepted.length; a++) {
            System.arraycopy(draftK, accepted[a] * WIDTH, pathK, a * WIDTH, WIDTH);
            System.arraycopy(draftV, accepted[a] * WIDTH, pathV, a * WIDTH, WIDTH);
        }
        rope.apply(pathK, KV_HEADS, context, accepted.length);
        int at = linear.append(0, accepted.length);
        linear.writeTokens(0, 0, at, accepted.length, pathK, pathV);
        for (int p = 0; p < context + accepted.length; p++) {
            for (int h = 0; h < KV_HEADS; h++) {
                for (int d = 0; d < HEAD_DIM; d++) {
                    if (Float.floatToRawIntBits(tree.readK(seq, 0, p, h, d)) != Float.floatToRawIntBits(linear.readK(0, 0, p, h, d))) {
                        throw new AssertionError("key at position " + p + ", head " + h + ", dim " + d + " differs; seed=" + seed);
                    }
                }
            }
        }

        // the next step decodes the same bits over both; draft 5's verified row is the in-order decode at its position
        FloatArray next = FloatArray.fromArray(nextQ);
        rope.apply(next, Q_HEADS, linear.batch(0).queryPositions());
        FloatArray fromTree = RotaryAttentionTest.poisoned(Q_HEADS * HEAD_DIM);
        FloatArray fromLinear = RotaryAttentionTest.poisoned(Q_HEADS * HEAD_DIM);
        FloatArray lastDraft = FloatArray.fromArray(Arrays.copyOfRange(q.toHeapArray(), 5 * Q_HEADS * HEAD_DIM, 6 * Q_HEADS * HEAD_DIM));
        FloatArray inOrder = RotaryAttentionTest.poisoned(Q_HEADS * HEAD_DIM);
        try (JvmDecodeAttention a = new JvmDecodeAttention(tree, spec); JvmDecodeAttention b = new JvmDecodeAttention(linear, spec)) {
            a.decode(tree.batch(seq), 0, next, fromTree);
            b.decode(linear.batch(0), 0, next, fromLinear);
            b.decode(linear.batch(0), 0, lastDraft, inOrder); // context + 3 tokens: draft 5 at context + 2 sees them all
        }
        assertArrayEquals(fromLinear.toHeapArray(), fromTree.toHeapArray(), "seed=" + seed);
        double[] want = new double[Q_HEADS * HEAD_DIM];
        for (int i = 0; i < want.length; i++) {
            want[i] = inOrder.get(i);
        }
        double rel = ReferenceAttention.relativeL2(
                FloatArray.fromArray(Arrays.copyOfRange(verified.toHeapArray(), 5 * Q_HEADS * HEAD_DIM, 6 * Q_HEADS * HEAD_DIM)), want);
        assertTrue(rel < 1e-5, "draft 5's verified row against the in-order decode: relative L2 " + rel + " seed=" + seed);
    }

    @Test
    void raggedPrefillAndDecodeRowsSitAtTheirOwnPositions() throws OutOfBlocksException {
        KvCache cache = new KvCache(KvCacheConfig.of(32, 16, KV_HEADS, HEAD_DIM, KvDtype.FP32));
        int a = cache.createSequence();
        int b = cache.createSequence();
        cache.append(a, 40);
        cache.append(b, 7);
        assertArrayEquals(new int[] {39, 6}, cache.batch(a, b).queryPositions());
        PrefillBatch ragged = PrefillBatch.of(cache.batch(a, b), new int[] {3, 7}, PrefillBatch.NO_WINDOW);
        assertArrayEquals(new int[] {37, 38, 39, 0, 1, 2, 3, 4, 5, 6}, ragged.queryPositions());
        assertNamed("causal=false", () -> PrefillBatch.nonCausal(cache.batch(a), new int[] {5}).queryPositions());
    }

    private static KvCache cacheWith(RotaryEmbedding rope, float[] contextK, float[] contextV) throws OutOfBlocksException {
        KvCache cache = new KvCache(KvCacheConfig.of(16, 16, KV_HEADS, HEAD_DIM, KvDtype.FP32));
        float[] k = contextK.clone();
        rope.apply(k, KV_HEADS, 0, contextK.length / WIDTH);
        cache.appendTokens(cache.createSequence(), k, contextV);
        return cache;
    }
}
