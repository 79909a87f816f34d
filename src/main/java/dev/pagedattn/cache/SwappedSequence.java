package dev.pagedattn.cache;

import java.lang.foreign.Arena;
import java.lang.ref.Cleaner;
import java.lang.foreign.MemorySegment;

/**
 * A sequence {@link KvCache#swapOut} moved to host memory (vLLM's swap preemption): its length, its released run
 * ({@link KvCache#releaseBefore}) and the K/V of every block it held, every layer, bit for bit in the pool's dtype, off
 * the heap. {@link KvCache#swapIn} brings it back into the cache it came from as a new sequence. {@link #close} gives the
 * host memory back at once (the garbage collector does not see it: an engine that swaps large sequences should close
 * them once swapped in or dropped); an unreachable one that was not closed gives it back when collected.
 */
public final class SwappedSequence implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    private final KvCache source;
    private final int numTokens;
    private final int numReleased;
    private final int numHeld;
    private final MemorySegment data;           // where block i's [layers][kvHeads][K, V][blockSize][headDim] starts: offsets[i]
    private final long[] offsets;
    private final PrefixCache.SeqTokens tokens; // the prefix cache's token ids, or null
    private final Cleaner.Cleanable release;    // frees the memory: close(), or the cleaner once unreachable
    private volatile boolean closed;

    /** Memory of its own ({@code space} null), or {@code numHeld} blocks of {@code space} (taken by the caller). */
    SwappedSequence(KvCache source, int numTokens, int numReleased, int numHeld, long blockBytes, PrefixCache.SeqTokens tokens,
                    SwapSpace space, int[] hostBlocks) {
        this.source = source;
        this.numTokens = numTokens;
        this.numReleased = numReleased;
        this.numHeld = numHeld;
        this.tokens = tokens;
        this.offsets = new long[numHeld];
        if (space == null) {
            Arena arena = Arena.ofShared();
            this.data = arena.allocate(Math.max(1, numHeld * blockBytes), 64);
            for (int i = 0; i < numHeld; i++) {
                offsets[i] = i * blockBytes;
            }
            this.release = CLEANER.register(this, arena::close);
        } else {
            this.data = space.data();
            for (int i = 0; i < numHeld; i++) {
                offsets[i] = space.offset(hostBlocks[i]);
            }
            this.release = CLEANER.register(this, () -> space.giveBack(hostBlocks));
        }
    }

    /** Gives the host memory back now (to the cache's swap space, if it came from there); a later {@link KvCache#swapIn} of this object is refused. Idempotent. */
    @Override
    public void close() {
        closed = true;
        release.clean();
    }

    /** Whether {@link #close} was called. */
    public boolean isClosed() {
        return closed;
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
        return numHeld * source.swapBlockBytes();
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

    /** Where held block {@code i}'s bytes start in {@link #data()}. */
    long offset(int i) {
        return offsets[i];
    }

    PrefixCache.SeqTokens tokens() {
        return tokens;
    }
}
