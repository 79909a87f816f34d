package dev.pagedattn.cache;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A sequence {@link KvCache#swapOut} moved to host memory (vLLM's swap preemption): its length, its released run
 * ({@link KvCache#releaseBefore}) and the K/V of every block it held, every layer, bit for bit in the pool's dtype, off
 * the heap. {@link KvCache#swapIn} brings it back into the cache it came from as a new sequence; the memory goes when the
 * object is no longer reachable.
 */
public final class SwappedSequence {
    private final KvCache source;
    private final int numTokens;
    private final int numReleased;
    private final int numHeld;
    private final MemorySegment data;           // [numHeld][layers][kvHeads][K, V][blockSize][headDim] of the pool's dtype
    private final PrefixCache.SeqTokens tokens; // the prefix cache's token ids, or null

    SwappedSequence(KvCache source, int numTokens, int numReleased, int numHeld, long blockBytes, PrefixCache.SeqTokens tokens) {
        this.source = source;
        this.numTokens = numTokens;
        this.numReleased = numReleased;
        this.numHeld = numHeld;
        this.data = Arena.ofAuto().allocate(Math.max(1, numHeld * blockBytes), 64);
        this.tokens = tokens;
    }

    /** Tokens of the sequence. */
    public int numTokens() {
        return numTokens;
    }

    /** Blocks {@link KvCache#swapIn} takes from the pool: those the sequence held (not its released run). */
    public int numBlocks() {
        return numHeld;
    }

    /** Host bytes the K/V take. */
    public long bytes() {
        return data.byteSize();
    }

    KvCache source() {
        return source;
    }

    int numReleased() {
        return numReleased;
    }

    MemorySegment data() {
        return data;
    }

    PrefixCache.SeqTokens tokens() {
        return tokens;
    }
}
