package dev.pagedattn.cache;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;

/**
 * A sequence's K/V as a stream of bytes, for {@link KvCache#export} and {@link KvCache#importSequence}: what vLLM's KV
 * connectors move between a prefill instance and a decode instance (disaggregated prefill), or to disk. The record:
 * <pre>
 *  "PAKV", version 2
 *  layers, KV heads, head dim, latent dim, block size,     the cache's shape: an import checks its own against it
 *  dtype name                                              (version 1, before latent caches: no latent dim, read as 0)
 *  8-bit only: K and V scale of every (layer, KV head)     the codes' meaning: an import checks its own are the same
 *  tokens, released blocks, held blocks, block bytes
 *  token ids: -1, or their count, the chain's seed (salt) and the ids: the prefix cache's, when it tracks the sequence
 *  held block i: [layers][KV heads][K, V][blockSize][headDim] in the pool's dtype, bit for bit (KvStore.exportBlock;
 *                a latent cache: [layers][blockSize][headDim], its one pool)
 * </pre>
 * Big-endian header (DataOutputStream), block bytes as the pools hold them (little-endian on every platform Java runs
 * on today, and the reader checks the block size it expects).
 */
final class KvTransfer {
    private static final int MAGIC = 0x50414B56; // "PAKV"
    private static final int VERSION = 2;

    private KvTransfer() {
    }

    /** Writes {@code seq} of {@code cache} (its table {@code t}) to {@code out}; returns the bytes written. */
    static long write(KvCache cache, KvStore store, PageTable t, PrefixCache.SeqTokens tokens, OutputStream out)
            throws IOException {
        KvCacheConfig c = cache.config();
        CountingOutput counted = new CountingOutput(out);
        DataOutputStream data = new DataOutputStream(counted);
        data.writeInt(MAGIC);
        data.writeInt(VERSION);
        data.writeInt(c.numLayers());
        data.writeInt(c.numKvHeads());
        data.writeInt(c.headDim());
        data.writeInt(c.latentDim());
        data.writeInt(c.blockSize());
        data.writeUTF(c.dtype().name());
        if (c.dtype().isQuantized()) {
            for (int l = 0; l < c.numLayers(); l++) {
                for (int h = 0; h < c.numKvHeads(); h++) {
                    data.writeFloat(cache.scales().k(l, h));
                    data.writeFloat(cache.scales().v(l, h));
                }
            }
        }
        int held = t.numBlocks() - t.numReleased();
        data.writeInt(t.numTokens());
        data.writeInt(t.numReleased());
        data.writeInt(held);
        data.writeLong(store.blockBytes());
        data.writeInt(tokens == null ? -1 : tokens.length);
        if (tokens != null) {
            data.writeLong(tokens.seed);
        }
        for (int i = 0; tokens != null && i < tokens.length; i++) {
            data.writeInt(tokens.ids[i]);
        }
        byte[] block = new byte[Math.toIntExact(store.blockBytes())];
        MemorySegment buffer = MemorySegment.ofArray(block);
        for (int i = 0; i < held; i++) {
            store.exportBlock(t.block(t.numReleased() + i), buffer, 0);
            data.write(block);
        }
        data.flush();
        return counted.count;
    }

    /** What {@link #readHeader} found: the sequence's shape, and the token ids (null: none). */
    record Header(int numTokens, int numReleased, int numHeld, long seed, int[] tokenIds) {
    }

    /** Reads a record's header from {@code in} and checks it against {@code cache}; names the first mismatch. */
    static Header readHeader(KvCache cache, KvStore store, DataInputStream in) throws IOException {
        KvCacheConfig c = cache.config();
        int magic = in.readInt();
        if (magic != MAGIC) {
            throw new IllegalArgumentException(String.format("stream starts with 0x%08X, not a sequence written by KvCache.export"
                    + " (0x%08X)", magic, MAGIC));
        }
        int version = in.readInt();
        if (version != 1 && version != VERSION) {
            throw new IllegalArgumentException("version=" + version + ": this build reads versions 1 and " + VERSION);
        }
        same("numLayers", in.readInt(), c.numLayers());
        same("numKvHeads", in.readInt(), c.numKvHeads());
        same("headDim", in.readInt(), c.headDim());
        same("latentDim", version == 1 ? 0 : in.readInt(), c.latentDim());
        same("blockSize", in.readInt(), c.blockSize());
        String dtype = in.readUTF();
        if (!dtype.equals(c.dtype().name())) {
            throw new IllegalArgumentException("dtype=" + dtype + " in the stream, but this cache stores " + c.dtype().name());
        }
        if (c.dtype().isQuantized()) {
            for (int l = 0; l < c.numLayers(); l++) {
                for (int h = 0; h < c.numKvHeads(); h++) {
                    float k = in.readFloat();
                    float v = in.readFloat();
                    if (Float.floatToIntBits(k) != Float.floatToIntBits(cache.scales().k(l, h))
                            || Float.floatToIntBits(v) != Float.floatToIntBits(cache.scales().v(l, h))) {
                        throw new IllegalArgumentException("scales of layer " + l + " KV head " + h + " are K " + k + " V " + v
                                + " in the stream, K " + cache.scales().k(l, h) + " V " + cache.scales().v(l, h) + " here: the"
                                + " codes would mean other values");
                    }
                }
            }
        }
        int numTokens = in.readInt();
        int numReleased = in.readInt();
        int numHeld = in.readInt();
        if (numTokens < 0 || numReleased < 0 || numHeld < 0 || (long) numReleased + numHeld != c.blocksFor(numTokens)) {
            throw new IllegalArgumentException("numTokens=" + numTokens + " numReleased=" + numReleased + " numHeld=" + numHeld
                    + ": not the blocks of a sequence of that length");
        }
        same("blockBytes", in.readLong(), store.blockBytes());
        int count = in.readInt();
        if (count < -1 || count > numTokens) {
            throw new IllegalArgumentException("token ids=" + count + " for a sequence of " + numTokens + " tokens");
        }
        int[] ids = null;
        long seed = 0;
        if (count >= 0) {
            seed = in.readLong();
            ids = new int[count];
            for (int i = 0; i < count; i++) {
                ids[i] = in.readInt();
            }
        }
        return new Header(numTokens, numReleased, numHeld, seed, ids);
    }

    /** Reads held block {@code i}'s bytes into {@code block}; a stream that ends first is named. */
    static void readBlock(DataInputStream in, byte[] block, int i, int numHeld) throws IOException {
        try {
            in.readFully(block);
        } catch (EOFException e) {
            throw new EOFException("the stream ended in held block " + i + " of " + numHeld);
        }
    }

    private static void same(String what, long found, long expected) {
        if (found != expected) {
            throw new IllegalArgumentException(what + "=" + found + " in the stream, but this cache has " + expected);
        }
    }

    /** Counts what passes through. */
    private static final class CountingOutput extends OutputStream {
        private final OutputStream out;
        long count;

        CountingOutput(OutputStream out) {
            this.out = out;
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            count += len;
        }

        @Override
        public void flush() throws IOException {
            out.flush();
        }
    }
}
