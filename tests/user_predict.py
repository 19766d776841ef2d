"""A user's model module for tests/test_explore.py: batch invariance with a declared domain."""

from __future__ import annotations

from typing import List

from audit.probe_api import compared_with, integers, probe

ROWS = [[0.1 * (i + 1), 1e16, -1e16, 0.3] for i in range(12)]


def _row_sum(row: List[float], blocked: bool) -> float:
    return sum(sorted(row)) if blocked else sum(row)


@probe("myproject.predict", grid={"batch": [[12, 1]]}, kind="op", invariance="batch",
       search={"batch": compared_with(integers(1, 12))})
def predict(batch: int) -> List[float]:
    """A 'kernel' that sums each row in sorted order when its call holds 4 rows or more: the
    rows of a short batch (and of a short last batch) come out different."""
    out: List[float] = []
    for start in range(0, len(ROWS), batch):
        chunk = ROWS[start:start + batch]
        out += [_row_sum(row, len(chunk) >= 4) for row in chunk]
    return out
