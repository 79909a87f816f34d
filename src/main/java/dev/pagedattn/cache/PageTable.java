package dev.pagedattn.cache;

import java.util.Arrays;

/**
 * One sequence's map from logical block {@code i} (tokens {@code [i*blockSize, (i+1)*blockSize)})
 * to a physical block id. Read access is public; only {@link KvCache} changes it.
 *
 * <p>The first {@link #numReleased()} logical blocks may have been given back to the pool by
 * {@link KvCache#releaseBefore} (a sliding window's tokens that no query will see again): they map to
 * {@link #RELEASED}, and the sequence keeps its length and positions.
 */
public final class PageTable {
    /** What a released logical block maps to ({@link KvCache#releaseBefore}); never a block of the pool. */
    public static final int RELEASED = -2;

    private int[] blocks = new int[4]; // [capacity], valid up to numBlocks
    private int numBlocks;
    private int numTokens;
    private int numReleased;           // leading logical blocks mapped to RELEASED
    private int generation;            // bumped when a mapped block is replaced (copy-on-write) or released

    PageTable() {
    }

    /** A table whose first {@code numReleased} logical blocks are {@link #RELEASED} (a sequence that starts past its window). */
    static PageTable startingReleased(int numReleased) {
        PageTable t = new PageTable();
        for (int i = 0; i < numReleased; i++) {
            t.add(RELEASED);
        }
        if (numReleased > 0) {
            t.release(numReleased);
        }
        return t;
    }

    PageTable(PageTable other) {
        this.blocks = other.blocks.clone();
        this.numBlocks = other.numBlocks;
        this.numTokens = other.numTokens;
        this.numReleased = other.numReleased;
        this.generation = other.generation;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public int numTokens() {
        return numTokens;
    }

    /** Leading logical blocks given back to the pool ({@link KvCache#releaseBefore}); each maps to {@link #RELEASED}. */
    public int numReleased() {
        return numReleased;
    }

    /** Physical block of logical block {@code logical}, or {@link #RELEASED} for one of the first {@link #numReleased()}. */
    public int block(int logical) {
        if (logical < 0 || logical >= numBlocks) {
            throw new IllegalArgumentException("logicalBlock=" + logical + " is outside [0, " + numBlocks + ")");
        }
        return blocks[logical];
    }

    /** A copy of the mapping, logical order. */
    public int[] blocks() {
        return Arrays.copyOf(blocks, numBlocks);
    }

    /** Copies the mapping into {@code dst[offset ...]}. */
    void copyTo(int[] dst, int offset) {
        System.arraycopy(blocks, 0, dst, offset, numBlocks);
    }

    void add(int block) {
        if (numBlocks == blocks.length) {
            blocks = Arrays.copyOf(blocks, blocks.length * 2);
        }
        blocks[numBlocks++] = block;
    }

    void replace(int logical, int block) {
        blocks[logical] = block;
        generation++;
    }

    /** Maps logical blocks {@code [numReleased, upTo)} to {@link #RELEASED}; their blocks' references are the caller's to drop. */
    void release(int upTo) {
        Arrays.fill(blocks, numReleased, upTo, RELEASED);
        numReleased = upTo;
        generation++;
    }

    /** Drops logical blocks {@code [numBlocks, numBlocks())}; their blocks' references are the caller's to drop. */
    void dropTrailing(int numBlocks) {
        Arrays.fill(blocks, numBlocks, this.numBlocks, 0);
        this.numBlocks = numBlocks;
        generation++;
    }

    /** Changes whenever a block already in the table is replaced, released or dropped; appending blocks keeps it. */
    int generation() {
        return generation;
    }

    void setNumTokens(int numTokens) {
        this.numTokens = numTokens;
    }
}
