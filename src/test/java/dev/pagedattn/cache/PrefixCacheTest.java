package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Prefix caching: chained block hashes, admission reusing cached blocks, commit, salts. */
class PrefixCacheTest {
    private static final int BS = 4;

    private KvCache cache;
    private PrefixCache prefix;
    private final PromptKv kv = new PromptKv();

    @BeforeEach
    void create() {
        cache = new KvCache(new KvCacheConfig(16, BS, 2, 2, KvDtype.FP32, 2));
        RandomKv.shuffleFreeBlocks(cache, 1234);
        prefix = cache.enablePrefixCaching();
    }

    @Test
    void prefixCachingIsOffUntilEnabledAndEnablingIsIdempotent() {
        KvCache plain = new KvCache(KvCacheConfig.of(4, 4, 1, 1, KvDtype.FP32));
        assertNull(plain.prefixCache());
        PrefixCache p = plain.enablePrefixCaching();
        assertSame(p, plain.enablePrefixCaching());
        assertSame(p, plain.prefixCache());
    }

    @Test
    void blockHashIsDeterministicAndChainsParentAndEveryToken() {
        Random random = TestRandom.create("PrefixCacheTest.blockHashIsDeterministicAndChainsParentAndEveryToken");
        int[] tokens = random.ints(12, 0, 50_000).toArray();
        long parent = random.nextLong();
        long h = PrefixCache.blockHash(parent, tokens, 4, 4);
        assertEquals(h, PrefixCache.blockHash(parent, tokens.clone(), 4, 4));
        assertEquals(h, PrefixCache.blockHash(parent, Arrays.copyOfRange(tokens, 4, 8), 0, 4), "only the block's tokens count");
        assertNotEquals(h, PrefixCache.blockHash(parent + 1, tokens, 4, 4), "parent");
        assertNotEquals(h, PrefixCache.blockHash(PrefixCache.blockHash(parent, tokens, 0, 4), tokens, 4, 4), "chained parent");
        for (int i = 4; i < 8; i++) {
            int[] changed = tokens.clone();
            changed[i]++;
            assertNotEquals(h, PrefixCache.blockHash(parent, changed, 4, 4), "token " + i);
        }
        int[] swapped = tokens.clone();
        swapped[4] = tokens[5];
        swapped[5] = tokens[4];
        if (tokens[4] != tokens[5]) {
            assertNotEquals(h, PrefixCache.blockHash(parent, swapped, 4, 4), "order of tokens");
        }
    }

    @Test
    void saltSeedsAreDistinctAndEmptyMeansNone() {
        assertEquals(PrefixCache.seedFor(null), PrefixCache.seedFor(""));
        assertEquals(PrefixCache.seedFor("tenant-a"), PrefixCache.seedFor("tenant-a"));
        assertNotEquals(PrefixCache.seedFor(null), PrefixCache.seedFor("tenant-a"));
        assertNotEquals(PrefixCache.seedFor("tenant-a"), PrefixCache.seedFor("tenant-b"));
        assertNotEquals(PrefixCache.seedFor("ab"), PrefixCache.seedFor("ba"));
    }

    @Test
    void firstAdmissionReusesNothingAndCommitPublishesOnlyFullBlocks() throws Exception {
        int[] prompt = Tokens.range(1, 10);
        PrefixCache.Admission a = prefix.admit(prompt, null);
        assertEquals(0, a.numCachedTokens());
        assertEquals(10, a.numPromptTokens());
        assertEquals(0, a.numCachedBlocks(BS));
        assertEquals(10, cache.length(a.seq()));
        int[] blocks = cache.pageTable(a.seq()).blocks();
        assertEquals(3, blocks.length);
        for (int b : blocks) {
            assertFalse(prefix.isCached(b), "nothing is published before commit");
        }
        kv.write(cache, a.seq(), null, prompt, 0);
        prefix.commit(a.seq());
        assertTrue(prefix.isCached(blocks[0]));
        assertTrue(prefix.isCached(blocks[1]));
        assertFalse(prefix.isCached(blocks[2]), "a partly filled block is never published");
        assertEquals(2, prefix.metrics().numCachedBlocks());
        prefix.commit(a.seq()); // idempotent
        assertEquals(2, prefix.metrics().numCachedBlocks());
        kv.assertHolds(cache, a.seq(), null, prompt);
    }

