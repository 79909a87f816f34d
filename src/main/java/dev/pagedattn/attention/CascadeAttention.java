package dev.pagedattn.attention;

import dev.pagedattn.cache.DecodeBatch;
import dev.pagedattn.cache.KvCache;
import dev.pagedattn.cache.PageTable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

/**
 * Cascade decode through any backend (FlashInfer's two-level cascade attention): sequences that hold the same first blocks
 * (forks of one prompt: parallel sampling, beams; requests whose prompt the prefix cache shares) have that shared prefix
 * attended once for all of them, the rest of each sequence on its own, and the two parts merged by their log-sum-exps
 * ({@link AttentionStates#merge}). Each step of the plan is:
 * <ol>
 *   <li>one non-causal prefill ({@link PrefillBatch#nonCausal}) over a view of each group's prefix (a fork of its first
 *       member truncated to the prefix; no block is copied) whose query rows are the members' queries: the prefix's
 *       K/V are read once per group instead of once per member;</li>
 *   <li>one decode of every sequence's own tokens: a member's after its group's prefix ({@link DecodeBatch#skipBlocks}),
 *       the whole of a sequence that shares nothing (whose result is then final);</li>
 *   <li>the merge of each member's two states, on the host.</li>
 * </ol>
 * A prefix is the longest run of leading blocks that every member of a group holds, full in every member and leaving
 * each at least one token of its own; a group shares at least {@code minSharedTokens}. Those blocks are full and shared,
 * so nothing writes them while the plan lives (appends go to the members' own blocks): one plan serves every step and
 * layer of a decode until sequences join, leave, or are truncated or compacted into their prefix (then
 * {@link #decode} refuses, naming the sequence; make a new plan). Layers with attention sinks or ALiBi are refused (a
 * sink would count in both parts; the prefix's rows would be biased from the prefix's end), as are sliding windows
 * (the plan decodes whole contexts). Close the plan to free its views. A plan holds its steps' working arrays: one step
 * at a time.
 */
public final class CascadeAttention implements AutoCloseable {
    private final KvCache cache;
    private final AttentionSpec spec;
    private final int[] seqs;        // the batch, in the caller's order
    private final int[] groupOf;     // [seqs]: the member's group, or -1
    private final int[][] members;   // [groups]: indices into seqs
    private final int[] views;       // [groups]: the prefix views
    private final int[][] prefixBlocks; // [groups]: the shared blocks, as the members must still hold them
    private final int[] prefixTokens; // [groups]
    private final int[] skip;        // [seqs]: the blocks a sequence's own-token decode skips (its group's prefix, or 0)
    private final int[] order;       // the members, group by group: the prefixes' query rows
    private final int[] qLens;       // [groups]: members per group
    private final FloatArray ownLse;  // the own-token step's lse when the caller passes none
    private final FloatArray prefixQ; // the prefixes' query rows, outputs and lse (null without groups)
    private final FloatArray prefixOut;
    private final FloatArray prefixLse;
    private boolean closed;

