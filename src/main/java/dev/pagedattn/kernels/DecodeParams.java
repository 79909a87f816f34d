package dev.pagedattn.kernels;

import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Slots of the per-step {@code params} IntArray the decode kernels read. Values that change
 * between steps travel here because TornadoVM freezes scalar arguments at JIT time.
 */
public final class DecodeParams {
    /** Sequences in this step's batch (rows of blockTables/contextLens that are live). */
    public static final int NUM_SEQS = 0;
    /** Tokens per split-K partition (a multiple of the block size). */
    public static final int PARTITION_TOKENS = 1;
    /** Partitions of the longest sequence; the grid's partition dimension. */
    public static final int MAX_PARTITIONS = 2;
    /** Element offset where the decoded data starts in the pools: 0, since every layer has its own pools (a plan binds one layer). */
    public static final int LAYER_BASE = 3;
    /** Columns of blockTables. */
    public static final int MAX_BLOCKS_PER_SEQ = 4;
    /** 1 when MAX_PARTITIONS == 1: the attention kernel writes the normalised output itself. */
    public static final int WRITE_FINAL = 5;
    /** New token slots to scatter into the pools this step. */
    public static final int NUM_NEW_SLOTS = 6;
    /** 1 to skip attention (a scatter-only step). */
    public static final int SKIP_ATTENTION = 7;
    /** Work-items that share one output element's partitions in the merge (a power of two, see DecodeGrid). */
    public static final int MERGE_SLICES = 8;
    /**
     * Balanced grid (the stream kernels): tiles of {@link StreamDecodeKernels#TILE} tokens per work-group, or 0
     * for the partition grid. Work-group {@code g} then reads global tiles {@code [g R, min((g + 1) R,
     * TOTAL_TILES))} of the concatenated (sequence, KV head) pairs, sequence-major: pair (s, h) holds tiles
     * {@code [kvHeads * prefix[s] + h * tiles(s), ... + tiles(s))}, {@code tiles(s) = ceil(len(s) / TILE)}, and
     * a pair's piece read by work-group {@code g} is its partition {@code g - floor(pairStart / R)}.
     */
    public static final int TILES_PER_GROUP = 9;
    /** Balanced grid: tiles of all pairs together. */
    public static final int TOTAL_TILES = 10;
    /**
     * Balanced grid: the grid's KV heads, i.e. (KV head, head tile) pairs of the layer (shard) the kernels read:
     * {@code numKvHeads * HEAD_TILES}.
     */
    public static final int KV_HEADS = 11;
    /** Balanced grid: where the sequence of each work-group's first tile is stored ({@code [numGroups]}). */
    public static final int GROUP_SEQS = 12;
    /**
     * Balanced grid: work-groups per KV head ({@link StreamDecodeKernels#headTiles}: one per four query heads), each
     * a "KV head" of the grid.
     */
    public static final int HEAD_TILES = 13;
    /**
     * Where the context lengths start in the array the kernels get as {@code contextLens}: 0 when it is an array of
     * its own; in a packed plan ({@code -Dpagedattn.tornado.packedInputs}) the kernels get this params array as
     * {@code contextLens} and {@code blockTables} too, and the lengths and tables follow the header's regions.
     */
    public static final int LENS = 14;
    /** Where the block tables start in the array the kernels get as {@code blockTables} (0, or as {@link #LENS}). */
    public static final int TABLES = 15;
    /** Where the staged slots' pool offsets start in the array the scatter gets as {@code slotOffsets} (0, or as {@link #LENS}). */
    public static final int SLOTS = 16;
    /**
     * Where the staged V rows start in the array the scatter gets as {@code stageV}, in that array's elements (8-bit:
     * words): 0 for an array of its own; a packed plan stages K and then V in one array and passes it twice.
     */
    public static final int STAGE_V = 17;
    /**
     * Sliding window in tokens ({@code DecodeBatch.window()}; {@link Integer#MAX_VALUE}: none): a sequence of {@code len}
     * tokens is walked from its first visible token {@code max(0, len - window)} ({@code PagedDecodeKernels.windowFirst}),
     * its partitions (and a balanced grid's tiles) laid from that token rounded down to {@link #WALK_ALIGN}. A negative
     * value {@code -C} is chunked local attention ({@code AttentionWindow.chunked(C)}): the walk starts at the query's
     * chunk, {@code p - p % C} for {@code p = len - 1}.
     */
    public static final int WINDOW = 18;
    /** Where a windowed sequence's partitions are laid from: its first visible token rounded down to this (a tile). */
    public static final int WALK_ALIGN = 16;
    /**
     * 1 when the plan's layer has attention sinks ({@code AttentionSinks}), 0 otherwise: a fused step's kernel adds each
     * head's sink to its denominator ({@code PagedDecodeKernels.finalSum}), a split step's merge adds it to the row's
     * state. A plan constant.
     */
    public static final int SINKS = 19;
    /**
     * With {@link #SINKS}: where the shard's {@code [numQHeads / shards]} sinks start in {@code partials}, after every
     * element a step or the plan's prefill graphs write there. A plan constant.
     */
    public static final int SINK_BASE = 20;
    /**
     * Logit soft-capping ({@code AttentionSpec.softCap}): where the cap lies in {@code partials} (after the sinks, if
     * any), or 0 when the plan's scores are not capped (index 0 never holds it). The stream, chunk and quad kernels read
     * it ({@code PagedDecodeKernels.softCapOf}) and cap each score ({@code PagedDecodeKernels.softCap}); the warp and
     * pair kernels take the cap as a scalar argument instead, which TornadoVM compiles in. A plan constant.
     */
    public static final int SOFT_CAP = 21;
    /**
     * ALiBi ({@code AttentionSpec.alibi}): where the shard's {@code [numQHeads / shards]} slopes start in {@code partials}
     * (after the sinks and the cap, if any), or 0 without ALiBi. Every kernel adds {@code PagedDecodeKernels.alibiBias}
     * to each score after its cap, before its mask. A plan constant.
     */
    public static final int ALIBI = 22;
    /**
     * Log-sum-exp outputs ({@code DecodeAttention.decode(..., lse)}): where the step's {@code [numSeqs][numQHeads]} row
     * log-sum-exps start in the merge's {@code out} (after the plan's capacity of output rows), or 0 for none. A step
     * that writes them runs split (WRITE_FINAL 0) even over one partition, and its merge writes row {@code r}'s
     * {@code max + ln(sum)}, the sink included, at {@code out[params[LSE] + r]}.
     */
    public static final int LSE = 23;
    /** Slots of the header; the balanced grid's {@code prefix[numSeqs + 1]} (tiles of the sequences before s) follows. */
    public static final int SIZE = 24;
    /** Balanced grid: {@code params[PREFIX + s]} = sum of tiles(s') for s' < s. */
    public static final int PREFIX = SIZE;

    /**
     * A packed plan's regions after its {@code gridSlots} grid slots ({@link #capacity} or {@link #SIZE}): the lengths
     * of up to {@code maxSeqs} sequences, then {@code tableEntries} block-table entries, then {@code stagingSlots}
     * staged slots' offsets; {@code size}: the whole array.
     */
    public record Packed(int lens, int tables, int slots, int size) {
        public static Packed after(int gridSlots, int maxSeqs, int tableEntries, int stagingSlots) {
            int tables = gridSlots + maxSeqs;
            int slots = tables + tableEntries;
            return new Packed(gridSlots, tables, slots, slots + stagingSlots);
        }

        /** Writes the regions' starts into {@code params} ({@link #LENS}, {@link #TABLES}, {@link #SLOTS}). */
        public void writeStarts(IntArray params) {
            params.set(LENS, lens);
            params.set(TABLES, tables);
            params.set(SLOTS, slots);
        }
    }

    /** Slots for up to {@code maxSeqs} sequences and {@code maxGroups} work-groups of a balanced grid. */
    public static int capacity(int maxSeqs, int maxGroups) {
        return SIZE + maxSeqs + 1 + maxGroups;
    }

    private DecodeParams() {
    }
}
