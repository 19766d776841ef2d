"""``audit sweep``: the catalogue once per combination of settings, then their comparison.

Each combination (and each ``--repeat``) runs in a fresh worker process, so settings
read at library load take effect and nondeterminism between processes shows up.  A
setting the machine did not honour (torch falling back from avx512, say) is printed as
a warning next to its run and recorded in the sweep's manifest beside the run files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from audit.commands._options import (
    SWEEP_RESULTS,
    ProgressBar,
    add_results_argument,
    add_run_arguments,
    add_selection_arguments,
    command_parser,
    spec_from_args,
)
from audit.errors import AuditError, UsageError

#: Exit code when some combination could not run (compare's "inputs skipped").
EXIT_SKIPPED = 3


def add_parser(sub: Any) -> None:
    p = command_parser(
        sub,
        "sweep",
        "run the catalogue under each combination of settings on this machine",
        __doc__,
        epilog=_axes_help(),
    )
    p.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="an axis to sweep (repeatable; the sweep runs every combination); "
        "'unset' removes a variable",
    )
    add_results_argument(p, None, f"{SWEEP_RESULTS}/<time>-<axes>/, a folder per sweep")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each combination N times, each in a fresh process (finds nondeterminism); "
        "the sweep reports how many runs and executions of each case disagreed",
    )
    p.add_argument(
        "--executions",
        type=int,
        metavar="N",
        help="execute each case N times in each run (default: the probe's own count, usually 2), "
        "to measure how often it disagrees with itself",
    )
    add_selection_arguments(p)
    add_run_arguments(p)


def sweep_folder(axes: Sequence[Any]) -> str:
    """``results/sweeps/20261128T211527Z-ATEN_CPU_CAPABILITY-threads``: a sweep's own folder, so
    that ``compare results/runs`` never mixes its runs with single runs."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    label = "-".join(re.sub(r"[^A-Za-z0-9_]", "_", a.name) for a in axes)[:80]
    return os.path.join(SWEEP_RESULTS, f"{stamp}-{label}")


def _axes_help() -> str:
    from audit.runner.sweep import AXES

    lines = ["axes:"]
    lines += [f"  {a.name:<26} {a.meaning}" for a in AXES.values()]
    return "\n".join(lines)


@dataclass
class Done:
    """One finished (or failed) run of the sweep."""

    label: str
    setting: Dict[str, str]
    repeat: int
    path: Optional[str] = None
    seconds: float = 0.0
    unhonoured: List[str] = field(default_factory=list)
    error: Optional[str] = None
    counts: Dict[str, int] = field(default_factory=dict)
    records: List[Dict[str, Any]] = field(default_factory=list)


def execute(args: argparse.Namespace) -> int:
    from audit.runner import sweep

    axes = sweep.parse_axes(args.axis)
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, not {args.repeat}")
    if args.executions is not None and args.executions < 2:
        raise UsageError(
            f"--executions must be at least 2 (a first execution and one to compare), "
            f"not {args.executions}"
        )
    base = spec_from_args(args)
    base.executions = args.executions
    settings = sweep.combinations(axes)
    targets = (
        numpy_targets(base.python)
        if any(sweep.AXES[a.name].targets is not None for a in axes)
        else None
    )
    total = len(settings) * args.repeat
    args.results = args.results or sweep_folder(axes)
    print(
        f"sweep: {len(settings)} combination(s) x {args.repeat} repeat(s) = {total} run(s) "
        f"-> {args.results}"
    )
    done: List[Done] = []
    for setting in settings:
        for repeat in range(1, args.repeat + 1):
            item = _run_one(base, setting, repeat, args, targets)
            done.append(item)
            print(_line(len(done), total, item), flush=True)
            for note in item.unhonoured:
                print(f"  warning: not honoured: {note}", file=sys.stderr)
    _write_manifest(done, args.results)
    if _rates_wanted(args):
        from audit.runner.rates import rates, summary

        print("\n" + "\n".join(summary(rates([(d.label, d.records) for d in done if not d.error]))))
    return _finish(done, args)


def _rates_wanted(args: argparse.Namespace) -> bool:
    """Whether the sweep ends with agreement rates (repeats, or several executions a case)."""
    return args.repeat > 1 or bool(args.executions)


