package dev.pagedattn.kernels;

import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * What one work-group of a prefill kernel computes: the start {@link PrefillKernels}' kernels share. The grid is
 * (sequence, KV head, head tile, query tile, partition), partition fastest; a work-group takes
 * {@code tokensPerTile} query tokens of its sequence ({@code heads} query heads each) and the context
 * partition {@code part} of {@link PrefillParams#PARTITION_TOKENS} tokens, of which it sees {@code [lo, hi)}
 * (causal, and the sliding window).
 *
 * <p>Scalar helpers only, which TornadoVM inlines into the kernels: a helper that takes a local array is
 * miscompiled by TornadoVM 5.2 (benchmarks/NOTES.md, t11), so none does.
 *
 * <p>{@link TensorPrefillKernels} keeps the same start written out: through these helpers its CUDA kernel,
 * held at 168 registers, ran 2-3% slower on an H200 (NVRTC schedules the changed start differently; the
 * PTX twin was unchanged within 2%, the scalar kernels within 1.3%: benchmarks/NOTES.md,
 * "The prefill kernels' shared start").
 */
public final class PrefillTile {
    private PrefillTile() {
    }

    /** The context partition work-group {@code gid} reads. */
    public static int part(int gid, IntArray params) {
        return gid % params.get(PrefillParams.MAX_PARTITIONS);
    }

    /** The query tile of work-group {@code gid}. */
    public static int qTile(int gid, IntArray params) {
        return gid / params.get(PrefillParams.MAX_PARTITIONS) % params.get(PrefillParams.MAX_Q_TILES);
    }

    /** The head tile of work-group {@code gid} within its KV head's group ({@code headTiles} of them). */
    public static int headTile(int gid, IntArray params, int headTiles) {
        return gid / params.get(PrefillParams.MAX_PARTITIONS) / params.get(PrefillParams.MAX_Q_TILES) % headTiles;
    }

    /** The KV head of work-group {@code gid}. */
    public static int kvHead(int gid, IntArray params, int headTiles, int numKvHeads) {
        return gid / params.get(PrefillParams.MAX_PARTITIONS) / params.get(PrefillParams.MAX_Q_TILES) / headTiles % numKvHeads;
    }

    /** The sequence of work-group {@code gid}; the batch's size or more for a work-group past it. */
    public static int seq(int gid, IntArray params, int headTiles, int numKvHeads) {
        return gid / params.get(PrefillParams.MAX_PARTITIONS) / params.get(PrefillParams.MAX_Q_TILES) / headTiles / numKvHeads;
    }

    /**
     * Query tokens of the tile: up to {@code tokensPerTile}, or 0 where the work-group has nothing to do
     * (past the batch, past its sequence's queries, or past its context's partitions).
     */
    public static int tileTokens(int seq, int qTile, int part, int tokensPerTile, IntArray params, IntArray qIndptr,
                                 IntArray contextLens) {
        if (seq >= params.get(PrefillParams.NUM_SEQS)) {
            return 0;
        }
        int qLen = qIndptr.get(seq + 1) - qIndptr.get(seq);
        if (qTile * tokensPerTile >= qLen) {
            return 0;
        }
        if (part * params.get(PrefillParams.PARTITION_TOKENS) >= contextLens.get(seq)) {
            return 0;
        }
        return TornadoMath.min(tokensPerTile, qLen - qTile * tokensPerTile);
    }

    /** Partitions of a context of {@code len} tokens. */
    public static int parts(int len, IntArray params) {
        int partTokens = params.get(PrefillParams.PARTITION_TOKENS);
        return (len + partTokens - 1) / partTokens;
    }

    /** First visible context position of a tile whose first query token is at {@code firstPos}. */
    public static int lo(int part, int firstPos, IntArray params) {
        return TornadoMath.max(part * params.get(PrefillParams.PARTITION_TOKENS), visibleFrom(firstPos, params.get(PrefillParams.WINDOW)));
    }

    /**
     * The first position a query at {@code position >= 0} sees through {@code window} ({@code AttentionWindow.visibleFrom}
     * in kernel form): {@code max(0, position - window + 1)} without overflow ({@code Integer.MAX_VALUE}: 0), or with
     * chunks of C (a window of {@code -C}) the start of the query's chunk, {@code position - position % C}.
     */
    public static int visibleFrom(int position, int window) {
        return window < 0 ? position - position % (0 - window) : position - TornadoMath.min(window - 1, position);
    }

    /**
     * Where {@code seq}'s token-tree mask rows start in {@code params}, or 0 for a causal sequence (or a batch without
     * masks). A masked sequence's window is in its rows ({@link #maskBits}): its tiles walk the context from the window of
     * its first new token and pass {@code Integer.MAX_VALUE} as the window of every row.
     */
    public static int treeRows(IntArray params, int seq) {
        int table = params.get(PrefillParams.MASK);
        int rows = 0;
        if (table != 0) {
            rows = params.get(table + seq);
        }
        return rows;
    }

    /**
     * The token-tree mask of tile row {@code r} ({@code heads} query heads per token) over the 32 context positions from
     * {@code c0}: bit {@code t} set where the row sees position {@code c0 + t}, a cached one when it lies in the window
     * counted from the row's tree position ({@code len - qLen + depth}), a new one when its mask row says so; -1 for a row
     * without a mask ({@code rows} 0: see {@link #treeRows}) or a padding row. Shifts are {@code >>} with the sign bits
     * masked off (TornadoVM's backends are not asked for {@code >>>}).
     */
    public static int maskBits(IntArray params, int rows, int r, int heads, int firstToken, int tileTokens, int qLen, int len,
                               int c0, int window) {
        int bits = -1;
        int token = r / heads;
        if (rows != 0 && token < tileTokens) {
            int words = (qLen + 31) / 32;
            int at = rows + (firstToken + token) * (words + 1);  // the row: its depth, then its words
            int newStart = len - qLen;
            int tree = newStart + params.get(at);                // the row's tree position
            int from = visibleFrom(tree, window) - c0;           // its window's (or chunk's) first position, from c0
            int k0 = c0 - newStart;                              // new token of position c0 (< 0: a cached position)
            bits = 0;
            if (k0 < 0) {                                        // cached positions c0 .. min(newStart, c0 + 32) - 1
                int end = TornadoMath.min(32, -k0);
                int lo = TornadoMath.max(0, from);
                if (lo < end) {
                    int upper = end == 32 ? -1 : (1 << end) - 1;
                    int lower = lo == 32 ? -1 : (1 << lo) - 1;
                    bits = upper & ~lower;
                }
                if (k0 > -32) {
                    bits = bits | (params.get(at + 1) << -k0);
                }
            } else {
                int w = k0 / 32;
                int sh = k0 - w * 32;
                int lo = params.get(at + 1 + w);
                if (sh != 0) {
                    lo = (lo >> sh) & ~(-1 << (32 - sh));
                    if (w + 1 < words) {
                        lo = lo | (params.get(at + 2 + w) << (32 - sh));
                    }
                }
                bits = lo;
            }
        }
        return bits;
    }

    /** One past the last visible context position of a tile of {@code tileTokens} queries from {@code firstPos}. */
    public static int hi(int part, int firstPos, int tileTokens, IntArray params) {
        return TornadoMath.min((part + 1) * params.get(PrefillParams.PARTITION_TOKENS), firstPos + tileTokens);
    }
}
