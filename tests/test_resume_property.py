"""Random interrupt / resume / environment-change sequences against the run's invariant.

Whatever happens in between, once a run completes: its file holds one environment (the
one it started in), every case exactly once, and compare of a clean run against it finds
the streams identical.  Real processes and real signals; hypothesis picks when to
interrupt and in which environment each resume is attempted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.runner.supervisor import SOURCE_ROOT
from tests.signals import sigint_as_in_a_terminal

CASES = 20  # tests.slow.sleep


def _command(results: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "audit", "run", "--results", str(results), "--probes-from", "tests.crash_probes",
            "--probe", "tests.slow.sleep", "--no-repeat", "-q", *extra]


def _env(hashseed: str) -> Dict[str, str]:
    return {**os.environ, "AUDIT_TEST_SLOW_CASE_S": "0.03", "PYTHONHASHSEED": hashseed}


def _records(results: Path) -> int:
    folder = results / ".partial"
    return sum(p.read_text().count('"type": "record"') for p in folder.glob("*.jsonl")) if folder.is_dir() else 0


def _attempt(results: Path, hashseed: str, resume: bool, stop_after: int) -> int:
    """One invocation, SIGINT once ``stop_after`` more records are in (0: let it finish)."""
    proc = subprocess.Popen(_command(results, *(["--resume"] if resume else [])), cwd=SOURCE_ROOT,
                            env=_env(hashseed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_in_a_terminal)
    if stop_after:
        target, end = _records(results) + stop_after, time.monotonic() + 120
        while proc.poll() is None and _records(results) < target and time.monotonic() < end:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("clean")
    assert _attempt(results, "0", False, 0) == 0
    return results


Step = Tuple[str, int]  # (PYTHONHASHSEED of the attempt, records before its SIGINT; 0 = to the end)

STEPS = st.lists(st.tuples(st.sampled_from(["0", "1"]), st.integers(0, 6)), min_size=1, max_size=3)


def _check(tmp_path: Path, clean_run: Path, first_stop: int, steps: List[Step]) -> None:
    results = tmp_path / f"r{time.monotonic_ns()}"
    assert _attempt(results, "0", False, first_stop or 3) in (0, 130)
    for hashseed, stop in [*steps, ("0", 0)]:  # the last attempt resumes in the right environment
        if not list(results.glob("*.parquet")):
            code = _attempt(results, hashseed, True, stop)
            assert code in (0, 2, 130), code
            assert code != 0 or hashseed == "0"  # a resume in another environment never completes
    (written,) = results.glob("*.parquet")
    table = pq.read_table(written).to_pydict()
    assert set(table["PYTHONHASHSEED"]) == {"0"}  # one environment: the one it started in
    assert sorted(table["case_key"]) == sorted(set(table["case_key"])) and len(table["case_key"]) == CASES
    compared = subprocess.run([sys.executable, "-m", "audit", "compare", str(clean_run), str(written), "--json"],
                              cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=300)
    doc = json.loads(compared.stdout)
    assert compared.returncode == 0 and doc["counts"]["identical"] == CASES, compared.stderr


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_stop=st.integers(1, 8), steps=STEPS)
def test_a_resumed_run_holds_one_environment_and_every_case_once(tmp_path: Path, clean_run: Path, first_stop: int,
                                                                  steps: List[Step]) -> None:
    _check(tmp_path, clean_run, first_stop, steps)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_stop=st.integers(1, 12), steps=st.lists(st.tuples(st.sampled_from(["0", "1"]), st.integers(0, 8)),
                                                     max_size=6))
def test_many_resumed_runs_hold_one_environment_and_every_case_once(tmp_path: Path, clean_run: Path,
                                                                    first_stop: int, steps: List[Step]) -> None:
    _check(tmp_path, clean_run, first_stop, steps)
