"""The version matrix: which (python, numpy, torch) cells ``nox -s matrix`` audits.

Pure: it reads the ``AUDIT_PYTHON``, ``AUDIT_NUMPY`` and ``AUDIT_TORCH`` overrides
(space-separated versions; ``none`` leaves a library out), validates each version against
the compatibility tables below, and names the cells.  A cell that cannot exist (no wheel
of numpy 1.26 for Python 3.13, torch 2.1 built against numpy 1.x meeting numpy 2) is kept
with the reason it is skipped, so a report says why it is missing instead of silently
auditing less.  The noxfile builds the environments; nothing here touches the disk.

The tables record which CPython minor versions have binary wheels on PyPI for each
release series (checked with ``pip index versions LIB --python-version X.Y
--only-binary=:all:``).  A release series missing here is an error that names this file:
add the series once its wheels are known rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from audit.errors import UsageError

Minor = Tuple[int, int]

#: CPython minors this project's worker supports.
PYTHONS: Tuple[Minor, ...] = ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14))

#: torch release series -> (oldest, newest) CPython with wheels.
TORCH_PYTHONS: Dict[Minor, Tuple[Minor, Minor]] = {
    **{(2, m): ((3, 8), (3, 11)) for m in (0, 1)},
    **{(2, m): ((3, 8), (3, 12)) for m in (2, 3, 4)},
    **{(2, m): ((3, 9), (3, 13)) for m in (5, 6, 7, 8)},
    **{(2, m): ((3, 10), (3, 14)) for m in (9, 10, 11, 12, 13, 14)},
    (2, 15): ((3, 11), (3, 14)),
}

#: numpy release series -> (oldest, newest) CPython with wheels.
NUMPY_PYTHONS: Dict[Minor, Tuple[Minor, Minor]] = {
    (1, 19): ((3, 6), (3, 9)),
    (1, 20): ((3, 7), (3, 9)),
    (1, 21): ((3, 7), (3, 10)),
    (1, 22): ((3, 8), (3, 10)),
    (1, 23): ((3, 8), (3, 11)),
    (1, 24): ((3, 8), (3, 11)),
    (1, 25): ((3, 9), (3, 11)),
    (1, 26): ((3, 9), (3, 12)),
    (2, 0): ((3, 9), (3, 12)),
    (2, 1): ((3, 10), (3, 13)),
    (2, 2): ((3, 10), (3, 13)),
    (2, 3): ((3, 11), (3, 14)),
    (2, 4): ((3, 11), (3, 14)),
    (2, 5): ((3, 12), (3, 14)),
}

#: torch wheels before this series were built against numpy 1.x and cannot use numpy 2.
TORCH_FIRST_NUMPY2: Minor = (2, 3)

#: The matrix when no override is set: two torch releases, numpy 1.x and 2.x.
DEFAULTS: Dict[str, str] = {
    "AUDIT_PYTHON": "3.11",
    "AUDIT_NUMPY": "1.26.4 2.4.6",
    "AUDIT_TORCH": "2.4.1 2.13.0",
}

NONE = "none"
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_TABLES = {"numpy": NUMPY_PYTHONS, "torch": TORCH_PYTHONS}


def _minor(text: str) -> Minor:
    m = _VERSION.match(text)
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def _fmt(minor: Minor) -> str:
    return f"{minor[0]}.{minor[1]}"


def check_version(library: str, text: str) -> str:
    """``text`` if it is a release this module knows; otherwise a UsageError saying what to do."""
    if not _VERSION.match(text):
        raise UsageError(
            f"{library} version {text!r} is malformed: expected X.Y.Z such as "
            f"{'2.4.1' if library == 'torch' else '1.26.4'}, or 'none'"
        )
    if library == "python":
        if _minor(text) not in PYTHONS:
            known = ", ".join(_fmt(p) for p in PYTHONS)
            raise UsageError(f"python {text} is not supported by the worker (supported: {known})")
        return text
    table = _TABLES[library]
    if _minor(text) not in table:
        known = f"{_fmt(min(table))} to {_fmt(max(table))}"
        raise UsageError(
            f"unknown {library} release {text}: audit/runner/matrix.py knows the {library} series "
            f"{known}; add the series' Python range there if it is new"
        )
    if _VERSION.match(text).group(3) is None:  # type: ignore[union-attr]
        raise UsageError(
            f"{library} version {text!r} needs a patch number (e.g. {text}.0): "
            "cells pin exact releases"
        )
    return text


def parse_versions(library: str, text: str) -> List[Optional[str]]:
    """A space-separated override -> versions; ``none`` (numpy/torch only) -> None."""
    words = text.split()
    if not words:
        raise UsageError(
            f"the {library} list is empty: give versions, or 'none' to leave {library} out"
        )
    versions: List[Optional[str]] = []
    for word in words:
        if word.lower() == NONE and library != "python":
            versions.append(None)
        else:
            versions.append(check_version(library, word))
    if len(set(versions)) != len(versions):
        raise UsageError(f"a {library} version is listed twice in {text!r}")
    return versions


@dataclass(frozen=True)
class Cell:
    """One environment of the matrix; ``skip`` says why it cannot be built, if so."""

    python: str
    numpy: Optional[str]
    torch: Optional[str]
    skip: Optional[str] = None

    @property
    def name(self) -> str:
        """``py3.11-numpy1.26.4-torch2.4.1``; a library left out reads ``notorch``."""
        parts = [f"py{self.python}"]
        for lib, version in (("numpy", self.numpy), ("torch", self.torch)):
            parts.append(f"{lib}{version}" if version else f"no{lib}")
        return "-".join(parts)

    @property
    def requirements(self) -> List[str]:
        """What the cell's environment holds: the libraries under test and the hash package."""
        reqs = ["xxhash"]
        reqs += [f"numpy=={self.numpy}"] if self.numpy else []
        reqs += [f"torch=={self.torch}"] if self.torch else []
        if self.torch and _minor(self.torch) < (2, 2):
            # torch 2.0/2.1 import pkg_resources (optimizers, dynamo); a pip-made venv on these
            # Pythons has setuptools, a uv-made one would not: audit what users run
            reqs.append("setuptools<81")
        return reqs


