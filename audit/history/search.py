"""The bisect search: the releases where each case's outcome changed, auditing few of them.

Pure: it gets the ordered releases and an ``audit`` function (release -> case -> outcome
token: a fingerprint, or a status such as ``<unsupported>``) and returns every change it
found with the releases it audited.  One audit covers every case, so the cost is the
number of distinct releases audited.

How: audit the two ends.  The cases whose token differs there are searched together:
audit the middle release and split them into those that changed in the lower half and
those that changed in the upper half (a case can be in both: A -> B -> C), and recurse
into each half with only its cases.  Cases that changed at the same release follow the
same path, so each distinct change point costs about log2(releases) audits, shared with
every other change point on the way.

Limitation: a case whose token is equal at both ends of an interval is not searched in
it, so a change that is undone inside the interval (A -> B -> A) is not found, and one
undone inside a half that is searched is missed the same way.  The committed history
(one run per minor release) shows such round trips at minor granularity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Set

Token = str
Outcomes = Mapping[Hashable, Token]
Auditor = Callable[[str], Optional[Outcomes]]


@dataclass(frozen=True)
class Transition:
    """One case changed its token between two consecutive audited-able releases."""

    case: Hashable
    previous: str  # the last release with the old token
    first_changed: str  # the first release with the new one
    before: Optional[Token]
    after: Optional[Token]


@dataclass
class Search:
    """What a bisect found and what it cost."""

    transitions: List[Transition] = field(default_factory=list)
    audited: List[str] = field(default_factory=list)  # releases audited, in the order audited
    outcomes: Dict[str, Outcomes] = field(default_factory=dict, repr=False)


def changed(a: Outcomes, b: Outcomes, cases: Optional[Set[Hashable]] = None) -> Set[Hashable]:
    """Cases (of ``cases``, default all) whose token differs between two audits.

    A case missing from one side (not in the catalogue there) is not a change.
    """
    candidates = cases if cases is not None else set(a) & set(b)
    return {c for c in candidates if c in a and c in b and a[c] != b[c]}


def bisect(versions: Sequence[str], audit: Auditor, anchors: Sequence[str] = ()) -> Search:
    """Every transition between the first and last of ``versions`` (ascending releases).

    ``audit`` returns None for a release that cannot be audited (it does not install):
    the search then audits a neighbour instead, and a change is reported between the
    nearest releases that could be audited.  The two ends must be auditable.
    ``anchors`` are releases whose audit costs nothing (runs already made, such as the
    committed history's): they are audited first and the search runs between them.
    """
    if len(versions) < 2:
        raise ValueError("bisect needs two releases at least")
    result = Search()
    failed: Set[int] = set()

    def outcome(i: int) -> Optional[Outcomes]:
        version = versions[i]
        if i in failed:
            return None
        if version not in result.outcomes:
            got = audit(version)
            if got is None:
                failed.add(i)
                return None
            result.outcomes[version] = got
            result.audited.append(version)
        return result.outcomes[version]

    def middle(lo: int, hi: int) -> Optional[int]:
        """The auditable release nearest the middle of (lo, hi), auditing candidates in turn."""
        centre = (lo + hi) / 2
        for i in sorted(range(lo + 1, hi), key=lambda j: (abs(j - centre), j)):
            if outcome(i) is not None:
                return i
        return None

    def search(lo: int, hi: int, cases: Set[Hashable]) -> None:
        if not cases:
            return
        a, b = _known(outcome(lo)), _known(outcome(hi))
        mid = middle(lo, hi) if hi - lo > 1 else None
        if mid is None:
            for case in sorted(cases, key=repr):
                result.transitions.append(
                    Transition(case, versions[lo], versions[hi], a.get(case), b.get(case))
                )
            return
        m = _known(outcome(mid))
        search(lo, mid, changed(a, m, cases))
        search(mid, hi, changed(m, b, cases))

    ends = [outcome(0), outcome(len(versions) - 1)]
    if ends[0] is None or ends[1] is None:
        raise ValueError("the first and last releases must be auditable")
    inside = {versions.index(v) for v in anchors if v in versions[1:-1]}
    points = [0, *sorted(i for i in inside if outcome(i) is not None), len(versions) - 1]
    for lo, hi in zip(points, points[1:]):
        search(lo, hi, changed(_known(outcome(lo)), _known(outcome(hi))))
    result.transitions.sort(key=lambda t: (_position(versions, t.first_changed), repr(t.case)))
    return result


def _known(outcomes: Optional[Outcomes]) -> Outcomes:
    assert outcomes is not None  # only audited releases reach here
    return outcomes


def _position(versions: Sequence[str], version: str) -> int:
    return list(versions).index(version)


def scan(versions: Sequence[str], outcomes: Mapping[str, Outcomes]) -> List[Transition]:
    """Every transition between consecutive entries of a full history (no search needed)."""
    out: List[Transition] = []
    for before, after in zip(versions, versions[1:]):
        a, b = outcomes[before], outcomes[after]
        for case in sorted(changed(a, b), key=repr):
            out.append(Transition(case, before, after, a[case], b[case]))
    return out
