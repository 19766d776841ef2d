"""Interrupted runs, with real processes: ``python -m audit run`` killed mid-run.

SIGINT and SIGTERM must end the worker, keep the sidecar and say how to ``--resume``;
SIGKILL gives no chance to say anything, but must still take the worker along and leave
the sidecar.  In every case no file under a final name is corrupt, and ``--resume``
continues the run instead of redoing the finished cases.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from audit.runner.sidecar import Sidecar
from audit.runner.supervisor import SOURCE_ROOT
from audit.store.scan import read_runs
from tests.signals import sigint_as_in_a_terminal

CASES = 20  # tests.slow.sleep has twenty cases
KILL_AFTER = 5  # records in the sidecar before the kill


def _command(results: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "audit", "run", "--results", str(results), "--probes-from", "tests.crash_probes",
            "--probe", "tests.slow.sleep", "--no-repeat", "-q", *extra]


def _env(log: Path, case_s: float = 0.1) -> Dict[str, str]:
    return {**os.environ, "AUDIT_TEST_LOG": str(log), "AUDIT_TEST_SLOW_CASE_S": str(case_s)}


def _sidecar_records(results: Path) -> int:
    partial = results / ".partial"
    if not partial.is_dir():
        return 0
    return sum(p.read_text().count('"type": "record"') for p in partial.glob("*.jsonl"))


def _wait_for(predicate, what: str, limit: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    """Poll; the generous limit only stops a broken test from hanging forever."""
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
    except FileNotFoundError:
        return False
    return "Z" not in state.split()[1]


def _executions(log: Path) -> List[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []


def _final_files_are_whole(results: Path) -> List[str]:
    """Every non-hidden parquet file under results reads back; return their names."""
    frame, skipped = read_runs([str(results)])
    assert skipped == [], skipped
    return sorted(p.name for p in results.glob("*.parquet"))


def _start(results: Path, log: Path, case_s: float = 0.1) -> subprocess.Popen[str]:
    # its own session: a signal to the group reaches the host as a terminal's Ctrl-C would
    return subprocess.Popen(_command(results), cwd=SOURCE_ROOT, env=_env(log, case_s), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_killed_run_keeps_its_sidecar_and_resume_finishes_it(tmp_path: Path, signum: int, code: int) -> None:
    results, log = tmp_path / "results", tmp_path / "executions.log"
    host = _start(results, log)
    _wait_for(lambda: _sidecar_records(results) >= KILL_AFTER, "records in the sidecar")
    os.killpg(host.pid, signum)
    out, err = host.communicate(timeout=60)

    assert host.returncode == code, err
    assert "Traceback" not in err
    if signum != signal.SIGKILL:
        assert "--resume" in err and signal.Signals(signum).name in err
        assert err.count("\n") == 1, err  # one line
    workers = {int(line.split()[0]) for line in _executions(log)}
    _wait_for(lambda: not any(_alive(pid) for pid in workers), "the worker to end with its host", limit=30)
    assert _final_files_are_whole(results) == []  # nothing under a final name yet
    done = _sidecar_records(results)
    assert KILL_AFTER <= done < CASES
    ran_before = len(_executions(log))

    resumed = subprocess.run(_command(results, "--resume"), cwd=SOURCE_ROOT, env=_env(log), text=True,
                             capture_output=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    (name,) = _final_files_are_whole(results)
    frame, _ = read_runs([str(results)])
    assert len(frame) == frame["case_key"].nunique() == CASES
    assert set(frame["status"]) == {"ok"}
    # the finished cases were not run again: at most the one cut short is run twice
    assert len(_executions(log)) - ran_before == CASES - done
    assert not (results / ".partial").exists() or list((results / ".partial").glob("*.jsonl")) == []


def test_a_torn_last_line_is_cut_before_the_resumed_run_appends(tmp_path: Path) -> None:
    """A host killed mid-write leaves half a line; the next record must not glue onto it."""
    sidecar = Sidecar(str(tmp_path / "run.jsonl"))
    sidecar.append({"type": "run", "run_id": "r", "started": "s", "spec": "x"})
    sidecar.append({"type": "record", "case_key": "a", "status": "ok"})
    sidecar.close()
    with open(sidecar.path, "a") as f:
        f.write('{"type": "record", "case_key": "tor')
    sidecar.repair()
    sidecar.append({"type": "record", "case_key": "b", "status": "ok"})
    sidecar.close()
    _, _, records = sidecar.read()
    assert [r["case_key"] for r in records] == ["a", "b"]


def test_a_worker_stuck_in_a_case_dies_with_its_killed_host(tmp_path: Path) -> None:
    """SIGKILL leaves the host no time to clean up: the worker must not hang on, orphaned."""
    pid_file = tmp_path / "orphan.pid"
    host = subprocess.Popen(
        [sys.executable, "-m", "audit", "run", "--results", str(tmp_path / "results"), "--probes-from",
         "tests.crash_probes", "--probe", "tests.crash.orphan", "--no-repeat", "-q"],
        cwd=SOURCE_ROOT, env={**os.environ, "AUDIT_TEST_PID_FILE": str(pid_file)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", "the probe to start")
    child = int(pid_file.read_text())
    with open(f"/proc/{child}/stat") as f:
        worker = int(f.read().rsplit(")", 1)[1].split()[1])  # the probe's child's parent
    try:
        os.kill(host.pid, signal.SIGKILL)
        host.wait(timeout=60)
        _wait_for(lambda: not _alive(worker), "the worker to die with its host", limit=30)
    finally:
        for pid in (worker, child):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_corrupt_final_file(tmp_path: Path) -> None:
    """Kill a short run at random points, the final write included; resume each time."""
    rng = random.Random(20240601)
    results, log = tmp_path / "results", tmp_path / "executions.log"
    for _ in range(8):
        host = _start(results, log, case_s=0.01)
        time.sleep(rng.uniform(0.5, 4.0))
        os.killpg(host.pid, signal.SIGKILL)
        host.communicate(timeout=60)
        _final_files_are_whole(results)
        subprocess.run(_command(results, "--resume"), cwd=SOURCE_ROOT, env=_env(log, 0.01),
                       capture_output=True, timeout=120, check=True)
        _final_files_are_whole(results)
