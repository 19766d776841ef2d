"""Probes for tests/test_load.py: one that sleeps (to interrupt a sweep while it runs), one
that disagrees with itself on every other execution in a process."""

from __future__ import annotations

import os
import time
from typing import List

from audit.probe_api import probe

_calls = {"flaky": 0}


@probe("tests.load.sleeps", grid={"seconds": [float(os.environ.get("AUDIT_TEST_SLEEP", "0.01"))]}, kind="op")
def sleeps(seconds: float) -> List[int]:
    time.sleep(seconds)
    return [1]


@probe("tests.load.flaky", grid={"n": [3]}, kind="op")
def flaky(n: int) -> List[int]:
    """Every other execution in one process gives another result."""
    _calls["flaky"] += 1
    return [n, _calls["flaky"] % 2]
