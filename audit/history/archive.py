"""The committed history: ``results/history/<library>/*.parquet``, one run per release and Python.

This module finds the runs (from parquet footers alone), maps a version someone asks about
to the release the history audited, and chooses the pairs of runs that consecutive releases
are compared through: the same Python where both have it, so the numpy series on Python
3.9 and 3.12 join at their overlap release instead of blaming a Python change on numpy.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from audit.errors import UsageError
from audit.history import releases as rel

HISTORY = os.path.join("results", "history")


@dataclass(frozen=True)
class Entry:
    """One committed run: the release it audited, on which Python, where."""

    version: str
    python: str
    path: str


def entries(library: str, root: str = HISTORY) -> List[Entry]:
    """Every run of the library's history, by release then Python (two columns of each file)."""
    from audit.store.runfile import read_run_file

    out = []
    for path in sorted(glob.glob(os.path.join(root, library, "*.parquet"))):
        rows = read_run_file(path, ["python_version", f"{library}_version"]).slice(0, 1).to_pylist()
        env = rows[0] if rows else {}
        version = str(env.get(f"{library}_version") or "").split("+")[0]
        python = ".".join(str(env.get("python_version") or "").split(".")[:2])
        if rel.parse(version) is not None:
            out.append(Entry(version, python, path))
    return sorted(out, key=lambda e: (rel.key(e.version), _py(e.python)))


def _py(python: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in python.split(".") if p.isdigit())


def versions(history: Sequence[Entry]) -> List[str]:
    return sorted({e.version for e in history}, key=rel.key)


def steps(history: Sequence[Entry], low: str, high: str) -> List[Tuple[Entry, Entry]]:
    """Consecutive releases from ``low`` to ``high`` as pairs of runs, sharing a Python if they
    can."""
    chosen = [v for v in versions(history) if rel.key(low) <= rel.key(v) <= rel.key(high)]
    by_version: Dict[str, List[Entry]] = {}
    for e in history:
        by_version.setdefault(e.version, []).append(e)
    out = []
    for a, b in zip(chosen, chosen[1:]):
        out.append(_pair(by_version[a], by_version[b]))
    return out


def _pair(before: Sequence[Entry], after: Sequence[Entry]) -> Tuple[Entry, Entry]:
    common = sorted({e.python for e in before} & {e.python for e in after}, key=_py)
    if common:
        python = common[-1]
        return (
            next(e for e in before if e.python == python),
            next(e for e in after if e.python == python),
        )
    return before[-1], after[0]  # no shared Python: the nearest ones (the caller notes it)


def endpoint_runs(history: Sequence[Entry], low: str, high: str) -> Tuple[Entry, Entry]:
    """The runs a direct comparison of the two ends uses (the same Python if they share one)."""
    lows = [e for e in history if e.version == low]
    highs = [e for e in history if e.version == high]
    return _pair(lows, highs)


@dataclass(frozen=True)
class Mapped:
    """A version asked about, the history release that answers for it, and a note if they differ."""

    asked: str
    used: str
    note: Optional[str] = None
    outside: bool = False  # asked lies outside the history: the answer covers part of the question


def map_version(library: str, asked: str, covered: Sequence[str]) -> Mapped:
    """``asked`` as a history release: itself, its minor's audited patch, or the nearest end.

    Raises UsageError for a version inside the history's span whose minor it lacks (no
    nearest release answers for it honestly).
    """
    if not covered:
        raise UsageError(
            f"results/history/{library} holds no runs; build it with scripts/build_history.py"
        )
    if asked in covered:
        return Mapped(asked, asked)
    same_minor = [v for v in covered if rel.minor(v) == rel.minor(asked)]
    if same_minor:
        used = same_minor[-1]
        return Mapped(
            asked,
            used,
            f"{library} {asked} is read as {used}, the {rel.minor(asked)[0]}."
            f"{rel.minor(asked)[1]} release the history audited "
            "(it holds the latest patch of each minor)",
        )
    first, last = covered[0], covered[-1]
    if rel.key(asked) < rel.key(first) or rel.key(asked) > rel.key(last):
        used = first if rel.key(asked) < rel.key(first) else last
        return Mapped(
            asked,
            used,
            f"{library} {asked} is outside the history ({first} to {last}); "
            f"the answer starts or ends at {used} instead",
            outside=True,
        )
    below = [v for v in covered if rel.key(v) < rel.key(asked)][-1]
    above = [v for v in covered if rel.key(v) > rel.key(asked)][0]
    raise UsageError(
        f"the history has no {library} {rel.minor(asked)[0]}.{rel.minor(asked)[1]} release "
        f"(nearest: {below} and {above}); for an exact answer run "
        f"'python -m audit bisect {library} FROM TO' or 'nox -s upgrade -- {library} FROM TO'"
    )