def incompatibility(python: str, numpy: Optional[str], torch: Optional[str]) -> Optional[str]:
    """Why this combination cannot be installed, or None."""
    py = _minor(python)
    for library, version in (("numpy", numpy), ("torch", torch)):
        if version is None:
            continue
        low, high = _TABLES[library][_minor(version)]
        if not low <= py <= high:
            return (
                f"{library} {version} has no wheels for Python {python} "
                f"(only {_fmt(low)}-{_fmt(high)})"
            )
    if numpy and torch and _minor(numpy) >= (2, 0) and _minor(torch) < TORCH_FIRST_NUMPY2:
        return f"torch {torch} was built against numpy 1.x and cannot import numpy {numpy}"
    return None


def cells(
    pythons: Sequence[str], numpys: Sequence[Optional[str]], torches: Sequence[Optional[str]]
) -> List[Cell]:
    """Every (python, numpy, torch) combination, impossible ones marked with their reason."""
    return [
        Cell(py, np_, pt, incompatibility(py, np_, pt))
        for py in pythons
        for np_ in numpys
        for pt in torches
    ]


def from_environ(environ: Mapping[str, str]) -> List[Cell]:
    """The matrix named by ``AUDIT_PYTHON``/``AUDIT_NUMPY``/``AUDIT_TORCH`` (defaults where
    unset)."""

    def get(var: str) -> str:
        value = environ.get(var)
        return DEFAULTS[var] if value is None or not value.strip() else value

    pythons = [p for p in parse_versions("python", get("AUDIT_PYTHON")) if p is not None]
    return cells(
        pythons,
        parse_versions("numpy", get("AUDIT_NUMPY")),
        parse_versions("torch", get("AUDIT_TORCH")),
    )


def pick_interpreter(python: str, installed: Sequence[str]) -> Optional[str]:
    """The newest installed full version (``3.11.7``) that matches ``python`` (``3.11``)."""
    want = tuple(int(p) for p in python.split("."))
    matches = []
    for full in installed:
        m = re.match(r"^(\d+)\.(\d+)\.(\d+)$", full)
        if m and tuple(int(g) for g in m.groups())[: len(want)] == want:
            matches.append(tuple(int(g) for g in m.groups()))
    return ".".join(map(str, max(matches))) if matches else None


# --------------------------------------------------------------------------- upgrade


@dataclass(frozen=True)
class LibraryUpgrade:
    """``nox -s upgrade -- torch 2.4.1 2.13.0``: two cells that differ in one library."""

    library: str
    old: Cell
    new: Cell

    @property
    def field(self) -> str:
        """The environment field compare's ``--upgrade`` attributes the change to."""
        return f"{self.library}_version"


def parse_upgrade(args: Sequence[str], environ: Mapping[str, str]) -> LibraryUpgrade:
    """``LIBRARY OLD NEW`` -> the two cells, the other library and Python chosen to fit both."""
    if len(args) != 3 or args[0] not in _TABLES:
        raise UsageError("usage: nox -s upgrade -- torch OLD NEW   (or: numpy OLD NEW)")
    library, old, new = args[0], check_version(args[0], args[1]), check_version(args[0], args[2])
    if old == new:
        raise UsageError(f"{library} {old} -> {new}: the two versions are the same")
    matrix = from_environ(environ)
    other = "torch" if library == "numpy" else "numpy"
    pythons = list(dict.fromkeys(c.python for c in matrix))
    others = list(dict.fromkeys(getattr(c, other) for c in matrix))
    for py in pythons:
        for version in others:
            pair = [{"python": py, library: v, other: version} for v in (old, new)]
            made = [Cell(p["python"], p["numpy"], p["torch"]) for p in pair]
            if all(incompatibility(c.python, c.numpy, c.torch) is None for c in made):
                return LibraryUpgrade(library, made[0], made[1])
    raise UsageError(
        f"no Python in AUDIT_PYTHON ({' '.join(pythons)}) and {other} in AUDIT_{other.upper()} "
        f"suits both {library} {old} and {new}; set them, e.g. AUDIT_PYTHON=3.11"
    )
