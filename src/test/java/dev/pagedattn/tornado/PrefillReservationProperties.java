package dev.pagedattn.tornado;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pagedattn.attention.AttentionSpec;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * A reserved prefill plan's partials ({@link PrefillGrid#maxBufferElements}) hold every batch within the reservation:
 * random reservations, random batches inside them (sequences, their query runs, the longest context), both kernels,
 * Llama-3-8B's heads, a group of twelve at head dim 64 and MQA of 64 heads at 256 (jqwik prints its seed on failure).
 */
class PrefillReservationProperties {

    @Property(tries = 300)
    void aBatchWithinTheReservationFitsItsPartials(
            @ForAll @IntRange(min = 1, max = 16) int maxSeqs,
            @ForAll @IntRange(min = 1, max = 3000) int maxQueryTokens,
            @ForAll @IntRange(min = 1, max = 40000) int maxTokensPerSeq,
            @ForAll @Size(min = 1, max = 16) List<@IntRange(min = 1, max = 3000) Integer> runs,
            @ForAll @IntRange(min = 0, max = 40000) int context,
            @ForAll("kernels") PrefillGrid.Kernel kernel,
            @ForAll("specs") AttentionSpec spec,
            @ForAll boolean merged) {
        // the batch: the first sequences' runs, cut to the reservation
        int n = Math.min(Math.min(runs.size(), maxSeqs), maxQueryTokens);
        int total = 0;
        int longest = 0;
        for (int i = 0; i < n; i++) {
            int run = Math.max(1, Math.min(runs.get(i), maxQueryTokens - total - (n - 1 - i)));
            total += run;
            longest = Math.max(longest, run);
        }
        int maxContext = Math.max(longest, Math.min(context, maxTokensPerSeq));
        if (maxContext > maxTokensPerSeq) {
            return; // a run longer than the reservation's contexts is outside it
        }
        long needed = PrefillGrid.plan(spec, n, longest, total, maxContext, kernel).merged(merged).bufferElements(spec, total);
        long reserved = PrefillGrid.maxBufferElements(spec, kernel, maxSeqs, maxQueryTokens, maxTokensPerSeq, merged);
        assertTrue(needed <= reserved, "n=" + n + " total=" + total + " longest=" + longest + " context=" + maxContext + " "
                + kernel + " " + spec + (merged ? " merged (sinks)" : "") + ": needs " + needed + " > reserved " + reserved);
    }

    /**
     * Reservations of many query tokens, where a split's partials reach the one-array bound of the rule
     * ({@code MAX_PARTIAL_ELEMENTS}) and fewer query tokens can mean more partitions, so more scratch.
     */
    @Property(tries = 25)
    void aBatchWithinALargeReservationFitsItsPartials(
            @ForAll @IntRange(min = 1, max = 3) int maxSeqs,
            @ForAll @IntRange(min = 20000, max = 120000) int maxQueryTokens,
            @ForAll @IntRange(min = 100000, max = 400000) int maxTokensPerSeq,
            @ForAll @Size(min = 1, max = 3) List<@IntRange(min = 1, max = 120000) Integer> runs,
            @ForAll @IntRange(min = 0, max = 400000) int context,
            @ForAll("kernels") PrefillGrid.Kernel kernel,
            @ForAll("specs") AttentionSpec spec,
            @ForAll boolean merged) {
        aBatchWithinTheReservationFitsItsPartials(maxSeqs, maxQueryTokens, maxTokensPerSeq, runs, context, kernel, spec, merged);
    }

    @Provide
    Arbitrary<PrefillGrid.Kernel> kernels() {
        return Arbitraries.of(PrefillGrid.Kernel.SCALAR, PrefillGrid.Kernel.TENSOR);
    }

    @Provide
    Arbitrary<AttentionSpec> specs() {
        return Arbitraries.of(new AttentionSpec(32, 8, 128, 0.088f), new AttentionSpec(24, 2, 64, 0.125f), new AttentionSpec(64, 1, 256, 0.0625f));
    }
}
