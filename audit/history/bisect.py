"""``bisect``: audit released versions of a library and name the release of each change.

The shell around :func:`audit.history.search.bisect`: it lists the releases, and its
auditor builds (or reuses) the release's matrix cell, runs ``python -m audit run`` in it
from this host, and reads the run file back.  A release that does not install is skipped
with its reason; the search then audits a neighbour.

Runs that already exist for a release (the committed history, earlier bisects) are used
instead of auditing it again when they were made the same way: the same Python, the same
pinned library, and every selected probe at its current version.  They anchor the search,
so a bisect across a span the history covers builds only the releases between its entries.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from audit.errors import UsageError
from audit.history import changes, plan, search
from audit.history import releases as rel
from audit.history.changes import Change, ProbeChange, Snapshot
from audit.runner import cells
from audit.runner.cells import audit_cell

Log = Callable[[str], None]


@dataclass(frozen=True)
class Request:
    """What ``audit bisect`` was asked."""

    library: str
    low: str
    high: str
    probes: Sequence[str] = ()
    probes_from: Sequence[str] = ()
    python: Optional[str] = None
    versions: Optional[str] = None  # --versions, comma-separated
    results: str = os.path.join("results", "bisect")
    remove_cells: bool = False
    fresh: bool = False  # reuse no earlier run: audit every release it needs
    history: str = os.path.join("results", "history")


@dataclass
class Outcome:
    """What the bisect found, and what it cost."""

    library: str
    low: str
    high: str
    releases: rel.Releases
    series: plan.Series
    built: List[str]
    changes: List[Change]
    skipped: Dict[str, str] = field(default_factory=dict)  # release -> why it was not audited
    seconds: float = 0.0
    runs: Dict[str, str] = field(default_factory=dict)  # release -> run file
    # release -> an earlier run used instead of a cell
    reused: Dict[str, str] = field(default_factory=dict)
    summary: List[ProbeChange] = field(default_factory=list)

    def to_json(self) -> Dict[str, object]:
        return {
            "library": self.library,
            "from": self.low,
            "to": self.high,
            "versions_built": self.built,
            "changes": [c.to_json() for c in self.changes],
            "runs_reused": self.reused,
            "releases": self.releases.versions,
            "releases_source": self.releases.source,
            "skipped": self.skipped,
            "python": self.series.python,
            "runs": self.runs,
        }


def run(request: Request, log: Log = lambda _: None) -> Outcome:
    """List the releases, search them, describe every change found."""
    start = time.perf_counter()
    library = rel.check_library(request.library)
    low, high = (rel.check_release(library, v) for v in (request.low, request.high))
    series = plan.for_bisect(library, low, high, request.python)
    listed = rel.releases(library, low, high, series.python, request.versions)
    log(
        f"{len(listed.versions)} {library} releases "
        f"from {listed.versions[0]} to {listed.versions[-1]} "
        f"(from {listed.source}; Python {series.python})"
    )
    auditor = _Auditor(request, series, listed.versions, log)
    found = search.bisect(listed.versions, auditor, anchors=sorted(auditor.reusable))
    described = changes.changes_between(
        found.transitions, {v: s.rows for v, s in auditor.snapshots.items()}, listed.versions
    )
    last = auditor.snapshots[listed.versions[-1]]
    built = [v for v in found.audited if v not in auditor.reused]
    return Outcome(
        library,
        listed.versions[0],
        listed.versions[-1],
        listed,
        series,
        built,
        described,
        {**listed.skipped, **auditor.failed},
        time.perf_counter() - start,
        {v: s.path for v, s in auditor.snapshots.items()},
        auditor.reused,
        changes.summarise(described, changes.catalogue_of(last), listed.versions),
    )


class _Auditor:
    """release -> outcome tokens, by building the cell and running the catalogue in it."""

    def __init__(
        self, request: Request, series: plan.Series, versions: Sequence[str], log: Log
    ) -> None:
        self.request, self.series, self.log = request, series, log
        self.ends = {versions[0], versions[-1]}
        self.snapshots: Dict[str, Snapshot] = {}
        self.failed: Dict[str, str] = {}
        self.folder = os.path.join(
            request.results, f"{request.library}-{versions[0]}-to-{versions[-1]}"
        )
        self.keys = (
            set() if request.fresh or request.probes_from else selection_keys(self._probes())
        )
        folders = [os.path.join(request.history, request.library), request.results]
        self.reusable = (
            reusable_runs(request.library, series, self.keys, folders) if self.keys else {}
        )
        self.reused: Dict[str, str] = {}

    def __call__(self, version: str) -> Optional[search.Outcomes]:
        if version in self.reusable:
            snap = changes.restrict(
                changes.snapshot(self.reusable[version], self.request.library),
                {key for key, _ in self.keys},
            )
            self.snapshots[version], self.reused[version] = snap, snap.path
            self.log(f"  {self.request.library} {version}: reusing {snap.path}")
            return changes.tokens(snap)
        cell = self.series.cell(version)
        existed = cells.exists(cell)
        start = time.perf_counter()
        try:
            python = cells.build(cell, log=self.log)
        except cells.BuildError as exc:
            return self._fail(version, f"does not install: {exc}")
        built = time.perf_counter()
        try:
            path = audit_cell(python, self.folder, self._selection())
        except UsageError as exc:
            return self._fail(version, f"audit failed: {exc}")
        finally:
            if self.request.remove_cells and not existed:
                cells.remove(cell)
        self.log(
            f"  {self.request.library} {version}: cell {'reused' if existed else 'built'} in "
            f"{built - start:.0f} s, audited in {time.perf_counter() - built:.0f} s"
        )
        snap = changes.snapshot(path, self.request.library)
        self.snapshots[version] = snap
        return changes.tokens(snap)

    def _fail(self, version: str, reason: str) -> Optional[search.Outcomes]:
        if version in self.ends:
            raise UsageError(f"{self.request.library} {version} cannot be audited: {reason}")
        self.log(f"  {self.request.library} {version}: skipped ({reason})")
        self.failed[version] = reason
        return None

    def _probes(self) -> List[str]:
        probes = list(self.request.probes)
        if not probes and not self.request.probes_from:
            probes = list(self.series.probes)
        return probes

    def _selection(self) -> List[str]:
        args = [a for p in self._probes() for a in ("--probe", p)]
        # globs over both
        wide = ["--catalogue"] if self.request.probes and self.request.probes_from else []
        return args + wide + [a for m in self.request.probes_from for a in ("--probes-from", m)]


def selection_keys(probes: Sequence[str]) -> Set[Tuple[str, str]]:
    """(probe key, probe version) of the selected catalogue probes, as this checkout has them."""
    import audit.probes  # noqa: F401
    from audit import registry

    return {(key, p.version) for key, p in registry.select(list(probes)).items()}


def reusable_runs(
    library: str, series: plan.Series, keys: Set[Tuple[str, str]], folders: Sequence[str]
) -> Dict[str, str]:
    """release -> an existing run made as this bisect would make it (first found wins)."""
    from audit.errors import StoreError
    from audit.store.runfile import read_run_file

    other = "numpy" if library == "torch" else "torch"
    pin = series.numpy if library == "torch" else series.torch
    out: Dict[str, str] = {}
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True)):
            try:
                rows = read_run_file(
                    path,
                    [
                        "probe_key",
                        "probe_version",
                        "python_version",
                        f"{library}_version",
                        f"{other}_version",
                    ],
                ).to_pylist()
            except StoreError:
                continue
            if not rows:
                continue
            env = rows[0]
            version = str(env[f"{library}_version"] or "").split("+")[0]
            same = (
                ".".join(str(env["python_version"]).split(".")[:2]) == series.python
                and (str(env[f"{other}_version"] or "").split("+")[0] or None) == pin
            )
            if (
                same
                and rel.parse(version)
                and keys <= {(r["probe_key"], r["probe_version"]) for r in rows}
            ):
                out.setdefault(version, path)
    return out
