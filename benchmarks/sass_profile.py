#!/usr/bin/env python3
"""What one kernel's instructions cost, from Nsight Compute's per-instruction (SASS) counters.

This VM has no disassembler; ncu on the GPU machine records, for every SASS instruction of a profiled launch, how often
a warp executed it and where its warps' stall samples fell. Take a launch with the SourceCounters section and export its
source page there:

  ncu --section SourceCounters -k regex:NAME --launch-skip 3 --launch-count 1 -o REP bin/pa-tornado cuda bench ...
  ncu -i REP.ncu-rep --page source --csv --print-source sass > NAME-sass.csv

then, anywhere:

  sass_profile.py NAME-sass.csv[.gz] [TOP]    opcode mix, stall reasons, instructions with every lane predicated off,
                                              and the TOP instructions (default 12) that hold the most stall samples
  sass_profile.py selftest                    the parsing on a made-up export

benchmarks/NOTES.md (forty-ninth session) shows what this found: a call to the division slow path holding 25% of the
fp16 stream kernel's samples.
"""

import collections
import csv
import gzip
import io
import re
import sys

EXECUTED = "Instructions Executed"
PREDICATED_ON = "Predicated-On Thread Instructions Executed"
SAMPLES = "Warp Stall Sampling (All Samples)"


def rows(text):
    """(header, rows) of ncu's source-page CSV: a kernel-name line, then the header, then one row per instruction."""
    lines = list(csv.reader(io.StringIO(text)))
    at = next(i for i, line in enumerate(lines) if "Source" in line and EXECUTED in line)
    header = lines[at]
    return header, [line for line in lines[at + 1:] if len(line) == len(header)]


def number(cell):
    return int(cell.replace(",", "")) if cell and cell.strip("-") else 0


def opcode(source):
    """SASS opcode without its predicate guard and modifiers: "@!P1 LEA.HI.SX32 R3, ..." -> "LEA"."""
    m = re.match(r"\s*(?:@!?U?P\w+\s+)?([A-Z0-9_]+)", source)
    return m.group(1) if m else source.strip()


def profile(text, top=12):
    header, data = rows(text)
    col = {name: i for i, name in enumerate(header)}
    stalls = [name for name in header if name.startswith("stall_") and "Not Issued" not in name]
    executed = collections.Counter()
    sampled = collections.Counter()
    reasons = collections.Counter()
    off = 0
    for row in data:
        n, s = number(row[col[EXECUTED]]), number(row[col[SAMPLES]])
        op = opcode(row[col["Source"]])
        executed[op] += n
        sampled[op] += s
        if n and number(row[col[PREDICATED_ON]]) == 0:
            off += n
        for name in stalls:
            reasons[name[len("stall_"):]] += number(row[col[name]])
    total, samples = sum(executed.values()), max(1, sum(sampled.values()))
    out = [f"{len(data)} SASS instructions, {total / 1e6:.2f} M warp instructions executed, {samples} stall samples",
           f"every lane predicated off: {off / 1e6:.2f} M ({100 * off / max(1, total):.1f}% of executed)",
           "stall reasons: " + ", ".join(f"{r} {100 * v / samples:.1f}%" for r, v in reasons.most_common(8)),
           "opcode       executed   share  samples"]
    for op, n in executed.most_common(20):
        out.append(f"{op:10s} {n / 1e6:8.2f} M {100 * n / max(1, total):5.1f}%  {100 * sampled[op] / samples:5.1f}%")
    out.append(f"the {top} instructions with the most stall samples:")
    ranked = sorted(range(len(data)), key=lambda i: -number(data[i][col[SAMPLES]]))[:top]
    for i in ranked:
        row = data[i]
        why = max(stalls, key=lambda name: number(row[col[name]])) if stalls else "-"
        out.append(f"  #{i:<5d} {100 * number(row[col[SAMPLES]]) / samples:5.1f}%  {row[col['Source']].strip()[:56]:56s}"
                   f" x{number(row[col[EXECUTED]])}  mostly {why[len('stall_'):]}")
    return "\n".join(out)


def selftest():
    head = ['"Kernel Name","k",', ",".join(f'"{h}"' for h in
            ["Address", "Source", SAMPLES, EXECUTED, PREDICATED_ON, "stall_long_sb", "stall_wait"])]
    body = ['"0x0","  LD.E R1, desc[UR4][R2.64]","10","100","3200","2","8"',
            '"0x10","@P1   LEA.HI.SX32 R3, R4, R5, 0x1c","0","100","0","0","0"',
            '"0x20","CALL.REL.NOINC 0x7f","30","100","3200","29","1"']
    text = profile("\n".join(head + body), top=2)
    assert "300 SASS" not in text and "3 SASS instructions, 0.00 M" in text, text
    assert "predicated off: 0.00 M (33.3%" in text, text
    assert text.index("CALL.REL.NOINC") < text.index("LD.E R1"), text
    assert "long_sb 77.5%" in text, text
    assert opcode("@!P1  LEA.HI.SX32 R3, R1") == "LEA" and opcode("FFMA R1, R2, R3, R4") == "FFMA"
    print("sass_profile selftest: ok")


def main(argv):
    if len(argv) == 2 and argv[1] == "selftest":
        selftest()
        return 0
    if len(argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = argv[1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        print(profile(f.read(), int(argv[2]) if len(argv) == 3 else 12))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
