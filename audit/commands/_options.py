"""What several commands share: the options that select and run cases, and the progress bar.

One parser definition per option (``--results`` is defined here and nowhere else), one
check per kind of value, so run, sweep and later commands agree on spelling and meaning.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any, Dict, Optional, Tuple

from audit.errors import UsageError

#: Where ``run`` writes unless told otherwise; sweeps and the matrix have folders of their own.
DEFAULT_RESULTS = os.path.join("results", "runs")

#: The widest range any seeded API accepts (torch.manual_seed); beyond it nothing can run.
SEED_RANGE = (-(2**63), 2**64 - 1)


#: Where a sweep writes by default: a folder of its own per sweep (see commands/sweep.py).
SWEEP_RESULTS = os.path.join("results", "sweeps")


def add_results_argument(
    p: argparse.ArgumentParser,
    default: Optional[str] = DEFAULT_RESULTS,
    shown: Optional[str] = None,
) -> None:
    """``--results``; ``default`` None leaves the choice to the command (then ``shown`` says
    what)."""
    p.add_argument(
        "--results",
        default=os.environ.get("AUDIT_RESULTS", default),
        metavar="DIR",
        type=results_argument,
        help=f"results directory or URL (default: $AUDIT_RESULTS or {shown or default})",
    )


def location_argument(text: str) -> str:
    """argparse type for a path or URL to read: not empty, UTF-8, within the OS limits.

    Raises UsageError (not argparse's error) so the CLI prints one line, before any work.
    """
    from audit.store.location import check

    return check(text, "path")


def results_argument(text: str) -> str:
    """argparse type for a place to write runs: a location that persists (not ``mock://``)."""
    from audit.store.location import check, check_persistent

    check_persistent(check(text, "--results location"))
    return text


def command_parser(sub: Any, name: str, help_text: str, doc: Optional[str], **extra: Any) -> Any:
    """A command's parser: ``help_text`` in the list of commands, the command module's docstring
    ``doc`` as its description, line breaks kept (``extra``: further add_parser arguments)."""
    return sub.add_parser(
        name,
        help=help_text,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **extra,
    )


def add_run_files_argument(p: argparse.ArgumentParser, name: str, metavar: str) -> None:
    """The run files a command reads (compare, compact): one or more locations."""
    p.add_argument(
        name,
        nargs="+",
        metavar=metavar,
        type=location_argument,
        help="run files or directories (searched recursively)",
    )


def release_parser(
    sub: Any, name: str, help_text: str, doc: Optional[str], low: str, high: str
) -> Any:
    """A command about two releases of one library (``bisect``, ``advise``): LIBRARY FROM TO."""
    p = command_parser(sub, name, help_text, doc)
    p.add_argument("library", choices=["torch", "numpy"])
    p.add_argument("low", metavar="FROM", help=low)
    p.add_argument("high", metavar="TO", help=high)
    p.add_argument("--json", action="store_true", help="the answer as JSON on stdout")
    return p


def add_probe_argument(p: Any, help_text: str) -> None:
    """``--probe GLOB`` (repeatable): which probes a command runs or reads."""
    p.add_argument("--probe", action="append", default=[], metavar="GLOB", help=help_text)


def add_memory_limit_argument(p: argparse.ArgumentParser) -> None:
    """``--memory-limit``: what the query engine may hold (audit.store.engine.connect)."""
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="memory the query engine may use, e.g. 2GB (beyond it, it spills to a temp folder)",
    )


def seeds_argument(text: str) -> int:
    """argparse type for a seed: an integer (0x.. accepted), named in the error otherwise."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer, not {text!r}") from None


def sizes_argument(text: str) -> Tuple[str, ...]:
    """argparse type for --sizes: comma-separated size panels, each named in the error if
    unknown."""
    from audit.registry import parse_sizes

    try:
        return tuple(s.value for s in parse_sizes(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """--probe, --seed and --sizes, shared by run, sweep and list."""
    add_probe_argument(
        parser, "probe key or id glob, e.g. 'torch.*' or 'numpy.random.Generator.*' (repeatable)"
    )
    parser.add_argument(
        "--seed",
        action="append",
        default=[],
        type=seeds_argument,
        metavar="N",
        help="seed to use instead of the default panel 0, 17, 20210530, 2**32-1 (repeatable)",
    )
    parser.add_argument(
        "--sizes",
        type=sizes_argument,
        default=("default",),
        metavar="PANEL[,PANEL]",
        help="size panels to run instead of 'default': 'large' holds the real-world sizes "
        "(1024x1024 QR, 4096 matmul, 1e7 reductions, image batches); 'default,large' runs both",
    )


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by run and sweep."""
    add_python_argument(p, "interpreter whose environment is audited (default: this one)")
    p.add_argument(
        "--no-repeat",
        action="store_true",
        help="execute each case once (skips the run-to-run check)",
    )
    add_timeout_arguments(
        p,
        300.0,
        "seconds a case may run before it is killed and recorded as timeout",
        "seconds a worker may take to start (import its libraries and probes) before it is "
        "killed (default 120)",
    )
    add_probes_from_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_python_argument(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--python``: the interpreter whose environment the workers run in (default: this one)."""
    p.add_argument("--python", default=sys.executable, metavar="PATH", help=help_text)


def add_timeout_arguments(
    p: argparse.ArgumentParser, case_default: float, case_help: str, startup_help: str
) -> None:
    """``--case-timeout`` and ``--startup-timeout`` (120 s): how long a worker may take."""
    seconds = functools.partial(p.add_argument, type=seconds_argument, metavar="S")
    seconds("--case-timeout", default=case_default, help=case_help)
    seconds("--startup-timeout", default=120.0, help=startup_help)


def add_probes_from_argument(p: argparse.ArgumentParser, catalogue: bool = True) -> None:
    """``--probes-from``, and (``catalogue``) ``--catalogue`` for commands that select among
    the probes: explore names its probe, so the catalogue flag would mean nothing there."""
    p.add_argument(
        "--probes-from",
        action="append",
        default=[],
        metavar="PATH|MODULE",
        help="your own probes: a .py file or a dotted module (repeatable; also $AUDIT_PROBES, "
        "space-separated)" + ("; only they run, unless --catalogue" if catalogue else ""),
    )
    if not catalogue:
        return
    p.add_argument(
        "--catalogue",
        action="store_true",
        help="with --probes-from or $AUDIT_PROBES: the catalogue (and installed packages' "
        "'determinism_audit.probes' entry points) too, as a run without them has",
    )


def probe_sources(args: argparse.Namespace) -> Any:
    """``--probes-from`` then ``AUDIT_PROBES``, paths made absolute (checked)."""
    from audit.user_probes import resolve

    return resolve(args.probes_from, os.environ, os.getcwd())


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
    """Every seed a library accepts and the run file holds (decimal128(20,0)); others fail now."""
    low, high = SEED_RANGE
    for seed in seeds:
        if not low <= seed <= high:
            raise UsageError(f"seed {seed} is outside every library's range [{low}, {high}]")


def check_python(python: str) -> None:
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise UsageError(f"--python {python!r} is not an executable interpreter")


def spec_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~audit.runner.spec.RunSpec` the run options describe (checked)."""
    from audit.runner.spec import RunSpec

    check_seeds(args.seed)
    check_python(args.python)
    sources = probe_sources(args)
    return RunSpec(
        probes=args.probe,
        seeds=args.seed,
        sizes=list(args.sizes),
        repeat=not args.no_repeat,
        probe_sources=sources,
        catalogue=args.catalogue or not sources,
        python=args.python,
        case_timeout=args.case_timeout,
        startup_timeout=args.startup_timeout,
    )


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
