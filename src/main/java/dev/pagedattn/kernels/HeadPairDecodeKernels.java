package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The register-resident attention kernel: like {@link PagedDecodeKernels#attentionF16} (same
 * arguments, same grid of (sequence, KV head, head tile, partition) work-groups, same partial
 * format, merged by {@link PagedDecodeKernels#mergePartitions}), but every per-thread value is a
 * named scalar, so nothing can land in local (stack) memory whether or not the compiler unrolls.
 *
 * <pre>
 *  work-item -> (slot, pair, lane):  R = pairs * L work-items per token row, L = headDim / 8,
 *                                    pairs = ceil(min(groupSize, 8) / 2), slots = localSize / R
 *  lane j owns dims j, j+L, ..., j+7L (8 of them) of two query heads (a pair): 8 K/V values,
 *  16 query values and 16 accumulators in registers.
 * </pre>
 * K and V rows are read once per pair (so 4 times for a group of 8 heads, mostly from L1), the
 * price of keeping everything in registers. Each round a slot takes two tokens and loads both
 * their K and V rows up front (32 loads in flight per work-item) so that V arrives while the
 * scores are reduced; the lane sums use four independent local loads at a time. {@code tuning}
 * is unused (kept so both attention kernels take the same arguments). The local size must be
 * {@code slots * R} ({@link #localSize}).
 */
public final class HeadPairDecodeKernels {
    /** Largest local size: R is at most 4 pairs x 32 lanes (headDim 256) = 128. */
    public static final int MAX_LOCAL = 128;
    /** Staged K/V tiles, [buffer 2][K, V][tileTokens * headDim = 8 * localSize]; reused as [2*pairs][headDim] at the end. */
    private static final int TILE_SIZE = 2 * 2 * 8 * MAX_LOCAL;
    /** Lane partials, [tileTokens][2*pairs][lanes] = 2 * pairs * localSize floats. */
    private static final int RED_SIZE = 8 * MAX_LOCAL;
    /** Scores, [tileTokens][2*pairs] = 2 * pairs * localSize / lanes floats. */
    private static final int SCORE_SIZE = 8 * MAX_LOCAL;
    /** [slot][2*pairs] = 2 * localSize / lanes floats. */
    private static final int SLOT_SIZE = 2 * MAX_LOCAL;

    private HeadPairDecodeKernels() {
    }

    /** Work-items per token row for a shape. */
    public static int rowThreads(int groupSize, int headDim) {
        int pairs = (Math.min(groupSize, PagedDecodeKernels.MAX_HEADS_PER_TILE) + 1) / 2;
        return pairs * (headDim / 8);
    }

    /** The local size to launch with: as many token slots as fit 128 work-items (at least one row). */
    public static int localSize(int groupSize, int headDim) {
        int r = rowThreads(groupSize, headDim);
        return Math.max(1, MAX_LOCAL / r) * r;
    }

    /**
     * Pool offset of staged element {@code e} of the tile starting at {@code tileStart} (token
     * {@code tileStart + e / headDim}, dim {@code e % headDim}), or -1 past the partition's end.
     */
    static int stagedRow(IntArray blockTables, int seq, int maxBlocks, int layerBase, int blockStride, int headStride,
                         int headDim, int blockSize, int kvHead, int tileStart, int e, int end) {
        int token = tileStart + e / headDim;
        if (token >= end) {
            return -1;
        }
        int block = blockTables.get(seq * maxBlocks + token / blockSize);
        return KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, token % blockSize, e % headDim);
    }

    public static void attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale, int tuning) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int pairs = (tileHeads + 1) / 2;
        int rowThreads = pairs * lanes;
        int slots = TornadoMath.max(1, MAX_LOCAL / rowThreads); // as localSize(): a constant, so it folds
        int local = slots * rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int pair = r / lanes;
        int lane = r - pair * lanes;

        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int headTiles = (groupSize + PagedDecodeKernels.MAX_HEADS_PER_TILE - 1) / PagedDecodeKernels.MAX_HEADS_PER_TILE;
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int tile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        if (seq >= params.get(DecodeParams.NUM_SEQS)) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int start = part * partTokens;
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + partTokens);
        int numQHeads = numKvHeads * groupSize;
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);
        int tileFirst = tile * PagedDecodeKernels.MAX_HEADS_PER_TILE; // head index within the group
        int headA = tileFirst + 2 * pair;
        int tileRows = 2 * pairs;

        float[] tiles = ctx.allocateFloatLocalArray(TILE_SIZE);    // [2][K,V][tileTokens][headDim]
        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [tileTokens][2*pairs][lanes]
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE);  // [tileTokens][2*pairs]
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][2*pairs]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [2*pairs]

        boolean validA = headA < groupSize && 2 * pair < tileHeads;
        boolean validB = headA + 1 < groupSize && 2 * pair + 1 < tileHeads;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? headA : 0)) * headDim + lane;
        float sa = validA ? scale : 0f;
        float sb = validB ? scale : 0f;
        int qb = validB ? qa + headDim : qa;
        float qa0 = q.get(qa) * sa;
        float qa1 = q.get(qa + lanes) * sa;
        float qa2 = q.get(qa + 2 * lanes) * sa;
        float qa3 = q.get(qa + 3 * lanes) * sa;
        float qa4 = q.get(qa + 4 * lanes) * sa;
        float qa5 = q.get(qa + 5 * lanes) * sa;
        float qa6 = q.get(qa + 6 * lanes) * sa;
        float qa7 = q.get(qa + 7 * lanes) * sa;
        float qb0 = q.get(qb) * sb;
        float qb1 = q.get(qb + lanes) * sb;
        float qb2 = q.get(qb + 2 * lanes) * sb;
        float qb3 = q.get(qb + 3 * lanes) * sb;
        float qb4 = q.get(qb + 4 * lanes) * sb;
        float qb5 = q.get(qb + 5 * lanes) * sb;
        float qb6 = q.get(qb + 6 * lanes) * sb;
        float qb7 = q.get(qb + 7 * lanes) * sb;
        float aa0 = 0f, aa1 = 0f, aa2 = 0f, aa3 = 0f, aa4 = 0f, aa5 = 0f, aa6 = 0f, aa7 = 0f;
        float ab0 = 0f, ab1 = 0f, ab2 = 0f, ab3 = 0f, ab4 = 0f, ab5 = 0f, ab6 = 0f, ab7 = 0f;
        float ma = Float.NEGATIVE_INFINITY;
        float mb = Float.NEGATIVE_INFINITY;
        float la = 0f;
        float lb = 0f;

        for (int idx = tid; idx < tileRows; idx += local) {
            slotSum[idx] = 0f;
        }

        // Tiles of T = slots * pairs tokens: the work-group stages K and V of a tile in local
        // memory, each work-item loading exactly 8 K and 8 V elements (every byte read once,
        // coalesced), and loads the next tile while it computes on this one (double buffer).
        int tileTokens = slots * pairs;
        int tileElems = tileTokens * headDim; // = 8 * local
        int numTiles = (end - start + tileTokens - 1) / tileTokens;
        float g0 = 0f, g1 = 0f, g2 = 0f, g3 = 0f, g4 = 0f, g5 = 0f, g6 = 0f, g7 = 0f;
        float h0 = 0f, h1 = 0f, h2 = 0f, h3 = 0f, h4 = 0f, h5 = 0f, h6 = 0f, h7 = 0f;
        int e0 = tid;
        int e1 = tid + local;
        int e2 = tid + 2 * local;
        int e3 = tid + 3 * local;
        int e4 = tid + 4 * local;
        int e5 = tid + 5 * local;
        int e6 = tid + 6 * local;
        int e7 = tid + 7 * local;
        // prologue: tile 0 into registers
        {
            int t0 = start;
            int a0 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e0, end);
            int a1 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e1, end);
            int a2 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e2, end);
            int a3 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e3, end);
            int a4 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e4, end);
            int a5 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e5, end);
            int a6 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e6, end);
            int a7 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e7, end);
            g0 = a0 < 0 ? 0f : kPool.get(a0).getFloat32();
            g1 = a1 < 0 ? 0f : kPool.get(a1).getFloat32();
            g2 = a2 < 0 ? 0f : kPool.get(a2).getFloat32();
            g3 = a3 < 0 ? 0f : kPool.get(a3).getFloat32();
            g4 = a4 < 0 ? 0f : kPool.get(a4).getFloat32();
            g5 = a5 < 0 ? 0f : kPool.get(a5).getFloat32();
            g6 = a6 < 0 ? 0f : kPool.get(a6).getFloat32();
            g7 = a7 < 0 ? 0f : kPool.get(a7).getFloat32();
            h0 = a0 < 0 ? 0f : vPool.get(a0).getFloat32();
            h1 = a1 < 0 ? 0f : vPool.get(a1).getFloat32();
            h2 = a2 < 0 ? 0f : vPool.get(a2).getFloat32();
            h3 = a3 < 0 ? 0f : vPool.get(a3).getFloat32();
            h4 = a4 < 0 ? 0f : vPool.get(a4).getFloat32();
            h5 = a5 < 0 ? 0f : vPool.get(a5).getFloat32();
            h6 = a6 < 0 ? 0f : vPool.get(a6).getFloat32();
            h7 = a7 < 0 ? 0f : vPool.get(a7).getFloat32();
        }
        for (int tIdx = 0; tIdx < numTiles; tIdx++) {
            int tileStart = start + tIdx * tileTokens;
            int kBase = (tIdx % 2) * 2 * tileElems;
            int vBase = kBase + tileElems;
            tiles[kBase + e0] = g0;
            tiles[kBase + e1] = g1;
            tiles[kBase + e2] = g2;
            tiles[kBase + e3] = g3;
            tiles[kBase + e4] = g4;
            tiles[kBase + e5] = g5;
            tiles[kBase + e6] = g6;
            tiles[kBase + e7] = g7;
            tiles[vBase + e0] = h0;
            tiles[vBase + e1] = h1;
            tiles[vBase + e2] = h2;
            tiles[vBase + e3] = h3;
            tiles[vBase + e4] = h4;
            tiles[vBase + e5] = h5;
            tiles[vBase + e6] = h6;
            tiles[vBase + e7] = h7;
            ctx.localBarrier();
            // the next tile's loads fly while this one is computed
            if (tIdx + 1 < numTiles) {
                int t0 = tileStart + tileTokens;
                int a0 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e0, end);
                int a1 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e1, end);
                int a2 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e2, end);
                int a3 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e3, end);
                int a4 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e4, end);
                int a5 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e5, end);
                int a6 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e6, end);
                int a7 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e7, end);
                g0 = a0 < 0 ? 0f : kPool.get(a0).getFloat32();
                g1 = a1 < 0 ? 0f : kPool.get(a1).getFloat32();
                g2 = a2 < 0 ? 0f : kPool.get(a2).getFloat32();
                g3 = a3 < 0 ? 0f : kPool.get(a3).getFloat32();
                g4 = a4 < 0 ? 0f : kPool.get(a4).getFloat32();
                g5 = a5 < 0 ? 0f : kPool.get(a5).getFloat32();
                g6 = a6 < 0 ? 0f : kPool.get(a6).getFloat32();
                g7 = a7 < 0 ? 0f : kPool.get(a7).getFloat32();
                h0 = a0 < 0 ? 0f : vPool.get(a0).getFloat32();
                h1 = a1 < 0 ? 0f : vPool.get(a1).getFloat32();
                h2 = a2 < 0 ? 0f : vPool.get(a2).getFloat32();
                h3 = a3 < 0 ? 0f : vPool.get(a3).getFloat32();
                h4 = a4 < 0 ? 0f : vPool.get(a4).getFloat32();
                h5 = a5 < 0 ? 0f : vPool.get(a5).getFloat32();
                h6 = a6 < 0 ? 0f : vPool.get(a6).getFloat32();
                h7 = a7 < 0 ? 0f : vPool.get(a7).getFloat32();
            }
            // 1. partial dots of this lane's 8 dims, for this slot's tokens of the tile, two heads
            for (int t = slot; t < tileTokens; t += slots) {
                int k = kBase + t * headDim + lane;
                float k0 = tiles[k];
                float k1 = tiles[k + lanes];
                float k2 = tiles[k + 2 * lanes];
                float k3 = tiles[k + 3 * lanes];
                float k4 = tiles[k + 4 * lanes];
                float k5 = tiles[k + 5 * lanes];
                float k6 = tiles[k + 6 * lanes];
                float k7 = tiles[k + 7 * lanes];
                int at = (t * tileRows + 2 * pair) * lanes + lane;
                red[at] = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
                red[at + lanes] = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            }
            ctx.localBarrier();
            // 2. scores: sum the lanes, four independent loads at a time; tokens past the end and
            //    heads past the group score -inf
            for (int idx = tid; idx < tileTokens * tileRows; idx += local) {
                int hh = idx % tileRows;
                int token = tileStart + idx / tileRows;
                float sc = Float.NEGATIVE_INFINITY;
                if (token < end && hh < tileHeads && tileFirst + hh < groupSize) {
                    int b = idx * lanes;
                    sc = 0f;
                    int j = 0;
                    for (; j + 4 <= lanes; j += 4) {
                        sc += (red[b + j] + red[b + j + 1]) + (red[b + j + 2] + red[b + j + 3]);
                    }
                    for (; j < lanes; j++) {
                        sc += red[b + j];
                    }
                }
                scores[idx] = sc;
            }
            ctx.localBarrier();
            // 3. online softmax over this slot's tokens of the tile, then V from local memory
            float newMa = ma;
            float newMb = mb;
            for (int t = slot; t < tileTokens; t += slots) {
                newMa = TornadoMath.max(newMa, scores[t * tileRows + 2 * pair]);
                newMb = TornadoMath.max(newMb, scores[t * tileRows + 2 * pair + 1]);
            }
            float ca = newMa == Float.NEGATIVE_INFINITY ? 1f : TornadoMath.exp(ma - newMa);
            float cb = newMb == Float.NEGATIVE_INFINITY ? 1f : TornadoMath.exp(mb - newMb);
            la *= ca;
            lb *= cb;
            aa0 *= ca; aa1 *= ca; aa2 *= ca; aa3 *= ca; aa4 *= ca; aa5 *= ca; aa6 *= ca; aa7 *= ca;
            ab0 *= cb; ab1 *= cb; ab2 *= cb; ab3 *= cb; ab4 *= cb; ab5 *= cb; ab6 *= cb; ab7 *= cb;
            ma = newMa;
            mb = newMb;
            for (int t = slot; t < tileTokens; t += slots) {
                float xa = scores[t * tileRows + 2 * pair];
                float xb = scores[t * tileRows + 2 * pair + 1];
                float pa = xa == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xa - ma);
                float pb = xb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xb - mb);
                la += pa;
                lb += pb;
                int v = vBase + t * headDim + lane;
                float v0 = tiles[v];
                float v1 = tiles[v + lanes];
                float v2 = tiles[v + 2 * lanes];
                float v3 = tiles[v + 3 * lanes];
                float v4 = tiles[v + 4 * lanes];
                float v5 = tiles[v + 5 * lanes];
                float v6 = tiles[v + 6 * lanes];
                float v7 = tiles[v + 7 * lanes];
                aa0 += pa * v0; aa1 += pa * v1; aa2 += pa * v2; aa3 += pa * v3;
                aa4 += pa * v4; aa5 += pa * v5; aa6 += pa * v6; aa7 += pa * v7;
                ab0 += pb * v0; ab1 += pb * v1; ab2 += pb * v2; ab3 += pb * v3;
                ab4 += pb * v4; ab5 += pb * v5; ab6 += pb * v6; ab7 += pb * v7;
            }
        }
        // 4. merge the slots by log-sum-exp
        if (lane == 0) {
            slotMax[slot * tileRows + 2 * pair] = ma;
            slotMax[slot * tileRows + 2 * pair + 1] = mb;
        }
        ctx.localBarrier();
        float mAllA = Float.NEGATIVE_INFINITY;
        float mAllB = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < slots; j++) {
            mAllA = TornadoMath.max(mAllA, slotMax[j * tileRows + 2 * pair]);
            mAllB = TornadoMath.max(mAllB, slotMax[j * tileRows + 2 * pair + 1]);
        }
        float wa = ma == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ma - mAllA);
        float wb = mb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mb - mAllB);
        // the tiles are free now (the barrier above follows the last reads): reuse them
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            tiles[idx] = 0f;
        }
        ctx.localBarrier();
        int accA = 2 * pair * headDim + lane;
        int accB = accA + headDim;
        for (int j = 0; j < slots; j++) {
            if (slot == j) {
                tiles[accA] += aa0 * wa;
                tiles[accA + lanes] += aa1 * wa;
                tiles[accA + 2 * lanes] += aa2 * wa;
                tiles[accA + 3 * lanes] += aa3 * wa;
                tiles[accA + 4 * lanes] += aa4 * wa;
                tiles[accA + 5 * lanes] += aa5 * wa;
                tiles[accA + 6 * lanes] += aa6 * wa;
                tiles[accA + 7 * lanes] += aa7 * wa;
                tiles[accB] += ab0 * wb;
                tiles[accB + lanes] += ab1 * wb;
                tiles[accB + 2 * lanes] += ab2 * wb;
                tiles[accB + 3 * lanes] += ab3 * wb;
                tiles[accB + 4 * lanes] += ab4 * wb;
                tiles[accB + 5 * lanes] += ab5 * wb;
                tiles[accB + 6 * lanes] += ab6 * wb;
                tiles[accB + 7 * lanes] += ab7 * wb;
                if (lane == 0) {
                    slotSum[2 * pair] += la * wa;
                    slotSum[2 * pair + 1] += lb * wb;
                }
            }
            ctx.localBarrier();
        }
        // 5. write the normalised result or this partition's partial state
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            int hInGroup = tileFirst + hh;
            if (hh < tileHeads && hInGroup < groupSize) {
                float mAll = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < slots; j++) {
                    mAll = TornadoMath.max(mAll, slotMax[j * tileRows + hh]);
                }
                float sum = slotSum[hh];
                int h = kvHead * groupSize + hInGroup;
                if (writeFinal != 0) {
                    out.set((seq * numQHeads + h) * headDim + d, tiles[idx] / sum);
                } else {
                    int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                    partials.set(pBase + d, tiles[idx]);
                    if (d == 0) {
                        partials.set(pBase + headDim, mAll);
                        partials.set(pBase + headDim + 1, sum);
                    }
                }
            }
        }
    }

    /** {@link #attentionF16} over fp32 pools (a test keeps the bodies identical). */
    public static void attentionF32(KernelContext ctx, FloatArray kPool, FloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale, int tuning) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int pairs = (tileHeads + 1) / 2;
        int rowThreads = pairs * lanes;
        int slots = TornadoMath.max(1, MAX_LOCAL / rowThreads); // as localSize(): a constant, so it folds
        int local = slots * rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int pair = r / lanes;
        int lane = r - pair * lanes;

        int maxParts = params.get(DecodeParams.MAX_PARTITIONS);
        int headTiles = (groupSize + PagedDecodeKernels.MAX_HEADS_PER_TILE - 1) / PagedDecodeKernels.MAX_HEADS_PER_TILE;
        int gid = ctx.groupIdx;
        int part = gid % maxParts;
        int rest = gid / maxParts;
        int tile = rest % headTiles;
        rest = rest / headTiles;
        int kvHead = rest % numKvHeads;
        int seq = rest / numKvHeads;
        if (seq >= params.get(DecodeParams.NUM_SEQS)) {
            return;
        }
        int len = contextLens.get(seq);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int start = part * partTokens;
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + partTokens);
        int numQHeads = numKvHeads * groupSize;
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);
        int tileFirst = tile * PagedDecodeKernels.MAX_HEADS_PER_TILE; // head index within the group
        int headA = tileFirst + 2 * pair;
        int tileRows = 2 * pairs;

        float[] tiles = ctx.allocateFloatLocalArray(TILE_SIZE);    // [2][K,V][tileTokens][headDim]
        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [tileTokens][2*pairs][lanes]
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE);  // [tileTokens][2*pairs]
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][2*pairs]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [2*pairs]

        boolean validA = headA < groupSize && 2 * pair < tileHeads;
        boolean validB = headA + 1 < groupSize && 2 * pair + 1 < tileHeads;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? headA : 0)) * headDim + lane;
        float sa = validA ? scale : 0f;
        float sb = validB ? scale : 0f;
        int qb = validB ? qa + headDim : qa;
        float qa0 = q.get(qa) * sa;
        float qa1 = q.get(qa + lanes) * sa;
        float qa2 = q.get(qa + 2 * lanes) * sa;
        float qa3 = q.get(qa + 3 * lanes) * sa;
        float qa4 = q.get(qa + 4 * lanes) * sa;
        float qa5 = q.get(qa + 5 * lanes) * sa;
        float qa6 = q.get(qa + 6 * lanes) * sa;
        float qa7 = q.get(qa + 7 * lanes) * sa;
        float qb0 = q.get(qb) * sb;
        float qb1 = q.get(qb + lanes) * sb;
        float qb2 = q.get(qb + 2 * lanes) * sb;
        float qb3 = q.get(qb + 3 * lanes) * sb;
        float qb4 = q.get(qb + 4 * lanes) * sb;
        float qb5 = q.get(qb + 5 * lanes) * sb;
        float qb6 = q.get(qb + 6 * lanes) * sb;
        float qb7 = q.get(qb + 7 * lanes) * sb;
        float aa0 = 0f, aa1 = 0f, aa2 = 0f, aa3 = 0f, aa4 = 0f, aa5 = 0f, aa6 = 0f, aa7 = 0f;
        float ab0 = 0f, ab1 = 0f, ab2 = 0f, ab3 = 0f, ab4 = 0f, ab5 = 0f, ab6 = 0f, ab7 = 0f;
        float ma = Float.NEGATIVE_INFINITY;
        float mb = Float.NEGATIVE_INFINITY;
        float la = 0f;
        float lb = 0f;

        for (int idx = tid; idx < tileRows; idx += local) {
            slotSum[idx] = 0f;
        }

        // Tiles of T = slots * pairs tokens: the work-group stages K and V of a tile in local
        // memory, each work-item loading exactly 8 K and 8 V elements (every byte read once,
        // coalesced), and loads the next tile while it computes on this one (double buffer).
        int tileTokens = slots * pairs;
        int tileElems = tileTokens * headDim; // = 8 * local
        int numTiles = (end - start + tileTokens - 1) / tileTokens;
        float g0 = 0f, g1 = 0f, g2 = 0f, g3 = 0f, g4 = 0f, g5 = 0f, g6 = 0f, g7 = 0f;
        float h0 = 0f, h1 = 0f, h2 = 0f, h3 = 0f, h4 = 0f, h5 = 0f, h6 = 0f, h7 = 0f;
        int e0 = tid;
        int e1 = tid + local;
        int e2 = tid + 2 * local;
        int e3 = tid + 3 * local;
        int e4 = tid + 4 * local;
        int e5 = tid + 5 * local;
        int e6 = tid + 6 * local;
        int e7 = tid + 7 * local;
        // prologue: tile 0 into registers
        {
            int t0 = start;
            int a0 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e0, end);
            int a1 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e1, end);
            int a2 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e2, end);
            int a3 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e3, end);
            int a4 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e4, end);
            int a5 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e5, end);
            int a6 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e6, end);
            int a7 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e7, end);
            g0 = a0 < 0 ? 0f : kPool.get(a0);
            g1 = a1 < 0 ? 0f : kPool.get(a1);
            g2 = a2 < 0 ? 0f : kPool.get(a2);
            g3 = a3 < 0 ? 0f : kPool.get(a3);
            g4 = a4 < 0 ? 0f : kPool.get(a4);
            g5 = a5 < 0 ? 0f : kPool.get(a5);
            g6 = a6 < 0 ? 0f : kPool.get(a6);
            g7 = a7 < 0 ? 0f : kPool.get(a7);
            h0 = a0 < 0 ? 0f : vPool.get(a0);
            h1 = a1 < 0 ? 0f : vPool.get(a1);
            h2 = a2 < 0 ? 0f : vPool.get(a2);
            h3 = a3 < 0 ? 0f : vPool.get(a3);
            h4 = a4 < 0 ? 0f : vPool.get(a4);
            h5 = a5 < 0 ? 0f : vPool.get(a5);
            h6 = a6 < 0 ? 0f : vPool.get(a6);
            h7 = a7 < 0 ? 0f : vPool.get(a7);
        }
        for (int tIdx = 0; tIdx < numTiles; tIdx++) {
            int tileStart = start + tIdx * tileTokens;
            int kBase = (tIdx % 2) * 2 * tileElems;
            int vBase = kBase + tileElems;
            tiles[kBase + e0] = g0;
            tiles[kBase + e1] = g1;
            tiles[kBase + e2] = g2;
            tiles[kBase + e3] = g3;
            tiles[kBase + e4] = g4;
            tiles[kBase + e5] = g5;
            tiles[kBase + e6] = g6;
            tiles[kBase + e7] = g7;
            tiles[vBase + e0] = h0;
            tiles[vBase + e1] = h1;
            tiles[vBase + e2] = h2;
            tiles[vBase + e3] = h3;
            tiles[vBase + e4] = h4;
            tiles[vBase + e5] = h5;
            tiles[vBase + e6] = h6;
            tiles[vBase + e7] = h7;
            ctx.localBarrier();
            // the next tile's loads fly while this one is computed
            if (tIdx + 1 < numTiles) {
                int t0 = tileStart + tileTokens;
                int a0 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e0, end);
                int a1 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e1, end);
                int a2 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e2, end);
                int a3 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e3, end);
                int a4 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e4, end);
                int a5 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e5, end);
                int a6 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e6, end);
                int a7 = stagedRow(blockTables, seq, maxBlocks, layerBase, blockStride, headStride, headDim, blockSize, kvHead, t0, e7, end);
                g0 = a0 < 0 ? 0f : kPool.get(a0);
                g1 = a1 < 0 ? 0f : kPool.get(a1);
                g2 = a2 < 0 ? 0f : kPool.get(a2);
                g3 = a3 < 0 ? 0f : kPool.get(a3);
                g4 = a4 < 0 ? 0f : kPool.get(a4);
                g5 = a5 < 0 ? 0f : kPool.get(a5);
                g6 = a6 < 0 ? 0f : kPool.get(a6);
                g7 = a7 < 0 ? 0f : kPool.get(a7);
                h0 = a0 < 0 ? 0f : vPool.get(a0);
                h1 = a1 < 0 ? 0f : vPool.get(a1);
                h2 = a2 < 0 ? 0f : vPool.get(a2);
                h3 = a3 < 0 ? 0f : vPool.get(a3);
                h4 = a4 < 0 ? 0f : vPool.get(a4);
                h5 = a5 < 0 ? 0f : vPool.get(a5);
                h6 = a6 < 0 ? 0f : vPool.get(a6);
                h7 = a7 < 0 ? 0f : vPool.get(a7);
            }
            // 1. partial dots of this lane's 8 dims, for this slot's tokens of the tile, two heads
            for (int t = slot; t < tileTokens; t += slots) {
                int k = kBase + t * headDim + lane;
                float k0 = tiles[k];
                float k1 = tiles[k + lanes];
                float k2 = tiles[k + 2 * lanes];
                float k3 = tiles[k + 3 * lanes];
                float k4 = tiles[k + 4 * lanes];
                float k5 = tiles[k + 5 * lanes];
                float k6 = tiles[k + 6 * lanes];
                float k7 = tiles[k + 7 * lanes];
                int at = (t * tileRows + 2 * pair) * lanes + lane;
                red[at] = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
                red[at + lanes] = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            }
            ctx.localBarrier();
            // 2. scores: sum the lanes, four independent loads at a time; tokens past the end and
            //    heads past the group score -inf
            for (int idx = tid; idx < tileTokens * tileRows; idx += local) {
                int hh = idx % tileRows;
                int token = tileStart + idx / tileRows;
                float sc = Float.NEGATIVE_INFINITY;
                if (token < end && hh < tileHeads && tileFirst + hh < groupSize) {
                    int b = idx * lanes;
                    sc = 0f;
                    int j = 0;
                    for (; j + 4 <= lanes; j += 4) {
                        sc += (red[b + j] + red[b + j + 1]) + (red[b + j + 2] + red[b + j + 3]);
                    }
                    for (; j < lanes; j++) {
                        sc += red[b + j];
                    }
                }
                scores[idx] = sc;
            }
            ctx.localBarrier();
            // 3. online softmax over this slot's tokens of the tile, then V from local memory
            float newMa = ma;
            float newMb = mb;
            for (int t = slot; t < tileTokens; t += slots) {
                newMa = TornadoMath.max(newMa, scores[t * tileRows + 2 * pair]);
                newMb = TornadoMath.max(newMb, scores[t * tileRows + 2 * pair + 1]);
            }
            float ca = newMa == Float.NEGATIVE_INFINITY ? 1f : TornadoMath.exp(ma - newMa);
            float cb = newMb == Float.NEGATIVE_INFINITY ? 1f : TornadoMath.exp(mb - newMb);
            la *= ca;
            lb *= cb;
            aa0 *= ca; aa1 *= ca; aa2 *= ca; aa3 *= ca; aa4 *= ca; aa5 *= ca; aa6 *= ca; aa7 *= ca;
            ab0 *= cb; ab1 *= cb; ab2 *= cb; ab3 *= cb; ab4 *= cb; ab5 *= cb; ab6 *= cb; ab7 *= cb;
            ma = newMa;
            mb = newMb;
            for (int t = slot; t < tileTokens; t += slots) {
                float xa = scores[t * tileRows + 2 * pair];
                float xb = scores[t * tileRows + 2 * pair + 1];
                float pa = xa == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xa - ma);
                float pb = xb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xb - mb);
                la += pa;
                lb += pb;
                int v = vBase + t * headDim + lane;
                float v0 = tiles[v];
                float v1 = tiles[v + lanes];
                float v2 = tiles[v + 2 * lanes];
                float v3 = tiles[v + 3 * lanes];
                float v4 = tiles[v + 4 * lanes];
                float v5 = tiles[v + 5 * lanes];
                float v6 = tiles[v + 6 * lanes];
                float v7 = tiles[v + 7 * lanes];
                aa0 += pa * v0; aa1 += pa * v1; aa2 += pa * v2; aa3 += pa * v3;
                aa4 += pa * v4; aa5 += pa * v5; aa6 += pa * v6; aa7 += pa * v7;
                ab0 += pb * v0; ab1 += pb * v1; ab2 += pb * v2; ab3 += pb * v3;
                ab4 += pb * v4; ab5 += pb * v5; ab6 += pb * v6; ab7 += pb * v7;
            }
        }
        // 4. merge the slots by log-sum-exp
        if (lane == 0) {
            slotMax[slot * tileRows + 2 * pair] = ma;
            slotMax[slot * tileRows + 2 * pair + 1] = mb;
        }
        ctx.localBarrier();
        float mAllA = Float.NEGATIVE_INFINITY;
        float mAllB = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < slots; j++) {
            mAllA = TornadoMath.max(mAllA, slotMax[j * tileRows + 2 * pair]);
            mAllB = TornadoMath.max(mAllB, slotMax[j * tileRows + 2 * pair + 1]);
        }
        float wa = ma == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ma - mAllA);
        float wb = mb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mb - mAllB);
        // the tiles are free now (the barrier above follows the last reads): reuse them
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            tiles[idx] = 0f;
        }
        ctx.localBarrier();
        int accA = 2 * pair * headDim + lane;
        int accB = accA + headDim;
        for (int j = 0; j < slots; j++) {
            if (slot == j) {
                tiles[accA] += aa0 * wa;
                tiles[accA + lanes] += aa1 * wa;
                tiles[accA + 2 * lanes] += aa2 * wa;
                tiles[accA + 3 * lanes] += aa3 * wa;
                tiles[accA + 4 * lanes] += aa4 * wa;
                tiles[accA + 5 * lanes] += aa5 * wa;
                tiles[accA + 6 * lanes] += aa6 * wa;
                tiles[accA + 7 * lanes] += aa7 * wa;
                tiles[accB] += ab0 * wb;
                tiles[accB + lanes] += ab1 * wb;
                tiles[accB + 2 * lanes] += ab2 * wb;
                tiles[accB + 3 * lanes] += ab3 * wb;
                tiles[accB + 4 * lanes] += ab4 * wb;
                tiles[accB + 5 * lanes] += ab5 * wb;
                tiles[accB + 6 * lanes] += ab6 * wb;
                tiles[accB + 7 * lanes] += ab7 * wb;
                if (lane == 0) {
                    slotSum[2 * pair] += la * wa;
                    slotSum[2 * pair + 1] += lb * wb;
                }
            }
            ctx.localBarrier();
        }
        // 5. write the normalised result or this partition's partial state
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            int hInGroup = tileFirst + hh;
            if (hh < tileHeads && hInGroup < groupSize) {
                float mAll = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < slots; j++) {
                    mAll = TornadoMath.max(mAll, slotMax[j * tileRows + hh]);
                }
                float sum = slotSum[hh];
                int h = kvHead * groupSize + hInGroup;
                if (writeFinal != 0) {
                    out.set((seq * numQHeads + h) * headDim + d, tiles[idx] / sum);
                } else {
                    int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                    partials.set(pBase + d, tiles[idx]);
                    if (d == 0) {
                        partials.set(pBase + headDim, mAll);
                        partials.set(pBase + headDim + 1, sum);
                    }
                }
            }
        }
    }

}
