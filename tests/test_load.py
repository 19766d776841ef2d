"""The load axis (audit/runner/load.py) and the disagreement rates of a sweep (audit/runner/rates.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import List

import pytest

from audit.runner import load
from audit.runner.rates import Rate, rates, summary
from tests.signals import process_state, sigint_as_in_a_terminal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spinners(host: int) -> List[int]:
    """Pids of live busy-load processes started by ``host``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if load.MARK.encode() in argv and str(host).encode() in argv and process_state(int(pid)) not in (None, "Z"):
            found.append(int(pid))
    return found


linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux
def test_busy_starts_one_spinner_per_core_and_ends_them() -> None:
    with load.busy(2) as busy:
        seen: set = set()
        for _ in range(100):  # a loaded machine may not list a just-started spinner at once
            seen = set(spinners(os.getpid()))
            if set(busy.pids) <= seen:
                break
            time.sleep(0.05)
        assert len(busy.pids) == 2 and set(busy.pids) <= seen
        assert busy.check() is None
        os.kill(busy.pids[0], signal.SIGKILL)
        busy.processes[0].wait()
        assert "1 of 2 busy processes ended" in (busy.check() or "")
    assert spinners(os.getpid()) == []


@linux
def test_busy_ends_its_spinners_when_the_block_raises() -> None:
    with pytest.raises(KeyboardInterrupt):
        with load.busy(1):
            raise KeyboardInterrupt
    assert spinners(os.getpid()) == []


def _sweep(*extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT, "AUDIT_TEST_SLEEP": "30"}
    return subprocess.Popen([sys.executable, "-m", "audit", "sweep", "--axis", "load=busy", "--probes-from",
                             "tests.load_probes", "--probe", "tests.load.sleeps", "-q", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=sigint_as_in_a_terminal)


@linux
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_no_spinner_outlives_an_interrupted_or_killed_sweep(tmp_path: str, how: int) -> None:
    host = _sweep("--results", str(tmp_path))
    try:
        deadline = time.monotonic() + 30
        while not spinners(host.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spinners(host.pid), "the sweep never started its busy load"
        while not os.listdir(tmp_path) and time.monotonic() < deadline:  # the run's sidecar: a worker runs
            time.sleep(0.1)
        time.sleep(0.5)
        assert spinners(host.pid) and host.poll() is None
        os.kill(host.pid, how)
        host.wait(timeout=30)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    deadline = time.monotonic() + 5
    while spinners(host.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spinners(host.pid) == []


def test_the_load_axis_is_known_to_sweep_and_sets_nothing_in_the_worker() -> None:
    from audit.runner import sweep
    from audit.runner.spec import RunSpec

    axis = sweep.parse_axis("load=idle,busy")
    assert axis.values == ("idle", "busy")
    base = RunSpec()
    assert sweep.spec_for(base, {"load": "busy"}) == base
    with pytest.raises(Exception, match="not a valid value"):
        sweep.parse_axis("load=heavy")


def test_rates_count_executions_within_and_runs_between() -> None:
    def rec(fp: str, executions: int = 10, disagreements: int = 0) -> dict:
        return {"status": "ok", "probe_key": "p", "params": "{}", "fingerprint": fp,
                "executions": executions, "disagreements": disagreements}

    calm = rates([("busy", [rec("a")]), ("busy", [rec("a")])])
    assert calm == [Rate("busy", "p", "{}", 20, 0, 2, 0)]
    assert summary(calm)[0].startswith("no execution disagreed")
    noisy = rates([("busy", [rec("a", disagreements=3)]), ("busy", [rec("b")]), ("busy", [rec("a")]),
                   ("idle", [rec("a")])])
    by_label = {r.label: r for r in noisy}
    assert by_label["busy"].sentence() == ("3 of 30 executions disagreed with their process's first; "
                                           "1 of 3 runs gave another result than the most common one")
    assert not by_label["idle"].disagreed
    assert "1 case-setting(s) disagreed" in summary(noisy)[0]
    old = rates([("x", [{"status": "ok", "probe_key": "p", "params": "{}", "fingerprint": "a",
                         "repeat_identical": False}])])
    assert old[0].executions == 2 and old[0].disagreements == 1


def test_a_sweep_reports_the_rate_of_a_case_that_disagrees_with_itself(tmp_path: str) -> None:
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-m", "audit", "sweep", "--axis", "PYTHONHASHSEED=0", "--probes-from",
                          "tests.load_probes", "--probe", "tests.load.flaky", "--executions", "10", "--repeat", "2",
                          "-q", "--results", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    # every other execution differs from the first: 5 of each run's 10, in both runs; the runs agree
    assert "10 of 20 executions disagreed with their process's first; 0 of 2 runs" in out.stdout, out.stdout