def _run_one(
    base: Any,
    setting: Dict[str, str],
    repeat: int,
    args: argparse.Namespace,
    targets: Optional[Dict[str, bool]],
) -> Done:
    from audit.runner import load, sweep
    from audit.runner.supervisor import Runner

    item = Done(sweep.label(setting), setting, repeat)
    start = time.perf_counter()
    try:
        # the spinners end with the block, Ctrl-C included
        with load.applied(setting.get("load")) as busy:
            outcome = Runner(
                sweep.spec_for(base, setting), args.results, ProgressBar(not args.quiet)
            ).execute()
            load_note = busy.check() if busy is not None else None
    except UsageError:
        raise
    except AuditError as exc:  # this combination could not run; the others still can
        item.error = str(exc)
    else:
        item.path, item.counts = outcome.path, outcome.counts
        # kept only for the rates: a run's records hold every sample, block digest and trace
        item.records = outcome.run.records if _rates_wanted(args) else []
        item.unhonoured = sweep.unhonoured(setting, outcome.run.env, targets)
        item.unhonoured += [f"load=busy: {load_note}"] if load_note else []
    item.seconds = time.perf_counter() - start
    return item


_NUMPY_TARGETS = """
import json, os
for name in ("NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES"):
    os.environ.pop(name, None)
try:
    from numpy._core import _multiarray_umath as m
except ImportError:
    from numpy.core import _multiarray_umath as m
print(json.dumps({f: bool(m.__cpu_features__.get(f)) for f in m.__cpu_dispatch__}))
"""


def numpy_targets(python: str) -> Optional[Dict[str, bool]]:
    """numpy's dispatch targets in ``python``'s environment -> whether this CPU has each.

    The names differ between numpy releases (AVX512_SKX before 2.4, X86_V4 from 2.4 on),
    so the sweep asks the numpy under test rather than keeping a table.
    """
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("NPY_")}
    try:
        out = subprocess.run(
            [python, "-c", _NUMPY_TARGETS], capture_output=True, text=True, timeout=120, env=env
        )
        return dict(json.loads(out.stdout)) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _line(index: int, total: int, item: Done) -> str:
    head = f"[{index}/{total}] {item.label}" + (
        f" (repeat {item.repeat})" if item.repeat > 1 else ""
    )
    if item.error:
        return f"{head}: FAILED: {item.error}"
    counts = ", ".join(f"{n} {s}" for s, n in sorted(item.counts.items(), key=lambda kv: -kv[1]))
    mark = "  [NOT HONOURED]" if item.unhonoured else ""
    return f"{head}: {counts} in {item.seconds:.1f} s{mark} -> {item.path}"


def _write_manifest(done: Sequence[Done], results: str) -> Optional[str]:
    """``_sweep-<time>.json`` beside the run files: settings, files and unhonoured notes.

    The leading underscore keeps parquet readers (pandas, pyarrow datasets) from taking it
    for a data file when they read the whole directory.
    """

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"_sweep-{stamp}-{os.getpid()}.json"
    data = {
        "runs": [
            {
                "label": d.label,
                "setting": d.setting,
                "repeat": d.repeat,
                "path": d.path,
                "seconds": round(d.seconds, 3),
                "unhonoured": d.unhonoured,
                "error": d.error,
            }
            for d in done
        ]
    }
    payload = json.dumps(data, indent=2).encode()
    from audit.errors import StoreError
    from audit.store.location import filesystem

    try:
        fs, root = filesystem(results)
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(f"{root}/{name}") as f:
            f.write(payload)
    except (OSError, ValueError, StoreError) as exc:
        print(f"warning: could not write the sweep manifest: {exc}", file=sys.stderr)
        return None
    return f"{results.rstrip('/')}/{name}"


def _finish(done: Sequence[Done], args: argparse.Namespace) -> int:
    paths = [d.path for d in done if d.path]
    failed = [d for d in done if d.error]
    unhonoured = [d for d in done if d.unhonoured]
    if unhonoured:
        print(f"\n{len(unhonoured)} run(s) did not get the setting they asked for:")
        for d in unhonoured:
            print(f"  {d.label}:" + "".join(f"\n    {note}" for note in d.unhonoured))
    if failed:
        print(f"\n{len(failed)} run(s) failed and are left out of the comparison:")
        for d in failed:
            print(f"  {d.label}: {d.error}")
    if len(paths) < 2:
        print("\nfewer than two runs finished: nothing to compare")
        return EXIT_SKIPPED if failed else 0
    code = _compare(paths)
    return code if code or not failed else EXIT_SKIPPED


def _compare(paths: List[str]) -> int:
    """The compare command on exactly these runs (its errors reach the CLI like any command's)."""
    from audit.commands import compare

    parser = argparse.ArgumentParser(prog="python -m audit compare")
    compare.add_parser(parser.add_subparsers())
    args = parser.parse_args(["compare", *paths])
    print()
    return int(compare.execute(args))
