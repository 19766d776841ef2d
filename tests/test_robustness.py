"""Hostile input and hostile surroundings (issue 18 items 13-18): FIFOs, Ctrl-C, huge strings,
probe modules that start processes, bad version lists, closed pipes, non-finite numbers.

Each test drives a real process where the behaviour is about processes (signals, pipes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from audit.runner.supervisor import SOURCE_ROOT
from tests.compare_helpers import make_run, record, write
from tests.signals import process_state, sigint_as_in_a_terminal

P = {"seed": 0}


def _audit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audit", *args], cwd=SOURCE_ROOT, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def _two_runs(directory: Path) -> List[str]:
    return write([make_run(f"run{i}", f"2026-01-0{i + 1}T00:00:00.000000Z", {}, [record("p", P, "fp")])
                  for i in range(2)], str(directory))


def _release(fifo: Path) -> None:
    """Give a reader stuck on ``fifo`` its end of file (when a test fails on a blocking open)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# --------------------------------------------------------------------------- item 13: FIFOs and Ctrl-C


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("command", ["compare", "compact"])
def test_a_fifo_named_parquet_is_skipped_not_opened(tmp_path: Path, command: str) -> None:
    _two_runs(tmp_path / "runs")
    fifo = tmp_path / "runs" / "x.parquet"
    os.mkfifo(fifo)
    args = [str(tmp_path / "runs")] + ([str(tmp_path / "dest")] if command == "compact" else [])
    try:
        done = _audit(command, *args, timeout=60)
    finally:
        _release(fifo)
    assert done.returncode == 3, done.stderr
    assert f"skipped {fifo}: not a regular file (a FIFO)" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_given_by_name_is_skipped_and_nothing_else_is_a_usage_error(tmp_path: Path) -> None:
    fifo = tmp_path / "x.parquet"
    os.mkfifo(fifo)
    try:
        done = _audit("compare", str(fifo), timeout=60)
    finally:
        _release(fifo)
    assert done.returncode == 2 and "not a regular file (a FIFO)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


