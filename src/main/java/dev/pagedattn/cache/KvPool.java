package dev.pagedattn.cache;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import dev.pagedattn.quant.QuantFormat;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * One layer's K (or V) pool as a TornadoVM native array, off-heap, so that a TaskGraph can take
 * it unchanged: {@link HalfFloatArray} for fp16, {@link FloatArray} for fp32, an {@link IntArray}
 * of bf16 bits two per word for bf16 (word {@code w} holds elements {@code 2w}, low half, and {@code 2w+1}) and of
 * {@link QuantFormat} codes packed four per word (element {@code i} is byte {@code i} of the
 * pool's memory, so word {@code w} holds elements {@code 4w .. 4w+3}, lowest byte first) for the
 * 8-bit dtypes, whose element at {@code index} is
 * {@code decode(code) * scale(kvHead of index)} (writes quantize with that scale). Indexed by
 * {@link KvLayout} offsets. Reads are public; writes are package-private (the cache owns the
 * pool's content). Allocated by {@link NativeArrays}, so a pool may exceed 2 GiB; where the
 * TornadoVM API at hand cannot wrap that much, the pool is a plain segment and {@link #array()}
 * refuses (the JVM backend reads the segment and never asks).
 */
public final class KvPool {
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final KvDtype dtype;
    private final TornadoNativeArray array; // null: too large for this TornadoVM API to wrap
    private final MemorySegment payload;    // [poolElements] of dtype, zeroed
    private final int size;
    private final QuantFormat format; // null for fp16/fp32
    private final KvLayout layout;    // null: one head (scales[0]) for the whole pool
    private final float[] scales;     // [headsPerShard] of this layer's shard, 8-bit dtypes only
    private final int headBase;       // the layer's KV head of this pool's head 0 (shard * headsPerShard)

    KvPool(KvDtype dtype, int numElements) {
        this(dtype, numElements, Integer.MAX_VALUE);
    }

    /** A pool that takes the past-2-GiB path above {@code maxConstructorBytes} (tests); 8-bit: scale 1. */
    KvPool(KvDtype dtype, int numElements, long maxConstructorBytes) {
        this(dtype, numElements, maxConstructorBytes, null, new float[] {1f}, 0);
    }

    /**
     * A pool array of {@code layout}'s shape holding the layer's KV heads {@code headBase ..
     * headBase + layout.headsPerShard() - 1}; {@code scales: [headsPerShard]} their K (or V)
     * scales (8-bit only).
     */
    KvPool(KvDtype dtype, int numElements, long maxConstructorBytes, KvLayout layout, float[] scales, int headBase) {
        this.dtype = dtype;
        this.size = numElements;
        this.format = dtype.format();
        this.layout = layout;
        this.scales = format == null ? null : scales.clone();
        this.headBase = headBase;
        this.array = NativeArrays.tryAllocate(dtype, numElements, maxConstructorBytes);
        this.payload = array != null ? array.getSegment() : NativeArrays.segment(dtype, numElements);
    }

    /**
     * A second view of {@code base}'s memory with the K (or V) scales of another layer ({@code scales}: [headsPerShard];
     * 8-bit only, ignored otherwise): the layers of a hybrid cache's groups that share one pool
     * ({@code HybridKvCache.sharedPool}) hold their blocks in the same arrays, each block owned by one group at a time.
     */
    KvPool(KvPool base, float[] scales) {
        this.dtype = base.dtype;
        this.size = base.size;
        this.format = base.format;
        this.layout = base.layout;
        this.scales = format == null ? null : scales.clone();
        this.headBase = base.headBase;
        this.array = base.array;
        this.payload = base.payload;
    }

    /** The 8-bit codec of this pool, or null for fp16/fp32. */
    public QuantFormat format() {
        return format;
    }

    /** The scale of the layer's KV head {@code kvHead} (one this pool holds; 8-bit pools; 1 for fp16/fp32). */
    public float scale(int kvHead) {
        if (scales == null) {
            return 1f;
        }
        if (layout == null) {
            return scales[0];
        }
        if (kvHead < headBase || kvHead >= headBase + scales.length) {
            throw new IllegalArgumentException("kvHead=" + kvHead + " is not in this pool (heads " + headBase + ".."
                    + (headBase + scales.length - 1) + ")");
        }
        return scales[kvHead - headBase];
    }

    private float scaleAt(int index) {
        return scales[layout == null ? 0 : layout.kvHeadOf(index)];
    }

    public KvDtype dtype() {
        return dtype;
    }

    public int size() {
        return size;
    }

    /** The pool's elements without header (what the JVM backend and the staging copies read). */
    public MemorySegment segment() {
        return payload;
    }

    /** The native array, for TornadoVM task graphs. */
    public TornadoNativeArray array() {
        if (array == null) {
            throw new IllegalStateException("pool of " + size + " " + dtype + " elements (" + (long) size * dtype.bytes()
                    + " bytes) has no TornadoVM array: this TornadoVM API cannot wrap more than 2 GiB (run under TornadoVM 5.2)");
        }
        return array;
    }

    /** The fp16 pool; fails for an fp32 pool. */
    public HalfFloatArray halfArray() {
        if (dtype != KvDtype.FP16) {
            throw new IllegalStateException("dtype=" + dtype + " pool has no HalfFloatArray");
        }
        return (HalfFloatArray) array();
    }

    /** The fp32 pool; fails for an fp16 pool. */
    public FloatArray floatArray() {
        if (dtype != KvDtype.FP32) {
            throw new IllegalStateException("dtype=" + dtype + " pool has no FloatArray");
        }
        return (FloatArray) array();
    }

    /**
     * The pool's packed words: an 8-bit pool's codes, four per word (lowest byte first), or a bf16 pool's elements, two per
     * word (element {@code 2w} in the low half); fails for fp16/fp32 pools.
     */
    public IntArray wordArray() {
        if (!dtype.packsWords()) {
            throw new IllegalStateException("dtype=" + dtype + " pool has no packed words");
        }
        return (IntArray) array();
    }

    /** Element {@code index} widened to fp32 (8-bit: dequantized, times its head's scale). */
    public float get(int index) {
        if (format != null) {
            return format.decode(payload.get(ValueLayout.JAVA_BYTE, index)) * scaleAt(index);
        }
        return switch (dtype) {
            case FP16 -> Float.float16ToFloat(payload.getAtIndex(HALF, index));
            case BF16 -> Bf16.toFloat(payload.getAtIndex(HALF, index));
            default -> payload.getAtIndex(FLOAT, index);
        };
    }

    /** Widens {@code length} elements of one tile (one head) from {@code index} into {@code dst[dstOffset ...]}. */
    public void read(int index, float[] dst, int dstOffset, int length) {
        if (format != null) {
            format.dequantize(payload, index, length, scaleAt(index), dst, dstOffset);
        } else if (dtype == KvDtype.FP16) {
            for (int i = 0; i < length; i++) {
                dst[dstOffset + i] = Float.float16ToFloat(payload.getAtIndex(HALF, (long) index + i));
            }
        } else if (dtype == KvDtype.BF16) {
            Bf16.widen(payload, index, dst, dstOffset, length);
        } else {
            MemorySegment.copy(payload, FLOAT, (long) index * Float.BYTES, dst, dstOffset, length);
        }
    }

    /**
     * Stores {@code src[srcOffset ...]} (one head's run) rounded to the pool's dtype (round to
     * nearest even; 8-bit: divided by the head's scale, saturated; non-finite values refused).
     */
    void write(int index, float[] src, int srcOffset, int length) {
        if (format != null) {
            format.quantize(src, srcOffset, length, scaleAt(index), payload, index);
        } else if (dtype == KvDtype.FP16) {
            for (int i = 0; i < length; i++) {
                payload.setAtIndex(HALF, (long) index + i, Float.floatToFloat16(src[srcOffset + i]));
            }
        } else if (dtype == KvDtype.BF16) {
            for (int i = 0; i < length; i++) {
                payload.setAtIndex(HALF, (long) index + i, Bf16.fromFloat(src[srcOffset + i]));
            }
        } else {
            MemorySegment.copy(src, srcOffset, payload, FLOAT, (long) index * Float.BYTES, length);
        }
    }

    /** Every element uniform in [-1, 1), filled in parallel chunks; deterministic for a seed. */
    void fillUniform(long seed) {
        int chunk = 1 << 20;
        int chunks = (int) ((size() + (long) chunk - 1) / chunk);
        java.util.stream.IntStream.range(0, chunks).parallel().forEach(c -> {
            java.util.SplittableRandom r = new java.util.SplittableRandom(seed * 0x9E3779B97F4A7C15L + c);
            int end = (int) Math.min(size(), (c + 1L) * chunk);
            for (int i = c * chunk; i < end; i++) {
                float x = (float) (r.nextDouble() * 2 - 1);
                if (format != null) {
                    payload.set(ValueLayout.JAVA_BYTE, i, format.encode(x / scaleAt(i)));
                } else if (dtype == KvDtype.FP16) {
                    payload.setAtIndex(HALF, i, Float.floatToFloat16(x));
                } else if (dtype == KvDtype.BF16) {
                    payload.setAtIndex(HALF, i, Bf16.fromFloat(x));
                } else {
                    payload.setAtIndex(FLOAT, i, x);
                }
            }
        });
    }

    /** Copies {@code length} elements inside the pool. */
    void copy(int from, int to, int length) {
        long bytes = dtype.bytes();
        MemorySegment.copy(payload, from * bytes, payload, to * bytes, (long) length * bytes);
    }
}
