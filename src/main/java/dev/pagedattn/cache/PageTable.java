package dev.pagedattn.cache;

import java.util.Arrays;

/**
 * One sequence's map from logical block {@code i} (tokens {@code [i*blockSize, (i+1)*blockSize)})
 * to a physical block id. Read access is public; only {@link KvCache} changes it.
 */
public final class PageTable {
    private int[] blocks = new int[4]; // [capacity], valid up to numBlocks
    private int numBlocks;
    private int numTokens;
    private int generation;            // bumped when a mapped block is replaced (copy-on-write)

    PageTable() {
    }

    PageTable(PageTable other) {
        this.blocks = other.blocks.clone();
        this.numBlocks = other.numBlocks;
        this.numTokens = other.numTokens;
        this.generation = other.generation;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public int numTokens() {
        return numTokens;
    }

    /** Physical block of logical block {@code logical}. */
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

    /** Changes whenever a block already in the table is replaced; appending blocks keeps it. */
    int generation() {
        return generation;
    }

    void setNumTokens(int numTokens) {
        this.numTokens = numTokens;
    }
}
