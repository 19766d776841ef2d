"""``audit compare``: group stored runs by case, find where streams split and why.

Exit codes: 0 nothing unexpected; 1 a divergence, nondeterminism, error or (with
--baseline) a new stream that no expectation accepts; 2 usage error; 3 some input files
were skipped (corrupt, unreadable, newer schema) and nothing unexpected was found.
--upgrade informs rather than gates: it exits 0 (3 if files were skipped).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    from audit.commands._options import (
        add_memory_limit_argument,
        add_probe_argument,
        add_run_files_argument,
        command_parser,
        location_argument,
    )

    p = command_parser(
        sub, "compare", "compare stored runs: findings per case, exit 1 on divergence", __doc__
    )
    add_run_files_argument(p, "paths", "PATH")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="PATH",
        type=location_argument,
        help="reference runs: report, for each case of PATH, whether its streams are known there",
    )
    p.add_argument(
        "--expectations",
        metavar="FILE",
        help="accepted divergences (see audit/compare/expectations.py)",
    )
    p.add_argument(
        "--upgrade",
        metavar="FIELD",
        help="list the cases whose streams change with FIELD, e.g. torch_version",
    )
    add_probe_argument(
        p, "only these probes: probe id or registration key glob, e.g. 'torch.nn.*' (repeatable)"
    )
    p.add_argument(
        "--cross-device", action="store_true", help="compare CPU and CUDA streams of the same case"
    )
    add_memory_limit_argument(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="findings as JSON on stdout")
    fmt.add_argument(
        "--markdown", action="store_true", help="a markdown summary on stdout (CI job page)"
    )
    p.add_argument(
        "--details",
        action="store_true",
        help=(
            "text and markdown: one block per case after the per-probe summary "
            "(JSON and HTML have them)"
        ),
    )
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report to FILE")


def execute(args: argparse.Namespace) -> int:
    from audit.compare import compare_paths
    from audit.compare import expectations as expect
    from audit.compare.baseline import compare_baseline
    from audit.compare.upgrade import upgrade_view
    from audit.errors import UsageError

    if args.upgrade and args.baseline:
        raise UsageError("--upgrade and --baseline answer different questions; use one at a time")
    accepted = expect.load(args.expectations) if args.expectations else []
    if args.baseline:
        comparison = compare_baseline(
            args.baseline, args.paths, args.cross_device, args.memory_limit
        )
    else:
        comparison = compare_paths(args.paths, args.cross_device, args.memory_limit)
    if comparison.runs == 0:
        raise UsageError(_nothing_read(comparison.skipped, args.paths))
    if args.probe:
        comparison = comparison.narrowed(args.probe)
        if not comparison.findings and not comparison.unsupported:
            raise UsageError(f"--probe {' '.join(args.probe)} matches no probe of these runs")
    if args.expectations:  # before the upgrade view, which shows the findings as accepted
        comparison = expect.apply(comparison, accepted)
    if args.upgrade:
        comparison = upgrade_view(comparison, args.upgrade)
    _write(comparison, args)
    if args.upgrade:  # informs, does not gate: changed streams are the answer, not a failure
        return 3 if comparison.skipped else 0
    return comparison.exit_code()


def _nothing_read(skipped: Any, paths: Any) -> str:
    """Why nothing could be compared, in one line: the first few skipped files and their reasons."""
    if not skipped:
        return f"no run file under {', '.join(paths)}; run 'python -m audit run' first"
    reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    return f"no readable run file under {', '.join(paths)}: {reasons}{more}"


def _write(comparison: Any, args: argparse.Namespace) -> None:
    from audit.report import html, jsonout, markdown, text
    from audit.report.view import build_view

    report_view = build_view(comparison)  # built once: every renderer formats the same view
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(html.render(report_view))
        except OSError as exc:
            from audit.errors import UsageError

            raise UsageError(f"cannot write --html {args.html!r}: {exc.strerror}") from None
    renderer = jsonout if args.json else markdown if args.markdown else text
    sys.stdout.write(renderer.render(report_view, details=args.details))
