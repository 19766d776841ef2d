"""Released versions of a library: from the package index (through pip), or a list given.

Only final releases count (``2.4.1``; not ``2.5.0rc1``, ``2.0.0.post1``, ``2.13.0+cpu``), and a
release the index marks yanked is skipped, as is one without wheels for the audited Python.
Every skip keeps its reason, so a bisect can say what it left out instead of silently
auditing less.  :func:`select` is pure; :func:`index_versions` and :func:`yanked_versions`
are the two calls that touch the network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from audit.errors import AuditError, UsageError
from audit.runner import matrix

Version = Tuple[int, int, int]

LIBRARIES = ("numpy", "torch")
LATEST = "latest"
_FINAL = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_SIMPLE = "https://pypi.org/simple"


class IndexUnavailable(AuditError):
    """No package index answered; ``--versions`` gives the list instead."""


def parse(text: str) -> Optional[Version]:
    """``2.4`` -> (2, 4, 0), ``2.4.1`` -> (2, 4, 1); None for anything but a final release."""
    m = _FINAL.match(text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def key(text: str) -> Version:
    """Sort key of a final release (callers filter with :func:`parse` first)."""
    got = parse(text)
    assert got is not None, text
    return got


def minor(text: str) -> Tuple[int, int]:
    major, minor_, _ = key(text)
    return major, minor_


def check_library(library: str) -> str:
    if library not in LIBRARIES:
        raise UsageError(
            f"unknown library {library!r}: bisect and advise know {' and '.join(LIBRARIES)}"
        )
    return library


def check_release(library: str, text: str) -> str:
    """A version given on the command line: a final release (``latest`` for the newest)."""
    if text == LATEST:
        return text
    if parse(text) is None:
        example = "2.4.1" if library == "torch" else "1.26.4"
        raise UsageError(
            f"{library} version {text!r} is not a final release such as {example} "
            "(pre-releases and local builds are not audited)"
        )
    return text


@dataclass(frozen=True)
class Releases:
    """The releases a bisect audits, in ascending order, and those it left out and why."""

    library: str
    versions: List[str]
    source: str  # where the list came from, said to the person
    skipped: Dict[str, str] = field(default_factory=dict)


def compatibility(library: str, version: str, python: Optional[str]) -> Optional[str]:
    """Why ``version`` has no wheels for ``python`` by audit/runner/matrix.py, or None."""
    if python is None:
        return None
    table = matrix.NUMPY_PYTHONS if library == "numpy" else matrix.TORCH_PYTHONS
    span = table.get(minor(version))
    if span is None:  # a series the table does not know yet: the index decides
        return None
    py = tuple(int(p) for p in python.split(".")[:2])
    low, high = span
    if not low <= py <= high:
        series = ".".join(map(str, minor(version)))
        return (
            f"no wheels for Python {python} "
            f"(the {series} series has {low[0]}.{low[1]}-{high[0]}.{high[1]})"
        )
    return None


def select(
    library: str,
    candidates: Iterable[str],
    low: str,
    high: str,
    source: str,
    python: Optional[str] = None,
    yanked: Iterable[str] = (),
    installable: Optional[Iterable[str]] = None,
) -> Releases:
    """The final releases from ``low`` to ``high`` (inclusive) that can be audited.

    ``installable`` (versions with wheels for ``python``, as the index says) and the
    compatibility table both exclude a release; ``yanked`` ones are left out too.
    """
    finals = sorted({c for c in candidates if parse(c) is not None}, key=key)
    if high == LATEST:
        if not finals:
            raise UsageError(f"no final {library} release in {source}")
        high = finals[-1]
    lo, hi = key(low), key(high)
    if lo >= hi:
        raise UsageError(f"{library} {low} -> {high}: FROM must be an older release than TO")
    yanked_set, wheels = set(yanked), set(installable) if installable is not None else None
    versions: List[str] = []
    skipped: Dict[str, str] = {}
    for version in finals:
        if not lo <= key(version) <= hi:
            continue
        reason = _reason(library, version, python, yanked_set, wheels)
        if reason:
            skipped[version] = reason
        else:
            versions.append(version)
    for end in (low, high):
        if end not in versions:
            why = skipped.get(end) or f"not a release listed by {source}"
            raise UsageError(f"{library} {end} cannot be audited: {why}")
    return Releases(library, versions, source, skipped)


def _reason(
    library: str, version: str, python: Optional[str], yanked: Set[str], wheels: Optional[Set[str]]
) -> Optional[str]:
    if version in yanked:
        return "yanked on the index"
    table = compatibility(library, version, python)
    if table:
        return table
    if wheels is not None and version not in wheels:
        return f"no wheel for Python {python} on the index"
    return None


# --------------------------------------------------------------------------- the index


def _pip_index(library: str, python: Optional[str]) -> List[str]:
    args = [
        sys.executable,
        "-m",
        "pip",
        "index",
        "versions",
        library,
        "--disable-pip-version-check",
    ]
    if python:
        args += ["--python-version", python, "--only-binary=:all:"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IndexUnavailable(
            f"pip index versions {library} failed ({exc}); give --versions V1,V2,..."
        ) from None
    return parse_pip_index(done.stdout) if done.returncode == 0 else []


def parse_pip_index(text: str) -> List[str]:
    """The versions of ``pip index versions`` output (its ``Available versions:`` line)."""
    for line in text.splitlines():
        if line.strip().startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    return []


def index_versions(library: str, python: Optional[str]) -> Tuple[List[str], Optional[List[str]]]:
    """Every version on the index, and those with wheels for ``python`` (None: unknown)."""
    every = _pip_index(library, None)
    if not every:
        raise IndexUnavailable(
            f"no package index answered 'pip index versions {library}'; "
            "give the releases with --versions V1,V2,..."
        )
    installable = (_pip_index(library, python) or None) if python else None
    # the plain listing honours this interpreter's Requires-Python: add what ``python`` sees
    return list(dict.fromkeys([*every, *(installable or [])])), installable


def yanked_versions(library: str, timeout: float = 30.0) -> Optional[Set[str]]:
    """Versions whose every file the index marks yanked (PEP 691 JSON); None if not known."""
    base = (os.environ.get("PIP_INDEX_URL") or _SIMPLE).rstrip("/")
    request = urllib.request.Request(
        f"{base}/{library}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        # S310 flags urlopen of any URL; this one is an https index URL.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = json.load(response)
    except (OSError, ValueError):
        return None
    return yanked_from_simple(data.get("files", []), library)


def yanked_from_simple(files: Sequence[dict], library: str) -> Set[str]:
    """From PEP 691 file entries: the versions all of whose files are yanked."""
    state: Dict[str, bool] = {}
    prefix = re.compile(rf"^{re.escape(library)}-([^-]+?)(?:-|\.tar\.gz$|\.zip$)", re.IGNORECASE)
    for entry in files:
        m = prefix.match(str(entry.get("filename", "")))
        if m:
            version = m.group(1)
            state[version] = state.get(version, True) and bool(entry.get("yanked"))
    return {v for v, all_yanked in state.items() if all_yanked}


def parse_list(given: str) -> List[str]:
    """The releases of a ``--versions`` list; an empty or unparsable list is a usage error (never
    a reason to ask the package index instead)."""
    listed = [v.strip() for v in given.split(",") if v.strip()]
    if not listed:
        raise UsageError(
            f"--versions {given!r} lists no release: give V1,V2,... such as 2.4.1,2.5.1, "
            "or leave --versions out to ask the package index"
        )
    bad = [v for v in listed if parse(v) is None]
    if bad:
        raise UsageError(f"--versions holds {', '.join(bad)}: give final releases such as 2.4.1")
    return listed


def releases(
    library: str, low: str, high: str, python: Optional[str], given: Optional[str] = None
) -> Releases:
    """The releases to bisect: from ``given`` (``--versions``), else from the package index."""
    if given is not None:
        listed = parse_list(given)
        ends = [v for v in (low, high) if v != LATEST]
        return select(library, [*listed, *ends], low, high, "the --versions list", python)
    every, installable = index_versions(library, python)
    yanked = yanked_versions(library)
    source = "the package index (pip index versions)" + (
        "" if yanked is not None else "; yanked status unknown"
    )
    return select(library, every, low, high, source, python, yanked or (), installable)
