"""What the committed history audits: per library, the Pythons, the pinned other library and
the probes, and the cell a release of the library is audited in.

One table (:data:`SERIES`) serves the history builder, ``bisect`` (its default Python and
pinned library) and ``advise`` (which series a release belongs to).  A series spans minor
releases on one Python; two series of a library overlap in one release (numpy 1.26 on
Python 3.9 and 3.12), so the whole span is covered and the overlap shows whether the
Python itself moved a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from audit.errors import UsageError
from audit.history import releases as rel
from audit.runner import matrix

Minor = Tuple[int, int]


@dataclass(frozen=True)
class Series:
    """Minor releases ``first`` .. ``last`` (None: the newest) of ``library`` on one Python."""

    library: str
    python: str
    first: Minor
    last: Optional[Minor]
    numpy: Optional[str] = None  # the pinned numpy of a torch series
    torch: Optional[str] = None  # the pinned torch of a numpy series (None: not installed)
    probes: Tuple[str, ...] = ()

    def covers(self, version: str) -> bool:
        m = rel.minor(version)
        return self.first <= m and (self.last is None or m <= self.last)

    def cell(self, version: str) -> matrix.Cell:
        """The environment a release of the library is audited in."""
        numpy, torch = (version, self.torch) if self.library == "numpy" else (self.numpy, version)
        return matrix.Cell(self.python, numpy, torch)


#: torch 2.0 .. newest all have wheels for Python 3.11 and run with numpy 1.26.4 (torch 2.0-2.2
#: cannot import numpy 2).  numpy 1.19 needs Python <= 3.9 and numpy 2.3+ needs >= 3.11: two
#: series meeting at 1.26, which has wheels for both.  torch is left out of numpy cells.
SERIES: Tuple[Series, ...] = (
    Series("torch", "3.11", (2, 0), None, numpy="1.26.4", probes=("torch*",)),
    Series("numpy", "3.9", (1, 19), (1, 26), probes=("numpy*",)),
    Series("numpy", "3.12", (1, 26), None, probes=("numpy*",)),
)


#: numpy pinned in torch cells on Pythons that numpy 1.26.4 has no wheels for.
NUMPY_FOR_NEW_PYTHONS = {"3.13": "2.2.6", "3.14": "2.4.6"}


def series_of(library: str) -> List[Series]:
    return [s for s in SERIES if s.library == library]


def for_bisect(library: str, low: str, high: str, python: Optional[str]) -> Series:
    """The series a bisect of ``low`` .. ``high`` runs in: one whose Python suits both ends.

    With ``--python`` the series' Python is replaced, keeping its pinned library (numpy
    1.26.4 for torch has wheels for Python 3.9-3.12; a newer Python pins numpy 2.x).
    """
    candidates = series_of(library)
    if python is not None:
        base = candidates[-1]
        pin = base.numpy
        if library == "torch" and pin and rel.compatibility("numpy", pin, python):
            pin = NUMPY_FOR_NEW_PYTHONS.get(python, pin)
        return Series(
            library, python, base.first, None, numpy=pin, torch=base.torch, probes=base.probes
        )
    ends = [v for v in (low, high) if v != rel.LATEST]
    oldest = min(s.first for s in candidates)
    for v in ends:
        if rel.minor(v) < oldest:
            raise UsageError(
                f"{library} {v} is older than the audit supports "
                f"({library} {oldest[0]}.{oldest[1]} and newer)"
            )
    for s in candidates:
        if all(rel.compatibility(library, v, s.python) is None for v in ends) and all(
            s.first <= rel.minor(v) for v in ends
        ):
            return Series(
                library, s.python, s.first, None, numpy=s.numpy, torch=s.torch, probes=s.probes
            )
    raise UsageError(
        f"no Python suits both {library} {low} and {high} "
        f"({', '.join(s.python for s in candidates)} tried); give --python X.Y"
    )


def latest_patches(versions: Sequence[str]) -> List[str]:
    """The newest release of each minor series, ascending (what the history audits)."""
    best = {}
    for v in sorted(versions, key=rel.key):
        best[rel.minor(v)] = v
    return [best[m] for m in sorted(best)]
