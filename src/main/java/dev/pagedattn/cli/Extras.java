package dev.pagedattn.cli;

import dev.pagedattn.attention.AlibiSlopes;
import dev.pagedattn.attention.DecodeWorkload;
import dev.pagedattn.attention.PrefillWorkload;

/**
 * What a check or a bench cell adds to plain attention: random attention sinks ({@code --sinks}, gpt-oss), logit
 * soft-capping ({@code --soft-cap}, Gemma 2), ALiBi with the paper's slopes ({@code --alibi}, BLOOM, MPT) and, for
 * prefill, random token trees over each sequence's new tokens ({@code --tree}, speculative decoding's verification),
 * random bidirectional spans among them ({@code --spans}, Gemma 3's image tokens) or queries that see whole contexts
 * ({@code --non-causal}, cross-attention), any of them (trees, spans, ALiBi and non-causal exclude one another) or none.
 * {@code softCap} 0 is none.
 */
record Extras(boolean sinks, float softCap, boolean alibi, boolean trees, boolean spans, boolean nonCausal) {
    static final Extras NONE = new Extras(false, 0f, false, false, false, false);

    /** {@link #of(boolean, Float, boolean, boolean, boolean, boolean)} without spans. */
    static Extras of(boolean sinks, Float softCap, boolean alibi, boolean trees, boolean nonCausal) {
        return of(sinks, softCap, alibi, trees, false, nonCausal);
    }

    /** The options' extras; names a soft cap that is not finite and > 0, and extras that exclude one another. */
    static Extras of(boolean sinks, Float softCap, boolean alibi, boolean trees, boolean spans, boolean nonCausal) {
        if (spans && (trees || alibi || nonCausal)) {
            throw new IllegalArgumentException("--spans with " + (trees ? "--tree" : alibi ? "--alibi" : "--non-causal")
                    + ": a sequence's new tokens take one mask (spans or a tree), a masked one has no ALiBi, a non-causal one none");
        }
        if (nonCausal && (alibi || trees)) {
            throw new IllegalArgumentException("--non-causal with " + (alibi ? "--alibi" : "--tree") + ": a non-causal query has no"
                    + " position for ALiBi's distances, and no causal order for a tree");
        }
        if (softCap != null && !(softCap > 0 && Float.isFinite(softCap))) {
            throw new IllegalArgumentException("--soft-cap=" + softCap + " must be finite and > 0 (leave it out for no cap)");
        }
        if (alibi && trees) {
            throw new IllegalArgumentException("--alibi with --tree: ALiBi's distances would need every draft's tree position,"
                    + " which the kernels do not take (verify an ALiBi model's drafts as chains)");
        }
        return new Extras(sinks, softCap == null ? 0f : softCap, alibi, trees, spans, nonCausal);
    }

    /** Whether anything is added. */
    boolean any() {
        return sinks || softCap > 0 || alibi || trees || spans || nonCausal;
    }

    /**
     * {@code w} with these extras: sinks random from {@code seed} in every query head of {@code layers} layers, ALiBi
     * with the paper's slopes ({@link AlibiSlopes#standard}).
     */
    DecodeWorkload apply(DecodeWorkload w, int layers, int qHeads, long seed) {
        DecodeWorkload with = sinks ? w.withSinks(DecodeWorkload.randomSinks(layers, qHeads, 1, seed)) : w;
        with = softCap > 0 ? with.withSoftCap(softCap) : with;
        return alibi ? with.withAlibi(AlibiSlopes.standard(qHeads)) : with;
    }

    /**
     * {@code w} (one layer) with these extras; trees {@link PrefillWorkload#withRandomTrees}, spans
     * {@link PrefillWorkload#withRandomSpans} from {@code seed}.
     */
    PrefillWorkload apply(PrefillWorkload w, int qHeads, long seed) {
        PrefillWorkload with = sinks ? w.withSinks(DecodeWorkload.randomSinks(1, qHeads, 1, seed)) : w;
        with = softCap > 0 ? with.withSoftCap(softCap) : with;
        with = trees ? with.withRandomTrees(seed) : with;
        with = spans ? with.withRandomSpans(seed) : with;
        with = nonCausal ? with.nonCausal() : with;
        return alibi ? with.withAlibi(AlibiSlopes.standard(qHeads)) : with;
    }

    /** Refuses {@code --tree}, {@code --spans} and {@code --non-causal} where no prefill is: {@code what} says what runs instead. */
    void requirePrefill(String what) {
        if (trees || spans) {
            throw new IllegalArgumentException((trees ? "--tree" : "--spans") + " masks a prefill's new tokens: " + what + " has none");
        }
        if (nonCausal) {
            throw new IllegalArgumentException("--non-causal is a prefill's: " + what + " has no query run");
        }
    }

    /** "sinks", "cap=50", "alibi", "trees", "spans", "non-causal", joined by "+" ("sinks+cap=50+alibi"), or "" for none. */
    String label() {
        java.util.List<String> parts = new java.util.ArrayList<>();
        if (sinks) {
            parts.add("sinks");
        }
        if (softCap > 0) {
            parts.add("cap=" + plain(softCap));
        }
        if (alibi) {
            parts.add("alibi");
        }
        if (trees) {
            parts.add("trees");
        }
        if (spans) {
            parts.add("spans");
        }
        if (nonCausal) {
            parts.add("non-causal");
        }
        return String.join("+", parts);
    }

    /** {@code 50} for 50.0, {@code 2.5} for 2.5: a cap as written on the command line. */
    static String plain(float cap) {
        return new java.math.BigDecimal(Float.toString(cap)).stripTrailingZeros().toPlainString();
    }

    /** {@link #label} after a space, or "" for none: the tail of a check's first line. */
    String describe() {
        return any() ? " " + label() : "";
    }
}
