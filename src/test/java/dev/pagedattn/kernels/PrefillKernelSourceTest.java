package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The fp32 prefill kernel is the fp16 one with float pools, so a fix to one cannot miss the other. */
class PrefillKernelSourceTest {

    @Test
    void fp32PrefillIsTheFp16PrefillWithFloatPools() throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/PrefillKernels.java"));
        String expected = method(src, "prefillF16(").replace("prefillF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool",
                "prefillF32(KernelContext ctx, FloatArray kPool, FloatArray vPool").replace(".getFloat32()", "");
        assertEquals(expected, method(src, "prefillF32("), "fp16 and fp32 prefill bodies diverged");
    }

    private static String method(String src, String signature) {
        int start = src.indexOf("public static void " + signature);
        assertTrue(start >= 0, "no method " + signature);
        return src.substring(start, src.indexOf("\n    }\n", start));
    }
}
