package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.kernels.ChunkDecodeKernels;
import dev.pagedattn.kernels.HeadPairDecodeKernels;
import dev.pagedattn.kernels.HeadQuadDecodeKernels;
import dev.pagedattn.kernels.PagedDecodeKernels;
import dev.pagedattn.kernels.PrefillKernels;
import dev.pagedattn.kernels.ScatterKernels;
import dev.pagedattn.kernels.StreamDecodeKernels;
import dev.pagedattn.kernels.TensorPrefillKernels;
import dev.pagedattn.kernels.WarpQuadDecodeKernels;
import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.KernelContext;

/**
 * The register bounds of tornado-config/nvrtc (bin/nvrtc-bounds.sh): every bound names a kernel that exists and
 * the work-group size its plan launches (CUDA refuses a launch above a kernel's bound), and the script moves
 * CUDA_PATH as it says.
 */
class NvrtcBoundsTest {
    private static final Path INCLUDE = Path.of("tornado-config/nvrtc/include");
    private static final Pattern BOUND = Pattern.compile("#define (\\w+) __launch_bounds__\\((\\d+), (\\d+)\\) (\\w+)");
    /** The work-group size each boundable kernel is launched with; a kernel bounded in the header must be here. */
    private static final Map<String, Integer> LAUNCHED_WITH = Map.of("prefillF16Async", PrefillGrid.LOCAL,
            "attentionF16x2Bounded", StreamDecodeKernels.LOCAL, "attentionF16x2D256Bounded", StreamDecodeKernels.LOCAL);
    private static final List<Class<?>> KERNEL_CLASSES = List.of(ChunkDecodeKernels.class, HeadPairDecodeKernels.class,
            HeadQuadDecodeKernels.class, PagedDecodeKernels.class, PrefillKernels.class, ScatterKernels.class,
            StreamDecodeKernels.class, TensorPrefillKernels.class, WarpQuadDecodeKernels.class);

    @Test
    void everyBoundNamesAKernelAndTheWorkGroupSizeItIsLaunchedWith() throws IOException {
        List<String> defines = Files.readAllLines(INCLUDE.resolve("paged-attention-bounds.h")).stream()
                .filter(l -> l.startsWith("#define ") && !l.startsWith("#define PAGED_ATTENTION_BOUNDS_H")).toList();
        assertFalse(defines.isEmpty(), "no bound in paged-attention-bounds.h");
        for (String line : defines) {
            Matcher m = BOUND.matcher(line);
            assertTrue(m.matches(), "not a bound of the form '#define K __launch_bounds__(T, B) K': " + line);
            String kernel = m.group(1);
            assertEquals(kernel, m.group(4), "the macro must expand to the name it replaces: " + line);
            assertNotNull(kernelMethod(kernel), kernel + " is not a public static kernel method (KernelContext first) of "
                    + "dev.pagedattn.kernels: a renamed kernel loses its bound silently");
            Integer local = LAUNCHED_WITH.get(kernel);
            assertNotNull(local, kernel + " is bounded in the header but its work-group size is not known to this test");
            assertEquals(local.intValue(), Integer.parseInt(m.group(2)), kernel + ": threads per block of the bound");
            int blocks = Integer.parseInt(m.group(3));
            int registers = 65536 / (local * blocks) / 8 * 8;
            assertTrue(registers >= 64, kernel + ": a bound of " + registers + " registers leaves too few for any kernel here");
        }
    }

    @Test
    void theShimIncludesTheToolkitHeaderThenTheBounds() throws IOException {
        List<String> lines = Files.readAllLines(INCLUDE.resolve("cuda_fp16.h")).stream().filter(l -> l.startsWith("#")).toList();
        assertEquals(List.of("#include_next <cuda_fp16.h>", "#include \"paged-attention-bounds.h\""), lines);
    }

    @Test
    void theScriptPointsCudaPathAtTheShimAndKeepsTheToolkitReachable() throws IOException, InterruptedException {
        String shim = INCLUDE.getParent().toRealPath().toString();
        assertEquals(shim + "|||", sourced(Map.of()));
        assertEquals(shim + "|/opt/cuda||", sourced(Map.of("CUDA_PATH", "/opt/cuda")));
        assertEquals(shim + "|/usr/local/cuda|/opt/cuda|", sourced(Map.of("CUDA_PATH", "/opt/cuda", "CUDA_HOME", "/usr/local/cuda")));
        assertEquals("/opt/cuda|||", sourced(Map.of("CUDA_PATH", "/opt/cuda", "PA_NVRTC_BOUNDS", "off")));
    }

    private static String sourced(Map<String, String> env) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("bash", "-c",
                "source bin/nvrtc-bounds.sh; printf '%s|%s|%s|' \"${CUDA_PATH:-}\" \"${CUDA_HOME:-}\" \"${CUDA_ROOT:-}\"");
        pb.environment().keySet().removeAll(List.of("CUDA_PATH", "CUDA_HOME", "CUDA_ROOT", "PA_NVRTC_BOUNDS"));
        pb.environment().putAll(env);
        pb.redirectErrorStream(true);
        Process p = pb.start();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "bin/nvrtc-bounds.sh did not return");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    private static Method kernelMethod(String name) {
        for (Class<?> c : KERNEL_CLASSES) {
            for (Method m : c.getMethods()) {
                if (m.getName().equals(name) && Modifier.isStatic(m.getModifiers()) && m.getParameterCount() > 0
                        && m.getParameterTypes()[0] == KernelContext.class) {
                    return m;
                }
            }
        }
        return null;
    }
}
