"""The run path under hostile use (issue 15): no false verdicts from a resumed run in another
environment, no lost runs (wide seeds, a full disk), no hangs (a worker that never starts),
no traceback for Ctrl-C at any moment, no leftovers, no two resumes of one run.

Real processes wherever a signal or a worker is what is tested; in-process runners where a
fault is injected (a full disk cannot be made on demand in CI).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import pyarrow.parquet as pq
import pytest

from audit import cli
from audit.errors import DiskFull, UsageError
from audit.runner import sidecar as sidecar_mod
from audit.runner.sidecar import Sidecar, find_resumable, partial_dir
from audit.runner.spec import RunSpec
from audit.runner.supervisor import SOURCE_ROOT, Runner
from tests.signals import sigint_as_in_a_terminal


def _command(results: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "audit", "run", "--results", str(results), "--probes-from", "tests.crash_probes",
            "--probe", "tests.slow.sleep", "--no-repeat", "-q", *extra]


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    return {**env, "AUDIT_TEST_SLOW_CASE_S": "0.05", **extra}


def _interrupted_run(results: Path, **env: str) -> None:
    """A CLI run stopped by SIGINT once a few cases are in its sidecar."""
    proc = subprocess.Popen(_command(results), cwd=SOURCE_ROOT, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_in_a_terminal)
    end = time.monotonic() + 120
    while _records(results) < 3 and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err, err


def _records(results: Path) -> int:
    folder = results / ".partial"
    return sum(p.read_text().count('"type": "record"') for p in folder.glob("*.jsonl")) if folder.is_dir() else 0


def _run(results: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(results, *extra), cwd=SOURCE_ROOT, env=_env(**env), capture_output=True,
                          text=True, timeout=300)


# --------------------------------------------------------------------------- resume


def test_resume_in_another_environment_is_refused_and_force_starts_a_new_run(tmp_path: Path) -> None:
    _interrupted_run(tmp_path, PYTHONHASHSEED="0")
    before = [p.read_text() for p in (tmp_path / ".partial").glob("*.jsonl")]
    refused = _run(tmp_path, "--resume", PYTHONHASHSEED="1")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "PYTHONHASHSEED: 0 -> 1" in refused.stderr and "--force" in refused.stderr
    assert [p.read_text() for p in (tmp_path / ".partial").glob("*.jsonl")] == before  # untouched
    forced = _run(tmp_path, "--resume", "--force", PYTHONHASHSEED="1")
    assert forced.returncode == 0, forced.stderr
    (written,) = tmp_path.glob("*.parquet")
    table = pq.read_table(written).to_pydict()
    assert set(table["PYTHONHASHSEED"]) == {"1"} and len(set(table["case_key"])) == len(table["case_key"]) == 20
    assert [p.read_text() for p in (tmp_path / ".partial").glob("*.jsonl")] == before  # never merged
    same = _run(tmp_path, "--resume", PYTHONHASHSEED="0")  # the interrupted run still resumes as itself
    assert same.returncode == 0, same.stderr
    assert len(list(tmp_path.glob("*.parquet"))) == 2


def test_resume_with_nothing_to_resume_says_so(tmp_path: Path) -> None:
    done = _run(tmp_path, "--resume")
    assert done.returncode == 2 and "no interrupted run with these settings" in done.stderr
    assert not list(tmp_path.glob("*.parquet"))
    assert _run(tmp_path, "--force").returncode == 2  # --force alone means nothing


def test_concurrent_resumes_take_different_runs_or_say_it_is_taken(tmp_path: Path) -> None:
    spec = "same-settings"
    for _ in range(2):
        run = sidecar_mod.Run.new({})
        Sidecar.create(str(tmp_path), run, spec).close()
        time.sleep(0.01)
    first, second = find_resumable(str(tmp_path), spec), find_resumable(str(tmp_path), spec)
    assert first is not None and second is not None and first.path != second.path
    with pytest.raises(UsageError, match="being resumed by another process"):
        find_resumable(str(tmp_path), spec)
    first.close()
    again = find_resumable(str(tmp_path), spec)
    assert again is not None and again.path == first.path


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("seed", [2**63, 2**64 - 1, -(2**63)])
def test_every_accepted_seed_round_trips_through_the_run_file_and_compare(tmp_path: Path, seed: int) -> None:
    done = subprocess.run([sys.executable, "-m", "audit", "run", "--results", str(tmp_path), "--probe", "random.random",
                           "--seed", str(seed), "--no-repeat", "-q"], cwd=SOURCE_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    (written,) = tmp_path.glob("*.parquet")
    table = pq.read_table(written).to_pylist()
    assert {int(r["seed"]) for r in table} == {seed} and {json.loads(r["params"])["seed"] for r in table} == {seed}
    compared = subprocess.run([sys.executable, "-m", "audit", "compare", str(tmp_path), "--json"], cwd=SOURCE_ROOT,
                              capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stderr
    assert {f["case"]["seed"] for f in json.loads(compared.stdout)["findings"]} == {seed}


def test_a_seed_no_library_takes_is_refused_before_the_run(tmp_path: Path) -> None:
    done = _run(tmp_path, "--seed", str(2**64))
    assert done.returncode == 2 and "outside every library's range" in done.stderr
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- a full disk


def _full_after(records: int, monkeypatch: Any) -> None:
    """Make the sidecar's writes fail with ENOSPC once ``records`` records are in it."""
    real = Sidecar.append
    seen = {"records": 0}

    def append(self: Sidecar, message: Any) -> None:
        if message.get("type") == "record":
            if seen["records"] >= records:
                raise sidecar_mod.disk_full(OSError(errno.ENOSPC, "No space left on device"), self.path) \
                    or AssertionError("ENOSPC not recognised")
            seen["records"] += 1
        real(self, message)

    monkeypatch.setattr(Sidecar, "append", append)


