package dev.pagedattn.kernels;

import java.lang.reflect.Field;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.Semaphore;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.enums.MMAShape;
import uk.ac.manchester.tornado.api.types.HalfFloat;
import uk.ac.manchester.tornado.api.types.arrays.DoubleArray;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.LongArray;
import uk.ac.manchester.tornado.api.types.vectors.Half2;

/**
 * Runs a TornadoVM {@link KernelContext} kernel on the plain JVM, so that tests execute the exact
 * kernel code that TornadoVM compiles for the GPU.
 *
 * <p>Model (1-D grids): one {@link KernelContext} per work-item with {@code globalIdx},
 * {@code localIdx}, {@code groupIdx} and the sizes set; each work-item runs on its own virtual
 * thread. Local arrays are shared per work-group in allocation order (the k-th
 * {@code allocate*LocalArray} call of every work-item returns the group's k-th array) and start
 * poisoned (NaN; int arrays {@link #INT_POISON}, an fp16 NaN in both halves), as GPU shared memory
 * starts undefined.
 * {@link KernelContext#localBarrier()} is a real barrier across the group's work-items
 * ({@code globalBarrier} is the same: on TornadoVM it is only a block barrier too).
 *
 * <p>Scheduling is deterministic and adversarial: within a phase (the code between two barriers)
 * the work-items of a group run one after another, in {@link Schedule#FORWARD} or
 * {@link Schedule#REVERSE} order. A kernel that forgets a barrier therefore reads local memory that
 * its neighbours have not written yet (poison) or have already overwritten, and fails in at least
 * one of the two orders. A group whose work-items disagree about a barrier (some return while
 * others wait) raises an error, as it would deadlock or misbehave on a GPU. Work-groups run one
 * after another.
 *
 * <p>Warps: work-items {@code 32w .. 32w+31} of a group form warp {@code w}. The warp operations
 * {@code simdShuffleDown}, {@code simdBroadcastFirst} and {@code simdSum} are rendezvous of the
 * whole warp, with the semantics of the PTX {@code shfl.sync} they lower to (full member mask,
 * clamp 31: a lane whose source lies past lane 31 gets its own value back). A work-item that
 * reaches one waits until every lane of its warp has reached a warp operation; lanes that disagree
 * on the operation, a warp operation in a partial warp (local size not a multiple of 32), or lanes
 * of a warp that sit at a barrier or have returned while others wait at a warp operation raise an
 * error, as the kernel would deadlock or read undefined values on a GPU.
 *
 * <p>Tensor cores ({@code mma.sync.m16n8k16}, fp16 in, fp32 accumulate; {@code mmaBF16} the same with bf16 in): a fragment is opaque to a
 * kernel (TornadoVM lowers it to registers that only {@code mma} and {@code mmaStore} read), so here
 * every lane holds the whole tile: {@code mmaLoadA} the 16 x 16 fp16 tile at {@code byteOffset} of an
 * int local array (row-major, two fp16 per int, low half first: 8 ints a row, {@code ldmatrix.x4}),
 * {@code mmaLoadB} the 16 x 8 tile (k-major, 4 ints a row, {@code ldmatrix.x2.trans}), {@code mma}
 * the 16 x 8 product plus C in fp32, and {@code mmaStore} writes the lane's own four elements in
 * the PTX accumulator layout (lane {@code l}: rows {@code l/4} and {@code l/4+8}, columns
 * {@code 2(l%4)} and {@code 2(l%4)+1}), so a store that some lanes skip leaves holes. The loads and
 * {@code mma} are warp rendezvous; lanes that load at different offsets, an offset that is not a
 * multiple of 16 bytes ({@code ldmatrix} rows) or a tile past the array's end raise an error.
 *
 * <p>Asynchronous copies ({@code cp.async} on the CUDA backend): {@code asyncCopyToLocal} reads its
 * fp16 pair when issued but writes {@link #INT_POISON} to the destination; the pair lands only when
 * a later {@code asyncCopyWaitGroup(n)} of the same work-item completes the group it was committed
 * in (all but the {@code n} most recent committed groups; copies not yet committed stay pending).
 * So a kernel that reads a copy's destination before waiting for it, reads it in another work-item
 * without a barrier after the wait, or issues a copy over data that other work-items still read in
 * the same phase, reads poison. A source index that is odd (a pair not 4-byte aligned, which
 * {@code cp.async} rejects) raises an error.
 */
public final class KernelEmulator {
    /** Order in which the work-items of a group run within each phase. */
    public enum Schedule { FORWARD, REVERSE }

