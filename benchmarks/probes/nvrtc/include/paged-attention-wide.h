/*
 * WideProbe's NVRTC header (benchmarks/probes/WideProbe.java), for TornadoVM 5.2's CUDA backend: put the folder
 * above include/ in CUDA_PATH. TornadoVM includes cuda_fp16.h first in every kernel that uses fp16; the shim next
 * to this file includes the toolkit's own, then this.
 *
 * 1. Float.float16ToFloat(bits) is emitted as __half2float(int), which CUDA resolves through __half(int), a
 *    conversion by value (0x3C00 -> 15360.0, not 1.0). These overloads reinterpret the low 16 bits instead; C++
 *    prefers them as exact matches.
 * 2. VectorInt4.get(i) is emitted as make_int4(p[0], p[1], p[2], p[3]), four 32-bit loads. The macro below makes
 *    it one 128-bit load, and PA_LOAD_MODE picks which: 0 generic (falls back to four loads when the address is
 *    not 16-byte aligned), 1 __ldg, 2 ld.global.nc.L1::no_allocate.L2::256B, 3 ld.global.L2::256B, 4 ld.global.
 *    Measured on an H200 (benchmarks/NOTES.md, "Sixteenth session"): a VectorInt4's storage is only 8-byte
 *    aligned on the device, so modes 1-4 stop with CUDA_ERROR_MISALIGNED_ADDRESS and mode 0 takes the fallback.
 */
#ifndef PAGED_ATTENTION_WIDE_H
#define PAGED_ATTENTION_WIDE_H
static __device__ __forceinline__ float __half2float(int bits) { return __half2float(__ushort_as_half((unsigned short) bits)); }
static __device__ __forceinline__ float __half2float(short bits) { return __half2float(__ushort_as_half((unsigned short) bits)); }
#ifndef PA_LOAD_MODE
#define PA_LOAD_MODE 0
#endif
static __device__ __forceinline__ int4 pa_load_int4(const int *p) {
#if PA_LOAD_MODE == 0
  return (((unsigned long long) p & 15ULL) == 0ULL) ? *(const int4 *) p : make_int4(p[0], p[1], p[2], p[3]);
#elif PA_LOAD_MODE == 1
  return __ldg((const int4 *) p);
#elif PA_LOAD_MODE == 2
  int4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.s32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
#elif PA_LOAD_MODE == 3
  int4 r;
  asm("ld.global.L2::256B.v4.s32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
#else
  int4 r;
  asm("ld.global.v4.s32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
#endif
}
#define make_int4(x, y, z, w) pa_load_int4(&(x))
#endif
