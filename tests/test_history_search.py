"""The bisect search on a fake auditor: it finds every first change, with few audits."""

from __future__ import annotations

from typing import Dict, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.history import search

VERSIONS = [f"2.{m}.0" for m in range(16)]


def history(changes: Dict[str, List[int]], n: int = len(VERSIONS)) -> Dict[str, Dict[str, str]]:
    """case -> the release indices where its token changes (to a new token each time)."""
    out: Dict[str, Dict[str, str]] = {v: {} for v in VERSIONS[:n]}
    for case, points in changes.items():
        token = 0
        for i, version in enumerate(VERSIONS[:n]):
            token += i in points
            out[version][case] = f"{case}:{token}"
    return out


class Fake:
    def __init__(self, table: Dict[str, Dict[str, str]], broken: tuple = ()) -> None:
        self.table, self.broken, self.calls = table, set(broken), []  # type: ignore[var-annotated]

    def __call__(self, version: str) -> Optional[Dict[str, str]]:
        self.calls.append(version)
        return None if version in self.broken else self.table[version]


def found(result: search.Search) -> List[tuple]:
    return [(t.case, t.previous, t.first_changed) for t in result.transitions]


def test_a_change_confined_to_one_case_is_found_with_log_audits() -> None:
    table = history({"lonely": [5], **{f"steady{i}": [] for i in range(50)}})
    fake = Fake(table)
    result = search.bisect(VERSIONS, fake)
    assert found(result) == [("lonely", "2.4.0", "2.5.0")]
    assert len(fake.calls) == len(set(fake.calls)) <= 2 + 4  # the ends, then log2(15) middles


def test_a_to_b_to_c_gives_one_entry_per_change() -> None:
    result = search.bisect(VERSIONS, Fake(history({"abc": [3, 11]})))
    assert found(result) == [("abc", "2.2.0", "2.3.0"), ("abc", "2.10.0", "2.11.0")]
    assert result.transitions[0].before == "abc:0" and result.transitions[1].after == "abc:2"


def test_cases_that_change_together_share_their_audits() -> None:
    together = {f"group{i}": [9] for i in range(40)}
    fake = Fake(history({**together, "other": [2]}))
    result = search.bisect(VERSIONS, fake)
    assert {(t.previous, t.first_changed) for t in result.transitions if t.case != "other"} == {("2.8.0", "2.9.0")}
    assert len(result.transitions) == 41
    assert len(fake.calls) <= 2 + 2 * 4  # two change points, each about log2(16) audits
    assert len(fake.calls) < len(VERSIONS) - 5


def test_a_change_undone_within_the_range_is_not_searched() -> None:
    """The documented limitation: equal ends, no search (the history shows such round trips)."""
    table = history({"back": [4]})
    for version in VERSIONS[8:]:
        table[version]["back"] = "back:0"
    fake = Fake(table)
    assert found(search.bisect(VERSIONS, fake)) == []
    assert len(fake.calls) == 2


def test_a_release_that_does_not_install_is_stepped_over() -> None:
    fake = Fake(history({"x": [8]}), broken={"2.7.0", "2.8.0"})
    result = search.bisect(VERSIONS, fake)
    assert found(result) == [("x", "2.6.0", "2.9.0")]  # the nearest auditable releases
    assert "2.8.0" not in result.audited and "2.7.0" not in result.audited


def test_the_ends_must_be_auditable() -> None:
    with pytest.raises(ValueError):
        search.bisect(VERSIONS, Fake(history({"x": [3]}), broken={VERSIONS[0]}))
    with pytest.raises(ValueError):
        search.bisect(VERSIONS[:1], Fake(history({})))


def test_a_case_missing_on_one_side_is_not_a_change() -> None:
    assert search.changed({"a": "1"}, {"b": "2"}) == set()
    assert search.changed({"a": "1", "b": "2"}, {"a": "1", "b": "3"}) == {"b"}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([f"c{i}" for i in range(12)]),
                       st.sets(st.integers(1, len(VERSIONS) - 1), max_size=3), max_size=12))
def test_bisect_finds_what_a_full_scan_finds(changes: Dict[str, set]) -> None:
    """Without round trips (every change is to a new token) the search misses nothing."""
    table = history({case: sorted(points) for case, points in changes.items()})
    fake = Fake(table)
    result = search.bisect(VERSIONS, fake)
    full = search.scan(VERSIONS, table)
    assert sorted(found(result)) == sorted((t.case, t.previous, t.first_changed) for t in full)
    points = {p for ps in changes.values() for p in ps}
    assert len(set(fake.calls)) <= 2 + 4 * max(len(points), 0) + 1


def test_free_anchor_releases_narrow_the_search() -> None:
    """Runs that already exist (the committed history) are audited first; few builds remain."""
    table = history({"x": [5], "y": [12]})
    anchors = VERSIONS[::3]  # every third release has a run already
    fake = Fake(table)
    result = search.bisect(VERSIONS, fake, anchors=anchors)
    assert found(result) == [("x", "2.4.0", "2.5.0"), ("y", "2.11.0", "2.12.0")]
    built = [v for v in fake.calls if v not in anchors]
    assert len(built) <= 2 * 2  # each change lies between anchors three releases apart