    /** The kernel invocation for one work-item, e.g. {@code ctx -> Kernels.k(ctx, a, b)}. */
    @FunctionalInterface
    public interface Kernel {
        void run(KernelContext ctx);
    }

    private static final Field[] FIELDS = fields("globalIdx", "localIdx", "groupIdx", "globalGroupSizeX",
            "localGroupSizeX", "globalGroupSizeY", "localGroupSizeY", "globalGroupSizeZ", "localGroupSizeZ");
    private static final Object ATOMIC = new Object();
    private static final int WARP_SIZE = 32;
    private static final int RUN = 0;
    private static final int BARRIER = 1;
    private static final int WARP = 2;
    private static final int DONE = 3;
    private static final int OP_SHUFFLE_DOWN = 0;
    private static final int OP_BROADCAST_FIRST = 1;
    private static final int OP_SUM = 2;
    private static final int OP_MMA_LOAD = 3;
    private static final int OP_MMA = 4;
    /** Initial content of int local arrays: 0xFE01 twice, an fp16 NaN in each half (and a negative index). */
    public static final int INT_POISON = 0xFE01FE01;
    private static final int MMA_M = 16;
    private static final int MMA_N = 8;
    private static final int MMA_K = 16;

    private KernelEmulator() {
    }

    /** Launches {@code kernel} over {@code globalSize} work-items in groups of {@code localSize}. */
    public static void launch(int globalSize, int localSize, Schedule schedule, Kernel kernel) {
        if (localSize < 1 || globalSize < 1 || globalSize % localSize != 0) {
            throw new IllegalArgumentException("globalSize=" + globalSize + " must be a positive multiple of localSize=" + localSize);
        }
        if (!Thread.currentThread().isVirtual()) {
            // The baton passes between the driver and a work-item at every barrier and warp
            // operation; between virtual threads that is a continuation switch, between a platform
            // and a virtual thread an OS wake-up (about 10x the cost). So the driver is virtual too.
            Throwable[] failure = new Throwable[1];
            Thread driver = Thread.ofVirtual().start(() -> {
                try {
                    launch(globalSize, localSize, schedule, kernel);
                } catch (Throwable t) {
                    failure[0] = t;
                }
            });
            try {
                driver.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while the emulated kernel ran", e);
            }
            if (failure[0] instanceof RuntimeException r) {
                throw r;
            } else if (failure[0] instanceof Error e) {
                throw e;
            } else if (failure[0] != null) {
                throw new IllegalStateException(failure[0]);
            }
            return;
        }
        for (int g = 0; g < globalSize / localSize; g++) {
            new Group(g, globalSize, localSize, schedule).run(kernel);
        }
    }

    /** One work-group: its shared local arrays and the baton that runs its work-items in turn. */
    private static final class Group {
        final int id;
        final int globalSize;
        final int localSize;
        final int[] order;
        final List<Object> locals = new ArrayList<>();
        final Semaphore[] turn;
        final Semaphore yielded = new Semaphore(0);
        /** Per work-item: {@link #RUN}, {@link #BARRIER}, {@link #WARP} or {@link #DONE}. */
        final int[] state;
        final float[] warpValue;
        final int[] warpOp;
        final int[] warpArg;
        final float[] warpResult;
        volatile Throwable failure;

        Group(int id, int globalSize, int localSize, Schedule schedule) {
            this.id = id;
            this.globalSize = globalSize;
            this.localSize = localSize;
            this.order = new int[localSize];
            for (int i = 0; i < localSize; i++) {
                order[i] = schedule == Schedule.FORWARD ? i : localSize - 1 - i;
            }
            this.turn = new Semaphore[localSize];
            for (int i = 0; i < localSize; i++) {
                turn[i] = new Semaphore(0);
            }
            this.state = new int[localSize];
            this.warpValue = new float[localSize];
            this.warpOp = new int[localSize];
            this.warpArg = new int[localSize];
            this.warpResult = new float[localSize];
        }

