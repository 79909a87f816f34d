package dev.pagedattn.cache;

/**
 * Expected exhaustion: an operation needed more blocks than the pool can hand out. Nothing was
 * changed. Callers can check first with {@link KvCache#canAppend} or catch this and preempt or
 * evict a sequence, as vLLM's scheduler does.
 */
public final class OutOfBlocksException extends Exception {
    private final int numNeeded;
    private final int numAllocatable;

    public OutOfBlocksException(int numNeeded, int numAllocatable) {
        super("out of KV blocks: needed=" + numNeeded + " allocatable=" + numAllocatable);
        this.numNeeded = numNeeded;
        this.numAllocatable = numAllocatable;
    }

    public int numNeeded() {
        return numNeeded;
    }

    public int numAllocatable() {
        return numAllocatable;
    }
}
