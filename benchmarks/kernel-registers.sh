#!/usr/bin/env bash
# Registers and shared memory of the CUDA backend's kernels, without a GPU: TornadoVM's virtual CUDA
# device (-Dtornado.virtual.device=true) generates the CUDA C of every kernel of a `check` run and runs
# nothing; nvcc compiles each kernel for sm_90 and reports what ptxas allocated.
#   benchmarks/kernel-registers.sh [check flags...]       e.g. --q-heads 64 --dtype int8
#   PA_JVM_OPTS=-Dpagedattn.tornado.kernel=stream benchmarks/kernel-registers.sh --q-heads 64
# Needs: TORNADOVM_HOME pointing at a TornadoVM 5.2.0-jdk25 SDK whose CUDA backend is enabled
# (`tornado-backends cuda`; its native library need not load), nvcc (CUDA 12 or 13) and python3.
# The FP8 twins cannot be printed this way: their code generation asks NVRTC for cuda_fp8.h.
# Registers matter on sm_90: above 168 per thread a one-warp work-group gets two warps per scheduler
# instead of three (benchmarks/NOTES.md, k1), and TornadoVM 5.2 gives NVRTC no register bound.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v nvcc >/dev/null || { echo "error: nvcc not found on PATH" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/device.json" <<'JSON'
{
  "deviceName" : "virtual-sm90",
  "doubleFPSupport" : true,
  "maxWorkItemSizes" : [1024, 1024, 64],
  "deviceAddressBits" : 64,
  "deviceType" : "CL_DEVICE_TYPE_GPU",
  "deviceExtensions" : "cl_khr_fp16 cl_khr_fp64 cl_khr_int64_base_atomics",
  "availableProcessors" : 132
}
JSON
PA_JVM_OPTS="-Dtornado.virtual.device=true -Dtornado.device.desc=$work/device.json -Dtornado.printKernel=True ${PA_JVM_OPTS:-}" \
  "$here/bin/pa-tornado" cuda check --backend tornado --steps 1 --batch 2 --context 1..300 --seed 1 "$@" > "$work/kernels.txt" 2>&1 || true
# With the include path bin/pa-tornado cuda gives NVRTC (bin/nvrtc-bounds.sh: the register bounds of
# tornado-config/nvrtc, or nothing with PA_NVRTC_BOUNDS=off).
source "$here/bin/nvrtc-bounds.sh"
bounds=()
[[ -z "${CUDA_PATH:-}" ]] || bounds=("-I$CUDA_PATH/include")
python3 - "$work" "${bounds[@]}" <<'PY'
import re, subprocess, sys
work = sys.argv[1]
extra = sys.argv[2:]
text = open(f"{work}/kernels.txt", errors="replace").read()
seen = []
for m in re.finditer(r'extern "C" __global__ void (\w+)\(', text):
    name = m.group(1)
    if name in seen:
        continue
    seen.append(name)
    i = text.index("{", m.end())
    depth, j = 0, i
    while True:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            break
        j += 1
    src = f"{work}/{name}.cu"
    open(src, "w").write("#include <cuda_fp16.h>\n#include <cuda_fp8.h>\n" + text[m.start():j + 1] + "\n")
    r = subprocess.run(["nvcc", "-arch=sm_90", "-cubin", "--resource-usage", *extra, "-o", f"{work}/{name}.cubin", src],
                       capture_output=True, text=True)
    info = [l.split(":", 1)[1].strip() for l in (r.stdout + r.stderr).splitlines() if "Used" in l]
    print(f"{name:24s} {info[0] if info else 'nvcc failed: ' + (r.stdout + r.stderr).strip()[:200]}")
if not seen:
    errors = [l for l in text.splitlines() if "error" in l.lower() or "exception" in l.lower()]
    sys.exit("error: no kernel was printed" + (": " + errors[0][:300] if errors else ""))
PY
