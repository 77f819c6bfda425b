#!/usr/bin/env python3
"""Print the Rego library's line coverage from `opa test --coverage` JSON on stdin."""
import json
import sys

report = json.load(sys.stdin)
files = report.get("files", {})
print("Rego library line coverage: %.2f%%" % report.get("coverage", 0.0))
for name in sorted(files):
    f = files[name]
    if name.endswith("_test.rego"):
        continue
    missed = [r["start"]["row"] if r["start"]["row"] == r["end"]["row"] else "%d-%d" % (r["start"]["row"], r["end"]["row"])
              for r in f.get("not_covered", [])]
    line = "  %-28s %6.2f%%" % (name, f.get("coverage", 0.0))
    if missed:
        line += "  not covered: " + ", ".join(str(m) for m in missed)
    print(line)
