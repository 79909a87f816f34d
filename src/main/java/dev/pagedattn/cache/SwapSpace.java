package dev.pagedattn.cache;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Host memory set aside once for swapped-out sequences (vLLM's {@code swap_space}): {@code numBlocks} host blocks of a
 * cache's block size in every layer, allocated and touched when made, so a swap-out copies at memory speed instead of
 * faulting fresh pages in (on a 2-core VM a fresh 128 MiB took 0.33 s, the copy 12 ms; benchmarks/NOTES.md). A free
 * stack of host block ids; thread-safe.
 */
final class SwapSpace {
    private final long blockBytes;
    private final MemorySegment data; // [numBlocks][blockBytes], this cache's lifetime (an automatic arena)
    private final int[] free;         // free host block ids, a stack
    private int numFree;

    SwapSpace(int numBlocks, long blockBytes) {
        this.blockBytes = blockBytes;
        this.data = Arena.ofAuto().allocate(numBlocks * blockBytes, 64); // zeroed: every page touched now
        this.free = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) {
            free[i] = numBlocks - 1 - i;
        }
        this.numFree = numBlocks;
    }

    int numBlocks() {
        return free.length;
    }

    synchronized int numFree() {
        return numFree;
    }

    MemorySegment data() {
        return data;
    }

    long offset(int hostBlock) {
        return hostBlock * blockBytes;
    }

    /** {@code n} host blocks, or null when fewer are free (nothing taken). */
    synchronized int[] take(int n) {
        if (n > numFree) {
            return null;
        }
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = free[--numFree];
        }
        return out;
    }

    /** Gives back host blocks {@link #take} handed out. */
    synchronized void giveBack(int[] blocks) {
        for (int b : blocks) {
            free[numFree++] = b;
        }
    }
}
