# Generates src/main/java/dev/pagedattn/kernels/StreamDecodeKernels.java, whose kernel body is unrolled
# into named scalars (TornadoVM puts private arrays in local memory, so every register is its own variable):
#   python3 src/build/stream_kernel.py > src/main/java/dev/pagedattn/kernels/StreamDecodeKernels.java
# (StreamKernelSourceTest fails when the committed class is not this output).
HEAD = r"""package dev.pagedattn.kernels;

import dev.pagedattn.quant.DequantTable;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.common.TornadoFunctions;
import uk.ac.manchester.tornado.api.math.TornadoMath;
import uk.ac.manchester.tornado.api.types.BFloat16;
import uk.ac.manchester.tornado.api.types.FP8;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.vectors.Half2;

/**
 * Decode attention by one warp per work-group that streams its partition in tiles of 16 tokens,
 * with the loads of a tile in flight while the previous phase computes. Built for TornadoVM's CUDA
 * (NVRTC) backend: 32-bit {@code HalfFloatArray.getHalf2} loads, warp shuffles.
 *
 * <p>Same arguments, partition grid (one work-group per sequence, KV head and partition) and partial
 * format as the other attention kernels (see {@link PagedDecodeKernels}); head dim 128, 64, 80, 96, 112 or 256 (the methods
 * named {@code ...D64}: half the K and V words per lane, the same walk; {@code ...D80}, {@code ...D96}, {@code ...D112}:
 * five, six or seven eighths of them, some lanes holding a second V word ({@link #HEAD_DIM_80}, {@link #HEAD_DIM_96},
 * {@link #HEAD_DIM_112}); {@code ...D256}: steps of 8 tokens, a lane's tokens
 * group and group + 4, one (token, head) score per lane in the softmax), any group size ({@link #supports},
 * {@link #supportsEightBit}). Groups of more than four heads at head dim 128 run the {@code ...G8}
 * bodies: eight query heads per work-group in steps of 8 tokens, so that such a KV head is read once per eight query
 * heads instead of once per four (two scores per lane in the softmax: token {@code lane >> 2}, heads {@code 2 (lane & 3)}
 * and {@code 2 (lane & 3) + 1}; {@link #headTilesG8} work-groups per KV head). The other bodies compute up to four query
 * heads per work-group: a KV head of a larger group is read by {@link #headTiles} work-groups, one per four of its query
 * heads, which the grid counts as KV heads of their own (groups of 8: 2 x numKvHeads "pairs" per sequence, close together
 * in the grid, so that the second's K/V reads can hit L2; on an H200 groups of 8 ran 1.5-2.1x faster this way than on the
 * chunk and warp kernels, benchmarks/NOTES.md h1, and the G8 bodies 1.11-1.14x faster again in fp16). They
 * also run a balanced grid ({@link DecodeParams#TILES_PER_GROUP}):
 * the (sequence, KV head) pairs' tiles laid end to end and cut into equal ranges, one per work-group,
 * which reads the pieces of the pairs its range covers one after another, each piece written as a
 * partition of its pair. Each lane loads exactly the K and V words it multiplies, so the
 * loads need no staging through local memory and no barrier; only the scores cross lanes:
 * <ol>
 *   <li>scores: lane = (token group g, part p); it issues the tile's V loads, then multiplies its four
 *       tokens' (g, g + 4, g + 8, g + 12) K words p + 8j (j = 0..7, 16 dims; loaded during the previous
 *       tile) with four heads' query values (local memory) and writes 16 partial dots to local
 *       memory; after the barrier it reads the next tile's block from the table;</li>
 *   <li>softmax: lane l sums the 8 partials of token l / 2, heads 2 (l % 2) and 2 (l % 2) + 1; the
 *       tile's max per head by shuffles; one {@code exp} per (token, head); probabilities to local
 *       memory. The running max is the same in every lane, so the accumulators are rescaled only
 *       when it grows; then the next tile's K loads (their block read during the softmax, so they do not wait
 *       for the table; the V loads of that tile reuse the offset of its first row);</li>
 *   <li>V: lane l holds words l and l + 32 of all 16 tokens (dims 2l, 2l + 1, 2l + 64, 2l + 65) and
 *       accumulates them for four heads.</li>
 * </ol>
 * Two barriers per tile, both within one warp; they also keep NVRTC from hoisting the next tile's
 * loads above the current tile's use of the same registers (148 registers at head dim 128 by nvcc 13.0, three warps per
 * SM sub-partition on sm_90). Tokens past the partition's end read the tile's first row (masked to
 * probability 0). A tile inside one block (block sizes that are multiples of 16, tiles
 * aligned to them) costs one block-table lookup, a tile ahead; other block sizes look up every row. In the fp16 bodies lane r of
 * the tile locates row r and the rows meet in local memory behind one barrier (the per-row branches it replaced were
 * if-converted by NVRTC: every lane issued every row's table path). The unrolled
 * body is generated by {@code src/build/stream_kernel.py}.
 *
 * <p>8-bit twins (pools of codes, four per 32-bit word of an {@code IntArray}; the {@code dequant}
 * argument of {@link PackedCodes}; {@link #eightBitBody} picks one): the same walks, a lane loading headDim / 32 K words
 * per token (codes {@code 4 part + 32 j + 0..3}) and headDim / 128 V words (codes {@code 4 lane + 128 k + 0..3}); at head
 * dim 64, where a token's V is 16 words, lane {@code l} holds word {@code l & 15} of the tile's tokens {@code 2m + (l >> 4)}
 * and the two halves' sums meet in one shuffle before the write. The K scale is
 * folded into q, the V scale applied to the accumulators when they are written. They differ only in
 * how a code becomes a float: {@code attentionE4M3}/{@code attentionE5M2} call TornadoVM's
 * {@code FP8} decoders (one hardware conversion each on the CUDA backend, sm_89+) and
 * {@code attentionInt8} converts the byte sign-extended by a {@code (byte)} cast of {@code w >>> 8k}, not by
 * {@code (w << 24 - 8k) >> 24}: TornadoVM 5.2's PTX backend makes {@code >>} a logical shift (package-info), and nvcc
 * compiles both forms to the same PTX (a twin that looked codes up in a local copy of the format's table was 6-12% slower
 * on an H200: benchmarks/NOTES.md, q2).
 *
 * <p>bf16 bodies ({@code attentionBf16...}, {@link #bf16Body}): the fp16 walks over pools of bf16 elements, two per 32-bit
 * word of an {@code IntArray} (element {@code 2w} in the low half, as the host stores them), so a lane loads the same words
 * as in fp16 and widens each element by {@code BFloat16.bf16ToFloat} of its half: TornadoVM 5.2's CUDA backend prints
 * {@code __int_as_float(bits << 16)}, one instruction per element as fp16's {@code HADD2.F32}. PTX has no bit
 * reinterpretation and inlines the API's software decoder, so these bodies run on the CUDA backend only.
 *
 * <p>{@code attentionF16x2HalfV} is {@code attentionF16x2} with the V phase in fp16 pairs
 * ({@link dev.pagedattn.tornado.VSums#FP16}, opt-in): the probabilities are stored as fp16 pairs, a lane
 * sums a tile's 16 products per (head, dim pair) with {@code Half2.fma} ({@code __hfma2}) and adds the
 * sums to its fp32 accumulators at the tile's end: 8 instead of 16 FMAs and no V conversions per token
 * and lane (76 instead of 86 warp instructions per (token, KV head) on an H200).
 */
public final class StreamDecodeKernels {
    /** Local size: one warp. */
    public static final int LOCAL = 32;
    /** Tokens per tile. */
    public static final int TILE = 16;
    /** Query heads per work-group. */
    static final int HEADS = 4;
    /** Lanes that share one token's score (16 dims each). */
    static final int PARTS = 8;
    /** The head dim of the 8-bit twins and of the fp16 kernels without a suffix. */
    public static final int HEAD_DIM = 128;
    /** The head dim of the fp16 kernels named {@code ...D64} (Llama-3.2-1B, Qwen2.5-0.5B). */
    public static final int HEAD_DIM_64 = 64;
    /**
     * The head dim of the kernels named {@code ...D96} (Phi-3-mini, Phi-3.5-mini). fp16: a token's V is 48 words, so lanes
     * 0..15 hold two of them and lanes 16..31 one (their second load repeats a word of lanes 0..15 and is not written);
     * 8-bit: 24 words, one for each of lanes 0..23 (lanes 24..31 repeat lanes 0..7's and write nothing).
     */
    public static final int HEAD_DIM_96 = 96;
    /**
     * The head dim of the kernels named {@code ...D80} (Phi-2, Phi-1.5, StableLM-3B). fp16: a token's V is 40 words, so
     * lanes 0..7 hold two of them ({@code 32 + lane} the second); 8-bit: 20 words, one for each of lanes 0..19, and a K
     * row is 20 words, so lanes of parts 4..7 load a third K word that meets zero query values.
     */
    public static final int HEAD_DIM_80 = 80;
    /**
     * The head dim of the kernels named {@code ...D112}. fp16: a token's V is 56 words, lanes 0..23 holding two; 8-bit:
     * 28 words, one for each of lanes 0..27, and K rows of 28 words (parts 4..7 load a fourth that meets zeros).
     */
    public static final int HEAD_DIM_112 = 112;
    /** The head dim of the fp16 kernels named {@code ...D256} (Gemma, Gemma-2 2B/9B, Gemma-3 1B/4B/12B). */
    public static final int HEAD_DIM_256 = 256;
    /**
     * Tokens per step of the bodies that walk a tile in halves (head dim 256; eight heads, {@code ...G8}): a lane then
     * holds the K and V words it holds in the four-head body at 128.
     */
    static final int HALF_TILE = TILE / 2;
    /** Query heads per work-group of the G8 bodies (head dim 128, fp16, groups of more than four). */
    static final int HEADS_8 = 8;
    /** [TILE][HEADS][PARTS + 1]. */
    static final int DOTS_SIZE = TILE * HEADS * (PARTS + 1);
    /** [TILE][HEADS]. */
    static final int PROBS_SIZE = TILE * HEADS;

    private StreamDecodeKernels() {
    }

    /** fp16 pools: any group of query heads per KV head, head dim 64, 80, 96, 112, 128 or 256. */
    public static boolean supports(int groupSize, int headDim) {
        return groupSize >= 1 && (headDim == HEAD_DIM || headDim == HEAD_DIM_64 || headDim == HEAD_DIM_80 || headDim == HEAD_DIM_96
                || headDim == HEAD_DIM_112 || headDim == HEAD_DIM_256);
    }

    /**
     * The fp16 body for {@code headDim} (64, 80, 96, 112, 128 or 256) and {@code groupSize} (at 128, more than four heads: the G8
     * bodies), with a tile's V sums in fp16 pairs when {@code halfV} ({@code VSums.FP16}), as a task graph takes it; the
     * emulator calls the same {@code apply}. {@code bounded}: the twin bounded to 128 registers where one exists
     * ({@link #attentionF16x2Bounded} at head dim 128 with up to four heads, {@link #attentionF16x2D256Bounded} at 256; fp32
     * V sums; {@link #hasBoundedTwin}).
     */
    public static TornadoFunctions.Task14<KernelContext, HalfFloatArray, HalfFloatArray, FloatArray, IntArray, IntArray, IntArray,
            FloatArray, FloatArray, Integer, Integer, Integer, Integer, Float> f16Body(int headDim, int groupSize, boolean halfV,
                                                                                      boolean bounded) {
        if (bounded && hasBoundedTwin(headDim, groupSize, halfV)) {
            return headDim == HEAD_DIM_256 ? StreamDecodeKernels::attentionF16x2D256Bounded : StreamDecodeKernels::attentionF16x2Bounded;
        }
        return f16Body(headDim, groupSize, halfV);
    }

    /** Whether the fp16 body for {@code headDim}, {@code groupSize} and {@code halfV} has a twin bounded to 128 registers. */
    public static boolean hasBoundedTwin(int headDim, int groupSize, boolean halfV) {
        return !halfV && (headDim == HEAD_DIM && !eightHeads(groupSize, headDim) || headDim == HEAD_DIM_256);
    }

    /**
     * The fp16 body for {@code headDim} (64, 80, 96, 112, 128 or 256) and {@code groupSize} (at 128, more than four heads: the G8
     * bodies), with a tile's V sums in fp16 pairs when {@code halfV} ({@code VSums.FP16}), as a task graph takes it; the
     * emulator calls the same {@code apply}.
     */
    public static TornadoFunctions.Task14<KernelContext, HalfFloatArray, HalfFloatArray, FloatArray, IntArray, IntArray, IntArray,
            FloatArray, FloatArray, Integer, Integer, Integer, Integer, Float> f16Body(int headDim, int groupSize, boolean halfV) {
        if (eightHeads(groupSize, headDim)) {
            return halfV ? StreamDecodeKernels::attentionF16x2HalfVG8 : StreamDecodeKernels::attentionF16x2G8;
        }
        return switch (headDim) {
            case HEAD_DIM_64 -> halfV ? StreamDecodeKernels::attentionF16x2HalfVD64 : StreamDecodeKernels::attentionF16x2D64;
            case HEAD_DIM_80 -> halfV ? StreamDecodeKernels::attentionF16x2HalfVD80 : StreamDecodeKernels::attentionF16x2D80;
            case HEAD_DIM_96 -> halfV ? StreamDecodeKernels::attentionF16x2HalfVD96 : StreamDecodeKernels::attentionF16x2D96;
            case HEAD_DIM_112 -> halfV ? StreamDecodeKernels::attentionF16x2HalfVD112 : StreamDecodeKernels::attentionF16x2D112;
            case HEAD_DIM_256 -> halfV ? StreamDecodeKernels::attentionF16x2HalfVD256 : StreamDecodeKernels::attentionF16x2D256;
            case HEAD_DIM -> halfV ? StreamDecodeKernels::attentionF16x2HalfV : StreamDecodeKernels::attentionF16x2;
            default -> throw new IllegalArgumentException("headDim=" + headDim + ": the stream kernel's fp16 bodies cover 64, 80, 96, 112, 128 and 256");
        };
    }

    /**
     * The 8-bit twin for {@code dtype} ({@code KvDtype.INT8}, {@code FP8_E4M3} or {@code FP8_E5M2}, by name), {@code headDim}
     * (64, 80, 96, 112, 128 or 256) and {@code groupSize} (at 128, more than four heads: the G8 bodies), as a task graph takes it; the emulator
     * calls the same {@code apply}.
     */
    public static TornadoFunctions.Task15<KernelContext, IntArray, IntArray, FloatArray, FloatArray, IntArray, IntArray, IntArray,
            FloatArray, FloatArray, Integer, Integer, Integer, Integer, Float> eightBitBody(String dtype, int headDim, int groupSize) {
        if (!supportsEightBit(groupSize, headDim)) {
            throw new IllegalArgumentException("headDim=" + headDim + ": the stream kernel's 8-bit twins cover 64, 80, 96, 112, 128 and 256");
        }
        String walk = headDim == HEAD_DIM ? (eightHeads(groupSize, headDim) ? "G8" : "") : "D" + headDim;
        return switch (dtype + walk) {
            case "INT8" -> StreamDecodeKernels::attentionInt8;
            case "INT8D64" -> StreamDecodeKernels::attentionInt8D64;
            case "INT8D80" -> StreamDecodeKernels::attentionInt8D80;
            case "INT8D96" -> StreamDecodeKernels::attentionInt8D96;
            case "INT8D112" -> StreamDecodeKernels::attentionInt8D112;
            case "INT8D256" -> StreamDecodeKernels::attentionInt8D256;
            case "INT8G8" -> StreamDecodeKernels::attentionInt8G8;
            case "FP8_E4M3" -> StreamDecodeKernels::attentionE4M3;
            case "FP8_E4M3D64" -> StreamDecodeKernels::attentionE4M3D64;
            case "FP8_E4M3D80" -> StreamDecodeKernels::attentionE4M3D80;
            case "FP8_E4M3D96" -> StreamDecodeKernels::attentionE4M3D96;
            case "FP8_E4M3D112" -> StreamDecodeKernels::attentionE4M3D112;
            case "FP8_E4M3D256" -> StreamDecodeKernels::attentionE4M3D256;
            case "FP8_E4M3G8" -> StreamDecodeKernels::attentionE4M3G8;
            case "FP8_E5M2" -> StreamDecodeKernels::attentionE5M2;
            case "FP8_E5M2D64" -> StreamDecodeKernels::attentionE5M2D64;
            case "FP8_E5M2D80" -> StreamDecodeKernels::attentionE5M2D80;
            case "FP8_E5M2D96" -> StreamDecodeKernels::attentionE5M2D96;
            case "FP8_E5M2D112" -> StreamDecodeKernels::attentionE5M2D112;
            case "FP8_E5M2D256" -> StreamDecodeKernels::attentionE5M2D256;
            case "FP8_E5M2G8" -> StreamDecodeKernels::attentionE5M2G8;
            default -> throw new IllegalArgumentException("dtype=" + dtype + ": the stream kernel's 8-bit twins read INT8, FP8_E4M3 and FP8_E5M2");
        };
    }

    /**
     * The bf16 body for {@code headDim} (64, 80, 96, 112, 128 or 256) and {@code groupSize} (at 128, more than four heads: the G8
     * walk): the fp16 body's walk over pools whose {@code IntArray} words hold two bf16 elements each (element {@code 2w} in
     * the low half), each element widened by {@code BFloat16.bf16ToFloat}, as a task graph takes it; the emulator calls the
     * same {@code apply}. fp32 V sums only, no bounded twin.
     */
    public static TornadoFunctions.Task14<KernelContext, IntArray, IntArray, FloatArray, IntArray, IntArray, IntArray,
            FloatArray, FloatArray, Integer, Integer, Integer, Integer, Float> bf16Body(int headDim, int groupSize) {
        if (eightHeads(groupSize, headDim)) {
            return StreamDecodeKernels::attentionBf16G8;
        }
        return switch (headDim) {
            case HEAD_DIM_64 -> StreamDecodeKernels::attentionBf16D64;
            case HEAD_DIM_80 -> StreamDecodeKernels::attentionBf16D80;
            case HEAD_DIM_96 -> StreamDecodeKernels::attentionBf16D96;
            case HEAD_DIM_112 -> StreamDecodeKernels::attentionBf16D112;
            case HEAD_DIM_256 -> StreamDecodeKernels::attentionBf16D256;
            case HEAD_DIM -> StreamDecodeKernels::attentionBf16;
            default -> throw new IllegalArgumentException("headDim=" + headDim + ": the stream kernel's bf16 bodies cover 64, 80, 96, 112, 128 and 256");
        };
    }

    /** 8-bit pools: any group of query heads per KV head, head dim 64, 80, 96, 112, 128 or 256 (as fp16). */
    public static boolean supportsEightBit(int groupSize, int headDim) {
        return supports(groupSize, headDim);
    }

    /** Work-groups that share one KV head of a group of {@code groupSize} query heads: one per four query heads. */
    public static int headTiles(int groupSize) {
        return (groupSize + HEADS - 1) / HEADS;
    }

    /** The same for the G8 bodies: one per eight query heads. */
    public static int headTilesG8(int groupSize) {
        return (groupSize + HEADS_8 - 1) / HEADS_8;
    }

    /**
     * Whether a group of {@code groupSize} at {@code headDim} runs the G8 bodies (head dim 128, more than four heads;
     * {@code -Dpagedattn.tornado.streamEightHeads=false}: four-head work-groups, as before them, for A/B measurements).
     */
    public static boolean eightHeads(int groupSize, int headDim) {
        return EIGHT_HEADS && headDim == HEAD_DIM && groupSize > HEADS;
    }

    private static final boolean EIGHT_HEADS = !"false".equals(System.getProperty("pagedattn.tornado.streamEightHeads"));

    /** Work-groups per KV head of the body that runs this shape (fp16 and 8-bit alike). */
    public static int headTiles(int groupSize, int headDim) {
        return eightHeads(groupSize, headDim) ? headTilesG8(groupSize) : headTiles(groupSize);
    }

    /**
     * Pool offset of row {@code r} of the tile at {@code tileStart}, or of the tile's first row when
     * that row is at or past {@code end}; {@code base} is the first row's offset, {@code oneBlock}
     * whether the tile lies in one block.
     */
    static int tileRow(IntArray blockTables, int tableRow, int base, boolean oneBlock, int tileStart, int r, int start,
                       int end, int layerBase, int blockStride, int headStride, int headDim, int blockSize, int kvHead) {
        int row = tileStart + r < end ? r : 0;
        if (oneBlock) {
            return base + row * headDim;
        }
        return PagedDecodeKernels.rowOffset(blockTables, tableRow, tileStart + row, layerBase, blockStride, headStride,
                headDim, blockSize, kvHead);
    }

"""
H = "abcd"          # the query heads of a work-group (four; eight in the G8 bodies)
HX = "HEADS"        # their count, as the Java constant
T = 16              # tokens per tile
Q8 = False          # generating the 8-bit twin
BF = False          # generating a bf16 body
D = 128             # head dim of the body being generated (fp16: 64 or 128; 8-bit twins: 128)
out = []
IND = ""            # extra indentation of the piece loop's body
def w(s=""): out.append(IND + s if s else s)

