package dev.pagedattn.tornado;

import dev.pagedattn.kernels.BandwidthProbeKernels;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Measures, with TornadoVM kernels on the device in use, what it can stream: a grid-stride read
 * of {@code bytes} (the ceiling decode results are compared with) and a {@code @Parallel} copy.
 */
public final class BandwidthProbe {
    static {
        PlanParts.defaults(); // TornadoVM properties the JVM's flags leave unset, before TornadoVM's runtime starts
    }

    /** Best read and copy rates in GB/s (copy counts read + write bytes). */
    public record Result(double readGBs, double copyGBs, long bytes) {
    }

    private BandwidthProbe() {
    }

    public static Result measure(long bytes, int runs, String device) {
        int n = (int) Math.min(bytes / Float.BYTES, Integer.MAX_VALUE - 64);
        n -= n % 1024;
        FloatArray in = new FloatArray(n);
        in.init(1f);
        int local = 256;
        int groups = 132 * 16;
        FloatArray partial = new FloatArray(groups * local);
        KernelContext ctx = new KernelContext();
        WorkerGrid1D grid = new WorkerGrid1D(groups * local);
        grid.setLocalWork(local, 1, 1);
        TaskGraph read = new TaskGraph("probeRead")
                .transferToDevice(DataTransferMode.FIRST_EXECUTION, in)
                .task("read", BandwidthProbeKernels::readSum, ctx, in, partial, n)
                .transferToHost(DataTransferMode.UNDER_DEMAND, partial);
        long bestRead = best(read.snapshot(), new GridScheduler("probeRead.read", grid), runs, device);
        FloatArray copy = new FloatArray(n);
        TaskGraph copyGraph = new TaskGraph("probeCopy")
                .transferToDevice(DataTransferMode.FIRST_EXECUTION, in)
                .task("copy", BandwidthProbeKernels::copy, in, copy)
                .transferToHost(DataTransferMode.UNDER_DEMAND, copy);
        long bestCopy = best(copyGraph.snapshot(), null, runs, device);
        long b = (long) n * Float.BYTES;
        return new Result(b / (double) bestRead, 2.0 * b / bestCopy, b);
    }

    private static long best(ImmutableTaskGraph graph, GridScheduler scheduler, int runs, String device) {
        long best = Long.MAX_VALUE;
        try (TornadoExecutionPlan plan = new TornadoExecutionPlan(graph)) {
            plan.withProfiler(ProfilerMode.SILENT);
            if (scheduler != null) {
                plan.withGridScheduler(scheduler);
            }
            if (device != null) {
                String[] bd = device.split(":");
                plan.withDevice(TornadoExecutionPlan.getDevice(Integer.parseInt(bd[0]), Integer.parseInt(bd[1])));
            }
            for (int i = 0; i < runs + 2; i++) {
                long t = plan.execute().getProfilerResult().getDeviceKernelTime();
                if (i >= 2) { // the first runs carry the upload and the JIT
                    best = Math.min(best, t);
                }
            }
            plan.freeDeviceMemory();
        } catch (Exception e) {
            throw new IllegalStateException("bandwidth probe failed: " + e.getMessage(), e);
        }
        return best;
    }
}
