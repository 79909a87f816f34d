/* WideProbe: the toolkit's cuda_fp16.h, then paged-attention-wide.h (PA_LOAD_MODE: 0 unless defined before). */
#include_next <cuda_fp16.h>
#include "paged-attention-wide.h"
