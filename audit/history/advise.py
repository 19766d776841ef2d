"""``advise``: which streams change between two releases, answered from the committed history.

Nothing is built or run: the runs of ``results/history/<library>/`` between the two
releases are compared step by step (consecutive releases), which names the release of each
change, and the two ends are compared directly, which says what a user upgrading in one
jump sees (a change that is undone later is listed, and marked as not in the net result).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Hashable, List, Sequence, Set, Tuple

from audit.errors import UsageError
from audit.history import archive, changes, manifest, search
from audit.history import releases as rel
from audit.history.changes import CaseId, Change, ProbeChange, Snapshot


@dataclass
class Advice:
    """The answer, plain data for the text, markdown and JSON renderers."""

    library: str
    asked: Tuple[str, str]
    used: Tuple[str, str]
    releases: List[str]  # history releases from used[0] to used[1]
    changes: List[Change]  # every change, by release (stream changes and status changes)
    # (probe_key, params, device) differing end to end
    net: Set[Tuple[str, str, str]] = field(default_factory=set)
    summary: List[ProbeChange] = field(default_factory=list)
    compared: int = 0  # cases ok in both end runs
    unchanged_probes: List[str] = field(default_factory=list)
    unchanged_cases: int = 0
    notes: List[str] = field(default_factory=list)
    partial: bool = False  # an end was outside the history
    history: str = archive.HISTORY  # where the history was read, as shown

    def differs(self, change: Change) -> bool:
        """Whether the case's result differs between the two ends (not changed and undone)."""
        return (change.probe_key, changes.params_key(change.case), change.device) in self.net

    @property
    def stream_changes(self) -> List[Change]:
        return [c for c in self.changes if c.stream]


def advise(library: str, low: str, high: str, root: str = archive.HISTORY) -> Advice:
    """Map the two versions onto the history and compare the runs between them.

    The library's files must match the history's manifest (a UsageError names the first that
    is missing, added or altered)."""
    rel.check_library(library)
    for v in (low, high):
        rel.check_release(library, v)
    if low != rel.LATEST and high != rel.LATEST and rel.key(low) >= rel.key(high):
        raise UsageError(f"{library} {low} -> {high}: FROM must be an older release than TO")
    manifest.check(root, library)
    history = archive.entries(library, root)
    covered = archive.versions(history)
    mapped = [
        archive.map_version(library, covered[-1] if v == rel.LATEST and covered else v, covered)
        for v in (low, high)
    ]
    if all(m.outside for m in mapped) or mapped[0].used == mapped[1].used:
        raise UsageError(_uncovered(library, low, high, covered))
    advice = Advice(
        library,
        (low, high),
        (mapped[0].used, mapped[1].used),
        [v for v in covered if rel.key(mapped[0].used) <= rel.key(v) <= rel.key(mapped[1].used)],
        [],
        notes=[m.note for m in mapped if m.note],
        partial=any(m.outside for m in mapped),
    )
    _compare(advice, history)
    return advice


def _uncovered(library: str, low: str, high: str, covered: Sequence[str]) -> str:
    span = f"{covered[0]} to {covered[-1]}" if covered else "nothing"
    return (
        f"the history of {library} ({span}) does not cover {low} -> {high}; "
        f"for an exact answer run 'python -m audit bisect {library} {low} {high}' "
        f"or 'nox -s upgrade -- {library} {low} {high}'"
    )


def _compare(advice: Advice, history: Sequence[archive.Entry]) -> None:
    """Fill the changes (step by step) and the net difference (end to end)."""
    low, high = advice.used
    snaps: Dict[str, Snapshot] = {}
    transitions: List[search.Transition] = []
    rows: Dict[str, Dict[CaseId, changes.Row]] = {}

    def load(entry: archive.Entry) -> Snapshot:
        if entry.path not in snaps:
            snaps[entry.path] = changes.snapshot(entry.path, advice.library)
        return snaps[entry.path]

    for before, after in archive.steps(history, low, high):
        a, b = load(before), load(after)
        also = changes.confounders(a, b, advice.library)
        if also:
            advice.notes.append(
                f"between {a.version} and {b.version} also changed: {'; '.join(also)} "
                "(a change at that step may be theirs)"
            )
        found = search.scan(
            [a.version, b.version], {a.version: changes.tokens(a), b.version: changes.tokens(b)}
        )
        advice.changes += changes.changes_between(found, {a.version: a.rows, b.version: b.rows})
        transitions += found
        rows.setdefault(a.version, a.rows)
        rows[b.version] = b.rows
    advice.changes += changes.changes_between(changes.bridged(transitions, advice.releases), rows)
    rank = {v: i for i, v in enumerate(advice.releases)}
    advice.changes.sort(key=lambda c: rank[c.first_changed])
    first, last = (load(e) for e in archive.endpoint_runs(history, low, high))
    if first.python != last.python:
        advice.notes.append(
            f"the ends share no Python ({low} on {first.python}, {high} on {last.python}): "
            "the end-to-end count may include the Python's own changes"
        )
    _net(advice, first, last)


def _net(advice: Advice, first: Snapshot, last: Snapshot) -> None:
    """End to end: the cases that differ, the unchanged probes, and the summary lines."""
    a, b = changes.tokens(first), changes.tokens(last)
    both_ok = [c for c in set(a) & set(b) if not a[c].startswith("<") and not b[c].startswith("<")]
    differing = search.changed(a, b, set(both_ok))
    advice.compared = len(both_ok)
    advice.net = {
        (r.probe_key, changes.params_key_json(r.params), r.device)
        for c in differing
        for r in [last.rows[_case(c)]]
    }
    moved = {c.probe for c in advice.stream_changes}
    steady = [c for c in both_ok if last.rows[_case(c)].probe not in moved]
    advice.unchanged_probes = sorted({last.rows[_case(c)].probe for c in steady})
    advice.unchanged_cases = len(steady)
    advice.summary = changes.summarise(advice.changes, changes.catalogue_of(last), advice.releases)


def _case(case: Hashable) -> CaseId:
    assert isinstance(case, tuple)
    return case  # type: ignore[return-value]
