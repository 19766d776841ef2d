"""``audit run``: the catalogue in one interpreter, written as one new run file."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict

from audit.cli import add_selection_arguments
from audit.errors import UsageError

DEFAULT_RESULTS = os.path.join("results", "runs")

#: The widest range any seeded API accepts (torch.manual_seed); beyond it nothing can run.
SEED_RANGE = (-(2**63), 2**64 - 1)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="audit this interpreter: run the catalogue, write one run file",
                       description=__doc__)
    p.add_argument("--results", default=os.environ.get("AUDIT_RESULTS", DEFAULT_RESULTS), metavar="DIR",
                   help="results directory or URL (default: $AUDIT_RESULTS or results/runs)")
    add_selection_arguments(p)
    add_run_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue the interrupted run with the same settings")
    p.set_defaults(execute=execute)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by run and sweep."""
    p.add_argument("--python", default=sys.executable, metavar="PATH",
                   help="interpreter whose environment is audited (default: this one)")
    p.add_argument("--no-repeat", action="store_true", help="execute each case once (skips the run-to-run check)")
    p.add_argument("--case-timeout", type=seconds_argument, default=300.0, metavar="S",
                   help="seconds a case may run before it is killed and recorded as timeout")
    p.add_argument("--module", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def seconds_argument(text: str) -> float:
    """argparse type for a time limit: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < 1e9):  # also refuses nan and inf (which the timer cannot wait for)
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def check_seeds(seeds: Any) -> None:
    low, high = SEED_RANGE
    for seed in seeds:
        if not low <= seed <= high:
            raise UsageError(f"seed {seed} is outside every library's range [{low}, {high}]")


def check_python(python: str) -> None:
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise UsageError(f"--python {python!r} is not an executable interpreter")


class ProgressBar:
    """One line on stderr, redrawn in place; silent when stderr is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, done: int, total: int, record: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(total, 1)
        label = record.get("probe_key", "")[:40]
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<40}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def summary(outcome: Any, seconds: float) -> str:
    counts = outcome.counts
    total = sum(counts.values())
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    env = outcome.run.env
    who = f"python {env.get('python_version')}, numpy {env.get('numpy_version')}, torch {env.get('torch_version')}"
    return f"{total} cases ({parts}) in {seconds:.1f} s [{who}]\nwrote {outcome.path}"


def spec_from_args(args: argparse.Namespace) -> Any:
    from audit.runner.spec import RunSpec

    check_seeds(args.seed)
    check_python(args.python)
    return RunSpec(probes=args.probe, seeds=args.seed, repeat=not args.no_repeat, modules=args.module,
                   python=args.python, case_timeout=args.case_timeout)


def execute(args: argparse.Namespace) -> int:
    from audit.runner.supervisor import Runner

    spec = spec_from_args(args)
    start = time.perf_counter()
    outcome = Runner(spec, args.results, ProgressBar(not args.quiet)).execute(resume=args.resume)
    print(summary(outcome, time.perf_counter() - start))
    return 0