    @Test
    void admissionSharingACachedPrefixReusesItsBlocks() throws Exception {
        int[] first = Tokens.range(1, 10);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, first, null);
        int[] second = Tokens.concat(Arrays.copyOf(first, 8), 90, 91, 92);
        PrefixCache.Admission b = prefix.admit(second, null);
        assertEquals(8, b.numCachedTokens());
        assertEquals(2, b.numCachedBlocks(BS));
        int[] ta = cache.pageTable(a.seq()).blocks();
        int[] tb = cache.pageTable(b.seq()).blocks();
        assertArrayEquals(Arrays.copyOf(ta, 2), Arrays.copyOf(tb, 2));
        assertEquals(2, cache.pool().refCount(ta[0]));
        assertEquals(2, cache.pool().refCount(ta[1]));
        assertNotEquals(ta[2], tb[2]);
        assertEquals(1, cache.pool().refCount(tb[2]));
        assertEquals(3 + 1, cache.numUsedBlocks());
        kv.write(cache, b.seq(), null, second, b.numCachedTokens());
        prefix.commit(b.seq());
        kv.assertHolds(cache, b.seq(), null, second);
        kv.assertHolds(cache, a.seq(), null, first);
    }

    /** Cached: 3 full blocks of a 13-token prompt. The block holding the last token is never reused. */
    @ParameterizedTest(name = "prompt of {0} tokens reuses {1}")
    @CsvSource({"1, 0", "4, 0", "5, 4", "8, 4", "9, 8", "12, 8", "13, 12", "14, 12", "20, 12"})
    void lastPromptTokenIsAlwaysRecomputed(int length, int expectedCached) throws Exception {
        int[] cached = Tokens.range(1, 13);
        kv.admitWriteCommit(cache, cached, null);
        int[] prompt = Arrays.copyOf(cached, length);
        for (int i = 13; i < length; i++) {
            prompt[i] = 500 + i;
        }
        PrefixCache.Admission a = prefix.admit(prompt, null);
        assertEquals(expectedCached, a.numCachedTokens());
        assertEquals(Math.min((length - 1) / BS, 3) * BS, a.numCachedTokens(), "reusable = (len-1)/blockSize blocks");
        kv.write(cache, a.seq(), null, prompt, a.numCachedTokens());
        kv.assertHolds(cache, a.seq(), null, prompt);
    }

    @ParameterizedTest(name = "first difference at {0} reuses {1} tokens")
    @CsvSource({"0, 0", "3, 0", "4, 4", "7, 4", "8, 8", "11, 8"})
    void divergingPromptReusesOnlyTheCommonFullBlocks(int firstDifference, int expectedCached) throws Exception {
        int[] cached = Tokens.range(1, 13);
        kv.admitWriteCommit(cache, cached, null);
        int[] prompt = cached.clone();
        prompt[firstDifference] = 999;
        PrefixCache.Admission a = prefix.admit(prompt, null);
        assertEquals(expectedCached, a.numCachedTokens());
        kv.write(cache, a.seq(), null, prompt, a.numCachedTokens());
        kv.assertHolds(cache, a.seq(), null, prompt);
    }

    @Test
    void saltIsolatesTenants() throws Exception {
        int[] prompt = Tokens.range(1, 9);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt, "tenant-a");
        PrefixCache.Admission b = kv.admitWriteCommit(cache, prompt, "tenant-b");
        PrefixCache.Admission none = kv.admitWriteCommit(cache, prompt, null);
        assertEquals(0, b.numCachedTokens(), "another tenant's blocks are not reused");
        assertEquals(0, none.numCachedTokens());
        PrefixCache.Admission a2 = prefix.admit(prompt, "tenant-a");
        PrefixCache.Admission b2 = prefix.admit(prompt, "tenant-b");
        assertEquals(8, a2.numCachedTokens());
        assertEquals(8, b2.numCachedTokens());
        assertEquals(cache.pageTable(a.seq()).block(0), cache.pageTable(a2.seq()).block(0));
        assertEquals(cache.pageTable(b.seq()).block(0), cache.pageTable(b2.seq()).block(0));
        assertNotEquals(cache.pageTable(a.seq()).block(0), cache.pageTable(b.seq()).block(0));
        kv.write(cache, a2.seq(), "tenant-a", prompt, 8);
        kv.write(cache, b2.seq(), "tenant-b", prompt, 8);
        kv.assertHolds(cache, a2.seq(), "tenant-a", prompt);
        kv.assertHolds(cache, b2.seq(), "tenant-b", prompt);
        kv.assertHolds(cache, none.seq(), null, prompt);
    }

    @Test
    void hashHitIsConfirmedByParentAndTokenIds() throws Exception {
        int[] prompt = Tokens.range(1, 9);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt, null);
        int block = cache.pageTable(a.seq()).block(0);
        Method matches = PrefixCache.class.getDeclaredMethod("matches", int.class, long.class, int[].class, int.class);
        matches.setAccessible(true);
        long seed = PrefixCache.seedFor(null);
        assertTrue((boolean) matches.invoke(prefix, block, seed, prompt, 0));
        int[] other = prompt.clone();
        other[2] = 77;
        assertFalse((boolean) matches.invoke(prefix, block, seed, other, 0), "same hash slot, other tokens: a collision is refused");
        assertFalse((boolean) matches.invoke(prefix, block, PrefixCache.seedFor("x"), prompt, 0), "other parent");
        int free = cache.pageTable(a.seq()).block(2);
        assertFalse((boolean) matches.invoke(prefix, free, seed, prompt, 0), "an uncached block never matches");
    }

    @Test
    void cachedBlocksStayImmutableEvenForTheirOnlyOwner() throws Exception {
        int[] prompt = Tokens.range(1, 6);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt, null);
        int published = cache.pageTable(a.seq()).block(0);
        assertEquals(1, cache.pool().refCount(published));
        int last = cache.pageTable(a.seq()).block(1);
        float[] one = new float[cache.config().tokenWidth()];
        cache.write(a.seq(), 1, 2, one, one);
        int copy = cache.pageTable(a.seq()).block(0);
        assertNotEquals(published, copy, "a write into a published block goes to a private copy");
        assertTrue(prefix.isCached(published) && !prefix.isCached(copy));
        assertTrue(cache.pool().isEvictable(published), "the published block stays cached, now unreferenced");
        // the cached content is unchanged: a new request still reuses it
        PrefixCache.Admission b = prefix.admit(Tokens.concat(prompt, 9), null);
        assertEquals(4, b.numCachedTokens());
        assertEquals(published, cache.pageTable(b.seq()).block(0));
        kv.write(cache, b.seq(), null, Tokens.concat(prompt, 9), 4);
        kv.assertHolds(cache, b.seq(), null, Tokens.concat(prompt, 9));
        cache.write(a.seq(), 1, 4, one, one); // the unpublished last block is written in place
        assertEquals(last, cache.pageTable(a.seq()).block(1));
    }

    @Test
    void generatedTokensArePublishedByCommitAndReusedLater() throws Exception {
        int[] prompt = Tokens.range(1, 6);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt, null);
        int[] generated = {40, 41, 42, 43};
        assertEquals(6, prefix.append(a.seq(), generated));
        int[] all = Tokens.concat(prompt, generated);
        kv.write(cache, a.seq(), null, all, 6);
        prefix.commit(a.seq());
        int[] table = cache.pageTable(a.seq()).blocks();
        assertTrue(prefix.isCached(table[1]), "block of prompt tail + generated tokens");
        assertFalse(prefix.isCached(table[2]));
        PrefixCache.Admission b = prefix.admit(Tokens.concat(all, 7), null);
        assertEquals(8, b.numCachedTokens());
        assertEquals(table[1], cache.pageTable(b.seq()).block(1));
        kv.write(cache, b.seq(), null, Tokens.concat(all, 7), 8);
        kv.assertHolds(cache, b.seq(), null, Tokens.concat(all, 7));
    }

    @Test
    void forkedSequencesPublishTheirOwnContinuations() throws Exception {
        int[] prompt = Tokens.range(1, 6);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt, null);
        int child = cache.fork(a.seq());
        int[] left = Tokens.concat(prompt, 50, 51);
        int[] right = Tokens.concat(prompt, 60, 61);
        int lastBefore = cache.pageTable(a.seq()).block(1);
        prefix.append(a.seq(), new int[] {50, 51});
        prefix.append(child, new int[] {60, 61});
        assertNotEquals(lastBefore, cache.pageTable(a.seq()).block(1), "the first append copies the shared last block");
        assertEquals(lastBefore, cache.pageTable(child).block(1), "the second finds it unshared: no second copy");
        kv.write(cache, a.seq(), null, left, 6);
        kv.write(cache, child, null, right, 6);
        prefix.commit(a.seq());
        prefix.commit(child);
        PrefixCache.Admission l = prefix.admit(Tokens.concat(left, 1), null);
        PrefixCache.Admission r = prefix.admit(Tokens.concat(right, 1), null);
        assertEquals(8, l.numCachedTokens());
        assertEquals(8, r.numCachedTokens());
        assertEquals(cache.pageTable(a.seq()).block(1), cache.pageTable(l.seq()).block(1));
        assertEquals(cache.pageTable(child).block(1), cache.pageTable(r.seq()).block(1));
        kv.write(cache, l.seq(), null, Tokens.concat(left, 1), 8);
        kv.write(cache, r.seq(), null, Tokens.concat(right, 1), 8);
        kv.assertHolds(cache, l.seq(), null, Tokens.concat(left, 1));
        kv.assertHolds(cache, r.seq(), null, Tokens.concat(right, 1));
    }

    @Test
    void contentCommittedTwiceKeepsOneCachedCopy() throws Exception {
        int[] prompt = Tokens.range(1, 9);
        PrefixCache.Admission a = prefix.admit(prompt, null);
        PrefixCache.Admission b = prefix.admit(prompt, null); // before a commits: no hit
        assertEquals(0, b.numCachedTokens());
        kv.write(cache, a.seq(), null, prompt, 0);
        kv.write(cache, b.seq(), null, prompt, 0);
        prefix.commit(a.seq());
        prefix.commit(b.seq());
        assertEquals(2, prefix.metrics().numCachedBlocks());
        int[] tb = cache.pageTable(b.seq()).blocks();
        assertFalse(prefix.isCached(tb[0]));
        cache.free(b.seq());
        assertEquals(0, cache.pool().numEvictable(), "b's duplicate blocks go back as plain free blocks");
        cache.verify();
        PrefixCache.Admission c = prefix.admit(prompt, null);
        assertEquals(cache.pageTable(a.seq()).block(0), cache.pageTable(c.seq()).block(0));
    }

    @Test
    void tokensAppendedBehindThePrefixCacheAreNeverPublishedUnderWrongIds() throws Exception {
        int[] prompt = Tokens.range(1, 6);
        PrefixCache.Admission a = kv.admitWriteCommit(cache, prompt, null);
        // two tokens added through KvCache directly: the prefix cache never learns their ids
        int[] bypassed = Tokens.concat(prompt, 70, 71);
        cache.append(a.seq(), 2);
        kv.write(cache, a.seq(), null, bypassed, 6);
        // continuing through the prefix cache would pair ids 72, 73 with the K/V of 70, 71
        assertMessage("seq=" + a.seq() + " has length=8", () -> prefix.append(a.seq(), new int[] {72, 73}));
        assertMessage("seq=" + a.seq() + " has length=8", () -> prefix.commit(a.seq()));
        PrefixCache.Admission b = prefix.admit(Tokens.concat(prompt, 72, 73, 9), null);
        assertEquals(4, b.numCachedTokens(), "only the block published before the bypass is reused");
    }

    @Test
    void badInputIsRefusedAndChangesNothing() throws Exception {
        PrefixCache.Admission a = kv.admitWriteCommit(cache, Tokens.range(1, 6), null);
        int plain = cache.createSequence();
        assertMessage("tokenIds.length=0", () -> prefix.admit(new int[0], null));
        assertMessage("tokenIds.length=null", () -> prefix.admit(null, "s"));
        assertMessage("seq=" + plain + " was not created by PrefixCache.admit", () -> prefix.commit(plain));
        assertMessage("seq=" + plain + " was not created by PrefixCache.admit", () -> prefix.append(plain, new int[] {1}));
        assertMessage("seq=999 does not exist", () -> prefix.commit(999));
        assertMessage("seq=999 does not exist", () -> prefix.append(999, new int[] {1}));
        cache.free(a.seq());
        assertMessage("seq=" + a.seq() + " does not exist", () -> prefix.commit(a.seq()));
        cache.free(plain);
        cache.verify();
        assertEquals(0, cache.numUsedBlocks());
    }

    private void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        CacheSnapshot before = CacheSnapshot.of(cache);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(expected), "'" + e.getMessage() + "' lacks '" + expected + "'");
        assertEquals(before, CacheSnapshot.of(cache));
    }

    @Test
    void appendOfNoTokenIdsNamesTheArgument() throws Exception {
        PrefixCache.Admission a = kv.admitWriteCommit(cache, Tokens.range(1, 6), null);
        CacheSnapshot before = CacheSnapshot.of(cache);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> prefix.append(a.seq(), null));
        assertTrue(e.getMessage().contains("tokenIds=null"), e.getMessage());
        assertEquals(before, CacheSnapshot.of(cache));
    }
}
