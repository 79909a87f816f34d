package dev.pagedattn.kernels;

import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.annotations.Parallel;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Probes of what the device can stream, measured in the same run as the decode kernels so that
 * results read as a share of it: a grid-stride read (each work-item sums a strided slice and
 * writes one float, so reads dominate) and a plain {@code @Parallel} copy.
 */
public final class BandwidthProbeKernels {
    private BandwidthProbeKernels() {
    }

    /** {@code partial[globalIdx] = sum of in[globalIdx + k * globalSize]}; reads all of {@code in}. */
    public static void readSum(KernelContext ctx, FloatArray in, FloatArray partial, int n) {
        int gid = ctx.globalIdx;
        int stride = ctx.globalGroupSizeX;
        float s = 0f;
        for (int i = gid; i < n; i += stride) {
            s += in.get(i);
        }
        partial.set(gid, s);
    }

    /** {@code out[i] = in[i]} for every i. */
    public static void copy(FloatArray in, FloatArray out) {
        for (@Parallel int i = 0; i < in.getSize(); i++) {
            out.set(i, in.get(i));
        }
    }
}
