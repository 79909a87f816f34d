/**
 * Runs the kernels of {@link dev.pagedattn.kernels} through TornadoVM: grid sizing
 * ({@link dev.pagedattn.tornado.DecodeGrid}) and the device-resident decode plan
 * ({@link dev.pagedattn.tornado.TornadoDecodeAttention}). Needs TornadoVM's runtime at run time
 * (start the program with the {@code tornado} launcher); compiles against its API alone.
 */
package dev.pagedattn.tornado;
