"""Bad input: one clear line and exit code 2, never a traceback, and no work lost.

CLI paths are tested through real subprocesses (what a person sees); the final-write and
resume paths in-process, with the test-only probes of :mod:`tests.crash_probes`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from audit import registry
from audit.errors import StoreError
from audit.runner.sidecar import Sidecar, partial_dir
from audit.runner.spec import RunSpec
from audit.runner.supervisor import SOURCE_ROOT, Runner
from audit.store import runfile as store
from audit.store.scan import read_runs


def _run_cli(*args: str, env: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit", "run", *args], cwd=SOURCE_ROOT, text=True,
                          capture_output=True, timeout=120, env=env)


BAD_ARGUMENTS = {
    "unknown probe glob": (["--probe", "nosuch.*"], "no probe matches 'nosuch.*'"),
    "malformed seed": (["--seed", "abc"], "seed must be an integer, not 'abc'"),
    "float seed": (["--seed", "1.5"], "seed must be an integer"),
    "seed above every range": (["--seed", str(2**64)], "outside every library's range"),
    "seed below every range": (["--seed", str(-(2**63) - 1)], "outside every library's range"),
    "infinite case timeout": (["--case-timeout", "inf"], "positive number of seconds"),
    "negative case timeout": (["--case-timeout", "-1"], "positive number of seconds"),
    "nan case timeout": (["--case-timeout", "nan"], "positive number of seconds"),
    "missing interpreter": (["--python", "/nonexistent/python"], "not an executable interpreter"),
    "unknown URL scheme": (["--results", "nosuchscheme://bucket/x"], "cannot open results location"),
    "unknown probe module": (["--probes-from", "tests.no_such_module"], "is not importable by"),
}


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    args, message = BAD_ARGUMENTS[name]
    full = ["--results", str(tmp_path / "results"), "-q", *args] if "--results" not in args else ["-q", *args]
    done = _run_cli(*full)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()[-1]) > 0 and done.stdout == ""


def test_an_unwritable_results_directory_is_refused_before_any_case_runs(tmp_path: Path) -> None:
    """Root ignores permission bits, so 'unwritable' is a path under a regular file."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = tmp_path / "executions.log"
    env = {**os.environ, "AUDIT_TEST_LOG": str(log)}
    done = _run_cli("--results", str(blocker / "results"), "--probes-from", "tests.crash_probes",
                    "--probe", "tests.slow.sleep", "-q", env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: cannot write to results directory") and done.stderr.count("\n") == 1
    assert not log.exists()  # not a single case ran


def test_environment_strings_are_stored_as_data(tmp_path: Path) -> None:
    """A setting's value is recorded verbatim; nothing evaluates it."""
    hostile = "'); import os; os.system('touch PWNED') #\n{\"__class__\": 1} ${HOME} `id`"
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": hostile}
    done = _run_cli("--results", str(tmp_path), "--probe", "random.random", "--seed", "0", "--no-repeat", "-q",
                    env=env)
    assert done.returncode == 0, done.stderr
    frame, _ = read_runs([str(tmp_path)])
    assert set(frame["CUBLAS_WORKSPACE_CONFIG"]) == {hostile}
    assert not (Path(SOURCE_ROOT) / "PWNED").exists() and not (tmp_path / "PWNED").exists()


#: The state round-trip probes test the user's own recipe, pickling generators they made
#: themselves: a live object through ``pickle.loads(pickle.dumps(x))``, never stored data.
PICKLE_ROUND_TRIP = "audit/probes/roundtrip.py"


def test_nothing_in_the_package_evaluates_or_unpickles() -> None:
    pattern = re.compile(r"\b(eval|exec)\(|\bpickle\b|\bmarshal\b|yaml\.load\(|shell=True")
    offenders: List[str] = []
    round_trip = Path(SOURCE_ROOT, PICKLE_ROUND_TRIP).read_text()
    assert round_trip.count("pickle.loads(") == round_trip.count("pickle.loads(pickle.dumps(") == 1
    for path in Path(SOURCE_ROOT, "audit").rglob("*.py"):
        if path == Path(SOURCE_ROOT, PICKLE_ROUND_TRIP):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) and "Nothing is pickled" not in line:
                offenders.append(f"{path.relative_to(SOURCE_ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# --------------------------------------------------------------------------- in-process


@pytest.fixture
def slow_probes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Register tests.crash_probes afresh for one test; yield the execution log."""
    saved = registry.snapshot()
    sys.modules.pop("tests.crash_probes", None)
    log = tmp_path / "executions.log"
    monkeypatch.setenv("AUDIT_TEST_LOG", str(log))
    monkeypatch.setenv("AUDIT_TEST_SLOW_CASE_S", "0")
    try:
        yield log
    finally:
        registry.restore(saved)
        sys.modules.pop("tests.crash_probes", None)


SLOW = RunSpec(probes=["tests.slow.sleep"], modules=["tests.crash_probes"], repeat=False)


def _executions(log: Path) -> int:
    return log.read_text().count("\n") if log.exists() else 0


def test_a_failed_final_write_keeps_the_sidecar_and_resume_writes_it(
        slow_probes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = str(tmp_path / "results")

    def refuse(run: Any, where: str) -> str:
        raise StoreError(f"cannot write to results directory {where!r}: No space left on device")

    monkeypatch.setattr(store, "write_run", refuse)
    with pytest.raises(StoreError, match="--resume") as caught:
        Runner(SLOW, results).execute()
    assert "No space left" in str(caught.value)
    assert _executions(slow_probes) == 20
    monkeypatch.undo()
    monkeypatch.setenv("AUDIT_TEST_LOG", str(slow_probes))
    outcome = Runner(SLOW, results).execute(resume=True)
    assert _executions(slow_probes) == 20  # written from the sidecar: nothing ran again
    assert outcome.counts == {"ok": 20} and outcome.path and os.path.exists(outcome.path)
    assert not os.path.exists(partial_dir(results))  # the sidecar is gone, and its empty folder


def _fake_sidecar(results: str, spec: RunSpec, lines: List[Any]) -> None:
    os.makedirs(partial_dir(results), exist_ok=True)
    with open(os.path.join(partial_dir(results), "x.jsonl"), "w") as f:
        f.write(json.dumps({"type": "run", "run_id": "f" * 32, "started": "2024-06-01T00:00:00.000000Z",
                            "spec": spec.digest()}) + "\n")
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def test_resume_survives_garbage_and_reruns_stale_or_unknown_cases(slow_probes: Path, tmp_path: Path) -> None:
    results = str(tmp_path / "results")
    runner = Runner(SLOW, results)
    case = next(iter(runner.cases.values()))
    stale = {"type": "record", "case_key": case["case_key"], "probe_version": "edited-since", "status": "ok"}
    ghost = {"type": "record", "case_key": "no-such-case", "probe_version": "x", "status": "ok"}
    _fake_sidecar(results, SLOW, ["not json", "[1, 2]", "7", '{"type": "record"}', stale, ghost])
    os.makedirs(os.path.join(partial_dir(results), "a-directory.jsonl"))
    with open(os.path.join(partial_dir(results), "binary.jsonl"), "wb") as f:
        f.write(b"\xff\xfe\x00garbage")
    outcome = runner.execute(resume=True)
    assert _executions(slow_probes) == 20  # the stale record's case ran again
    keys = {r["case_key"] for r in outcome.run.records}
    assert keys == set(runner.cases) and outcome.run.run_id == "f" * 32


def test_sidecar_read_keeps_only_well_formed_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"type": "run", "run_id": "r", "started": "s"}\n\xff\n[]\n{"type": "record"}\n'
                     b'{"type": "record", "case_key": "k", "status": "ok"}\n{"type": "header", "env": 3}\n')
    run_line, env, records = Sidecar(str(path)).read()
    assert run_line == {"run_id": "r", "started": "s"} and env is None
    assert records == [{"case_key": "k", "status": "ok"}]
