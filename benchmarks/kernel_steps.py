#!/usr/bin/env python3
"""Kernel time per decode step by one device tool, for ours and the peer alike (benchmarks/kernel-times.sh).

TornadoVM's profiler times each kernel between events recorded around its launch and waits for it before the next
launch, so every kernel's time also holds the host's launch call (benchmarks/NOTES.md, fourteenth session: 15-17 us on
a three-kernel step); the peer's CUDA events run ahead of the GPU and hold almost none. Nsight Compute's
gpu__time_duration is the kernel's own run on the device, the same measure for both sides.

  kernel_steps.py add OUT.csv SIDE BACKEND CELL NCU.csv   one row: the steps of one process's ncu CSV
  kernel_steps.py table OUT.csv                           a markdown table of the rows, best of ours next to the peer
  kernel_steps.py selftest                                the grouping on made-up launches (kernel-times.sh runs it first)

SIDE is "ours" (a step is an optional scatter, one attention kernel and an optional merge, in launch order) or "peer"
(a step starts at each cuDNN flash kernel; its reduction kernel follows). The last step is dropped (ncu's launch count
may cut it), and so is every step whose kernels are not the process's most common sequence. The NCU CSV is ncu's output with
`--csv --print-units base --metrics gpu__time_duration.sum`.
"""

import csv
import os
import statistics
import sys

FIELDS = ["side", "backend", "cell", "steps", "min_us", "median_us", "kernels"]
UNITS = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}


def kernels(path):
    """(name, us) of every profiled kernel, in launch order."""
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu's own messages are not CSV rows
    out = []
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = r.get("Metric Unit", "")
        if unit not in UNITS:
            raise SystemExit(f"{path}: unit {unit!r} of gpu__time_duration is not one of {sorted(UNITS)}")
        out.append((int(r["ID"]), r["Kernel Name"].split("(")[0].strip(), float(r["Metric Value"].replace(",", "")) * UNITS[unit]))
    return [(name, us) for _, name, us in sorted(out)]


def role(name):
    """scatter, attention, merge or other. The CUDA backend names a kernel by its method (`attentionF16x2`), the PTX backend
    by graph, task, method and signature (`decode_attention_attentionf16_uk_ac_manchester_..._8_4_128_16`)."""
    n = name.lower().split("_uk_ac_manchester")[0]
    return next((r for r in ("scatter", "attention", "merge") if r in n), "other")


def steps(side, launches):
    """Launches grouped into steps (lists of (name, us))."""
    out = []
    previous = ""
    for name, us in launches:
        n = name.lower()
        if side == "ours":  # a scatter starts a step, and so does an attention kernel that no scatter precedes
            r = role(name)
            new = r == "scatter" or (r == "attention" and role(previous) != "scatter")
        elif side == "peer":
            new = "fprop" in n or "flash" in n
        else:
            raise SystemExit(f"side {side!r} is not ours or peer")
        if new or not out:
            out.append([])
        out[-1].append((name, us))
        previous = name
    return out


