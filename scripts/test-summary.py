#!/usr/bin/env python3
"""Count the results of `make test` and print them as one line.

Two modes:

  test-summary.py progress < go-test.json
      Reads `go test -json` events on stdin (tee'd to a file by the Makefile) and prints
      one line per package as it finishes, plus the output of every failing test, so a
      long run shows where it is.

  test-summary.py summary [--go FILE RC]... [--rego FILE RC]... [--step NAME RC]...
      Counts Go tests (top-level tests of `go test -json` files: pass, fail, skip; a
      package that fails without a failing test, e.g. a build failure or a timeout,
      counts as one failure), Rego tests (`opa test --format json`: fail and error are
      failures, skip is skipped) and steps (vet, opa check, opa fmt, coverage bar: a
      non-zero RC is one failure). RC is the exit status of the command that wrote the
      file; a non-zero one with no failure found in its file counts as one failure.
      Prints what failed, then ends with exactly one line
          N passed, N failed, N skipped
      and exits 1 when anything failed.
"""
import json
import sys


def go_events(lines):
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


def progress():
    output = {}
    for ev in go_events(sys.stdin):
        pkg, test, action = ev.get("Package", ""), ev.get("Test", ""), ev.get("Action")
        if action == "output":
            output.setdefault((pkg, test), []).append(ev.get("Output", ""))
            continue
        if action == "fail" and test:
            sys.stdout.write("--- FAIL: %s %s\n" % (pkg, test))
            sys.stdout.write("".join(output.get((pkg, test), [])[-200:]))
        if not test and action in ("pass", "fail", "skip"):
            status = {"pass": "ok  ", "fail": "FAIL", "skip": "?   "}[action]
            elapsed = ev.get("Elapsed")
            sys.stdout.write("%s %s%s\n" % (status, pkg, " (%.1fs)" % elapsed if elapsed is not None else ""))
            if action == "fail":
                # Package-level output: build errors, panics, timeouts.
                sys.stdout.write("".join(output.get((pkg, ""), [])[-200:]))
        if not test and action in ("pass", "fail", "skip"):
            for k in [k for k in output if k[0] == pkg]:
                del output[k]
        sys.stdout.flush()


def count_go(path):
    passed = failed = skipped = 0
    failures = []
    pkg_failed, pkg_test_failed = set(), set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for ev in go_events(f):
                pkg, test, action = ev.get("Package", ""), ev.get("Test", ""), ev.get("Action")
                if action not in ("pass", "fail", "skip"):
                    continue
                if not test:
                    if action == "fail":
                        pkg_failed.add(pkg)
                    continue
                if "/" in test:  # subtests are counted through their parent
                    continue
                if action == "pass":
                    passed += 1
                elif action == "skip":
                    skipped += 1
                else:
                    failed += 1
                    pkg_test_failed.add(pkg)
                    failures.append("go %s %s" % (pkg, test))
    except OSError as e:
        return 0, 1, 0, ["go results %s unreadable: %s" % (path, e)]
    for pkg in sorted(pkg_failed - pkg_test_failed):
        failed += 1
        failures.append("go %s (package failed: build error, panic or timeout)" % pkg)
    return passed, failed, skipped, failures


def count_rego(path):
    passed = failed = skipped = 0
    failures = []
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        return 0, 1, 0, ["rego results %s unreadable: %s" % (path, e)]
    for r in results or []:
        name = "%s.%s" % (r.get("package", "?"), r.get("name", "?"))
        if r.get("error"):
            failed += 1
            err = r["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            failures.append("rego %s ERROR: %s" % (name, msg))
        elif r.get("fail"):
            failed += 1
            failures.append("rego %s FAIL" % name)
        elif r.get("skip"):
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def summary(args):
    total = [0, 0, 0]
    failures = []
    breakdown = []
    i = 0
    while i < len(args):
        kind = args[i]
        if kind not in ("--go", "--rego", "--step") or i + 2 >= len(args):
            sys.exit("usage: test-summary.py summary [--go FILE RC]... [--rego FILE RC]... [--step NAME RC]...")
        what, rc = args[i + 1], int(args[i + 2])
        i += 3
        if kind == "--step":
            if rc != 0:
                total[1] += 1
                failures.append("step %s exited %d" % (what, rc))
            continue
        p, f, s, fl = count_go(what) if kind == "--go" else count_rego(what)
        if rc != 0 and f == 0:
            f = 1
            fl = ["%s exited %d without a failing test in %s" % (kind[2:], rc, what)]
        breakdown.append("  %-5s %-40s %d passed, %d failed, %d skipped" % (kind[2:], what, p, f, s))
        total[0] += p
        total[1] += f
        total[2] += s
        failures.extend(fl)
    print("Results:")
    for b in breakdown:
        print(b)
    for fl in failures:
        print("FAILED: " + fl)
    print("%d passed, %d failed, %d skipped" % tuple(total))
    sys.exit(1 if total[1] else 0)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "progress":
        progress()
    elif len(sys.argv) >= 2 and sys.argv[1] == "summary":
        summary(sys.argv[2:])
    else:
        sys.exit(__doc__)