        void run(Kernel kernel) {
            Thread[] threads = new Thread[localSize];
            for (int i = 0; i < localSize; i++) {
                WorkItem ctx = new WorkItem(this, i);
                int item = i;
                threads[i] = Thread.ofVirtual().start(() -> {
                    turn[item].acquireUninterruptibly();
                    try {
                        if (failure != null) {
                            throw new IllegalStateException("aborted before start");
                        }
                        kernel.run(ctx);
                    } catch (Throwable t) {
                        if (failure == null) {
                            failure = t;
                        }
                    }
                    state[item] = DONE;
                    yielded.release();
                });
            }
            try {
                while (true) {
                    for (int item : order) {
                        if (state[item] == RUN) {
                            turn[item].release();
                            yielded.acquireUninterruptibly();
                            if (failure != null) {
                                abort(threads);
                                throw new AssertionError("work-item " + item + " of group " + id + " failed: " + failure, failure);
                            }
                        }
                    }
                    boolean runnable = false;
                    for (int base = 0; base + WARP_SIZE <= localSize; base += WARP_SIZE) {
                        runnable |= resolveWarp(base, threads);
                    }
                    if (runnable) {
                        continue;
                    }
                    int waiting = 0;
                    int finished = 0;
                    for (int i = 0; i < localSize; i++) {
                        waiting += state[i] == BARRIER ? 1 : 0;
                        finished += state[i] == DONE ? 1 : 0;
                    }
                    if (finished == localSize) {
                        return;
                    }
                    if (waiting + finished < localSize) {
                        abort(threads);
                        throw new AssertionError("warp divergence in group " + id + ": work-items wait at a warp operation "
                                + "while lanes of their warp wait at a barrier or have returned");
                    }
                    if (finished > 0) {
                        abort(threads);
                        throw new AssertionError("barrier divergence in group " + id + ": " + finished
                                + " work-items returned while " + waiting + " wait at a barrier");
                    }
                    Arrays.fill(state, RUN);
                }
            } finally {
                for (Thread t : threads) {
                    try {
                        t.join();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        }

        /** Called by a work-item at a barrier: hand the baton back and wait for the next phase. */
        void barrier(int item) {
            state[item] = BARRIER;
            yielded.release();
            turn[item].acquireUninterruptibly();
            if (failure != null) {
                throw new IllegalStateException("aborted");
            }
        }

        /** Called by a work-item at a warp operation: post its value and wait for its whole warp. */
        float warp(int item, int op, float value, int arg) {
            if (localSize % WARP_SIZE != 0) {
                throw new IllegalStateException("warp operation in a partial warp: localSize=" + localSize
                        + " is not a multiple of " + WARP_SIZE);
            }
            warpValue[item] = value;
            warpOp[item] = op;
            warpArg[item] = arg;
            state[item] = WARP;
            yielded.release();
            turn[item].acquireUninterruptibly();
            if (failure != null) {
                throw new IllegalStateException("aborted");
            }
            return warpResult[item];
        }

        /** Completes the warp operation of warp {@code base / 32} once all its lanes wait at one; true if so. */
        private boolean resolveWarp(int base, Thread[] threads) {
            for (int i = base; i < base + WARP_SIZE; i++) {
                if (state[i] != WARP) {
                    return false;
                }
            }
            float sum = 0f;
            for (int i = base; i < base + WARP_SIZE; i++) {
                if (warpOp[i] != warpOp[base]) {
                    abort(threads);
                    throw new AssertionError("warp divergence in group " + id + ", warp " + base / WARP_SIZE
                            + ": lanes " + base + " and " + i + " are at different warp operations");
                }
                if (warpOp[i] == OP_MMA_LOAD && warpArg[i] != warpArg[base]) {
                    abort(threads);
                    throw new AssertionError("group " + id + ", warp " + base / WARP_SIZE + ": lanes " + base + " and " + i
                            + " load MMA tiles at different byte offsets (" + warpArg[base] + ", " + warpArg[i] + ")");
                }
                sum += warpValue[i];
            }
            for (int i = base; i < base + WARP_SIZE; i++) {
                int lane = i - base;
                warpResult[i] = switch (warpOp[i]) {
                    case OP_SHUFFLE_DOWN -> lane + warpArg[i] < WARP_SIZE ? warpValue[i + warpArg[i]] : warpValue[i];
                    case OP_BROADCAST_FIRST -> warpValue[base];
                    default -> sum;
                };
                state[i] = RUN;
            }
            return true;
        }

        private void abort(Thread[] threads) {
            if (failure == null) {
                failure = new IllegalStateException("aborted");
            }
            for (int i = 0; i < localSize; i++) {
                if (state[i] != DONE) {
                    turn[i].release();
                    yielded.acquireUninterruptibly();
                }
            }
        }

        @SuppressWarnings("unchecked")
        synchronized <T> T local(int index, Class<T> type, int size, java.util.function.IntFunction<T> create) {
            if (index == locals.size()) {
                locals.add(create.apply(size));
            }
            Object a = locals.get(index);
            if (!type.isInstance(a) || java.lang.reflect.Array.getLength(a) != size) {
                throw new AssertionError("work-items of group " + id + " disagree on local array #" + index);
            }
            return (T) a;
        }
    }

    /** One issued asynchronous copy: the value it will write, and where. */
    private record Copy(int[] tile, int index, int value) {
    }

    /** The emulated context of one work-item. */
    private static final class WorkItem extends KernelContext {
        private final Group group;
        private final int item;
        private int allocations;
        private List<Copy> uncommitted = new ArrayList<>();
        private final Deque<List<Copy>> committed = new ArrayDeque<>();

        WorkItem(Group group, int item) {
            this.group = group;
            this.item = item;
            try {
                FIELDS[0].set(this, group.id * group.localSize + item);
                FIELDS[1].set(this, item);
                FIELDS[2].set(this, group.id);
                FIELDS[3].set(this, group.globalSize);
                FIELDS[4].set(this, group.localSize);
                for (int i = 5; i < FIELDS.length; i++) {
                    FIELDS[i].set(this, 1);
                }
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
        }

        @Override
        public void localBarrier() {
            group.barrier(item);
        }

        @Override
        public void globalBarrier() {
            group.barrier(item);
        }

        @Override
        public float simdShuffleDown(float value, int delta) {
            if (delta < 0 || delta >= WARP_SIZE) {
                throw new IllegalArgumentException("simdShuffleDown delta=" + delta + " is not in 0..31");
            }
            return group.warp(item, OP_SHUFFLE_DOWN, value, delta);
        }

        @Override
        public float simdBroadcastFirst(float value) {
            return group.warp(item, OP_BROADCAST_FIRST, value, 0);
        }

        @Override
        public float simdSum(float value) {
            return group.warp(item, OP_SUM, value, 0);
        }

        @Override
        public float[] mmaFragment(float value) {
            float[] f = new float[MMA_M * MMA_N];
            Arrays.fill(f, value);
            return f;
        }

        @Override
        public HalfFloat[] mmaLoadA(int[] tile, int k, int byteOffset) {
            return loadTile(tile, k, byteOffset, MMA_M, MMA_K);
        }

        @Override
        public HalfFloat[] mmaLoadB(int[] tile, int k, int byteOffset) {
            return loadTile(tile, k, byteOffset, MMA_K, MMA_N);
        }

        /** {@code [rows][cols]} fp16 from {@code tile} at {@code byteOffset}, two per int, low half first. */
        private HalfFloat[] loadTile(int[] tile, int k, int byteOffset, int rows, int cols) {
            if (k != MMA_K) {
                throw new IllegalArgumentException("MMA k=" + k + ": only m16n8k16 is emulated");
            }
            if (byteOffset < 0 || byteOffset % 16 != 0 || byteOffset / 4 + rows * cols / 2 > tile.length) {
                throw new IllegalArgumentException("MMA tile at byteOffset=" + byteOffset + " (" + rows + " x " + cols
                        + " fp16) is not 16-byte aligned inside a local array of " + tile.length + " ints");
            }
            group.warp(item, OP_MMA_LOAD, 0f, byteOffset);
            HalfFloat[] h = new HalfFloat[rows * cols];
            int base = byteOffset / 4;
            for (int i = 0; i < h.length; i++) {
                int word = tile[base + i / 2];
                h[i] = new HalfFloat((short) ((i & 1) == 0 ? word : word >>> 16));
            }
            return h;
        }

        @Override
        public float[] mma(HalfFloat[] a, HalfFloat[] b, float[] c, MMAShape shape) {
            return product(a, b, c, shape, false);
        }

        /** {@link #mma} over bf16 tiles: the same fragments, their 16-bit halves read as bf16 ({@code mma.sync ... .bf16}). */
        @Override
        public float[] mmaBF16(HalfFloat[] a, HalfFloat[] b, float[] c, MMAShape shape) {
            return product(a, b, c, shape, true);
        }

        private float[] product(HalfFloat[] a, HalfFloat[] b, float[] c, MMAShape shape, boolean bf16) {
            if (shape != MMAShape.M16N8K16 || a.length != MMA_M * MMA_K || b.length != MMA_K * MMA_N || c.length != MMA_M * MMA_N) {
                throw new IllegalArgumentException("mma: only m16n8k16 fp16 and bf16 fragments from mmaLoadA/mmaLoadB/mmaFragment are emulated");
            }
            group.warp(item, OP_MMA, 0f, 0);
            float[] d = new float[MMA_M * MMA_N];
            for (int m = 0; m < MMA_M; m++) {
                for (int n = 0; n < MMA_N; n++) {
                    float s = c[m * MMA_N + n];
                    for (int kk = 0; kk < MMA_K; kk++) {
                        s += value(a[m * MMA_K + kk], bf16) * value(b[kk * MMA_N + n], bf16);
                    }
                    d[m * MMA_N + n] = s;
                }
            }
            return d;
        }

        private static float value(HalfFloat h, boolean bf16) {
            return bf16 ? Float.intBitsToFloat(h.getHalfFloatValue() << 16) : h.getFloat32();
        }

        @Override
        public void mmaStore(float[] d, FloatArray c, int tileRow, int tileCol, int dimN) {
            int lane = item % WARP_SIZE;
            for (int i = 0; i < 4; i++) {
                int r = lane / 4 + (i < 2 ? 0 : 8);
                int col = 2 * (lane % 4) + (i & 1);
                c.set((tileRow + r) * dimN + tileCol + col, d[r * MMA_N + col]);
            }
        }

        @Override
        public void asyncCopyToLocal(int[] tile, int index, HalfFloatArray src, int srcIndex) {
            if (srcIndex % 2 != 0) {
                throw new IllegalArgumentException("asyncCopyToLocal srcIndex=" + srcIndex + " is odd: a 4-byte copy needs an aligned fp16 pair");
            }
            int value = (src.get(srcIndex).getHalfFloatValue() & 0xFFFF) | (src.get(srcIndex + 1).getHalfFloatValue() << 16);
            tile[index] = INT_POISON;
            uncommitted.add(new Copy(tile, index, value));
        }

        @Override
        public void asyncCopyCommit() {
            committed.addLast(uncommitted);
            uncommitted = new ArrayList<>();
        }

        @Override
        public void asyncCopyWaitGroup(int groups) {
            if (groups < 0) {
                throw new IllegalArgumentException("asyncCopyWaitGroup groups=" + groups + " is negative");
            }
            while (committed.size() > groups) {
                for (Copy c : committed.removeFirst()) {
                    c.tile()[c.index()] = c.value();
                }
            }
        }

        @Override
        public float[] allocateFloatLocalArray(int size) {
            return group.local(allocations++, float[].class, size, n -> {
                float[] a = new float[n];
                Arrays.fill(a, Float.NaN);
                return a;
            });
        }

        @Override
        public int[] allocateIntLocalArray(int size) {
            return group.local(allocations++, int[].class, size, n -> {
                int[] a = new int[n];
                Arrays.fill(a, INT_POISON);
                return a;
            });
        }

        @Override
        public Half2[] allocateHalf2LocalArray(int size) {
            return group.local(allocations++, Half2[].class, size, n -> {
                Half2[] a = new Half2[n];
                Arrays.fill(a, Half2.fromFloats(Float.NaN, Float.NaN));
                return a;
            });
        }

        @Override
        public long[] allocateLongLocalArray(int size) {
            return group.local(allocations++, long[].class, size, n -> {
                long[] a = new long[n];
                Arrays.fill(a, Long.MIN_VALUE);
                return a;
            });
        }

        @Override
        public double[] allocateDoubleLocalArray(int size) {
            return group.local(allocations++, double[].class, size, n -> {
                double[] a = new double[n];
                Arrays.fill(a, Double.NaN);
                return a;
            });
        }

        @Override
        public void atomicAdd(IntArray array, int index, int value) {
            synchronized (ATOMIC) {
                array.set(index, array.get(index) + value);
            }
        }

        @Override
        public void atomicAdd(int[] array, int index, int value) {
            synchronized (ATOMIC) {
                array[index] += value;
            }
        }

        @Override
        public void atomicAdd(LongArray array, int index, long value) {
            synchronized (ATOMIC) {
                array.set(index, array.get(index) + value);
            }
        }

        @Override
        public void atomicAdd(FloatArray array, int index, float value) {
            synchronized (ATOMIC) {
                array.set(index, array.get(index) + value);
            }
        }

        @Override
        public void atomicAdd(DoubleArray array, int index, double value) {
            synchronized (ATOMIC) {
                array.set(index, array.get(index) + value);
            }
        }
    }

    private static Field[] fields(String... names) {
        Field[] out = new Field[names.length];
        for (int i = 0; i < names.length; i++) {
            try {
                out[i] = KernelContext.class.getDeclaredField(names[i]);
                out[i].setAccessible(true);
            } catch (NoSuchFieldException e) {
                throw new ExceptionInInitializerError(e);
            }
        }
        return out;
    }
}
