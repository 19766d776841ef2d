"""Benchmark: what an expectations file adds to ``compare``, by its number of lines.

Over the committed reference runs (results/reference), it times, each in a fresh subprocess
(best of ``--repeats``; wall seconds from the first import to the rendered text, CPU seconds of
the whole process):

- the plain compare (the yardstick);
- compare with an expectations file of N lines (read, indexed, applied, notes written);
- at the largest N, the same lines matched the way compare did before the index (every line's
  glob against every finding), for scale (``--no-linear`` skips it: it takes minutes).

The file is synthetic but shaped like a large real one: the committed results/expectations.txt,
then lines for one probe id per line (most with a parameter, a field and a kind), some for real
catalogue probes with one seed each (long candidate lists), and one glob in ten.  Target:
compare with 20,000 lines within 2x of the plain compare.

    python scripts/bench_expectations.py [--lines 2000,20000] [--repeats 3] [--no-linear]

Prints the figures and the machine, and writes the same text to results/bench/expectations.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bench import ROOT, machine, publish  # noqa: E402

TARGET = 2.0
REFERENCE = os.path.join(ROOT, "results", "reference")
COMMITTED = os.path.join(ROOT, "results", "expectations.txt")
REAL = ["torch.randn", "torch.Tensor.normal_", "numpy.random.Generator.normal", "torch.sum"]


def lines_file(n: int, directory: str) -> str:
    """An expectations file of ``n`` lines (the committed ones first)."""
    with open(COMMITTED, encoding="utf-8") as f:
        out = [line for line in f.read().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    i = 0
    while len(out) < n:
        if i % 10 == 0:
            out.append(f'myproj.area{i % 97}.* seed={i} kind=numerical-drift max_ulp=8 reason="glob {i}"')
        elif i % 10 == 1:
            out.append(f'{REAL[i % len(REAL)]} seed={1000 + i} cpu_capability=AVX2 kind=stream-change '
                       f'reason="one seed {i}"')
        else:
            out.append(f'myproj.probe_{i:06d} dtype=float32 cpu_capability=AVX2 kind=numerical-drift max_ulp=4 '
                       f'reason="line {i}"')
        i += 1
    path = os.path.join(directory, f"expectations_{n}.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out[:n]) + "\n")
    return path


def _linear_apply(comparison: Any, expectations: List[Any]) -> Any:
    """What compare did before the index: every live line's glob against every finding."""
    import dataclasses
    import fnmatch

    from audit.compare import expectations as expect

    findings = []
    for finding in comparison.findings:
        kind = expect.kind_of(finding)
        expected = finding.expected
        for exp in expectations:
            if not (fnmatch.fnmatchcase(finding.probe, exp.probe) or fnmatch.fnmatchcase(finding.probe_key, exp.probe)):
                continue
            if expect._matches_params(exp, finding) and expect._accepts_finding(exp, finding, comparison.envs, kind):
                expected = expected or exp.reason
        findings.append(dataclasses.replace(finding, expected=expected))
    return dataclasses.replace(comparison, findings=findings)


def measure(mode: str, path: Optional[str]) -> Dict[str, Any]:
    """One measurement, in this (child) process: compare, and the expectations as ``mode`` says."""
    start = time.perf_counter()
    from audit.compare import compare_paths
    from audit.compare import expectations as expect
    from audit.report import text
    from audit.report.view import build_view

    lines = expect.load(path) if path else []
    comparison = compare_paths([REFERENCE])
    if mode == "indexed":
        comparison = expect.apply(comparison, lines)
    elif mode == "linear":
        comparison = _linear_apply(comparison, lines)
    rendered = text.render(build_view(comparison))
    wall = time.perf_counter() - start
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": wall, "cpu_s": r.ru_utime + r.ru_stime, "expected": sum(bool(f.expected)
                                                                              for f in comparison.findings),
            "findings": len(comparison.findings), "output_lines": rendered.count("\n")}


def _child(mode: str, path: Optional[str], repeats: int) -> Dict[str, Any]:
    best: Optional[Dict[str, Any]] = None
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--measure", mode, path or "-"], capture_output=True,
                             text=True)
        if out.returncode:
            raise RuntimeError(out.stderr)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or got["wall_s"] < best["wall_s"]:
            best = got
    assert best is not None
    return best


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", default="2000,20000", help="file sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default: %(default)s)")
    parser.add_argument("--no-linear", action="store_true", help="skip the before-the-index measurement")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    if args.measure:
        mode, path = args.measure
        print(json.dumps(measure(mode, None if path == "-" else path)))
        return 0
    sizes = [int(n) for n in args.lines.split(",") if n]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out = [f"bench_expectations: compare over results/reference with an expectations file of N lines "
           f"(best of {args.repeats}, each a fresh process)", machine(),
           f"load average (1 min) at start: {load:.2f} (other work on the machine inflates wall times)", "",
           "| lines | matching | compare + expectations | plain compare | ratio | findings accepted | target |",
           "|---|---|---|---|---|---|---|"]
    plain = _child("plain", None, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = lines_file(n, tmp)
            modes = ["indexed"] + (["linear"] if n == max(sizes) and not args.no_linear else [])
            for mode in modes:
                got = _child(mode, path, 1 if mode == "linear" else args.repeats)
                ratio = got["wall_s"] / plain["wall_s"]
                verdict = "" if mode == "linear" else \
                    f"<= {TARGET:g}x: {'met' if ratio <= TARGET else 'MISSED'}"
                out.append(f"| {n:,} | {mode} | {got['wall_s']:.2f} s ({got['cpu_s']:.2f} cpu-s) | "
                           f"{plain['wall_s']:.2f} s ({plain['cpu_s']:.2f} cpu-s) | {ratio:.2f}x | "
                           f"{got['expected']} of {got['findings']} | {verdict} |")
                print(out[-1], flush=True)
    text = "\n".join(out)
    if args.lines == parser.get_default("lines"):
        publish(text, "expectations")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
