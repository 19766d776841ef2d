"""``audit run``: the catalogue in one interpreter, written as one new run file."""

from __future__ import annotations

import argparse
import time
from typing import Any

from audit.commands._options import (
    ProgressBar,
    add_results_argument,
    add_run_arguments,
    add_selection_arguments,
    spec_from_args,
)
from audit.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="audit this interpreter: run the catalogue, write one run file",
        description=__doc__,
    )
    add_results_argument(p)
    add_selection_arguments(p)
    add_run_arguments(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run with the same settings and environment (exit 2 if none)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --resume: start a new run when there is nothing to resume or the environment "
        "changed (the interrupted run is kept, never merged)",
    )


def summary(outcome: Any, seconds: float) -> str:
    counts = outcome.counts
    total = sum(counts.values())
    parts = ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1])
    )
    env = outcome.run.env
    who = (
        f"python {env.get('python_version')}, numpy {env.get('numpy_version')}, "
        f"torch {env.get('torch_version')}"
    )
    return f"{total} cases ({parts}) in {seconds:.1f} s [{who}]\nwrote {outcome.path}"


def execute(args: argparse.Namespace) -> int:
    from audit.runner.supervisor import Runner

    if args.force and not args.resume:
        raise UsageError("--force only changes what --resume does; use it with --resume")
    spec = spec_from_args(args)
    start = time.perf_counter()
    outcome = Runner(spec, args.results, ProgressBar(not args.quiet)).execute(
        resume=args.resume, force=args.force
    )
    print(summary(outcome, time.perf_counter() - start))
    return 0
