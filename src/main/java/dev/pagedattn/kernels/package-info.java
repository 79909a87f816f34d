/**
 * GPU kernels as stateless static Java methods written against TornadoVM's API. TornadoVM compiles
 * them to PTX, CUDA C (NVRTC) or OpenCL; the same methods run on the plain JVM under the test suite's
 * {@code KernelContext} emulator. All pool addressing follows {@link dev.pagedattn.cache.KvLayout}.
 * Grid sizing and task graphs live in {@link dev.pagedattn.tornado}, not here.
 */
package dev.pagedattn.kernels;
