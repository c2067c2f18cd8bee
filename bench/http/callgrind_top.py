#!/usr/bin/env python3
"""Self cost (instructions) per function of a callgrind dump, top K:
callgrind_top.py FILE [K] [--per N]. (callgrind_annotate 3.19 charges
everything to `clone` on these dumps; this reads the format directly.)"""
import re
import sys
from collections import defaultdict


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--per")]
    per = 1
    for i, a in enumerate(sys.argv):
        if a.startswith("--per"):
            per = int(a.split("=", 1)[1]) if "=" in a else int(sys.argv[i + 1])
            args = [x for x in args if x != sys.argv[i + 1]] if "=" not in a else args
    path = args[0]
    k = int(args[1]) if len(args) > 1 else 40
    names = {}
    cost = defaultdict(int)
    fn = None
    skip_next = False
    ref = re.compile(r"^\((\d+)\)(?: (.*))?$")

    def name(s):
        m = ref.match(s)
        if not m:
            return s
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
            return m.group(2)
        return names.get(m.group(1), s)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("fn="):
                fn = name(line[3:])
                continue
            if line.startswith(("cfn=", "cfi=", "cfl=")):
                if line.startswith("cfn="):
                    name(line[4:])
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                if skip_next:
                    skip_next = False
                    continue
                if fn is not None and len(parts) >= 2:
                    cost[fn] += int(parts[1])
    total = sum(cost.values())
    print(f"{total / per:12.1f}  total (self costs summed){' per request' if per > 1 else ''}")
    for f_, c in sorted(cost.items(), key=lambda x: -x[1])[:k]:
        print(f"{c / per:12.1f}  {100 * c / total:5.2f}%  {f_[:160]}")


if __name__ == "__main__":
    main()
