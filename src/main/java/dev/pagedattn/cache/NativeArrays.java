package dev.pagedattn.cache;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * Allocates TornadoVM native arrays of any int-indexable size. {@code new HalfFloatArray(n)} of
 * the TornadoVM API this library compiles against computes the byte size in {@code int} and fails
 * above 2 GiB ("allocation size is negative"); TornadoVM 5.2 offers
 * {@code fromSegmentShallow(MemorySegment)}, which wraps a segment (array header included)
 * without copying. Arrays whose bytes fit an {@code int} use the constructor (every version);
 * larger ones a segment of our own, wrapped through {@code fromSegmentShallow} when the runtime
 * has it (found by reflection, so the build does not depend on 5.2).
 */
public final class NativeArrays {
    private NativeArrays() {
    }

    /** An fp32 array of {@code n} zeros. */
    public static FloatArray floats(long n) {
        TornadoNativeArray a = tryAllocate(KvDtype.FP32, requireIndexable("n", n));
        if (a == null) {
            throw new IllegalArgumentException("n=" + n + " floats (" + n * Float.BYTES + " bytes): this TornadoVM API allocates"
                    + " at most 2 GiB per array (TornadoVM 5.2's runtime allocates more)");
        }
        return (FloatArray) a;
    }

    /**
     * An array of {@code n} zero elements of {@code dtype}, the type a pool of that dtype has
     * ({@code HalfFloatArray}, {@code FloatArray}, or an {@code IntArray} of packed bf16 pairs or 8-bit codes);
     * for staging arrays and other device buffers shaped like pool rows.
     */
    public static TornadoNativeArray of(KvDtype dtype, int n) {
        TornadoNativeArray a = tryAllocate(dtype, requireIndexable("n", n));
        if (a == null) {
            throw new IllegalArgumentException("n=" + n + " " + dtype + " elements: this TornadoVM API allocates at most 2 GiB per array");
        }
        return a;
    }

    /**
     * An array of {@code n} zeros of {@code dtype}, or null when this TornadoVM API cannot make one
     * that large (the caller then keeps a plain segment).
     */
    static TornadoNativeArray tryAllocate(KvDtype dtype, int n) {
        return tryAllocate(dtype, n, Integer.MAX_VALUE);
    }

    /** Same; arrays above {@code maxConstructorBytes} (header included) take the segment path (tests lower it). */
    static TornadoNativeArray tryAllocate(KvDtype dtype, int n, long maxConstructorBytes) {
        long bytes = storageBytes(dtype, n);
        Class<? extends TornadoNativeArray> type = switch (dtype) {
            case FP16 -> HalfFloatArray.class;
            case BF16 -> IntArray.class;  // bf16 bits, two per word (a kernel loads a pair at once)
            case FP32 -> FloatArray.class;
            case FP8_E4M3, FP8_E5M2, INT8 -> IntArray.class; // 8-bit codes, four per word
        };
        try {
            if (TornadoNativeArray.ARRAY_HEADER + bytes <= maxConstructorBytes) {
                return switch (dtype) {
                    case FP16 -> new HalfFloatArray(n);
                    case BF16 -> new IntArray((int) (bytes / Integer.BYTES));
                    case FP32 -> new FloatArray(n);
                    case FP8_E4M3, FP8_E5M2, INT8 -> new IntArray((int) (bytes / Integer.BYTES));
                };
            }
            Method shallow = shallowFactory(type);
            if (shallow == null) {
                return null;
            }
            MemorySegment segment = Arena.ofAuto().allocate(TornadoNativeArray.ARRAY_HEADER + bytes, 64);
            return type.cast(shallow.invoke(null, segment));
        } catch (OutOfMemoryError e) {
            throw outOfMemory(dtype, n, e);
        } catch (IllegalAccessException | InvocationTargetException e) {
            throw new IllegalStateException("TornadoVM's " + type.getSimpleName() + ".fromSegmentShallow failed", e);
        }
    }

    /**
     * Bytes of an array of {@code n} elements of {@code dtype}: 8-bit codes are packed four per
     * 32-bit word and bf16 elements two per word (an {@code IntArray}, so that a kernel loads four
     * codes or two elements at once), rounded up to whole words.
     */
    static long storageBytes(KvDtype dtype, int n) {
        int perWord = 1 << dtype.wordShift();
        return dtype.packsWords() ? ((long) n + perWord - 1) / perWord * Integer.BYTES : (long) n * dtype.bytes();
    }

    /** A plain zeroed segment of {@code n} elements, for arrays this API cannot wrap. */
    static MemorySegment segment(KvDtype dtype, int n) {
        try {
            return Arena.ofAuto().allocate(storageBytes(dtype, n), 64);
        } catch (OutOfMemoryError e) {
            throw outOfMemory(dtype, n, e);
        }
    }

    static int requireIndexable(String name, long n) {
        if (n < 0 || n > KvCacheConfig.MAX_POOL_ELEMENTS) {
            throw new IllegalArgumentException(name + "=" + n + " elements: a native array holds 0.." + KvCacheConfig.MAX_POOL_ELEMENTS);
        }
        return (int) n;
    }

    private static Method shallowFactory(Class<?> type) {
        try {
            return type.getMethod("fromSegmentShallow", MemorySegment.class);
        } catch (NoSuchMethodException e) {
            return null;
        }
    }

    private static IllegalArgumentException outOfMemory(KvDtype dtype, int n, OutOfMemoryError e) {
        // Native memory only: nothing on the heap is half-built, so the caller can go on.
        return new IllegalArgumentException("numElements=" + n + " of " + dtype + " (" + (long) n * dtype.bytes()
                + " bytes) do not fit the memory left: " + e.getMessage() + " (raise -XX:MaxDirectMemorySize or use a smaller shape)");
    }
}
