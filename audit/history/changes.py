"""Stream changes between releases, from run files: what bisect and advise both report.

A :class:`Snapshot` is one run file reduced to what a change needs (one row per case); its
:func:`tokens` are what the search compares; a :class:`Change` is one case that changed
between two releases, with the difference kind from compare's own classification
(:func:`audit.compare.difference.between`) so a stream change or a numerical drift
means the same here as in ``compare``.  Reading uses pyarrow only (no pandas), which keeps
``advise`` well under a second.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Set, Tuple

from audit.compare.attribution import changed_with
from audit.compare.difference import between
from audit.compare.model import Difference
from audit.compare.params import distinguishing_values
from audit.compare.rows import DETAIL_COLUMNS, Detail
from audit.history.search import Token, Transition
from audit.registry import canonical_json

#: The environment fields a snapshot keeps (read as columns: the same on every row of a run).
ENV_COLUMNS = (
    "python_version",
    "numpy_version",
    "torch_version",
    "cpu_capability",
    "blas",
    "num_threads",
    "ATEN_CPU_CAPABILITY",
    "OMP_NUM_THREADS",
)

CaseId = Tuple[str, str]  # (probe_version, case_key): edited probes are never compared


@dataclass(frozen=True)
class Row:
    """One case of one run, as a change describes it."""

    probe: str
    probe_key: str
    params: str  # canonical JSON
    device: str
    status: str
    fingerprint: Optional[str]
    repeatable: bool
    detail: Detail


@dataclass(frozen=True)
class Snapshot:
    """One run of one release: its environment and its cases."""

    version: str  # the audited library's version
    python: str  # major.minor
    path: str
    env: Dict[str, Any]
    rows: Dict[CaseId, Row]


def snapshot(path: str, library: str) -> Snapshot:
    """Read a run file (only the columns a change needs)."""
    from audit.store.runfile import read_run_file
    from audit.store.schema import REQUIRED

    # the columns every run file has (the case and its outcome), its detail, its environment
    table = read_run_file(path, (*REQUIRED, *DETAIL_COLUMNS, *ENV_COLUMNS)).to_pylist()
    env = {name: table[0][name] for name in ENV_COLUMNS} if table else {}
    rows: Dict[CaseId, Row] = {}
    for r in table:
        detail = Detail(**{name: r[name] for name in DETAIL_COLUMNS})
        rows[(r["probe_version"], r["case_key"])] = Row(
            r["probe"],
            r["probe_key"],
            r["params"] or "{}",
            r["device"],
            r["status"],
            r["fingerprint"],
            r["repeat_identical"] is not False,
            detail,
        )
    version = str(env.get(f"{library}_version") or "").split("+")[0]
    python = ".".join(str(env.get("python_version") or "").split(".")[:2])
    return Snapshot(version, python, path, env, rows)


def confounders(before: Snapshot, after: Snapshot, library: str) -> List[str]:
    """Other environment fields that changed with the release ("cpu_capability AVX2 -> AVX512").

    torch 2.0 dispatched to AVX2 kernels on an AVX-512 machine where later releases use
    AVX-512: a change at such a step may be the dispatch level's, which a reader must know.
    Python is compared by major.minor; a field unknown (null) on either side is not a change.
    """
    envs = [{**snap.env, "python_version": snap.python} for snap in (before, after)]
    known = [
        name
        for name in ENV_COLUMNS
        if name != f"{library}_version" and all(e.get(name) is not None for e in envs)
    ]
    changed = changed_with(envs[:1], envs[1:], known)
    return [f"{name} {a[0]} -> {b[0]}" for name, (a, b) in changed.items()]


def restrict(snap: Snapshot, probe_keys: Set[str]) -> Snapshot:
    """The snapshot with only the cases of ``probe_keys`` (a reused run may hold more)."""
    rows = {case: row for case, row in snap.rows.items() if row.probe_key in probe_keys}
    return Snapshot(snap.version, snap.python, snap.path, snap.env, rows)


def token(row: Row) -> Token:
    """What the search compares: the fingerprint of a repeatable ok case, else its status."""
    if row.status != "ok":
        return f"<{row.status}>"
    if not row.repeatable:
        return "<nondeterministic>"
    return row.fingerprint or "<no fingerprint>"


def tokens(snap: Snapshot) -> Dict[Hashable, Token]:
    return {case: token(row) for case, row in snap.rows.items()}


@dataclass(frozen=True)
class Change:
    """One case whose outcome changed between two releases (the bisect/advise JSON entry)."""

    probe: str
    probe_key: str
    case: Dict[str, Any]
    device: str
    first_changed: str
    previous: str
    difference: Optional[Difference]  # None when the case was not ok on both sides
    status: Optional[str] = None  # e.g. "unsupported -> ok" when not ok on both sides
    max_ulp: Optional[float] = None

    @property
    def stream(self) -> bool:
        """A change of the stream or its values (not of whether the case runs)."""
        return self.difference is not None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "probe": self.probe,
            "case": self.case,
            "device": self.device,
            "first_changed": self.first_changed,
            "previous": self.previous,
            "difference": self.difference.value if self.difference else None,
        }
        if self.status:
            out["status"] = self.status
        if self.max_ulp is not None:
            out["max_ulp"] = self.max_ulp
        return out


def describe(transition: Transition, before: Row, after: Row) -> Change:
    """The change a transition is, classified the way compare classifies two streams."""
    case = json.loads(before.params)
    common = dict(
        probe=after.probe,
        probe_key=after.probe_key,
        case=case,
        device=after.device,
        first_changed=transition.first_changed,
        previous=transition.previous,
    )
    if not (before.status == after.status == "ok" and before.repeatable and after.repeatable):
        return Change(**common, difference=None, status=f"{_state(before)} -> {_state(after)}")
    located, _ = between(before.detail, after.detail)
    # a kind the runs cannot tell (no block digests) is still different numbers: a new stream;
    # drift the sample saw while blocks it does not reach differ too (or a sign flip of zeros)
    # is never called drift: sparse, how far the rest moved not measured
    unmeasured = (
        Difference.SPARSE if located.max_ulp or located.zero_sign else Difference.STREAM_CHANGE
    )
    return Change(
        **common,
        difference=located.kind or unmeasured,
        max_ulp=located.max_ulp if located.kind else None,
    )


def _state(row: Row) -> str:
    return row.status if row.status != "ok" or row.repeatable else "nondeterministic"


def bridged(transitions: Sequence[Transition], order: Sequence[str]) -> List[Transition]:
    """Stream changes hidden behind a gap: ok in one release, failing in the next, ok again with
    another fingerprint (torch 2.1's optimizers fail without setuptools).  The transitions
    give ok -> unsupported and unsupported -> ok; this adds the ok -> ok change across the gap,
    from the last release where the case ran to the first where it ran again.
    """
    rank = {v: i for i, v in enumerate(order)}
    by_case: Dict[Hashable, List[Transition]] = defaultdict(list)
    for t in transitions:
        by_case[t.case].append(t)
    out = []
    for case, steps in by_case.items():
        last_ok: Optional[Tuple[str, Token]] = None
        for t in sorted(steps, key=lambda s: rank[s.first_changed]):
            if last_ok is None and _ran(t.before):
                last_ok = (t.previous, t.before or "")
            if _ran(t.after):
                if last_ok and not _ran(t.before) and last_ok[1] != t.after:
                    out.append(Transition(case, last_ok[0], t.first_changed, last_ok[1], t.after))
                last_ok = (t.first_changed, t.after or "")
    return out


def _ran(token_: Optional[Token]) -> bool:
    return token_ is not None and not token_.startswith("<")


def changes_between(
    transitions: Sequence[Transition],
    rows: Mapping[str, Mapping[CaseId, Row]],
    order: Sequence[str] = (),
) -> List[Change]:
    """Each transition as a change (and the changes across failing gaps, when ``order`` gives
    the releases in order); ``rows`` maps a release to its snapshot's rows."""
    out = []
    extra = bridged(transitions, order) if order else []
    for t in sorted(
        [*transitions, *extra], key=lambda t: list(order).index(t.first_changed) if order else 0
    ):
        case = t.case
        assert isinstance(case, tuple)
        out.append(describe(t, rows[t.previous][case], rows[t.first_changed][case]))
    return out


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class ProbeChange:
    """The changes of one probe at one release, summarised for a person."""

    probe: str
    device: str
    first_changed: str
    previous: str
    kind: str  # a Difference value, or "status"
    changed: int
    cases: int  # cases of the probe (on that device) in the release
    # parameter -> values of the changed cases, where they explain the change
    params: Dict[str, List[str]]
    max_ulp: Optional[float]


def summarise(
    changes: Sequence[Change],
    catalogue: Mapping[Tuple[str, str], Sequence[Dict[str, Any]]],
    order: Sequence[str],
) -> List[ProbeChange]:
    """Changes grouped by probe, device, release and kind, in release order.

    ``catalogue`` maps (probe, device) to the parameters of all its cases, so a summary
    can say which parameter values the changed cases have that the others do not.
    """
    groups: Dict[Tuple[str, str, str, str, str], List[Change]] = defaultdict(list)
    for c in changes:
        kind = c.difference.value if c.difference else "status"
        groups[(c.probe, c.device, c.first_changed, c.previous, kind)].append(c)
    out = []
    for (probe, device, first, previous, kind), members in groups.items():
        every = catalogue.get((probe, device), [])
        ulps = [c.max_ulp for c in members if c.max_ulp is not None]
        out.append(
            ProbeChange(
                probe,
                device,
                first,
                previous,
                kind,
                len(members),
                len(every),
                distinguishing_values([c.case for c in members], every),
                max(ulps) if ulps else None,
            )
        )
    rank = {v: i for i, v in enumerate(order)}
    severity = [d.value for d in Difference] + ["status"]
    out.sort(
        key=lambda p: (
            rank.get(p.first_changed, len(rank)),
            severity.index(p.kind),
            p.probe,
            p.device,
        )
    )
    return out


def catalogue_of(snap: Snapshot) -> Dict[Tuple[str, str], List[Dict[str, Any]]]:
    """(probe, device) -> parameters of every case in a snapshot."""
    out: Dict[Tuple[str, str], List[Dict[str, Any]]] = defaultdict(list)
    for row in snap.rows.values():
        out[(row.probe, row.device)].append(json.loads(row.params))
    return out


def params_key(case: Mapping[str, Any]) -> str:
    """Parameters in the one canonical spelling (:func:`audit.registry.canonical_json`), to match a
    case across runs and changes."""
    return canonical_json(case)


def params_key_json(text: Optional[str]) -> str:
    return params_key(json.loads(text or "{}"))
