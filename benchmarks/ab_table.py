#!/usr/bin/env python3
"""The table of benchmarks/ab.sh: per cell, each option set's min kernel time per round and its wall time per call
(min / median per round).

  ab_table.py OUT_DIR OPTS_A OPTS_B ...     reads OUT_DIR/ab-<set>-<round>.csv (bench's CSV format)
"""

import csv
import glob
import os
import re
import sys


def rows(path):
    with open(path, newline="") as f:
        # the auto variant, with any +suffix bench gives it (+fp16v, +steprows)
        return [r for r in csv.DictReader(f) if re.search(r":auto(\+\w+)*$", r["variant"]) and r["status"] == "ok"]


def main(out, sets):
    times = {}  # (cell, set) -> [(round, min_us, wall_min_us, wall_median_us)]
    for path in sorted(glob.glob(os.path.join(out, "ab-*-*.csv"))):
        m = re.fullmatch(r"ab-(\d+)-(\d+)\.csv", os.path.basename(path))
        if not m:
            continue
        s, r = int(m.group(1)), int(m.group(2))
        for row in rows(path):
            cell = f"{row['batch']} x {row['context']}"
            times.setdefault((cell, s), []).append((r, float(row["min_us"]), row.get("wall_min_us", ""),
                                                    row.get("wall_median_us", "")))
    cells = list(dict.fromkeys(c for c, _ in times))
    names = [o if o else "(default)" for o in sets]
    print("| cell | " + " | ".join(f"{n}: min us per round; wall min / median us per round" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for cell in cells:
        cols = []
        for s in range(len(sets)):
            t = sorted(times.get((cell, s), []))
            walls = ", ".join(f"{float(w):.0f} / {float(m):.0f}" for _, _, w, m in t if w and m)
            cols.append(", ".join(f"{us:.1f}" for _, us, _, _ in t) + (f"; {walls}" if walls else "") if t else "-")
        print(f"| {cell} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: ab_table.py OUT_DIR OPTS_A [OPTS_B ...]")
    main(sys.argv[1], sys.argv[2:])
