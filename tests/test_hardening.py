"""Crash and hang isolation: probes that really kill their worker or never return.

One run of the test-only catalogue in :mod:`tests.crash_probes` (module-scoped, ~20 s):
every dying case must become a ``crash`` record naming the signal or exit code and the
case's own last output, every hang a ``timeout``, and each following case must still run
in a fresh worker.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Iterator

import pytest

from audit import registry
from audit.errors import UsageError
from audit.runner.spec import RunSpec
from audit.runner.supervisor import Runner
from audit.store.scan import read_runs

CASE_TIMEOUT = 2.0


def _isolated_registry() -> Any:
    """Snapshot the registry and forget the test module, so the Runner registers it afresh."""
    saved = registry.snapshot()
    sys.modules.pop("tests.crash_probes", None)
    return saved


def _restore(saved: Any) -> None:
    registry.restore(saved)
    sys.modules.pop("tests.crash_probes", None)


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    results = tmp_path_factory.mktemp("crash-results")
    pid_file = results.parent / "orphan.pid"
    os.environ["AUDIT_TEST_PID_FILE"] = str(pid_file)
    saved = _isolated_registry()
    try:
        spec = RunSpec(probes=["tests.crash.*"], modules=["tests.crash_probes"], repeat=False,
                       case_timeout=CASE_TIMEOUT)
        outcome = Runner(spec, str(results)).execute()
    finally:
        _restore(saved)
        os.environ.pop("AUDIT_TEST_PID_FILE", None)
    by_probe: Dict[str, Any] = {}
    for record in outcome.run.records:
        by_probe.setdefault(record["probe"], []).append(record)
    yield {"outcome": outcome, "by_probe": by_probe, "results": results, "pid_file": pid_file}


def _one(crash_run: Dict[str, Any], probe: str) -> Dict[str, Any]:
    (record,) = crash_run["by_probe"][probe]
    return record


@pytest.mark.parametrize("probe, death", [
    ("tests.crash.segfault", "killed by SIGSEGV"),
    ("tests.crash.abort", "killed by SIGABRT"),
    ("tests.crash.sigkill", "killed by SIGKILL"),
    ("tests.crash.exit", "exited with code 3"),
])
def test_a_dying_case_is_a_crash_record_with_signal_and_last_output(crash_run: Dict[str, Any], probe: str,
                                                                     death: str) -> None:
    record = _one(crash_run, probe)
    assert record["status"] == "crash"
    assert death in record["message"]
    assert f"last words of {probe.rsplit('.', 1)[1]}" in record["message"]


@pytest.mark.parametrize("probe", ["tests.crash.orphan", "tests.crash.spin"])
def test_a_case_past_its_time_limit_is_a_timeout_record(crash_run: Dict[str, Any], probe: str) -> None:
    record = _one(crash_run, probe)
    assert record["status"] == "timeout"
    assert f"{CASE_TIMEOUT:g} s case limit" in record["message"]


def test_last_output_quotes_only_the_failing_case(crash_run: Dict[str, Any]) -> None:
    """The hang follows cases that printed too; their words must not be blamed on it."""
    message = _one(crash_run, "tests.crash.orphan")["message"]
    assert "last words of orphan" in message
    assert "last words of oom" not in message and "last words of exit" not in message


def test_out_of_memory_is_recorded_and_does_not_poison_the_next_case(crash_run: Dict[str, Any]) -> None:
    """The OOM probe leaves its address-space cap behind; the next case needs a fresh worker."""
    oom = _one(crash_run, "tests.crash.oom")
    assert oom["status"] in ("error", "crash")
    assert "MemoryError" in oom["message"] or "killed" in oom["message"]
    after = _one(crash_run, "tests.crash.after_oom")
    assert after["status"] == "ok", after["message"]


def test_the_run_continues_after_every_failure_and_writes_one_file(crash_run: Dict[str, Any]) -> None:
    outcome = crash_run["outcome"]
    assert [r["status"] for r in crash_run["by_probe"]["tests.crash.ok"]] == ["ok", "ok"]
    assert len(outcome.run.records) == len({r["case_key"] for r in outcome.run.records}) == 10
    frame, skipped = read_runs([str(crash_run["results"])])
    assert skipped == []
    assert sorted(frame["status"].value_counts().items()) == sorted(outcome.counts.items())
    assert not (crash_run["results"] / ".partial").exists()  # the sidecar is gone, and its empty folder


def test_a_timed_out_case_takes_the_processes_it_started_with_it(crash_run: Dict[str, Any]) -> None:
    pid = int(crash_run["pid_file"].read_text())
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
    except FileNotFoundError:
        return  # gone entirely
    assert "Z" in state.split()[1], f"the probe's child {pid} is still running: {state}"


def test_an_unknown_probe_module_is_a_usage_error(tmp_path: Any) -> None:
    with pytest.raises(UsageError, match="cannot import probe module"):
        Runner(RunSpec(modules=["tests.no_such_module"]), str(tmp_path))
