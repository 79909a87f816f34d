package dev.pagedattn.cache;

import java.util.Arrays;

/**
 * What changed in a prefix cache's published blocks, for a router that sends each request to the instance already
 * holding most of its prompt (vLLM's KV cache events: {@code BlockStored}, {@code BlockRemoved}, {@code AllBlocksCleared};
 * {@link PrefixCache#enableEvents}, {@link PrefixCache#takeEvents}). Blocks are named by their chained hash
 * ({@link PrefixCache#blockHash}): the first block's parent is the seed of the request's salt, so a router that hashes a
 * prompt's full blocks the same way finds how many leading blocks an instance holds.
 */
public sealed interface KvEvent permits KvEvent.BlockStored, KvEvent.BlockRemoved, KvEvent.AllBlocksCleared {
    /** Where a block is held: in the pools the kernels read, or in the prefix cache's host memory. */
    enum Medium { DEVICE, HOST }

    /** A full block published under {@code hash} after {@code parentHash}, holding {@code tokenIds} (its block's ids). */
    record BlockStored(long hash, long parentHash, int[] tokenIds, Medium medium) implements KvEvent {
        public BlockStored {
            tokenIds = tokenIds.clone();
        }

        @Override
        public int[] tokenIds() {
            return tokenIds.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof BlockStored b && b.hash == hash && b.parentHash == parentHash && b.medium == medium
                    && Arrays.equals(b.tokenIds, tokenIds);
        }

        @Override
        public int hashCode() {
            return Long.hashCode(hash) * 31 + medium.hashCode();
        }

        @Override
        public String toString() {
            return "BlockStored[hash=" + hash + ", parentHash=" + parentHash + ", tokenIds=" + Arrays.toString(tokenIds)
                    + ", medium=" + medium + "]";
        }
    }

    /** The block published under {@code hash} is no longer held in {@code medium} (evicted, dropped or brought back). */
    record BlockRemoved(long hash, Medium medium) implements KvEvent {
    }

    /** Every published block was dropped ({@link PrefixCache#reset}). */
    record AllBlocksCleared() implements KvEvent {
    }
}
