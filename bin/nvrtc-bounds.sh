# Sourced by bin/pa-tornado for TornadoVM's CUDA backend; source it yourself before your own `tornado`
# command to get the same. Points CUDA_PATH at tornado-config/nvrtc, whose cuda_fp16.h gives the kernels
# named in tornado-config/nvrtc/include/paged-attention-bounds.h a register bound (TornadoVM 5.2 passes
# NVRTC none; that header says how it works). A CUDA_PATH set before moves to CUDA_HOME (or CUDA_ROOT),
# where TornadoVM still finds the toolkit's own headers. PA_NVRTC_BOUNDS=off leaves the environment alone.
if [[ "${PA_NVRTC_BOUNDS:-on}" != off ]]; then
  pa_nvrtc="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tornado-config/nvrtc" && pwd -P)"
  if [[ -n "${CUDA_PATH:-}" && "$CUDA_PATH" != "$pa_nvrtc" ]]; then
    if [[ -z "${CUDA_HOME:-}" ]]; then
      export CUDA_HOME="$CUDA_PATH"
    elif [[ -z "${CUDA_ROOT:-}" ]]; then
      export CUDA_ROOT="$CUDA_PATH"
    fi
  fi
  export CUDA_PATH="$pa_nvrtc"
  unset pa_nvrtc
fi
