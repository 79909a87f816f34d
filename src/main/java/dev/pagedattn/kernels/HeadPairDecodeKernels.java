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
 * scores are reduced; the lane sums use four independent local loads at a time. The local size
 * must be {@code slots * R} ({@link #localSize}).
 */
public final class HeadPairDecodeKernels {
    /** Largest local size: R can be 4 pairs x 32 lanes (headDim 256). */
    public static final int MAX_LOCAL = 256;
    /** [slot][2 tokens][2*pairs][lanes] = 4 * localSize floats; reused as [2*pairs][headDim] for the final merge. */
    private static final int RED_SIZE = PagedDecodeKernels.MAX_HEADS_PER_TILE * PagedDecodeKernels.MAX_HEAD_DIM;
    /** [slot][2 tokens][2*pairs] = 4 * localSize / lanes floats. */
    private static final int SCORE_SIZE = 4 * MAX_LOCAL;
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
        return Math.max(1, 128 / r) * r;
    }

    /**
     * {@code softCap}: the logit soft cap ({@code AttentionSpec.softCap}, 0 for none), a scalar argument so that
     * TornadoVM compiles it in and an uncapped plan runs the kernel without the cap's code (PTX's choice; the other
     * families read it from {@code partials}, {@link DecodeParams#SOFT_CAP}).
     */
    public static void attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale, float softCap) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int pairs = (tileHeads + 1) / 2;
        int rowThreads = pairs * lanes;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
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
        int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)
        int start = PagedDecodeKernels.walkOrigin(first) + part * partTokens;
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + partTokens);
        start = TornadoMath.max(first, start);
        int numQHeads = numKvHeads * groupSize;
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);
        int tableRow = params.get(DecodeParams.TABLES) + seq * maxBlocks
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        int tileFirst = tile * PagedDecodeKernels.MAX_HEADS_PER_TILE; // head index within the group
        int headA = tileFirst + 2 * pair;
        int tileRows = 2 * pairs;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][2][2*pairs][lanes]
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE);  // [slot][2][2*pairs]
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

        // Each round, every slot takes two tokens (A, B) and loads their K and V rows before the
        // first barrier, so 32 loads per work-item are in flight and V arrives while scores reduce.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int redA = (slot * 2 * tileRows + 2 * pair) * lanes + lane;   // [slot][token][head][lane]
        int redB = redA + tileRows * lanes;
        int sA = slot * 2 * tileRows + 2 * pair;                      // [slot][token][head]
        int sB = sA + tileRows;
        for (int rd = 0; rd < rounds; rd++) {
            int tokenA = start + rd * perRound + slot;
            int tokenB = tokenA + slots;
            float k0 = 0f, k1 = 0f, k2 = 0f, k3 = 0f, k4 = 0f, k5 = 0f, k6 = 0f, k7 = 0f;
            float c0 = 0f, c1 = 0f, c2 = 0f, c3 = 0f, c4 = 0f, c5 = 0f, c6 = 0f, c7 = 0f;
            float v0 = 0f, v1 = 0f, v2 = 0f, v3 = 0f, v4 = 0f, v5 = 0f, v6 = 0f, v7 = 0f;
            float w0 = 0f, w1 = 0f, w2 = 0f, w3 = 0f, w4 = 0f, w5 = 0f, w6 = 0f, w7 = 0f;
            if (tokenA < end) {
                int block = blockTables.get(tableRow + tokenA / blockSize);
                int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, tokenA % blockSize, lane);
                k0 = kPool.get(row).getFloat32();
                k1 = kPool.get(row + lanes).getFloat32();
                k2 = kPool.get(row + 2 * lanes).getFloat32();
                k3 = kPool.get(row + 3 * lanes).getFloat32();
                k4 = kPool.get(row + 4 * lanes).getFloat32();
                k5 = kPool.get(row + 5 * lanes).getFloat32();
                k6 = kPool.get(row + 6 * lanes).getFloat32();
                k7 = kPool.get(row + 7 * lanes).getFloat32();
                v0 = vPool.get(row).getFloat32();
                v1 = vPool.get(row + lanes).getFloat32();
                v2 = vPool.get(row + 2 * lanes).getFloat32();
                v3 = vPool.get(row + 3 * lanes).getFloat32();
                v4 = vPool.get(row + 4 * lanes).getFloat32();
                v5 = vPool.get(row + 5 * lanes).getFloat32();
                v6 = vPool.get(row + 6 * lanes).getFloat32();
                v7 = vPool.get(row + 7 * lanes).getFloat32();
            }
            if (tokenB < end) {
                int block = blockTables.get(tableRow + tokenB / blockSize);
                int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, tokenB % blockSize, lane);
                c0 = kPool.get(row).getFloat32();
                c1 = kPool.get(row + lanes).getFloat32();
                c2 = kPool.get(row + 2 * lanes).getFloat32();
                c3 = kPool.get(row + 3 * lanes).getFloat32();
                c4 = kPool.get(row + 4 * lanes).getFloat32();
                c5 = kPool.get(row + 5 * lanes).getFloat32();
                c6 = kPool.get(row + 6 * lanes).getFloat32();
                c7 = kPool.get(row + 7 * lanes).getFloat32();
                w0 = vPool.get(row).getFloat32();
                w1 = vPool.get(row + lanes).getFloat32();
                w2 = vPool.get(row + 2 * lanes).getFloat32();
                w3 = vPool.get(row + 3 * lanes).getFloat32();
                w4 = vPool.get(row + 4 * lanes).getFloat32();
                w5 = vPool.get(row + 5 * lanes).getFloat32();
                w6 = vPool.get(row + 6 * lanes).getFloat32();
                w7 = vPool.get(row + 7 * lanes).getFloat32();
            }
            // 1. partial dots of this lane's 8 dims: two tokens x two heads
            red[redA] = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            red[redA + lanes] = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            red[redB] = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            red[redB + lanes] = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            ctx.localBarrier();
            // 2. scores: sum the lanes (4 independent loads at a time); tokens past the end and heads
            //    past the group score -inf
            int roundBase = start + rd * perRound;
            float cap = softCap;  // a scalar argument: TornadoVM compiles it in as a constant (0: no cap code at all)
            for (int idx = tid; idx < slots * 2 * tileRows; idx += local) {
                int hh = idx % tileRows;
                int st = idx / tileRows;  // slot * 2 + token
                int token = roundBase + (st % 2) * slots + st / 2;
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
                    sc = PagedDecodeKernels.softCap(sc, cap);
                    sc = sc + PagedDecodeKernels.alibiBias(partials, params.get(DecodeParams.ALIBI),   // ALiBi
                            kvHead * groupSize + tileFirst + hh, token, len - 1);
                }
                scores[idx] = sc;
            }
            ctx.localBarrier();
            // 3. online softmax over the two tokens, then V (already in registers)
            float xa = scores[sA];
            float xb = scores[sA + 1];
            float ya = scores[sB];
            float yb = scores[sB + 1];
            float newMa = TornadoMath.max(ma, TornadoMath.max(xa, ya));
            float newMb = TornadoMath.max(mb, TornadoMath.max(xb, yb));
            if (newMa != Float.NEGATIVE_INFINITY) {
                float c = TornadoMath.exp(ma - newMa);
                float pa = xa == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xa - newMa);
                float ra = ya == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ya - newMa);
                la = la * c + pa + ra;
                aa0 = aa0 * c + pa * v0 + ra * w0;
                aa1 = aa1 * c + pa * v1 + ra * w1;
                aa2 = aa2 * c + pa * v2 + ra * w2;
                aa3 = aa3 * c + pa * v3 + ra * w3;
                aa4 = aa4 * c + pa * v4 + ra * w4;
                aa5 = aa5 * c + pa * v5 + ra * w5;
                aa6 = aa6 * c + pa * v6 + ra * w6;
                aa7 = aa7 * c + pa * v7 + ra * w7;
                ma = newMa;
            }
            if (newMb != Float.NEGATIVE_INFINITY) {
                float c = TornadoMath.exp(mb - newMb);
                float pb = xb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xb - newMb);
                float rb = yb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yb - newMb);
                lb = lb * c + pb + rb;
                ab0 = ab0 * c + pb * v0 + rb * w0;
                ab1 = ab1 * c + pb * v1 + rb * w1;
                ab2 = ab2 * c + pb * v2 + rb * w2;
                ab3 = ab3 * c + pb * v3 + rb * w3;
                ab4 = ab4 * c + pb * v4 + rb * w4;
                ab5 = ab5 * c + pb * v5 + rb * w5;
                ab6 = ab6 * c + pb * v6 + rb * w6;
                ab7 = ab7 * c + pb * v7 + rb * w7;
                mb = newMb;
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
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            red[idx] = 0f;
        }
        ctx.localBarrier();
        int accA = 2 * pair * headDim + lane;
        int accB = accA + headDim;
        for (int j = 0; j < slots; j++) {
            if (slot == j) {
                red[accA] += aa0 * wa;
                red[accA + lanes] += aa1 * wa;
                red[accA + 2 * lanes] += aa2 * wa;
                red[accA + 3 * lanes] += aa3 * wa;
                red[accA + 4 * lanes] += aa4 * wa;
                red[accA + 5 * lanes] += aa5 * wa;
                red[accA + 6 * lanes] += aa6 * wa;
                red[accA + 7 * lanes] += aa7 * wa;
                red[accB] += ab0 * wb;
                red[accB + lanes] += ab1 * wb;
                red[accB + 2 * lanes] += ab2 * wb;
                red[accB + 3 * lanes] += ab3 * wb;
                red[accB + 4 * lanes] += ab4 * wb;
                red[accB + 5 * lanes] += ab5 * wb;
                red[accB + 6 * lanes] += ab6 * wb;
                red[accB + 7 * lanes] += ab7 * wb;
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
                    out.set((seq * numQHeads + h) * headDim + d, red[idx] / PagedDecodeKernels.finalSum(sum, mAll, partials, params, h));
                } else {
                    int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                    partials.set(pBase + d, red[idx]);
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
                                    float scale, float softCap) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int pairs = (tileHeads + 1) / 2;
        int rowThreads = pairs * lanes;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
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
        int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
        int partTokens = params.get(DecodeParams.PARTITION_TOKENS);
        int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)
        int start = PagedDecodeKernels.walkOrigin(first) + part * partTokens;
        if (start >= len) {
            return;
        }
        int end = TornadoMath.min(len, start + partTokens);
        start = TornadoMath.max(first, start);
        int numQHeads = numKvHeads * groupSize;
        int headStride = blockSize * headDim;
        int blockStride = numKvHeads * headStride;
        int layerBase = params.get(DecodeParams.LAYER_BASE);
        int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);
        int tableRow = params.get(DecodeParams.TABLES) + seq * maxBlocks
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        int tileFirst = tile * PagedDecodeKernels.MAX_HEADS_PER_TILE; // head index within the group
        int headA = tileFirst + 2 * pair;
        int tileRows = 2 * pairs;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][2][2*pairs][lanes]
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE);  // [slot][2][2*pairs]
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

        // Each round, every slot takes two tokens (A, B) and loads their K and V rows before the
        // first barrier, so 32 loads per work-item are in flight and V arrives while scores reduce.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int redA = (slot * 2 * tileRows + 2 * pair) * lanes + lane;   // [slot][token][head][lane]
        int redB = redA + tileRows * lanes;
        int sA = slot * 2 * tileRows + 2 * pair;                      // [slot][token][head]
        int sB = sA + tileRows;
        for (int rd = 0; rd < rounds; rd++) {
            int tokenA = start + rd * perRound + slot;
            int tokenB = tokenA + slots;
            float k0 = 0f, k1 = 0f, k2 = 0f, k3 = 0f, k4 = 0f, k5 = 0f, k6 = 0f, k7 = 0f;
            float c0 = 0f, c1 = 0f, c2 = 0f, c3 = 0f, c4 = 0f, c5 = 0f, c6 = 0f, c7 = 0f;
            float v0 = 0f, v1 = 0f, v2 = 0f, v3 = 0f, v4 = 0f, v5 = 0f, v6 = 0f, v7 = 0f;
            float w0 = 0f, w1 = 0f, w2 = 0f, w3 = 0f, w4 = 0f, w5 = 0f, w6 = 0f, w7 = 0f;
            if (tokenA < end) {
                int block = blockTables.get(tableRow + tokenA / blockSize);
                int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, tokenA % blockSize, lane);
                k0 = kPool.get(row);
                k1 = kPool.get(row + lanes);
                k2 = kPool.get(row + 2 * lanes);
                k3 = kPool.get(row + 3 * lanes);
                k4 = kPool.get(row + 4 * lanes);
                k5 = kPool.get(row + 5 * lanes);
                k6 = kPool.get(row + 6 * lanes);
                k7 = kPool.get(row + 7 * lanes);
                v0 = vPool.get(row);
                v1 = vPool.get(row + lanes);
                v2 = vPool.get(row + 2 * lanes);
                v3 = vPool.get(row + 3 * lanes);
                v4 = vPool.get(row + 4 * lanes);
                v5 = vPool.get(row + 5 * lanes);
                v6 = vPool.get(row + 6 * lanes);
                v7 = vPool.get(row + 7 * lanes);
            }
            if (tokenB < end) {
                int block = blockTables.get(tableRow + tokenB / blockSize);
                int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, tokenB % blockSize, lane);
                c0 = kPool.get(row);
                c1 = kPool.get(row + lanes);
                c2 = kPool.get(row + 2 * lanes);
                c3 = kPool.get(row + 3 * lanes);
                c4 = kPool.get(row + 4 * lanes);
                c5 = kPool.get(row + 5 * lanes);
                c6 = kPool.get(row + 6 * lanes);
                c7 = kPool.get(row + 7 * lanes);
                w0 = vPool.get(row);
                w1 = vPool.get(row + lanes);
                w2 = vPool.get(row + 2 * lanes);
                w3 = vPool.get(row + 3 * lanes);
                w4 = vPool.get(row + 4 * lanes);
                w5 = vPool.get(row + 5 * lanes);
                w6 = vPool.get(row + 6 * lanes);
                w7 = vPool.get(row + 7 * lanes);
            }
            // 1. partial dots of this lane's 8 dims: two tokens x two heads
            red[redA] = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            red[redA + lanes] = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            red[redB] = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            red[redB + lanes] = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            ctx.localBarrier();
            // 2. scores: sum the lanes (4 independent loads at a time); tokens past the end and heads
            //    past the group score -inf
            int roundBase = start + rd * perRound;
            float cap = softCap;  // a scalar argument: TornadoVM compiles it in as a constant (0: no cap code at all)
            for (int idx = tid; idx < slots * 2 * tileRows; idx += local) {
                int hh = idx % tileRows;
                int st = idx / tileRows;  // slot * 2 + token
                int token = roundBase + (st % 2) * slots + st / 2;
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
                    sc = PagedDecodeKernels.softCap(sc, cap);
                    sc = sc + PagedDecodeKernels.alibiBias(partials, params.get(DecodeParams.ALIBI),   // ALiBi
                            kvHead * groupSize + tileFirst + hh, token, len - 1);
                }
                scores[idx] = sc;
            }
            ctx.localBarrier();
            // 3. online softmax over the two tokens, then V (already in registers)
            float xa = scores[sA];
            float xb = scores[sA + 1];
            float ya = scores[sB];
            float yb = scores[sB + 1];
            float newMa = TornadoMath.max(ma, TornadoMath.max(xa, ya));
            float newMb = TornadoMath.max(mb, TornadoMath.max(xb, yb));
            if (newMa != Float.NEGATIVE_INFINITY) {
                float c = TornadoMath.exp(ma - newMa);
                float pa = xa == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xa - newMa);
                float ra = ya == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ya - newMa);
                la = la * c + pa + ra;
                aa0 = aa0 * c + pa * v0 + ra * w0;
                aa1 = aa1 * c + pa * v1 + ra * w1;
                aa2 = aa2 * c + pa * v2 + ra * w2;
                aa3 = aa3 * c + pa * v3 + ra * w3;
                aa4 = aa4 * c + pa * v4 + ra * w4;
                aa5 = aa5 * c + pa * v5 + ra * w5;
                aa6 = aa6 * c + pa * v6 + ra * w6;
                aa7 = aa7 * c + pa * v7 + ra * w7;
                ma = newMa;
            }
            if (newMb != Float.NEGATIVE_INFINITY) {
                float c = TornadoMath.exp(mb - newMb);
                float pb = xb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xb - newMb);
                float rb = yb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yb - newMb);
                lb = lb * c + pb + rb;
                ab0 = ab0 * c + pb * v0 + rb * w0;
                ab1 = ab1 * c + pb * v1 + rb * w1;
                ab2 = ab2 * c + pb * v2 + rb * w2;
                ab3 = ab3 * c + pb * v3 + rb * w3;
                ab4 = ab4 * c + pb * v4 + rb * w4;
                ab5 = ab5 * c + pb * v5 + rb * w5;
                ab6 = ab6 * c + pb * v6 + rb * w6;
                ab7 = ab7 * c + pb * v7 + rb * w7;
                mb = newMb;
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
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            red[idx] = 0f;
        }
        ctx.localBarrier();
        int accA = 2 * pair * headDim + lane;
        int accB = accA + headDim;
        for (int j = 0; j < slots; j++) {
            if (slot == j) {
                red[accA] += aa0 * wa;
                red[accA + lanes] += aa1 * wa;
                red[accA + 2 * lanes] += aa2 * wa;
                red[accA + 3 * lanes] += aa3 * wa;
                red[accA + 4 * lanes] += aa4 * wa;
                red[accA + 5 * lanes] += aa5 * wa;
                red[accA + 6 * lanes] += aa6 * wa;
                red[accA + 7 * lanes] += aa7 * wa;
                red[accB] += ab0 * wb;
                red[accB + lanes] += ab1 * wb;
                red[accB + 2 * lanes] += ab2 * wb;
                red[accB + 3 * lanes] += ab3 * wb;
                red[accB + 4 * lanes] += ab4 * wb;
                red[accB + 5 * lanes] += ab5 * wb;
                red[accB + 6 * lanes] += ab6 * wb;
                red[accB + 7 * lanes] += ab7 * wb;
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
                    out.set((seq * numQHeads + h) * headDim + d, red[idx] / PagedDecodeKernels.finalSum(sum, mAll, partials, params, h));
                } else {
                    int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                    partials.set(pBase + d, red[idx]);
                    if (d == 0) {
                        partials.set(pBase + headDim, mAll);
                        partials.set(pBase + headDim + 1, sum);
                    }
                }
            }
        }
    }

}
