package dev.pagedattn.tornado;

/**
 * What a TornadoVM backend can compile, as far as the kernel choice is concerned (TornadoVM
 * 5.2.0-jdk25). Resolved once from the device a plan runs on.
 */
public enum Backend {
    /** Java -> PTX text -> driver JIT: warp shuffles ({@code shfl.sync}), fast-math exp, 16-bit fp16 loads only, tensor cores. */
    PTX(true, false, true),
    /** Java -> CUDA C -> NVRTC cubin: warp shuffles ({@code __shfl_*_sync}), packed 32-bit fp16 loads ({@code getHalf2}), tensor cores. */
    CUDA(true, true, true),
    /** OpenCL (NVIDIA, PoCL): no warp operations or tensor cores at this TornadoVM version, 16-bit fp16 loads. */
    OPENCL(false, false, false);

    private final boolean warpOperations;
    private final boolean packedHalfLoads;
    private final boolean tensorCores;

    Backend(boolean warpOperations, boolean packedHalfLoads, boolean tensorCores) {
        this.warpOperations = warpOperations;
        this.packedHalfLoads = packedHalfLoads;
        this.tensorCores = tensorCores;
    }

    /** Whether {@code KernelContext.mmaLoadA/mmaLoadB/mma/mmaStore} compile ({@code ldmatrix}, {@code mma.sync.m16n8k16}; sm_80+). */
    public boolean tensorCores() {
        return tensorCores;
    }

    /** Whether {@code KernelContext.simdShuffleDown/simdBroadcastFirst} compile to warp shuffles. */
    public boolean warpOperations() {
        return warpOperations;
    }

    /** Whether {@code HalfFloatArray.getHalf2} compiles (one 32-bit load of two fp16 values). */
    public boolean packedHalfLoads() {
        return packedHalfLoads;
    }

    /**
     * Whether {@code KernelContext.asyncCopyToLocal} compiles to an asynchronous copy ({@code cp.async}, sm_80+):
     * the CUDA backend only (PTX cannot build it at all in TornadoVM 5.2, OpenCL copies synchronously).
     */
    public boolean asyncCopies() {
        return this == CUDA;
    }

    /** The backend of TornadoVM's {@code TornadoVMBackendType} name; any other backend counts as OpenCL-like. */
    public static Backend of(String tornadoBackendName) {
        return switch (tornadoBackendName) {
            case "PTX" -> PTX;
            case "CUDA" -> CUDA;
            default -> OPENCL;
        };
    }
}
