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
 * <p><b>Cascade</b> ({@link #build(DecodeBatch, int, int)} with {@code maxMembers > 1}, FlashInfer's cascade attention, vLLM's
 * for a shared prefix): where sequences of the batch, wherever they stand in it, start a chunk in the same physical block
 * (forks, a shared prompt from the prefix cache), one item serves up to {@code maxMembers} of them (in batch order): the blocks they all share are
 * read once for all their query heads, then each member goes on over its own ({@link JvmChunkKernel#attendShared}). The
 * chunks and partial slots stay those of the plain plan and every row takes the same operations in the same order, so
 * the output has the same bits with and without it. Members per item are capped so that the step keeps
 * {@code ITEMS_PER_THREAD} items per thread ({@link #cascadeMembers}); with a sliding window only sequences whose windows
 * start at the same token share (forks of one length).
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
    /** The most sequences one cascade item serves (its kernel's scratch holds that many query groups). */
    static final int MAX_MEMBERS = 8;

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
    private int[] itemMembers = new int[0]; // [numItems] sequences served (1: a plain item, itemSeq alone)
    private int[] itemMemberAt = new int[0]; // [numItems] where the item's sequences start in memberSeqs, itemSeq first
    private int[] memberSeqs = new int[0];  // [all chunks] the sequences of each (sequence, chunk) item, in batch order
    private int[] sharerAfter = new int[0]; // [all chunks] the next sequence whose same chunk starts in the same block, or -1
    private int[] tableKeys = new int[0];   // open addressing, block id -> last sequence seen with it (linkSharers)
    private int[] tableSeqs = new int[0];
    private int[] tableFrom = new int[0];   // the chunk's first token of the entry's sequence
    private int[] tableUsed = new int[0];   // == tableStamp: the entry is in use for the current chunk index
    private int tableStamp;
    private int[] itemChunk = new int[0];   // [numItems] the chunk's index in its sequences
    private int[] itemChunkEnd = new int[0]; // [numItems] the token where the chunk ends (each member stops at its end before)
    private int[] itemShared = new int[0];  // [numItems] end of the tokens all members read from the same blocks
    private int[] seqChunkBase = new int[0]; // [numSeqs] index of a sequence's first chunk among all chunks of the step
    private int[] chunkTaken = new int[0];  // [all chunks] == stamp: a cascade item of this step already serves it
    private int stamp;
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

    /** Makes the items for {@code batch} on {@code numThreads} threads, without cascade. */
    void build(DecodeBatch batch, int numThreads) {
        build(batch, numThreads, 1);
    }

    /**
     * The members a cascade item may take for a step of {@code plainItems} items on {@code numThreads} threads: at most
     * {@link #MAX_MEMBERS}, and few enough that merging whole runs of sharing sequences still leaves
     * {@code ITEMS_PER_THREAD} items per thread. 1 (no cascade) when that leaves less than two.
     */
    static int cascadeMembers(int plainItems, int numThreads) {
        long wanted = (long) ITEMS_PER_THREAD * numThreads;
        return (int) Math.max(1, Math.min(MAX_MEMBERS, plainItems / wanted));
    }

    /**
     * Makes the items for {@code batch} on {@code numThreads} threads, with cascade items of up to {@code maxMembers}
     * sequences (capped by {@link #cascadeMembers}; 1: none).
     */
    void build(DecodeBatch batch, int numThreads, int maxMembers) {
        int numSeqs = batch.numSeqs();
        chunkTokens = chunkTokens(numSeqs, numKvHeads, maxSpan(batch), batch.blockSize(), numThreads);
        int items = 0;
        int slots = 0;
        for (int s = 0; s < numSeqs; s++) {
            int chunks = (span(batch, s) + chunkTokens - 1) / chunkTokens;
            items += chunks * numKvHeads;
            slots += chunks > 1 ? chunks * numKvHeads : 0;
        }
        grow(items, numSeqs * numKvHeads, slots, numSeqs, items / numKvHeads);
        int members = numSeqs < 2 ? 1 : Math.min(maxMembers, cascadeMembers(items, numThreads));
        stamp++;
        int slot = 0;
        int chunkBase = 0;
        for (int s = 0; s < numSeqs; s++) {
            int chunks = (span(batch, s) + chunkTokens - 1) / chunkTokens;
            for (int h = 0; h < numKvHeads; h++) {
                int group = s * numKvHeads + h;
                groupNumChunks[group] = chunks;
                groupFirstSlot[group] = chunks > 1 ? slot + h * chunks : NO_PARTIAL;
                groupPending.set(group, chunks);
            }
            seqChunkBase[s] = chunkBase;
            chunkBase += chunks;
            slot += chunks > 1 ? chunks * numKvHeads : 0;
        }
        if (members > 1) {
            linkSharers(batch, chunkBase);
        }
        int item = 0;
        int memberAt = 0;
        for (int s = 0; s < numSeqs; s++) {
            int len = batch.contextLen(s);
            int first = batch.firstVisible(s);
            int origin = origin(batch, s);
            int chunks = groupNumChunks[s * numKvHeads];
            for (int c = 0; c < chunks; c++) {
                if (chunkTaken[seqChunkBase[s] + c] == stamp) {
                    continue; // a cascade item of an earlier sequence serves it
                }
                int from = Math.max(first, origin + c * chunkTokens);
                int m = 1;
                memberSeqs[memberAt] = s;
                for (int next = members > 1 ? sharerAfter[seqChunkBase[s] + c] : -1; m < members && next >= 0;
                     next = sharerAfter[seqChunkBase[next] + c]) {
                    memberSeqs[memberAt + m++] = next;
                }
                int chunkEnd = origin + (c + 1) * chunkTokens;
                int shared = m > 1 ? sharedEnd(batch, memberAt, m, from, chunkEnd) : from;
                if (shared == from) {
                    m = 1;
                }
                for (int j = 1; j < m; j++) {
                    chunkTaken[seqChunkBase[memberSeqs[memberAt + j]] + c] = stamp;
                }
                for (int h = 0; h < numKvHeads; h++, item++) {
                    int group = s * numKvHeads + h;
                    itemSeq[item] = s;
                    itemHead[item] = h;
                    itemFrom[item] = from;
                    itemTo[item] = Math.min(len, chunkEnd);
                    itemChunkEnd[item] = chunkEnd;
                    itemSlot[item] = chunks > 1 ? groupFirstSlot[group] + c : NO_PARTIAL;
                    itemMembers[item] = m;
                    itemMemberAt[item] = memberAt;
                    itemChunk[item] = c;
                    itemShared[item] = shared;
                }
                memberAt += m;
            }
        }
        numItems = item;
        assert item <= items && slot == slots : "items " + item + "/" + items + " slots " + slot + "/" + slots;
    }

    /**
     * For every chunk of every sequence, the next sequence of the batch (or -1) whose same chunk starts at the same token
     * in the same physical block ({@code sharerAfter}), wherever it stands in the batch: one pass per chunk index through
     * an open-addressing table from (block id, first token) to the last sequence seen with them. With a sliding window a
     * chunk starts at {@code max(firstVisible, origin + c * chunkTokens)}, so only sequences whose windows start at the same
     * token (forks of one length) link. Allocates nothing once the arrays have grown.
     */
    private void linkSharers(DecodeBatch batch, int numChunks) {
        int numSeqs = batch.numSeqs();
        int mask = tableKeys.length - 1;
        java.util.Arrays.fill(sharerAfter, 0, numChunks, -1);
        int maxChunks = 0;
        for (int s = 0; s < numSeqs; s++) {
            maxChunks = Math.max(maxChunks, groupNumChunks[s * numKvHeads]);
        }
        for (int c = 0; c < maxChunks; c++) {
            tableStamp++;
            for (int s = 0; s < numSeqs; s++) {
                if (c >= groupNumChunks[s * numKvHeads]) {
                    continue;
                }
                int from = Math.max(batch.firstVisible(s), origin(batch, s) + c * chunkTokens);
                int block = batch.block(s, from / batch.blockSize());
                int i = ((block * 0x9E3779B9) ^ (from * 0x85EBCA6B)) >>> 7 & mask;
                while (tableUsed[i] == tableStamp && (tableKeys[i] != block || tableFrom[i] != from)) {
                    i = (i + 1) & mask;
                }
                if (tableUsed[i] == tableStamp) {
                    sharerAfter[seqChunkBase[tableSeqs[i]] + c] = s;
                } else {
                    tableUsed[i] = tableStamp;
                    tableKeys[i] = block;
                    tableFrom[i] = from;
                }
                tableSeqs[i] = s;
            }
        }
    }

    /**
     * Where the tokens that members {@code memberSeqs[at, at + m)} read from the same physical blocks end in their chunk
     * {@code [from, chunkEnd)}: the blocks they all share from {@code from}'s on, cut at the shortest member's end of the
     * chunk; a block boundary unless every member's chunk ends at that token (so that no row's block is cut in two).
     */
    private int sharedEnd(DecodeBatch batch, int at, int m, int from, int chunkEnd) {
        int bs = batch.blockSize();
        int minEnd = Integer.MAX_VALUE;
        int maxEnd = 0;
        for (int j = 0; j < m; j++) {
            int end = Math.min(batch.contextLen(memberSeqs[at + j]), chunkEnd);
            minEnd = Math.min(minEnd, end);
            maxEnd = Math.max(maxEnd, end);
        }
        int endBlock = (minEnd + bs - 1) / bs;
        int b = from / bs;
        while (b < endBlock && sameBlock(batch, at, m, b)) {
            b++;
        }
        int shared = Math.min(b * bs, minEnd);
        if (shared % bs != 0 && shared != maxEnd) {
            shared -= shared % bs;
        }
        return Math.max(shared, from);
    }

    private boolean sameBlock(DecodeBatch batch, int at, int m, int b) {
        int block = batch.block(memberSeqs[at], b);
        for (int j = 1; j < m; j++) {
            if (batch.block(memberSeqs[at + j], b) != block) {
                return false;
            }
        }
        return true;
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

    private void grow(int items, int groups, int slots, int numSeqs, int chunks) {
        if (itemSeq.length < items) {
            itemSeq = new int[items];
            itemHead = new int[items];
            itemFrom = new int[items];
            itemTo = new int[items];
            itemSlot = new int[items];
            itemMembers = new int[items];
            itemMemberAt = new int[items];
            itemChunk = new int[items];
            itemChunkEnd = new int[items];
            itemShared = new int[items];
        }
        if (seqChunkBase.length < numSeqs) {
            seqChunkBase = new int[numSeqs];
            int size = Integer.highestOneBit(Math.max(1, numSeqs)) * 4; // at most half full
            tableKeys = new int[size];
            tableSeqs = new int[size];
            tableFrom = new int[size];
            tableUsed = new int[size];
            tableStamp = 0;
        }
        if (chunkTaken.length < chunks) {
            chunkTaken = new int[chunks];
            memberSeqs = new int[chunks];
            sharerAfter = new int[chunks];
            stamp = 0;
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

    /** How many of this step's items are cascade items (serve more than one sequence). */
    int cascadeItems() {
        int n = 0;
        for (int item = 0; item < numItems; item++) {
            n += itemMembers[item] > 1 ? 1 : 0;
        }
        return n;
    }

    /** Sequences the item serves ({@link #member}): 1 for a plain item, more for a cascade item. */
    int members(int item) {
        return itemMembers[item];
    }

    /** A cascade item's end of the tokens its members read from the same blocks ({@link #fromToken} for a plain item). */
    int sharedTo(int item) {
        return itemShared[item];
    }

    /** The end of the item's chunk (each member stops at its own context's end before it). */
    int chunkEnd(int item) {
        return itemChunkEnd[item];
    }

    /** Member {@code j}'s partial slot for a cascade item, or {@link #NO_PARTIAL}. */
    int memberSlot(int item, int j) {
        int group = memberGroup(item, j);
        return groupNumChunks[group] > 1 ? groupFirstSlot[group] + itemChunk[item] : NO_PARTIAL;
    }

    /** Member {@code j}'s sequence (its row in the batch); member 0 is {@link #seq}. */
    int member(int item, int j) {
        return memberSeqs[itemMemberAt[item] + j];
    }

    /** The item's sequences, {@code memberSeqs()[memberAt(item) ..]} ({@link #members} of them). */
    int[] memberSeqs() {
        return memberSeqs;
    }

    int memberAt(int item) {
        return itemMemberAt[item];
    }

    /** Member {@code j}'s (sequence, KV head) group. */
    int memberGroup(int item, int j) {
        return member(item, j) * numKvHeads + itemHead[item];
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

    /** Stores rows {@code [firstRow, firstRow + groupSize)} of a kernel's state as partial {@code slot}. */
    void store(int slot, float[] acc, float[] max, float[] sum, int firstRow) {
        System.arraycopy(acc, firstRow * headDim, partialAcc, slot * groupSize * headDim, groupSize * headDim);
        System.arraycopy(max, firstRow, partialMax, slot * groupSize, groupSize);
        System.arraycopy(sum, firstRow, partialSum, slot * groupSize, groupSize);
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
