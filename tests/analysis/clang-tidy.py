#!/usr/bin/env python3
# clang-tidy.py - run clang-tidy-14 (the checks of the top-level .clang-tidy)
# over ringdev's product code in a build's compile_commands.json, two files
# at a time, and fail on any report that is not a known false positive.
#
#   clang-tidy.py BUILD_DIR SOURCE_ROOT KNOWN_FILE
#
# Product code: the translation units under common/, cuse_dev/, broker/,
# tools/ and examples/ (the headers they include are reported through
# HeaderFilterRegex).
# The tests are not linted: Criterion's assertion macros and the test
# helpers' errno and fork modelling only give the analyzer false paths; the
# tests are built with clang's warnings and run under ASan/UBSan, valgrind
# and TSan instead (tests/analysis/README.md).
#
# A header's report comes once per file that includes it: a report (its
# warning and notes, word for word) is kept once. KNOWN_FILE lists false positives,
# one a line: CHECK PATH-SUFFIX NOTE-REGEX (whitespace-separated; the regex
# may not contain spaces, use \s). A report is known when its check is
# CHECK, its file ends with PATH-SUFFIX and one line of its trace (the
# warning or a note) matches NOTE-REGEX. Comment lines say why.
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

PRODUCT_DIRS = ("common", "cuse_dev", "broker", "tools", "examples")
DIAG = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<kind>warning|error): "
                  r"(?P<msg>.*?)(?: \[(?P<check>[^\]]+)\])?$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_known(path):
    known = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3:
                sys.exit(f"clang-tidy.py: {path}: expected CHECK PATH-SUFFIX NOTE-REGEX: {line}")
            known.append((parts[0], parts[1], re.compile(parts[2])))
    return known


def product_files(build, root):
    with open(os.path.join(build, "compile_commands.json"), encoding="utf-8") as f:
        entries = json.load(f)
    files = set()
    for e in entries:
        path = os.path.realpath(os.path.join(e["directory"], e["file"]))
        rel = os.path.relpath(path, root)
        if rel.split(os.sep, 1)[0] in PRODUCT_DIRS and path.endswith(".c"):
            files.add(path)
    return sorted(files)


def run_one(build, path):
    proc = subprocess.run(["clang-tidy-14", "--quiet", "-p", build, path],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return path, proc.returncode, ANSI.sub("", proc.stdout)


def reports_of(output, build):
    """Split clang-tidy's output into reports: a warning and its notes."""
    reports, current = [], None
    for line in output.splitlines():
        m = DIAG.match(line)
        if m:
            file = os.path.realpath(os.path.join(build, m["file"]))
            current = {"key": (file, int(m["line"]), int(m["col"]), m["check"] or m["kind"]),
                       "lines": [line]}
            reports.append(current)
        elif current is not None and not line.endswith("warnings generated."):
            current["lines"].append(line)
    return reports


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: clang-tidy.py BUILD_DIR SOURCE_ROOT KNOWN_FILE")
    build, root, known_file = (os.path.realpath(a) for a in sys.argv[1:])
    known = load_known(known_file)
    files = product_files(build, root)
    if not files:
        sys.exit(f"clang-tidy.py: no product files in {build}/compile_commands.json")

    seen, found, known_hits, failed_runs = set(), [], 0, []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for path, rc, out in pool.map(lambda p: run_one(build, p), files):
            reports = reports_of(out, build)
            if rc != 0 and not reports:
                failed_runs.append((path, out))
            for r in reports:
                text = "\n".join(r["lines"])
                if text in seen:
                    continue
                seen.add(text)
                file, _, _, check = r["key"]
                if any(check == k and file.endswith(suffix) and any(rx.search(l) for l in r["lines"])
                       for k, suffix, rx in known):
                    known_hits += 1
                    continue
                found.append(r)

    for r in found:
        print("\n".join(r["lines"]))
    for path, out in failed_runs:
        print(f"clang-tidy.py: clang-tidy failed on {path}:\n{out}")
    print(f"clang-tidy: {len(files)} files, {len(found)} report(s), "
          f"{known_hits} known false positive(s) skipped")
    return 1 if found or failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
