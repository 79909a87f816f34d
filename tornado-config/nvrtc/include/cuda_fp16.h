/* paged-attention: the toolkit's cuda_fp16.h, then register bounds and fenced atomics (paged-attention-bounds.h and
   paged-attention-atomics.h say why). */
#include_next <cuda_fp16.h>
#include "paged-attention-bounds.h"
#include "paged-attention-atomics.h"
