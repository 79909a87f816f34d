/*
 * paged-attention: register bounds for kernels of TornadoVM's CUDA backend.
 *
 * TornadoVM 5.2 gives NVRTC no option but the architecture, so a kernel gets as many registers as
 * NVRTC likes (the tensor-core prefill kernel: 254, two work-groups of 128 per SM). NVRTC 13 has no
 * built-in cuda_fp16.h, and TornadoVM's CUDA backend then searches $CUDA_PATH/include first.
 * bin/nvrtc-bounds.sh (sourced by bin/pa-tornado cuda) points CUDA_PATH at tornado-config/nvrtc, whose
 * cuda_fp16.h includes the toolkit's own (#include_next) and then this file; TornadoVM puts that include
 * first in every kernel that uses fp16 or fp8. This file gives the kernels it names CUDA's
 * __launch_bounds__(threads per block, min blocks per SM), a register bound of 65536 / (threads x blocks)
 * rounded down to a multiple of 8. A kernel not named here, or a toolkit whose NVRTC has the headers
 * built in, compiles as before.
 *
 * Measured on an H200 (benchmarks/NOTES.md, r1-r3): prefillF16Async at (128, 3), 168 registers, 1.06x / 0.98x /
 * 1.07x for 1 / 8 / 32 sequences; the fp16 stream decode kernel (168 registers unbounded) ran 1.1-1.5x slower
 * bounded at 128 or 96, so it is not named. Its twin attentionF16x2Bounded (the same body since the fiftieth session;
 * unbounded 148 registers by nvcc 13.0 since the fifty-first, 128 here with 36 / 56 bytes of spill stores / loads) is
 * what a plan runs where a grid of 2112 one-warp groups fills the GPU's waves much better than one of 1584
 * (DecodeGrid.boundedTwinPays; H100: 256 x 1k in 0.84-0.86x the time). attentionF16x2D256Bounded is the same for head
 * dim 256 (attentionF16x2D256: 144 registers by NVRTC on an H100 for four query heads per KV head, 142 by nvcc 13.0;
 * bounded, 128 with no spills by nvcc). Bounding attentionF16x2D256 itself measured 0.84x the time at 256 x 1k but
 * 1.02-1.05x on the grids that fill their waves either way (H100, benchmarks/NOTES.md, fifty-second session).
 * NvrtcBoundsTest checks each name against its kernel and work-group size.
 */
#ifndef PAGED_ATTENTION_BOUNDS_H
#define PAGED_ATTENTION_BOUNDS_H
#define prefillF16Async __launch_bounds__(128, 3) prefillF16Async
#define attentionF16x2Bounded __launch_bounds__(32, 16) attentionF16x2Bounded
#define attentionF16x2D256Bounded __launch_bounds__(32, 16) attentionF16x2D256Bounded
#endif
