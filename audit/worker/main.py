"""The worker: runs probe cases inside the environment under test.

It imports only the standard library, the libraries under test and ``xxhash``, so it
can run in a virtualenv that holds an old numpy or torch and nothing else (the host puts
this source tree on ``PYTHONPATH``).  It speaks JSON lines on a private copy of stdout
(docs/architecture.md, "The worker protocol"); a run sends

    {"type": "header", "schema": 4, "env": {...}}  # schema: audit.worker.records.SCHEMA_VERSION
    {"type": "plan", "cases": N}                   # how many cases this worker will run
    {"type": "start", "case_key": ..., "output_at": N}  # before each case: the host knows what
                                                 # ran, and where its output starts on stderr
    {"type": "record", ...}                      # the case's record (audit.worker.records)
    {"type": "end", "cases": N}                  # absent when the worker stops early to be
                                                 # restarted

``--plan`` sends one ``{"type": "cases", "cases": [...]}`` (base records) instead; either mode
sends ``{"type": "error", "message": ...}`` and exits 2 when the user's probes cannot be loaded
or a ``--set NAME=VALUE`` names a setting :mod:`audit.worker.calls` does not know (or refuses).
Anything the probes print goes to stderr, so it cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple

from audit import registry, user_probes
from audit.errors import AuditError, UsageError
from audit.worker import calls
from audit.worker.execute import base_record, run_case_checked
from audit.worker.records import EXIT_RESTART, SCHEMA_VERSION

#: Modules whose import registers the catalogue.
CATALOGUE = "audit.probes"

_LIBRARIES = ("numpy", "torch")


def import_libraries() -> None:
    """Import the installed libraries under test before any case runs.

    Seeding restores only the generators of imported libraries, and the environment
    is captured from them, so they are loaded first.  pandas is imported by its probes.
    """
    for name in _LIBRARIES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def load_catalogue(extra_modules: Sequence[str] = (), sources: Sequence[str] = ()) -> List[str]:
    """The catalogue, extra modules (tests), then the user's probes and installed entry points;
    returns the keys of the probes ``sources`` registered."""
    importlib.import_module(CATALOGUE)
    for name in extra_modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"cannot import probe module {name!r}: {exc}") from None
    loaded = user_probes.load(sources)
    return [key for source in sources for key in loaded.get(source, [])]


class Channel:
    """The protocol stream: a private duplicate of fd 1; fd 1 itself now goes to stderr.

    Processes forked by a probe (DataLoader workers) inherit that descriptor; in each of them
    it is pointed at /dev/null at once, so nothing a child writes, or flushes when it exits,
    can reach the host as a protocol line.
    """

    def __init__(self) -> None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        self._out: TextIO = os.fdopen(fd, "w", encoding="utf-8")
        if hasattr(os, "register_at_fork"):  # POSIX
            os.register_at_fork(after_in_child=lambda: _silence(fd))

    def send(self, message: Dict[str, Any]) -> None:
        self._out.write(json.dumps(message, allow_nan=False) + "\n")
        self._out.flush()


def _silence(fd: int) -> None:
    """Point ``fd`` at /dev/null (in a forked child: the protocol is the parent's alone)."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _skip_keys(path: Optional[str]) -> set:
    if not path:
        return set()
    with open(path, encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip()}


def cases_to_run(
    patterns: Sequence[str],
    seeds: Sequence[int],
    skip: Iterable[str] = (),
    sizes: Sequence[registry.Sizes] = registry.DEFAULT_SIZES,
    among: Optional[Sequence[str]] = None,
) -> List[registry.Case]:
    """The cases of the probes ``patterns`` select (of ``among`` when given), less ``skip``."""
    skip = set(skip)
    chosen = registry.select(patterns, among)
    return [c for c in registry.iter_cases(chosen, seeds, sizes) if c.key not in skip]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m audit.worker", description=__doc__.split("\n")[0])
    p.add_argument("--probe", action="append", default=[], help="glob over probe keys/ids")
    p.add_argument("--seed", action="append", type=int, default=[], help="seed (repeatable)")
    p.add_argument(
        "--sizes",
        type=registry.parse_sizes,
        default=registry.DEFAULT_SIZES,
        help="size panels, comma-separated (default, large)",
    )
    p.add_argument("--skip-file", help="file of case keys not to run (already done)")
    p.add_argument("--no-repeat", action="store_true", help="run each case once")
    p.add_argument(
        "--executions", type=int, help="executions per case in this process (default: the probe's)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting made by a library call (audit.worker.calls: "
        + ", ".join(sorted(calls.registered()))
        + "); repeatable",
    )
    for name in ("threads", "deterministic"):  # the spellings before --set
        p.add_argument(
            f"--{name}", dest="set", action="append", type=_as_set(name), help=f"--set {name}=..."
        )
    p.add_argument("--module", action="append", default=[], help="extra probe module to import")
    p.add_argument(
        "--probes-from",
        action="append",
        default=[],
        metavar="PATH_OR_MODULE",
        help="a .py file or dotted module of your own probes (repeatable)",
    )
    switches = {
        "--no-catalogue": "run only the probes of --probes-from "
        "(the catalogue and entry points are loaded, not run)",
        "--plan": "only list the cases a run would execute, then exit",
        "--serve": "persistent mode: answer one case per JSON line on stdin (audit.worker.serve)",
    }
    for flag, meaning in switches.items():
        p.add_argument(flag, action="store_true", help=meaning)
    return p


def _as_set(name: str) -> Callable[[str], str]:
    return lambda value: f"{name}={value}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    die_with_parent()
    channel = Channel()
    if args.plan:
        return plan(channel, args)
    import_libraries()
    try:
        settings, cases = _selected(args, _skip_keys(args.skip_file))
        calls.apply(settings)  # after the imports: what a module set at import is overridden
    except AuditError as exc:  # the user's probes or a setting: one line for the host to show
        channel.send({"type": "error", "message": str(exc)})
        return 2
    from audit.worker.environment import capture

    channel.send({"type": "header", "schema": SCHEMA_VERSION, "env": capture()})
    if args.serve:
        from audit.worker.serve import serve

        return serve(sys.stdin, channel.send)
    channel.send({"type": "plan", "cases": len(cases)})
    for case in cases:
        channel.send({"type": "start", "case_key": case.key, "output_at": _output_offset()})
        record, poisoned = run_case_checked(
            case, repeat=not args.no_repeat, executions=args.executions
        )
        channel.send({"type": "record", **record})
        if poisoned:  # no "end": the host starts a fresh worker for the cases left
            return EXIT_RESTART
    channel.send({"type": "end", "cases": len(cases)})
    return 0


def _selected(
    args: argparse.Namespace, skip: Iterable[str]
) -> Tuple[Dict[str, str], List[registry.Case]]:
    """The library settings asked for (an unknown name fails before anything runs) and the
    cases these arguments select, the user's probes loaded."""
    settings = calls.parse(args.set)
    theirs = load_catalogue(args.module, args.probes_from)
    among = theirs if args.no_catalogue else None
    seeds = args.seed or registry.DEFAULT_SEEDS
    return settings, cases_to_run(args.probe, seeds, skip, args.sizes, among)


def plan(channel: Channel, args: argparse.Namespace) -> int:
    """``--plan``: the cases a run with these arguments executes, as their base records.

    The host asks this when the audited interpreter may know probes the host does not
    (user probes, entry points, another virtualenv); no library under test is imported
    unless a user module imports it.
    """
    try:
        _, cases = _selected(args, ())  # a setting the run would refuse fails its plan too
    except AuditError as exc:
        channel.send({"type": "error", "message": str(exc)})
        return 2
    channel.send({"type": "cases", "cases": [base_record(c) for c in cases]})
    return 0


def _output_offset() -> Optional[int]:
    """Where the next case's output will start in the stderr file, so the host can quote
    only that case's last words if it dies (None when stderr is a pipe or terminal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return os.lseek(2, 0, os.SEEK_CUR)
    except OSError:
        return None


def die_with_parent() -> None:
    """Ask Linux to kill this worker when the host dies (even by SIGKILL).

    Without it a worker whose host was killed runs on, orphaned, until its next write
    fails, which for a hanging case is never.  Elsewhere it is a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:  # a host that died before this line is noticed at the first write (broken pipe)
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl (musl oddities)
        pass
