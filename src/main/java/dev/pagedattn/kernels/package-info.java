/**
 * GPU kernels as stateless static Java methods written against TornadoVM's API. TornadoVM compiles
 * them to PTX, CUDA C (NVRTC) or OpenCL; the same methods run on the plain JVM under the test suite's
 * {@code KernelContext} emulator. All pool addressing follows {@link dev.pagedattn.cache.KvLayout}.
 * Grid sizing and task graphs live in {@link dev.pagedattn.tornado}, not here.
 *
 * <p>One rule the emulator cannot check: TornadoVM 5.2's PTX backend emits {@code shr.b32} (a logical shift) where Java
 * means an arithmetic one, so {@code >>} of a negative int, and {@code /} or {@code %} of a negative int by a power of two
 * that TornadoVM lowers to shifts (constants, and parameters it specialises), go wrong there. Shift only values whose
 * sign bits are masked off afterwards, and divide only what cannot be negative (guard an empty range first).
 */
package dev.pagedattn.kernels;
