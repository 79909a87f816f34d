import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Wall time of one {@code execute()} of a TornadoVM plan under CUDA graphs, by the number of tasks, of
 * distinct array arguments and of scalar arguments (tiny kernels of one 128-thread work-group; one array
 * sent and the output copied back on every execution, as a decode step does). Runs on TornadoVM's CUDA
 * or PTX backend; see benchmarks/README.md ("Files") and NOTES.md ("l1").
 */
public class ArgProbe {
    public static void t2(KernelContext ctx, IntArray a, FloatArray out) {
        int gid = ctx.globalIdx;
        out.set(gid, out.get(gid) + a.get(0));
    }
    public static void t8(KernelContext ctx, IntArray a, IntArray b, IntArray c, IntArray d, IntArray e, IntArray f, IntArray g, FloatArray out) {
        int gid = ctx.globalIdx;
        out.set(gid, out.get(gid) + a.get(0) + b.get(0) + c.get(0) + d.get(0) + e.get(0) + f.get(0) + g.get(0));
    }
    public static void t8s(KernelContext ctx, IntArray a, IntArray b, IntArray c, IntArray d, IntArray e, IntArray f, IntArray g, FloatArray out,
                           int s1, int s2, int s3, int s4, int s5, int s6, float s7) {
        int gid = ctx.globalIdx;
        out.set(gid, out.get(gid) + a.get(0) + b.get(0) + c.get(0) + d.get(0) + e.get(0) + f.get(0) + g.get(0) + s1 + s2 + s3 + s4 + s5 + s6 + s7);
    }

    static void run(String name, int tasks, int kind, boolean shared) {
        IntArray[] in = new IntArray[7 * tasks];
        for (int i = 0; i < in.length; i++) { in[i] = new IntArray(64); in[i].init(1); }
        FloatArray[] outs = new FloatArray[tasks];
        TaskGraph tg = new TaskGraph(name);
        tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, in[0]);
        for (int i = 1; i < in.length; i++) tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, in[i]);
        GridScheduler gs = new GridScheduler();
        for (int t = 0; t < tasks; t++) {
            outs[t] = shared && t > 0 ? outs[0] : new FloatArray(128);
            if (!(shared && t > 0)) tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, outs[t]);
            int o = shared ? 0 : 7 * t;
            KernelContext ctx = new KernelContext();
            if (kind == 2) tg.task("t" + t, ArgProbe::t2, ctx, in[o], outs[t]);
            else if (kind == 8) tg.task("t" + t, ArgProbe::t8, ctx, in[o], in[o + 1], in[o + 2], in[o + 3], in[o + 4], in[o + 5], in[o + 6], outs[t]);
            else tg.task("t" + t, ArgProbe::t8s, ctx, in[o], in[o + 1], in[o + 2], in[o + 3], in[o + 4], in[o + 5], in[o + 6], outs[t], 1, 2, 3, 4, 5, 6, 7f);
            WorkerGrid1D w = new WorkerGrid1D(128);
            w.setLocalWork(128, 1, 1);
            gs.addWorkerGrid(name + ".t" + t, w);
        }
        tg.transferToHost(DataTransferMode.EVERY_EXECUTION, outs[0]);
        try (TornadoExecutionPlan plan = new TornadoExecutionPlan(tg.snapshot())) {
            plan.withGridScheduler(gs).withCUDAGraph();
            long best = Long.MAX_VALUE;
            long[] all = new long[1000];
            for (int r = 0; r < 1050; r++) {
                long t0 = System.nanoTime();
                plan.execute();
                long wall = System.nanoTime() - t0;
                if (r >= 50) all[r - 50] = wall;
            }
            java.util.Arrays.sort(all);
            System.out.printf("%-14s tasks=%d args/task=%-2d %-9s wall min %7.1f us median %7.1f us%n", name, tasks,
                    kind == 2 ? 2 : kind == 8 ? 8 : 15, shared ? "shared" : "distinct", all[0] / 1e3, all[500] / 1e3);
        } catch (Throwable t) {
            System.out.println(name + " FAILED: " + t);
        }
    }

    public static void main(String[] args) {
        for (int rep = 0; rep < 2; rep++) {
            run("a1x2" + rep, 1, 2, false);
            run("a1x8" + rep, 1, 8, false);
            run("a1x15" + rep, 1, 15, false);
            run("a2x8s" + rep, 2, 8, true);
            run("a3x8s" + rep, 3, 8, true);
            run("a3x8d" + rep, 3, 8, false);
            run("a3x2d" + rep, 3, 2, false);
            run("a2x15s" + rep, 2, 15, true);
        }
    }
}
