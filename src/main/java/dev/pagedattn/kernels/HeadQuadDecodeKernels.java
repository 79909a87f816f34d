package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * {@link HeadPairDecodeKernels} with four query heads per work-item instead of two: the same
 * arguments, grid, rounds of two tokens, reductions and partial format, but each K/V row is loaded
 * by half as many work-items (twice per group of 8 heads instead of four times), which halves the
 * 2-byte loads and fp16 conversions per token, the instructions that bound the pair kernel. Costs
 * registers: 32 query values and 32 accumulators per work-item. Used for groups of 3 or more heads.
 *
 * <pre>
 *  work-item -> (slot, quad, lane):  R = quads * L, L = headDim / 8, quads = ceil(min(groupSize, 8) / 4),
 *                                    slots = localSize / R
 * </pre>
 * The local size must be {@link #localSize}.
 */
public final class HeadQuadDecodeKernels {
    /** Largest local size. */
    public static final int MAX_LOCAL = 128;
    /** [slot][2 tokens][4*quads][lanes] = 8 * localSize floats / ... ; reused as [4*quads][headDim] at the end. */
    private static final int RED_SIZE = PagedDecodeKernels.MAX_HEADS_PER_TILE * PagedDecodeKernels.MAX_HEAD_DIM;
    /** [slot][2 tokens][4*quads]. */
    private static final int SCORE_SIZE = 8 * MAX_LOCAL;
    /** [slot][4*quads]. */
    private static final int SLOT_SIZE = 4 * MAX_LOCAL;

    private HeadQuadDecodeKernels() {
    }

    /** Work-items per token row for a shape. */
    public static int rowThreads(int groupSize, int headDim) {
        int quads = (Math.min(groupSize, PagedDecodeKernels.MAX_HEADS_PER_TILE) + 3) / 4;
        return quads * (headDim / 8);
    }

    /** The local size to launch with: as many token slots as fit 128 work-items (at least one row). */
    public static int localSize(int groupSize, int headDim) {
        int r = rowThreads(groupSize, headDim);
        return Math.max(1, MAX_LOCAL / r) * r;
    }

    public static void attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int quads = (tileHeads + 3) / 4;
        int rowThreads = quads * lanes;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int quad = r / lanes;
        int lane = r - quad * lanes;

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
        int head0 = tileFirst + 4 * quad;
        int tileRows = 4 * quads;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][2][4*quads][lanes]
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE);  // [slot][2][4*quads]
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [4*quads]

        boolean validA = head0 + 0 < groupSize && 4 * quad + 0 < tileHeads;
        float scla = validA ? scale : 0f;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? head0 + 0 : 0)) * headDim + lane;
        boolean validB = head0 + 1 < groupSize && 4 * quad + 1 < tileHeads;
        float sclb = validB ? scale : 0f;
        int qb = (seq * numQHeads + kvHead * groupSize + (validB ? head0 + 1 : 0)) * headDim + lane;
        boolean validC = head0 + 2 < groupSize && 4 * quad + 2 < tileHeads;
        float sclc = validC ? scale : 0f;
        int qc = (seq * numQHeads + kvHead * groupSize + (validC ? head0 + 2 : 0)) * headDim + lane;
        boolean validD = head0 + 3 < groupSize && 4 * quad + 3 < tileHeads;
        float scld = validD ? scale : 0f;
        int qd = (seq * numQHeads + kvHead * groupSize + (validD ? head0 + 3 : 0)) * headDim + lane;
        float qa0 = q.get(qa) * scla;
        float qa1 = q.get(qa + lanes) * scla;
        float qa2 = q.get(qa + 2 * lanes) * scla;
        float qa3 = q.get(qa + 3 * lanes) * scla;
        float qa4 = q.get(qa + 4 * lanes) * scla;
        float qa5 = q.get(qa + 5 * lanes) * scla;
        float qa6 = q.get(qa + 6 * lanes) * scla;
        float qa7 = q.get(qa + 7 * lanes) * scla;
        float qb0 = q.get(qb) * sclb;
        float qb1 = q.get(qb + lanes) * sclb;
        float qb2 = q.get(qb + 2 * lanes) * sclb;
        float qb3 = q.get(qb + 3 * lanes) * sclb;
        float qb4 = q.get(qb + 4 * lanes) * sclb;
        float qb5 = q.get(qb + 5 * lanes) * sclb;
        float qb6 = q.get(qb + 6 * lanes) * sclb;
        float qb7 = q.get(qb + 7 * lanes) * sclb;
        float qc0 = q.get(qc) * sclc;
        float qc1 = q.get(qc + lanes) * sclc;
        float qc2 = q.get(qc + 2 * lanes) * sclc;
        float qc3 = q.get(qc + 3 * lanes) * sclc;
        float qc4 = q.get(qc + 4 * lanes) * sclc;
        float qc5 = q.get(qc + 5 * lanes) * sclc;
        float qc6 = q.get(qc + 6 * lanes) * sclc;
        float qc7 = q.get(qc + 7 * lanes) * sclc;
        float qd0 = q.get(qd) * scld;
        float qd1 = q.get(qd + lanes) * scld;
        float qd2 = q.get(qd + 2 * lanes) * scld;
        float qd3 = q.get(qd + 3 * lanes) * scld;
        float qd4 = q.get(qd + 4 * lanes) * scld;
        float qd5 = q.get(qd + 5 * lanes) * scld;
        float qd6 = q.get(qd + 6 * lanes) * scld;
        float qd7 = q.get(qd + 7 * lanes) * scld;
        float aa0 = 0f, aa1 = 0f, aa2 = 0f, aa3 = 0f, aa4 = 0f, aa5 = 0f, aa6 = 0f, aa7 = 0f;
        float ab0 = 0f, ab1 = 0f, ab2 = 0f, ab3 = 0f, ab4 = 0f, ab5 = 0f, ab6 = 0f, ab7 = 0f;
        float ac0 = 0f, ac1 = 0f, ac2 = 0f, ac3 = 0f, ac4 = 0f, ac5 = 0f, ac6 = 0f, ac7 = 0f;
        float ad0 = 0f, ad1 = 0f, ad2 = 0f, ad3 = 0f, ad4 = 0f, ad5 = 0f, ad6 = 0f, ad7 = 0f;
        float ma = Float.NEGATIVE_INFINITY;
        float la = 0f;
        float mb = Float.NEGATIVE_INFINITY;
        float lb = 0f;
        float mc = Float.NEGATIVE_INFINITY;
        float lc = 0f;
        float md = Float.NEGATIVE_INFINITY;
        float ld = 0f;

        for (int idx = tid; idx < tileRows; idx += local) {
            slotSum[idx] = 0f;
        }

        // Each round, every slot takes two tokens (A, B) and loads their K and V rows before the
        // first barrier, so 32 loads per work-item are in flight and V arrives while scores reduce.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int redA = (slot * 2 * tileRows + 4 * quad) * lanes + lane;   // [slot][token][head][lane]
        int redB = redA + tileRows * lanes;
        int sA = slot * 2 * tileRows + 4 * quad;                      // [slot][token][head]
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
            // 1. partial dots of this lane's 8 dims: two tokens x four heads
            red[redA] = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            red[redA + lanes] = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            red[redA + 2 * lanes] = qc0 * k0 + qc1 * k1 + qc2 * k2 + qc3 * k3 + qc4 * k4 + qc5 * k5 + qc6 * k6 + qc7 * k7;
            red[redA + 3 * lanes] = qd0 * k0 + qd1 * k1 + qd2 * k2 + qd3 * k3 + qd4 * k4 + qd5 * k5 + qd6 * k6 + qd7 * k7;
            red[redB] = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            red[redB + lanes] = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            red[redB + 2 * lanes] = qc0 * c0 + qc1 * c1 + qc2 * c2 + qc3 * c3 + qc4 * c4 + qc5 * c5 + qc6 * c6 + qc7 * c7;
            red[redB + 3 * lanes] = qd0 * c0 + qd1 * c1 + qd2 * c2 + qd3 * c3 + qd4 * c4 + qd5 * c5 + qd6 * c6 + qd7 * c7;
            ctx.localBarrier();
            // 2. scores: sum the lanes (4 independent loads at a time); tokens past the end and heads
            //    past the group score -inf
            int roundBase = start + rd * perRound;
            float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)
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
            float xa = scores[sA + 0];
            float ya = scores[sB + 0];
            float newMa = TornadoMath.max(ma, TornadoMath.max(xa, ya));
            if (newMa > ma) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(ma - newMa);
                la = la * c;
                aa0 = aa0 * c;
                aa1 = aa1 * c;
                aa2 = aa2 * c;
                aa3 = aa3 * c;
                aa4 = aa4 * c;
                aa5 = aa5 * c;
                aa6 = aa6 * c;
                aa7 = aa7 * c;
                ma = newMa;
            }
            if (ma != Float.NEGATIVE_INFINITY) {
                float p = xa == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xa - ma);
                float o = ya == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ya - ma);
                la = la + p + o;
                aa0 = aa0 + p * v0 + o * w0;
                aa1 = aa1 + p * v1 + o * w1;
                aa2 = aa2 + p * v2 + o * w2;
                aa3 = aa3 + p * v3 + o * w3;
                aa4 = aa4 + p * v4 + o * w4;
                aa5 = aa5 + p * v5 + o * w5;
                aa6 = aa6 + p * v6 + o * w6;
                aa7 = aa7 + p * v7 + o * w7;
            }
            float xb = scores[sA + 1];
            float yb = scores[sB + 1];
            float newMb = TornadoMath.max(mb, TornadoMath.max(xb, yb));
            if (newMb > mb) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(mb - newMb);
                lb = lb * c;
                ab0 = ab0 * c;
                ab1 = ab1 * c;
                ab2 = ab2 * c;
                ab3 = ab3 * c;
                ab4 = ab4 * c;
                ab5 = ab5 * c;
                ab6 = ab6 * c;
                ab7 = ab7 * c;
                mb = newMb;
            }
            if (mb != Float.NEGATIVE_INFINITY) {
                float p = xb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xb - mb);
                float o = yb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yb - mb);
                lb = lb + p + o;
                ab0 = ab0 + p * v0 + o * w0;
                ab1 = ab1 + p * v1 + o * w1;
                ab2 = ab2 + p * v2 + o * w2;
                ab3 = ab3 + p * v3 + o * w3;
                ab4 = ab4 + p * v4 + o * w4;
                ab5 = ab5 + p * v5 + o * w5;
                ab6 = ab6 + p * v6 + o * w6;
                ab7 = ab7 + p * v7 + o * w7;
            }
            float xc = scores[sA + 2];
            float yc = scores[sB + 2];
            float newMc = TornadoMath.max(mc, TornadoMath.max(xc, yc));
            if (newMc > mc) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(mc - newMc);
                lc = lc * c;
                ac0 = ac0 * c;
                ac1 = ac1 * c;
                ac2 = ac2 * c;
                ac3 = ac3 * c;
                ac4 = ac4 * c;
                ac5 = ac5 * c;
                ac6 = ac6 * c;
                ac7 = ac7 * c;
                mc = newMc;
            }
            if (mc != Float.NEGATIVE_INFINITY) {
                float p = xc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xc - mc);
                float o = yc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yc - mc);
                lc = lc + p + o;
                ac0 = ac0 + p * v0 + o * w0;
                ac1 = ac1 + p * v1 + o * w1;
                ac2 = ac2 + p * v2 + o * w2;
                ac3 = ac3 + p * v3 + o * w3;
                ac4 = ac4 + p * v4 + o * w4;
                ac5 = ac5 + p * v5 + o * w5;
                ac6 = ac6 + p * v6 + o * w6;
                ac7 = ac7 + p * v7 + o * w7;
            }
            float xd = scores[sA + 3];
            float yd = scores[sB + 3];
            float newMd = TornadoMath.max(md, TornadoMath.max(xd, yd));
            if (newMd > md) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(md - newMd);
                ld = ld * c;
                ad0 = ad0 * c;
                ad1 = ad1 * c;
                ad2 = ad2 * c;
                ad3 = ad3 * c;
                ad4 = ad4 * c;
                ad5 = ad5 * c;
                ad6 = ad6 * c;
                ad7 = ad7 * c;
                md = newMd;
            }
            if (md != Float.NEGATIVE_INFINITY) {
                float p = xd == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xd - md);
                float o = yd == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yd - md);
                ld = ld + p + o;
                ad0 = ad0 + p * v0 + o * w0;
                ad1 = ad1 + p * v1 + o * w1;
                ad2 = ad2 + p * v2 + o * w2;
                ad3 = ad3 + p * v3 + o * w3;
                ad4 = ad4 + p * v4 + o * w4;
                ad5 = ad5 + p * v5 + o * w5;
                ad6 = ad6 + p * v6 + o * w6;
                ad7 = ad7 + p * v7 + o * w7;
            }
        }
        // 4. merge the slots by log-sum-exp
        if (lane == 0) {
            slotMax[slot * tileRows + 4 * quad + 0] = ma;
            slotMax[slot * tileRows + 4 * quad + 1] = mb;
            slotMax[slot * tileRows + 4 * quad + 2] = mc;
            slotMax[slot * tileRows + 4 * quad + 3] = md;
        }
        ctx.localBarrier();
        float mAllA = Float.NEGATIVE_INFINITY;
        float mAllB = Float.NEGATIVE_INFINITY;
        float mAllC = Float.NEGATIVE_INFINITY;
        float mAllD = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < slots; j++) {
            mAllA = TornadoMath.max(mAllA, slotMax[j * tileRows + 4 * quad + 0]);
            mAllB = TornadoMath.max(mAllB, slotMax[j * tileRows + 4 * quad + 1]);
            mAllC = TornadoMath.max(mAllC, slotMax[j * tileRows + 4 * quad + 2]);
            mAllD = TornadoMath.max(mAllD, slotMax[j * tileRows + 4 * quad + 3]);
        }
        float wa = ma == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ma - mAllA);
        float wb = mb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mb - mAllB);
        float wc = mc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mc - mAllC);
        float wd = md == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(md - mAllD);
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            red[idx] = 0f;
        }
        ctx.localBarrier();
        int acc0 = 4 * quad * headDim + lane;
        for (int j = 0; j < slots; j++) {
            if (slot == j) {
                red[acc0] += aa0 * wa;
                red[acc0 + lanes] += aa1 * wa;
                red[acc0 + 2 * lanes] += aa2 * wa;
                red[acc0 + 3 * lanes] += aa3 * wa;
                red[acc0 + 4 * lanes] += aa4 * wa;
                red[acc0 + 5 * lanes] += aa5 * wa;
                red[acc0 + 6 * lanes] += aa6 * wa;
                red[acc0 + 7 * lanes] += aa7 * wa;
                red[acc0 + headDim] += ab0 * wb;
                red[acc0 + headDim + lanes] += ab1 * wb;
                red[acc0 + headDim + 2 * lanes] += ab2 * wb;
                red[acc0 + headDim + 3 * lanes] += ab3 * wb;
                red[acc0 + headDim + 4 * lanes] += ab4 * wb;
                red[acc0 + headDim + 5 * lanes] += ab5 * wb;
                red[acc0 + headDim + 6 * lanes] += ab6 * wb;
                red[acc0 + headDim + 7 * lanes] += ab7 * wb;
                red[acc0 + 2 * headDim] += ac0 * wc;
                red[acc0 + 2 * headDim + lanes] += ac1 * wc;
                red[acc0 + 2 * headDim + 2 * lanes] += ac2 * wc;
                red[acc0 + 2 * headDim + 3 * lanes] += ac3 * wc;
                red[acc0 + 2 * headDim + 4 * lanes] += ac4 * wc;
                red[acc0 + 2 * headDim + 5 * lanes] += ac5 * wc;
                red[acc0 + 2 * headDim + 6 * lanes] += ac6 * wc;
                red[acc0 + 2 * headDim + 7 * lanes] += ac7 * wc;
                red[acc0 + 3 * headDim] += ad0 * wd;
                red[acc0 + 3 * headDim + lanes] += ad1 * wd;
                red[acc0 + 3 * headDim + 2 * lanes] += ad2 * wd;
                red[acc0 + 3 * headDim + 3 * lanes] += ad3 * wd;
                red[acc0 + 3 * headDim + 4 * lanes] += ad4 * wd;
                red[acc0 + 3 * headDim + 5 * lanes] += ad5 * wd;
                red[acc0 + 3 * headDim + 6 * lanes] += ad6 * wd;
                red[acc0 + 3 * headDim + 7 * lanes] += ad7 * wd;
                if (lane == 0) {
                    slotSum[4 * quad + 0] += la * wa;
                    slotSum[4 * quad + 1] += lb * wb;
                    slotSum[4 * quad + 2] += lc * wc;
                    slotSum[4 * quad + 3] += ld * wd;
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
                                    float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int quads = (tileHeads + 3) / 4;
        int rowThreads = quads * lanes;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int quad = r / lanes;
        int lane = r - quad * lanes;

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
        int head0 = tileFirst + 4 * quad;
        int tileRows = 4 * quads;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][2][4*quads][lanes]
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE);  // [slot][2][4*quads]
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [4*quads]

        boolean validA = head0 + 0 < groupSize && 4 * quad + 0 < tileHeads;
        float scla = validA ? scale : 0f;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? head0 + 0 : 0)) * headDim + lane;
        boolean validB = head0 + 1 < groupSize && 4 * quad + 1 < tileHeads;
        float sclb = validB ? scale : 0f;
        int qb = (seq * numQHeads + kvHead * groupSize + (validB ? head0 + 1 : 0)) * headDim + lane;
        boolean validC = head0 + 2 < groupSize && 4 * quad + 2 < tileHeads;
        float sclc = validC ? scale : 0f;
        int qc = (seq * numQHeads + kvHead * groupSize + (validC ? head0 + 2 : 0)) * headDim + lane;
        boolean validD = head0 + 3 < groupSize && 4 * quad + 3 < tileHeads;
        float scld = validD ? scale : 0f;
        int qd = (seq * numQHeads + kvHead * groupSize + (validD ? head0 + 3 : 0)) * headDim + lane;
        float qa0 = q.get(qa) * scla;
        float qa1 = q.get(qa + lanes) * scla;
        float qa2 = q.get(qa + 2 * lanes) * scla;
        float qa3 = q.get(qa + 3 * lanes) * scla;
        float qa4 = q.get(qa + 4 * lanes) * scla;
        float qa5 = q.get(qa + 5 * lanes) * scla;
        float qa6 = q.get(qa + 6 * lanes) * scla;
        float qa7 = q.get(qa + 7 * lanes) * scla;
        float qb0 = q.get(qb) * sclb;
        float qb1 = q.get(qb + lanes) * sclb;
        float qb2 = q.get(qb + 2 * lanes) * sclb;
        float qb3 = q.get(qb + 3 * lanes) * sclb;
        float qb4 = q.get(qb + 4 * lanes) * sclb;
        float qb5 = q.get(qb + 5 * lanes) * sclb;
        float qb6 = q.get(qb + 6 * lanes) * sclb;
        float qb7 = q.get(qb + 7 * lanes) * sclb;
        float qc0 = q.get(qc) * sclc;
        float qc1 = q.get(qc + lanes) * sclc;
        float qc2 = q.get(qc + 2 * lanes) * sclc;
        float qc3 = q.get(qc + 3 * lanes) * sclc;
        float qc4 = q.get(qc + 4 * lanes) * sclc;
        float qc5 = q.get(qc + 5 * lanes) * sclc;
        float qc6 = q.get(qc + 6 * lanes) * sclc;
        float qc7 = q.get(qc + 7 * lanes) * sclc;
        float qd0 = q.get(qd) * scld;
        float qd1 = q.get(qd + lanes) * scld;
        float qd2 = q.get(qd + 2 * lanes) * scld;
        float qd3 = q.get(qd + 3 * lanes) * scld;
        float qd4 = q.get(qd + 4 * lanes) * scld;
        float qd5 = q.get(qd + 5 * lanes) * scld;
        float qd6 = q.get(qd + 6 * lanes) * scld;
        float qd7 = q.get(qd + 7 * lanes) * scld;
        float aa0 = 0f, aa1 = 0f, aa2 = 0f, aa3 = 0f, aa4 = 0f, aa5 = 0f, aa6 = 0f, aa7 = 0f;
        float ab0 = 0f, ab1 = 0f, ab2 = 0f, ab3 = 0f, ab4 = 0f, ab5 = 0f, ab6 = 0f, ab7 = 0f;
        float ac0 = 0f, ac1 = 0f, ac2 = 0f, ac3 = 0f, ac4 = 0f, ac5 = 0f, ac6 = 0f, ac7 = 0f;
        float ad0 = 0f, ad1 = 0f, ad2 = 0f, ad3 = 0f, ad4 = 0f, ad5 = 0f, ad6 = 0f, ad7 = 0f;
        float ma = Float.NEGATIVE_INFINITY;
        float la = 0f;
        float mb = Float.NEGATIVE_INFINITY;
        float lb = 0f;
        float mc = Float.NEGATIVE_INFINITY;
        float lc = 0f;
        float md = Float.NEGATIVE_INFINITY;
        float ld = 0f;

        for (int idx = tid; idx < tileRows; idx += local) {
            slotSum[idx] = 0f;
        }

        // Each round, every slot takes two tokens (A, B) and loads their K and V rows before the
        // first barrier, so 32 loads per work-item are in flight and V arrives while scores reduce.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int redA = (slot * 2 * tileRows + 4 * quad) * lanes + lane;   // [slot][token][head][lane]
        int redB = redA + tileRows * lanes;
        int sA = slot * 2 * tileRows + 4 * quad;                      // [slot][token][head]
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
            // 1. partial dots of this lane's 8 dims: two tokens x four heads
            red[redA] = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            red[redA + lanes] = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            red[redA + 2 * lanes] = qc0 * k0 + qc1 * k1 + qc2 * k2 + qc3 * k3 + qc4 * k4 + qc5 * k5 + qc6 * k6 + qc7 * k7;
            red[redA + 3 * lanes] = qd0 * k0 + qd1 * k1 + qd2 * k2 + qd3 * k3 + qd4 * k4 + qd5 * k5 + qd6 * k6 + qd7 * k7;
            red[redB] = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            red[redB + lanes] = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            red[redB + 2 * lanes] = qc0 * c0 + qc1 * c1 + qc2 * c2 + qc3 * c3 + qc4 * c4 + qc5 * c5 + qc6 * c6 + qc7 * c7;
            red[redB + 3 * lanes] = qd0 * c0 + qd1 * c1 + qd2 * c2 + qd3 * c3 + qd4 * c4 + qd5 * c5 + qd6 * c6 + qd7 * c7;
            ctx.localBarrier();
            // 2. scores: sum the lanes (4 independent loads at a time); tokens past the end and heads
            //    past the group score -inf
            int roundBase = start + rd * perRound;
            float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)
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
            float xa = scores[sA + 0];
            float ya = scores[sB + 0];
            float newMa = TornadoMath.max(ma, TornadoMath.max(xa, ya));
            if (newMa > ma) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(ma - newMa);
                la = la * c;
                aa0 = aa0 * c;
                aa1 = aa1 * c;
                aa2 = aa2 * c;
                aa3 = aa3 * c;
                aa4 = aa4 * c;
                aa5 = aa5 * c;
                aa6 = aa6 * c;
                aa7 = aa7 * c;
                ma = newMa;
            }
            if (ma != Float.NEGATIVE_INFINITY) {
                float p = xa == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xa - ma);
                float o = ya == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ya - ma);
                la = la + p + o;
                aa0 = aa0 + p * v0 + o * w0;
                aa1 = aa1 + p * v1 + o * w1;
                aa2 = aa2 + p * v2 + o * w2;
                aa3 = aa3 + p * v3 + o * w3;
                aa4 = aa4 + p * v4 + o * w4;
                aa5 = aa5 + p * v5 + o * w5;
                aa6 = aa6 + p * v6 + o * w6;
                aa7 = aa7 + p * v7 + o * w7;
            }
            float xb = scores[sA + 1];
            float yb = scores[sB + 1];
            float newMb = TornadoMath.max(mb, TornadoMath.max(xb, yb));
            if (newMb > mb) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(mb - newMb);
                lb = lb * c;
                ab0 = ab0 * c;
                ab1 = ab1 * c;
                ab2 = ab2 * c;
                ab3 = ab3 * c;
                ab4 = ab4 * c;
                ab5 = ab5 * c;
                ab6 = ab6 * c;
                ab7 = ab7 * c;
                mb = newMb;
            }
            if (mb != Float.NEGATIVE_INFINITY) {
                float p = xb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xb - mb);
                float o = yb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yb - mb);
                lb = lb + p + o;
                ab0 = ab0 + p * v0 + o * w0;
                ab1 = ab1 + p * v1 + o * w1;
                ab2 = ab2 + p * v2 + o * w2;
                ab3 = ab3 + p * v3 + o * w3;
                ab4 = ab4 + p * v4 + o * w4;
                ab5 = ab5 + p * v5 + o * w5;
                ab6 = ab6 + p * v6 + o * w6;
                ab7 = ab7 + p * v7 + o * w7;
            }
            float xc = scores[sA + 2];
            float yc = scores[sB + 2];
            float newMc = TornadoMath.max(mc, TornadoMath.max(xc, yc));
            if (newMc > mc) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(mc - newMc);
                lc = lc * c;
                ac0 = ac0 * c;
                ac1 = ac1 * c;
                ac2 = ac2 * c;
                ac3 = ac3 * c;
                ac4 = ac4 * c;
                ac5 = ac5 * c;
                ac6 = ac6 * c;
                ac7 = ac7 * c;
                mc = newMc;
            }
            if (mc != Float.NEGATIVE_INFINITY) {
                float p = xc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xc - mc);
                float o = yc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yc - mc);
                lc = lc + p + o;
                ac0 = ac0 + p * v0 + o * w0;
                ac1 = ac1 + p * v1 + o * w1;
                ac2 = ac2 + p * v2 + o * w2;
                ac3 = ac3 + p * v3 + o * w3;
                ac4 = ac4 + p * v4 + o * w4;
                ac5 = ac5 + p * v5 + o * w5;
                ac6 = ac6 + p * v6 + o * w6;
                ac7 = ac7 + p * v7 + o * w7;
            }
            float xd = scores[sA + 3];
            float yd = scores[sB + 3];
            float newMd = TornadoMath.max(md, TornadoMath.max(xd, yd));
            if (newMd > md) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(md - newMd);
                ld = ld * c;
                ad0 = ad0 * c;
                ad1 = ad1 * c;
                ad2 = ad2 * c;
                ad3 = ad3 * c;
                ad4 = ad4 * c;
                ad5 = ad5 * c;
                ad6 = ad6 * c;
                ad7 = ad7 * c;
                md = newMd;
            }
            if (md != Float.NEGATIVE_INFINITY) {
                float p = xd == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xd - md);
                float o = yd == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yd - md);
                ld = ld + p + o;
                ad0 = ad0 + p * v0 + o * w0;
                ad1 = ad1 + p * v1 + o * w1;
                ad2 = ad2 + p * v2 + o * w2;
                ad3 = ad3 + p * v3 + o * w3;
                ad4 = ad4 + p * v4 + o * w4;
                ad5 = ad5 + p * v5 + o * w5;
                ad6 = ad6 + p * v6 + o * w6;
                ad7 = ad7 + p * v7 + o * w7;
            }
        }
        // 4. merge the slots by log-sum-exp
        if (lane == 0) {
            slotMax[slot * tileRows + 4 * quad + 0] = ma;
            slotMax[slot * tileRows + 4 * quad + 1] = mb;
            slotMax[slot * tileRows + 4 * quad + 2] = mc;
            slotMax[slot * tileRows + 4 * quad + 3] = md;
        }
        ctx.localBarrier();
        float mAllA = Float.NEGATIVE_INFINITY;
        float mAllB = Float.NEGATIVE_INFINITY;
        float mAllC = Float.NEGATIVE_INFINITY;
        float mAllD = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < slots; j++) {
            mAllA = TornadoMath.max(mAllA, slotMax[j * tileRows + 4 * quad + 0]);
            mAllB = TornadoMath.max(mAllB, slotMax[j * tileRows + 4 * quad + 1]);
            mAllC = TornadoMath.max(mAllC, slotMax[j * tileRows + 4 * quad + 2]);
            mAllD = TornadoMath.max(mAllD, slotMax[j * tileRows + 4 * quad + 3]);
        }
        float wa = ma == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ma - mAllA);
        float wb = mb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mb - mAllB);
        float wc = mc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mc - mAllC);
        float wd = md == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(md - mAllD);
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            red[idx] = 0f;
        }
        ctx.localBarrier();
        int acc0 = 4 * quad * headDim + lane;
        for (int j = 0; j < slots; j++) {
            if (slot == j) {
                red[acc0] += aa0 * wa;
                red[acc0 + lanes] += aa1 * wa;
                red[acc0 + 2 * lanes] += aa2 * wa;
                red[acc0 + 3 * lanes] += aa3 * wa;
                red[acc0 + 4 * lanes] += aa4 * wa;
                red[acc0 + 5 * lanes] += aa5 * wa;
                red[acc0 + 6 * lanes] += aa6 * wa;
                red[acc0 + 7 * lanes] += aa7 * wa;
                red[acc0 + headDim] += ab0 * wb;
                red[acc0 + headDim + lanes] += ab1 * wb;
                red[acc0 + headDim + 2 * lanes] += ab2 * wb;
                red[acc0 + headDim + 3 * lanes] += ab3 * wb;
                red[acc0 + headDim + 4 * lanes] += ab4 * wb;
                red[acc0 + headDim + 5 * lanes] += ab5 * wb;
                red[acc0 + headDim + 6 * lanes] += ab6 * wb;
                red[acc0 + headDim + 7 * lanes] += ab7 * wb;
                red[acc0 + 2 * headDim] += ac0 * wc;
                red[acc0 + 2 * headDim + lanes] += ac1 * wc;
                red[acc0 + 2 * headDim + 2 * lanes] += ac2 * wc;
                red[acc0 + 2 * headDim + 3 * lanes] += ac3 * wc;
                red[acc0 + 2 * headDim + 4 * lanes] += ac4 * wc;
                red[acc0 + 2 * headDim + 5 * lanes] += ac5 * wc;
                red[acc0 + 2 * headDim + 6 * lanes] += ac6 * wc;
                red[acc0 + 2 * headDim + 7 * lanes] += ac7 * wc;
                red[acc0 + 3 * headDim] += ad0 * wd;
                red[acc0 + 3 * headDim + lanes] += ad1 * wd;
                red[acc0 + 3 * headDim + 2 * lanes] += ad2 * wd;
                red[acc0 + 3 * headDim + 3 * lanes] += ad3 * wd;
                red[acc0 + 3 * headDim + 4 * lanes] += ad4 * wd;
                red[acc0 + 3 * headDim + 5 * lanes] += ad5 * wd;
                red[acc0 + 3 * headDim + 6 * lanes] += ad6 * wd;
                red[acc0 + 3 * headDim + 7 * lanes] += ad7 * wd;
                if (lane == 0) {
                    slotSum[4 * quad + 0] += la * wa;
                    slotSum[4 * quad + 1] += lb * wb;
                    slotSum[4 * quad + 2] += lc * wc;
                    slotSum[4 * quad + 3] += ld * wd;
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

    /**
     * {@link #attentionF16} over 8-bit pools, for backends without warp shuffles (OpenCL) and head
     * dims the warp kernel does not take; the body is the fp16 body under {@code PackedTwin}'s packed
     * rule (a test checks it): codes packed four per word, two word loads per row and lane (dims
     * {@code 4*lane .. 4*lane+3} and {@code 4*(lane+L) ..}), each code looked up in a local copy of
     * the format's table, the K scale folded into q and the V scale into the merge weights.
     *
     * @param dequant {@link PackedCodes#argument} with {@code kFactor} 1
     */
    public static void attentionQ8(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float scale) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int quads = (tileHeads + 3) / 4;
        int rowThreads = quads * lanes;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int quad = r / lanes;
        int lane = r - quad * lanes;

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
        int head0 = tileFirst + 4 * quad;
        int tileRows = 4 * quads;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][2][4*quads][lanes]
        float[] scores = ctx.allocateFloatLocalArray(SCORE_SIZE);  // [slot][2][4*quads]
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [4*quads]
        float[] lut = ctx.allocateFloatLocalArray(DequantTable.SIZE); // [code]: the format's values
        for (int t = tid; t < DequantTable.SIZE; t += local) {
            lut[t] = dequant.get(t);
        }
        ctx.localBarrier();                                          // the table is complete
        float kScale = dequant.get(DequantTable.SIZE + kvHead);      // folded into q
        float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead); // folded into the merge weights

        boolean validA = head0 + 0 < groupSize && 4 * quad + 0 < tileHeads;
        float scla = validA ? scale * kScale : 0f;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? head0 + 0 : 0)) * headDim + 4 * lane;
        boolean validB = head0 + 1 < groupSize && 4 * quad + 1 < tileHeads;
        float sclb = validB ? scale * kScale : 0f;
        int qb = (seq * numQHeads + kvHead * groupSize + (validB ? head0 + 1 : 0)) * headDim + 4 * lane;
        boolean validC = head0 + 2 < groupSize && 4 * quad + 2 < tileHeads;
        float sclc = validC ? scale * kScale : 0f;
        int qc = (seq * numQHeads + kvHead * groupSize + (validC ? head0 + 2 : 0)) * headDim + 4 * lane;
        boolean validD = head0 + 3 < groupSize && 4 * quad + 3 < tileHeads;
        float scld = validD ? scale * kScale : 0f;
        int qd = (seq * numQHeads + kvHead * groupSize + (validD ? head0 + 3 : 0)) * headDim + 4 * lane;
        float qa0 = q.get(qa) * scla;
        float qa1 = q.get(qa + 1) * scla;
        float qa2 = q.get(qa + 2) * scla;
        float qa3 = q.get(qa + 3) * scla;
        float qa4 = q.get(qa + 4 * lanes) * scla;
        float qa5 = q.get(qa + 4 * lanes + 1) * scla;
        float qa6 = q.get(qa + 4 * lanes + 2) * scla;
        float qa7 = q.get(qa + 4 * lanes + 3) * scla;
        float qb0 = q.get(qb) * sclb;
        float qb1 = q.get(qb + 1) * sclb;
        float qb2 = q.get(qb + 2) * sclb;
        float qb3 = q.get(qb + 3) * sclb;
        float qb4 = q.get(qb + 4 * lanes) * sclb;
        float qb5 = q.get(qb + 4 * lanes + 1) * sclb;
        float qb6 = q.get(qb + 4 * lanes + 2) * sclb;
        float qb7 = q.get(qb + 4 * lanes + 3) * sclb;
        float qc0 = q.get(qc) * sclc;
        float qc1 = q.get(qc + 1) * sclc;
        float qc2 = q.get(qc + 2) * sclc;
        float qc3 = q.get(qc + 3) * sclc;
        float qc4 = q.get(qc + 4 * lanes) * sclc;
        float qc5 = q.get(qc + 4 * lanes + 1) * sclc;
        float qc6 = q.get(qc + 4 * lanes + 2) * sclc;
        float qc7 = q.get(qc + 4 * lanes + 3) * sclc;
        float qd0 = q.get(qd) * scld;
        float qd1 = q.get(qd + 1) * scld;
        float qd2 = q.get(qd + 2) * scld;
        float qd3 = q.get(qd + 3) * scld;
        float qd4 = q.get(qd + 4 * lanes) * scld;
        float qd5 = q.get(qd + 4 * lanes + 1) * scld;
        float qd6 = q.get(qd + 4 * lanes + 2) * scld;
        float qd7 = q.get(qd + 4 * lanes + 3) * scld;
        float aa0 = 0f, aa1 = 0f, aa2 = 0f, aa3 = 0f, aa4 = 0f, aa5 = 0f, aa6 = 0f, aa7 = 0f;
        float ab0 = 0f, ab1 = 0f, ab2 = 0f, ab3 = 0f, ab4 = 0f, ab5 = 0f, ab6 = 0f, ab7 = 0f;
        float ac0 = 0f, ac1 = 0f, ac2 = 0f, ac3 = 0f, ac4 = 0f, ac5 = 0f, ac6 = 0f, ac7 = 0f;
        float ad0 = 0f, ad1 = 0f, ad2 = 0f, ad3 = 0f, ad4 = 0f, ad5 = 0f, ad6 = 0f, ad7 = 0f;
        float ma = Float.NEGATIVE_INFINITY;
        float la = 0f;
        float mb = Float.NEGATIVE_INFINITY;
        float lb = 0f;
        float mc = Float.NEGATIVE_INFINITY;
        float lc = 0f;
        float md = Float.NEGATIVE_INFINITY;
        float ld = 0f;

        for (int idx = tid; idx < tileRows; idx += local) {
            slotSum[idx] = 0f;
        }

        // Each round, every slot takes two tokens (A, B) and loads their K and V rows before the
        // first barrier, so 32 loads per work-item are in flight and V arrives while scores reduce.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int redA = (slot * 2 * tileRows + 4 * quad) * lanes + lane;   // [slot][token][head][lane]
        int redB = redA + tileRows * lanes;
        int sA = slot * 2 * tileRows + 4 * quad;                      // [slot][token][head]
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
                int row = KvLayout.offset(layerBase >> 2, blockStride >> 2, headStride >> 2, headDim >> 2, block, kvHead,
                        tokenA % blockSize, lane);
                int kw0 = kPool.get(row);
                k0 = lut[kw0 & 0xFF];
                k1 = lut[(kw0 >> 8) & 0xFF];
                k2 = lut[(kw0 >> 16) & 0xFF];
                k3 = lut[(kw0 >> 24) & 0xFF];
                int kw1 = kPool.get(row + lanes);
                k4 = lut[kw1 & 0xFF];
                k5 = lut[(kw1 >> 8) & 0xFF];
                k6 = lut[(kw1 >> 16) & 0xFF];
                k7 = lut[(kw1 >> 24) & 0xFF];
                int vw0 = vPool.get(row);
                v0 = lut[vw0 & 0xFF];
                v1 = lut[(vw0 >> 8) & 0xFF];
                v2 = lut[(vw0 >> 16) & 0xFF];
                v3 = lut[(vw0 >> 24) & 0xFF];
                int vw1 = vPool.get(row + lanes);
                v4 = lut[vw1 & 0xFF];
                v5 = lut[(vw1 >> 8) & 0xFF];
                v6 = lut[(vw1 >> 16) & 0xFF];
                v7 = lut[(vw1 >> 24) & 0xFF];
            }
            if (tokenB < end) {
                int block = blockTables.get(tableRow + tokenB / blockSize);
                int row = KvLayout.offset(layerBase >> 2, blockStride >> 2, headStride >> 2, headDim >> 2, block, kvHead,
                        tokenB % blockSize, lane);
                int cw0 = kPool.get(row);
                c0 = lut[cw0 & 0xFF];
                c1 = lut[(cw0 >> 8) & 0xFF];
                c2 = lut[(cw0 >> 16) & 0xFF];
                c3 = lut[(cw0 >> 24) & 0xFF];
                int cw1 = kPool.get(row + lanes);
                c4 = lut[cw1 & 0xFF];
                c5 = lut[(cw1 >> 8) & 0xFF];
                c6 = lut[(cw1 >> 16) & 0xFF];
                c7 = lut[(cw1 >> 24) & 0xFF];
                int ww0 = vPool.get(row);
                w0 = lut[ww0 & 0xFF];
                w1 = lut[(ww0 >> 8) & 0xFF];
                w2 = lut[(ww0 >> 16) & 0xFF];
                w3 = lut[(ww0 >> 24) & 0xFF];
                int ww1 = vPool.get(row + lanes);
                w4 = lut[ww1 & 0xFF];
                w5 = lut[(ww1 >> 8) & 0xFF];
                w6 = lut[(ww1 >> 16) & 0xFF];
                w7 = lut[(ww1 >> 24) & 0xFF];
            }
            // 1. partial dots of this lane's 8 dims: two tokens x four heads
            red[redA] = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            red[redA + lanes] = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            red[redA + 2 * lanes] = qc0 * k0 + qc1 * k1 + qc2 * k2 + qc3 * k3 + qc4 * k4 + qc5 * k5 + qc6 * k6 + qc7 * k7;
            red[redA + 3 * lanes] = qd0 * k0 + qd1 * k1 + qd2 * k2 + qd3 * k3 + qd4 * k4 + qd5 * k5 + qd6 * k6 + qd7 * k7;
            red[redB] = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            red[redB + lanes] = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            red[redB + 2 * lanes] = qc0 * c0 + qc1 * c1 + qc2 * c2 + qc3 * c3 + qc4 * c4 + qc5 * c5 + qc6 * c6 + qc7 * c7;
            red[redB + 3 * lanes] = qd0 * c0 + qd1 * c1 + qd2 * c2 + qd3 * c3 + qd4 * c4 + qd5 * c5 + qd6 * c6 + qd7 * c7;
            ctx.localBarrier();
            // 2. scores: sum the lanes (4 independent loads at a time); tokens past the end and heads
            //    past the group score -inf
            int roundBase = start + rd * perRound;
            float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)
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
            float xa = scores[sA + 0];
            float ya = scores[sB + 0];
            float newMa = TornadoMath.max(ma, TornadoMath.max(xa, ya));
            if (newMa > ma) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(ma - newMa);
                la = la * c;
                aa0 = aa0 * c;
                aa1 = aa1 * c;
                aa2 = aa2 * c;
                aa3 = aa3 * c;
                aa4 = aa4 * c;
                aa5 = aa5 * c;
                aa6 = aa6 * c;
                aa7 = aa7 * c;
                ma = newMa;
            }
            if (ma != Float.NEGATIVE_INFINITY) {
                float p = xa == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xa - ma);
                float o = ya == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ya - ma);
                la = la + p + o;
                aa0 = aa0 + p * v0 + o * w0;
                aa1 = aa1 + p * v1 + o * w1;
                aa2 = aa2 + p * v2 + o * w2;
                aa3 = aa3 + p * v3 + o * w3;
                aa4 = aa4 + p * v4 + o * w4;
                aa5 = aa5 + p * v5 + o * w5;
                aa6 = aa6 + p * v6 + o * w6;
                aa7 = aa7 + p * v7 + o * w7;
            }
            float xb = scores[sA + 1];
            float yb = scores[sB + 1];
            float newMb = TornadoMath.max(mb, TornadoMath.max(xb, yb));
            if (newMb > mb) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(mb - newMb);
                lb = lb * c;
                ab0 = ab0 * c;
                ab1 = ab1 * c;
                ab2 = ab2 * c;
                ab3 = ab3 * c;
                ab4 = ab4 * c;
                ab5 = ab5 * c;
                ab6 = ab6 * c;
                ab7 = ab7 * c;
                mb = newMb;
            }
            if (mb != Float.NEGATIVE_INFINITY) {
                float p = xb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xb - mb);
                float o = yb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yb - mb);
                lb = lb + p + o;
                ab0 = ab0 + p * v0 + o * w0;
                ab1 = ab1 + p * v1 + o * w1;
                ab2 = ab2 + p * v2 + o * w2;
                ab3 = ab3 + p * v3 + o * w3;
                ab4 = ab4 + p * v4 + o * w4;
                ab5 = ab5 + p * v5 + o * w5;
                ab6 = ab6 + p * v6 + o * w6;
                ab7 = ab7 + p * v7 + o * w7;
            }
            float xc = scores[sA + 2];
            float yc = scores[sB + 2];
            float newMc = TornadoMath.max(mc, TornadoMath.max(xc, yc));
            if (newMc > mc) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(mc - newMc);
                lc = lc * c;
                ac0 = ac0 * c;
                ac1 = ac1 * c;
                ac2 = ac2 * c;
                ac3 = ac3 * c;
                ac4 = ac4 * c;
                ac5 = ac5 * c;
                ac6 = ac6 * c;
                ac7 = ac7 * c;
                mc = newMc;
            }
            if (mc != Float.NEGATIVE_INFINITY) {
                float p = xc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xc - mc);
                float o = yc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yc - mc);
                lc = lc + p + o;
                ac0 = ac0 + p * v0 + o * w0;
                ac1 = ac1 + p * v1 + o * w1;
                ac2 = ac2 + p * v2 + o * w2;
                ac3 = ac3 + p * v3 + o * w3;
                ac4 = ac4 + p * v4 + o * w4;
                ac5 = ac5 + p * v5 + o * w5;
                ac6 = ac6 + p * v6 + o * w6;
                ac7 = ac7 + p * v7 + o * w7;
            }
            float xd = scores[sA + 3];
            float yd = scores[sB + 3];
            float newMd = TornadoMath.max(md, TornadoMath.max(xd, yd));
            if (newMd > md) {
                // rescale only when the running max grows: after the first tokens it rarely does
                float c = TornadoMath.exp(md - newMd);
                ld = ld * c;
                ad0 = ad0 * c;
                ad1 = ad1 * c;
                ad2 = ad2 * c;
                ad3 = ad3 * c;
                ad4 = ad4 * c;
                ad5 = ad5 * c;
                ad6 = ad6 * c;
                ad7 = ad7 * c;
                md = newMd;
            }
            if (md != Float.NEGATIVE_INFINITY) {
                float p = xd == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(xd - md);
                float o = yd == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(yd - md);
                ld = ld + p + o;
                ad0 = ad0 + p * v0 + o * w0;
                ad1 = ad1 + p * v1 + o * w1;
                ad2 = ad2 + p * v2 + o * w2;
                ad3 = ad3 + p * v3 + o * w3;
                ad4 = ad4 + p * v4 + o * w4;
                ad5 = ad5 + p * v5 + o * w5;
                ad6 = ad6 + p * v6 + o * w6;
                ad7 = ad7 + p * v7 + o * w7;
            }
        }
        // 4. merge the slots by log-sum-exp
        if (lane == 0) {
            slotMax[slot * tileRows + 4 * quad + 0] = ma;
            slotMax[slot * tileRows + 4 * quad + 1] = mb;
            slotMax[slot * tileRows + 4 * quad + 2] = mc;
            slotMax[slot * tileRows + 4 * quad + 3] = md;
        }
        ctx.localBarrier();
        float mAllA = Float.NEGATIVE_INFINITY;
        float mAllB = Float.NEGATIVE_INFINITY;
        float mAllC = Float.NEGATIVE_INFINITY;
        float mAllD = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < slots; j++) {
            mAllA = TornadoMath.max(mAllA, slotMax[j * tileRows + 4 * quad + 0]);
            mAllB = TornadoMath.max(mAllB, slotMax[j * tileRows + 4 * quad + 1]);
            mAllC = TornadoMath.max(mAllC, slotMax[j * tileRows + 4 * quad + 2]);
            mAllD = TornadoMath.max(mAllD, slotMax[j * tileRows + 4 * quad + 3]);
        }
        float wa = ma == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(ma - mAllA);
        float wb = mb == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mb - mAllB);
        float wc = mc == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(mc - mAllC);
        float wd = md == Float.NEGATIVE_INFINITY ? 0f : TornadoMath.exp(md - mAllD);
        float wva = wa * vScale;
        float wvb = wb * vScale;
        float wvc = wc * vScale;
        float wvd = wd * vScale;
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            red[idx] = 0f;
        }
        ctx.localBarrier();
        int acc0 = 4 * quad * headDim + 4 * lane;
        for (int j = 0; j < slots; j++) {
            if (slot == j) {
                red[acc0] += aa0 * wva;
                red[acc0 + 1] += aa1 * wva;
                red[acc0 + 2] += aa2 * wva;
                red[acc0 + 3] += aa3 * wva;
                red[acc0 + 4 * lanes] += aa4 * wva;
                red[acc0 + 4 * lanes + 1] += aa5 * wva;
                red[acc0 + 4 * lanes + 2] += aa6 * wva;
                red[acc0 + 4 * lanes + 3] += aa7 * wva;
                red[acc0 + headDim] += ab0 * wvb;
                red[acc0 + headDim + 1] += ab1 * wvb;
                red[acc0 + headDim + 2] += ab2 * wvb;
                red[acc0 + headDim + 3] += ab3 * wvb;
                red[acc0 + headDim + 4 * lanes] += ab4 * wvb;
                red[acc0 + headDim + 4 * lanes + 1] += ab5 * wvb;
                red[acc0 + headDim + 4 * lanes + 2] += ab6 * wvb;
                red[acc0 + headDim + 4 * lanes + 3] += ab7 * wvb;
                red[acc0 + 2 * headDim] += ac0 * wvc;
                red[acc0 + 2 * headDim + 1] += ac1 * wvc;
                red[acc0 + 2 * headDim + 2] += ac2 * wvc;
                red[acc0 + 2 * headDim + 3] += ac3 * wvc;
                red[acc0 + 2 * headDim + 4 * lanes] += ac4 * wvc;
                red[acc0 + 2 * headDim + 4 * lanes + 1] += ac5 * wvc;
                red[acc0 + 2 * headDim + 4 * lanes + 2] += ac6 * wvc;
                red[acc0 + 2 * headDim + 4 * lanes + 3] += ac7 * wvc;
                red[acc0 + 3 * headDim] += ad0 * wvd;
                red[acc0 + 3 * headDim + 1] += ad1 * wvd;
                red[acc0 + 3 * headDim + 2] += ad2 * wvd;
                red[acc0 + 3 * headDim + 3] += ad3 * wvd;
                red[acc0 + 3 * headDim + 4 * lanes] += ad4 * wvd;
                red[acc0 + 3 * headDim + 4 * lanes + 1] += ad5 * wvd;
                red[acc0 + 3 * headDim + 4 * lanes + 2] += ad6 * wvd;
                red[acc0 + 3 * headDim + 4 * lanes + 3] += ad7 * wvd;
                if (lane == 0) {
                    slotSum[4 * quad + 0] += la * wa;
                    slotSum[4 * quad + 1] += lb * wb;
                    slotSum[4 * quad + 2] += lc * wc;
                    slotSum[4 * quad + 3] += ld * wd;
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
