package dev.pagedattn.quant;

/**
 * Dequantisation in kernels: an 8-bit code indexes a 256-entry table of the format's values
 * ({@link QuantFormat#table}), and the product with the scale is the stored element. TornadoVM 5.2
 * kernels cannot call {@code Float.intBitsToFloat} or {@code Float.float16ToFloat} on PTX, so the
 * bit pattern is not decoded in the kernel; one table lookup replaces it, for all three formats.
 *
 * <p>Where the table lives: in the decode kernels' 8-bit twins, in local (shared) memory, copied
 * once per work-group; in the prefill twin, in global memory ({@code PackedCodes.value}). Constant memory would
 * be the wrong place: it is fast only when a warp reads one address. Two TornadoVM 5.2
 * miscompilations, seen in the OpenCL it generates (PoCL), decide how kernels must write it:
 * <ul>
 *   <li>a local array handed to a helper method is indexed there as a heap array (Java's array
 *       header and element size: out of bounds), so copies into and lookups in a local table are
 *       written in the kernel body;</li>
 *   <li>{@code word >>> 24} on an {@code int} becomes a signed {@code >>} in OpenCL C (and Graal
 *       drops a following {@code & 0xFF} as redundant), so packed codes are extracted with
 *       {@code >>} and a mask: {@link #code}.</li>
 * </ul>
 */
public final class DequantTable {
    /** Entries per table: one per 8-bit code. */
    public static final int SIZE = 256;

    private DequantTable() {
    }

    /**
     * Code {@code lane} (0..3) of a 32-bit word that packs four codes, lowest byte first (the byte
     * order a little-endian host writes them in). Kernel-safe: {@code >>} and a mask, never
     * {@code >>>} (see the class comment).
     */
    public static int code(int word, int lane) {
        return (word >> (lane << 3)) & 0xFF;
    }
}
