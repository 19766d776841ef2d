"""The probe × environment picture as data: columns, header fields and one cell per probe and
column.

A cell counts the cases of a probe that are *affected* in an environment, and takes the
most severe kind among them:

* divergent: the environment produced a stream other than the case's main one (most
  runs; ties go to the leftmost column, so a split between an old and a new version
  lights the new side);
* nondeterministic: the environment produced several streams (all its environments when
  the disagreement was within one process);
* variant: every environment that ran it (the parameter changes the result everywhere);
* error: the environments with a failed run (where the core names them; otherwise those
  that produced no stream for the case);
* baseline mode: this machine's environments with a new stream; and each reference
  environment whose stream differs from this machine's.

Pure: a :class:`~audit.report.view.View` in, named records out; html.py draws them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from audit.compare.attribution import PRIORITY, natural_key, shown
from audit.compare.judgements import FAMILIES, family_rank, kind_of, plain
from audit.compare.model import Comparison, Finding, Match, Verdict
from audit.report.view import ProbeSummary, View

#: Cell kinds, most severe first (a cell shows the first that applies among its cases).
KINDS = (
    "error",
    "no-longer-runs",
    "nondeterministic",
    "structural",
    "stream-change",
    "new",
    "differs",
    "variant",
    "sparse",
    "within-sample",
    "signed-zero",
    "outside-sample",
    "numerical-drift",
    "new-case",
    "incomparable",
)

#: Header fields shown first when they vary: versions, the build, dispatch and threads (the
#: first ten always, the rest only when they group the columns differently from those shown).
HEADER_ORDER = (
    "python_version",
    "numpy_version",
    "torch_version",
    "cuda_version",
    "pandas_version",
    "device",
    "gpu_name",
    "cpu_model",
    "cpu_capability",
    "num_threads",
    "openblas_core",
    "blas",
    "numpy_simd",
)
CORE = HEADER_ORDER[:10]
#: When a single environment is drawn nothing varies; these describe it.
IDENTITY = (
    "cpu_model",
    "cpu_capability",
    "torch_version",
    "numpy_version",
    "num_threads",
    "gpu_name",
)
MAX_HEADER_FIELDS = 6

Place = Dict[Tuple[bool, int], int]  # (reference side?, env id) -> column


@dataclass(frozen=True)
class Column:
    env: Dict[str, Any]
    side: str  # "" (compare mode), "this machine" or "reference"
    index: int  # into Comparison.envs, or Comparison.reference_envs for the reference side


@dataclass
class Cell:
    count: int = 0
    kinds: Counter = field(default_factory=Counter)
    ran: bool = False  # some case of the probe ran (ok) in this environment

    @property
    def kind(self) -> Optional[str]:
        return min(self.kinds, key=KINDS.index) if self.kinds else None


@dataclass
class Row:
    probe: ProbeSummary
    cells: List[Cell]


@dataclass
class Family:
    name: str
    rows: List[Row]  # probes that differ
    quiet: List[ProbeSummary]  # probes with only new or incomparable cases
    quiet_cells: List[Cell]
    unchanged: List[ProbeSummary]
    unsupported: List[ProbeSummary]  # probes unsupported in every run
    ran: List[bool]  # per column: some unchanged probe of the family ran there


@dataclass
class Heatmap:
    columns: List[Column]
    fields: List[str]  # header rows, most telling first
    more: List[str]  # other varying fields (in each column's tooltip)
    families: List[Family]


def build(s: View) -> Heatmap:
    c = s.comparison
    columns = _columns(c)
    fields, more = header_fields(c, [col.env for col in columns])
    columns.sort(
        key=lambda col: (
            col.side != "this machine",
            tuple(natural_key(shown(col.env.get(f))) for f in fields),
        )
    )
    place = {(col.side == "reference", col.index): i for i, col in enumerate(columns)}
    families = []
    declared = {p.family for p in s.probes} - set(FAMILIES)  # a probe module's own FAMILY
    for name in sorted([*FAMILIES, *declared], key=lambda fam: (family_rank(fam), fam)):
        probes = [p for p in s.probes if p.family == name]
        if not probes:
            continue
        rows = [Row(p, _cells(p, place, len(columns))) for p in probes if p.changed]
        quiet = [p for p in probes if not p.changed and p.quiet]
        quiet_cells = _merged([_cells(p, place, len(columns)) for p in quiet], len(columns))
        unchanged = [p for p in probes if not p.changed and not p.quiet and not p.unsupported_only]
        ran = [False] * len(columns)
        for p in unchanged:
            for cell_index in _ran(p.findings, place):
                ran[cell_index] = True
        families.append(
            Family(
                name,
                rows,
                quiet,
                quiet_cells,
                unchanged,
                [p for p in probes if p.unsupported_only],
                ran,
            )
        )
    # families with news first, in FAMILIES order
    families.sort(key=lambda fam: (not fam.rows, not fam.quiet))
    return Heatmap(columns, fields, more, families)


def _merged(rows: List[List[Cell]], width: int) -> List[Cell]:
    out = [Cell() for _ in range(width)]
    for cells in rows:
        for total, cell in zip(out, cells):
            total.count += cell.count
            total.kinds.update(cell.kinds)
            total.ran = total.ran or cell.ran
    return out


def _columns(c: Comparison) -> List[Column]:
    side = "this machine" if c.baseline else ""
    columns = [Column(e, side, i) for i, e in enumerate(c.envs)]
    if c.baseline:
        columns += [Column(e, "reference", i) for i, e in enumerate(c.reference_envs)]
    return columns


def header_fields(c: Comparison, envs: Sequence[Dict[str, Any]]) -> Tuple[List[str], List[str]]:
    """(fields shown as header rows, other fields that vary).

    Fields that explain a split come first, then versions, build, dispatch and threads;
    a field outside :data:`CORE` that groups the columns exactly as an earlier one does
    (numpy's SIMD list beside numpy's version) is left to the tooltip.
    """
    names = list(envs[0]) if envs else []
    varying = [f for f in names if len({shown(e.get(f)) for e in envs}) > 1]
    if not varying:
        return [f for f in IDENTITY if envs and envs[0].get(f) is not None], []
    explaining = {
        a for f in c.findings if not plain(f) for axis in f.axes[:1] for a in axis.split("+")
    }
    explaining |= {k for f in c.findings for k in f.axes_values}
    rank: Dict[str, int] = {}
    for f in [*HEADER_ORDER, *PRIORITY]:
        rank.setdefault(f, len(rank))

    def order(f: str) -> Tuple[int, int, int]:
        return (
            0 if f in explaining else 1 if f in HEADER_ORDER else 2,
            rank.get(f, len(rank)),
            names.index(f),
        )

    chosen: List[str] = []
    partitions = set()
    for f in sorted(varying, key=order):
        partition = _partition(envs, f)
        repeats = partition in partitions and f not in CORE
        if (
            (f in explaining or f in HEADER_ORDER)
            and not repeats
            and len(chosen) < MAX_HEADER_FIELDS
        ):
            chosen.append(f)
            partitions.add(partition)
    chosen = chosen or varying[:1]
    chosen.sort(key=lambda f: (rank.get(f, len(rank)), names.index(f)))
    return chosen, [f for f in sorted(varying, key=order) if f not in chosen]


def _partition(envs: Sequence[Dict[str, Any]], name: str) -> Tuple[Tuple[int, ...], ...]:
    """How field ``name`` groups the columns (the groups' members, independent of the values)."""
    groups: Dict[str, List[int]] = {}
    for i, e in enumerate(envs):
        groups.setdefault(shown(e.get(name)), []).append(i)
    return tuple(sorted(tuple(g) for g in groups.values()))


def _ran(findings: Sequence[Finding], place: Place) -> Set[int]:
    """Columns where some case of these findings produced a stream (the reference's, where
    known)."""
    mine = {
        place[(False, e)]
        for f in findings
        for s in f.streams
        for e in s.env_ids
        if (False, e) in place
    }
    return mine | {
        place[(True, e)]
        for f in findings
        for s in f.reference_streams
        for e in s.env_ids
        if (True, e) in place
    }


def _cells(p: ProbeSummary, place: Place, width: int) -> List[Cell]:
    cells = [Cell() for _ in range(width)]
    for i in _ran(p.findings, place):
        cells[i].ran = True
    for f in p.findings:
        if plain(f):
            continue
        for column, kind in affected(f, place):
            cells[column].count += 1
            cells[column].kinds[kind] += 1
    return cells


def category(f: Finding) -> str:
    """The kind a cell shows for a finding that is not plain."""
    if f.verdict == Verdict.ERROR or f.match == Match.ERROR:
        return "error"
    if f.match == Match.NO_LONGER_RUNS:
        return "no-longer-runs"
    if f.verdict == Verdict.NONDETERMINISTIC or f.match == Match.NONDETERMINISTIC:
        return "nondeterministic"
    if f.match == Match.NEW_STREAM:
        return kind_of(f) or "new"
    if f.match in (Match.NEW_CASE, Match.INCOMPARABLE):
        return f.match.value
    if f.verdict == Verdict.VARIANT:
        return "variant"
    if f.verdict == Verdict.INCOMPARABLE:
        return "incomparable"
    return kind_of(f) or "differs"


def affected(f: Finding, place: Place) -> List[Tuple[int, str]]:
    """The columns in which finding ``f`` counts, each with its kind (see the module docstring)."""
    kind = category(f)
    return [(column, kind) for column in _columns_of(f, place)] + _reference_columns(f, place)


def _columns_of(f: Finding, place: Place) -> List[int]:
    mine = [place[(False, e)] for s in f.streams for e in s.env_ids if (False, e) in place]
    if f.verdict == Verdict.ERROR or f.match in (Match.ERROR, Match.NO_LONGER_RUNS):
        # a no-longer-runs finding has no stream of its own: mine is empty there
        failed = [place[(False, e)] for e in f.failed_env_ids if (False, e) in place]
        return sorted(set(failed)) or sorted(
            i for (ref, _), i in place.items() if not ref and i not in mine
        )
    if f.verdict == Verdict.NONDETERMINISTIC or f.match == Match.NONDETERMINISTIC:
        seen = Counter(mine)
        return sorted({i for i, n in seen.items() if n > 1}) or sorted(set(mine))
    if f.match in (Match.NEW_CASE, Match.INCOMPARABLE) or f.verdict == Verdict.INCOMPARABLE:
        return sorted(set(mine))
    if f.match == Match.NEW_STREAM:
        return sorted(
            {
                place[(False, e)]
                for s in f.streams
                if s.known is False
                for e in s.env_ids
                if (False, e) in place
            }
        )
    if f.match is not None:
        return []
    if f.verdict == Verdict.VARIANT:
        return sorted(set(mine))
    return _off_main(f, place) if f.verdict == Verdict.DIVERGENT else []


def _off_main(f: Finding, place: Place) -> List[int]:
    """Columns that produced a stream other than the main one (most runs, then leftmost)."""

    def rank(s: Any) -> Tuple[int, int]:
        return (-s.run_count, min((place.get((False, e), 10**9) for e in s.env_ids), default=10**9))

    if not f.streams:
        return []
    main = min(f.streams, key=rank)
    return sorted(
        {
            place[(False, e)]
            for s in f.streams
            if s is not main
            for e in s.env_ids
            if (False, e) in place
        }
    )


def _reference_columns(f: Finding, place: Place) -> List[Tuple[int, str]]:
    """Baseline mode, a new stream, when the reference itself holds several streams: the reference
    environments whose stream differs from this machine's, with the kind measured against the
    nearest stream where that is theirs.  When every reference run made one stream, no
    reference column is marked (they all differ alike; the row's own columns say where)."""
    if f.match != Match.NEW_STREAM or len(f.reference_streams) < 2:
        # every reference run made the one stream: the reference columns tell nothing apart
        return []
    prints = {s.fingerprint for s in f.streams}
    nearest = {s.nearest.fingerprint for s in f.streams if s.nearest is not None}
    out = {}
    for s in f.reference_streams:
        if s.fingerprint in prints:
            continue
        kind = category(f) if s.fingerprint in nearest else "differs"
        for e in s.env_ids:
            if (True, e) in place:
                out[place[(True, e)]] = kind
    return sorted(out.items())
