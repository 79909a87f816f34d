package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * TornadoVM kernels cannot be generic over the pool type, so each attention kernel exists for fp16
 * and fp32 pools. This keeps the two bodies identical apart from the pool types and the fp16
 * widening, so a fix to one cannot silently miss the other.
 */
class KernelSourceTest {

    @ParameterizedTest
    @ValueSource(strings = {"WarpQuadDecodeKernels", "HeadQuadDecodeKernels", "HeadPairDecodeKernels"})
    void fp32BodyIsTheFp16BodyWithFloatPools(String kernelClass) throws IOException {
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/" + kernelClass + ".java"));
        String f16 = method(src, "attentionF16(");
        String f32 = method(src, "attentionF32(");
        String expected = f16.replace("attentionF16(KernelContext ctx, HalfFloatArray kPool, HalfFloatArray vPool",
                "attentionF32(KernelContext ctx, FloatArray kPool, FloatArray vPool").replace(".getFloat32()", "");
        assertEquals(expected, f32, kernelClass + ": fp16 and fp32 attention bodies diverged");
    }

    @ParameterizedTest
    @ValueSource(strings = {"ParallelDecodeKernels.decode", "ScatterKernels.scatter"})
    void otherFp32KernelsAreTheirFp16TwinWithFloatArrays(String kernel) throws IOException {
        String kernelClass = kernel.substring(0, kernel.indexOf('.'));
        String name = kernel.substring(kernel.indexOf('.') + 1);
        String src = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/" + kernelClass + ".java"));
        String expected = method(src, name + "F16(").replace(name + "F16(", name + "F32(")
                .replace("HalfFloatArray", "FloatArray").replace(".getFloat32()", "");
        assertEquals(expected, method(src, name + "F32("), kernel + ": fp16 and fp32 bodies diverged");
    }

    @ParameterizedTest
    @ValueSource(strings = {"WarpQuadDecodeKernels", "HeadQuadDecodeKernels", "HeadPairDecodeKernels"})
    void registerKernelsUseNoPrivateArrays(String kernelClass) throws IOException {
        // TornadoVM puts private arrays in local (stack) memory: these kernels keep state in scalars.
        String body = method(Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/" + kernelClass + ".java")),
                "attentionF16(");
        assertTrue(!body.contains("= new float["), kernelClass + " allocates a private array");
    }

    private static String method(String src, String signature) {
        int start = src.indexOf("public static void " + signature);
        assertTrue(start >= 0, "no method " + signature);
        int end = src.indexOf("\n    }\n", start);
        return src.substring(start, end);
    }
}
