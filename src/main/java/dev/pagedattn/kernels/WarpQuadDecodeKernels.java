package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * {@link HeadQuadDecodeKernels} with warp shuffles instead of local memory for the per-token
 * score reductions: the same arguments, grid, work-item mapping (four query heads and 8 dims per
 * work-item), rounds of two tokens and partial format, but no barrier inside the token loop, so the
 * warps of a work-group no longer wait for each other every round and their loads overlap freely.
 * Uses {@code KernelContext.simdShuffleDown} and {@code simdBroadcastFirst} (TornadoVM 5.2 lowers
 * them to {@code shfl.sync} on PTX; they are not implemented on OpenCL).
 *
 * <p>Head dims 8 .. 256, multiples of 8: a work-item holds 8 dims at stride L = headDim / 8, and a quad's
 * lanes are W consecutive lanes of one warp, W = L rounded up to a power of two (so that the shuffles' tree
 * and the warp's segments line up); where L is not a power of two (head dims 40, 48, 56, 80, 96, 112, ...)
 * lanes L .. W - 1 of a quad hold no dims: they read lane 0's words with query values of 0, add 0 to the
 * scores and write nothing. A local size that is a multiple of 32 ({@link #localSize}); {@link #supports} says
 * whether a shape qualifies.
 *
 * <pre>
 *  work-item -> (slot, quad, lane):  R = quads * W, W = L rounded up to a power of two, L = headDim / 8,
 *                                    quads = ceil(min(groupSize, 8) / 4), slots = localSize / R;
 *                                    warp lane = tid % 32, quad segment = warp lane / W; dims lane + L j, j < 8
 * </pre>
 */
public final class WarpQuadDecodeKernels {
    /** Largest local size. */
    public static final int MAX_LOCAL = 128;
    /** [slot][4*quads][headDim] for the slot merge: slots * quads * L = localSize, so always 32 * localSize floats. */
    private static final int RED_SIZE = 32 * MAX_LOCAL;
    /** [slot][4*quads]. */
    private static final int SLOT_SIZE = 4 * MAX_LOCAL;

    private WarpQuadDecodeKernels() {
    }

    /** Whether the kernel can run a shape: head dim 8 .. 256, a multiple of 8. */
    public static boolean supports(int groupSize, int headDim) {
        int lanes = headDim / 8;
        return groupSize >= 1 && headDim % 8 == 0 && lanes >= 1 && lanes <= 32;
    }

    /** The local size to launch with: 128 work-items (whole warps, whole token rows). */
    public static int localSize(int groupSize, int headDim) {
        if (!supports(groupSize, headDim)) {
            throw new IllegalArgumentException("headDim=" + headDim + " is not supported by the warp kernel (a multiple of 8 up to 256)");
        }
        return MAX_LOCAL;
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
        int lanes = headDim / 8;                    // L: the dims' stride (8 dims per lane)
        // a quad's lanes: L rounded up to a power of two (the shuffles' span); a chain of selects, not a loop, so that
        // it folds to a constant where TornadoVM compiles the kernel for a given head dim and the shuffles stay unrolled
        int width = lanes <= 1 ? 1 : lanes <= 2 ? 2 : lanes <= 4 ? 4 : lanes <= 8 ? 8 : lanes <= 16 ? 16 : 32;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int quads = (tileHeads + 3) / 4;
        int rowThreads = quads * width;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int quad = r / width;
        int lane = r - quad * width;
        boolean live = lane < lanes;                // lanes L .. width - 1 hold no dims (L not a power of two)
        int dl = live ? lane : 0;                   // the lane whose dims this work-item reads: idle lanes read lane 0's, weighed 0

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
        int tileFirst = tile * PagedDecodeKernels.MAX_HEADS_PER_TILE; // head index within the group
        int head0 = tileFirst + 4 * quad;
        int tileRows = 4 * quads;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][4*quads][headDim] for the slot merge
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]

        boolean validA = head0 + 0 < groupSize && 4 * quad + 0 < tileHeads;
        float scla = validA && live ? scale : 0f;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? head0 + 0 : 0)) * headDim + dl;
        boolean validB = head0 + 1 < groupSize && 4 * quad + 1 < tileHeads;
        float sclb = validB && live ? scale : 0f;
        int qb = (seq * numQHeads + kvHead * groupSize + (validB ? head0 + 1 : 0)) * headDim + dl;
        boolean validC = head0 + 2 < groupSize && 4 * quad + 2 < tileHeads;
        float sclc = validC && live ? scale : 0f;
        int qc = (seq * numQHeads + kvHead * groupSize + (validC ? head0 + 2 : 0)) * headDim + dl;
        boolean validD = head0 + 3 < groupSize && 4 * quad + 3 < tileHeads;
        float scld = validD && live ? scale : 0f;
        int qd = (seq * numQHeads + kvHead * groupSize + (validD ? head0 + 3 : 0)) * headDim + dl;
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
        float ma = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float la = 0f;
        float mb = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float lb = 0f;
        float mc = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float lc = 0f;
        float md = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float ld = 0f;


        // Each round, every slot takes two tokens (A, B) and loads their K and V rows: 32 loads per
        // work-item in flight. No barrier inside the loop: the lanes of a quad are consecutive lanes
        // of one warp and reduce with warp shuffles, so every warp streams on its own.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int segment = (tid % 32) / width;
        // block and slot of tokens A and B, advanced by perRound tokens each round without dividing
        int stepBlocks = perRound / blockSize;
        int stepSlots = perRound - stepBlocks * blockSize;
        int blockA = (start + slot) / blockSize;
        int offA = start + slot - blockA * blockSize;
        int blockB = (start + slot + slots) / blockSize;
        int offB = start + slot + slots - blockB * blockSize;
        int block0 = start / blockSize;            // the partition's first token: always readable
        int off0 = start - block0 * blockSize;
        int tableRow = params.get(DecodeParams.TABLES) + seq * maxBlocks
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        for (int rd = 0; rd < rounds; rd++) {
            int tokenA = start + rd * perRound + slot;
            int tokenB = tokenA + slots;
            // tokens past the end read the partition's first token instead (no branch around the
            // loads) and score -inf
            float biasA = tokenA < end ? 0f : Float.NEGATIVE_INFINITY;
            float biasB = tokenB < end ? 0f : Float.NEGATIVE_INFINITY;
            int rowA = KvLayout.offset(layerBase, blockStride, headStride, headDim,
                    blockTables.get(tableRow + (tokenA < end ? blockA : block0)), kvHead, tokenA < end ? offA : off0, dl);
            int rowB = KvLayout.offset(layerBase, blockStride, headStride, headDim,
                    blockTables.get(tableRow + (tokenB < end ? blockB : block0)), kvHead, tokenB < end ? offB : off0, dl);
            float k0 = kPool.get(rowA).getFloat32();
            float k1 = kPool.get(rowA + lanes).getFloat32();
            float k2 = kPool.get(rowA + 2 * lanes).getFloat32();
            float k3 = kPool.get(rowA + 3 * lanes).getFloat32();
            float k4 = kPool.get(rowA + 4 * lanes).getFloat32();
            float k5 = kPool.get(rowA + 5 * lanes).getFloat32();
            float k6 = kPool.get(rowA + 6 * lanes).getFloat32();
            float k7 = kPool.get(rowA + 7 * lanes).getFloat32();
            float v0 = vPool.get(rowA).getFloat32();
            float v1 = vPool.get(rowA + lanes).getFloat32();
            float v2 = vPool.get(rowA + 2 * lanes).getFloat32();
            float v3 = vPool.get(rowA + 3 * lanes).getFloat32();
            float v4 = vPool.get(rowA + 4 * lanes).getFloat32();
            float v5 = vPool.get(rowA + 5 * lanes).getFloat32();
            float v6 = vPool.get(rowA + 6 * lanes).getFloat32();
            float v7 = vPool.get(rowA + 7 * lanes).getFloat32();
            float c0 = kPool.get(rowB).getFloat32();
            float c1 = kPool.get(rowB + lanes).getFloat32();
            float c2 = kPool.get(rowB + 2 * lanes).getFloat32();
            float c3 = kPool.get(rowB + 3 * lanes).getFloat32();
            float c4 = kPool.get(rowB + 4 * lanes).getFloat32();
            float c5 = kPool.get(rowB + 5 * lanes).getFloat32();
            float c6 = kPool.get(rowB + 6 * lanes).getFloat32();
            float c7 = kPool.get(rowB + 7 * lanes).getFloat32();
            float w0 = vPool.get(rowB).getFloat32();
            float w1 = vPool.get(rowB + lanes).getFloat32();
            float w2 = vPool.get(rowB + 2 * lanes).getFloat32();
            float w3 = vPool.get(rowB + 3 * lanes).getFloat32();
            float w4 = vPool.get(rowB + 4 * lanes).getFloat32();
            float w5 = vPool.get(rowB + 5 * lanes).getFloat32();
            float w6 = vPool.get(rowB + 6 * lanes).getFloat32();
            float w7 = vPool.get(rowB + 7 * lanes).getFloat32();
            // 1. partial dots of this lane's 8 dims: two tokens x four heads (heads past the group have q = 0)
            float sAa = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            float sAb = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            float sAc = qc0 * k0 + qc1 * k1 + qc2 * k2 + qc3 * k3 + qc4 * k4 + qc5 * k5 + qc6 * k6 + qc7 * k7;
            float sAd = qd0 * k0 + qd1 * k1 + qd2 * k2 + qd3 * k3 + qd4 * k4 + qd5 * k5 + qd6 * k6 + qd7 * k7;
            float sBa = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            float sBb = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            float sBc = qc0 * c0 + qc1 * c1 + qc2 * c2 + qc3 * c3 + qc4 * c4 + qc5 * c5 + qc6 * c6 + qc7 * c7;
            float sBd = qd0 * c0 + qd1 * c1 + qd2 * c2 + qd3 * c3 + qd4 * c4 + qd5 * c5 + qd6 * c6 + qd7 * c7;
            // 2. scores: tree-sum each partial over the quad's lanes (shuffle down: the quad's first lane
            //    ends with the total), then hand every lane its quad's totals (lane 0 of the warp
            //    broadcasts one quad's totals after another). All lanes of the warp take part.
            for (int delta = width / 2; delta > 0; delta = delta / 2) {
                sAa = sAa + ctx.simdShuffleDown(sAa, delta);
                sAb = sAb + ctx.simdShuffleDown(sAb, delta);
                sAc = sAc + ctx.simdShuffleDown(sAc, delta);
                sAd = sAd + ctx.simdShuffleDown(sAd, delta);
                sBa = sBa + ctx.simdShuffleDown(sBa, delta);
                sBb = sBb + ctx.simdShuffleDown(sBb, delta);
                sBc = sBc + ctx.simdShuffleDown(sBc, delta);
                sBd = sBd + ctx.simdShuffleDown(sBd, delta);
            }
            float xa = ctx.simdBroadcastFirst(sAa);
            float xb = ctx.simdBroadcastFirst(sAb);
            float xc = ctx.simdBroadcastFirst(sAc);
            float xd = ctx.simdBroadcastFirst(sAd);
            float ya = ctx.simdBroadcastFirst(sBa);
            float yb = ctx.simdBroadcastFirst(sBb);
            float yc = ctx.simdBroadcastFirst(sBc);
            float yd = ctx.simdBroadcastFirst(sBd);
            for (int sg = 1; sg * width < 32; sg++) {   // the warp's other quads (32 / width per warp)
                float pick = segment == sg ? 1f : 0f;
                float tAa = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAa, sg * width));
                float tAb = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAb, sg * width));
                float tAc = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAc, sg * width));
                float tAd = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAd, sg * width));
                float tBa = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBa, sg * width));
                float tBb = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBb, sg * width));
                float tBc = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBc, sg * width));
                float tBd = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBd, sg * width));
                xa = xa + pick * (tAa - xa);
                xb = xb + pick * (tAb - xb);
                xc = xc + pick * (tAc - xc);
                xd = xd + pick * (tAd - xd);
                ya = ya + pick * (tBa - ya);
                yb = yb + pick * (tBb - yb);
                yc = yc + pick * (tBc - yc);
                yd = yd + pick * (tBd - yd);
            }
            float cap = softCap;  // a scalar argument: TornadoVM compiles it in as a constant (0: no cap code at all)
            if (cap > 0f) {
                xa = PagedDecodeKernels.capScore(xa, cap);
                xb = PagedDecodeKernels.capScore(xb, cap);
                xc = PagedDecodeKernels.capScore(xc, cap);
                xd = PagedDecodeKernels.capScore(xd, cap);
                ya = PagedDecodeKernels.capScore(ya, cap);
                yb = PagedDecodeKernels.capScore(yb, cap);
                yc = PagedDecodeKernels.capScore(yc, cap);
                yd = PagedDecodeKernels.capScore(yd, cap);
            }
            int alibi = params.get(DecodeParams.ALIBI);  // ALiBi: each score plus its head's slope times (key - query)
            if (alibi != 0) {
                int hq = alibi + kvHead * groupSize;     // the KV head's first query head's slope; heads past the group: its last
                int last = groupSize - 1;
                float da = (float) (tokenA - (len - 1));
                float db = (float) (tokenB - (len - 1));
                float pa = partials.get(hq + TornadoMath.min(head0 + 0, last));
                float pb = partials.get(hq + TornadoMath.min(head0 + 1, last));
                float pc = partials.get(hq + TornadoMath.min(head0 + 2, last));
                float pd = partials.get(hq + TornadoMath.min(head0 + 3, last));
                xa = xa + pa * da;
                xb = xb + pb * da;
                xc = xc + pc * da;
                xd = xd + pd * da;
                ya = ya + pa * db;
                yb = yb + pb * db;
                yc = yc + pc * db;
                yd = yd + pd * db;
            }
            xa = xa + biasA;
            xb = xb + biasA;
            xc = xc + biasA;
            xd = xd + biasA;
            ya = ya + biasB;
            yb = yb + biasB;
            yc = yc + biasB;
            yd = yd + biasB;
            // 3. online softmax over the two tokens, then V (already in registers); exp(-inf) = 0 and the
            //    running max starts at -Float.MAX_VALUE, so no token or head needs a branch of its own
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
            float pa = TornadoMath.exp(xa - ma);
            float oa = TornadoMath.exp(ya - ma);
            la = la + pa + oa;
            aa0 = aa0 + pa * v0 + oa * w0;
            aa1 = aa1 + pa * v1 + oa * w1;
            aa2 = aa2 + pa * v2 + oa * w2;
            aa3 = aa3 + pa * v3 + oa * w3;
            aa4 = aa4 + pa * v4 + oa * w4;
            aa5 = aa5 + pa * v5 + oa * w5;
            aa6 = aa6 + pa * v6 + oa * w6;
            aa7 = aa7 + pa * v7 + oa * w7;
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
            float pb = TornadoMath.exp(xb - mb);
            float ob = TornadoMath.exp(yb - mb);
            lb = lb + pb + ob;
            ab0 = ab0 + pb * v0 + ob * w0;
            ab1 = ab1 + pb * v1 + ob * w1;
            ab2 = ab2 + pb * v2 + ob * w2;
            ab3 = ab3 + pb * v3 + ob * w3;
            ab4 = ab4 + pb * v4 + ob * w4;
            ab5 = ab5 + pb * v5 + ob * w5;
            ab6 = ab6 + pb * v6 + ob * w6;
            ab7 = ab7 + pb * v7 + ob * w7;
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
            float pc = TornadoMath.exp(xc - mc);
            float oc = TornadoMath.exp(yc - mc);
            lc = lc + pc + oc;
            ac0 = ac0 + pc * v0 + oc * w0;
            ac1 = ac1 + pc * v1 + oc * w1;
            ac2 = ac2 + pc * v2 + oc * w2;
            ac3 = ac3 + pc * v3 + oc * w3;
            ac4 = ac4 + pc * v4 + oc * w4;
            ac5 = ac5 + pc * v5 + oc * w5;
            ac6 = ac6 + pc * v6 + oc * w6;
            ac7 = ac7 + pc * v7 + oc * w7;
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
            float pd = TornadoMath.exp(xd - md);
            float od = TornadoMath.exp(yd - md);
            ld = ld + pd + od;
            ad0 = ad0 + pd * v0 + od * w0;
            ad1 = ad1 + pd * v1 + od * w1;
            ad2 = ad2 + pd * v2 + od * w2;
            ad3 = ad3 + pd * v3 + od * w3;
            ad4 = ad4 + pd * v4 + od * w4;
            ad5 = ad5 + pd * v5 + od * w5;
            ad6 = ad6 + pd * v6 + od * w6;
            ad7 = ad7 + pd * v7 + od * w7;
            offA = offA + stepSlots;
            blockA = blockA + stepBlocks;
            if (offA >= blockSize) {
                offA = offA - blockSize;
                blockA = blockA + 1;
            }
            offB = offB + stepSlots;
            blockB = blockB + stepBlocks;
            if (offB >= blockSize) {
                offB = offB - blockSize;
                blockB = blockB + 1;
            }
        }
        // 4. merge the slots by log-sum-exp
        if (tid % width == 0) {                     // lane 0 of the quad (lane and live are not kept across the loop)
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
        float wa = TornadoMath.exp(ma - mAllA);
        float wb = TornadoMath.exp(mb - mAllB);
        float wc = TornadoMath.exp(mc - mAllC);
        float wd = TornadoMath.exp(md - mAllD);
        // each slot's accumulators, scaled to the common max, go to their own rows: one barrier, then
        // every work-item sums a few outputs over the slots (no slot waits for another)
        int row0 = (slot * tileRows + 4 * quad) * headDim + dl;   // red: [slot][tileRow][headDim]
        if (tid % width < lanes) {                  // live lanes only
            red[row0] = aa0 * wa;
            red[row0 + lanes] = aa1 * wa;
            red[row0 + 2 * lanes] = aa2 * wa;
            red[row0 + 3 * lanes] = aa3 * wa;
            red[row0 + 4 * lanes] = aa4 * wa;
            red[row0 + 5 * lanes] = aa5 * wa;
            red[row0 + 6 * lanes] = aa6 * wa;
            red[row0 + 7 * lanes] = aa7 * wa;
            red[row0 + headDim] = ab0 * wb;
            red[row0 + headDim + lanes] = ab1 * wb;
            red[row0 + headDim + 2 * lanes] = ab2 * wb;
            red[row0 + headDim + 3 * lanes] = ab3 * wb;
            red[row0 + headDim + 4 * lanes] = ab4 * wb;
            red[row0 + headDim + 5 * lanes] = ab5 * wb;
            red[row0 + headDim + 6 * lanes] = ab6 * wb;
            red[row0 + headDim + 7 * lanes] = ab7 * wb;
            red[row0 + 2 * headDim] = ac0 * wc;
            red[row0 + 2 * headDim + lanes] = ac1 * wc;
            red[row0 + 2 * headDim + 2 * lanes] = ac2 * wc;
            red[row0 + 2 * headDim + 3 * lanes] = ac3 * wc;
            red[row0 + 2 * headDim + 4 * lanes] = ac4 * wc;
            red[row0 + 2 * headDim + 5 * lanes] = ac5 * wc;
            red[row0 + 2 * headDim + 6 * lanes] = ac6 * wc;
            red[row0 + 2 * headDim + 7 * lanes] = ac7 * wc;
            red[row0 + 3 * headDim] = ad0 * wd;
            red[row0 + 3 * headDim + lanes] = ad1 * wd;
            red[row0 + 3 * headDim + 2 * lanes] = ad2 * wd;
            red[row0 + 3 * headDim + 3 * lanes] = ad3 * wd;
            red[row0 + 3 * headDim + 4 * lanes] = ad4 * wd;
            red[row0 + 3 * headDim + 5 * lanes] = ad5 * wd;
            red[row0 + 3 * headDim + 6 * lanes] = ad6 * wd;
            red[row0 + 3 * headDim + 7 * lanes] = ad7 * wd;
        }
        if (tid % width == 0) {                     // lane 0 of the quad (lane and live are not kept across the loop)
            slotSum[slot * tileRows + 4 * quad + 0] = la * wa;
            slotSum[slot * tileRows + 4 * quad + 1] = lb * wb;
            slotSum[slot * tileRows + 4 * quad + 2] = lc * wc;
            slotSum[slot * tileRows + 4 * quad + 3] = ld * wd;
        }
        ctx.localBarrier();
        // 5. write the normalised result or this partition's partial state
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            int hInGroup = tileFirst + hh;
            if (hh < tileHeads && hInGroup < groupSize) {
                float mAll = Float.NEGATIVE_INFINITY;
                float sum = 0f;
                float acc = 0f;
                for (int j = 0; j < slots; j++) {
                    mAll = TornadoMath.max(mAll, slotMax[j * tileRows + hh]);
                    sum += slotSum[j * tileRows + hh];
                    acc += red[(j * tileRows + hh) * headDim + d];
                }
                int h = kvHead * groupSize + hInGroup;
                if (writeFinal != 0) {
                    out.set((seq * numQHeads + h) * headDim + d, acc / PagedDecodeKernels.finalSum(sum, mAll, partials, params, h));
                } else {
                    int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                    partials.set(pBase + d, acc);
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
        int lanes = headDim / 8;                    // L: the dims' stride (8 dims per lane)
        // a quad's lanes: L rounded up to a power of two (the shuffles' span); a chain of selects, not a loop, so that
        // it folds to a constant where TornadoVM compiles the kernel for a given head dim and the shuffles stay unrolled
        int width = lanes <= 1 ? 1 : lanes <= 2 ? 2 : lanes <= 4 ? 4 : lanes <= 8 ? 8 : lanes <= 16 ? 16 : 32;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int quads = (tileHeads + 3) / 4;
        int rowThreads = quads * width;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int quad = r / width;
        int lane = r - quad * width;
        boolean live = lane < lanes;                // lanes L .. width - 1 hold no dims (L not a power of two)
        int dl = live ? lane : 0;                   // the lane whose dims this work-item reads: idle lanes read lane 0's, weighed 0

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
        int tileFirst = tile * PagedDecodeKernels.MAX_HEADS_PER_TILE; // head index within the group
        int head0 = tileFirst + 4 * quad;
        int tileRows = 4 * quads;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][4*quads][headDim] for the slot merge
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]

        boolean validA = head0 + 0 < groupSize && 4 * quad + 0 < tileHeads;
        float scla = validA && live ? scale : 0f;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? head0 + 0 : 0)) * headDim + dl;
        boolean validB = head0 + 1 < groupSize && 4 * quad + 1 < tileHeads;
        float sclb = validB && live ? scale : 0f;
        int qb = (seq * numQHeads + kvHead * groupSize + (validB ? head0 + 1 : 0)) * headDim + dl;
        boolean validC = head0 + 2 < groupSize && 4 * quad + 2 < tileHeads;
        float sclc = validC && live ? scale : 0f;
        int qc = (seq * numQHeads + kvHead * groupSize + (validC ? head0 + 2 : 0)) * headDim + dl;
        boolean validD = head0 + 3 < groupSize && 4 * quad + 3 < tileHeads;
        float scld = validD && live ? scale : 0f;
        int qd = (seq * numQHeads + kvHead * groupSize + (validD ? head0 + 3 : 0)) * headDim + dl;
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
        float ma = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float la = 0f;
        float mb = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float lb = 0f;
        float mc = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float lc = 0f;
        float md = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float ld = 0f;


        // Each round, every slot takes two tokens (A, B) and loads their K and V rows: 32 loads per
        // work-item in flight. No barrier inside the loop: the lanes of a quad are consecutive lanes
        // of one warp and reduce with warp shuffles, so every warp streams on its own.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int segment = (tid % 32) / width;
        // block and slot of tokens A and B, advanced by perRound tokens each round without dividing
        int stepBlocks = perRound / blockSize;
        int stepSlots = perRound - stepBlocks * blockSize;
        int blockA = (start + slot) / blockSize;
        int offA = start + slot - blockA * blockSize;
        int blockB = (start + slot + slots) / blockSize;
        int offB = start + slot + slots - blockB * blockSize;
        int block0 = start / blockSize;            // the partition's first token: always readable
        int off0 = start - block0 * blockSize;
        int tableRow = params.get(DecodeParams.TABLES) + seq * maxBlocks
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        for (int rd = 0; rd < rounds; rd++) {
            int tokenA = start + rd * perRound + slot;
            int tokenB = tokenA + slots;
            // tokens past the end read the partition's first token instead (no branch around the
            // loads) and score -inf
            float biasA = tokenA < end ? 0f : Float.NEGATIVE_INFINITY;
            float biasB = tokenB < end ? 0f : Float.NEGATIVE_INFINITY;
            int rowA = KvLayout.offset(layerBase, blockStride, headStride, headDim,
                    blockTables.get(tableRow + (tokenA < end ? blockA : block0)), kvHead, tokenA < end ? offA : off0, dl);
            int rowB = KvLayout.offset(layerBase, blockStride, headStride, headDim,
                    blockTables.get(tableRow + (tokenB < end ? blockB : block0)), kvHead, tokenB < end ? offB : off0, dl);
            float k0 = kPool.get(rowA);
            float k1 = kPool.get(rowA + lanes);
            float k2 = kPool.get(rowA + 2 * lanes);
            float k3 = kPool.get(rowA + 3 * lanes);
            float k4 = kPool.get(rowA + 4 * lanes);
            float k5 = kPool.get(rowA + 5 * lanes);
            float k6 = kPool.get(rowA + 6 * lanes);
            float k7 = kPool.get(rowA + 7 * lanes);
            float v0 = vPool.get(rowA);
            float v1 = vPool.get(rowA + lanes);
            float v2 = vPool.get(rowA + 2 * lanes);
            float v3 = vPool.get(rowA + 3 * lanes);
            float v4 = vPool.get(rowA + 4 * lanes);
            float v5 = vPool.get(rowA + 5 * lanes);
            float v6 = vPool.get(rowA + 6 * lanes);
            float v7 = vPool.get(rowA + 7 * lanes);
            float c0 = kPool.get(rowB);
            float c1 = kPool.get(rowB + lanes);
            float c2 = kPool.get(rowB + 2 * lanes);
            float c3 = kPool.get(rowB + 3 * lanes);
            float c4 = kPool.get(rowB + 4 * lanes);
            float c5 = kPool.get(rowB + 5 * lanes);
            float c6 = kPool.get(rowB + 6 * lanes);
            float c7 = kPool.get(rowB + 7 * lanes);
            float w0 = vPool.get(rowB);
            float w1 = vPool.get(rowB + lanes);
            float w2 = vPool.get(rowB + 2 * lanes);
            float w3 = vPool.get(rowB + 3 * lanes);
            float w4 = vPool.get(rowB + 4 * lanes);
            float w5 = vPool.get(rowB + 5 * lanes);
            float w6 = vPool.get(rowB + 6 * lanes);
            float w7 = vPool.get(rowB + 7 * lanes);
            // 1. partial dots of this lane's 8 dims: two tokens x four heads (heads past the group have q = 0)
            float sAa = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            float sAb = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            float sAc = qc0 * k0 + qc1 * k1 + qc2 * k2 + qc3 * k3 + qc4 * k4 + qc5 * k5 + qc6 * k6 + qc7 * k7;
            float sAd = qd0 * k0 + qd1 * k1 + qd2 * k2 + qd3 * k3 + qd4 * k4 + qd5 * k5 + qd6 * k6 + qd7 * k7;
            float sBa = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            float sBb = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            float sBc = qc0 * c0 + qc1 * c1 + qc2 * c2 + qc3 * c3 + qc4 * c4 + qc5 * c5 + qc6 * c6 + qc7 * c7;
            float sBd = qd0 * c0 + qd1 * c1 + qd2 * c2 + qd3 * c3 + qd4 * c4 + qd5 * c5 + qd6 * c6 + qd7 * c7;
            // 2. scores: tree-sum each partial over the quad's lanes (shuffle down: the quad's first lane
            //    ends with the total), then hand every lane its quad's totals (lane 0 of the warp
            //    broadcasts one quad's totals after another). All lanes of the warp take part.
            for (int delta = width / 2; delta > 0; delta = delta / 2) {
                sAa = sAa + ctx.simdShuffleDown(sAa, delta);
                sAb = sAb + ctx.simdShuffleDown(sAb, delta);
                sAc = sAc + ctx.simdShuffleDown(sAc, delta);
                sAd = sAd + ctx.simdShuffleDown(sAd, delta);
                sBa = sBa + ctx.simdShuffleDown(sBa, delta);
                sBb = sBb + ctx.simdShuffleDown(sBb, delta);
                sBc = sBc + ctx.simdShuffleDown(sBc, delta);
                sBd = sBd + ctx.simdShuffleDown(sBd, delta);
            }
            float xa = ctx.simdBroadcastFirst(sAa);
            float xb = ctx.simdBroadcastFirst(sAb);
            float xc = ctx.simdBroadcastFirst(sAc);
            float xd = ctx.simdBroadcastFirst(sAd);
            float ya = ctx.simdBroadcastFirst(sBa);
            float yb = ctx.simdBroadcastFirst(sBb);
            float yc = ctx.simdBroadcastFirst(sBc);
            float yd = ctx.simdBroadcastFirst(sBd);
            for (int sg = 1; sg * width < 32; sg++) {   // the warp's other quads (32 / width per warp)
                float pick = segment == sg ? 1f : 0f;
                float tAa = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAa, sg * width));
                float tAb = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAb, sg * width));
                float tAc = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAc, sg * width));
                float tAd = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAd, sg * width));
                float tBa = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBa, sg * width));
                float tBb = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBb, sg * width));
                float tBc = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBc, sg * width));
                float tBd = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBd, sg * width));
                xa = xa + pick * (tAa - xa);
                xb = xb + pick * (tAb - xb);
                xc = xc + pick * (tAc - xc);
                xd = xd + pick * (tAd - xd);
                ya = ya + pick * (tBa - ya);
                yb = yb + pick * (tBb - yb);
                yc = yc + pick * (tBc - yc);
                yd = yd + pick * (tBd - yd);
            }
            float cap = softCap;  // a scalar argument: TornadoVM compiles it in as a constant (0: no cap code at all)
            if (cap > 0f) {
                xa = PagedDecodeKernels.capScore(xa, cap);
                xb = PagedDecodeKernels.capScore(xb, cap);
                xc = PagedDecodeKernels.capScore(xc, cap);
                xd = PagedDecodeKernels.capScore(xd, cap);
                ya = PagedDecodeKernels.capScore(ya, cap);
                yb = PagedDecodeKernels.capScore(yb, cap);
                yc = PagedDecodeKernels.capScore(yc, cap);
                yd = PagedDecodeKernels.capScore(yd, cap);
            }
            int alibi = params.get(DecodeParams.ALIBI);  // ALiBi: each score plus its head's slope times (key - query)
            if (alibi != 0) {
                int hq = alibi + kvHead * groupSize;     // the KV head's first query head's slope; heads past the group: its last
                int last = groupSize - 1;
                float da = (float) (tokenA - (len - 1));
                float db = (float) (tokenB - (len - 1));
                float pa = partials.get(hq + TornadoMath.min(head0 + 0, last));
                float pb = partials.get(hq + TornadoMath.min(head0 + 1, last));
                float pc = partials.get(hq + TornadoMath.min(head0 + 2, last));
                float pd = partials.get(hq + TornadoMath.min(head0 + 3, last));
                xa = xa + pa * da;
                xb = xb + pb * da;
                xc = xc + pc * da;
                xd = xd + pd * da;
                ya = ya + pa * db;
                yb = yb + pb * db;
                yc = yc + pc * db;
                yd = yd + pd * db;
            }
            xa = xa + biasA;
            xb = xb + biasA;
            xc = xc + biasA;
            xd = xd + biasA;
            ya = ya + biasB;
            yb = yb + biasB;
            yc = yc + biasB;
            yd = yd + biasB;
            // 3. online softmax over the two tokens, then V (already in registers); exp(-inf) = 0 and the
            //    running max starts at -Float.MAX_VALUE, so no token or head needs a branch of its own
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
            float pa = TornadoMath.exp(xa - ma);
            float oa = TornadoMath.exp(ya - ma);
            la = la + pa + oa;
            aa0 = aa0 + pa * v0 + oa * w0;
            aa1 = aa1 + pa * v1 + oa * w1;
            aa2 = aa2 + pa * v2 + oa * w2;
            aa3 = aa3 + pa * v3 + oa * w3;
            aa4 = aa4 + pa * v4 + oa * w4;
            aa5 = aa5 + pa * v5 + oa * w5;
            aa6 = aa6 + pa * v6 + oa * w6;
            aa7 = aa7 + pa * v7 + oa * w7;
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
            float pb = TornadoMath.exp(xb - mb);
            float ob = TornadoMath.exp(yb - mb);
            lb = lb + pb + ob;
            ab0 = ab0 + pb * v0 + ob * w0;
            ab1 = ab1 + pb * v1 + ob * w1;
            ab2 = ab2 + pb * v2 + ob * w2;
            ab3 = ab3 + pb * v3 + ob * w3;
            ab4 = ab4 + pb * v4 + ob * w4;
            ab5 = ab5 + pb * v5 + ob * w5;
            ab6 = ab6 + pb * v6 + ob * w6;
            ab7 = ab7 + pb * v7 + ob * w7;
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
            float pc = TornadoMath.exp(xc - mc);
            float oc = TornadoMath.exp(yc - mc);
            lc = lc + pc + oc;
            ac0 = ac0 + pc * v0 + oc * w0;
            ac1 = ac1 + pc * v1 + oc * w1;
            ac2 = ac2 + pc * v2 + oc * w2;
            ac3 = ac3 + pc * v3 + oc * w3;
            ac4 = ac4 + pc * v4 + oc * w4;
            ac5 = ac5 + pc * v5 + oc * w5;
            ac6 = ac6 + pc * v6 + oc * w6;
            ac7 = ac7 + pc * v7 + oc * w7;
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
            float pd = TornadoMath.exp(xd - md);
            float od = TornadoMath.exp(yd - md);
            ld = ld + pd + od;
            ad0 = ad0 + pd * v0 + od * w0;
            ad1 = ad1 + pd * v1 + od * w1;
            ad2 = ad2 + pd * v2 + od * w2;
            ad3 = ad3 + pd * v3 + od * w3;
            ad4 = ad4 + pd * v4 + od * w4;
            ad5 = ad5 + pd * v5 + od * w5;
            ad6 = ad6 + pd * v6 + od * w6;
            ad7 = ad7 + pd * v7 + od * w7;
            offA = offA + stepSlots;
            blockA = blockA + stepBlocks;
            if (offA >= blockSize) {
                offA = offA - blockSize;
                blockA = blockA + 1;
            }
            offB = offB + stepSlots;
            blockB = blockB + stepBlocks;
            if (offB >= blockSize) {
                offB = offB - blockSize;
                blockB = blockB + 1;
            }
        }
        // 4. merge the slots by log-sum-exp
        if (tid % width == 0) {                     // lane 0 of the quad (lane and live are not kept across the loop)
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
        float wa = TornadoMath.exp(ma - mAllA);
        float wb = TornadoMath.exp(mb - mAllB);
        float wc = TornadoMath.exp(mc - mAllC);
        float wd = TornadoMath.exp(md - mAllD);
        // each slot's accumulators, scaled to the common max, go to their own rows: one barrier, then
        // every work-item sums a few outputs over the slots (no slot waits for another)
        int row0 = (slot * tileRows + 4 * quad) * headDim + dl;   // red: [slot][tileRow][headDim]
        if (tid % width < lanes) {                  // live lanes only
            red[row0] = aa0 * wa;
            red[row0 + lanes] = aa1 * wa;
            red[row0 + 2 * lanes] = aa2 * wa;
            red[row0 + 3 * lanes] = aa3 * wa;
            red[row0 + 4 * lanes] = aa4 * wa;
            red[row0 + 5 * lanes] = aa5 * wa;
            red[row0 + 6 * lanes] = aa6 * wa;
            red[row0 + 7 * lanes] = aa7 * wa;
            red[row0 + headDim] = ab0 * wb;
            red[row0 + headDim + lanes] = ab1 * wb;
            red[row0 + headDim + 2 * lanes] = ab2 * wb;
            red[row0 + headDim + 3 * lanes] = ab3 * wb;
            red[row0 + headDim + 4 * lanes] = ab4 * wb;
            red[row0 + headDim + 5 * lanes] = ab5 * wb;
            red[row0 + headDim + 6 * lanes] = ab6 * wb;
            red[row0 + headDim + 7 * lanes] = ab7 * wb;
            red[row0 + 2 * headDim] = ac0 * wc;
            red[row0 + 2 * headDim + lanes] = ac1 * wc;
            red[row0 + 2 * headDim + 2 * lanes] = ac2 * wc;
            red[row0 + 2 * headDim + 3 * lanes] = ac3 * wc;
            red[row0 + 2 * headDim + 4 * lanes] = ac4 * wc;
            red[row0 + 2 * headDim + 5 * lanes] = ac5 * wc;
            red[row0 + 2 * headDim + 6 * lanes] = ac6 * wc;
            red[row0 + 2 * headDim + 7 * lanes] = ac7 * wc;
            red[row0 + 3 * headDim] = ad0 * wd;
            red[row0 + 3 * headDim + lanes] = ad1 * wd;
            red[row0 + 3 * headDim + 2 * lanes] = ad2 * wd;
            red[row0 + 3 * headDim + 3 * lanes] = ad3 * wd;
            red[row0 + 3 * headDim + 4 * lanes] = ad4 * wd;
            red[row0 + 3 * headDim + 5 * lanes] = ad5 * wd;
            red[row0 + 3 * headDim + 6 * lanes] = ad6 * wd;
            red[row0 + 3 * headDim + 7 * lanes] = ad7 * wd;
        }
        if (tid % width == 0) {                     // lane 0 of the quad (lane and live are not kept across the loop)
            slotSum[slot * tileRows + 4 * quad + 0] = la * wa;
            slotSum[slot * tileRows + 4 * quad + 1] = lb * wb;
            slotSum[slot * tileRows + 4 * quad + 2] = lc * wc;
            slotSum[slot * tileRows + 4 * quad + 3] = ld * wd;
        }
        ctx.localBarrier();
        // 5. write the normalised result or this partition's partial state
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            int hInGroup = tileFirst + hh;
            if (hh < tileHeads && hInGroup < groupSize) {
                float mAll = Float.NEGATIVE_INFINITY;
                float sum = 0f;
                float acc = 0f;
                for (int j = 0; j < slots; j++) {
                    mAll = TornadoMath.max(mAll, slotMax[j * tileRows + hh]);
                    sum += slotSum[j * tileRows + hh];
                    acc += red[(j * tileRows + hh) * headDim + d];
                }
                int h = kvHead * groupSize + hInGroup;
                if (writeFinal != 0) {
                    out.set((seq * numQHeads + h) * headDim + d, acc / PagedDecodeKernels.finalSum(sum, mAll, partials, params, h));
                } else {
                    int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                    partials.set(pBase + d, acc);
                    if (d == 0) {
                        partials.set(pBase + headDim, mAll);
                        partials.set(pBase + headDim + 1, sum);
                    }
                }
            }
        }
    }

    /**
     * {@link #attentionF16} over 8-bit pools (FP8 E4M3, FP8 E5M2 or INT8 codes; a test keeps the body
     * the fp16 body under one rewriting rule). The pools are int arrays, four codes per word, lowest
     * byte first, so a lane loads two 32-bit words per row (its dims {@code 4*lane .. 4*lane+3} and
     * {@code 4*(lane+L) .. +3}) instead of eight 16-bit elements, and loads them a round ahead (the
     * words are 8 registers, so two rounds of codes are in flight per lane). A code becomes an fp32
     * element by a lookup in the format's 256-entry table, copied once per work-group into local
     * memory (one copy: 16 copies side by side avoided bank conflicts but cost an instruction per
     * code and measured 3.5% slower). The K scale of the KV head is folded into q, the V scale into
     * the merge weights, so the token loop has the fp16 kernel's FMA count.
     *
     * @param dequant [256 + 2 * numKvHeads]: the format's table (value of each code), then the K
     *                scale of every KV head of this layer times the softmax scale, then the V scales
     *                ({@link PackedCodes#argument} with the softmax scale as {@code kFactor})
     * @param softCap the logit soft cap, 0 for none: a scalar argument, compiled in (the softmax scale rides in
     *                {@code dequant}, so that the kernel stays within TornadoVM's 15 task arguments)
     */
    public static void attentionQ8(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,
                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,
                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,
                                    float softCap) {
        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {
            return;
        }
        int lanes = headDim / 8;                    // L: the dims' stride (8 dims per lane)
        // a quad's lanes: L rounded up to a power of two (the shuffles' span); a chain of selects, not a loop, so that
        // it folds to a constant where TornadoVM compiles the kernel for a given head dim and the shuffles stay unrolled
        int width = lanes <= 1 ? 1 : lanes <= 2 ? 2 : lanes <= 4 ? 4 : lanes <= 8 ? 8 : lanes <= 16 ? 16 : 32;
        int tileHeads = TornadoMath.min(PagedDecodeKernels.MAX_HEADS_PER_TILE, groupSize);
        int quads = (tileHeads + 3) / 4;
        int rowThreads = quads * width;
        int local = ctx.localGroupSizeX;
        int slots = local / rowThreads;
        int tid = ctx.localIdx;
        int slot = tid / rowThreads;
        int r = tid - slot * rowThreads;
        int quad = r / width;
        int lane = r - quad * width;
        boolean live = lane < lanes;                // lanes L .. width - 1 hold no dims (L not a power of two)
        int dl = live ? lane : 0;                   // the lane whose dims this work-item reads: idle lanes read lane 0's, weighed 0

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
        int tileFirst = tile * PagedDecodeKernels.MAX_HEADS_PER_TILE; // head index within the group
        int head0 = tileFirst + 4 * quad;
        int tileRows = 4 * quads;

        float[] red = ctx.allocateFloatLocalArray(RED_SIZE);       // [slot][4*quads][headDim] for the slot merge
        float[] slotMax = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]
        float[] slotSum = ctx.allocateFloatLocalArray(SLOT_SIZE);  // [slot][4*quads]
        float[] lut = ctx.allocateFloatLocalArray(DequantTable.SIZE); // [code]: the format's values
        for (int t = tid; t < DequantTable.SIZE; t += local) {
            lut[t] = dequant.get(t);
        }
        ctx.localBarrier();                                          // the table is complete
        float kScale = dequant.get(DequantTable.SIZE + kvHead);      // folded into q
        float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead); // folded into the merge weights

        boolean validA = head0 + 0 < groupSize && 4 * quad + 0 < tileHeads;
        float scla = validA && live ? kScale : 0f;
        int qa = (seq * numQHeads + kvHead * groupSize + (validA ? head0 + 0 : 0)) * headDim + 4 * dl;
        boolean validB = head0 + 1 < groupSize && 4 * quad + 1 < tileHeads;
        float sclb = validB && live ? kScale : 0f;
        int qb = (seq * numQHeads + kvHead * groupSize + (validB ? head0 + 1 : 0)) * headDim + 4 * dl;
        boolean validC = head0 + 2 < groupSize && 4 * quad + 2 < tileHeads;
        float sclc = validC && live ? kScale : 0f;
        int qc = (seq * numQHeads + kvHead * groupSize + (validC ? head0 + 2 : 0)) * headDim + 4 * dl;
        boolean validD = head0 + 3 < groupSize && 4 * quad + 3 < tileHeads;
        float scld = validD && live ? kScale : 0f;
        int qd = (seq * numQHeads + kvHead * groupSize + (validD ? head0 + 3 : 0)) * headDim + 4 * dl;
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
        float ma = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float la = 0f;
        float mb = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float lb = 0f;
        float mc = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float lc = 0f;
        float md = -Float.MAX_VALUE;  // finite: exp(m - newM) and exp(x - m) never see -inf - -inf
        float ld = 0f;


        // Each round, every slot takes two tokens (A, B) and loads their K and V rows: 32 loads per
        // work-item in flight. No barrier inside the loop: the lanes of a quad are consecutive lanes
        // of one warp and reduce with warp shuffles, so every warp streams on its own.
        int perRound = 2 * slots;
        int rounds = (end - start + perRound - 1) / perRound;
        int segment = (tid % 32) / width;
        // block and slot of tokens A and B, advanced by perRound tokens each round without dividing
        int stepBlocks = perRound / blockSize;
        int stepSlots = perRound - stepBlocks * blockSize;
        int blockA = (start + slot) / blockSize;
        int offA = start + slot - blockA * blockSize;
        int blockB = (start + slot + slots) / blockSize;
        int offB = start + slot + slots - blockB * blockSize;
        int block0 = start / blockSize;            // the partition's first token: always readable
        int off0 = start - block0 * blockSize;
        int tableRow = params.get(DecodeParams.TABLES) + seq * maxBlocks
                - PagedDecodeKernels.firstTableBlock(first, blockSize);  // a window's row starts at its first block
        // software pipeline: a round's code words are loaded during the round before (8 registers)
        int firstA = start + slot;
        int firstB = firstA + slots;
        int rowA = KvLayout.offset(layerBase >> 2, blockStride >> 2, headStride >> 2, headDim >> 2,
                blockTables.get(tableRow + (firstA < end ? blockA : block0)), kvHead, firstA < end ? offA : off0, dl);
        int rowB = KvLayout.offset(layerBase >> 2, blockStride >> 2, headStride >> 2, headDim >> 2,
                blockTables.get(tableRow + (firstB < end ? blockB : block0)), kvHead, firstB < end ? offB : off0, dl);
        int kw0 = kPool.get(rowA);
        int kw1 = kPool.get(rowA + lanes);
        int vw0 = vPool.get(rowA);
        int vw1 = vPool.get(rowA + lanes);
        int cw0 = kPool.get(rowB);
        int cw1 = kPool.get(rowB + lanes);
        int ww0 = vPool.get(rowB);
        int ww1 = vPool.get(rowB + lanes);
        for (int rd = 0; rd < rounds; rd++) {
            int tokenA = start + rd * perRound + slot;
            int tokenB = tokenA + slots;
            // tokens past the end read the partition's first token instead (no branch around the
            // loads) and score -inf
            float biasA = tokenA < end ? 0f : Float.NEGATIVE_INFINITY;
            float biasB = tokenB < end ? 0f : Float.NEGATIVE_INFINITY;
            offA = offA + stepSlots;
            blockA = blockA + stepBlocks;
            if (offA >= blockSize) {
                offA = offA - blockSize;
                blockA = blockA + 1;
            }
            offB = offB + stepSlots;
            blockB = blockB + stepBlocks;
            if (offB >= blockSize) {
                offB = offB - blockSize;
                blockB = blockB + 1;
            }
            int nextA = tokenA + perRound;            // the next round's tokens
            int nextB = tokenB + perRound;
            int nRowA = KvLayout.offset(layerBase >> 2, blockStride >> 2, headStride >> 2, headDim >> 2,
                    blockTables.get(tableRow + (nextA < end ? blockA : block0)), kvHead, nextA < end ? offA : off0, dl);
            int nRowB = KvLayout.offset(layerBase >> 2, blockStride >> 2, headStride >> 2, headDim >> 2,
                    blockTables.get(tableRow + (nextB < end ? blockB : block0)), kvHead, nextB < end ? offB : off0, dl);
            int nkw0 = kPool.get(nRowA);
            int nkw1 = kPool.get(nRowA + lanes);
            int nvw0 = vPool.get(nRowA);
            int nvw1 = vPool.get(nRowA + lanes);
            int ncw0 = kPool.get(nRowB);
            int ncw1 = kPool.get(nRowB + lanes);
            int nww0 = vPool.get(nRowB);
            int nww1 = vPool.get(nRowB + lanes);
            float k0 = lut[kw0 & 0xFF];
            float k1 = lut[(kw0 >> 8) & 0xFF];
            float k2 = lut[(kw0 >> 16) & 0xFF];
            float k3 = lut[(kw0 >> 24) & 0xFF];
            float k4 = lut[kw1 & 0xFF];
            float k5 = lut[(kw1 >> 8) & 0xFF];
            float k6 = lut[(kw1 >> 16) & 0xFF];
            float k7 = lut[(kw1 >> 24) & 0xFF];
            float v0 = lut[vw0 & 0xFF];
            float v1 = lut[(vw0 >> 8) & 0xFF];
            float v2 = lut[(vw0 >> 16) & 0xFF];
            float v3 = lut[(vw0 >> 24) & 0xFF];
            float v4 = lut[vw1 & 0xFF];
            float v5 = lut[(vw1 >> 8) & 0xFF];
            float v6 = lut[(vw1 >> 16) & 0xFF];
            float v7 = lut[(vw1 >> 24) & 0xFF];
            float c0 = lut[cw0 & 0xFF];
            float c1 = lut[(cw0 >> 8) & 0xFF];
            float c2 = lut[(cw0 >> 16) & 0xFF];
            float c3 = lut[(cw0 >> 24) & 0xFF];
            float c4 = lut[cw1 & 0xFF];
            float c5 = lut[(cw1 >> 8) & 0xFF];
            float c6 = lut[(cw1 >> 16) & 0xFF];
            float c7 = lut[(cw1 >> 24) & 0xFF];
            float w0 = lut[ww0 & 0xFF];
            float w1 = lut[(ww0 >> 8) & 0xFF];
            float w2 = lut[(ww0 >> 16) & 0xFF];
            float w3 = lut[(ww0 >> 24) & 0xFF];
            float w4 = lut[ww1 & 0xFF];
            float w5 = lut[(ww1 >> 8) & 0xFF];
            float w6 = lut[(ww1 >> 16) & 0xFF];
            float w7 = lut[(ww1 >> 24) & 0xFF];
            // 1. partial dots of this lane's 8 dims: two tokens x four heads (heads past the group have q = 0)
            float sAa = qa0 * k0 + qa1 * k1 + qa2 * k2 + qa3 * k3 + qa4 * k4 + qa5 * k5 + qa6 * k6 + qa7 * k7;
            float sAb = qb0 * k0 + qb1 * k1 + qb2 * k2 + qb3 * k3 + qb4 * k4 + qb5 * k5 + qb6 * k6 + qb7 * k7;
            float sAc = qc0 * k0 + qc1 * k1 + qc2 * k2 + qc3 * k3 + qc4 * k4 + qc5 * k5 + qc6 * k6 + qc7 * k7;
            float sAd = qd0 * k0 + qd1 * k1 + qd2 * k2 + qd3 * k3 + qd4 * k4 + qd5 * k5 + qd6 * k6 + qd7 * k7;
            float sBa = qa0 * c0 + qa1 * c1 + qa2 * c2 + qa3 * c3 + qa4 * c4 + qa5 * c5 + qa6 * c6 + qa7 * c7;
            float sBb = qb0 * c0 + qb1 * c1 + qb2 * c2 + qb3 * c3 + qb4 * c4 + qb5 * c5 + qb6 * c6 + qb7 * c7;
            float sBc = qc0 * c0 + qc1 * c1 + qc2 * c2 + qc3 * c3 + qc4 * c4 + qc5 * c5 + qc6 * c6 + qc7 * c7;
            float sBd = qd0 * c0 + qd1 * c1 + qd2 * c2 + qd3 * c3 + qd4 * c4 + qd5 * c5 + qd6 * c6 + qd7 * c7;
            // 2. scores: tree-sum each partial over the quad's lanes (shuffle down: the quad's first lane
            //    ends with the total), then hand every lane its quad's totals (lane 0 of the warp
            //    broadcasts one quad's totals after another). All lanes of the warp take part.
            for (int delta = width / 2; delta > 0; delta = delta / 2) {
                sAa = sAa + ctx.simdShuffleDown(sAa, delta);
                sAb = sAb + ctx.simdShuffleDown(sAb, delta);
                sAc = sAc + ctx.simdShuffleDown(sAc, delta);
                sAd = sAd + ctx.simdShuffleDown(sAd, delta);
                sBa = sBa + ctx.simdShuffleDown(sBa, delta);
                sBb = sBb + ctx.simdShuffleDown(sBb, delta);
                sBc = sBc + ctx.simdShuffleDown(sBc, delta);
                sBd = sBd + ctx.simdShuffleDown(sBd, delta);
            }
            float xa = ctx.simdBroadcastFirst(sAa);
            float xb = ctx.simdBroadcastFirst(sAb);
            float xc = ctx.simdBroadcastFirst(sAc);
            float xd = ctx.simdBroadcastFirst(sAd);
            float ya = ctx.simdBroadcastFirst(sBa);
            float yb = ctx.simdBroadcastFirst(sBb);
            float yc = ctx.simdBroadcastFirst(sBc);
            float yd = ctx.simdBroadcastFirst(sBd);
            for (int sg = 1; sg * width < 32; sg++) {   // the warp's other quads (32 / width per warp)
                float pick = segment == sg ? 1f : 0f;
                float tAa = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAa, sg * width));
                float tAb = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAb, sg * width));
                float tAc = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAc, sg * width));
                float tAd = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sAd, sg * width));
                float tBa = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBa, sg * width));
                float tBb = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBb, sg * width));
                float tBc = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBc, sg * width));
                float tBd = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sBd, sg * width));
                xa = xa + pick * (tAa - xa);
                xb = xb + pick * (tAb - xb);
                xc = xc + pick * (tAc - xc);
                xd = xd + pick * (tAd - xd);
                ya = ya + pick * (tBa - ya);
                yb = yb + pick * (tBb - yb);
                yc = yc + pick * (tBc - yc);
                yd = yd + pick * (tBd - yd);
            }
            float cap = softCap;  // a scalar argument: TornadoVM compiles it in as a constant (0: no cap code at all)
            if (cap > 0f) {
                xa = PagedDecodeKernels.capScore(xa, cap);
                xb = PagedDecodeKernels.capScore(xb, cap);
                xc = PagedDecodeKernels.capScore(xc, cap);
                xd = PagedDecodeKernels.capScore(xd, cap);
                ya = PagedDecodeKernels.capScore(ya, cap);
                yb = PagedDecodeKernels.capScore(yb, cap);
                yc = PagedDecodeKernels.capScore(yc, cap);
                yd = PagedDecodeKernels.capScore(yd, cap);
            }
            int alibi = params.get(DecodeParams.ALIBI);  // ALiBi: each score plus its head's slope times (key - query)
            if (alibi != 0) {
                int hq = alibi + kvHead * groupSize;     // the KV head's first query head's slope; heads past the group: its last
                int last = groupSize - 1;
                float da = (float) (tokenA - (len - 1));
                float db = (float) (tokenB - (len - 1));
                float pa = partials.get(hq + TornadoMath.min(head0 + 0, last));
                float pb = partials.get(hq + TornadoMath.min(head0 + 1, last));
                float pc = partials.get(hq + TornadoMath.min(head0 + 2, last));
                float pd = partials.get(hq + TornadoMath.min(head0 + 3, last));
                xa = xa + pa * da;
                xb = xb + pb * da;
                xc = xc + pc * da;
                xd = xd + pd * da;
                ya = ya + pa * db;
                yb = yb + pb * db;
                yc = yc + pc * db;
                yd = yd + pd * db;
            }
            xa = xa + biasA;
            xb = xb + biasA;
            xc = xc + biasA;
            xd = xd + biasA;
            ya = ya + biasB;
            yb = yb + biasB;
            yc = yc + biasB;
            yd = yd + biasB;
            // 3. online softmax over the two tokens, then V (already in registers); exp(-inf) = 0 and the
            //    running max starts at -Float.MAX_VALUE, so no token or head needs a branch of its own
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
            float pa = TornadoMath.exp(xa - ma);
            float oa = TornadoMath.exp(ya - ma);
            la = la + pa + oa;
            aa0 = aa0 + pa * v0 + oa * w0;
            aa1 = aa1 + pa * v1 + oa * w1;
            aa2 = aa2 + pa * v2 + oa * w2;
            aa3 = aa3 + pa * v3 + oa * w3;
            aa4 = aa4 + pa * v4 + oa * w4;
            aa5 = aa5 + pa * v5 + oa * w5;
            aa6 = aa6 + pa * v6 + oa * w6;
            aa7 = aa7 + pa * v7 + oa * w7;
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
            float pb = TornadoMath.exp(xb - mb);
            float ob = TornadoMath.exp(yb - mb);
            lb = lb + pb + ob;
            ab0 = ab0 + pb * v0 + ob * w0;
            ab1 = ab1 + pb * v1 + ob * w1;
            ab2 = ab2 + pb * v2 + ob * w2;
            ab3 = ab3 + pb * v3 + ob * w3;
            ab4 = ab4 + pb * v4 + ob * w4;
            ab5 = ab5 + pb * v5 + ob * w5;
            ab6 = ab6 + pb * v6 + ob * w6;
            ab7 = ab7 + pb * v7 + ob * w7;
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
            float pc = TornadoMath.exp(xc - mc);
            float oc = TornadoMath.exp(yc - mc);
            lc = lc + pc + oc;
            ac0 = ac0 + pc * v0 + oc * w0;
            ac1 = ac1 + pc * v1 + oc * w1;
            ac2 = ac2 + pc * v2 + oc * w2;
            ac3 = ac3 + pc * v3 + oc * w3;
            ac4 = ac4 + pc * v4 + oc * w4;
            ac5 = ac5 + pc * v5 + oc * w5;
            ac6 = ac6 + pc * v6 + oc * w6;
            ac7 = ac7 + pc * v7 + oc * w7;
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
            float pd = TornadoMath.exp(xd - md);
            float od = TornadoMath.exp(yd - md);
            ld = ld + pd + od;
            ad0 = ad0 + pd * v0 + od * w0;
            ad1 = ad1 + pd * v1 + od * w1;
            ad2 = ad2 + pd * v2 + od * w2;
            ad3 = ad3 + pd * v3 + od * w3;
            ad4 = ad4 + pd * v4 + od * w4;
            ad5 = ad5 + pd * v5 + od * w5;
            ad6 = ad6 + pd * v6 + od * w6;
            ad7 = ad7 + pd * v7 + od * w7;
            kw0 = nkw0;
            kw1 = nkw1;
            vw0 = nvw0;
            vw1 = nvw1;
            cw0 = ncw0;
            cw1 = ncw1;
            ww0 = nww0;
            ww1 = nww1;
        }
        // 4. merge the slots by log-sum-exp
        if (tid % width == 0) {                     // lane 0 of the quad (lane and live are not kept across the loop)
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
        float wa = TornadoMath.exp(ma - mAllA);
        float wb = TornadoMath.exp(mb - mAllB);
        float wc = TornadoMath.exp(mc - mAllC);
        float wd = TornadoMath.exp(md - mAllD);
        float wva = wa * vScale;
        float wvb = wb * vScale;
        float wvc = wc * vScale;
        float wvd = wd * vScale;
        // each slot's accumulators, scaled to the common max, go to their own rows: one barrier, then
        // every work-item sums a few outputs over the slots (no slot waits for another)
        int row0 = (slot * tileRows + 4 * quad) * headDim + 4 * dl;   // red: [slot][tileRow][headDim]
        if (tid % width < lanes) {                  // live lanes only
            red[row0] = aa0 * wva;
            red[row0 + 1] = aa1 * wva;
            red[row0 + 2] = aa2 * wva;
            red[row0 + 3] = aa3 * wva;
            red[row0 + 4 * lanes] = aa4 * wva;
            red[row0 + 4 * lanes + 1] = aa5 * wva;
            red[row0 + 4 * lanes + 2] = aa6 * wva;
            red[row0 + 4 * lanes + 3] = aa7 * wva;
            red[row0 + headDim] = ab0 * wvb;
            red[row0 + headDim + 1] = ab1 * wvb;
            red[row0 + headDim + 2] = ab2 * wvb;
            red[row0 + headDim + 3] = ab3 * wvb;
            red[row0 + headDim + 4 * lanes] = ab4 * wvb;
            red[row0 + headDim + 4 * lanes + 1] = ab5 * wvb;
            red[row0 + headDim + 4 * lanes + 2] = ab6 * wvb;
            red[row0 + headDim + 4 * lanes + 3] = ab7 * wvb;
            red[row0 + 2 * headDim] = ac0 * wvc;
            red[row0 + 2 * headDim + 1] = ac1 * wvc;
            red[row0 + 2 * headDim + 2] = ac2 * wvc;
            red[row0 + 2 * headDim + 3] = ac3 * wvc;
            red[row0 + 2 * headDim + 4 * lanes] = ac4 * wvc;
            red[row0 + 2 * headDim + 4 * lanes + 1] = ac5 * wvc;
            red[row0 + 2 * headDim + 4 * lanes + 2] = ac6 * wvc;
            red[row0 + 2 * headDim + 4 * lanes + 3] = ac7 * wvc;
            red[row0 + 3 * headDim] = ad0 * wvd;
            red[row0 + 3 * headDim + 1] = ad1 * wvd;
            red[row0 + 3 * headDim + 2] = ad2 * wvd;
            red[row0 + 3 * headDim + 3] = ad3 * wvd;
            red[row0 + 3 * headDim + 4 * lanes] = ad4 * wvd;
            red[row0 + 3 * headDim + 4 * lanes + 1] = ad5 * wvd;
            red[row0 + 3 * headDim + 4 * lanes + 2] = ad6 * wvd;
            red[row0 + 3 * headDim + 4 * lanes + 3] = ad7 * wvd;
        }
        if (tid % width == 0) {                     // lane 0 of the quad (lane and live are not kept across the loop)
            slotSum[slot * tileRows + 4 * quad + 0] = la * wa;
            slotSum[slot * tileRows + 4 * quad + 1] = lb * wb;
            slotSum[slot * tileRows + 4 * quad + 2] = lc * wc;
            slotSum[slot * tileRows + 4 * quad + 3] = ld * wd;
        }
        ctx.localBarrier();
        // 5. write the normalised result or this partition's partial state
        int writeFinal = params.get(DecodeParams.WRITE_FINAL);
        for (int idx = tid; idx < tileRows * headDim; idx += local) {
            int hh = idx / headDim;
            int d = idx - hh * headDim;
            int hInGroup = tileFirst + hh;
            if (hh < tileHeads && hInGroup < groupSize) {
                float mAll = Float.NEGATIVE_INFINITY;
                float sum = 0f;
                float acc = 0f;
                for (int j = 0; j < slots; j++) {
                    mAll = TornadoMath.max(mAll, slotMax[j * tileRows + hh]);
                    sum += slotSum[j * tileRows + hh];
                    acc += red[(j * tileRows + hh) * headDim + d];
                }
                int h = kvHead * groupSize + hInGroup;
                if (writeFinal != 0) {
                    out.set((seq * numQHeads + h) * headDim + d, acc / PagedDecodeKernels.finalSum(sum, mAll, partials, params, h));
                } else {
                    int pBase = ((seq * numQHeads + h) * maxParts + part) * (headDim + 2);
                    partials.set(pBase + d, acc);
                    if (d == 0) {
                        partials.set(pBase + headDim, mAll);
                        partials.set(pBase + headDim + 1, sum);
                    }
                }
            }
        }
    }
}