def add(out_csv, side, backend, cell, ncu_csv):
    groups = steps(side, kernels(ncu_csv)) if os.path.isfile(ncu_csv) else []
    # the last step may be cut short by ncu's --launch-count; the others are kept where their kernels are the
    # process's most common sequence (a step that writes new tokens, or one of another plan, is another sequence)
    groups = groups[:-1]
    if groups:
        shapes = [tuple(name for name, _ in g) for g in groups]
        common = max(shapes, key=shapes.count)  # ties: the first in launch order (not a set's hash order)
        groups = [g for g, shape in zip(groups, shapes) if shape == common]
    row = dict(side=side, backend=backend, cell=cell, steps=len(groups), min_us="", median_us="", kernels="no kernels profiled")
    if groups:
        sums = [sum(us for _, us in g) for g in groups]
        best = min(range(len(sums)), key=sums.__getitem__)
        row.update(min_us=f"{sums[best]:.1f}", median_us=f"{statistics.median(sums):.1f}",
                   kernels=" + ".join(f"{name.split('_uk_ac_manchester')[0]} {us:.1f}" for name, us in groups[best]))
    new_file = not os.path.isfile(out_csv)
    with open(out_csv, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            w.writeheader()
        w.writerow(row)
    print(f"{side} {backend} {cell}: {row['steps']} steps, min {row['min_us'] or '-'} us, median {row['median_us'] or '-'} us"
          f" [{row['kernels']}]")


def table(out_csv):
    with open(out_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["min_us"]]
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows if r["side"] == "ours"))
    print("| cell | " + " | ".join(f"ours, {b}: min / median (us)" for b in backends)
          + " | cuDNN SDPA: min / median (us) | best of ours / cuDNN, time ratio inverted |")
    print("|---" * (len(backends) + 3) + "|")
    for cell in cells:
        ours = {r["backend"]: r for r in rows if r["side"] == "ours" and r["cell"] == cell}
        peer = next((r for r in rows if r["side"] == "peer" and r["cell"] == cell), None)
        cols = [f"{ours[b]['min_us']} / {ours[b]['median_us']}" if b in ours else "-" for b in backends]
        best = min((float(r["min_us"]) for r in ours.values()), default=None)
        ratio = f"{float(peer['min_us']) / best:.2f}" if peer and best else "-"
        print(f"| {cell} | " + " | ".join(cols) + f" | {peer['min_us'] + ' / ' + peer['median_us'] if peer else '-'} | {ratio} |")


def selftest():
    import tempfile
    head = '"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"\n'
    def run(side, launches):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("==PROF== Connected to process 1\n" + head)
            for i, (name, ns) in enumerate(launches):
                f.write(f'"{i}","{name}","gpu__time_duration.sum","nsecond","{ns:,}"\n')
        out = f.name + ".out"
        add(out, side, "t", "c", f.name)
        with open(out, newline="") as o:
            row = next(csv.DictReader(o))
        os.remove(f.name), os.remove(out)
        return row
    # a written step first (scatter), split steps of attention + merge, the last cut after its attention
    r = run("ours", [("scatterF16", 2000), ("attentionF16x2", 90000), ("mergePartitions", 8000),
                     ("attentionF16x2", 86000), ("mergePartitions", 9000), ("attentionF16x2", 85000),
                     ("mergePartitions", 8500), ("attentionF16x2", 40000)])
    assert (r["steps"], r["min_us"], r["median_us"]) == ("2", "93.5", "94.2"), r
    # unsplit steps: one kernel each
    r = run("ours", [("attentionF16x2", 300000), ("attentionF16x2", 310000), ("attentionF16x2", 305000), ("attentionF16x2", 1)])
    assert (r["steps"], r["min_us"]) == ("3", "300.0"), r
    # the PTX backend's names: graph, task, method and signature, lower case
    sig = "_uk_ac_manchester_tornado_api_kernelcontext_1_arrays_intarray_8_4_128_16"
    r = run("ours", [("decode_scatter_scatterf16" + sig, 2400), ("decode_attention_attentionf16" + sig, 90000),
                     ("decode_merge_mergepartitions" + sig, 8000), ("decode_attention_attentionf16" + sig, 88000),
                     ("decode_merge_mergepartitions" + sig, 9000), ("decode_attention_attentionf16" + sig, 87000),
                     ("decode_merge_mergepartitions" + sig, 11000), ("decode_attention_attentionf16" + sig, 1)])
    assert (r["steps"], r["min_us"], r["kernels"]) == ("2", "97.0", "decode_attention_attentionf16 88.0 + "
                                                       "decode_merge_mergepartitions 9.0"), r
    # cuDNN: flash + reduction per call, in microseconds
    r = run("peer", [("cudnn_flash_fprop_kernel", 34000), ("void cudnn::lean_reduction_kernel<0>", 4000),
                     ("cudnn_flash_fprop_kernel", 35000), ("void cudnn::lean_reduction_kernel<0>", 3000),
                     ("cudnn_flash_fprop_kernel", 30000)])
    assert (r["steps"], r["min_us"]) == ("2", "38.0"), r
    print("kernel_steps.py: selftest passed")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "add":
        add(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    elif sys.argv[1:] == ["selftest"]:
        selftest()
    else:
        raise SystemExit(__doc__)