#: A compare whose first query is a long one (minutes of DuckDB work), to be interrupted there.
_BUSY_COMPARE = """
import sys
from audit import cli
from audit.store import engine

real = engine.Engine._run
state = {"busy": False}

def busy_first(self, sql, params, arrow=False):
    if not state["busy"]:
        state["busy"] = True
        print("querying", flush=True)
        real(self, "SELECT sum(hash(range)) FROM range(1000000000000)", {})
    return real(self, sql, params, arrow)

engine.Engine._run = busy_first
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is a console event on Windows")
def test_ctrl_c_stops_a_compare_busy_in_the_query_engine(tmp_path: Path) -> None:
    _two_runs(tmp_path / "runs")
    proc = subprocess.Popen([sys.executable, "-c", _BUSY_COMPARE, "compare", str(tmp_path / "runs")],
                            cwd=SOURCE_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=sigint_as_in_a_terminal,
                            env={**os.environ, "PYTHONPATH": SOURCE_ROOT})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "querying"
        time.sleep(0.3)  # inside the query
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted"


# --------------------------------------------------------------------------- item 16: bisect --versions


@pytest.mark.parametrize("versions", ["", " , ", "latest,banana"])
def test_an_empty_or_unparsable_versions_list_is_a_usage_error(versions: str) -> None:
    done = _audit("bisect", "torch", "2.4.1", "2.5.1", "--versions", versions, "--results", os.devnull,
                  timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: --versions") and "Traceback" not in done.stderr
    assert done.stdout == ""


# --------------------------------------------------------------------------- item 17: a closed pipe


@pytest.mark.parametrize("command", [["list"], ["env"]])
def test_a_reader_that_closes_the_pipe_gets_no_traceback(command: List[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "audit", *command], cwd=SOURCE_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first line is written
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert err == "" and proc.returncode == 1


def test_head_1_through_a_real_shell_pipe_is_quiet() -> None:
    done = subprocess.run(f"{sys.executable} -m audit list | head -1", shell=True, cwd=SOURCE_ROOT, text=True,
                          capture_output=True, timeout=60)
    assert len(done.stdout.splitlines()) == 1 and done.stderr == ""


# --------------------------------------------------------------------------- item 18: strict JSON


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_compare_json_is_strict_json_when_params_hold_nan_and_infinity(tmp_path: Path) -> None:
    params = {"seed": 0, "scale": float("nan"), "high": float("inf"), "low": float("-inf")}
    write([make_run(f"run{i}", f"2026-01-0{i + 1}T00:00:00.000000Z", {"torch_version": f"2.{i}.0"},
                    [record("p", params, f"fp{i}")]) for i in range(2)], str(tmp_path / "runs"))
    done = _audit("compare", "--json", str(tmp_path / "runs"))
    doc = _strict(done.stdout)
    assert isinstance(doc, dict)
    (finding,) = doc["findings"]
    assert finding["case"]["scale"] == "NaN" and finding["case"]["high"] == "Infinity"
    assert finding["case"]["low"] == "-Infinity"


def test_strict_turns_every_non_finite_number_into_a_string() -> None:
    import numpy as np

    from audit.report.jsonout import strict

    value = {"a": [float("nan"), 1.5, (float("inf"), np.float64("-inf"))], "b": {"c": None, "d": "NaN"}}
    assert strict(value) == {"a": ["NaN", 1.5, ["Infinity", "-Infinity"]], "b": {"c": None, "d": "NaN"}}
    json.dumps(strict(value), allow_nan=False)


# --------------------------------------------------------------------------- item 15: modules that start processes

_STARTS_A_HELPER = '''
import os, subprocess, sys
from audit.probe_api import probe

helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # inherits stdout and stderr
with open(os.environ["HELPER_PIDS"], "a") as f:
    f.write(f"{helper.pid}\\n")

@probe("hostile.helper", grid={"x": [1]})
def twice(x):
    return [x * 2]
'''


def _gone(pid: int) -> bool:
    return process_state(pid) in (None, "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the helper")
def test_a_probe_module_that_starts_a_helper_at_import_runs_and_its_helper_is_killed(tmp_path: Path) -> None:
    module = tmp_path / "helper_probes.py"
    module.write_text(_STARTS_A_HELPER)
    pids = tmp_path / "pids"
    done = subprocess.run([sys.executable, "-m", "audit", "run", "--probes-from", str(module), "--probe",
                           "hostile.*", "--no-repeat", "-q", "--startup-timeout", "20", "--results",
                           str(tmp_path / "results")], cwd=SOURCE_ROOT, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120, env={**os.environ, "HELPER_PIDS": str(pids)})
    assert done.returncode == 0, done.stderr  # not "did not list its probes within 20 s"
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) >= 2  # the listing's import, and the worker's
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in started if not _gone(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert left == []


def test_list_probes_from_a_module_whose_import_hangs_stops_at_the_startup_timeout(tmp_path: Path) -> None:
    module = tmp_path / "hangs.py"
    module.write_text("import time\ntime.sleep(600)\n")
    done = _audit("list", "--probes-from", str(module), "--startup-timeout", "1", timeout=60)
    assert done.returncode == 2 and "did not import within 1 s (--startup-timeout)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- item 14: huge strings, bounded memory


def test_rows_with_strings_past_the_documented_size_are_skipped_with_a_reason(tmp_path: Path) -> None:
    from audit.store.engine import MAX_STRING

    huge = {"seed": 0, "blob": "x" * (MAX_STRING + 1)}
    write([make_run(f"run{i}", f"2026-01-0{i + 1}T00:00:00.000000Z", {},
                    [record("p", huge, f"fp{i}"), record("q", P, "same")]) for i in range(2)],
          str(tmp_path / "runs"))
    done = _audit("compare", str(tmp_path / "runs"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.count("1 row(s) left out: a case_key/message/params string longer than 64 KiB") == 2
    assert "1 identical" in done.stdout  # the other rows are still compared


def test_compare_counts_long_strings_in_its_one_scan_and_compares_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row scan itself counts the oversized rows (a second scan of every row cost more than
    the rest of compare): each file named with its own count, those rows in no verdict."""
    from audit.compare import compare_paths
    from audit.store.engine import MAX_STRING, Engine

    def no_second_scan(self: Engine) -> None:
        raise AssertionError("a separate scan for oversized strings")

    monkeypatch.setattr(Engine, "_count_oversized", no_second_scan)
    long_message = "e" * (MAX_STRING + 1)
    write([make_run(f"run{i}", f"2026-01-0{i + 1}T00:00:00.000000Z", {},
                    [record("q", P, "same")]
                    + [record("e", {"seed": s}, None, status="error", message=long_message)
                       for s in range(i + 2)])
           for i in range(2)], str(tmp_path / "runs"))
    result = compare_paths([str(tmp_path / "runs")])
    counts = sorted(s.reason.split(" ")[0] for s in result.skipped)
    assert counts == ["2", "3"]
    assert all("string longer than 64 KiB" in s.reason for s in result.skipped)
    assert [f.probe for f in result.findings] == ["q"]  # the error rows are in no finding
    assert result.rows == 2


def test_compaction_keeps_rows_with_long_strings(tmp_path: Path) -> None:
    from audit.store.compact import compact
    from audit.store.engine import MAX_STRING
    from audit.store.scan import read_runs

    write([make_run("run0", "2026-01-01T00:00:00.000000Z", {},
                    [record("p", {"seed": 0, "blob": "x" * (MAX_STRING + 1)}, "fp")])], str(tmp_path / "src"))
    done = compact([str(tmp_path / "src")], str(tmp_path / "dest"), remove_sources=True)
    assert len(done.sources_removed) == 1
    table = __import__("pyarrow.parquet", fromlist=["x"]).read_table(done.written[0])
    assert table.num_rows == 1 and len(table.column("params")[0].as_py()) > MAX_STRING
    frame, skipped = read_runs([str(tmp_path / "dest")])
    assert len(frame) == 0 and "left out" in skipped[0].reason


def test_the_query_engine_is_bounded_to_a_share_of_ram_by_default() -> None:
    from audit.store import engine

    limit = engine.default_memory_limit()
    assert limit is not None and limit.endswith("MB")
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    assert int(limit[:-2]) == max(256, pages * size // 2 // (1 << 20))
    con = engine.connect()
    try:
        got = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        engine.close(con)
    expected_gib = int(limit[:-2]) / 1024
    assert got.endswith("GiB") and abs(float(got[:-4]) - expected_gib) < expected_gib * 0.1
