package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import dev.pagedattn.attention.PrefillBatch;
import dev.pagedattn.attention.PrefillCase;
import dev.pagedattn.attention.PrefillWorkload;
import dev.pagedattn.attention.ReferenceAttention;
import dev.pagedattn.attention.TestSeeds;
import dev.pagedattn.cache.KvDtype;
import dev.pagedattn.tornado.Backend;
import dev.pagedattn.tornado.PrefillGrid;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * The tensor-core prefill kernel ({@link TensorPrefillKernels}), run by the emulator (whose
 * {@code mma} computes the m16n8k16 product the PTX layout describes), and its merge, against the
 * fp64 reference: head dim 128 and smaller ones padded to the 128-wide tiles (96, 80, 64, 48), fp16 K/V and 8-bit K/V
 * ({@link TensorPrefillKernels#prefillQ8Tensor}: FP8 E4M3, E5M2 and INT8 with per-head scales, against fp64 on the dequantised
 * values), each shape unsplit and split into 32-token partitions.
 * The kernel rounds the scaled queries and the probabilities to fp16 for the products: relative L2
 * about 1.5e-4 here, bounded at 1e-3 (the bar for fp16 K/V is 1e-2), not the scalar
 * kernel's 1e-5; the bf16 twin's two parts meet 1e-5.
 */
class TensorPrefillKernelsTest {
    private static final double REL_L2 = 1e-3;
    /**
     * The bf16 twin carries the queries and probabilities in two bf16 parts each (16 significant bits): relative L2
     * 1.4e-6 .. 2.5e-6 on these shapes (1.1e-3 .. 1.2e-3 with the high parts alone, as FlashAttention's bf16 kernels
     * round them), so it is held to the scalar kernel's 1e-5.
     */
    private static final double REL_L2_BF16 = 1e-5;

    private static double tolerance(PrefillCase c) {
        return c.dtype() == KvDtype.BF16 ? REL_L2_BF16 : REL_L2;
    }

    static Stream<PrefillCase> shapes() {
        return Stream.of(
                PrefillCase.of("GQA 4, ragged, qLen 1 and > chunk", new int[] {1, 70, 45}, new int[] {1, 40, 45}, 8, 2, 128, 16,
                        KvDtype.FP16, PrefillBatch.NO_WINDOW),
                PrefillCase.of("qLen = block size + 1, block 17", new int[] {18, 50}, new int[] {17, 17}, 4, 1, 128, 17, KvDtype.FP16,
                        PrefillBatch.NO_WINDOW),
                PrefillCase.of("window < block, group 3", new int[] {70, 9}, new int[] {20, 9}, 6, 2, 128, 16, KvDtype.FP16, 5),
                PrefillCase.of("MQA 64 heads, block 1", new int[] {40, 19}, new int[] {3, 19}, 64, 1, 128, 1, KvDtype.FP16,
                        PrefillBatch.NO_WINDOW),
                PrefillCase.of("MHA, window across blocks", new int[] {90}, new int[] {37}, 2, 2, 128, 8, KvDtype.FP16, 19),
                PrefillCase.of("Llama-3.2-1B heads at 64, GQA 4, ragged", new int[] {1, 70, 45}, new int[] {1, 40, 45}, 8, 2, 64, 16,
                        KvDtype.FP16, PrefillBatch.NO_WINDOW),
                PrefillCase.of("Phi-3-mini MHA at 96, block 17", new int[] {60, 18}, new int[] {25, 18}, 2, 2, 96, 17, KvDtype.FP16,
                        PrefillBatch.NO_WINDOW),
                PrefillCase.of("head dim 80, group 3, window 7", new int[] {50, 33}, new int[] {20, 5}, 6, 2, 80, 16, KvDtype.FP16, 7),
                PrefillCase.of("head dim 48, MQA 8, block 5", new int[] {40}, new int[] {12}, 8, 1, 48, 5, KvDtype.FP16,
                        PrefillBatch.NO_WINDOW),
                PrefillCase.of("FP8 E4M3, GQA 4, ragged, per-head scales", new int[] {1, 70, 45}, new int[] {1, 40, 45}, 8, 2, 128, 16,
                        KvDtype.FP8_E4M3, PrefillBatch.NO_WINDOW),
                PrefillCase.of("INT8 at 64, block 17, group 3", new int[] {50, 18}, new int[] {30, 18}, 6, 2, 64, 17, KvDtype.INT8,
                        PrefillBatch.NO_WINDOW),
                PrefillCase.of("FP8 E5M2 MHA at 96, window 9", new int[] {60}, new int[] {25}, 2, 2, 96, 16, KvDtype.FP8_E5M2, 9),
                PrefillCase.of("chunks of 24 over blocks of 16, group 3", new int[] {70, 30}, new int[] {40, 30}, 6, 2, 128, 16,
                        KvDtype.FP16, dev.pagedattn.cache.AttentionWindow.chunked(24)),
                PrefillCase.of("FP8 E4M3 MHA at 96, chunks of 9", new int[] {60}, new int[] {25}, 2, 2, 96, 16, KvDtype.FP8_E4M3,
                        dev.pagedattn.cache.AttentionWindow.chunked(9)),
                PrefillCase.of("bf16, GQA 4, ragged, qLen 1 and > chunk", new int[] {1, 70, 45}, new int[] {1, 40, 45}, 8, 2, 128, 16,
                        KvDtype.BF16, PrefillBatch.NO_WINDOW),
                PrefillCase.of("bf16 at 64, block 17, group 3, window 7", new int[] {50, 18}, new int[] {30, 18}, 6, 2, 64, 17,
                        KvDtype.BF16, 7),
                PrefillCase.of("bf16 MQA 64 heads at 96, block 1", new int[] {40, 19}, new int[] {3, 19}, 64, 1, 96, 1, KvDtype.BF16,
                        PrefillBatch.NO_WINDOW));
    }

    static Stream<PrefillCase> windowedShapes() {
        return shapes().filter(c -> c.window() != PrefillBatch.NO_WINDOW);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelMatchesTheFp64Reference(PrefillCase c) {
        checkUnsplitAndSplit(c, 1f, TensorPrefillKernels.CHUNK);
    }

    /** Log-sum-exp outputs through the tensor kernels, unsplit and split, every row through the merge that writes them. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelWritesTheLogSumExp(PrefillCase c) {
        PrefillKernelsTest.checkLse(c, TestSeeds.fresh("TensorPrefillKernelsTest lse " + c.name()), PrefillGrid.Kernel.TENSOR, tolerance(c),
                TensorPrefillKernels.CHUNK);
    }

    /** Attention sinks through the tensor kernels, unsplit and split, every row through the merge that adds them. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelAddsTheSinks(PrefillCase c) {
        long seed = TestSeeds.fresh("TensorPrefillKernelsTest sinks " + c.name());
        PrefillKernelsTest.checkSinks(c, seed, PrefillGrid.Kernel.TENSOR, tolerance(c), TensorPrefillKernels.CHUNK);
    }

    /** Logit soft-capping through the tensor-core kernels (the cap applied where a score leaves the MMA's scratch). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelCapsTheScores(PrefillCase c) {
        long seed = TestSeeds.fresh("TensorPrefillKernelsTest soft cap " + c.name());
        PrefillKernelsTest.checkSoftCap(c, seed, PrefillGrid.Kernel.TENSOR, tolerance(c), TensorPrefillKernels.CHUNK);
    }

    static Stream<PrefillCase> nonCausalShapes() {
        return PrefillKernelsTest.nonCausalShapes(shapes());
    }

    /** Without causality through the tensor-core kernels (every row at the context's end). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("nonCausalShapes")
    void kernelAttendsWithoutCausality(PrefillCase c) {
        long seed = TestSeeds.fresh("TensorPrefillKernelsTest non-causal " + c.name());
        PrefillKernelsTest.checkNonCausal(c, seed, PrefillGrid.Kernel.TENSOR, tolerance(c), TensorPrefillKernels.CHUNK);
    }

    static Stream<PrefillCase> treeShapes() {
        return PrefillKernelsTest.treeShapes(shapes());
    }

    /** Token-tree masks through the tensor-core kernels (scores hidden where they leave the MMA's scratch). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("treeShapes")
    void kernelFollowsTreeMasks(PrefillCase c) {
        long seed = TestSeeds.fresh("TensorPrefillKernelsTest trees " + c.name());
        PrefillKernelsTest.checkTrees(c, seed, PrefillGrid.Kernel.TENSOR, tolerance(c), TensorPrefillKernels.CHUNK);
    }

    /** ALiBi through the tensor-core kernels (the bias added where a score leaves the MMA's scratch). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("shapes")
    void kernelAddsAlibi(PrefillCase c) {
        long seed = TestSeeds.fresh("TensorPrefillKernelsTest alibi " + c.name());
        PrefillKernelsTest.checkAlibi(c, seed, PrefillGrid.Kernel.TENSOR, tolerance(c), TensorPrefillKernels.CHUNK);
    }

    /** Sliding-window block release through the tensor-core kernels ({@link PrefillKernelsTest#checkReleased}). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("windowedShapes")
    void kernelReadsNoReleasedBlock(PrefillCase c) {
        long seed = TestSeeds.fresh("TensorPrefillKernelsTest released " + c.name());
        PrefillKernelsTest.checkReleased(c, seed, PrefillGrid.Kernel.TENSOR, tolerance(c), TensorPrefillKernels.CHUNK);
    }

    /**
     * Queries scaled x30 so that scores span hundreds: rows exceed their references (by more than
     * {@link TensorPrefillKernels#GROW}) in later chunks, so segments end, fold and restart at that
     * chunk, and the result must still match (split and unsplit).
     */
    @Test
    void scoresSpanningHundredsStayExact() {
        checkUnsplitAndSplit(PrefillCase.of("GQA 4, queries x30", new int[] {300, 130}, new int[] {40, 17}, 8, 2, 128, 16,
                KvDtype.FP16, PrefillBatch.NO_WINDOW), 30f, 4 * TensorPrefillKernels.CHUNK);
    }

    /**
     * The case's queries times {@code qScale}, run unsplit (forward schedule) and split into
     * partitions of {@code splitTokens} (a schedule the seed picks), each against fp64.
     */
    private static void checkUnsplitAndSplit(PrefillCase c, float qScale, int splitTokens) {
        long seed = TestSeeds.fresh("TensorPrefillKernelsTest " + c.name());
        PrefillWorkload w = c.workload(seed);
        FloatArray q = w.q();
        for (int i = 0; i < q.getSize(); i++) {
            q.set(i, q.get(i) * qScale);
        }
        double[] ref = w.reference();
        PrefillGrid plain = PrefillGrid.plan(w.spec(), w.batch(), PrefillGrid.Kernel.TENSOR);
        PrefillGrid split = PrefillKernelsTest.splitInto(plain, w.batch(), splitTokens);
        KernelEmulator.Schedule order = KernelEmulator.Schedule.values()[(int) (seed & 1)];
        check(c + " " + plain + " FORWARD seed=" + seed, ref, PrefillKernelsTest.run(w, plain, KernelEmulator.Schedule.FORWARD), tolerance(c));
        check(c + " " + split + " " + order + " seed=" + seed, ref, PrefillKernelsTest.run(w, split, order), tolerance(c));
    }

    @Test
    void autoPicksTensorCoresOnlyWhereTheKernelRuns() {
        AttentionSpec llama = new AttentionSpec(32, 8, 128, 0.088f);
        assertEquals(PrefillGrid.Kernel.TENSOR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, llama, KvDtype.FP16, Backend.PTX));
        assertEquals(PrefillGrid.Kernel.TENSOR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, llama, KvDtype.FP16, Backend.CUDA));
        assertEquals(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, llama, KvDtype.FP16, Backend.OPENCL));
        assertEquals(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, llama, KvDtype.FP32, Backend.PTX));
        assertEquals(PrefillGrid.Kernel.TENSOR,   // head dims below 128: padded to the kernel's 128-wide tiles
                PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, new AttentionSpec(32, 8, 64, 0.125f), KvDtype.FP16, Backend.PTX));
        AttentionSpec gemma = new AttentionSpec(16, 8, 256, 0.0625f);
        assertEquals(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, gemma, KvDtype.FP16, Backend.CUDA));
        IllegalArgumentException d256 = assertThrows(IllegalArgumentException.class,
                () -> PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.TENSOR, gemma, KvDtype.FP16, Backend.CUDA));
        assertTrue(d256.getMessage().contains("headDim=256"), d256.getMessage());
        assertEquals(PrefillGrid.Kernel.TENSOR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, llama, KvDtype.FP8_E4M3, Backend.PTX));
        assertEquals(PrefillGrid.Kernel.TENSOR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, llama, KvDtype.INT8, Backend.CUDA));
        assertEquals(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.AUTO, llama, KvDtype.INT8, Backend.OPENCL));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PrefillGrid.Kernel.resolve(PrefillGrid.Kernel.TENSOR, llama, KvDtype.FP32, Backend.PTX));
        assertTrue(e.getMessage().contains("dtype=FP32"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PrefillGrid.Kernel.parse("fast"));
    }

    private static void check(String what, double[] ref, FloatArray out, double tolerance) {
        double rel = ReferenceAttention.relativeL2(out, ref);
        assertTrue(rel < tolerance, what + ": relative L2 error " + rel + " (NaN: an output was not written)");
    }
}
