package dev.pagedattn.cache;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** A batch names blocks; once its sequences free or replace them, it must not be decoded. */
class StaleBatchTest {
    private static final KvCacheConfig C = KvCacheConfig.of(4, 4, 1, 2, KvDtype.FP32);

    @Test
    void aBatchTakenBeforeFreeIsRefusedEvenWhenItsBlocksHaveANewOwner() throws Exception {
        KvCache cache = new KvCache(C);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, 5);
        DecodeBatch stale = cache.batch(seq);
        cache.free(seq);
        int next = cache.createSequence();
        Tokens.append(cache, next, 7); // takes the freed block: the stale table now points at token 7
        assertTrue(cache.pageTable(next).block(0) == stale.block(0, 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stale.requireFits(C));
        assertTrue(e.getMessage().contains("seq=" + seq) && e.getMessage().contains("freed"), e.getMessage());
        cache.batch(next).requireFits(C);
    }

    @Test
    void aBatchTakenBeforeACopyOnWriteIsRefused() throws Exception {
        KvCache cache = new KvCache(C);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, 1, 2);
        int child = cache.fork(seq);
        DecodeBatch before = cache.batch(seq, child);
        cache.append(child, 1); // copies the shared half-full block
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> before.requireFits(C));
        assertTrue(e.getMessage().contains("seq=" + child) && e.getMessage().contains("copy-on-write"), e.getMessage());
    }

    @Test
    void appendsThatOnlyAddBlocksKeepABatchValid() throws Exception {
        KvCache cache = new KvCache(C);
        int seq = cache.createSequence();
        Tokens.append(cache, seq, 1, 2, 3, 4);
        DecodeBatch batch = cache.batch(seq);
        Tokens.append(cache, seq, 5, 6); // a new block; the batch's rows still name the same K/V
        batch.requireFits(C);
    }
}
