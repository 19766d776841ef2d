"""Concurrent writers: processes writing runs into one results directory at once.

Run files are written under a hidden temporary name and renamed into place, and named by
time, machine and a random run id, so nothing is lost or overwritten even when every
writer starts in the same second.  Real processes, not threads: that is how runs collide.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List

from audit.runner.supervisor import SOURCE_ROOT
from audit.store.runfile import write_run
from audit.store.scan import read_runs
from audit.worker.records import Run

WRITERS = 6
RUNS_EACH = 15
STARTED = "2024-06-01T12:00:00.000000Z"  # every run in the same second: names rely on the run id


def _writer(results: str, writer: int, barrier: Any) -> None:
    barrier.wait()
    for i in range(RUNS_EACH):
        run = Run.new({"machine_id": "same-machine"})
        run.started = STARTED
        run.records = [{"case_key": f"w{writer}-r{i}-c{c}", "probe": "p", "status": "ok",
                        "message": f"{writer}/{i}"} for c in range(i % 4 + 1)]
        write_run(run, results)


def test_processes_writing_at_once_lose_and_overwrite_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding arrow threads
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, barrier)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * WRITERS

    frame, skipped = read_runs([str(tmp_path)])
    assert skipped == []
    assert len(list(tmp_path.glob("*.parquet"))) == frame["run_id"].nunique() == WRITERS * RUNS_EACH
    expected = {f"w{w}-r{i}-c{c}" for w in range(WRITERS) for i in range(RUNS_EACH) for c in range(i % 4 + 1)}
    assert len(frame) == len(expected) and set(frame["case_key"]) == expected
    for _, rows in frame.groupby("run_id"):  # each file holds exactly its own run's rows
        assert rows["message"].nunique() == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_cli_runs_started_together_each_write_their_own_file(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "audit", "run", "--results", str(tmp_path), "--probe", "random.random",
               "--seed", "0", "--no-repeat", "-q"]
    procs: List[subprocess.Popen[str]] = [
        subprocess.Popen(command, cwd=SOURCE_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    written = {line.split("wrote ", 1)[1] for out, _ in outputs for line in out.splitlines() if "wrote " in line}
    assert len(written) == 3 and all(os.path.exists(path) for path in written)
    frame, skipped = read_runs([str(tmp_path)])
    assert skipped == [] and frame["run_id"].nunique() == 3
    per_run = frame.groupby("run_id")["case_key"].apply(frozenset)
    assert per_run.nunique() == 1 and len(per_run.iloc[0]) == len(frame) // 3  # same cases, each once
    assert not (tmp_path / ".partial").exists()  # every sidecar is gone, and their folder
