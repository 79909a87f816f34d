package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The stream kernel's unrolled body is generated (src/build/stream_kernel.py): the committed class must
 * be exactly what the generator prints, so a hand edit of one of its hundreds of named scalars cannot
 * drift from the rest. Needs python3 on PATH (skipped without it).
 */
class StreamKernelSourceTest {

    @Test
    void committedKernelIsTheGeneratorsOutput() throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder("python3", "src/build/stream_kernel.py").redirectErrorStream(true).start();
        } catch (IOException noPython) {
            assumeTrue(false, "python3 is not on PATH: " + noPython.getMessage());
            return;
        }
        String generated = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the generator did not finish");
        assertEquals(0, p.exitValue(), "the generator failed:\n" + generated);
        String committed = Files.readString(Path.of("src/main/java/dev/pagedattn/kernels/StreamDecodeKernels.java"));
        assertEquals(committed, generated, "StreamDecodeKernels.java differs from src/build/stream_kernel.py's output: "
                + "regenerate it with python3 src/build/stream_kernel.py > src/main/java/dev/pagedattn/kernels/StreamDecodeKernels.java");
    }
}
