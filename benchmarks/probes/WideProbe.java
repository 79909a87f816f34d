import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.LongArray;
import uk.ac.manchester.tornado.api.types.collections.VectorInt4;
import uk.ac.manchester.tornado.api.types.vectors.Int4;
import uk.ac.manchester.tornado.api.types.vectors.Half2;

/**
 * How fast a TornadoVM kernel streams fp16 K/V tiles (4 KB at shuffled tile ids, as a paged pool is read) by
 * load width: 32-bit {@code getHalf2}, 32-bit {@code IntArray} words, 64-bit {@code LongArray} words, and
 * {@code VectorInt4} words, which TornadoVM 5.2's CUDA backend writes as four 32-bit loads. Every variant decodes
 * every half and prints its sum over N (0.875 when right). Run on the CUDA backend from this folder:
 * {@code javac -g -cp $TORNADOVM_HOME/share/java/tornado/tornado-api-5.2.0-jdk25.jar WideProbe.java &&
 * CUDA_PATH=$PWD/nvrtc tornado -cp . WideProbe [h2|i|l|v4]}. {@code nvrtc/include} fixes TornadoVM's
 * {@code Float.float16ToFloat} on that backend (without it the int variants convert by value) and can make
 * {@code VectorInt4.get} one 128-bit load ({@code PA_LOAD_MODE}, see its header). Measured on an H200:
 * benchmarks/NOTES.md, "Sixteenth session".
 */
public class WideProbe {
    static final int N = 1 << 29;          // halves: 1 GiB
    static final int TILE = 2048;          // halves per tile: 16 slots x 128 dims = 4 KB
    static final int LOCAL = 128;

    static float lo(int w) { return Float.float16ToFloat((short) w); }
    static float hi(int w) { return Float.float16ToFloat((short) (w >>> 16)); }

    public static void pagedH2(KernelContext ctx, HalfFloatArray a, IntArray table, FloatArray out) {
        int tid = ctx.localIdx;
        int g = ctx.groupIdx;
        int groups = ctx.globalGroupSizeX / LOCAL;
        int tiles = N / TILE;
        float acc0 = 0f, acc1 = 0f, acc2 = 0f, acc3 = 0f;
        for (int t = g; t < tiles; t += groups) {
            int base = table.get(t) * TILE + 2 * tid;
            Half2 h0 = a.getHalf2(base);
            Half2 h1 = a.getHalf2(base + 2 * LOCAL);
            Half2 h2 = a.getHalf2(base + 4 * LOCAL);
            Half2 h3 = a.getHalf2(base + 6 * LOCAL);
            Half2 h4 = a.getHalf2(base + 8 * LOCAL);
            Half2 h5 = a.getHalf2(base + 10 * LOCAL);
            Half2 h6 = a.getHalf2(base + 12 * LOCAL);
            Half2 h7 = a.getHalf2(base + 14 * LOCAL);
            acc0 += Half2.lowFloat(h0) + Half2.highFloat(h0) + Half2.lowFloat(h4) + Half2.highFloat(h4);
            acc1 += Half2.lowFloat(h1) + Half2.highFloat(h1) + Half2.lowFloat(h5) + Half2.highFloat(h5);
            acc2 += Half2.lowFloat(h2) + Half2.highFloat(h2) + Half2.lowFloat(h6) + Half2.highFloat(h6);
            acc3 += Half2.lowFloat(h3) + Half2.highFloat(h3) + Half2.lowFloat(h7) + Half2.highFloat(h7);
        }
        out.set(ctx.globalIdx, acc0 + acc1 + acc2 + acc3);
    }

