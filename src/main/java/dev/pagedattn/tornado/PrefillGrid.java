package dev.pagedattn.tornado;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.TreeMask;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.kernels.PrefillKernels;
import dev.pagedattn.kernels.PrefillParams;
import dev.pagedattn.kernels.TensorPrefillKernels;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The launch shape of the prefill kernels ({@link PrefillKernels}, {@link TensorPrefillKernels}):
 * work-groups of {@link #LOCAL} work-items, one per (sequence, KV head, head tile, query tile,
 * partition), and the split rule. The kernel decides the tile (16 rows at head dim 128 for
 * {@link Kernel#SCALAR}, 64 for {@link Kernel#TENSOR}) and whether {@code partials} also holds the
 * tensor kernel's scratch ({@link TensorPrefillKernels#SCRATCH_PER_GROUP} floats per work-group,
 * after the partitions' states).
 *
 * <p>Split along the context: when the batch's (sequence, KV head, head tile, query tile) groups
 * alone are fewer than {@link DecodeGrid#TARGET_GROUPS} (short query runs over long prefixes, e.g.
 * speculative verification), the context is cut into equal partitions of at least
 * {@link DecodeGrid#MIN_PARTITION_TOKENS} tokens, as many as it takes to reach the target; the
 * partials are merged by log-sum-exp. Long query runs fill the GPU on their own and are not split.
 *
 * @param headTiles       head tiles per KV head
 * @param maxQTiles       query tiles of the longest query run
 * @param partitionTokens context tokens per partition (a multiple of KV_TILE)
 * @param maxPartitions   partitions of the longest context
 * @param numGroups       work-groups of the launch
 * @param kernel          the attention kernel the grid is for
 * @param merged          every row's output goes through the merge, one partition or more ({@link PrefillParams#MERGED}):
 *                        the layer has attention sinks, which the merge adds, or the step writes log-sum-exps
 */
public record PrefillGrid(int headTiles, int maxQTiles, int partitionTokens, int maxPartitions, int numGroups, Kernel kernel,
                          boolean merged) {
    /** The prefill attention kernels. */
    public enum Kernel {
        /** Tensor cores where they serve, else scalar. */
        AUTO,
        /** {@link PrefillKernels}: fp32 FMAs, every dtype and head dim, every backend (bf16: CUDA only). */
        SCALAR,
        /**
         * {@link TensorPrefillKernels}: fp16 and 8-bit pools, head dims up to 128, PTX and CUDA backends; bf16 pools on CUDA
         * when asked for ({@link TensorPrefillKernels#prefillBf16Tensor}: queries and probabilities in two bf16 parts, as
         * exact as SCALAR, on an H100 too; AUTO gives bf16 SCALAR until the two-part kernel's time is measured).
         */
        TENSOR,
        /**
         * A latent (MLA) cache's only prefill: the decode of the batch's query rows, one per query token, by
         * {@link dev.pagedattn.kernels.LatentDecodeKernels} ({@link dev.pagedattn.cache.DecodeBatch#perQueryRows}); every backend.
         */
        LATENT;

        /** {@code auto}, {@code scalar}, {@code tensor} or {@code latent} (any case); anything else is refused by name. */
        public static Kernel parse(String name) {
            for (Kernel k : values()) {
                if (k.name().equalsIgnoreCase(name)) {
                    return k;
                }
            }
            throw new IllegalArgumentException("prefill kernel=" + name + " is not one of auto, scalar, tensor, latent");
        }

        /** The kernel that runs {@code requested} for this shape on {@code backend}; TENSOR where it cannot run is refused. */
        public static Kernel resolve(Kernel requested, AttentionSpec spec, KvDtype dtype, Backend backend) {
            return resolve(requested, spec, dtype, backend, false);
        }

        /**
         * {@link #resolve(Kernel, AttentionSpec, KvDtype, Backend)} for a cache that is {@code latent} or not: a latent
         * cache runs {@link #LATENT} only (AUTO or LATENT; another kernel is refused by name, as LATENT is for a K/V cache).
         */
        public static Kernel resolve(Kernel requested, AttentionSpec spec, KvDtype dtype, Backend backend, boolean latent) {
            if (dtype == KvDtype.BF16 && (latent || backend != Backend.CUDA)) {
                throw new IllegalArgumentException("dtype=BF16: TornadoVM prefills bf16 K/V only on its CUDA backend (bin/pa-tornado cuda;"
                        + " PTX and OpenCL cannot widen bf16 cheaply) and not in latent caches; here backend=" + backend
                        + (latent ? " (a latent cache)" : "") + " (or prefill bf16 on the JVM backend, backend=jvm)");
            }
            if (latent) {
                if (requested != AUTO && requested != LATENT) {
                    throw new IllegalArgumentException("prefill kernel=" + requested.name().toLowerCase(java.util.Locale.ROOT)
                            + ": a latent (MLA) cache is prefilled by kernel latent only (use auto or latent)");
                }
                return LATENT;
            }
            if (requested == LATENT) {
                throw new IllegalArgumentException("prefill kernel=latent reads latent (MLA) caches only; this cache has a K and a V"
                        + " pool (use auto, scalar or tensor)");
            }
            // bf16 pools on bf16 tensor cores (mmaBF16, the CUDA backend's only; bf16 reaches here on CUDA only) when asked: the
            // queries and probabilities in two bf16 parts each; AUTO keeps bf16 on the scalar kernel, whose time is measured
            boolean fits = (dtype == KvDtype.FP16 || dtype == KvDtype.BF16 || dtype.isQuantized())
                    && spec.headDim() <= TensorPrefillKernels.HEAD_DIM && backend.tensorCores();
            return switch (requested) {
                case SCALAR -> SCALAR;
                case AUTO -> fits && dtype != KvDtype.BF16 ? TENSOR : SCALAR;
                case TENSOR -> {
                    if (!fits) {
                        throw new IllegalArgumentException("prefill kernel=tensor needs fp16, bf16 or 8-bit K/V, head dim <= " + TensorPrefillKernels.HEAD_DIM
                                + " and a PTX or CUDA backend (dtype=" + dtype + ", headDim=" + spec.headDim() + ", backend=" + backend + ")");
                    }
                    yield TENSOR;
                }
                case LATENT -> throw new AssertionError("refused above");
            };
        }
    }

    /** A grid whose rows of one partition write their output themselves. */
    public PrefillGrid(int headTiles, int maxQTiles, int partitionTokens, int maxPartitions, int numGroups, Kernel kernel) {
        this(headTiles, maxQTiles, partitionTokens, maxPartitions, numGroups, kernel, false);
    }

    /** This grid with every row merged ({@code merged}: a layer with sinks, a step with log-sum-exps) or as planned. */
    public PrefillGrid merged(boolean merged) {
        return merged == this.merged ? this : new PrefillGrid(headTiles, maxQTiles, partitionTokens, maxPartitions, numGroups, kernel, merged);
    }

    /** Work-items per work-group. */
    public static final int LOCAL = 128;
    /** Most partial elements a split may need (1 GiB of fp32); beyond it the split is coarser. */
    static final long MAX_PARTIAL_ELEMENTS = 1L << 28;

    /** The grid of {@code kernel} (SCALAR or TENSOR) for this batch. */
    public static PrefillGrid plan(AttentionSpec spec, PrefillBatch batch, Kernel kernel) {
        return plan(spec, batch.numSeqs(), batch.maxQLen(), batch.totalQueries(), batch.kv().maxContextLen(), kernel);
    }

    /** The grid for a batch of {@code numSeqs} sequences, {@code totalQueries} query tokens, the longest run {@code maxQLen}. */
    static PrefillGrid plan(AttentionSpec spec, int numSeqs, int maxQLen, int totalQueries, int maxContext, Kernel kernel) {
        if (kernel == Kernel.AUTO) {
            throw new IllegalArgumentException("kernel=AUTO: resolve it against the backend first");
        }
        boolean tensor = kernel == Kernel.TENSOR;
        int headTiles = tensor ? TensorPrefillKernels.headTiles(spec.groupSize()) : PrefillKernels.headTiles(spec.groupSize(), spec.headDim());
        int tokensPerTile = tensor ? TensorPrefillKernels.tokensPerTile(spec.groupSize())
                : PrefillKernels.tokensPerTile(spec.groupSize(), spec.headDim());
        int maxQTiles = (maxQLen + tokensPerTile - 1) / tokensPerTile;
        long unsplit = (long) numSeqs * spec.numKvHeads() * headTiles * maxQTiles;
        int parts = 1;
        if (unsplit < DecodeGrid.TARGET_GROUPS) {
            int byTarget = (int) ((DecodeGrid.TARGET_GROUPS + unsplit - 1) / unsplit);
            int byLength = Math.max(1, maxContext / DecodeGrid.MIN_PARTITION_TOKENS);
            long rowBytes = (long) totalQueries * spec.numQHeads() * (spec.headDim() + 2);
            int byMemory = (int) Math.max(1, MAX_PARTIAL_ELEMENTS / rowBytes);
            parts = Math.max(1, Math.min(byTarget, Math.min(byLength, byMemory)));
        }
        int partTokens = (maxContext + parts - 1) / parts;
        partTokens = (partTokens + PrefillKernels.KV_TILE - 1) / PrefillKernels.KV_TILE * PrefillKernels.KV_TILE;
        int maxParts = (maxContext + partTokens - 1) / partTokens;
        long groups = unsplit * maxParts;
        if (groups * LOCAL > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("groups=" + groups + " of the prefill grid exceed one launch");
        }
        return new PrefillGrid(headTiles, maxQTiles, partTokens, maxParts, (int) groups, kernel);
    }

    /**
     * The most elements of {@code partials} ({@link #bufferElements}) the grid rule gives any batch of at most
     * {@code maxSeqs} sequences, {@code maxQueryTokens} query tokens in all and contexts of at most {@code maxTokensPerSeq}
     * tokens: the rule is evaluated for the longest context, every number of sequences and every count of query tiles of
     * the longest run, each with the most query tokens that shape allows (the partitions' states grow with them; the
     * partitions shrink with them only past {@link #MAX_PARTIAL_ELEMENTS}, which no shape this rule splits reaches).
     * A batch past the bound still runs: its plan is built again.
     */
    static long maxBufferElements(AttentionSpec spec, Kernel kernel, int maxSeqs, int maxQueryTokens, int maxTokensPerSeq,
                                  boolean merged) {
        int tokensPerTile = kernel == Kernel.TENSOR ? TensorPrefillKernels.tokensPerTile(spec.groupSize())
                : PrefillKernels.tokensPerTile(spec.groupSize(), spec.headDim());
        long most = 0;
        for (int n = 1; n <= Math.min(maxSeqs, maxQueryTokens); n++) {
            int longestRun = maxQueryTokens - (n - 1);  // every other sequence brings at least one token
            for (int tiles = 1; (long) (tiles - 1) * tokensPerTile < longestRun; tiles++) {
                int run = Math.min(tiles * tokensPerTile, longestRun);
                int total = (int) Math.min(maxQueryTokens, (long) n * run);
                most = Math.max(most, plan(spec, n, run, total, maxTokensPerSeq, kernel).merged(merged).bufferElements(spec, total));
            }
        }
        return most;
    }

    public int globalSize() {
        return numGroups * LOCAL;
    }

    /** Partial elements the launch writes: {@code [totalQueries][numQHeads][maxPartitions][headDim + 2]} (0 unsplit, unmerged). */
    public long partialElements(AttentionSpec spec, int totalQueries) {
        return maxPartitions == 1 && !merged ? 0 : (long) totalQueries * spec.numQHeads() * maxPartitions * (spec.headDim() + 2);
    }

    /** Elements of {@code partials} the launch uses: the partitions' states, then the tensor kernel's scratch. */
    public long bufferElements(AttentionSpec spec, int totalQueries) {
        long scratch = kernel == Kernel.TENSOR ? (long) numGroups * TensorPrefillKernels.SCRATCH_PER_GROUP : 0;
        return partialElements(spec, totalQueries) + scratch;
    }

    /** Fills the per-step params. */
    public void writeParams(IntArray params, AttentionSpec spec, PrefillBatch batch, int layerBase, int maxBlocksPerSeq,
                            boolean skipAttention) {
        long scratchBase = partialElements(spec, batch.totalQueries());
        if (bufferElements(spec, batch.totalQueries()) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("prefill partials and scratch of " + bufferElements(spec, batch.totalQueries())
                    + " floats exceed one device array");
        }
        params.set(PrefillParams.SCRATCH_BASE, (int) scratchBase);
        params.set(PrefillParams.NUM_SEQS, batch.numSeqs());
        params.set(PrefillParams.LAYER_BASE, layerBase);
        params.set(PrefillParams.MAX_BLOCKS_PER_SEQ, maxBlocksPerSeq);
        params.set(PrefillParams.PARTITION_TOKENS, partitionTokens);
        params.set(PrefillParams.MAX_PARTITIONS, maxPartitions);
        params.set(PrefillParams.MAX_Q_TILES, maxQTiles);
        params.set(PrefillParams.WINDOW, batch.window());
        params.set(PrefillParams.SKIP_ATTENTION, skipAttention ? 1 : 0);
        params.set(PrefillParams.TOTAL_QUERIES, batch.totalQueries());
        params.set(PrefillParams.MERGED, merged ? 1 : 0);
        params.set(PrefillParams.NON_CAUSAL, batch.causal() ? 0 : 1);
    }

    /**
     * Ints after {@link PrefillParams#SIZE} that {@code batch}'s token-tree masks take in {@code params}: a table of one
     * int per sequence, then each masked sequence's rows; 0 without masks.
     */
    public static long maskInts(PrefillBatch batch) {
        if (!batch.hasMasks()) {
            return 0;
        }
        long n = batch.numSeqs();
        for (int i = 0; i < batch.numSeqs(); i++) {
            if (batch.mask(i) != null) {
                n += (long) batch.qLen(i) * (1 + batch.mask(i).words());
            }
        }
        return n;
    }

    /**
     * {@link PrefillParams#MASK} and the masks' table and rows ({@link #maskInts}) into {@code params}: each row its depth,
     * then the new tokens it sees ({@link PrefillBatch#sees}: by its mask and, with a window, by their depths). Once per
     * step, next to {@link #writeParams} (which a step that stages its writes in several executions calls for each).
     */
    public static void writeMasks(IntArray params, PrefillBatch batch) {
        long ints = maskInts(batch);
        if (PrefillParams.SIZE + ints > params.getSize()) {
            throw new IllegalArgumentException("the batch's token-tree masks take " + ints + " ints, params holds "
                    + (params.getSize() - PrefillParams.SIZE));
        }
        params.set(PrefillParams.MASK, ints == 0 ? 0 : PrefillParams.SIZE);
        int at = PrefillParams.SIZE + batch.numSeqs();
        for (int i = 0; i < batch.numSeqs() && ints != 0; i++) {
            TreeMask mask = batch.mask(i);
            params.set(PrefillParams.SIZE + i, mask == null ? 0 : at);
            int newStart = batch.contextLen(i) - batch.qLen(i);
            for (int j = 0; mask != null && j < mask.size(); j++) {
                params.set(at++, mask.depth(j));
                for (int w = 0; w < mask.words(); w++) {
                    int bits = mask.word(j, w);
                    for (int b = 0; batch.window() != PrefillBatch.NO_WINDOW && b < 32 && 32 * w + b < mask.size(); b++) {
                        if (!batch.sees(i, j, newStart + 32 * w + b)) {
                            bits &= ~(1 << b);
                        }
                    }
                    params.set(at++, bits);
                }
            }
        }
    }
}