    private CascadeAttention(KvCache cache, AttentionSpec spec, int[] seqs, int[] groupOf, int[][] members, int[] views, int[][] prefixBlocks,
                             int[] prefixTokens) {
        this.cache = cache;
        this.spec = spec;
        this.seqs = seqs;
        this.groupOf = groupOf;
        this.members = members;
        this.views = views;
        this.prefixBlocks = prefixBlocks;
        this.prefixTokens = prefixTokens;
        skip = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            skip[i] = groupOf[i] < 0 ? 0 : prefixBlocks[groupOf[i]].length;
        }
        order = new int[java.util.Arrays.stream(members).mapToInt(m -> m.length).sum()];
        qLens = new int[members.length];
        for (int g = 0, at = 0; g < members.length; g++) {
            qLens[g] = members[g].length;
            for (int i : members[g]) {
                order[at++] = i;
            }
        }
        int hq = spec.numQHeads();
        ownLse = new FloatArray(seqs.length * hq);
        boolean grouped = members.length > 0;
        prefixQ = grouped ? new FloatArray(order.length * hq * spec.headDim()) : null;
        prefixOut = grouped ? new FloatArray(order.length * hq * spec.headDim()) : null;
        prefixLse = grouped ? new FloatArray(order.length * hq) : null;
    }

    /**
     * Plans the cascade of {@code seqs} (each once) in {@code cache}, attended as {@code spec} says: sequences grouped by
     * their first physical block, each group of two or more sharing at least {@code minSharedTokens} (at least one block)
     * attended as above.
     */
    public static CascadeAttention plan(KvCache cache, AttentionSpec spec, int[] seqs, int minSharedTokens) {
        if (cache == null || spec == null || seqs == null || seqs.length == 0) {
            throw new IllegalArgumentException("cache=" + cache + " spec=" + spec + " seqs=" + (seqs == null ? "null" : "[]")
                    + ": a cache, a spec and sequences are needed");
        }
        if (cache.config().isLatent()) {
            throw new IllegalArgumentException("latentDim=" + cache.config().latentDim() + ": cascade plans split steps of caches"
                    + " with a K and a V pool; a latent (MLA) cache's forks share their blocks inside the JVM backend's own decode");
        }
        int bs = cache.config().blockSize();
        if (minSharedTokens < bs) {
            throw new IllegalArgumentException("minSharedTokens=" + minSharedTokens + " must be at least one block (" + bs + " tokens)");
        }
        Map<Integer, List<Integer>> byFirst = new LinkedHashMap<>();
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = 0; i < seqs.length; i++) {
            if (!seen.add(seqs[i])) {
                throw new IllegalArgumentException("seq=" + seqs[i] + " appears twice in the batch");
            }
            PageTable t = cache.pageTable(seqs[i]); // names an unknown sequence
            if (t.numReleased() == 0 && t.numTokens() > bs) { // a full first block and a token after it
                byFirst.computeIfAbsent(t.block(0), b -> new ArrayList<>()).add(i);
            }
        }
        int[] groupOf = new int[seqs.length];
        java.util.Arrays.fill(groupOf, -1);
        List<int[]> members = new ArrayList<>();
        List<int[]> blocks = new ArrayList<>();
        for (List<Integer> run : byFirst.values()) {
            if (run.size() < 2) {
                continue;
            }
            PageTable first = cache.pageTable(seqs[run.get(0)]);
            int shared = Integer.MAX_VALUE;
            for (int i : run) {
                PageTable t = cache.pageTable(seqs[i]);
                int own = (t.numTokens() - 1) / bs;   // full blocks that leave the sequence a token of its own
                int same = 0;
                while (same < own && same < first.numBlocks() && t.block(same) == first.block(same)) {
                    same++;
                }
                shared = Math.min(shared, same);
            }
            if ((long) shared * bs < minSharedTokens) {
                continue;
            }
            int g = members.size();
            for (int i : run) {
                groupOf[i] = g;
            }
            members.add(run.stream().mapToInt(Integer::intValue).toArray());
            blocks.add(java.util.Arrays.copyOf(first.blocks(), shared));
        }
        int[] views = new int[members.size()];
        int[] prefixTokens = new int[members.size()];
        for (int g = 0; g < views.length; g++) {
            prefixTokens[g] = blocks.get(g).length * bs;
            views[g] = cache.fork(seqs[members.get(g)[0]]);
            cache.truncate(views[g], prefixTokens[g]);
        }
        return new CascadeAttention(cache, spec, seqs.clone(), groupOf, members.toArray(new int[0][]), views,
                blocks.toArray(new int[0][]), prefixTokens);
    }

    /** Groups that share a prefix (0: the plan decodes the batch as a plain step). */
    public int groups() {
        return members.length;
    }

    /** Group {@code g}'s shared tokens. */
    public int sharedTokens(int g) {
        return prefixTokens[g];
    }

    /** Group {@code g}'s members: their indices in the batch. */
    public int[] members(int g) {
        return members[g].clone();
    }

    /** {@link #decode(DecodeAttention, PrefillAttention, int, FloatArray, FloatArray, FloatArray)} without log-sum-exps. */
    public void decode(DecodeAttention decode, PrefillAttention prefill, int layer, FloatArray q, FloatArray out) {
        decode(decode, prefill, layer, q, out, null);
    }

    /**
     * One decode step of the planned batch in {@code layer}, the own tokens through {@code decode} and the prefixes through
     * {@code prefill} (both over the plan's cache and spec; on TornadoVM {@code decode.prefill()}, which shares its device
     * pools: {@link PrefillAttention#pairedWith}): {@code q} and {@code out} as a plain step's,
     * {@code [numSeqs][numQHeads][headDim]} in the plan's order, and each row's log-sum-exp into {@code lse}
     * ({@code [numSeqs][numQHeads]}; null: none).
     */
    public void decode(DecodeAttention decode, PrefillAttention prefill, int layer, FloatArray q, FloatArray out, FloatArray lse) {
        if (closed) {
            throw new IllegalStateException("decode after close(): the plan's prefix views are freed; make a new plan");
        }
        if (spec.hasSinks(layer) || spec.hasAlibi()) {
            throw new IllegalArgumentException("cascade decode of a layer with " + (spec.hasAlibi() ? "ALiBi (" + spec.alibi() + ")"
                    : "attention sinks (" + spec.sinks() + ")") + ": only plain and soft-capped layers split into parts");
        }
        int n = seqs.length;
        int hq = spec.numQHeads();
        int d = spec.headDim();
        int row = hq * d;
        DecodeAttention.requireRows("q", q, (long) n * row, "numSeqs");
        DecodeAttention.requireRows("out", out, (long) n * row, "numSeqs");
        if (lse != null) {
            DecodeAttention.requireLse(spec, n, lse);
        }
        requireMembersHoldPrefixes();
        // every sequence's own tokens (a member's after its group's prefix, the whole of one that shares nothing): one step
        FloatArray stepLse = lse != null ? lse : ownLse;
        decode.decode(members.length == 0 ? cache.batch(seqs) : cache.batch(seqs).skipBlocks(skip), layer, q, out, stepLse);
        if (members.length == 0) {
            return;
        }
        // the prefixes: every member's query over its group's view, once per group, merged into the member's row
        for (int k = 0; k < order.length; k++) {
            java.lang.foreign.MemorySegment.copy(q.getSegment(), (long) order[k] * row * Float.BYTES, prefixQ.getSegment(),
                    (long) k * row * Float.BYTES, (long) row * Float.BYTES);
        }
        prefill.prefill(PrefillBatch.nonCausal(cache.batch(views), qLens), layer, prefixQ, prefixOut, prefixLse);
        AttentionStates.mergeInto(prefixOut, prefixLse, order, hq, d, out, stepLse);
    }

    /** Refuses a step after a member lost a block of its group's prefix (truncated, compacted, freed), naming it. */
    private void requireMembersHoldPrefixes() {
        for (int g = 0; g < members.length; g++) {
            for (int i : members[g]) {
                if (!cache.contains(seqs[i])) {
                    throw new IllegalStateException("seq=" + seqs[i] + " was freed after the cascade was planned; make a new plan");
                }
                PageTable t = cache.pageTable(seqs[i]);
                boolean holds = t.numReleased() == 0 && t.numTokens() > prefixTokens[g] && t.numBlocks() >= prefixBlocks[g].length;
                for (int b = 0; holds && b < prefixBlocks[g].length; b++) {
                    holds = t.block(b) == prefixBlocks[g][b];
                }
                if (!holds) {
                    throw new IllegalStateException("seq=" + seqs[i] + " no longer holds the " + prefixTokens[g]
                            + " shared tokens it was planned with (truncated, compacted or released since); make a new plan");
                }
            }
        }
    }

    /** Frees the prefix views (their blocks stay with the members). */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            for (int v : views) {
                if (cache.contains(v)) {
                    cache.free(v);
                }
            }
        }
    }
}
