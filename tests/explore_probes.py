"""Probes with known boundaries for tests/test_explore.py: pure Python, no library under test.

Each depends on the hash seed (``PYTHONHASHSEED`` axis) only where the test says it should.
"""

from __future__ import annotations

import os
from typing import Any, List

from audit.probe_api import compared_with, integers, probe


def _salt() -> int:
    return hash("explore-salt")


@probe("tests.explore.boundary", grid={"size": [10]}, kind="op", search={"size": integers(1, 5000)})
def boundary(size: int) -> List[int]:
    """Differs between hash seeds from size 101 on, at every size."""
    return list(range(size)) + ([_salt()] if size > 100 else [])


@probe("tests.explore.scattered", grid={"size": [10]}, kind="op", search={"size": integers(1, 5000)})
def scattered(size: int) -> List[int]:
    """Differs between hash seeds at every size that is 3 modulo 7, from size 3 on."""
    return list(range(size)) + ([_salt()] if size % 7 == 3 else [])


@probe("tests.explore.same", grid={"size": [10]}, kind="op", search={"size": integers(1, 5000)})
def same(size: int) -> List[int]:
    """Never differs."""
    return list(range(size))


@probe("tests.explore.undeclared", grid={"size": [10]}, kind="op")
def undeclared(size: int) -> List[int]:
    """Declares no search domain."""
    return list(range(size))


@probe("tests.explore.crashes", grid={"size": [10]}, kind="op", search={"size": integers(1, 300)})
def crashes(size: int) -> List[int]:
    """Kills its worker at every size ending in 5; differs from 200 on."""
    if size % 10 == 5:
        os._exit(9)
    return list(range(size)) + ([_salt()] if size >= 200 else [])


@probe("tests.explore.batch", grid={"rows": [16], "batch": [[16, 1, 4]]}, kind="op", invariance="batch",
       search={"batch": compared_with(integers(1, 16))})
def batch(rows: int, batch: int) -> Any:
    """Batches below 8 give another result than the full batch of 16."""
    return [min(batch, 8)] * rows
