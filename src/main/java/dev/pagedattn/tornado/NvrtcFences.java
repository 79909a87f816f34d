package dev.pagedattn.tornado;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether TornadoVM's CUDA backend compiles this process's kernels with the fenced atomics of
 * {@code tornado-config/nvrtc/include/paged-attention-atomics.h}: NVRTC finds that file on {@code $CUDA_PATH/include}
 * (bin/nvrtc-bounds.sh, which {@code bin/pa-tornado cuda} sources, points CUDA_PATH there). The stream kernels merge a
 * split step themselves only then ({@link DecodeGrid#tailMerge}); with TornadoVM's own relaxed atomics a merging work-group
 * could read another partition's partials before they land. {@code -Dpagedattn.tornado.nvrtcFences=true|false} overrides
 * the check (TornadoVM's virtual device, which prints kernels and runs nothing, and A/B runs).
 */
public final class NvrtcFences {
    /** The line of the header that says which protocol it implements. */
    static final String MARKER = "paged-attention: fenced atomicAdd v1";

    private NvrtcFences() {
    }

    /** Whether the fenced atomics are on NVRTC's include path (or the property says so). */
    public static boolean active() {
        String forced = System.getProperty("pagedattn.tornado.nvrtcFences");
        if (forced != null) {
            return Boolean.parseBoolean(forced);
        }
        return found(System.getenv("CUDA_PATH"));
    }

    /** Whether {@code cudaPath}/include holds the fenced atomics and the cuda_fp16.h that includes them. */
    static boolean found(String cudaPath) {
        if (cudaPath == null || cudaPath.isBlank()) {
            return false;
        }
        Path include = Path.of(cudaPath, "include");
        try {
            return Files.readString(include.resolve("paged-attention-atomics.h")).contains(MARKER)
                    && Files.readString(include.resolve("cuda_fp16.h")).contains("paged-attention-atomics.h");
        } catch (IOException e) {
            return false;
        }
    }
}
