/**
 * The KV cache manager: a pool of fixed-size physical blocks ({@link dev.pagedattn.cache.BlockPool}),
 * one page table per sequence ({@link dev.pagedattn.cache.PageTable}), the off-heap K and V pools
 * ({@link dev.pagedattn.cache.KvPool}) laid out by {@link dev.pagedattn.cache.KvLayout}, and the
 * facade that ties them together ({@link dev.pagedattn.cache.KvCache}).
 *
 * <p>Ownership: only {@code KvCache} changes reference counts and writes into the pools; the
 * mutating methods of {@code BlockPool}, {@code PageTable} and {@code KvPool} are package-private.
 */
package dev.pagedattn.cache;
