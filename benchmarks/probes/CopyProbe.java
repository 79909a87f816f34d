import java.lang.foreign.MemorySegment;

import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;

/**
 * What a decode step's per-step rows cost: wall time of one {@code execute()} of a one-task plan (one 128-thread
 * work-group, so the kernel is negligible) that sends an array of n elements to the device and copies an array of n
 * back, as a decode plan sends its query rows and copies its output rows, by n, with and without CUDA graphs, fp32
 * and fp16 elements; next to the host's {@code MemorySegment.copy} of the same bytes (a plan's copy between the
 * caller's arrays and its own). Runs on TornadoVM's CUDA or PTX backend; see benchmarks/README.md ("Files") and
 * NOTES.md ("c1").
 */
public class CopyProbe {
    public static void touchF(KernelContext ctx, FloatArray in, FloatArray out) {
        int gid = ctx.globalIdx;
        out.set(gid, in.get(gid) + 1f);
    }

    public static void touchH(KernelContext ctx, HalfFloatArray in, HalfFloatArray out) {
        int gid = ctx.globalIdx;
        out.set(gid, in.get(gid));
    }

    static void run(int n, boolean half, boolean graph, int calls) {
        String name = "c" + n + (half ? "h" : "f") + (graph ? "g" : "n");
        TaskGraph tg = new TaskGraph(name);
        Object in;
        Object out;
        KernelContext ctx = new KernelContext();
        if (half) {
            HalfFloatArray i = new HalfFloatArray(n);
            HalfFloatArray o = new HalfFloatArray(n);
            tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, i);
            tg.task("t", CopyProbe::touchH, ctx, i, o);
            in = i;
            out = o;
        } else {
            FloatArray i = new FloatArray(n);
            FloatArray o = new FloatArray(n);
            tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, i);
            tg.task("t", CopyProbe::touchF, ctx, i, o);
            in = i;
            out = o;
        }
        tg.transferToHost(DataTransferMode.EVERY_EXECUTION, out);
        WorkerGrid1D w = new WorkerGrid1D(128);
        w.setLocalWork(128, 1, 1);
        GridScheduler gs = new GridScheduler();
        gs.addWorkerGrid(name + ".t", w);
        long bytes = 2L * n * (half ? 2 : 4); // in and out
        try (TornadoExecutionPlan plan = new TornadoExecutionPlan(tg.snapshot())) {
            plan.withGridScheduler(gs);
            if (graph) {
                plan.withCUDAGraph();
            }
            long[] all = new long[calls];
            for (int r = 0; r < calls + 200; r++) {
                long t0 = System.nanoTime();
                plan.execute();
                long wall = System.nanoTime() - t0;
                if (r >= 200) {
                    all[r - 200] = wall;
                }
            }
            java.util.Arrays.sort(all);
            System.out.printf("execute %-5s %-6s n=%-8d in+out %8.3f MB  wall min %8.1f us median %8.1f us  %6.1f GB/s at the median%n",
                    half ? "fp16" : "fp32", graph ? "graph" : "plain", n, bytes / 1e6, all[0] / 1e3, all[calls / 2] / 1e3,
                    bytes / (double) all[calls / 2]);
        } catch (Throwable t) {
            System.out.println(name + " FAILED: " + t);
        }
        // the host side of a step: the caller's rows into the plan's array and back
        MemorySegment a = half ? ((HalfFloatArray) in).getSegment() : ((FloatArray) in).getSegment();
        MemorySegment b = half ? ((HalfFloatArray) out).getSegment() : ((FloatArray) out).getSegment();
        MemorySegment user = java.lang.foreign.Arena.ofAuto().allocate(a.byteSize(), 64);
        long[] all = new long[calls];
        for (int r = 0; r < calls + 200; r++) {
            long t0 = System.nanoTime();
            MemorySegment.copy(user, 0, a, 0, a.byteSize());
            MemorySegment.copy(b, 0, user, 0, b.byteSize());
            long wall = System.nanoTime() - t0;
            if (r >= 200) {
                all[r - 200] = wall;
            }
        }
        java.util.Arrays.sort(all);
        System.out.printf("memcpy  %-5s %-6s n=%-8d in+out %8.3f MB  wall min %8.1f us median %8.1f us  %6.1f GB/s at the median%n",
                half ? "fp16" : "fp32", "host", n, bytes / 1e6, all[0] / 1e3, all[calls / 2] / 1e3, bytes / (double) all[calls / 2]);
    }

    public static void main(String[] args) {
        int[] sizes = {4096, 131072, 524288, 1048576, 2097152};  // 1 .. 512 sequences of 32 heads x 128 dims
        for (int rep = 0; rep < 2; rep++) {
            for (int n : sizes) {
                for (boolean graph : new boolean[] {true, false}) {
                    run(n, false, graph, 300);
                }
                run(n, true, true, 300);
            }
        }
    }
}
