/**
 * Runs the kernels of {@link dev.pagedattn.kernels} through TornadoVM: grid sizing
 * ({@link dev.pagedattn.tornado.DecodeGrid}, {@link dev.pagedattn.tornado.PrefillGrid}) and the
 * device-resident decode and prefill plans ({@link dev.pagedattn.tornado.TornadoDecodeAttention},
 * {@link dev.pagedattn.tornado.TornadoPrefillAttention}). Needs TornadoVM's runtime at run time
 * (start the program with the {@code tornado} launcher); compiles against its API alone.
 */
package dev.pagedattn.tornado;
