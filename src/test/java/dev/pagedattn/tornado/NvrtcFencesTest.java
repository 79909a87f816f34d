package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The check that lets the stream kernels merge a split step themselves only with the fenced atomics on NVRTC's path. */
class NvrtcFencesTest {
    @Test
    void findsTheProjectsHeadersAndNothingElse(@TempDir Path dir) throws IOException {
        assertTrue(NvrtcFences.found(Path.of("tornado-config", "nvrtc").toAbsolutePath().toString()));
        assertFalse(NvrtcFences.found(null));
        assertFalse(NvrtcFences.found(dir.toString()));
        Path include = Files.createDirectories(dir.resolve("include"));
        // the toolkit's own include folder (no atomics header), then one whose cuda_fp16.h does not include ours
        Files.writeString(include.resolve("cuda_fp16.h"), "/* the toolkit's */\n");
        assertFalse(NvrtcFences.found(dir.toString()));
        Files.copy(Path.of("tornado-config", "nvrtc", "include", "paged-attention-atomics.h"), include.resolve("paged-attention-atomics.h"));
        assertFalse(NvrtcFences.found(dir.toString()));
        Files.writeString(include.resolve("cuda_fp16.h"), "#include_next <cuda_fp16.h>\n#include \"paged-attention-atomics.h\"\n");
        assertTrue(NvrtcFences.found(dir.toString()));
    }
}