    /** 32-bit words of two halves each, decoded from bits. */
    public static void pagedI(KernelContext ctx, IntArray a, IntArray table, FloatArray out) {
        int tid = ctx.localIdx;
        int g = ctx.groupIdx;
        int groups = ctx.globalGroupSizeX / LOCAL;
        int tiles = N / TILE;
        float acc0 = 0f, acc1 = 0f, acc2 = 0f, acc3 = 0f;
        for (int t = g; t < tiles; t += groups) {
            int base = table.get(t) * (TILE / 2) + tid;
            int w0 = a.get(base);
            int w1 = a.get(base + LOCAL);
            int w2 = a.get(base + 2 * LOCAL);
            int w3 = a.get(base + 3 * LOCAL);
            int w4 = a.get(base + 4 * LOCAL);
            int w5 = a.get(base + 5 * LOCAL);
            int w6 = a.get(base + 6 * LOCAL);
            int w7 = a.get(base + 7 * LOCAL);
            acc0 += lo(w0) + hi(w0) + lo(w4) + hi(w4);
            acc1 += lo(w1) + hi(w1) + lo(w5) + hi(w5);
            acc2 += lo(w2) + hi(w2) + lo(w6) + hi(w6);
            acc3 += lo(w3) + hi(w3) + lo(w7) + hi(w7);
        }
        out.set(ctx.globalIdx, acc0 + acc1 + acc2 + acc3);
    }

    /** 64-bit words of four halves each. */
    public static void pagedL(KernelContext ctx, LongArray a, IntArray table, FloatArray out) {
        int tid = ctx.localIdx;
        int g = ctx.groupIdx;
        int groups = ctx.globalGroupSizeX / LOCAL;
        int tiles = N / TILE;
        float acc0 = 0f, acc1 = 0f, acc2 = 0f, acc3 = 0f;
        for (int t = g; t < tiles; t += groups) {
            int base = table.get(t) * (TILE / 4) + tid;
            long w0 = a.get(base);
            long w1 = a.get(base + LOCAL);
            long w2 = a.get(base + 2 * LOCAL);
            long w3 = a.get(base + 3 * LOCAL);
            acc0 += lo((int) w0) + hi((int) w0) + lo((int) (w0 >>> 32)) + hi((int) (w0 >>> 32));
            acc1 += lo((int) w1) + hi((int) w1) + lo((int) (w1 >>> 32)) + hi((int) (w1 >>> 32));
            acc2 += lo((int) w2) + hi((int) w2) + lo((int) (w2 >>> 32)) + hi((int) (w2 >>> 32));
            acc3 += lo((int) w3) + hi((int) w3) + lo((int) (w3 >>> 32)) + hi((int) (w3 >>> 32));
        }
        out.set(ctx.globalIdx, acc0 + acc1 + acc2 + acc3);
    }

    /** 128-bit words of eight halves each. */
    public static void pagedV4(KernelContext ctx, VectorInt4 a, IntArray table, FloatArray out) {
        int tid = ctx.localIdx;
        int g = ctx.groupIdx;
        int groups = ctx.globalGroupSizeX / LOCAL;
        int tiles = N / TILE;
        float acc0 = 0f, acc1 = 0f, acc2 = 0f, acc3 = 0f;
        for (int t = g; t < tiles; t += groups) {
            int base = table.get(t) * (TILE / 8) + tid;
            Int4 v0 = a.get(base);
            Int4 v1 = a.get(base + LOCAL);
            acc0 += lo(v0.getX()) + hi(v0.getX()) + lo(v1.getX()) + hi(v1.getX());
            acc1 += lo(v0.getY()) + hi(v0.getY()) + lo(v1.getY()) + hi(v1.getY());
            acc2 += lo(v0.getZ()) + hi(v0.getZ()) + lo(v1.getZ()) + hi(v1.getZ());
            acc3 += lo(v0.getW()) + hi(v0.getW()) + lo(v1.getW()) + hi(v1.getW());
        }
        out.set(ctx.globalIdx, acc0 + acc1 + acc2 + acc3);
    }

