package dev.pagedattn.cli;

import com.sun.management.HotSpotDiagnosticMXBean;
import dev.pagedattn.attention.DecodeWorkload;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;

/**
 * Refuses, before anything is allocated, a shape that needs more memory than this JVM may take:
 * native memory (the pools are off-heap, capped by {@code -XX:MaxDirectMemorySize}) and heap
 * ({@code -Xmx}). The message names the flags and the bytes needed and available.
 */
final class MemoryCheck {
    private MemoryCheck() {
    }

    static void require(String shape, DecodeWorkload.Footprint need) {
        long nativeLeft = maxDirectMemory() - directMemoryUsed();
        if (need.nativeBytes() > nativeLeft) {
            throw new IllegalArgumentException(shape + " needs " + ByteSize.format(need.nativeBytes())
                    + " of native memory (K/V pools, q, out) but this JVM has " + ByteSize.format(nativeLeft)
                    + " left (raise -XX:MaxDirectMemorySize in tornado-config/*.args)");
        }
        Runtime rt = Runtime.getRuntime();
        long heapLeft = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
        if (need.heapBytes() > heapLeft) {
            throw new IllegalArgumentException(shape + " needs about " + ByteSize.format(need.heapBytes())
                    + " of Java heap (sequences, block tables, the fp64 reference) but this JVM has " + ByteSize.format(heapLeft)
                    + " left (raise -Xmx in tornado-config/*.args)");
        }
    }

    private static long maxDirectMemory() {
        try {
            String v = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class).getVMOption("MaxDirectMemorySize").getValue();
            long max = Long.parseLong(v);
            return max > 0 ? max : Runtime.getRuntime().maxMemory(); // 0: the JVM's default, the heap limit
        } catch (RuntimeException e) {
            return Runtime.getRuntime().maxMemory();
        }
    }

    private static long directMemoryUsed() {
        for (BufferPoolMXBean pool : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if (pool.getName().equals("direct")) {
                return pool.getMemoryUsed();
            }
        }
        return 0;
    }
}
