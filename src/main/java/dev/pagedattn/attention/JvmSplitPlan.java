package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * The work items of one JVM decode step and the split-K rule that makes them. An item is one query
 * group (sequence, KV head) over one chunk of that sequence's context. Rebuilt for every step
 * into arrays that only grow, so a steady decode loop allocates nothing.
 *
 * <p><b>Split rule.</b> With {@code G = numSeqs * numKvHeads} groups and {@code T} threads, a
 * step wants about {@code ITEMS_PER_THREAD * T} items, so that dynamic claiming evens out
 * ragged lengths and a worker delayed by the OS. When {@code G} already reaches that, every group
 * is one item (no merge). Otherwise contexts are cut into chunks of
 * {@code max(MIN_CHUNK_TOKENS, ceil(maxContextLen / ceil(ITEMS_PER_THREAD * T / G)))} tokens,
 * rounded up to whole blocks; each chunk is its own item, and the last chunk of a group to finish
 * merges the group's partials (log-sum-exp, in chunk order). At B = 1 with 8 KV heads on 16
 * threads an 8k context becomes 16 chunks of 512 tokens: 128 items, every core busy. The rule
 * depends on the batch shape and T only, so results are the same bits for a given thread count.
 *
 * <p>With a sliding window ({@link DecodeBatch#window(int)}) the chunks cover a sequence's visible tokens only: they
 * are laid from its first visible token rounded down to a block ({@link #span}), the first chunk starting at that
 * token.
 *
 * <p>Item order: sequence, then chunk, then KV head, so that the items running at the same time
 * read the tiles of all heads of the same blocks (adjacent in the pool, see KvLayout) and each
 * item walks its blocks in context order, one contiguous tile per block, K then V.
 */
final class JvmSplitPlan {
    /** Items wanted per thread before contexts are split. */
    static final int ITEMS_PER_THREAD = 8;
    /** The shortest chunk: below it the merge and per-item overhead outweigh the parallelism. */
    static final int MIN_CHUNK_TOKENS = 256;
    /** Marks an item that is its group's only chunk and writes the output directly. */
    static final int NO_PARTIAL = -1;

    private final int numKvHeads;
    private final int groupSize;
    private final int headDim;
    private int numItems;
    private int chunkTokens;
    private int[] itemSeq = new int[0];     // [numItems]
    private int[] itemHead = new int[0];    // [numItems]
    private int[] itemFrom = new int[0];    // [numItems] first token
    private int[] itemTo = new int[0];      // [numItems] end token (exclusive)
    private int[] itemSlot = new int[0];    // [numItems] partial slot, or NO_PARTIAL
    private int[] groupFirstSlot = new int[0]; // [numSeqs * numKvHeads] slot of chunk 0
    private int[] groupNumChunks = new int[0]; // [numSeqs * numKvHeads]
    private AtomicIntegerArray groupPending = new AtomicIntegerArray(0); // [numSeqs * numKvHeads] chunks not done
    private float[] partialAcc = new float[0]; // [numSlots][groupSize][headDim]
    private float[] partialMax = new float[0]; // [numSlots][groupSize]
    private float[] partialSum = new float[0]; // [numSlots][groupSize]

    JvmSplitPlan(AttentionSpec spec) {
        this.numKvHeads = spec.numKvHeads();
        this.groupSize = spec.groupSize();
        this.headDim = spec.headDim();
    }

    /** The chunk length the rule picks (a multiple of blockSize; maxContextLen or more means no split). */
    static int chunkTokens(int numSeqs, int numKvHeads, int maxContextLen, int blockSize, int numThreads) {
        long groups = (long) numSeqs * numKvHeads;
        long wanted = (long) ITEMS_PER_THREAD * numThreads;
        int whole = roundUp(maxContextLen, blockSize);
        if (groups >= wanted) {
            return whole;
        }
        long chunks = (wanted + groups - 1) / groups;
        int tokens = (int) Math.max(MIN_CHUNK_TOKENS, (maxContextLen + chunks - 1) / chunks);
        return Math.min(whole, roundUp(tokens, blockSize));
    }

    private static int roundUp(int n, int multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }

    /** Makes the items for {@code batch} on {@code numThreads} threads. */
    void build(DecodeBatch batch, int numThreads) {
        int numSeqs = batch.numSeqs();
        chunkTokens = chunkTokens(numSeqs, numKvHeads, maxSpan(batch), batch.blockSize(), numThreads);
        int items = 0;
        int slots = 0;
        for (int s = 0; s < numSeqs; s++) {
            int chunks = (span(batch, s) + chunkTokens - 1) / chunkTokens;
            items += chunks * numKvHeads;
            slots += chunks > 1 ? chunks * numKvHeads : 0;
        }
        grow(items, numSeqs * numKvHeads, slots);
        int item = 0;
        int slot = 0;
        for (int s = 0; s < numSeqs; s++) {
            int len = batch.contextLen(s);
            int first = batch.firstVisible(s);
            int origin = origin(batch, s);
            int chunks = (len - origin + chunkTokens - 1) / chunkTokens;
            for (int h = 0; h < numKvHeads; h++) {
                int group = s * numKvHeads + h;
                groupNumChunks[group] = chunks;
                groupFirstSlot[group] = chunks > 1 ? slot + h * chunks : NO_PARTIAL;
                groupPending.set(group, chunks);
            }
            for (int c = 0; c < chunks; c++) {
                for (int h = 0; h < numKvHeads; h++, item++) {
                    itemSeq[item] = s;
                    itemHead[item] = h;
                    itemFrom[item] = Math.max(first, origin + c * chunkTokens);
                    itemTo[item] = Math.min(len, origin + (c + 1) * chunkTokens);
                    itemSlot[item] = chunks > 1 ? slot + h * chunks + c : NO_PARTIAL;
                }
            }
            slot += chunks > 1 ? chunks * numKvHeads : 0;
        }
        numItems = item;
        assert item == items && slot == slots : "items " + item + "/" + items + " slots " + slot + "/" + slots;
    }

    /**
     * Tokens of sequence {@code s} the chunks are laid over: from its first visible token rounded down to a block
     * ({@link DecodeBatch#firstVisible}; 0 without a window) to its end, so that every chunk but a window's first
     * starts at a block.
     */
    static int span(DecodeBatch batch, int s) {
        return batch.contextLen(s) - origin(batch, s);
    }

    /** Where sequence {@code s}'s chunks are laid from: its first visible token rounded down to a block. */
    private static int origin(DecodeBatch batch, int s) {
        int first = batch.firstVisible(s);
        return first - first % batch.blockSize();
    }

    /** The longest {@link #span} of the batch. */
    static int maxSpan(DecodeBatch batch) {
        int m = 0;
        for (int s = 0; s < batch.numSeqs(); s++) {
            m = Math.max(m, span(batch, s));
        }
        return m;
    }

    private void grow(int items, int groups, int slots) {
        if (itemSeq.length < items) {
            itemSeq = new int[items];
            itemHead = new int[items];
            itemFrom = new int[items];
            itemTo = new int[items];
            itemSlot = new int[items];
        }
        if (groupFirstSlot.length < groups) {
            groupFirstSlot = new int[groups];
            groupNumChunks = new int[groups];
            groupPending = new AtomicIntegerArray(groups);
        }
        if (partialMax.length < slots * groupSize) {
            partialAcc = new float[slots * groupSize * headDim];
            partialMax = new float[slots * groupSize];
            partialSum = new float[slots * groupSize];
        }
    }

    int numItems() {
        return numItems;
    }

    /** Tokens per chunk this step (a context at most this long is one item per KV head). */
    int chunkTokens() {
        return chunkTokens;
    }

    int seq(int item) {
        return itemSeq[item];
    }

    int kvHead(int item) {
        return itemHead[item];
    }

    int fromToken(int item) {
        return itemFrom[item];
    }

    int toToken(int item) {
        return itemTo[item];
    }

    /** The item's partial slot, or {@link #NO_PARTIAL} when it writes the output itself. */
    int slot(int item) {
        return itemSlot[item];
    }

    int group(int item) {
        return itemSeq[item] * numKvHeads + itemHead[item];
    }

    int firstSlot(int group) {
        return groupFirstSlot[group];
    }

    int numChunks(int group) {
        return groupNumChunks[group];
    }

    /**
     * Counts one chunk of {@code group} done (after its partial is stored); true for the last one,
     * whose caller then merges. The atomic decrement orders every chunk's stores before the merge.
     */
    boolean finishChunk(int group) {
        return groupPending.decrementAndGet(group) == 0;
    }

    void store(int slot, float[] acc, float[] max, float[] sum) {
        System.arraycopy(acc, 0, partialAcc, slot * groupSize * headDim, groupSize * headDim);
        System.arraycopy(max, 0, partialMax, slot * groupSize, groupSize);
        System.arraycopy(sum, 0, partialSum, slot * groupSize, groupSize);
    }

    float[] partialAcc() {
        return partialAcc;
    }

    float[] partialMax() {
        return partialMax;
    }

    float[] partialSum() {
        return partialSum;
    }
}
