package dev.pagedattn.kernels;

import dev.pagedattn.cache.KvLayout;
import uk.ac.manchester.tornado.api.annotations.Parallel;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The portable second opinion: a plain {@code @Parallel} loop, one work-item per (sequence, query
 * head), online softmax over the sequence's tokens read through the block table. No local memory,
 * no barriers: it runs wherever TornadoVM runs, and slowly (each query head re-reads its KV head,
 * and a work-item's K/V reads are not coalesced with its neighbours'). Shapes as in
 * {@link PagedDecodeKernels}; {@code maxSeqs} is the batch capacity the plan was built for.
 */
public final class ParallelDecodeKernels {
    private ParallelDecodeKernels() {
    }

    public static void decodeF16(HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q, IntArray blockTables,
                                 IntArray contextLens, IntArray params, FloatArray out, int maxSeqs,
                                 int numKvHeads, int groupSize, int headDim, int blockSize, float scale) {
        int numQHeads = numKvHeads * groupSize;
        for (@Parallel int sh = 0; sh < maxSeqs * numQHeads; sh++) {
            int seq = sh / numQHeads;
            if (seq < params.get(DecodeParams.NUM_SEQS) && params.get(DecodeParams.SKIP_ATTENTION) == 0) {
                int kvHead = (sh - seq * numQHeads) / groupSize;
                int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
                int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);
                int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)
                int tableRow = params.get(DecodeParams.TABLES) + seq * maxBlocks - PagedDecodeKernels.firstTableBlock(first, blockSize);
                int layerBase = params.get(DecodeParams.LAYER_BASE);
                int headStride = blockSize * headDim;
                int blockStride = numKvHeads * headStride;
                float[] acc = new float[PagedDecodeKernels.MAX_HEAD_DIM];
                for (int d = 0; d < headDim; d++) {
                    acc[d] = 0f;
                }
                float m = Float.NEGATIVE_INFINITY;
                float l = 0f;
                for (int t = first; t < len; t++) {
                    int block = blockTables.get(tableRow + t / blockSize);
                    int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, t % blockSize, 0);
                    float s = 0f;
                    for (int d = 0; d < headDim; d++) {
                        s += q.get(sh * headDim + d) * kPool.get(row + d).getFloat32();
                    }
                    s = s * scale;
                    float newMax = TornadoMath.max(m, s);
                    float correction = TornadoMath.exp(m - newMax);
                    float e = TornadoMath.exp(s - newMax);
                    l = l * correction + e;
                    for (int d = 0; d < headDim; d++) {
                        acc[d] = acc[d] * correction + e * vPool.get(row + d).getFloat32();
                    }
                    m = newMax;
                }
                for (int d = 0; d < headDim; d++) {
                    out.set(sh * headDim + d, acc[d] / l);
                }
            }
        }
    }

    public static void decodeF32(FloatArray kPool, FloatArray vPool, FloatArray q, IntArray blockTables,
                                 IntArray contextLens, IntArray params, FloatArray out, int maxSeqs,
                                 int numKvHeads, int groupSize, int headDim, int blockSize, float scale) {
        int numQHeads = numKvHeads * groupSize;
        for (@Parallel int sh = 0; sh < maxSeqs * numQHeads; sh++) {
            int seq = sh / numQHeads;
            if (seq < params.get(DecodeParams.NUM_SEQS) && params.get(DecodeParams.SKIP_ATTENTION) == 0) {
                int kvHead = (sh - seq * numQHeads) / groupSize;
                int len = contextLens.get(params.get(DecodeParams.LENS) + seq);
                int maxBlocks = params.get(DecodeParams.MAX_BLOCKS_PER_SEQ);
                int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)
                int tableRow = params.get(DecodeParams.TABLES) + seq * maxBlocks - PagedDecodeKernels.firstTableBlock(first, blockSize);
                int layerBase = params.get(DecodeParams.LAYER_BASE);
                int headStride = blockSize * headDim;
                int blockStride = numKvHeads * headStride;
                float[] acc = new float[PagedDecodeKernels.MAX_HEAD_DIM];
                for (int d = 0; d < headDim; d++) {
                    acc[d] = 0f;
                }
                float m = Float.NEGATIVE_INFINITY;
                float l = 0f;
                for (int t = first; t < len; t++) {
                    int block = blockTables.get(tableRow + t / blockSize);
                    int row = KvLayout.offset(layerBase, blockStride, headStride, headDim, block, kvHead, t % blockSize, 0);
                    float s = 0f;
                    for (int d = 0; d < headDim; d++) {
                        s += q.get(sh * headDim + d) * kPool.get(row + d);
                    }
                    s = s * scale;
                    float newMax = TornadoMath.max(m, s);
                    float correction = TornadoMath.exp(m - newMax);
                    float e = TornadoMath.exp(s - newMax);
                    l = l * correction + e;
                    for (int d = 0; d < headDim; d++) {
                        acc[d] = acc[d] * correction + e * vPool.get(row + d);
                    }
                    m = newMax;
                }
                for (int d = 0; d < headDim; d++) {
                    out.set(sh * headDim + d, acc[d] / l);
                }
            }
        }
    }
}
