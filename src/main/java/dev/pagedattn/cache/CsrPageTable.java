package dev.pagedattn.cache;

/**
 * FlashInfer's paged-KV page table in CSR form.
 *
 * <pre>
 *  indptr       [numSeqs + 1]  sequence i's pages are indices[indptr[i] .. indptr[i+1])
 *  indices      [indptr[numSeqs]] physical block ids, logical order
 *  lastPageLen  [numSeqs]      tokens in sequence i's last page, in [1, blockSize]
 * </pre>
 */
public record CsrPageTable(int[] indptr, int[] indices, int[] lastPageLen) {

    static CsrPageTable of(DecodeBatch batch) {
        int n = batch.numSeqs();
        int bs = batch.blockSize();
        int[] indptr = new int[n + 1];
        for (int i = 0; i < n; i++) {
            indptr[i + 1] = indptr[i] + (batch.contextLen(i) + bs - 1) / bs;
        }
        int[] indices = new int[indptr[n]];
        int[] last = new int[n];
        for (int i = 0; i < n; i++) {
            for (int j = indptr[i]; j < indptr[i + 1]; j++) {
                indices[j] = batch.block(i, j - indptr[i]);
            }
            last[i] = batch.contextLen(i) - (indptr[i + 1] - indptr[i] - 1) * bs;
        }
        return new CsrPageTable(indptr, indices, last);
    }

    public int numSeqs() {
        return lastPageLen.length;
    }
}
