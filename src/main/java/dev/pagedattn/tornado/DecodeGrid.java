package dev.pagedattn.tornado;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.kernels.ChunkDecodeKernels;
import dev.pagedattn.kernels.DecodeParams;
import dev.pagedattn.kernels.HeadPairDecodeKernels;
import dev.pagedattn.kernels.HeadQuadDecodeKernels;
import dev.pagedattn.kernels.LatentDecodeKernels;
import dev.pagedattn.kernels.WarpQuadDecodeKernels;
import dev.pagedattn.kernels.PagedDecodeKernels;
import dev.pagedattn.kernels.StreamDecodeKernels;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * How one decode step is cut into work-groups: the attention kernel, the head tiles, and the
 * split-K partitions.
 *
 * <p>The rule is {@link #plan(AttentionSpec, int, int, long, boolean, int, int, Kernel)}; see
 * benchmarks/NOTES.md for the measurements behind the constants. Long contexts at small batch
 * (1 x 32k) and ragged batches then spread evenly over the GPU, and the merge kernel combines the
 * partitions. With one partition the attention kernel writes the output itself (the fused variant).
 *
 * @param headTiles       query heads of a KV head are handled in tiles of up to 8 (the stream kernels: 4, one
 *                        work-group per tile)
 * @param partitionTokens tokens per partition (balanced grid: tokens of one work-group's range)
 * @param maxPartitions   partitions of the longest sequence
 * @param numGroups       work-groups of the attention kernel
 * @param tilesPerGroup   balanced grid (the stream kernels): tiles of 16 tokens each work-group reads, across
 *                        (sequence, KV head) pairs ({@link DecodeParams#TILES_PER_GROUP}); 0 for the partition grid
 * @param kvHeads         the grid's KV heads (balanced grid): numKvHeads, times headTiles for the stream kernels,
 *                        whose grid counts each (KV head, head tile) as a KV head of its own
 */
public record DecodeGrid(Kernel kernel, int headTiles, int partitionTokens, int maxPartitions, int numGroups,
                         int localSize, int tilesPerGroup, int kvHeads) {
    /** Which KernelContext attention kernel runs: one vocabulary, resolved once per plan by {@link #resolve}. */
    public enum Kernel {
        /** The measured best for the device's backend and the shape ({@link #resolve}). */
        AUTO,
        /**
         * {@link dev.pagedattn.kernels.ChunkDecodeKernels}: chunks of tokens, partial dots and the
         * softmax through local memory (one exp per token and head); packed 32-bit fp16 loads on the
         * CUDA backend. Any backend; groups of 1-8 heads, head dims 16-256 (powers of two).
         */
        CHUNK,
        /**
         * {@link dev.pagedattn.kernels.StreamDecodeKernels}: one warp per work-group streaming tiles of 16
         * tokens, each lane loading (32-bit {@code getHalf2}) only the K/V words it multiplies, a phase
         * ahead. CUDA backend, fp16, head dim 128, any group (four query heads per work-group).
         */
        STREAM,
        /**
         * {@link dev.pagedattn.kernels.WarpQuadDecodeKernels}: four heads per work-item, warp-shuffle
         * score reductions, no barrier in the token loop (PTX and CUDA: TornadoVM's OpenCL backend does
         * not implement the shuffles).
         */
        WARP,
        /** {@link dev.pagedattn.kernels.HeadQuadDecodeKernels}: four heads per work-item, any backend and head dim. */
        QUADS,
        /** {@link dev.pagedattn.kernels.HeadPairDecodeKernels}: two heads per work-item, for groups of 1-2 heads. */
        PAIRS,
        /**
         * {@link dev.pagedattn.kernels.LatentDecodeKernels}: latent caches (MLA), eight query heads per work-group over
         * rows staged once in local memory for scores and values. Any backend; the only kernel of a latent cache.
         */
        LATENT;

        public static Kernel parse(String name) {
            for (Kernel k : values()) {
                if (k.name().equalsIgnoreCase(name)) {
                    return k;
                }
            }
            throw new IllegalArgumentException("pagedattn.tornado.kernel=" + name + " is not one of auto, stream, chunk, warp, quads, pairs, latent");
        }
    }

    /** The attention kernel, {@code -Dpagedattn.tornado.kernel=auto|stream|chunk|warp|quads|pairs}. */
    public static final Kernel KERNEL = Kernel.parse(System.getProperty("pagedattn.tornado.kernel", "auto"));
    /** Work-groups that fill an H100 (132 SMs x 4 resident work-groups of the quad kernel) once. */
    public static final int TARGET_GROUPS = Integer.getInteger("pagedattn.tornado.targetGroups", 528);
    /**
     * Smallest partition worth a work-group of its own for the quad, pair and chunk kernels (and prefill's split,
     * {@link PrefillGrid}), {@code -Dpagedattn.tornado.minPartitionTokens}.
     */
    public static final int MIN_PARTITION_TOKENS = Integer.getInteger("pagedattn.tornado.minPartitionTokens", 512);
    /**
     * Smallest partition of the warp kernel (and its 8-bit twin), {@code -Dpagedattn.tornado.warpMinPartitionTokens}: its
     * small grids (fewer than 264 work-groups unsplit: one or a few short sequences) are cut into partitions down to this
     * many tokens. Measured on an H200 through TornadoVM's PTX backend (benchmarks/NOTES.md, twenty-fifth session, g2;
     * `bench`, min us, floor 512 / 256 / 128 / 64): 1 x 1k 50-58 / 39-40 / 28-38 / 30, 1 x 4k 50-58 / 40-41 / 30-32 / 38,
     * 8 x 1k 55-58 / 40-42 / 37-41 / 44, 1 x 8k 54-60 / 40-52 / 42-46, 16 x 1k 71-77 / 58-59 / 56-57.
     */
    public static final int WARP_MIN_PARTITION_TOKENS = Integer.getInteger("pagedattn.tornado.warpMinPartitionTokens", 128);
    /**
     * Work-groups (one warp each) of the stream kernel that fill an H200 once: 132 SMs x 12 resident warps
     * (bodies of 129-168 registers: three warps per SM sub-partition; 169 would leave two).
     */
    public static final int STREAM_TARGET_GROUPS = Integer.getInteger("pagedattn.tornado.streamTargetGroups", 1584);
    /**
     * The same for the stream kernel's bodies of at most 128 registers, four warps per SM sub-partition: head dim 64
     * ({@code attentionF16x2D64}, 127 registers when measured; 104 by nvcc 13.0 since the fifty-first session), head dim
     * 256 for groups of one or two heads, the fp16 G8 body at 128, and the 8-bit bodies {@link #leanStreamBody} names:
     * 132 SMs x 16 warps. At head dim 64 on an H200 4-8% faster than 1584 on cells of 131k tokens and more, equal within
     * noise on the small ones (benchmarks/NOTES.md, eighteenth session). The same property sets both.
     */
    public static final int STREAM_TARGET_GROUPS_LEAN = Integer.getInteger("pagedattn.tornado.streamTargetGroups", 2112);
    /**
     * The PTX JIT's register cap for the INT8 stream twins at head dims 112 and 128 with up to four query heads per KV
     * head ({@link #ptxJitFlags}), {@code -Dpagedattn.tornado.ptxInt8MaxRegisters}; 0 leaves those plans the
     * process-wide flags of tornado-config/ptx.args (128) and the lean grid, as before the sixty-third session.
     */
    public static final int PTX_INT8_MAX_REGISTERS = Integer.getInteger("pagedattn.tornado.ptxInt8MaxRegisters", 168);
    /**
     * Whether plans may choose the stream kernel's bounded fp16 twin ({@link #boundedTwinPays});
     * {@code -Dpagedattn.tornado.boundedTwin=false} keeps the unbounded body everywhere.
     */
    public static final boolean BOUNDED_TWIN = !"false".equals(System.getProperty("pagedattn.tornado.boundedTwin"));
    /** How much better the bounded twin's grid must fill its waves than the unbounded one's ({@link #boundedTwinPays}). */
    public static final double BOUNDED_FILL_GAIN = 1.10;
    /** Smallest partition of the stream kernel (four of its 16-token tiles). */
    public static final int STREAM_MIN_PARTITION_TOKENS = Integer.getInteger("pagedattn.tornado.streamMinPartitionTokens", 64);
    /**
     * Shortest partition the stream kernel's whole-wave split makes (large uniform batches): shorter
     * ones cost more in start-up and merge than the fuller waves gain (H200: 128 x 1k and 256 x 1k 12%
     * slower in three partitions of 352 tokens), {@code -Dpagedattn.tornado.streamWavePartitionTokens}. Half of it for the G8
     * bodies ({@link #wavePartitionTokens}).
     */
    public static final int STREAM_WAVE_PARTITION_TOKENS = Integer.getInteger("pagedattn.tornado.streamWavePartitionTokens", 1024);
    /**
     * Longest context the whole-wave split applies to: from 16k tokens on, two thirds of a wave of
     * one-warp groups already read at 98-99% of the CUDA backend's read probe (H200, 128 and 256 x 16k
     * and 32k), so those grids stay unsplit.
     */
    public static final int STREAM_WAVE_MAX_CONTEXT = 8192;
    /**
     * The stream kernels' grid for ragged batches, {@code -Dpagedattn.tornado.balanced} (default true): balanced
     * ({@link #balanced}), every work-group reading the same number of tiles cut from all (sequence, KV head)
     * pairs laid end to end; false: the partition grid's ragged rule. Measured on an H200 (benchmarks/NOTES.md,
     * k2): 64 sequences of 1k-32k tokens 1.17x faster balanced; uniform cells within 3% either way (256 x 1k 3%
     * slower balanced), so uniform batches keep the partition grid.
     */
    public static final boolean BALANCED = !"false".equals(System.getProperty("pagedattn.tornado.balanced"));
    /**
     * Work-groups of the latent kernel that a split grid aims for, {@code -Dpagedattn.tornado.latentTargetGroups}: one
     * wave of an H100's or H200's 132 SMs x 4 resident work-groups (123 registers, 46 KB of local memory each). Fewer,
     * longer partitions also halve the merge's reads; on H100s 528 took 0.85-1.0x the time of the first version's two
     * and a half waves (1320) on five cells and 0.99-1.06x on a ragged batch, in two runs (benchmarks/NOTES.md,
     * forty-eighth session).
     */
    public static final int LATENT_TARGET_GROUPS = Integer.getInteger("pagedattn.tornado.latentTargetGroups", 528);
    /** Smallest partition of the latent kernel, {@code -Dpagedattn.tornado.latentMinPartitionTokens}: 16 of its chunks. */
    public static final int LATENT_MIN_PARTITION_TOKENS = Integer.getInteger("pagedattn.tornado.latentMinPartitionTokens", 128);
    /** Waves of {@code targetGroups} work-groups that a split grid aims for (load balance). */
    public static final int WAVES = 4;

    /**
     * The grid for a step over {@code batch} of pools of {@code dtype}; {@code split=false} forces one partition (the
     * fused variant).
     */
    public static DecodeGrid plan(AttentionSpec spec, DecodeBatch batch, boolean split, Kernel kernel, KvDtype dtype) {
        return plan(spec, batch, split, kernel, dtype, false, false);
    }

    /**
     * The grid for a step over {@code batch}, for the stream kernel's bounded fp16 twin when {@code bounded}
     * ({@link #boundedTwinPays}: waves of {@link #STREAM_TARGET_GROUPS_LEAN}), with a tile's V sums in fp16 pairs when
     * {@code halfV} ({@code VSums.FP16}).
     */
    public static DecodeGrid plan(AttentionSpec spec, DecodeBatch batch, boolean split, Kernel kernel, KvDtype dtype, boolean bounded,
                                  boolean halfV) {
        return plan(spec, batch, split, kernel, dtype, bounded, halfV, Backend.CUDA);
    }

    /** As above, on {@code backend}, whose compiler decides some bodies' registers ({@link #leanStreamBody}). */
    public static DecodeGrid plan(AttentionSpec spec, DecodeBatch batch, boolean split, Kernel kernel, KvDtype dtype, boolean bounded,
                                  boolean halfV, Backend backend) {
        int[] spans = spans(batch);
        return plan(spec, batch.numSeqs(), java.util.Arrays.stream(spans).max().orElse(0),
                java.util.Arrays.stream(spans).asLongStream().sum(), pairTiles(spans), split,
                bounded ? STREAM_TARGET_GROUPS_LEAN : targetGroups(kernel, spec, dtype, halfV, backend), minPartitionTokens(kernel), kernel);
    }

    /**
     * Whether a plan for {@code batch} should run the stream kernel's fp16 twin bounded to 128 registers
     * ({@code StreamDecodeKernels.attentionF16x2Bounded}: 16 one-warp groups per SM instead of 12; nvcc 13 gives it 36 / 56
     * bytes of spill stores / loads; {@code attentionF16x2D256Bounded} at head dim 256, no spills) on grids of
     * {@link #STREAM_TARGET_GROUPS_LEAN}: where the body has that twin (head dim 128 with up to four query heads per KV head,
     * or 256; fp32 V sums), and the bounded grid, cut into no more partitions, fills its
     * waves at least {@link #BOUNDED_FILL_GAIN} times as well as the unbounded grid fills waves of
     * {@link #STREAM_TARGET_GROUPS}. More partitions cost more than the fuller wave gains: 128 x 1k and 128 x 2k in two
     * partitions on the twin's grid (2048 groups, 97% of one wave, against 1024 unbounded in 65% of one) took 1.10x and
     * 1.05x the time on an H100 (benchmarks/NOTES.md, fifty-fourth session). Measured on an H100 (benchmarks/NOTES.md,
     * fiftieth session): at 256 x 1k (2048 groups, 65% of two waves of 1584 against 97% of one wave of 2112) the twin took
     * 0.84-0.86x the time; at 512 x 1k (86% of three waves against 97% of two) 1.00x, both at that card's memory limit;
     * on the grids that fill their waves either way (8 x 32k, 32 x 8k, 64 x 4k, 64 x 8k, 128 x 4k, 1 x 32k, 8 x 8k) it
     * took 1.01-1.09x, so those keep the unbounded body. The same at head dim 256 (fifty-second session, the bound on the
     * body itself): 256 x 1k 0.84x, the filled grids 1.02-1.05x. The bound is NVRTC's only through tornado-config/nvrtc
     * (bin/nvrtc-bounds.sh), so the caller asks this only where it is in force.
     */
    public static boolean boundedTwinPays(AttentionSpec spec, DecodeBatch batch, boolean split, KvDtype dtype, boolean halfV) {
        if (!BOUNDED_TWIN || dtype != KvDtype.FP16 || !StreamDecodeKernels.hasBoundedTwin(spec.headDim(), spec.groupSize(), halfV)
                || leanStreamBody(spec, dtype, halfV, Backend.CUDA)) {  // (a body that fits 128 registers unbounded already runs on the lean grid)
            return false;
        }
        DecodeGrid unbounded = plan(spec, batch, split, Kernel.STREAM, dtype, false, halfV);
        DecodeGrid bounded = plan(spec, batch, split, Kernel.STREAM, dtype, true, halfV);
        return bounded.maxPartitions() <= unbounded.maxPartitions()
                && waveFill(bounded.numGroups(), STREAM_TARGET_GROUPS_LEAN) >= BOUNDED_FILL_GAIN * waveFill(unbounded.numGroups(), STREAM_TARGET_GROUPS);
    }

    /** The share of {@code ceil(groups / slots)} waves of {@code slots} work-groups that {@code groups} fill. */
    static double waveFill(long groups, int slots) {
        return (double) groups / ((groups + slots - 1) / slots * (long) slots);
    }

    /**
     * The tokens each sequence of {@code batch} is walked over: its length, or with a sliding window the tokens from its
     * first visible one rounded down to {@link DecodeParams#WALK_ALIGN} ({@link PagedDecodeKernels#walkOrigin}). The grid
     * is planned on these, so a windowed step over long contexts is as many work-groups as one over the window.
     */
    public static int[] spans(DecodeBatch batch) {
        int[] spans = batch.contextLens();
        for (int i = 0; i < spans.length; i++) {
            spans[i] = span(spans[i], batch.window());
        }
        return spans;
    }

    /**
     * The block tables the kernels get for {@code batch}, {@code [numSeqs][width]}: the batch's own, or for a windowed
     * batch each row from the block of its walk origin on ({@link PagedDecodeKernels#firstTableBlock}), so that a window of
     * W tokens over long contexts sends about W / blockSize columns per sequence, not the context's.
     */
    public record Tables(int[] flat, int width) {
    }

    /** {@link Tables} for {@code batch}. */
    public static Tables tables(DecodeBatch batch) {
        if (!batch.windowed()) {
            return new Tables(batch.kernelBlockTables(), batch.maxBlocksPerSeq());
        }
        int n = batch.numSeqs();
        int bs = batch.blockSize();
        int[] from = new int[n];
        int width = 1;
        for (int i = 0; i < n; i++) {
            from[i] = PagedDecodeKernels.firstTableBlock(batch.firstVisible(i), bs);
            width = Math.max(width, (batch.contextLen(i) + bs - 1) / bs - from[i]);
        }
        int[] flat = new int[n * width];
        java.util.Arrays.fill(flat, dev.pagedattn.cache.BlockPool.NO_BLOCK);
        for (int i = 0; i < n; i++) {
            int used = (batch.contextLen(i) + bs - 1) / bs - from[i];
            for (int j = 0; j < used; j++) {
                flat[i * width + j] = batch.kernelBlock(i, from[i] + j);   // a released column: the row's first held block
            }
        }
        return new Tables(flat, width);
    }

    /** {@link #spans}' rule for one sequence of {@code len} tokens. */
    static int span(int len, int window) {
        return len - PagedDecodeKernels.walkOrigin(DecodeBatch.firstVisible(len, window));
    }

    /** The stream kernel's tiles of every sequence walked over {@code spans} (one KV head's). */
    private static long pairTiles(int[] spans) {
        long pairTiles = 0;
        for (int span : spans) {
            pairTiles += tiles(span);
        }
        return pairTiles;
    }

    /**
     * The stream kernels' balanced grid for {@code batch}, whatever the rule would choose (tests; {@link #plan} uses it
     * for ragged batches): {@code R = max(minPartitionTokens / 16, ceil(tiles / targetGroups))} tiles per work-group,
     * tiles counting every (sequence, KV head) pair's; {@code ceil(tiles / R)} work-groups; a pair of {@code T}
     * tiles spans at most {@code ceil((T - 1) / R) + 1} of them, its partitions.
     */
    public static DecodeGrid balanced(AttentionSpec spec, DecodeBatch batch, int targetGroups, int minPartitionTokens) {
        int[] spans = spans(batch);
        return balanced(spec, java.util.Arrays.stream(spans).max().orElse(0), pairTiles(spans), targetGroups, minPartitionTokens);
    }

    private static DecodeGrid balanced(AttentionSpec spec, int maxContextLen, long pairTiles, int targetGroups, int minPartitionTokens) {
        int headTiles = StreamDecodeKernels.headTiles(spec.groupSize(), spec.headDim());
        long allTiles = pairTiles * spec.numKvHeads() * headTiles;
        long r = Math.max(Math.max(1, minPartitionTokens / StreamDecodeKernels.TILE), (allTiles + targetGroups - 1) / targetGroups);
        int groups = (int) ((allTiles + r - 1) / r);
        long longest = tiles(maxContextLen);
        int parts = (int) ((longest - 1 + r - 1) / r + 1);
        return new DecodeGrid(Kernel.STREAM, headTiles, (int) Math.min(Integer.MAX_VALUE, r * StreamDecodeKernels.TILE), parts,
                groups, StreamDecodeKernels.LOCAL, (int) r, spec.numKvHeads() * headTiles);
    }

    /** Tiles of the stream kernel over {@code contextLen} tokens. */
    static long tiles(int contextLen) {
        return (contextLen + StreamDecodeKernels.TILE - 1) / StreamDecodeKernels.TILE;
    }

    /** The grid for {@code numSeqs} sequences of {@code contextLen} tokens each (fp16 pools). */
    public static DecodeGrid plan(AttentionSpec spec, int numSeqs, int contextLen, boolean split) {
        return plan(spec, numSeqs, contextLen, (long) numSeqs * contextLen, numSeqs * tiles(contextLen), split,
                targetGroups(KERNEL, spec, KvDtype.FP16), minPartitionTokens(KERNEL), KERNEL);
    }

    /**
     * Work-groups that fill the GPU once with {@code kernel}'s groups for {@code spec} over pools of {@code dtype}:
     * one-warp groups for STREAM (more of them for the bodies of {@link #leanStreamBody}),
     * else four-warp ones.
     */
    public static int targetGroups(Kernel kernel, AttentionSpec spec, KvDtype dtype) {
        return targetGroups(kernel, spec, dtype, false);
    }

    /** As above, for the fp16 bodies whose tile's V sums are fp16 pairs when {@code halfV} ({@code VSums.FP16}). */
    public static int targetGroups(Kernel kernel, AttentionSpec spec, KvDtype dtype, boolean halfV) {
        return targetGroups(kernel, spec, dtype, halfV, Backend.CUDA);
    }

    /** As above, for the stream bodies as {@code backend} compiles them ({@link #leanStreamBody}). */
    public static int targetGroups(Kernel kernel, AttentionSpec spec, KvDtype dtype, boolean halfV, Backend backend) {
        if (kernel == Kernel.LATENT) {
            return LATENT_TARGET_GROUPS;
        }
        if (kernel != Kernel.STREAM) {
            return TARGET_GROUPS;
        }
        return leanStreamBody(spec, dtype, halfV, backend) ? STREAM_TARGET_GROUPS_LEAN : STREAM_TARGET_GROUPS;
    }

    /**
     * Whether the stream body for {@code spec} and {@code dtype} runs faster on grids of 2112 one-warp groups (16 per SM)
     * than of 1584: the bodies of at most 128 registers (nvcc 13.0 on TornadoVM's printed CUDA C), head dim 64 (fp16: 104;
     * 8-bit: 128); head dim 256 in 8 bits (128), and in fp16 for groups of one or two query heads per KV head (96 and 108,
     * Gemma's usual groups): for larger groups NVRTC gives the body 144 registers (ncu, H100; nvcc 142, three heads 128),
     * 12 groups per SM, and on the lean grid it took 1.21-1.23x the time of the grid of 1584 (H100, benchmarks/NOTES.md,
     * fifty-second session; where 1584 misses a wave by much, {@link #boundedTwinPays} runs its bounded twin on 2112); the
     * 8-bit twins at 128 for groups of one or two query heads per KV head (126-128; the body's other heads compiled away);
     * with one query head per KV head (MHA) head dim 80 (fp16 117, 8-bit 128) and the 8-bit twins at 96 (127). Measured on an H200 (benchmarks/NOTES.md, twentieth session), on cells of
     * 262k tokens and more: 8-bit at 128 1.08-1.15x (MHA, INT8 and FP8; groups of two, FP8), MHA at 80 1.06-1.10x in fp16
     * and 1.08-1.14x in INT8, FP8 at 96 1.05-1.13x; level at 256 x 1k. But FP8 at 112 (INT8 there: 127 registers) 0.83x,
     * so 112 keeps 1584, as do fp16 at 96, 112 and 128 (136-168 registers) and larger groups (146-168), but for the fp16
     * G8 body at 128 (Llama-3-70B's groups of eight; groups of five to eight heads) with fp32 V sums: 128 registers (nvcc
     * 13.0; its fp16-V-sums twin 142), and on the lean grid 0.89-0.95x the time of the grid of 1584 (H100, two rounds:
     * 8 x 32k, 64 x 8k and 128 x 4k 0.95x, 256 x 1k 0.89-0.90x; benchmarks/NOTES.md, fifty-third session).
     * {@code halfV}: the fp16 bodies' tile V sums in fp16 pairs ({@code VSums.FP16}). The bf16 bodies follow fp16's
     * rule by their registers (nvcc 13.0: 112 at 64, 108 at 256 with groups of two, 126 at 80 with MHA; 132-152 on 1584),
     * but for their G8 body (155), which runs on 1584: on an H100 a bf16 step took 0.99-1.00x fp16's time with groups of
     * four and 1.06-1.09x with groups of eight (benchmarks/NOTES.md, sixty-ninth session).
     * <p>{@code backend}: the rule above is the CUDA backend's (NVRTC's registers). On PTX (the driver's JIT allocates
     * them) the INT8 twins at head dims 80 to 128 also run on the lean grid wherever one work-group holds a KV head's
     * query heads: up to eight at 128 (the G8 body), up to four at 80 and 96; but at 112 and 128 with up to four heads
     * (the four-head bodies) they run on 1584 groups under a JIT cap of 168 registers instead ({@link #widePtxInt8}),
     * which measured faster still (sixty-third and sixty-sixth sessions; the times that follow are at the cap of 128).
     * On an H100 through TornadoVM's PTX backend, on cells of 262k tokens and more, the time on 2112 groups over the
     * time on 1584 was: at 128 with groups of four (Llama-3-8B's, Mistral's) 0.94-0.96x in two rounds, 1.01x at 256 x
     * 1k, while 2640 took 0.96-1.13x and 1056 about 1.13x (benchmarks/NOTES.md, sixty-first session); at 128 with
     * groups of eight (Llama-3-70B's) 0.92-0.95x in two rounds, 2640 0.94-1.16x; at 80 and 96 with groups of four
     * 0.92-0.98x in two rounds, at 112 0.94-0.95x; at 96 and 112 with groups of two 0.89-0.97x and at 112 with one
     * 0.88-0.94x (one round). At 96 and 112 with groups of eight (two work-groups of four heads per KV head)
     * 0.95-1.01x, so those keep 1584, as do groups of sixteen at 128 (two G8 work-groups, not timed; sixty-second
     * session). The INT8 twins at 64 (groups of four) and 256 (groups of two), lean by the CUDA rule, took 0.89-0.96x
     * and 0.92-0.99x on 2112 on PTX too, over two rounds (sixty-third session). On the CUDA backend the 8-bit twins
     * took 1.01-1.20x the time of 1584 on 2112 (FP8 at 128 with groups of four, sixty-first session; INT8 and FP8 at
     * 128 with groups of eight, sixty-second), so there they keep 1584. The range 80..128 holds the stream kernels'
     * head dims 80, 96, 112 and 128.
     */
    static boolean leanStreamBody(AttentionSpec spec, KvDtype dtype, boolean halfV, Backend backend) {
        int d = spec.headDim();
        if (widePtxInt8(spec, dtype, backend)) {
            return false;
        }
        if (backend == Backend.PTX && dtype == KvDtype.INT8 && StreamDecodeKernels.headTiles(spec.groupSize(), d) == 1
                && d >= StreamDecodeKernels.HEAD_DIM_80 && d <= StreamDecodeKernels.HEAD_DIM) {
            return true;
        }
        if (dtype == KvDtype.FP16 && !halfV && StreamDecodeKernels.eightHeads(spec.groupSize(), d)) {
            return true;
        }
        if (d == StreamDecodeKernels.HEAD_DIM_64) {
            return true;
        }
        if (d == StreamDecodeKernels.HEAD_DIM_256) {
            return dtype.isQuantized() || spec.groupSize() <= 2;
        }
        if (dtype.isQuantized() && d == StreamDecodeKernels.HEAD_DIM && spec.groupSize() <= 2) {
            return true;
        }
        return spec.groupSize() == 1 && (d == StreamDecodeKernels.HEAD_DIM_80 || dtype.isQuantized() && d == StreamDecodeKernels.HEAD_DIM_96);
    }

    /**
     * Whether {@code spec} and {@code dtype} on {@code backend} are the INT8 stream twin at head dim 112 or 128 with
     * one to four query heads per KV head on PTX, which runs with a JIT cap of {@link #PTX_INT8_MAX_REGISTERS} on 1584
     * groups ({@link #ptxJitFlags}). Measured on an H100 through TornadoVM's PTX backend (tornado-config/ptx.args' cap
     * changed for the process; benchmarks/NOTES.md, sixty-third session), on 8 x 32k, 64 x 8k and 128 x 4k, against the
     * cap of 128 on 2112 groups: with groups of one (MHA) 0.71-0.73x the time, of two 0.66-0.68x in two rounds (the cap
     * of 128 took those 1.15-1.30x the time of groups of four), of four 0.95-0.98x in three rounds; groups of three
     * took 250-480 us with the cap of 168, as groups of two did. Not with groups of eight (the G8 body: 1.08-1.10x); no
     * cap at all took 1.05-1.28x. With the cap passed by the plans, not the process (sixty-fifth session, same cells,
     * against {@code -Dpagedattn.tornado.ptxInt8MaxRegisters=0}): 0.71-0.72x with groups of one, 0.66-0.69x with two,
     * 0.97x with four (246.9 / 258.4 / 286.6 us at 8 x 32k). At head dim 112 (the process's cap changed as above;
     * sixty-sixth session, same cells, an H100), against 128 on 2112 groups: 0.80-0.81x with groups of one, 0.93x with
     * two, 0.97-0.98x with four in three rounds; a cap of 144 on 1848 groups took 1.01-1.37x there, at 80 and 96 with
     * groups of four 1.00-1.11x and with the G8 body 1.08-1.54x, so 144 is nowhere the rule. With the cap passed by the
     * plans at 112 (sixty-eighth session, same cells, an H100): 0.79-0.81x, 0.92-0.95x and 0.97x with groups of one,
     * two and four (248.7 / 252.6 / 279.8 us at 8 x 32k). Not at 80 or 96: 168 on 1584 took 1.09-1.19x the time of 128
     * on 2112 there with groups of one, 1.07-1.13x with two (sixty-eighth session), 1.01-1.04x with four (96:
     * sixty-third session; 80: sixty-eighth).
     */
    static boolean widePtxInt8(AttentionSpec spec, KvDtype dtype, Backend backend) {
        int d = spec.headDim();
        return PTX_INT8_MAX_REGISTERS > 0 && backend == Backend.PTX && dtype == KvDtype.INT8
                && (d == StreamDecodeKernels.HEAD_DIM || d == StreamDecodeKernels.HEAD_DIM_112)
                && !StreamDecodeKernels.eightHeads(spec.groupSize(), d)
                && StreamDecodeKernels.headTiles(spec.groupSize(), d) == 1;  // the four-head body, one work-group
    }

    /**
     * The PTX backend's JIT flags for a decode plan's graphs that run {@code kernel} over pools of {@code dtype}, or null
     * for the process-wide ones of tornado-config/ptx.args ({@code CU_JIT_MAX_REGISTERS 128}): a cap of
     * {@link #PTX_INT8_MAX_REGISTERS} for the shapes {@link #widePtxInt8} names, with the optimization level that file
     * sets (a plan's flags replace the process's). On another backend the flags are not read.
     */
    public static String ptxJitFlags(Kernel kernel, AttentionSpec spec, KvDtype dtype, Backend backend) {
        return kernel == Kernel.STREAM && widePtxInt8(spec, dtype, backend)
                ? PlanParts.ptxJitFlags(PTX_INT8_MAX_REGISTERS) : null;
    }

    private static int minPartitionTokens(Kernel kernel) {
        return switch (kernel) {
            case STREAM -> STREAM_MIN_PARTITION_TOKENS;
            case WARP -> WARP_MIN_PARTITION_TOKENS;
            case LATENT -> LATENT_MIN_PARTITION_TOKENS;
            default -> MIN_PARTITION_TOKENS;
        };
    }

    /** Uniform lengths, with the rule's tunables for {@code kernel} over pools of {@code dtype}. */
    public static DecodeGrid plan(AttentionSpec spec, int numSeqs, int contextLen, boolean split, Kernel kernel, KvDtype dtype) {
        return plan(spec, numSeqs, contextLen, split, targetGroups(kernel, spec, dtype), minPartitionTokens(kernel), kernel);
    }

    /** Uniform lengths, every tunable explicit (tests). */
    public static DecodeGrid plan(AttentionSpec spec, int numSeqs, int contextLen, boolean split,
                                  int targetGroups, int minPartitionTokens, Kernel kernel) {
        return plan(spec, numSeqs, contextLen, (long) numSeqs * contextLen, numSeqs * tiles(contextLen), split, targetGroups,
                minPartitionTokens, kernel);
    }

    /**
     * The concrete kernel for {@code requested} on {@code backend} over pools of {@code dtype}: one
     * rule for every dtype (8-bit pools: {@link #chooseEightBit}). AUTO: on the CUDA backend STREAM
     * for fp16 pools at head dim 64, 80, 96, 112, 128 or 256 (any group: groups of more than four heads get one work-group per four,
     * per eight at head dim 128: {@link StreamDecodeKernels#headTiles(int, int)}),
     * else CHUNK where the shape suits it; then PAIRS for groups of 1-2 heads, WARP where the backend has warp shuffles (PTX,
     * CUDA: every head dim the cache takes), QUADS otherwise (OpenCL) (benchmarks/NOTES.md has the measurements behind this rule). An explicit kernel
     * the backend, the dtype or the shape cannot run is refused, naming it, and so is a group of more than
     * {@link PagedDecodeKernels#MAX_HEADS_PER_TILE} heads for any kernel but STREAM.
     */
    public static Kernel resolve(Kernel requested, AttentionSpec spec, Backend backend, KvDtype dtype) {
        return resolve(requested, spec, backend, dtype, false);
    }

    /**
     * {@link #resolve} for a cache that is {@code latent} or not ({@code KvCacheConfig.isLatent}): a latent cache runs
     * {@link Kernel#LATENT} (AUTO or LATENT requested; any other kernel is refused by name), and no other cache runs it.
     */
    public static Kernel resolve(Kernel requested, AttentionSpec spec, Backend backend, KvDtype dtype, boolean latent) {
        if (latent) {
            if (requested != Kernel.AUTO && requested != Kernel.LATENT) {
                throw new IllegalArgumentException("pagedattn.tornado.kernel=" + requested.name().toLowerCase(java.util.Locale.ROOT)
                        + ": a latent (MLA) cache is read by kernel latent only (use auto or latent)");
            }
            if (!LatentDecodeKernels.supports(spec.headDim(), spec.valueDim())) {
                throw new IllegalArgumentException("headDim=" + spec.headDim() + " valueDim=" + spec.valueDim() + ": the latent"
                        + " kernel takes head dims that are multiples of 16 up to " + LatentDecodeKernels.MAX_HEAD_DIM
                        + " and value dims up to " + LatentDecodeKernels.MAX_VALUE_DIM + "; use --backend jvm");
            }
            return Kernel.LATENT;
        }
        if (requested == Kernel.LATENT) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=latent reads latent (MLA) caches only; this cache has"
                    + " K and V pools (use auto)");
        }
        return requireGroupFits(choose(requested, spec, backend, dtype), spec, backend);
    }

    /** {@link #resolve}'s choice before the group check ({@link #plan} stands in OpenCL's for callers without a device). */
    private static Kernel choose(Kernel requested, AttentionSpec spec, Backend backend, KvDtype dtype) {
        if (dtype.isQuantized()) {
            return chooseEightBit(requested, spec, backend, dtype);
        }
        if (dtype == KvDtype.BF16) {
            return chooseBf16(requested, spec, backend);
        }
        boolean chunkShape = ChunkDecodeKernels.supports(spec.groupSize(), spec.headDim());
        boolean warpShape = WarpQuadDecodeKernels.supports(spec.groupSize(), spec.headDim());
        boolean stream = backend.packedHalfLoads() && backend.warpOperations() && dtype == KvDtype.FP16
                && StreamDecodeKernels.supports(spec.groupSize(), spec.headDim());
        if (requested == Kernel.WARP && !(backend.warpOperations() && warpShape)) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=warp needs a device whose TornadoVM backend has warp "
                    + "shuffles (PTX, CUDA) and headDim a multiple of 8 up to 256; here backend=" + backend
                    + " headDim=" + spec.headDim());
        }
        if (requested == Kernel.STREAM && !stream) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=stream needs TornadoVM's CUDA backend (32-bit fp16 "
                    + "loads, warp shuffles), fp16 pools and headDim 64, 80, 96, 112, 128 or 256; here backend=" + backend
                    + " dtype=" + dtype + " groupSize=" + spec.groupSize() + " headDim=" + spec.headDim());
        }
        if (requested == Kernel.CHUNK && !chunkShape) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=chunk needs groups of 1-8 heads and headDim 16, 32, 64, "
                    + "128 or 256; here groupSize=" + spec.groupSize() + " headDim=" + spec.headDim());
        }
        if (requested != Kernel.AUTO) {
            return requested;
        }
        if (stream) {
            return Kernel.STREAM;
        }
        if (backend == Backend.CUDA && chunkShape) {
            return Kernel.CHUNK;
        }
        if (spec.groupSize() < 3) {
            return Kernel.PAIRS;
        }
        return backend.warpOperations() && warpShape ? Kernel.WARP : Kernel.QUADS;
    }

    /**
     * {@code kernel}, unless the group is larger than {@link PagedDecodeKernels#MAX_HEADS_PER_TILE} heads and
     * the kernel is not STREAM: the other kernels tile such groups inside a work-group, which passes the
     * emulator and the JVM but which TornadoVM 5.2 miscompiles (wrong results on PTX, "logic node
     * (LogicConstantNode)" on OpenCL; benchmarks/NOTES.md), so it is refused rather than answered wrongly.
     * {@code backend} is null where the device is not known yet (a kernel named before the plan is built).
     */
    static Kernel requireGroupFits(Kernel kernel, AttentionSpec spec, Backend backend) {
        if (kernel != Kernel.STREAM && kernel != Kernel.AUTO && kernel != Kernel.LATENT
                && spec.groupSize() > PagedDecodeKernels.MAX_HEADS_PER_TILE) {
            throw new IllegalArgumentException("groupSize=" + spec.groupSize() + " (q-heads " + spec.numQHeads() + " / kv-heads "
                    + spec.numKvHeads() + ") is above " + PagedDecodeKernels.MAX_HEADS_PER_TILE + " for kernel="
                    + kernel.name().toLowerCase(java.util.Locale.ROOT) + (backend == null ? "" : " on backend=" + backend)
                    + ": larger groups run on TornadoVM's CUDA backend at head dims 64, 80, 96, 112, 128 and 256 (kernel auto or"
                    + " stream), or use --backend jvm");
        }
        return kernel;
    }

    /**
     * {@link #resolve}'s choice for bf16 K/V pools: the stream kernel's bf16 bodies (AUTO, STREAM), which need the CUDA
     * backend (a bf16 element becomes a float by {@code BFloat16.bf16ToFloat}, one bit reinterpretation there; PTX has none
     * and would inline the API's software decoder, whose {@code pow2} loops per element) and head dim 64, 80, 96, 112,
     * 128 or 256 (any group). Every other kernel, backend or head dim is refused by name.
     */
    private static Kernel chooseBf16(Kernel requested, AttentionSpec spec, Backend backend) {
        boolean stream = backend == Backend.CUDA && StreamDecodeKernels.supports(spec.groupSize(), spec.headDim());
        if ((requested == Kernel.AUTO || requested == Kernel.STREAM) && stream) {
            return Kernel.STREAM;
        }
        if (requested != Kernel.AUTO && requested != Kernel.STREAM) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=" + requested.name().toLowerCase(java.util.Locale.ROOT)
                    + ": bf16 K/V pools are read by the stream kernel only (use auto or stream)");
        }
        throw new IllegalArgumentException("dtype=BF16 needs TornadoVM's CUDA backend (bin/pa-tornado cuda; PTX and OpenCL cannot"
                + " widen bf16 cheaply) and headDim 64, 80, 96, 112, 128 or 256; here backend=" + backend + " headDim="
                + spec.headDim() + " (or decode bf16 on the JVM backend, backend=jvm)");
    }

    /**
     * {@link #resolve}'s choice for 8-bit K/V pools: the stream kernel's 8-bit twins where the shape suits them (AUTO,
     * STREAM; any group) on the CUDA backend, and on PTX for INT8 pools in groups of up to 8 heads; else the warp
     * kernel's twin where the backend has warp shuffles and the head dim suits it (AUTO, WARP), else the quad kernel's
     * (AUTO, QUADS); CHUNK and PAIRS have no 8-bit twin and are refused, as is a kernel where it cannot run. On PTX the
     * INT8 twins pass {@code check} at head dims 64-256, groups of 1-8, block sizes 1-32, per-head scales, windows,
     * sinks, soft caps and ALiBi, and take 0.59-0.70x the warp twin's time on cells of 64k tokens and more (1.07x at 1
     * x 1k; H100, benchmarks/NOTES.md, fifty-seventh session). They once failed there (relative L2 67: a sign extension
     * by {@code >>}, which PTX prints as the logical {@code shr.b32}; the twins now cast, as the {@code
     * dev.pagedattn.kernels} package notes ask). FP8's twins stay off PTX: they call {@code FP8.e4m3ToFloat}/{@code
     * e5m2ToFloat}, which only the CUDA backend replaces by a hardware conversion, while PTX inlines the API's software
     * decoder, whose {@code pow2} runs two loops per code (relative L2 1.6e9 on an H100; fifty-fifth and fifty-sixth
     * sessions), and a decode through fp16 bits ({@code Float.float16ToFloat}) is rejected by PTX's JIT (fifty-seventh
     * session).
     */
    private static Kernel chooseEightBit(Kernel requested, AttentionSpec spec, Backend backend, KvDtype dtype) {
        boolean warp = backend.warpOperations() && WarpQuadDecodeKernels.supports(spec.groupSize(), spec.headDim());
        boolean ptxInt8 = backend == Backend.PTX && dtype == KvDtype.INT8   // groups above 8 are not checked on PTX
                && spec.groupSize() <= PagedDecodeKernels.MAX_HEADS_PER_TILE;
        boolean stream = (backend == Backend.CUDA || ptxInt8)
                && StreamDecodeKernels.supportsEightBit(spec.groupSize(), spec.headDim());
        if (requested == Kernel.CHUNK || requested == Kernel.PAIRS) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=" + requested.name().toLowerCase(java.util.Locale.ROOT)
                    + ": 8-bit K/V pools are read by the stream, warp and quads kernels only (use auto, stream, warp or quads)");
        }
        if (requested == Kernel.STREAM && !stream) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=stream over 8-bit pools needs TornadoVM's CUDA backend "
                    + "(on PTX INT8 pools in groups of up to 8 heads only: its FP8 code is wrong there) and headDim 64, 80, 96, "
                    + "112, 128 or 256; here backend=" + backend + " dtype=" + dtype + " groupSize=" + spec.groupSize()
                    + " headDim=" + spec.headDim());
        }
        if (requested == Kernel.STREAM || requested == Kernel.AUTO && stream) {
            return Kernel.STREAM;
        }
        if (requested == Kernel.WARP && !warp) {
            throw new IllegalArgumentException("pagedattn.tornado.kernel=warp needs a device whose TornadoVM backend has warp "
                    + "shuffles (PTX, CUDA) and headDim a multiple of 8 up to 256; here backend=" + backend
                    + " headDim=" + spec.headDim());
        }
        return requested == Kernel.QUADS || !warp ? Kernel.QUADS : Kernel.WARP;
    }

    /**
     * The rule. Without splitting there are {@code base = numSeqs * numKvHeads * headTiles}
     * work-groups. Uniform batches whose grid is small ({@code base < targetGroups / 2}) are cut into
     * {@code floor(targetGroups / base)} equal partitions (fewer if partitions would drop below
     * {@code minPartitionTokens}): one nearly full wave of long work-groups, since every extra
     * work-group costs its start-up, slot merge and partial write. Ragged batches (longest > 1.5 x
     * mean) need more, shorter work-groups so that the longest sequence does not set the time: they
     * aim at partitions of {@code P0 = max(minPartitionTokens, work / (WAVES * targetGroups))}
     * tokens, where work is {@code totalTokens * numKvHeads * headTiles}, about {@link #WAVES} waves,
     * and cut the longest sequence into {@code floor(maxLen / P0)} equal partitions, so that no
     * partition is a short leftover. The stream kernels cut ragged batches by {@link #balanced} instead
     * (unless {@link #BALANCED} is false).
     */
    public static DecodeGrid plan(AttentionSpec spec, int numSeqs, int maxContextLen, long totalTokens, boolean split,
                                  int targetGroups, int minPartitionTokens, Kernel kernel) {
        // without the lengths, the most tiles such a batch can have
        long pairTiles = Math.min(numSeqs * tiles(maxContextLen), (totalTokens + StreamDecodeKernels.TILE - 1) / StreamDecodeKernels.TILE + numSeqs);
        return plan(spec, numSeqs, maxContextLen, totalTokens, pairTiles, split, targetGroups, minPartitionTokens, kernel);
    }

    private static DecodeGrid plan(AttentionSpec spec, int numSeqs, int maxContextLen, long totalTokens, long pairTiles,
                                   boolean split, int targetGroups, int minPartitionTokens, Kernel kernel) {
        if (targetGroups < 1 || minPartitionTokens < 1) {
            throw new IllegalArgumentException("targetGroups=" + targetGroups + " minPartitionTokens=" + minPartitionTokens
                    + " must be >= 1");
        }
        boolean ragged = maxContextLen > 1.5 * totalTokens / numSeqs;
        if (split && ragged && kernel == Kernel.STREAM && BALANCED) {
            return balanced(spec, maxContextLen, pairTiles, targetGroups, minPartitionTokens);
        }
        int tiles = kernel == Kernel.STREAM ? StreamDecodeKernels.headTiles(spec.groupSize(), spec.headDim())
                : kernel == Kernel.LATENT ? LatentDecodeKernels.headTiles(spec.numQHeads())
                : (spec.groupSize() + PagedDecodeKernels.MAX_HEADS_PER_TILE - 1) / PagedDecodeKernels.MAX_HEADS_PER_TILE;
        int base = numSeqs * spec.numKvHeads() * tiles;
        int partitionTokens = maxContextLen;
        if (split && ragged) {
            long work = totalTokens * spec.numKvHeads() * tiles;
            long p0 = Math.max(minPartitionTokens, (work + (long) WAVES * targetGroups - 1) / ((long) WAVES * targetGroups));
            long parts = Math.max(1, maxContextLen / p0);
            partitionTokens = (int) ((maxContextLen + parts - 1) / parts);
        } else if (split && kernel == Kernel.STREAM && 2L * base >= targetGroups && maxContextLen <= STREAM_WAVE_MAX_CONTEXT) {
            long parts = wholeWaves(base, targetGroups, Math.max(1, maxContextLen / wavePartitionTokens(spec)));
            partitionTokens = (int) ((maxContextLen + parts - 1) / parts);
        } else if (split && 2L * base < targetGroups) {
            long parts = Math.max(1, Math.min(targetGroups / base, maxContextLen / minPartitionTokens));
            partitionTokens = (int) ((maxContextLen + parts - 1) / parts);
        }
        if (kernel == Kernel.STREAM) { // whole tiles, so that tiles stay inside blocks of 16, 32, ... tokens
            partitionTokens = (partitionTokens + 15) / 16 * 16;
        }
        int maxPartitions = (maxContextLen + partitionTokens - 1) / partitionTokens;
        if (kernel == Kernel.AUTO) { // callers that know the device resolve first; this is OpenCL's choice, unchecked (nothing runs)
            kernel = choose(kernel, spec, Backend.OPENCL, KvDtype.FP16);
        }
        int local = switch (kernel) {
            case CHUNK -> ChunkDecodeKernels.LOCAL;
            case STREAM -> StreamDecodeKernels.LOCAL;
            case QUADS -> HeadQuadDecodeKernels.localSize(spec.groupSize(), spec.headDim());
            case WARP -> WarpQuadDecodeKernels.localSize(spec.groupSize(), spec.headDim());
            case LATENT -> LatentDecodeKernels.LOCAL;
            default -> HeadPairDecodeKernels.localSize(spec.groupSize(), spec.headDim());
        };
        return new DecodeGrid(kernel, tiles, partitionTokens, maxPartitions, base * maxPartitions, local, 0,
                kernel == Kernel.STREAM || kernel == Kernel.LATENT ? spec.numKvHeads() * tiles : spec.numKvHeads());
    }

    /**
     * The whole-wave split's shortest partition for {@code spec}'s stream body: {@link #STREAM_WAVE_PARTITION_TOKENS}, half
     * of it for the G8 bodies, whose work-groups do eight query heads' work per token instead of four, so that the floor
     * stays one amount of work per work-group. Measured on an H200 at Llama-3-70B's heads (benchmarks/NOTES.md, nineteenth
     * session): 128 x 2k in three partitions of 688 tokens 1.07-1.11x one of 2048 (fp16 and fp8), 256 x 1k in two of 512
     * within 1% of one (fp16) and 1.00-1.07x (fp8).
     */
    static int wavePartitionTokens(AttentionSpec spec) {
        return StreamDecodeKernels.eightHeads(spec.groupSize(), spec.headDim()) ? STREAM_WAVE_PARTITION_TOKENS / 2
                : STREAM_WAVE_PARTITION_TOKENS;
    }

    /**
     * Partitions per sequence for the stream kernel's uniform batches of at least half a wave of
     * (sequence, KV head) pairs (smaller ones split into one wave): the step takes about
     * {@code waves(p) / p} of one sequence's time, where {@code waves(p) = ceil(base * p / targetGroups)};
     * the smallest {@code p <= maxParts} (and at most four waves) within 5% of the best. So 128 x 8k
     * (1024 one-warp groups, 0.65 of a wave) runs as 3 partitions in two full waves, not one wave two
     * thirds full.
     */
    static long wholeWaves(long base, long targetGroups, long maxParts) {
        int limit = (int) Math.max(1, Math.min(maxParts, 4 * targetGroups / base));
        double[] time = new double[limit + 1]; // time[p]: waves(p) / p
        double best = Double.MAX_VALUE;
        for (int p = 1; p <= limit; p++) {
            time[p] = (double) ((base * p + targetGroups - 1) / targetGroups) / p;
            best = Math.min(best, time[p]);
        }
        int p = 1;
        while (time[p] > best * 1.05) {
            p++;
        }
        return p;
    }

    public int attentionGlobalSize() {
        return numGroups * localSize;
    }

    /** Rows of partial results this grid writes: numSeqs * maxPartitions. */
    public int partialRows(int numSeqs) {
        return numSeqs * maxPartitions;
    }

    /**
     * Work-items per output element in the merge: the fewest (a power of two, at most
     * {@link PagedDecodeKernels#MAX_MERGE_SLICES}) that leave each at most
     * {@link PagedDecodeKernels#MERGE_ROUND} partitions of the longest sequence (one round of loads).
     */
    public int mergeSlices() {
        int slices = 1;
        while (slices < PagedDecodeKernels.MAX_MERGE_SLICES && slices * PagedDecodeKernels.MERGE_ROUND < maxPartitions) {
            slices *= 2;
        }
        return slices;
    }

    /** Whether one partition covers every sequence: the attention kernel then writes the output itself. */
    public boolean fused() {
        return maxPartitions == 1;
    }

    /** Whether a step on this grid runs the merge: split, or writing log-sum-exps ({@code lse}, which the merge writes). */
    public boolean merges(boolean lse) {
        return !fused() || lse;
    }

    /** Whether this is the balanced grid ({@link #tilesPerGroup} > 0). */
    public boolean balanced() {
        return tilesPerGroup > 0;
    }

    /** Fills the per-step params the kernels read (a partition grid: the lengths are not needed; no window). */
    public void writeParams(IntArray params, int numSeqs, int layerBase, int maxBlocksPerSeq, int numNewSlots,
                            boolean skipAttention) {
        writeParams(params, null, DecodeBatch.NO_WINDOW, numSeqs, layerBase, maxBlocksPerSeq, numNewSlots, skipAttention);
    }

    /** {@link #writeParams(IntArray, int[], int, int, int, int, int, boolean)} without a window. */
    public void writeParams(IntArray params, int[] contextLens, int numSeqs, int layerBase, int maxBlocksPerSeq, int numNewSlots,
                            boolean skipAttention) {
        writeParams(params, contextLens, DecodeBatch.NO_WINDOW, numSeqs, layerBase, maxBlocksPerSeq, numNewSlots, skipAttention);
    }

    /** {@link #writeParams(IntArray, int[], int, int, int, int, int, boolean, int)} without log-sum-exps. */
    public void writeParams(IntArray params, int[] contextLens, int window, int numSeqs, int layerBase, int maxBlocksPerSeq,
                            int numNewSlots, boolean skipAttention) {
        writeParams(params, contextLens, window, numSeqs, layerBase, maxBlocksPerSeq, numNewSlots, skipAttention, 0);
    }

    /**
     * Fills the per-step params the kernels read, {@code window} the batch's sliding window ({@link DecodeBatch#window()});
     * a balanced grid also writes the sequences' tile prefix sums (over their {@link #spans}) and each work-group's first
     * sequence from {@code contextLens} (which must be the batch it was planned for, or one with no more tiles).
     * {@code lseAt} > 0: the step writes log-sum-exps there in the merge's output ({@link DecodeParams#LSE}), so even a
     * fused grid's kernels write partials for the merge ({@link #merges}).
     */
    public void writeParams(IntArray params, int[] contextLens, int window, int numSeqs, int layerBase, int maxBlocksPerSeq,
                            int numNewSlots, boolean skipAttention, int lseAt) {
        params.set(DecodeParams.WINDOW, window);
        params.set(DecodeParams.TILES_PER_GROUP, tilesPerGroup);
        params.set(DecodeParams.KV_HEADS, kvHeads);
        params.set(DecodeParams.HEAD_TILES, headTiles);
        if (balanced()) {
            if (contextLens == null) {
                throw new IllegalArgumentException("a balanced grid needs the batch's context lengths");
            }
            int groupSeqs = DecodeParams.PREFIX + numSeqs + 1;
            long pairTiles = 0;
            for (int s = 0; s < numSeqs; s++) {
                params.set(DecodeParams.PREFIX + s, (int) pairTiles);
                pairTiles += tiles(span(contextLens[s], window));
            }
            params.set(DecodeParams.PREFIX + numSeqs, (int) pairTiles);
            long allTiles = pairTiles * kvHeads;
            int groups = (int) ((allTiles + tilesPerGroup - 1) / tilesPerGroup);
            if (groups > numGroups) {
                throw new IllegalStateException("balanced grid " + this + " planned for fewer tiles than this batch's " + allTiles);
            }
            // a packed plan's lengths and tables follow the grid's slots (DecodeParams.LENS)
            int slots = params.get(DecodeParams.LENS) > 0 ? params.get(DecodeParams.LENS) : params.getSize();
            if (groupSeqs + groups > slots) {
                throw new IllegalStateException("params of " + slots + " slots cannot hold a balanced grid of " + groups
                        + " work-groups over " + numSeqs + " sequences (DecodeParams.capacity)");
            }
            params.set(DecodeParams.TOTAL_TILES, (int) allTiles);
            params.set(DecodeParams.GROUP_SEQS, groupSeqs);
            int seq = 0;
            for (int g = 0; g < groups; g++) {
                long first = (long) g * tilesPerGroup;
                while ((long) kvHeads * params.get(DecodeParams.PREFIX + seq + 1) <= first) {
                    seq++;
                }
                params.set(groupSeqs + g, seq);
            }
        }
        params.set(DecodeParams.NUM_SEQS, numSeqs);
        params.set(DecodeParams.PARTITION_TOKENS, partitionTokens);
        params.set(DecodeParams.MAX_PARTITIONS, maxPartitions);
        params.set(DecodeParams.LAYER_BASE, layerBase);
        params.set(DecodeParams.MAX_BLOCKS_PER_SEQ, maxBlocksPerSeq);
        params.set(DecodeParams.WRITE_FINAL, merges(lseAt > 0) ? 0 : 1);
        params.set(DecodeParams.LSE, lseAt);
        params.set(DecodeParams.NUM_NEW_SLOTS, numNewSlots);
        params.set(DecodeParams.SKIP_ATTENTION, skipAttention ? 1 : 0);
        params.set(DecodeParams.MERGE_SLICES, mergeSlices());
    }
}
