/* paged-attention: the toolkit's cuda_fp16.h, then register bounds (paged-attention-bounds.h says why). */
#include_next <cuda_fp16.h>
#include "paged-attention-bounds.h"
