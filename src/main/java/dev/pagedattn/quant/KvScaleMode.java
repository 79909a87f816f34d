package dev.pagedattn.quant;

import java.util.Locale;

/** How many scales a layer's K (and its V) gets: one for the layer, or one per KV head. */
public enum KvScaleMode {
    /** One K and one V scale per layer: vLLM's default ({@code k_scale}/{@code v_scale} of shape [1]). */
    PER_TENSOR,
    /** One K and one V scale per layer and KV head ({@code k_scale} of shape [numKvHeads]). */
    PER_HEAD;

    /** Parses {@code per-tensor} or {@code per-head} (any case, {@code _} or {@code -}); names a bad value. */
    public static KvScaleMode parse(String text) {
        String key = text == null ? "" : text.trim().toUpperCase(Locale.ROOT).replace('-', '_');
        for (KvScaleMode m : values()) {
            if (m.name().equals(key)) {
                return m;
            }
        }
        throw new IllegalArgumentException("kv-scale=" + text + " is not supported (use per-tensor or per-head)");
    }
}
