/*
 * paged-attention: fenced atomics for kernels of TornadoVM's CUDA backend.
 *
 * The stream decode kernels merge a split step's partitions themselves (DecodeParams.TAIL_MERGE): each partition
 * stores its partials, then counts itself in with KernelContext.atomicAdd, and a work-group that reads every partition
 * of its pair counted reads their partials. That needs release and acquire order across SMs, which TornadoVM 5.2
 * cannot express (its atomicAdd is CUDA's relaxed atomicAdd and returns nothing; globalBarrier() is __syncthreads()).
 * Here every atomicAdd of a kernel that includes this file (through tornado-config/nvrtc/include/cuda_fp16.h, which
 * TornadoVM includes first in every kernel that uses fp16) becomes __threadfence(); atomicAdd; __threadfence(): the
 * fence before orders the thread's partial stores before its count, the one after orders its later loads (of the count,
 * and, in the work-group that merges, of the partials, after an atomicAdd of 0) after it, and discards stale L1 lines.
 * TornadoDecodeAttention merges in the kernel only when this file is on NVRTC's include path ($CUDA_PATH/include, set
 * by bin/nvrtc-bounds.sh) and says so (the marker below); otherwise the merge kernel runs.
 */
#ifndef PAGED_ATTENTION_ATOMICS_H
#define PAGED_ATTENTION_ATOMICS_H
/* paged-attention: fenced atomicAdd v1 */
/* Each returns what CUDA's atomicAdd returns (TornadoVM assigns it to a variable it never reads). */
__device__ __forceinline__ int paFencedAtomicAdd(int *p, int v) { __threadfence(); int old = atomicAdd(p, v); __threadfence(); return old; }
__device__ __forceinline__ unsigned int paFencedAtomicAdd(unsigned int *p, unsigned int v) { __threadfence(); unsigned int old = atomicAdd(p, v); __threadfence(); return old; }
__device__ __forceinline__ unsigned long long paFencedAtomicAdd(unsigned long long *p, unsigned long long v) { __threadfence(); unsigned long long old = atomicAdd(p, v); __threadfence(); return old; }
__device__ __forceinline__ float paFencedAtomicAdd(float *p, float v) { __threadfence(); float old = atomicAdd(p, v); __threadfence(); return old; }
__device__ __forceinline__ double paFencedAtomicAdd(double *p, double v) { __threadfence(); double old = atomicAdd(p, v); __threadfence(); return old; }
#define atomicAdd(p, v) paFencedAtomicAdd(p, v)
#endif