    static void time(String name, TaskGraph tg, int global, double bytes, FloatArray out) {
        WorkerGrid1D w = new WorkerGrid1D(global);
        w.setLocalWork(LOCAL, 1, 1);
        GridScheduler gs = new GridScheduler(tg.getTaskGraphName() + ".t", w);
        try (TornadoExecutionPlan plan = new TornadoExecutionPlan(tg.snapshot())) {
            plan.withGridScheduler(gs).withProfiler(ProfilerMode.SILENT);
            long best = Long.MAX_VALUE;
            TornadoExecutionResult res = null;
            for (int r = 0; r < 12; r++) {
                res = plan.execute();
                long ns = res.getProfilerResult().getDeviceKernelTime();
                if (r >= 2) best = Math.min(best, ns);
            }
            res.transferToHost(out);
            double sum = 0;
            for (int i = 0; i < out.getSize(); i++) sum += out.get(i);
            System.out.printf("%-8s global=%-8d %9.1f us  %7.0f GB/s  sum/N=%.6f%n", name, global, best / 1e3, bytes / best, sum / N);
        } catch (Throwable t) {
            System.out.println(name + " FAILED: " + t);
        }
    }

    public static void main(String[] args) {
        // Every half is 0.5 + (i % 7) / 8, so sum / N = 0.5 + 3/8 up to the rounding of the float sums.
        HalfFloatArray h = new HalfFloatArray(N);
        IntArray ia = new IntArray(N / 2);
        LongArray la = new LongArray(N / 4);
        VectorInt4 va = new VectorInt4(N / 8);
        for (int i = 0; i < N / 2; i++) {
            short b0 = Float.floatToFloat16(0.5f + ((2 * i) % 7) / 8f);
            short b1 = Float.floatToFloat16(0.5f + ((2 * i + 1) % 7) / 8f);
            h.set(2 * i, new HalfFloat(Float.float16ToFloat(b0)));
            h.set(2 * i + 1, new HalfFloat(Float.float16ToFloat(b1)));
            ia.set(i, (b0 & 0xFFFF) | (b1 << 16));
        }
        for (int i = 0; i < N / 4; i++) {
            la.set(i, (ia.get(2 * i) & 0xFFFFFFFFL) | ((long) ia.get(2 * i + 1) << 32));
        }
        for (int i = 0; i < N / 8; i++) {
            va.set(i, new Int4(ia.get(4 * i), ia.get(4 * i + 1), ia.get(4 * i + 2), ia.get(4 * i + 3)));
        }
        int tiles = N / TILE;
        IntArray table = new IntArray(tiles);
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(7);
        int[] perm = new int[tiles];
        for (int i = 0; i < tiles; i++) perm[i] = i;
        for (int i = tiles - 1; i > 0; i--) { int j = rnd.nextInt(i + 1); int t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        for (int i = 0; i < tiles; i++) table.set(i, perm[i]);
        double bytes = 2.0 * N;
        String only = args.length > 0 ? args[0] : "all";
        for (int global : new int[] {132 * 16 * LOCAL, 132 * 32 * LOCAL}) {
            FloatArray out = new FloatArray(global);
            KernelContext ctx = new KernelContext();
            if (only.equals("all") || only.equals("h2"))
                time("pagedH2", new TaskGraph("h" + global).transferToDevice(DataTransferMode.FIRST_EXECUTION, h, table)
                        .task("t", WideProbe::pagedH2, ctx, h, table, out).transferToHost(DataTransferMode.UNDER_DEMAND, out), global, bytes, out);
            if (only.equals("all") || only.equals("i"))
                time("pagedI", new TaskGraph("i" + global).transferToDevice(DataTransferMode.FIRST_EXECUTION, ia, table)
                        .task("t", WideProbe::pagedI, ctx, ia, table, out).transferToHost(DataTransferMode.UNDER_DEMAND, out), global, bytes, out);
            if (only.equals("all") || only.equals("l"))
                time("pagedL", new TaskGraph("l" + global).transferToDevice(DataTransferMode.FIRST_EXECUTION, la, table)
                        .task("t", WideProbe::pagedL, ctx, la, table, out).transferToHost(DataTransferMode.UNDER_DEMAND, out), global, bytes, out);
            if (only.equals("all") || only.equals("v4"))
                time("pagedV4", new TaskGraph("v" + global).transferToDevice(DataTransferMode.FIRST_EXECUTION, va, table)
                        .task("t", WideProbe::pagedV4, ctx, va, table, out).transferToHost(DataTransferMode.UNDER_DEMAND, out), global, bytes, out);
        }
    }
}
