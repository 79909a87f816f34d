package dev.pagedattn.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The prefill kernels' shared start ({@link PrefillTile}) against the grid written out in nested loops:
 * every (sequence, KV head, head tile, query tile, partition) is one work-group, partition fastest, and
 * a work-group has query tokens exactly where its tile and partition hold some (jqwik prints its seed on
 * failure).
 */
class PrefillTileProperties {

    @Property(tries = 200)
    void workGroupsCoverTheGridOnceWithTheirTokensAndContext(
            @ForAll @Size(min = 1, max = 4) List<@IntRange(min = 1, max = 40) Integer> queryLens,
            @ForAll @Size(min = 4, max = 4) List<@IntRange(min = 0, max = 300) Integer> prefixes,
            @ForAll @IntRange(min = 1, max = 3) int numKvHeads,
            @ForAll @IntRange(min = 1, max = 3) int headTiles,
            @ForAll @IntRange(min = 1, max = 8) int tokensPerTile,
            @ForAll @IntRange(min = 1, max = 5) int partitionChunks,
            @ForAll @IntRange(min = 1, max = 400) int window,
            @ForAll boolean windowed,
            @ForAll @IntRange(min = 0, max = 2) int spareSeqs) {
        int n = queryLens.size();
        int[] indptr = new int[n + 1];
        int[] lens = new int[n];
        int maxQ = 0;
        int maxLen = 0;
        for (int s = 0; s < n; s++) {
            indptr[s + 1] = indptr[s] + queryLens.get(s);
            lens[s] = prefixes.get(s) + queryLens.get(s);
            maxQ = Math.max(maxQ, queryLens.get(s));
            maxLen = Math.max(maxLen, lens[s]);
        }
        int partTokens = partitionChunks * 16;
        int maxQTiles = (maxQ + tokensPerTile - 1) / tokensPerTile;
        int maxParts = (maxLen + partTokens - 1) / partTokens;
        int w = windowed ? window : Integer.MAX_VALUE;
        IntArray params = new IntArray(PrefillParams.SIZE);
        params.set(PrefillParams.NUM_SEQS, n);
        params.set(PrefillParams.PARTITION_TOKENS, partTokens);
        params.set(PrefillParams.MAX_PARTITIONS, maxParts);
        params.set(PrefillParams.MAX_Q_TILES, maxQTiles);
        params.set(PrefillParams.WINDOW, w);
        IntArray qIndptr = IntArray.fromArray(indptr);
        IntArray contextLens = IntArray.fromArray(lens);

        Set<List<Integer>> seen = new HashSet<>();
        int gid = 0;
        for (int seq = 0; seq < n + spareSeqs; seq++) {   // work-groups past the batch: a launch at capacity
            for (int kv = 0; kv < numKvHeads; kv++) {
                for (int ht = 0; ht < headTiles; ht++) {
                    for (int qt = 0; qt < maxQTiles; qt++) {
                        for (int part = 0; part < maxParts; part++, gid++) {
                            int s = PrefillTile.seq(gid, params, headTiles, numKvHeads);
                            int p = PrefillTile.part(gid, params);
                            int q = PrefillTile.qTile(gid, params);
                            assertEquals(List.of(seq, kv, ht, qt, part), List.of(s, PrefillTile.kvHead(gid, params, headTiles, numKvHeads),
                                    PrefillTile.headTile(gid, params, headTiles), q, p), "gid " + gid);
                            assertEquals(true, seen.add(List.of(s, kv, ht, q, p)), "gid " + gid + " repeats a tile");
                            int tokens = PrefillTile.tileTokens(s, q, p, tokensPerTile, params, qIndptr, contextLens);
                            int expected = seq >= n ? 0 : Math.max(0, Math.min(tokensPerTile, queryLens.get(seq) - qt * tokensPerTile));
                            if (seq < n && part * partTokens >= lens[seq]) {
                                expected = 0;
                            }
                            assertEquals(expected, tokens, "tokens of gid " + gid);
                            if (tokens > 0) {
                                int firstPos = lens[seq] - queryLens.get(seq) + qt * tokensPerTile;
                                // visible: in the partition, at or before the tile's last query, within the window of its first
                                int lo = Math.max(part * partTokens, windowed ? Math.max(0, firstPos - window + 1) : 0);
                                int hi = Math.min((part + 1) * partTokens, firstPos + tokens);
                                assertEquals(lo, PrefillTile.lo(p, firstPos, params), "lo of gid " + gid);
                                assertEquals(hi, PrefillTile.hi(p, firstPos, tokens, params), "hi of gid " + gid);
                                assertEquals((lens[seq] + partTokens - 1) / partTokens, PrefillTile.parts(lens[seq], params));
                            }
                        }
                    }
                }
            }
        }
    }
}
