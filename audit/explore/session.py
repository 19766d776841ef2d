"""One explore session: start the workers, learn the probe, search, tighten, answer.

The shell around the pure parts: it owns the worker processes (always closed, Ctrl-C
included) and builds the :class:`~audit.explore.render.Answer` once.
"""

from __future__ import annotations

import argparse
import shlex
import time
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from audit import domains
from audit.errors import AuditError, UsageError
from audit.explore.render import Answer
from audit.explore.search import Explorer, along, default_params, search, tighten
from audit.explore.strategies import merged, parse_param
from audit.explore.structure import structure
from audit.explore.workers import ServeWorker
from audit.runner.spec import RunSpec


class CannotTell(AuditError):
    """A worker did not get the setting it asked for: nothing to compare (exit 3)."""

    exit_code = 3


def replay_command(args: argparse.Namespace, seed: int) -> str:
    """The command line that repeats this search exactly (the seed included)."""
    words: List[str] = ["python", "-m", "audit", "explore", args.probe]
    words += ["--axis", args.axis] if args.axis else ["--invariance", args.invariance]
    for param in args.param:
        words += ["--param", param]
    words += ["--time", f"{args.time:g}"] if args.time else ["--examples", str(args.examples)]
    for source in args.probes_from:
        words += ["--probes-from", source]
    words += ["--seed", str(seed)]
    return " ".join(shlex.quote(w) for w in words)


def settings_of(args: argparse.Namespace) -> List[Dict[str, str]]:
    """One setting per worker: each value of ``--axis``, or one plain worker."""
    from audit.runner import sweep

    if not args.axis:
        return [{}]
    axis = sweep.parse_axis(args.axis)
    if sweep.AXES[axis.name].apply is sweep.Apply.LOAD:
        raise UsageError(
            "explore compares settings side by side; "
            "the load axis belongs to 'sweep --axis load=...'"
        )
    if len(axis.values) < 2:
        raise UsageError(
            f"--axis {args.axis}: give at least two values to compare, e.g. {axis.name}=1,2"
        )
    return [{axis.name: v} for v in axis.values]


def plan_search(
    info: Mapping[str, Any], args: argparse.Namespace, given: List[Tuple[str, Any]]
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The domains to search and the values held fixed, checked against the probe."""
    declared = {k: domains.from_json(v) for k, v in info["search"].items()}
    invariance = args.invariance or ""
    if invariance and invariance != info["invariance"]:
        has = (
            f"its invariance parameter is {info['invariance']!r}"
            if info["invariance"]
            else "it has none"
        )
        raise UsageError(
            f"--invariance {invariance}: probe {info['key']} cannot compare {invariance!r} ({has})"
        )
    search_domains, fixed = merged(declared, given, info["grid"], invariance)
    if not invariance and info["invariance"]:
        search_domains.pop(info["invariance"], None)  # axis mode: held at its reference
    if invariance and invariance not in search_domains:
        raise UsageError(
            f"--invariance {invariance}: probe {info['key']} declares no search domain for it; "
            f"give --param {invariance}=LO..HI"
        )
    if not search_domains:
        raise UsageError(
            f"probe {info['key']} declares no search domains; give --param NAME=LO..HI "
            f"(its parameters: {', '.join(info['grid'])})"
        )
    return search_domains, fixed


def _start(
    workers: Sequence[ServeWorker], settings: Sequence[Dict[str, str]]
) -> List[Dict[str, Any]]:
    from audit.runner import sweep

    for worker in workers:  # launched together, so their imports overlap
        worker.launch()
    started = [worker.header() for worker in workers]
    envs = []
    for worker, setting, env in zip(workers, settings, started):
        notes = sweep.unhonoured(setting, env)
        if notes:
            raise CannotTell(
                f"{worker.label} was not honoured ({'; '.join(notes)}): nothing to compare"
            )
        envs.append(
            {
                "label": worker.label,
                **{
                    k: env.get(k)
                    for k in ("cpu_capability", "num_threads", "torch_version", "numpy_version")
                },
            }
        )
    return envs


def explore(args: argparse.Namespace, sources: Sequence[str], seed: int) -> Answer:
    from audit.runner import sweep

    base = RunSpec(
        probe_sources=list(sources),
        python=args.python,
        repeat=False,
        case_timeout=args.case_timeout,
        startup_timeout=args.startup_timeout,
    )
    settings = settings_of(args)
    given = [parse_param(p) for p in args.param]  # spelling errors before any worker starts
    start = time.monotonic()
    workers = [ServeWorker(sweep.spec_for(base, s), sweep.label(s) or "worker") for s in settings]
    try:
        envs = _start(workers, settings)
        info = workers[0].request({"type": "describe", "probe": args.probe})
        if info.get("type") != "probe":
            raise UsageError(str(info.get("message") or f"cannot describe probe {args.probe!r}"))
        search_domains, fixed = plan_search(info, args, given)

        def run(params: Dict[str, Any]) -> List[Dict[str, Any]]:
            request = {"type": "case", "probe": info["key"], "params": params, "plain": True}
            return [w.request(request) for w in workers]

        ready = time.monotonic()
        explorer = Explorer(
            {**default_params(info["grid"]), **fixed},
            search_domains,
            run,
            args.invariance or "",
            info["invariance"],
        )
        searched = search(explorer, 10**6 if args.time else args.examples, args.time, seed)
        name = along(search_domains)
        found = structure(searched.trials, name, search_domains.get(name or ""), searched.shrunk)
        if found.smallest is not None and name is not None:
            tightest = tighten(explorer, found.smallest, name, seed)
            found = structure(
                list(explorer.trials.values()), name, search_domains.get(name), tightest
            )
        searching = time.monotonic() - ready
    finally:
        for worker in workers:
            worker.close()
    compared = (
        " vs ".join(w.label for w in workers)
        if args.axis
        else f"{args.invariance} against its reference"
    )
    axis = (
        {"name": next(iter(settings[0])), "values": [next(iter(s.values())) for s in settings]}
        if args.axis
        else None
    )
    return Answer(
        info["key"],
        info["version"],
        compared,
        "axis" if args.axis else "invariance",
        axis,
        args.invariance,
        search_domains,
        fixed,
        found,
        seed,
        None if args.time else args.examples,
        searched.stopped,
        time.monotonic() - start,
        replay_command(args, seed),
        envs,
        searching,
    )