def body(q8, dec=None, pvhalf=False, dim=128, heads=4, bounded=False, bf16=False):
    # q8: an 8-bit twin (pools of codes, four per int word; K scale folded into q, V scale applied to the
    # accumulators when they are written); dec: how a code becomes a float: "i2f" (INT8: the sign-extended
    # byte converted), "e4m3"/"e5m2" (TornadoVM's FP8 decoders: one hardware conversion each on CUDA)
    # dim: the head dim the lanes are unrolled for (64: half the K and V words per lane, methods named ...D64)
    # dim 256: steps of 8 tokens (the grid's 16-token tiles walked in halves), so that a lane holds as many K and
    # V words as at 128; the softmax then has one (token, head) score per lane
    # heads 8 (head dim 128, fp16): eight query heads per work-group in steps of 8 tokens (the G8 bodies, for groups of
    # more than four, whose KV head is then read once instead of once per four heads); two scores per lane
    # bounded: the same body under the name ...Bounded, which tornado-config/nvrtc bounds to 128 registers
    # q8 at dim 256 or with eight heads: the walk of the fp16 body of that shape, a lane's K words per token D / 32 (codes
    # 4 part + 32 j + 0..3) and V words D / 128 (codes 4 lane + 128 k + 0..3); at dim 64 a token's V is 16 words, so the
    # lanes split a tile's tokens: lane l holds word l & 15 of tokens 2m + (l >> 4), m < 8, and the two halves' sums
    # are added by one shuffle before the write
    # bf16: the fp16 body over bf16 pools, whose IntArray words hold two elements each (element 2w in the low half): a
    # lane loads the same 32-bit words, and an element becomes a float by BFloat16.bf16ToFloat, which TornadoVM 5.2's
    # CUDA backend prints as __int_as_float(bits << 16) (fp32 V sums only; no bounded twin)
    global Q8, DEC, D, T, H, HX, ACC, WV8, VSPLIT, VX, VL, XL, WL, KPAD, S, BF
    Q8 = q8
    BF = bf16
    assert not (bf16 and (q8 or pvhalf or bounded)), "the bf16 bodies are the plain fp16 walks"
    assert not (q8 and pvhalf), "the 8-bit twins keep fp32 V sums"
    DEC = dec
    D = dim
    T = 8 if D == 256 or heads == 8 else 16
    H = "abcdefgh"[:heads]
    HX = "HEADS" if heads == 4 else "HEADS_8"
    nt = T // 4             # a lane's tokens in the scores: group + 4i, i < nt
    step = "TILE" if T == 16 else "HALF_TILE"
    wk = D // 16        # a lane's K words per token (fp16): words part + 8j, j < wk
    wv = D // 64        # a lane's V words per token (fp16): words lane + 32k, k < wv
    S = (D + 31) // 32 * 32   # a head's row of scaled query values in local memory (dims D..S - 1 hold zeros)
    KPAD = q8 and D // 4 % 8 != 0   # 8-bit at 80 and 112: a K row is 20 or 28 words, so parts 4..7 have one word fewer
    if q8:
        wk = S // 32    # 8-bit: a lane's K words per token, words part + 8j (codes 4 part + 32 j + 0..3), j < wk
        wv = D // 128   # 8-bit: a lane's V words per token, words lane + 32k (codes 4 lane + 128 k + 0..3), k < wv
    VSPLIT = q8 and D == 64   # 8-bit at 64: the lanes' V words split a tile's tokens
    VX = not q8 and D in (80, 96, 112)  # fp16: a token's V is 32 + XL words: lane and a second, kept by lanes 0..XL - 1
    VL = q8 and D in (80, 96, 112)      # 8-bit: a token's V is WL < 32 words, word vLane of lanes 0..WL - 1 (the rest write nothing)
    XL = D // 2 - 32
    WL = D // 4
    if VX or VL:
        wv = 2 if VX else 1
    if VSPLIT:
        wv = 1
    WV8 = wv
    ACC = 4 * wv if q8 else 2 * wv   # a lane's accumulators per head
    suffix = ("" if D == 128 else f"D{D}") + ("G8" if heads == 8 else "")
    if q8:
        name = {"i2f": "attentionInt8", "e4m3": "attentionE4M3", "e5m2": "attentionE5M2"}[dec]
        name += suffix
        w(f"    public static void {name}(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray dequant, FloatArray q,")
    elif bf16:
        w(f"    public static void attentionBf16{suffix}(KernelContext ctx, IntArray kPool, IntArray vPool, FloatArray q,")
    else:
        name = ("attentionF16x2HalfV" if pvhalf else "attentionF16x2") + suffix + ("Bounded" if bounded else "")
        w(f"    public static void {name}(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool, FloatArray q,")
    w( "                                    IntArray blockTables, IntArray contextLens, IntArray params, FloatArray out,")
    w( "                                    FloatArray partials, int numKvHeads, int groupSize, int headDim, int blockSize,")
    w( "                                    float scale) {")
    w( "        if (params.get(DecodeParams.SKIP_ATTENTION) != 0) {")
    w( "            return;")
    w( "        }")
    w( "        int lane = ctx.localIdx;")
    if T == 16:
        w( "        int group = lane >> 3;           // scores: this lane's tokens group, group + 4, group + 8, group + 12 of a tile")
    elif heads == 8:
        w( "        int group = lane >> 3;           // scores: this lane's tokens group and group + 4 of a step of 8")
    else:
        w( "        int group = lane >> 3;           // scores: this lane's tokens group and group + 4 of a step of 8")
    if q8:
        w(f"        int part = lane & 7;             // scores: this lane's words part + 8j (dims 4 part + 32j + {{0..3}}), j = 0..{wk - 1}")
        if KPAD:
            w(f"        int kLast = 8 - 2 * (part & 4);  // scores: word {wk - 1}'s offset from word {wk - 2} (parts 4..7: word {wk - 2} again, met by zero query values)")
    else:
        w(f"        int part = lane & 7;             // scores: this lane's words part + 8j (dims 2 part + 16j + {{0, 1}}), j = 0..{wk - 1}")
    if T == 16:
        w( "        int odd = lane & 1;              // softmax: this lane's heads 2 odd and 2 odd + 1 of token lane / 2")
        if VSPLIT:
            w( "        int vHalf = lane >> 4;           // V: this lane's tokens 2m + vHalf of a tile, word lane & 15 of each")
        if VX and D == 96:
            w( "        int vSecond = 64 - 2 * (lane & 16); // V: this lane's second word, 32 + (lane & 15), from its first (written by lanes 0..15)")
        if VX and D == 80:
            w( "        int vSecond = 64 - 2 * (lane & 24); // V: this lane's second word, 32 + (lane & 7), from its first (written by lanes 0..7)")
        if VX and D == 112:
            w( "        int vSecond = lane < 24 ? 64 : 16; // V: this lane's second word, 32 + lane (lanes 24..31: lane + 8), from its first (written by lanes 0..23)")
        if VL:
            w(f"        int vLane = lane < {WL} ? lane : lane - {WL}; // V: this lane's word of a token (lanes {WL}..31 repeat lanes 0..{31 - WL}'s, written by lanes 0..{WL - 1})")
    elif heads == 8:
        w( "        int head = lane & 3;             // softmax: this lane's heads 2 head and 2 head + 1 of token lane >> 2")
    else:
        w( "        int head = lane & 3;             // softmax: this lane's head of token lane >> 2")
    w( "        int gid = ctx.groupIdx;")
    w( "        int numSeqs = params.get(DecodeParams.NUM_SEQS);")
    w( "        int headStride = blockSize * headDim;")
    w( "        int blockStride = numKvHeads * headStride;")
    w( "        int layerBase = params.get(DecodeParams.LAYER_BASE);")
    if heads == 8:
        w( "        int headTiles = headTilesG8(groupSize); // work-groups per KV head, eight query heads each (groupSize is a JIT-time constant)")
    else:
        w( "        int headTiles = headTiles(groupSize);   // work-groups per KV head, four query heads each (groupSize is a JIT-time constant)")
    w( "        int pairHeads = numKvHeads * headTiles; // the grid's \"KV heads\": (KV head, head tile)")
    w( "        float[] dots = ctx.allocateFloatLocalArray(DOTS_SIZE);    // [token][head][PARTS + 1] partial dots of a tile")
    if pvhalf:
        w( "        Half2[] probs = ctx.allocateHalf2LocalArray(PROBS_SIZE);  // [token][head] probabilities of a tile, twice in fp16")
    else:
        w( "        float[] probs = ctx.allocateFloatLocalArray(PROBS_SIZE);  // [token][head] probabilities of a tile")
    qsSize = f"{HX} * HEAD_DIM" if D == 128 else f"{HX} * {S}"
    w(f"        float[] qs = ctx.allocateFloatLocalArray({qsSize}); // [head][headDim] scaled query values")
    if not q8:
        w(f"        int[] kRows = ctx.allocateIntLocalArray({step}); // pool offsets of a tile's rows across blocks (K, V)")
        w(f"        int[] vRows = ctx.allocateIntLocalArray({step});")
    w()
    w( "        // this work-group's pieces: its (sequence, KV head, partition) in a partition grid; in a balanced grid")
    w( "        // (DecodeParams.TILES_PER_GROUP) the pieces of the (sequence, KV head) pairs its range of tiles covers.")
    w( "        // Across the tile loop only seq, pair, partition and pos stay live; the rest is read again from params.")
    w( "        int seq = PagedDecodeKernels.seqOf(gid, params.get(DecodeParams.MAX_PARTITIONS), pairHeads);")
    w( "        int pos = gid * params.get(DecodeParams.TILES_PER_GROUP);  // balanced: the next global tile of this work-group's range")
    w( "        if (params.get(DecodeParams.TILES_PER_GROUP) != 0) {")
    w( "            seq = pos < params.get(DecodeParams.TOTAL_TILES) ? params.get(params.get(DecodeParams.GROUP_SEQS) + gid) : numSeqs;")
    w( "        }")
    w( "        boolean more = seq < numSeqs;")
    w( "        while (more) {")
    w( "            int len = contextLens.get(params.get(DecodeParams.LENS) + seq);")
    w( "            int first = PagedDecodeKernels.windowFirst(len, params);  // a sliding window's first visible token (else 0)")
    w( "            int origin = PagedDecodeKernels.walkOrigin(first);        // partitions and tiles are laid from here")
    w( "            int maxParts = params.get(DecodeParams.MAX_PARTITIONS);")
    w( "            int pair = PagedDecodeKernels.kvHeadOf(gid, maxParts, pairHeads);  // (KV head, head tile)")
    w( "            int partition = PagedDecodeKernels.partitionOf(gid, maxParts);")
    w( "            int start = origin + partition * params.get(DecodeParams.PARTITION_TOKENS);")
    w( "            int end = TornadoMath.min(len, start + params.get(DecodeParams.PARTITION_TOKENS));")
    w( "            start = TornadoMath.max(first, start);")
    w( "            int tilesPerGroup = params.get(DecodeParams.TILES_PER_GROUP);")
    w( "            if (tilesPerGroup != 0) {")
    w( "                int tiles = (len - origin + TILE - 1) / TILE;")
    w( "                int seqStart = pairHeads * params.get(DecodeParams.PREFIX + seq);  // the sequence's first global tile")
    w( "                pair = (pos - seqStart) / tiles;")
    w( "                int pairStart = seqStart + pair * tiles;")
    w( "                int rangeEnd = TornadoMath.min(gid * tilesPerGroup + tilesPerGroup, params.get(DecodeParams.TOTAL_TILES));")
    w( "                int pieceEnd = TornadoMath.min(rangeEnd - pairStart, tiles);  // in tiles of the pair")
    w( "                start = TornadoMath.max(first, origin + (pos - pairStart) * TILE);")
    w( "                end = TornadoMath.min(len, origin + pieceEnd * TILE);")
    w( "                partition = gid - pairStart / tilesPerGroup;")
    w( "                pos = pairStart + pieceEnd;")
    w( "            }")
    w( "            if (start < end) {")
    global IND
    IND = "        "
    w( "        int tableRow = params.get(DecodeParams.TABLES) + seq * params.get(DecodeParams.MAX_BLOCKS_PER_SEQ)")
    w( "                - origin / blockSize;  // a window's row starts at its origin's block (PagedDecodeKernels.firstTableBlock)")
    w( "        int kvHead = pair / headTiles;")
    w(f"        int head0 = pair % headTiles * {HX};  // this work-group's first query head in its group (0 when headTiles is 1)")
    if q8:
        w( "        float qScale = scale * dequant.get(DequantTable.SIZE + kvHead);          // the K scale, folded into q")
        w( "        float vScale = dequant.get(DequantTable.SIZE + numKvHeads + kvHead);  // applied to the accumulators")
    w()
    w(f"        // the {'four' if heads == 4 else 'eight'} heads' query values, pre-scaled, to local memory: [head][headDim]; heads past the group are 0.")
    w(f"        // A lane's {heads * S // 32} loads are all issued before the first store (rows of heads past the group clamped to the")
    w( "        // group's last, then zeroed): in a loop with a guarded load each waited for the one before.")
    sc = "qScale" if q8 else "scale"
    w( "        int qRow = (seq * numKvHeads + kvHead) * groupSize;  // the KV head's first query head")
    for hi, h in enumerate(H):
        w(f"        int qAt{h.upper()} = (qRow + TornadoMath.min(head0 + {hi}, groupSize - 1)) * headDim + lane;")
    if D % 32:
        w(f"        // dims {D // 32 * 32}..{S - 1}: lanes 0..15 hold dims {D // 32 * 32}..{D - 1}, lanes 16..31 load one of them again and store zeros")
    tail = lambda j: " - (lane & 16)" if 32 * j + 32 > D else ""   # a row past the head's last dim
    for hi, h in enumerate(H):
        w("        " + " ".join(f"float q{h}{j} = q.get(qAt{h.upper()} + {32 * j}{tail(j)});" for j in range(S // 32)))
    for hi, h in enumerate(H):
        w(f"        float qScale{h.upper()} = head0 + {hi} < groupSize ? {sc} : 0f;")
    for hi, h in enumerate(H):
        w("        " + " ".join(f"qs[{hi * S + 32 * j} + lane] = " + (f"lane < 16 ? q{h}{j} * qScale{h.upper()} : 0f;" if tail(j)
                                   else f"q{h}{j} * qScale{h.upper()};") for j in range(S // 32)))
    w( "        ctx.localBarrier();")
    w(f"        int qLane = {4 if q8 else 2} * part;")
    for hi, h in enumerate(H):
        w(f"        boolean valid{h.upper()} = head0 + {hi} < groupSize;")
    w()
    w( "        // the first tile's K words of this lane's tokens (in flight from here on)")
    w( "        int base = PagedDecodeKernels.rowOffset(blockTables, tableRow, start, layerBase, blockStride, headStride, headDim, blockSize, kvHead);")
    w(f"        boolean oneBlock = start % blockSize + {step} <= blockSize;")
    k_loads("        ", "start", True)
    w()
    for h in H:
        w(f"        float m{h} = -Float.MAX_VALUE;  // running max of head {h} (the same in every lane); finite, so exp(old - new) never sees -inf - -inf")
    if T == 16:
        w( "        float sumA = 0f;                 // this lane's share of the running sums of heads 2 odd and 2 odd + 1")
        w( "        float sumB = 0f;")
    elif heads == 8:
        w( "        float sumA = 0f;                 // this lane's share of the running sums of heads 2 head and 2 head + 1")
        w( "        float sumB = 0f;")
    else:
        w( "        float sumA = 0f;                 // this lane's share of the running sum of its head")
    for h in H:
        w("        " + " ".join(f"float o{h}{d} = 0f;" for d in range(ACC)))
    w()
    w( "        float cap = PagedDecodeKernels.softCapOf(partials, params.get(DecodeParams.SOFT_CAP));  // logit soft cap (0: none)")
    w(f"        for (int tileStart = start; tileStart < end; tileStart += {step}) {{")
    w( "            // this tile's V words (in flight during the scores and the softmax)")
    # the tile's V rows at the offset its K words were loaded from, the next tile's K loads after the softmax and their
    # block read before it (late_k), except in the 8-bit bodies at head dim 256, which nvcc 13.0 then gives 134 registers
    # instead of 128 (their grids assume 16 groups per SM)
    late_k = not (q8 and D == 256)
    if late_k:
        w( "            int vBase = base;  // the tile's first row, located when its K words were loaded")
    else:
        w( "            int vBase = PagedDecodeKernels.rowOffset(blockTables, tableRow, tileStart, layerBase, blockStride, headStride, headDim, blockSize, kvHead);")
    w(f"            boolean vOne = tileStart % blockSize + {step} <= blockSize;")
    v_loads("            ")
    w(f"            // 1. partial dots of this lane's {'four' if nt == 4 else 'two'} tokens with heads a..{H[-1]} over its {4 * wk if Q8 else 2 * wk} dims")
    for i in range(nt):
        if q8:
            for j in range(wk):
                decode(f"kw{i}{j}", [f"x{i}{4*j+c}" for c in range(4)], "            ")
        else:
            for j in range(wk):
                conv(f"kw{i}{j}", f"x{i}{2*j}", f"x{i}{2*j+1}", "            ")
    for hi, h in enumerate(H):
        for i in range(nt):
            if q8:   # element e: word j = e / 4, code c = e % 4, dim 4 part + 32 j + c
                terms = " + ".join(f"qs[qLane + {hi * S + 32 * (e // 4) + e % 4}] * x{i}{e}" for e in range(4 * wk))
            else:    # element e: word j = e / 2, half e % 2, dim 2 part + 16 j + e % 2
                terms = " + ".join(f"qs[qLane + {hi * S + 16 * (e // 2) + e % 2}] * x{i}{e}" for e in range(2 * wk))
            w(f"            float d{i}{h} = {terms};")
    for i in range(nt):
        for hi, h in enumerate(H):
            w(f"            dots[((group + {4*i}) * {HX} + {hi}) * (PARTS + 1) + part] = d{i}{h};")
    w( "            ctx.localBarrier();")
    w(f"            int next = tileStart + {step} < end ? tileStart + {step} : start;")
    if late_k:
        w( "            // the next tile's block (past the partition: the first tile's), read during the softmax, so that its K loads")
        w( "            // (issued after the softmax) do not wait for it, nor its V loads (the same rows' offset, carried in base)")
        w( "            int nextBlock = blockTables.get(tableRow + next / blockSize);")
    else:
        next_k_loads("the next tile's K words (past the partition: the first tile's rows again, never used)",
                     "rowOffset(blockTables, tableRow, next", step)
    if heads == 8:
        softmax_eight(pvhalf, wv)
    elif T == 8:
        softmax_one(pvhalf, wv)
    else:
        softmax_two(pvhalf, wv)
    if late_k:
        next_k_loads("the next tile's K words (past the partition: the first tile's rows again, never used), in flight during the V sums",
                     "blockRowOffset(nextBlock, next", step)
    v_phase(pvhalf, wv)
    w( "        }")
    w()
    if heads == 8:
        w( "        // 4. the running sums over the lanes (lane j: heads 2j and 2j + 1), then write out")
        per_head("        ", "sumA", "sumA += ctx.simdShuffleDown(sumA, {d});", "float l{h} = {b};", H[0::2])
        per_head("        ", "sumB", "sumB += ctx.simdShuffleDown(sumB, {d});", "float l{h} = {b};", H[1::2])
    elif T == 8:
        w( "        // 4. the running sums over the lanes (lane h: head h), then write out")
        per_head("        ", "sumA", "sumA += ctx.simdShuffleDown(sumA, {d});", "float l{h} = {b};")
    else:
        w( "        // 4. the running sums over the lanes (lane 0: heads a, b; lane 1: heads c, d), then write out")
        for delta in (16, 8, 4, 2):
            w(f"        sumA += ctx.simdShuffleDown(sumA, {delta});")
            w(f"        sumB += ctx.simdShuffleDown(sumB, {delta});")
        w( "        float la = ctx.simdBroadcastFirst(sumA);")
        w( "        float lb = ctx.simdBroadcastFirst(sumB);")
        w( "        float lc = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sumA, 1));")
        w( "        float ld = ctx.simdBroadcastFirst(ctx.simdShuffleDown(sumB, 1));")
    if VSPLIT:
        w( "        // the V sums of the two halves of the lanes (tokens 2m and 2m + 1): lanes 0..15 hold a head's 64 dims")
        for h in H:
            w("        " + " ".join(f"o{h}{d} += ctx.simdShuffleDown(o{h}{d}, 16);" for d in range(ACC)))
    w( "        int writeFinal = params.get(DecodeParams.WRITE_FINAL);")
    w( "        int numQHeads = numKvHeads * groupSize;")
    w( "        // a fused step's denominators with the heads' sinks: their loads issued together, before the first output store")
    w( "        // (which may alias them, so a load after it waits for it)")
    w( "        int sinkOn = writeFinal != 0 ? params.get(DecodeParams.SINKS) : 0;")
    w( "        int sinkAt = params.get(DecodeParams.SINK_BASE) + kvHead * groupSize + head0;")
    for hi, h in enumerate(H):
        w(f"        float sink{h} = sinkOn != 0 && valid{h.upper()} ? partials.get(sinkAt + {hi}) : 0f;")
    for hi, h in enumerate(H):
        w(f"        float sinkSum{h} = PagedDecodeKernels.withSink(l{h}, m{h}, sinkOn, sink{h});")
    for hi, h in enumerate(H):
        w(f"        if (valid{h.upper()}{' && lane < 16' if VSPLIT else f' && lane < {WL}' if VL else ''}) {{")
        w(f"            int h = seq * numQHeads + kvHead * groupSize + head0 + {hi};")
        offs = tuple(128 * k + c for k in range(wv) for c in range(4)) if q8 else tuple(64 * k + c for k in range(wv) for c in (0, 1))
        lo = "4 * lane" if q8 else "2 * lane"
        vs = " * vScale" if q8 else ""
        w( "            if (writeFinal != 0) {")
        w(f"                int o = h * headDim + {lo};")
        cut = 2 if VX else len(offs)   # at 80, 96 and 112 the second word's sums are written by lanes 0..XL - 1 only
        def stores(store):   # store(offset, accumulator index, its scale): one statement per accumulator
            for d, off in enumerate(offs[:cut]):
                w("                " + store(off, d, vs))
            if VX:
                w(f"                if (lane < {XL}) {{")
                w("                    " + " ".join(store(off, d + cut, "") for d, off in enumerate(offs[cut:])))
                w( "                }")
        stores(lambda off, d, sc: f"out.set(o + {off}, o{h}{d}{sc} / sinkSum{h});")
        w( "            } else {")
        w( "                int pBase = (h * maxParts + partition) * (headDim + 2);")
        stores(lambda off, d, sc: f"partials.set(pBase + {lo} + {off}, o{h}{d}{sc});")
        w( "                if (lane == 0) {")
        w(f"                    partials.set(pBase + headDim, m{h});")
        w(f"                    partials.set(pBase + headDim + 1, l{h});")
        w( "                }")
        w( "            }")
        w( "        }")
    IND = ""
    w( "            }")
    w( "            // a balanced range's next piece starts the next pair")
    w( "            int r = params.get(DecodeParams.TILES_PER_GROUP);")
    w( "            more = pos < (r == 0 ? 0 : TornadoMath.min(ctx.groupIdx * r + r, params.get(DecodeParams.TOTAL_TILES)));")
    w( "            seq = pair == pairHeads - 1 ? seq + 1 : seq;")
    w( "        }")
    w( "    }")

def next_k_loads(comment, offset_call, step):
    # the next tile's first row (PagedDecodeKernels.<offset_call>, ...)) and this lane's K words of it
    w(f"            // {comment}")
    w(f"            base = PagedDecodeKernels.{offset_call}, layerBase, blockStride, headStride, headDim, blockSize, kvHead);")
    w(f"            oneBlock = next % blockSize + {step} <= blockSize;")
    k_loads("            ", "next", False)

def softmax_two(pvhalf, wv):
    # 2. a 16-token tile: lane = (token lane / 2, heads 2 odd and 2 odd + 1)
    w( "            // 2. scores of token lane / 2, heads 2 odd and 2 odd + 1; the tile's max per head; probabilities")
    two_scores(1, "odd")
    for delta in (16, 8, 4, 2):
        w(f"            tA = TornadoMath.max(tA, ctx.simdShuffleDown(tA, {delta}));")
        w(f"            tB = TornadoMath.max(tB, ctx.simdShuffleDown(tB, {delta}));")
    w( "            float na = TornadoMath.max(ma, ctx.simdBroadcastFirst(tA));")
    w( "            float nb = TornadoMath.max(mb, ctx.simdBroadcastFirst(tB));")
    w( "            float nc = TornadoMath.max(mc, ctx.simdBroadcastFirst(ctx.simdShuffleDown(tA, 1)));")
    w( "            float nd = TornadoMath.max(md, ctx.simdBroadcastFirst(ctx.simdShuffleDown(tB, 1)));")
    rescale(ACC, "sumA = sumA * (odd == 0 ? ca : cc);", "sumB = sumB * (odd == 0 ? cb : cd);")
    w( "            float pA = TornadoMath.exp(sA - (odd == 0 ? ma : mc));")
    w( "            float pB = TornadoMath.exp(sB - (odd == 0 ? mb : md));")
    two_probs("odd", pvhalf)

def two_scores(shift, pair):
    # a lane's two scores: token lane >> shift, heads 2 pair and 2 pair + 1 (masked past the end), and their copies to reduce
    w(f"            int row = lane >> {shift};")
    w(f"            int rowA = (row * {HX} + 2 * {pair}) * (PARTS + 1);")
    w( "            int rowB = rowA + PARTS + 1;")
    w( "            float sA = " + " + ".join(f"dots[rowA + {p}]" for p in range(8)) + ";")
    w( "            float sB = " + " + ".join(f"dots[rowB + {p}]" for p in range(8)) + ";")
    w( "            sA = PagedDecodeKernels.softCap(sA, cap);")
    w( "            sB = PagedDecodeKernels.softCap(sB, cap);")
    w( "            int alibi = params.get(DecodeParams.ALIBI);  // ALiBi: each score plus its head's slope times (key - query)")
    w(f"            int alibiHead = kvHead * groupSize + head0 + 2 * {pair};  // heads past the group: the group's last")
    w( "            sA = sA + PagedDecodeKernels.alibiBias(partials, alibi, TornadoMath.min(alibiHead, kvHead * groupSize + groupSize - 1),")
    w( "                    tileStart + row, len - 1);")
    w( "            sB = sB + PagedDecodeKernels.alibiBias(partials, alibi, TornadoMath.min(alibiHead + 1, kvHead * groupSize + groupSize - 1),")
    w( "                    tileStart + row, len - 1);")
    w( "            if (tileStart + row >= end) {  // finite: see PagedDecodeKernels.MASKED")
    w( "                sA = PagedDecodeKernels.MASKED;")
    w( "                sB = PagedDecodeKernels.MASKED;")
    w( "            }")
    w( "            float tA = sA;")
    w( "            float tB = sB;")

def two_probs(pair, pvhalf):
    # a lane's two probabilities into the running sums and the tile's table, then the barrier before the V sums
    w( "            sumA += pA;")
    w( "            sumB += pB;")
    for k, p in enumerate("AB"):
        w(f"            probs[row * {HX} + 2 * {pair}{' + 1' if k else ''}] = " + (f"Half2.fromFloats(p{p}, p{p});" if pvhalf else f"p{p};"))
    w( "            ctx.localBarrier();")

def rescale(accumulators, *sums):
    # where a head's running max grew (the same in every lane): its accumulators and this lane's running sums rescaled
    w( "            if (" + " || ".join(f"n{h} > m{h}" for h in H) + ") { // the same in every lane: rescale to the new running max")
    for h in H:
        w(f"                float c{h} = TornadoMath.exp(m{h} - n{h});")
    for h in H:
        w("                " + " ".join(f"o{h}{d} = o{h}{d} * c{h};" for d in range(accumulators)))
    for line in sums:
        w("                " + line)
    for h in H:
        w(f"                m{h} = n{h};")
    w( "            }")

def per_head(ind, v, step, out, heads="abcd"):
    # one value per lane, lane l holding heads[l & 3]: reduce the lanes of each head (shuffles by 16, 8, 4: lane j then
    # holds heads[j]'s), then every lane reads heads[j]'s from lane j
    for delta in (16, 8, 4):
        w(ind + step.format(d=delta))
    for hi, h in enumerate(heads):
        src = v if hi == 0 else f"ctx.simdShuffleDown({v}, {hi})"
        w(ind + out.format(h=h, b=f"ctx.simdBroadcastFirst({src})"))

def softmax_eight(pvhalf, wv):
    # 2. an 8-token step of eight heads: lane = (token lane >> 2, heads 2 head and 2 head + 1), two scores per lane
    ev, od = H[0::2], H[1::2]
    sel = lambda names: " : ".join(f"head == {j} ? {n}" for j, n in enumerate(names[:-1])) + f" : {names[-1]}"
    w( "            // 2. scores of token lane >> 2, heads 2 head and 2 head + 1; the step's max per head; probabilities")
    two_scores(2, "head")
    per_head("            ", "tA", "tA = TornadoMath.max(tA, ctx.simdShuffleDown(tA, {d}));", "float n{h} = TornadoMath.max(m{h}, {b});", ev)
    per_head("            ", "tB", "tB = TornadoMath.max(tB, ctx.simdShuffleDown(tB, {d}));", "float n{h} = TornadoMath.max(m{h}, {b});", od)
    rescale(ACC, f"sumA = sumA * ({sel(['c' + h for h in ev])});", f"sumB = sumB * ({sel(['c' + h for h in od])});")
    w(f"            float pA = TornadoMath.exp(sA - ({sel(['m' + h for h in ev])}));")
    w(f"            float pB = TornadoMath.exp(sB - ({sel(['m' + h for h in od])}));")
    two_probs("head", pvhalf)

def softmax_one(pvhalf, wv):
    # 2. an 8-token step: lane = (token lane >> 2, head lane & 3), one score per lane
    w( "            // 2. score of token lane >> 2, head lane & 3; the step's max per head; probabilities")
    w( "            int row = lane >> 2;")
    w( "            int rowA = (row * HEADS + head) * (PARTS + 1);")
    w( "            float sA = " + " + ".join(f"dots[rowA + {p}]" for p in range(8)) + ";")
    w( "            sA = PagedDecodeKernels.softCap(sA, cap);")
    w( "            sA = sA + PagedDecodeKernels.alibiBias(partials, params.get(DecodeParams.ALIBI),")
    w( "                    kvHead * groupSize + TornadoMath.min(head0 + head, groupSize - 1), tileStart + row, len - 1);  // ALiBi")
    w( "            if (tileStart + row >= end) {  // finite: see PagedDecodeKernels.MASKED")
    w( "                sA = PagedDecodeKernels.MASKED;")
    w( "            }")
    w( "            float tA = sA;")
    per_head("            ", "tA", "tA = TornadoMath.max(tA, ctx.simdShuffleDown(tA, {d}));", "float n{h} = TornadoMath.max(m{h}, {b});")
    rescale(ACC, "sumA = sumA * (head == 0 ? ca : head == 1 ? cb : head == 2 ? cc : cd);")
    w( "            float pA = TornadoMath.exp(sA - (head == 0 ? ma : head == 1 ? mb : head == 2 ? mc : md));")
    w( "            sumA += pA;")
    w( "            probs[row * HEADS + head] = " + ("Half2.fromFloats(pA, pA);" if pvhalf else "pA;"))
    w( "            ctx.localBarrier();")

def v_phase(pvhalf, wv):
    # 3. the V sums of a tile (16 tokens) or a step (8 tokens at head dim 256)
    q8 = Q8
    if VSPLIT:
        w( "            // 3. V of this lane's 8 tokens 2m + vHalf of the tile weighted by the probabilities, its dims 4 (lane & 15) + {0..3}")
    elif VL:
        w( "            // 3. V of the tile's 16 tokens weighted by the probabilities, this lane's dims 4 vLane + {0..3}")
    elif q8 and wv == 2:
        w(f"            // 3. V of the step's {T} tokens weighted by the probabilities, this lane's dims 4 lane + {{0..3}} and 4 lane + 128 + {{0..3}}")
    elif q8:
        w(f"            // 3. V of the {'tile' if T == 16 else 'step'}'s {T} tokens weighted by the probabilities, this lane's dims 4 lane + {{0..3}}")
    elif VX:
        second = {80: "lane & 7", 96: "lane & 15", 112: "lane < 24 ? lane : lane - 24"}[D]
        w(f"            // 3. V of the tile's 16 tokens weighted by the probabilities, this lane's dims 2 lane + {{0, 1}} and 64 + 2 ({second}) + {{0, 1}}")
    elif wv == 2:
        w( "            // 3. V of the tile's 16 tokens weighted by the probabilities, this lane's dims 2 lane + {0, 1} and 2 lane + 64 + {0, 1}")
    else:
        w( "            // 3. V of the tile's 16 tokens weighted by the probabilities, this lane's dims 2 lane + {0, 1}")
    if pvhalf:   # the tile's 16 products per (head, dim pair) summed in fp16 (__hfma2), then added to the fp32 sums
        w( "            // (VSums.FP16: fp16 products and sums within the tile, added to the fp32 accumulators at its end)")
        for r in range(T):
            for hi, h in enumerate(H):
                w(f"            Half2 p{h}{r} = probs[{r * len(H) + hi}];")
            for h in H:
                for k in range(wv):
                    if r == 0:
                        w(f"            Half2 t{h}{k} = Half2.mult(p{h}0, vw0{k});")
                    else:
                        w(f"            t{h}{k} = Half2.fma(p{h}{r}, vw{r}{k}, t{h}{k});")
        for h in H:
            w("            " + " ".join(f"o{h}{2 * k} += Half2.lowFloat(t{h}{k}); o{h}{2 * k + 1} += Half2.highFloat(t{h}{k});"
                                   for k in range(wv)))
    elif VSPLIT:
        for m in range(T // 2):
            w(f"            int pRow{m} = ({2 * m} + vHalf) * HEADS;")
            for hi, h in enumerate(H):
                w(f"            float p{h}{m} = probs[pRow{m} + {hi}];")
            decode(vword(m, 0), [f"y{m}{c}" for c in range(4)], "            ")
            for h in H:
                w("            " + " ".join(f"o{h}{d} += p{h}{m} * y{m}{d};" for d in range(ACC)))
    else:
        for r in range(T):
            for hi, h in enumerate(H):
                w(f"            float p{h}{r} = probs[{r * len(H) + hi}];")
            if q8:
                for k in range(wv):
                    decode(vword(r, k), [f"y{r}{4 * k + c}" for c in range(4)], "            ")
            else:
                for k in range(wv):
                    conv(f"vw{r}{k}", f"y{r}{2 * k}", f"y{r}{2 * k + 1}", "            ")
            for h in H:
                w("            " + " ".join(f"o{h}{d} += p{h}{r} * y{r}{d};" for d in range(ACC)))

def whole(one, tile):
    # a tile (or step) of TILE (HALF_TILE) rows below the partition's end and inside one block: its rows lie at constant offsets
    return f"({one} ? 1 : 0) + ({tile} + {'TILE' if T == 16 else 'HALF_TILE'} <= end ? 1 : 0) == 2"

def vword(r, k):
    # the name of a lane's V word k of token r (8-bit)
    return f"vw{r}" if WV8 == 1 else f"vw{r}{k}"

def k_loads(ind, tile, declare):
    if not Q8:   # fp16: row by row (the constant-offset path took NVRTC from 168 to 191 registers: NOTES.md, w1)
        located(ind, "oneBlock", "base", tile, "kRows", [(f"kRow{i}", f"group + {4 * i}" if i else "group") for i in range(T // 4)],
                kLaneOff(), "int " if declare else "")
        for i in range(T // 4):
            for j in range(D // 16):
                pair_load(ind, declare, f"kw{i}{j}", "kPool", f"kRow{i}", 16 * j)
        return
    # 8-bit: this lane's K words of the tile at `tile` (rows group + 4i): from one address at constant offsets when
    # the tile is whole and in one block (the loads' immediates), else row by row through the block table
    nt, wk, row = T // 4, S // 32, D // 4   # tokens, K words per token (padded), words per row
    hd = "HEAD_DIM" if D == 128 else str(D)
    if declare:
        for i in range(nt):
            w(ind + " ".join(f"int kw{i}{j};" for j in range(wk)))
    w(f"{ind}if ({whole('oneBlock', tile)}) {{")
    w(f"{ind}    int kAt = ((base + group * {hd}) >> 2) + part;")
    for i in range(nt):
        for j in range(wk):
            off = f"{4 * i * row + 8 * (j - 1)} + kLast" if KPAD and j == wk - 1 else f"{4 * i * row + 8 * j}"
            w(f"{ind}    kw{i}{j} = kPool.get(kAt + {off});")
    w(f"{ind}}} else {{")
    for i in range(nt):
        w(f"{ind}    int kRow{i} = {rowExpr('base', 'oneBlock', tile, f'group + {4*i}')} + {kLaneOff()};")
    for i in range(nt):
        for j in range(wk):
            off = f"{8 * (j - 1)} + kLast" if KPAD and j == wk - 1 else f"{8*j}"
            w(f"{ind}    kw{i}{j} = kPool.get(kRow{i} + {off});")
    w(f"{ind}}}")

def v_loads(ind):
    # this lane's V words of the tile's (step's) rows, as k_loads
    if not Q8:
        located(ind, "vOne", "vBase", "tileStart", "vRows", [(f"vRow{r}", str(r)) for r in range(T)], vLaneOff(), "int ")
        for r in range(T):
            pair_load(ind, True, f"vw{r}0", "vPool", f"vRow{r}", None)
            if VX:
                pair_load(ind, True, f"vw{r}1", "vPool", f"vRow{r}", "vSecond")
            for k in range(1, D // 64):
                pair_load(ind, True, f"vw{r}{k}", "vPool", f"vRow{r}", 64 * k)
        return
    if VSPLIT:   # lane l: word l + 32m of the tile's rows, i.e. word l & 15 of token 2m + (l >> 4)
        w(ind + " ".join(f"int {vword(m, 0)};" for m in range(T // 2)))
        w(f"{ind}if ({whole('vOne', 'tileStart')}) {{")
        w(f"{ind}    int vAt = (vBase >> 2) + lane;")
        for m in range(T // 2):
            w(f"{ind}    {vword(m, 0)} = vPool.get(vAt + {32 * m});")
        w(f"{ind}}} else {{")
        for m in range(T // 2):
            w(f"{ind}    int vRow{m} = {rowExpr('vBase', 'vOne', 'tileStart', f'{2 * m} + vHalf')} + (lane & 15);")
        for m in range(T // 2):
            w(f"{ind}    {vword(m, 0)} = vPool.get(vRow{m});")
        w(f"{ind}}}")
        return
    wv, row = WV8, D // 4
    w(ind + " ".join(f"int {vword(r, k)};" for r in range(T) for k in range(wv)))
    w(f"{ind}if ({whole('vOne', 'tileStart')}) {{")
    w(f"{ind}    int vAt = (vBase >> 2) + {vLaneOff()};")
    for r in range(T):
        for k in range(wv):
            w(f"{ind}    {vword(r, k)} = vPool.get(vAt + {row * r + 32 * k});")
    w(f"{ind}}} else {{")
    for r in range(T):
        w(f"{ind}    int vRow{r} = {rowExpr('vBase', 'vOne', 'tileStart', str(r))} + {vLaneOff()};")
    for r in range(T):
        for k in range(wv):
            w(f"{ind}    {vword(r, k)} = vPool.get(vRow{r}{f' + {32 * k}' if k else ''});")
    w(f"{ind}}}")

def pair_load(ind, declare, var, pool, row, off):
    # the 32-bit load of the fp16 pair at element offset row + off (off: None, a constant or a variable); in the bf16
    # bodies the pool's word holding those two elements (element offsets are even: word = element >> 1)
    if BF:
        at = f"{row} >> 1" if off is None else f"({row} + {off}) >> 1" if isinstance(off, str) else f"({row} >> 1) + {off // 2}"
        w(f"{ind}{'int ' if declare else ''}{var} = {pool}.get({at});")
    else:
        w(f"{ind}{'Half2 ' if declare else ''}{var} = {pool}.getHalf2({row}{'' if off is None else f' + {off}'});")

def located(ind, one, base, tile, rows, targets, laneOff, decl):
    # fp16: the pool offsets of a tile's rows (rows past the end: the tile's first row again), each target row plus this
    # lane's offset. Lane r < the tile's rows locates row r (in one block at a stride of headDim from the tile's first,
    # else through the block table) and the rows meet in local memory: the per-row branches this replaces were
    # if-converted by NVRTC, so every tile issued the block-table path of all its rows in every lane, predicated off
    # (14.8% of the fp16 kernel's instructions; benchmarks/NOTES.md, forty-ninth session, part two)
    w(f"{ind}if (lane < {'TILE' if T == 16 else 'HALF_TILE'}) {{")
    w(f"{ind}    int r = {tile} + lane < end ? lane : 0;")
    w(f"{ind}    {rows}[lane] = {one} ? {base} + r * headDim : PagedDecodeKernels.rowOffset(blockTables, tableRow, {tile} + r, layerBase,")
    w(f"{ind}            blockStride, headStride, headDim, blockSize, kvHead);")
    w(f"{ind}}}")
    w(f"{ind}ctx.localBarrier();")
    for name, r in targets:
        w(f"{ind}{decl}{name} = {rows}[{r}] + {laneOff};")

def rowExpr(base, one, tile, r):
    # the 8-bit twins' word offset of a row (rows are whole words; the fp16 bodies locate their rows with `located`)
    e = f"tileRow(blockTables, tableRow, {base}, {one}, {tile}, {r}, start, end, layerBase, blockStride, headStride, headDim, blockSize, kvHead)"
    return f"({e} >> 2)"

def kLaneOff():
    return "part" if Q8 else "2 * part"

def vLaneOff():
    return ("vLane" if VL else "lane") if Q8 else "2 * lane"

def decode(word, names, ind):
    # code c of a word is byte c (the pool's byte i is element i)
    for c, n in enumerate(names):
        src = word if c == 0 else f"({word} >> {8 * c})"
        if DEC == "i2f":   # the byte, sign-extended by the cast: >> would be a logical shift on PTX (and Graal folds
            # (byte) (w >> 24) into w >> 24), so the bytes are brought down by >>>
            w(f"{ind}float {n} = (byte) " + (word if c == 0 else f"({word} >>> {8 * c})") + ";")
        else:
            w(f"{ind}float {n} = FP8.{DEC}ToFloat((byte) {src});")

def conv(var, a, b, ind):
    if BF:   # a word's low half is its first element; (short) keeps a half's bits, which bf16ToFloat shifts into place
        w(f"{ind}float {a} = BFloat16.bf16ToFloat((short) {var});")
        w(f"{ind}float {b} = BFloat16.bf16ToFloat((short) ({var} >>> 16));")
        return
    w(f"{ind}float {a} = Half2.lowFloat({var});")
    w(f"{ind}float {b} = Half2.highFloat({var});")

body(False)
w()
w("    /**")
w("     * {@code attentionF16x2} under a name of its own, which tornado-config/nvrtc/include/paged-attention-bounds.h bounds to 128")
w("     * registers (four one-warp groups per SM sub-partition instead of three, with spills): the body of the plans whose")
w("     * grids fill waves of 2112 groups much better than waves of 1584 ({@code DecodeGrid.boundedTwinPays}).")
w("     */")
body(False, bounded=True)
w()
body(False, pvhalf=True)
w()
body(False, heads=8)
w()
body(False, pvhalf=True, heads=8)
def fp16_bodies(dim):
    # the fp16 body at head dim `dim` and its twin with a tile's V sums in fp16 pairs
    for pvhalf in (False, True):
        w()
        body(False, pvhalf=pvhalf, dim=dim)

for dim in (64, 96, 256):
    fp16_bodies(dim)
w()
w("    /**")
w("     * {@code attentionF16x2D256} under a name of its own, which tornado-config/nvrtc/include/paged-attention-bounds.h bounds")
w("     * to 128 registers (for groups of three or more heads 16 one-warp groups per SM instead of 12; no spills by nvcc 13.0):")
w("     * the body of the plans whose grids fill waves of 2112 groups much better than waves of 1584")
w("     * ({@code DecodeGrid.boundedTwinPays}).")
w("     */")
body(False, dim=256, bounded=True)
for dec in ("i2f", "e4m3", "e5m2"):
    w()
    body(True, dec)
for dec in ("i2f", "e4m3", "e5m2"):
    w()
    body(True, dec, dim=64)
    w()
    body(True, dec, dim=96)
    w()
    body(True, dec, dim=256)
    w()
    body(True, dec, heads=8)
for dim in (80, 112):
    fp16_bodies(dim)
    for dec in ("i2f", "e4m3", "e5m2"):
        w()
        body(True, dec, dim=dim)
w()
w("    // bf16 pools: the fp16 walks, two elements per IntArray word (bf16Body)")
for dim, heads in ((128, 4), (128, 8), (64, 4), (80, 4), (96, 4), (112, 4), (256, 4)):
    w()
    body(False, dim=dim, heads=heads, bf16=True)
print(HEAD + "\n".join(out) + "\n}")
