"""Results locations: one check, listing that survives hostile trees, remote timeouts, leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import pytest

from audit.compare import compare_paths
from audit.errors import StoreError, UsageError
from audit.runner.supervisor import SOURCE_ROOT
from audit.store import location
from audit.store.runfile import check_writable, write_run
from audit.worker.records import Run
from tests.compare_helpers import make_run, record, write
from tests.signals import sigint_as_in_a_terminal


def _cli(*args: str, env: Any = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audit", *args], cwd=SOURCE_ROOT, text=True, capture_output=True,
                          timeout=timeout, env=env)


def _one_line_exit_2(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def _two_runs(directory: Path) -> List[str]:
    return write([make_run("a" * 8, "2026-01-01T00:00:00.000000Z", {}, [record("p", {"seed": 0}, "x")]),
                  make_run("b" * 8, "2026-01-02T00:00:00.000000Z", {"torch_version": "2.4.1"},
                           [record("p", {"seed": 0}, "y")])], str(directory))


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize("bad, message", [
    ("", "is empty"), ("   ", "is empty"), ("/tmp/\udcff\udcfe", "not valid UTF-8"),
    ("/tmp/" + "a" * 300, "longer than the OS allows"), ("/tmp/" + "a/" * 2100, "longer than the OS allows"),
])
def test_a_location_that_cannot_name_a_place_is_a_usage_error(bad: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        location.check(bad)


@pytest.mark.parametrize("args", [
    ["compare", ""], ["compare", "--baseline", "", "."], ["run", "--results", "", "--probe", "random.random"],
    ["run", "--results", "mock://x", "--probe", "random.random"],
    ["run", "--results", "memory://x", "--probe", "random.random"],
    ["run", "--results", "/tmp/" + "a" * 300, "--probe", "random.random"],
])
def test_the_cli_refuses_such_locations_in_one_line_before_any_work(args: List[str]) -> None:
    done = _cli(*args, "-q") if args[0] == "run" else _cli(*args)
    _one_line_exit_2(done)


def test_a_non_utf8_results_path_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable.encode(), b"-m", b"audit", b"run", b"-q", b"--probe", b"random.random",
                           b"--results", os.fsencode(str(tmp_path)) + b"/\xff\xfe"], cwd=SOURCE_ROOT,
                          capture_output=True, timeout=120)
    assert done.returncode == 2 and b"not valid UTF-8" in done.stderr and b"Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_writing_to_an_in_memory_filesystem_is_refused() -> None:
    with pytest.raises(StoreError, match="in-memory filesystem"):
        write_run(Run.new({}), "mock://x")
    with pytest.raises(StoreError, match="in-memory filesystem"):
        check_writable("memory://bucket/x")


# --------------------------------------------------------------------------- listing


def test_symlink_loops_are_walked_once(tmp_path: Path) -> None:
    _two_runs(tmp_path)
    os.symlink(".", tmp_path / "loop1")
    os.symlink(".", tmp_path / "loop2")
    (tmp_path / "sub").mkdir()
    os.symlink("..", tmp_path / "sub" / "up")
    files, skipped = location.run_files([str(tmp_path)])
    assert len(files) == 2 and skipped == []
    assert compare_paths([str(tmp_path)]).runs == 2


def test_a_non_utf8_file_name_skips_only_that_file(tmp_path: Path) -> None:
    (paths := _two_runs(tmp_path))
    odd = os.fsencode(str(tmp_path)) + b"/run-\xff.parquet"
    with open(paths[0], "rb") as src, open(odd, "wb") as dst:
        dst.write(src.read())
    c = compare_paths([str(tmp_path)])
    assert c.runs == 2 and c.exit_code() == 1  # the divergence is still found
    (skipped,) = c.skipped
    assert "not valid UTF-8" in skipped.reason and "\\xff" in skipped.path
    done = _cli("compare", str(tmp_path), "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_hidden_names_and_other_files_are_passed_over_and_missing_paths_named(tmp_path: Path) -> None:
    _two_runs(tmp_path / "runs")
    (tmp_path / "runs" / ".partial").mkdir()
    (tmp_path / "runs" / ".partial" / "x.parquet").write_bytes(b"half")
    (tmp_path / "runs" / "notes.txt").write_text("not a run")
    files, skipped = location.run_files([str(tmp_path / "runs"), str(tmp_path / "nowhere")])
    assert len(files) == 2 and [s.reason for s in skipped] == ["no such file or directory"]


# --------------------------------------------------------------------------- remote


def test_a_remote_location_is_read_through_pyarrow_and_fsspec(tmp_path: Path) -> None:
    fs, root = location.filesystem("memory://audit-test/runs")
    fs.create_dir(root, recursive=True)
    local = _two_runs(tmp_path)
    for path in local:  # the same files, copied byte for byte to the remote store
        with fs.open_output_stream(f"{root}/{os.path.basename(path)}") as out, open(path, "rb") as src:
            out.write(src.read())
    remote = compare_paths(["memory://audit-test/runs"])
    here = compare_paths([str(tmp_path)])
    assert remote.runs == 2 and remote.skipped == []
    assert [(f.verdict, f.axes, f.measured.kind, [s.runs for s in f.streams]) for f in remote.findings] == \
           [(f.verdict, f.axes, f.measured.kind, [s.runs for s in f.streams]) for f in here.findings]


def test_a_remote_operation_gives_up_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(location.TIMEOUT_ENV, "0.2")
    start = time.monotonic()
    with pytest.raises(StoreError, match="no answer within 0.2 s"):
        location.bounded("gs://bucket/x", "listing", lambda: time.sleep(30))
    assert time.monotonic() - start < 5
    assert location.bounded("/local/path", "listing", lambda: 7) == 7  # local work runs in place


def test_a_bad_timeout_setting_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(location.TIMEOUT_ENV, "soon")
    with pytest.raises(UsageError, match="AUDIT_REMOTE_TIMEOUT"):
        location.remote_timeout()


@pytest.mark.parametrize("args", [["compare", "gs://nonexistent-bucket-determinism-audit/x"],
                                  ["run", "-q", "--probe", "random.random", "--results",
                                   "gs://nonexistent-bucket-determinism-audit/x"]])
def test_an_unreachable_bucket_fails_in_bounded_time_with_one_line(args: List[str]) -> None:
    env = {**os.environ, location.TIMEOUT_ENV: "3"}
    start = time.monotonic()
    done = _cli(*args, env=env, timeout=90)
    assert time.monotonic() - start < 60
    assert done.returncode in (2, 3) and "Traceback" not in done.stderr, done.stderr


def test_ctrl_c_ends_a_hung_remote_command_promptly() -> None:
    env = {**os.environ, location.TIMEOUT_ENV: "600"}
    script = ("import time, audit.store.location as l\n"
              "print('waiting', flush=True)\n"
              "l.bounded('gs://x/y', 'listing', lambda: time.sleep(600))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=SOURCE_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_in_a_terminal)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert time.monotonic() - start < 10 and proc.returncode != 0


# --------------------------------------------------------------------------- leftovers


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_write_cleans_stale_leftovers_but_not_live_ones(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getppid()
    stale = [f".20260101T000000Z_m_abc.parquet.{dead}.tmp", f".write-check-{dead}-0123abcd.tmp"]
    kept = [f".20260101T000000Z_m_def.parquet.{live}.tmp", f".write-check-{live}-0123abcd.tmp", ".partial"]
    for name in stale + kept[:2]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".partial").mkdir()
    old = tmp_path / (".write-check-" + "a" * 32 + ".tmp")  # the pre-pid name, an hour old
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    write_run(Run.new({}), str(tmp_path))
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(stale) and old.name not in names
    assert set(kept) <= names
    check_writable(str(tmp_path))  # the write check cleans too, and leaves nothing of its own
    assert {p.name for p in tmp_path.iterdir()} == names
