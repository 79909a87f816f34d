package dev.pagedattn.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCacheConfig;
import dev.pagedattn.cache.KvDtype;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Cascade attention on the JVM backend ({@link JvmDecodeAttention#setCascade}): neighbouring sequences that share their
 * first blocks read them once per step. It must give the plain step's bits (the chunks, the slots and every row's
 * operations are the plain plan's), match the fp64 reference, cover every token of every head exactly once, and really
 * form cascade items where sequences share blocks.
 */
class CascadeDecodeTest {

    /**
     * Random batches of forks (runs of 2-10 sequences sharing a prompt of 1-700 tokens, some as long as the prompt, so
     * that they share its partial last block too; in half the rounds scattered over the batch), thread counts that split contexts and that do not, with and without
     * sinks, a soft cap and ALiBi: the cascade step's output is the plain step's, bit for bit, and close to fp64.
     */
    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void cascadeGivesThePlainStepsBits(KvDtype dtype) {
        long seed = TestSeeds.fresh("cascadeGivesThePlainStepsBits " + dtype);
        SplittableRandom random = new SplittableRandom(seed);
        int formed = 0;
        for (int round = 0; round < 16; round++) {
            int kvHeads = 1 + random.nextInt(3);
            int groupSize = new int[] {1, 2, 3, 4, 5, 8}[random.nextInt(6)];
            int headDim = new int[] {16, 40, 64}[random.nextInt(3)];
            int blockSize = new int[] {1, 4, 7, 16, 32}[random.nextInt(5)];
            int sharers = 2 + random.nextInt(9);
            int prefix = 1 + random.nextInt(700);
            int[] lengths = new int[8 + random.nextInt(24)];
            for (int i = 0; i < lengths.length; i++) {
                lengths[i] = prefix + (random.nextInt(4) == 0 ? 0 : random.nextInt(300));
            }
            int threads = random.nextInt(5) == 0 ? 1 + random.nextInt(16) : 1 + random.nextInt(2); // few: room to merge
            DecodeWorkload w = DecodeWorkload.sharedPrefix(lengths, sharers, prefix, kvHeads * groupSize, kvHeads, headDim,
                    blockSize, dtype, random.nextLong());
            if (random.nextBoolean()) {
                w = w.withSinks(DecodeWorkload.randomSinks(1, kvHeads * groupSize, 1, random.nextLong()));
            }
            if (random.nextBoolean()) {
                w = w.withSoftCap(1 + random.nextInt(30));
            } else if (random.nextBoolean()) {
                w = w.withAlibi(AlibiSlopes.standard(kvHeads * groupSize));
            }
            int window = random.nextInt(3) == 0 ? 1 + random.nextInt(900) : DecodeBatch.NO_WINDOW;
            if (window != DecodeBatch.NO_WINDOW) {
                w = w.windowed(window);
            }
            boolean shuffled = random.nextBoolean();
            if (shuffled) { // a prompt's sequences scattered over the batch
                int[] order = new int[lengths.length];
                for (int i = 0; i < order.length; i++) {
                    int j = random.nextInt(i + 1);
                    order[i] = order[j];
                    order[j] = i;
                }
                w = w.reordered(order);
            }
            DecodeWorkload work = w;
            String what = "round " + round + " " + dtype + " lengths=" + Arrays.toString(lengths) + " sharers=" + sharers
                    + " prefix=" + prefix + " heads=" + kvHeads * groupSize + "/" + kvHeads + " d=" + headDim + " block="
                    + blockSize + " threads=" + threads + " sinks=" + work.spec().sinks().any() + " cap=" + work.spec().softCap()
                    + " alibi=" + work.spec().hasAlibi() + " window=" + window + " shuffled=" + shuffled + " seed=" + seed;
            FloatArray plain = work.poisonedOutput();
            FloatArray cascade = work.poisonedOutput();
            try (JvmDecodeAttention a = SplitKDecodeTest.withThreads(threads, () -> new JvmDecodeAttention(work.cache(), work.spec()))) {
                assertTrue(a.cascade(), "cascade is on by default");
                a.setCascade(false);
                a.decode(work.batch(), 0, work.q(), plain);
                a.setCascade(true);
                a.decode(work.batch(), 0, work.q(), cascade);
            }
            for (int i = 0; i < plain.getSize(); i++) {
                assertEquals(Float.floatToRawIntBits(plain.get(i)), Float.floatToRawIntBits(cascade.get(i)), what + ": element " + i);
            }
            double tolerance = dtype == KvDtype.FP32 ? Accuracy.REL_L2 : 1e-4; // wider stored K/V: larger score rounding
            Accuracy.assertClose(cascade, work.reference(), tolerance, tolerance, what);
            JvmSplitPlan plan = new JvmSplitPlan(work.spec());
            plan.build(work.batch(), threads, JvmSplitPlan.MAX_MEMBERS);
            if (cascadeItems(plan) > 0) {
                formed++;
            }
        }
        assertTrue(formed >= 3, "fewer than 3 rounds formed cascade items (seed=" + seed + ")");
    }

    /** A batch of 16 forks of a 1000-token prompt on 2 threads: every item is a cascade item of 8 sequences. */
    @Test
    void forksOfOnePromptShareTheirItems() {
        int[] lengths = new int[16];
        Arrays.fill(lengths, 1000);
        for (int i = 0; i < lengths.length; i++) {
            lengths[i] += i; // each fork 0-15 tokens of its own
        }
        DecodeWorkload w = DecodeWorkload.sharedPrefix(lengths, 16, 1000, 32, 8, 64, 16, KvDtype.FP16,
                TestSeeds.fresh("forksOfOnePromptShareTheirItems"));
        JvmSplitPlan plan = new JvmSplitPlan(w.spec());
        plan.build(w.batch(), 2, JvmSplitPlan.MAX_MEMBERS);
        assertEquals(8, JvmSplitPlan.cascadeMembers(16 * 8, 2));
        assertEquals(2 * 8, plan.numItems(), "two runs of 8 sequences x 8 KV heads");
        for (int item = 0; item < plan.numItems(); item++) {
            assertEquals(8, plan.members(item));
            assertEquals(992, plan.sharedTo(item), "62 whole blocks of the prompt; its 63rd was copied by each fork");
        }
        plan.build(w.batch(), 2, 1);
        assertEquals(16 * 8, plan.numItems(), "without cascade one item per sequence and KV head");
        plan.build(w.batch(), 16, JvmSplitPlan.MAX_MEMBERS);
        assertEquals(0, cascadeItems(plan), "16 threads want 128 items: no room to merge");
    }

    /** Two prompts' forks interleaved (A, B, A, B, ...): each prompt's sequences still share items. */
    @Test
    void interleavedForksStillShare() {
        int[] lengths = new int[16];
        Arrays.fill(lengths, 600);
        DecodeWorkload w = DecodeWorkload.sharedPrefix(lengths, 8, 512, 8, 2, 64, 16, KvDtype.FP32,
                TestSeeds.fresh("interleavedForksStillShare"));
        int[] order = new int[16];
        for (int i = 0; i < 16; i++) {
            order[i] = i % 2 == 0 ? i / 2 : 8 + i / 2;
        }
        DecodeWorkload mixed = w.reordered(order);
        JvmSplitPlan plan = new JvmSplitPlan(mixed.spec());
        plan.build(mixed.batch(), 1, JvmSplitPlan.MAX_MEMBERS);
        assertEquals(4, JvmSplitPlan.cascadeMembers(32, 1), "32 plain items on one thread: 4 members an item");
        assertEquals(2 * 2 * 2, plan.numItems(), "two prompts x two items of 4 x 2 KV heads");
        for (int item = 0; item < plan.numItems(); item++) {
            assertEquals(4, plan.members(item));
            for (int j = 0; j < 4; j++) {
                assertEquals(plan.seq(item) + 2 * j, plan.member(item, j), "every second row of the batch");
            }
            assertEquals(512, plan.sharedTo(item), "the prompt's 32 blocks");
        }
        FloatArray out = mixed.poisonedOutput();
        try (JvmDecodeAttention a = SplitKDecodeTest.withThreads(1, () -> new JvmDecodeAttention(mixed.cache(), mixed.spec()))) {
            a.decode(mixed.batch(), 0, mixed.q(), out);
        }
        Accuracy.assertClose(out, mixed.reference(), "interleaved forks");
    }

    /**
     * A sliding window over forks of one length: their windows start at the same token, so they share the window's
     * blocks of the prompt (each fork's own tokens after them); bits of the plain step, close to fp64, items formed. A
     * fork one token longer has its window one token later and shares nothing.
     */
    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void forksOfOneLengthShareThroughAWindow(KvDtype dtype) {
        long seed = TestSeeds.fresh("forksOfOneLengthShareThroughAWindow " + dtype);
        int[] lengths = new int[16];
        Arrays.fill(lengths, 700);
        lengths[15] = 701;
        DecodeWorkload w = DecodeWorkload.sharedPrefix(lengths, 8, 650, 8, 2, 32, 16, dtype, seed).windowed(300);
        JvmSplitPlan plan = new JvmSplitPlan(w.spec());
        plan.build(w.batch(), 1, JvmSplitPlan.MAX_MEMBERS);
        for (int item = 0; item < plan.numItems(); item++) {
            int last = plan.member(item, plan.members(item) - 1);
            if (plan.seq(item) < 8) {
                assertEquals(4, plan.members(item), "the first prompt's forks, 4 an item (32 plain items on one thread)");
                assertEquals(400, plan.fromToken(item), "the window of 300 over 700 tokens starts at 400");
                assertEquals(640, plan.sharedTo(item), "the prompt's whole blocks up to 650");
            }
            assertTrue(last != 15 || plan.members(item) == 1 || plan.seq(item) >= 8, "seq 15 only with its own prompt's forks");
        }
        assertTrue(cascadeItems(plan) >= 4, "cascade items of the first prompt");
        FloatArray plain = w.poisonedOutput();
        FloatArray cascade = w.poisonedOutput();
        try (JvmDecodeAttention a = SplitKDecodeTest.withThreads(1, () -> new JvmDecodeAttention(w.cache(), w.spec()))) {
            a.setCascade(false);
            a.decode(w.batch(), 0, w.q(), plain);
            a.setCascade(true);
            a.decode(w.batch(), 0, w.q(), cascade);
        }
        for (int i = 0; i < plain.getSize(); i++) {
            assertEquals(Float.floatToRawIntBits(plain.get(i)), Float.floatToRawIntBits(cascade.get(i)), "element " + i + " seed=" + seed);
        }
        Accuracy.assertClose(cascade, w.reference(), 1e-4, 1e-4, "windowed forks " + dtype + " seed=" + seed);
    }

    /**
     * 24 requests with one system prompt admitted through the prefix cache (K/V a fixed function of token and position,
     * as a model's): their steps share the prompt's published blocks, form cascade items, and give the bits of the same
     * requests written from scratch into a cache without prefix caching, where nothing is shared.
     */
    @Test
    void prefixCacheHitsShareTheirBlocksInOneStep() throws Exception {
        long seed = TestSeeds.fresh("prefixCacheHitsShareTheirBlocksInOneStep");
        SplittableRandom random = new SplittableRandom(seed);
        int blockSize = 16;
        int[] system = random.ints(10 * blockSize + 5, 0, 128_000).toArray();
        int[][] prompts = new int[24][];
        for (int r = 0; r < prompts.length; r++) {
            prompts[r] = java.util.stream.IntStream.concat(Arrays.stream(system), random.ints(1 + random.nextInt(40), 0, 128_000))
                    .toArray();
        }
        dev.pagedattn.cache.KvCacheConfig config = dev.pagedattn.cache.KvCacheConfig.of(24 * 16, blockSize, 2, 32, KvDtype.FP16);
        dev.pagedattn.cache.KvCache cached = new dev.pagedattn.cache.KvCache(config);
        dev.pagedattn.cache.PrefixCache prefix = cached.enablePrefixCaching();
        dev.pagedattn.cache.KvCache plain = new dev.pagedattn.cache.KvCache(config);
        int[] cachedSeqs = new int[prompts.length];
        int[] plainSeqs = new int[prompts.length];
        for (int r = 0; r < prompts.length; r++) {
            dev.pagedattn.cache.PrefixCache.Admission a = prefix.admit(prompts[r], null);
            ModelKv.write(cached, a.seq(), prompts[r], a.numCachedTokens(), 1);
            prefix.commit(a.seq());
            cachedSeqs[r] = a.seq();
            plainSeqs[r] = plain.createSequence();
            plain.append(plainSeqs[r], prompts[r].length);
            ModelKv.write(plain, plainSeqs[r], prompts[r], 0, 1);
        }
        AttentionSpec spec = AttentionSpec.of(config, 8);
        FloatArray q = FloatArray.fromArray(DecodeProblem.uniform(random, (int) spec.queryElements(prompts.length)));
        DecodeBatch batch = cached.batch(cachedSeqs);
        JvmSplitPlan plan = new JvmSplitPlan(spec);
        plan.build(batch, 1, JvmSplitPlan.MAX_MEMBERS);
        assertTrue(cascadeItems(plan) > 0, "the requests' prompt blocks must form cascade items");
        for (int item = 0; item < plan.numItems(); item++) {
            assertTrue(plan.members(item) == 1 || plan.sharedTo(item) == 10 * blockSize, "the prompt's 10 whole blocks are shared");
        }
        FloatArray withCascade = new FloatArray(q.getSize());
        FloatArray fromScratch = new FloatArray(q.getSize());
        withCascade.init(Float.NaN);
        fromScratch.init(Float.NaN);
        try (JvmDecodeAttention x = SplitKDecodeTest.withThreads(1, () -> new JvmDecodeAttention(cached, spec));
             JvmDecodeAttention y = SplitKDecodeTest.withThreads(1, () -> new JvmDecodeAttention(plain, spec))) {
            assertEquals(cascadeItems(plan), x.cascadeItems(batch), "the backend's count of cascade items, on one thread");
            x.decode(batch, 0, q, withCascade);
            y.decode(plain.batch(plainSeqs), 0, q, fromScratch);
        }
        for (int i = 0; i < q.getSize(); i++) {
            assertEquals(Float.floatToRawIntBits(fromScratch.get(i)), Float.floatToRawIntBits(withCascade.get(i)),
                    "element " + i + " seed=" + seed);
        }
        Accuracy.assertClose(withCascade, ReferenceAttention.decode(plain, spec, 0, plainSeqs, q), "prefix-cached cascade seed=" + seed);
    }

    private static int cascadeItems(JvmSplitPlan plan) {
        return plan.cascadeItems();
    }

    /**
     * Random block tables where sequences anywhere in the batch share leading blocks of earlier prompts (some more of
     * them, some fewer): every token of every (sequence, KV head) is covered once, in order, by its own item or a
     * cascade item; a cascade item's shared tokens lie in the same physical block for all its members and end at a block
     * boundary or at every member's end of the chunk; partial slots are those of the plain plan, each used once.
     */
    @Test
    void cascadeItemsCoverEveryTokenOfEveryHeadOnce() {
        long seed = TestSeeds.fresh("cascadeItemsCoverEveryTokenOfEveryHeadOnce");
        SplittableRandom random = new SplittableRandom(seed);
        int formed = 0;
        for (int round = 0; round < 300; round++) {
            int numKvHeads = 1 + random.nextInt(4);
            int blockSize = 1 + random.nextInt(32);
            int numSeqs = 1 + random.nextInt(30);
            int threads = 1 + random.nextInt(8);
            int[] lens = new int[numSeqs];
            int[][] tables = new int[numSeqs][];
            int numBlocks = 0;
            java.util.List<int[]> prompts = new java.util.ArrayList<>();
            for (int s = 0; s < numSeqs; s++) {
                lens[s] = 1 + random.nextInt(random.nextBoolean() ? 60 : 3000);
                tables[s] = new int[(lens[s] + blockSize - 1) / blockSize];
                boolean fork = s > 0 && random.nextInt(4) != 0;
                int[] prompt = fork ? prompts.get(random.nextInt(prompts.size())) : new int[0]; // any earlier prompt
                int shared = Math.min(tables[s].length, random.nextInt(prompt.length + 1));
                for (int j = 0; j < tables[s].length; j++) {
                    tables[s][j] = j < shared ? prompt[j] : numBlocks++;
                }
                if (!fork) {
                    prompts.add(tables[s]);
                }
            }
            KvCacheConfig config = KvCacheConfig.of(numBlocks, blockSize, numKvHeads, 8, KvDtype.FP32);
            int window = random.nextInt(3) == 0 ? 1 + random.nextInt(2000) : DecodeBatch.NO_WINDOW;
            DecodeBatch batch = DecodeBatch.of(config, tables, lens).window(window);
            JvmSplitPlan plan = new JvmSplitPlan(new AttentionSpec(numKvHeads * 2, numKvHeads, 8, 1f));
            plan.build(batch, threads, JvmSplitPlan.MAX_MEMBERS);
            String what = "round " + round + " lens=" + Arrays.toString(lens) + " kvHeads=" + numKvHeads + " blockSize="
                    + blockSize + " window=" + window + " threads=" + threads + " chunk=" + plan.chunkTokens() + " seed=" + seed;
            int[] covered = new int[numSeqs * numKvHeads];
            for (int s = 0; s < numSeqs; s++) {
                for (int h = 0; h < numKvHeads; h++) {
                    covered[s * numKvHeads + h] = batch.firstVisible(s);
                }
            }
            boolean[] slotUsed = new boolean[numSeqs * numKvHeads * (3000 / Math.max(1, plan.chunkTokens()) + 2)];
            for (int item = 0; item < plan.numItems(); item++) {
                int m = plan.members(item);
                assertTrue(m >= 1 && m <= JvmSplitPlan.MAX_MEMBERS, what);
                int from = plan.fromToken(item);
                int shared = plan.sharedTo(item);
                formed += m > 1 ? 1 : 0;
                for (int j = 0; j < m; j++) {
                    int s = plan.member(item, j);
                    assertTrue(j == 0 ? s == plan.seq(item) : s > plan.member(item, j - 1), what + ": members in batch order");
                    int group = plan.memberGroup(item, j);
                    int end = m == 1 ? plan.toToken(item) : Math.min(lens[s], plan.chunkEnd(item));
                    assertEquals(covered[group], from, what + ": item " + item + " member " + j + " starts out of order");
                    assertTrue(end > from, what);
                    covered[group] = end;
                    int slot = m == 1 ? plan.slot(item) : plan.memberSlot(item, j);
                    int first = batch.firstVisible(s);
                    int chunk = (from - (first - first % blockSize)) / plan.chunkTokens();
                    if (plan.numChunks(group) == 1) {
                        assertEquals(JvmSplitPlan.NO_PARTIAL, slot, what);
                    } else {
                        assertEquals(plan.firstSlot(group) + chunk, slot, what);
                        assertTrue(!slotUsed[slot], what + ": slot " + slot + " used twice");
                        slotUsed[slot] = true;
                    }
                    if (m > 1) {
                        assertTrue(shared > from && shared <= end, what + ": shared end " + shared);
                        for (int b = from / blockSize; b * blockSize < shared; b++) {
                            assertEquals(tables[plan.seq(item)][b], tables[s][b], what + ": block " + b + " of member " + j);
                        }
                    }
                }
                if (m > 1 && shared % blockSize != 0) {
                    for (int j = 0; j < m; j++) {
                        assertEquals(shared, Math.min(lens[plan.member(item, j)], plan.chunkEnd(item)),
                                what + ": a shared end inside a block must be every member's end");
                    }
                }
            }
            for (int s = 0; s < numSeqs; s++) {
                for (int h = 0; h < numKvHeads; h++) {
                    assertEquals(lens[s], covered[s * numKvHeads + h], what + ": seq " + s + " head " + h);
                }
            }
        }
        assertTrue(formed > 100, "only " + formed + " cascade items formed (seed=" + seed + ")");
    }

    /** Once compiled, 100 cascade steps allocate nothing (one thread: the caller runs every item). */
    @Test
    void aSteadyCascadeLoopAllocatesNothing() {
        int[] lengths = new int[12];
        Arrays.fill(lengths, 300);
        DecodeWorkload w = DecodeWorkload.sharedPrefix(lengths, 6, 290, 8, 2, 32, 16, KvDtype.FP16,
                TestSeeds.fresh("aSteadyCascadeLoopAllocatesNothing"));
        FloatArray out = w.poisonedOutput();
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (JvmDecodeAttention a = SplitKDecodeTest.withThreads(1, () -> new JvmDecodeAttention(w.cache(), w.spec()))) {
            JvmSplitPlan plan = new JvmSplitPlan(w.spec());
            plan.build(w.batch(), 1, JvmSplitPlan.MAX_MEMBERS);
            assertTrue(cascadeItems(plan) > 0, "the case must form cascade items");
            long[] ids = {Thread.currentThread().threadId()};
            long probe = threads.getThreadAllocatedBytes(ids)[0];
            long ownBytes = threads.getThreadAllocatedBytes(ids)[0] - probe;
            long bytes = Long.MAX_VALUE;
            long deadline = System.nanoTime() + 30_000_000_000L;
            for (int round = 0; (round < 100 || System.nanoTime() < deadline) && bytes > 0; round++) {
                long before = threads.getThreadAllocatedBytes(ids)[0];
                for (int i = 0; i < 100; i++) {
                    a.decode(w.batch(), 0, w.q(), out);
                }
                bytes = threads.getThreadAllocatedBytes(ids)[0] - before - ownBytes;
            }
            assertEquals(0, bytes, "100 cascade steps still allocated " + bytes + " bytes");
        }
        Accuracy.assertClose(out, w.reference(), 1e-4, 1e-4, "cascade fp16");
    }
}
