package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The fp32 and 8-bit prefill kernels are the fp16 one with other pools, and the tensor kernel for PTX is the CUDA
 * one with plain copies, so a fix to one cannot miss the others.
 */
class PrefillKernelSourceTest {

    @Test
    void fp32PrefillIsTheFp16PrefillWithFloatPools() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/PrefillKernels.java"));
        String expected = method(src, "prefillF16(").replace("prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool",
                "prefillF32(KernelContext ctx, FloatArray kPool, FloatArray vPool").replace(".getFloat32()", "");
        assertEquals(expected, method(src, "prefillF32("), "fp16 and fp32 prefill bodies diverged");
    }

    @Test
    void eightBitPrefillIsTheFp16PrefillUnderThePackedRule() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/PrefillKernels.java"));
        String q8 = method(src, "prefillQ8(");
        assertEquals(KernelSourceTest.tokens(PackedTwin.prefillFromF16(method(src, "prefillF16("))), KernelSourceTest.tokens(q8),
                "PrefillKernels: the 8-bit body is not the fp16 body under PackedTwin's rule");
        assertEquals(2, q8.split("PackedCodes.value\\(", -1).length - 1, "one packed read for K and one for V");
        assertTrue(!q8.contains("getFloat32"), "16-bit loads left in the 8-bit body");
    }

    @Test
    void tensorPrefillForPtxIsTheCudaOneWithPlainCopies() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/TensorPrefillKernels.java"));
        String async = method(src, "prefillF16Async(");
        String expected = async.replace("prefillF16Async(", "prefillF16(")
                .replaceAll("ctx\\.asyncCopyToLocal\\(tile, (.*), ([kv]Pool), (.*)\\);", "tile[$1] = pairBits($2, $3);")
                .replaceAll("ctx\\.asyncCopy(Commit|WaitGroup)\\(\\d*\\);", "");
        assertEquals(3, async.split("asyncCopyToLocal\\(", -1).length - 1, "the K, V and next-K copies");
        assertEquals(KernelSourceTest.tokens(expected), KernelSourceTest.tokens(method(src, "prefillF16(")),
                "TensorPrefillKernels: the PTX body is not the CUDA body with plain copies");
    }

    private static String method(String src, String signature) {
        int start = src.indexOf("public static void " + signature);
        assertTrue(start >= 0, "no method " + signature);
        return src.substring(start, src.indexOf("\n    }\n", start));
    }
}
