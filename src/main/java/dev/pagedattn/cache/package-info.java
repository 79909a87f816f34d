/**
 * The KV cache manager: a pool of fixed-size physical blocks ({@link dev.pagedattn.cache.BlockPool}),
 * one page table per sequence ({@link dev.pagedattn.cache.PageTable}, kept by
 * {@link dev.pagedattn.cache.SequenceRegistry}), the off-heap K and V pools of every layer
 * ({@link dev.pagedattn.cache.KvPool}, held by {@link dev.pagedattn.cache.KvStore} with the
 * {@link dev.pagedattn.cache.DirtySlotJournal} of what changed) laid out by
 * {@link dev.pagedattn.cache.KvLayout}, and the manager that ties them together
 * ({@link dev.pagedattn.cache.KvCache}).
 *
 * <p>Ownership: only {@code KvCache} changes reference counts and page tables and writes into the
 * pools (through {@code KvStore}); the mutating methods of {@code BlockPool}, {@code PageTable},
 * {@code KvPool} and {@code DirtySlotJournal} are package-private. {@code RandomKv} fills pools
 * with random content for tests and benchmarks.
 */
package dev.pagedattn.cache;
