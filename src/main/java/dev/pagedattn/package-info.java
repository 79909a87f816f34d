/**
 * paged-attention: vLLM-style paged KV caching and decode attention for the JVM.
 *
 * <ul>
 *   <li>{@link dev.pagedattn.cache} owns the bookkeeping: block pool, page tables, the K/V pools
 *       and the one layout class that all address arithmetic goes through.</li>
 *   <li>{@link dev.pagedattn.attention} owns the decode API, the multi-threaded plain-JVM backend
 *       and the fp64 reference.</li>
 *   <li>{@link dev.pagedattn.kernels} holds the GPU kernels as plain static Java methods.</li>
 *   <li>{@link dev.pagedattn.tornado} runs those kernels through TornadoVM.</li>
 *   <li>{@link dev.pagedattn.cli} is the command line.</li>
 * </ul>
 */
package dev.pagedattn;
