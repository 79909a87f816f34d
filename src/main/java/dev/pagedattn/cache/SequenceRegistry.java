package dev.pagedattn.cache;

import java.util.HashMap;
import java.util.Map;

/**
 * The live sequences: id -> page table. Ids count up and are never reused, so an id (or a batch)
 * kept past {@link KvCache#free} can never name a later sequence. Not thread-safe: the cache
 * serialises every call.
 */
final class SequenceRegistry {
    private final Map<Integer, PageTable> tables = new HashMap<>();
    private int nextId;

    /** Registers {@code table} under a new id. */
    int add(PageTable table) {
        int id = nextId++;
        tables.put(id, table);
        return id;
    }

    /** The table of {@code seq}; the message names an unknown id. */
    PageTable get(int seq) {
        PageTable t = tables.get(seq);
        if (t == null) {
            throw new IllegalArgumentException("seq=" + seq + " does not exist");
        }
        return t;
    }

    /** The table of {@code seq}, or null when there is no such sequence (any more). */
    PageTable getOrNull(int seq) {
        return tables.get(seq);
    }

    PageTable remove(int seq) {
        PageTable t = get(seq);
        tables.remove(seq);
        return t;
    }

    /** The live sequences' tables by id (the map itself is a copy; the tables are the live ones). */
    Map<Integer, PageTable> snapshot() {
        return new HashMap<>(tables);
    }

    int size() {
        return tables.size();
    }

    /**
     * Checks that every table holds exactly the blocks its length needs (its released ones a leading run
     * of {@link PageTable#RELEASED}) and that each block's reference count in {@code pool} is the number
     * of tables referencing it.
     */
    /** Every table's shape; with {@code pool} (null: a pool other caches share, checked by their owner) its refcounts too. */
    void verify(KvCacheConfig config, BlockPool pool) {
        int[] refs = new int[config.numBlocks()];
        for (Map.Entry<Integer, PageTable> e : tables.entrySet()) {
            PageTable t = e.getValue();
            BlockPool.check(t.numBlocks() == config.blocksFor(t.numTokens()),
                    "seq " + e.getKey() + " has " + t.numBlocks() + " blocks for " + t.numTokens() + " tokens");
            BlockPool.check(t.numReleased() <= t.numBlocks(), "seq " + e.getKey() + " has released " + t.numReleased()
                    + " of its " + t.numBlocks() + " blocks");
            for (int i = 0; i < t.numBlocks(); i++) {
                int b = t.block(i);
                BlockPool.check((b == PageTable.RELEASED) == (i < t.numReleased()), "seq " + e.getKey() + " logical block "
                        + i + " maps to " + b + " with numReleased=" + t.numReleased());
                if (b != PageTable.RELEASED) {
                    refs[b]++;
                }
            }
        }
        for (int b = 0; pool != null && b < refs.length; b++) {
            BlockPool.check(refs[b] == pool.refCount(b),
                    "block " + b + " has refCount=" + pool.refCount(b) + " but " + refs[b] + " page-table references");
        }
    }
}
