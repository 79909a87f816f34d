package dev.pagedattn.cache;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * K/V for prompts as a model would produce it: the K/V at position p depends on the salt and on
 * every token up to p, so two sequences may share a block only when that content is truly equal.
 * Each distinct (salt, prefix) gets its own {@link Tokens} id, so a read names the exact prefix
 * its value came from.
 */
final class PromptKv {
    private final Map<String, Integer> ids = new HashMap<>();

    int id(String salt, int[] tokens, int position) {
        String key = (salt == null ? "" : salt) + "|" + Arrays.toString(Arrays.copyOf(tokens, position + 1));
        Integer id = ids.get(key);
        if (id == null) {
            id = ids.size() + 1;
            if (id >= 1 << 16) {
                throw new IllegalStateException("too many distinct prefixes for exact fp32 test values");
            }
            ids.put(key, id);
        }
        return id;
    }

    int[] ids(String salt, int[] tokens) {
        int[] out = new int[tokens.length];
        for (int p = 0; p < tokens.length; p++) {
            out[p] = id(salt, tokens, p);
        }
        return out;
    }

    /** Writes positions {@code [from, tokens.length)} of {@code seq}, every layer. */
    void write(KvCache cache, int seq, String salt, int[] tokens, int from) throws OutOfBlocksException {
        int[] all = ids(salt, tokens);
        int[] part = Arrays.copyOfRange(all, from, all.length);
        KvCacheConfig c = cache.config();
        for (int layer = 0; layer < c.numLayers(); layer++) {
            cache.writeTokens(seq, layer, from, part.length, Tokens.k(c, layer, part), Tokens.v(c, layer, part));
        }
    }

    /** Admits {@code tokens}, writes what was not reused, commits; returns the admission. */
    PrefixCache.Admission admitWriteCommit(KvCache cache, int[] tokens, String salt) throws OutOfBlocksException {
        PrefixCache.Admission a = cache.prefixCache().admit(tokens, salt);
        write(cache, a.seq(), salt, tokens, a.numCachedTokens());
        cache.prefixCache().commit(a.seq());
        return a;
    }

    /** Asserts that {@code seq} holds exactly the K/V of {@code tokens} under {@code salt}. */
    void assertHolds(KvCache cache, int seq, String salt, int[] tokens) {
        Tokens.assertHolds(cache, seq, ids(salt, tokens));
    }
}