def test_a_full_disk_mid_run_is_one_line_exit_2_and_keeps_what_was_recorded(tmp_path: Path, monkeypatch: Any,
                                                                            capsys: Any) -> None:
    monkeypatch.setenv("AUDIT_TEST_SLOW_CASE_S", "0.01")
    _full_after(4, monkeypatch)
    code = cli.main(["run", "--results", str(tmp_path), "--probes-from", "tests.crash_probes",
                     "--probe", "tests.slow.sleep", "--no-repeat", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "no space left on device" in err and " free" in err and "--resume" in err
    assert _records(tmp_path) == 4 and not list(tmp_path.glob("*.parquet"))
    monkeypatch.undo()
    monkeypatch.setenv("AUDIT_TEST_SLOW_CASE_S", "0.01")
    as_the_cli_ran = RunSpec(probes=["tests.slow.sleep"], probe_sources=["tests.crash_probes"], repeat=False,
                             catalogue=False)
    outcome = Runner(as_the_cli_ran, str(tmp_path)).execute(resume=True)
    assert outcome.counts == {"ok": 20}


def test_a_full_disk_when_the_sidecar_is_created_names_the_place(tmp_path: Path, monkeypatch: Any) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "makedirs", full)
    with pytest.raises(DiskFull) as caught:
        Sidecar.create(str(tmp_path / "results"), sidecar_mod.Run.new({}), "spec")
    assert caught.value.exit_code == 2 and "free" in str(caught.value)


# --------------------------------------------------------------------------- hangs and signals


def test_a_python_that_never_starts_a_worker_does_not_hang(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nsleep 600\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "audit", "run", "--python", str(fake), "--results",
                           str(tmp_path / "r"), "--startup-timeout", "2", "-q"], cwd=SOURCE_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 60
    assert done.returncode == 2 and "within 2 s (--startup-timeout)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_that_dies_before_its_first_case_keeps_the_resume_hint(tmp_path: Path) -> None:
    _interrupted_run(tmp_path)
    done = _run(tmp_path, "--resume", AUDIT_TEST_WORKER_DIES_AT_START="1")
    assert done.returncode == 2 and "made no progress" in done.stderr and "--resume" in done.stderr, done.stderr
    assert _records(tmp_path) >= 3  # still there
    assert _run(tmp_path, "--resume").returncode == 0


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_ctrl_c_while_starting_is_one_line(tmp_path: Path, delay: float) -> None:
    proc = subprocess.Popen(_command(tmp_path), cwd=SOURCE_ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_in_a_terminal)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if "Fatal Python error: init_import_site" in err:  # the interpreter itself, still in site, before any
        pytest.skip("SIGINT arrived while Python imported site, before any audit code ran")
    assert proc.returncode in (130, -signal.SIGINT) and "Traceback" not in err, err


def test_three_rapid_ctrl_cs_keep_the_resume_hint(tmp_path: Path) -> None:
    proc = subprocess.Popen(_command(tmp_path), cwd=SOURCE_ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_in_a_terminal)
    end = time.monotonic() + 120
    while _records(tmp_path) < 2 and time.monotonic() < end:
        time.sleep(0.02)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "--resume" in err, err


def test_an_empty_module_name_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "audit", "run", "--probes-from", "", "--results", str(tmp_path)],
                          cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- leftovers


def test_a_run_leaves_no_scratch_file_behind(tmp_path: Path) -> None:
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("*.keys"))
    _interrupted_run(tmp_path / "r")
    assert not list((tmp_path / "r" / ".partial").glob("*.keys"))  # its own scratch file went with it
    assert _run(tmp_path / "r", "--resume").returncode == 0
    assert set(temp.glob("*.keys")) <= before  # nothing new in the system's temp folder
    assert not (tmp_path / "r" / ".partial").exists()


def test_a_stale_scratch_file_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    folder = Path(partial_dir(str(tmp_path)))
    folder.mkdir(parents=True)
    (folder / "deadbeef.keys").write_text("x")  # its run's sidecar is gone
    Sidecar.create(str(tmp_path), sidecar_mod.Run.new({}), "spec").remove()
    assert not (folder / "deadbeef.keys").exists()


# --------------------------------------------------------------------------- where runs go


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SOURCE_ROOT}
    env.pop("AUDIT_RESULTS", None)
    return subprocess.run([sys.executable, "-m", "audit", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_run_and_sweep_write_to_separate_folders_from_any_working_directory(tmp_path: Path) -> None:
    """run -> results/runs; sweep -> results/sweeps/<time>-<axes>/: the new-hardware compare of
    results/runs never picks up a sweep's runs (relative paths, the worker elsewhere)."""
    assert _cli(tmp_path, "run", "-q", "--probe", "random.random", "--seed", "1", "--no-repeat").returncode == 0
    swept = _cli(tmp_path, "sweep", "-q", "--axis", "PYTHONHASHSEED=0,1", "--probe", "random.random", "--seed", "1",
                 "--no-repeat")
    assert swept.returncode == 0, swept.stderr
    assert len(list((tmp_path / "results" / "runs").glob("*.parquet"))) == 1
    (folder,) = (tmp_path / "results" / "sweeps").iterdir()
    assert folder.name.endswith("-PYTHONHASHSEED") and len(list(folder.glob("*.parquet"))) == 2
    assert not (tmp_path / "results" / "runs" / ".partial").exists()
