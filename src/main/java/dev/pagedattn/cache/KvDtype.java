package dev.pagedattn.cache;

/** Element type of the K and V pools. Attention always accumulates in fp32. */
public enum KvDtype {
    FP16(2),
    FP32(4);

    private final int bytes;

    KvDtype(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per stored element. */
    public int bytes() {
        return bytes;
    }

    /** Parses {@code fp16}/{@code fp32} (any case); the message names the bad value. */
    public static KvDtype parse(String text) {
        for (KvDtype d : values()) {
            if (d.name().equalsIgnoreCase(text)) {
                return d;
            }
        }
        throw new IllegalArgumentException("dtype=" + text + " is not supported (use fp16 or fp32)");
    }
}
