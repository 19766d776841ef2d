"""The host's side of a run: start workers, collect their records, survive their deaths.

A run is executed by a worker subprocess (``python -m audit.worker``) in the interpreter
and environment under test.  The runner reads the worker's JSON lines, appends every
record to a sidecar file as soon as it arrives (so an interrupted run can ``--resume``),
and watches each case: a worker that dies mid-case costs that case a ``crash`` record, a
case that outlives its time limit is killed and recorded as ``timeout``; either way a fresh
worker continues with the cases not yet done.  At the end the store writes one parquet file
and the sidecar is removed.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

from audit.errors import AuditError, StoreError, UsageError
from audit.runner.plan import planned_cases
from audit.runner.sidecar import Sidecar, find_resumable
from audit.runner.spec import RunSpec
from audit.user_probes import is_path
from audit.worker.records import Run, Status

#: The directory holding this source tree: put on the worker's PYTHONPATH so a virtualenv
#: with only the libraries under test can run ``python -m audit.worker``.
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Progress = Callable[[int, int, Dict[str, Any]], None]

class RunInterrupted(AuditError):
    """SIGINT or SIGTERM stopped a run; its finished cases wait in the sidecar."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


def worker_command(spec: RunSpec, skip_file: Optional[str]) -> List[str]:
    cmd = [spec.python, "-m", "audit.worker"]
    for glob in spec.probes:
        cmd += ["--probe", glob]
    for seed in spec.seeds:
        cmd += ["--seed", str(seed)]
    cmd += ["--sizes", ",".join(spec.sizes)]
    for module in spec.modules:
        cmd += ["--module", module]
    for source in spec.probe_sources:
        cmd += ["--probes-from", source]
    if spec.threads:
        cmd += ["--threads", str(spec.threads)]
    if spec.deterministic:
        cmd += ["--deterministic", spec.deterministic]
    if not spec.repeat:
        cmd.append("--no-repeat")
    if skip_file:
        cmd += ["--skip-file", skip_file]
    return cmd


def worker_environment(spec: RunSpec) -> Dict[str, str]:
    env = dict(os.environ)
    for name in spec.unset:
        env.pop(name, None)
    env.update(spec.env)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = SOURCE_ROOT + (os.pathsep + path if path else "")
    if any(not is_path(source) for source in spec.probe_sources):  # modules import as from here
        env["PYTHONPATH"] += os.pathsep + os.getcwd()
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Worker:
    """One worker process and a thread that turns its stdout into a queue of messages."""

    def __init__(self, spec: RunSpec, skip_file: Optional[str]) -> None:
        self.stderr = tempfile.TemporaryFile()
        # A session of its own: a Ctrl-C at the terminal reaches the host only (which ends
        # the worker), and a kill reaches whatever the probes started too.
        self.proc = subprocess.Popen(
            worker_command(spec, skip_file), stdout=subprocess.PIPE, stderr=self.stderr,
            stdin=subprocess.DEVNULL, env=worker_environment(spec), cwd=SOURCE_ROOT,
            start_new_session=True,
        )
        self._case_output = 0  # stderr offset where the current case's output begins
        self.messages: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.messages.put(json.loads(raw))
            except json.JSONDecodeError:
                continue
        self.messages.put(None)

    def next(self, timeout: Optional[float]) -> Optional[Dict[str, Any]]:
        """The next message; None at end of stream; raises queue.Empty on timeout."""
        return self.messages.get(timeout=timeout)

    def kill(self) -> None:
        """Kill the worker and everything in its session (processes its probes started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        except AttributeError:  # pragma: no cover - no process groups (Windows)
            self.proc.kill()
        self.proc.wait()

    def case_started(self, output_at: Optional[int]) -> None:
        """Mark where the current case's output begins, so crash records quote only it.

        The worker says where (its stderr offset when the case starts); by the time this
        host reads the message the case may already have printed.
        """
        if isinstance(output_at, int):
            self._case_output = output_at
        else:  # a worker that cannot tell: the best guess is now
            self._case_output = os.fstat(self.stderr.fileno()).st_size

    def stderr_tail(self, limit: int = 800) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(self._case_output, size - limit))
        return " ".join(self.stderr.read().decode("utf-8", "replace").split())


def _death(returncode: Optional[int]) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class Outcome:
    """What a run produced."""

    run: Run
    path: Optional[str]
    counts: Dict[str, int]


class Runner:
    """Runs one :class:`RunSpec` to completion through as many workers as it takes."""

    def __init__(self, spec: RunSpec, results: str, progress: Optional[Progress] = None) -> None:
        self.spec = spec
        self.results = results
        self.progress = progress or (lambda done, total, record: None)
        self._last_error = ""  # what the last worker said when it died before any case
        self._unchecked = True  # the results location has not been checked for writing yet
        # case key -> its base record: the host must know the cases to name crashes and resume
        self.cases: Dict[str, Dict[str, Any]] = planned_cases(spec)

    def execute(self, resume: bool = False) -> Outcome:
        """Run every case not yet done, then write the run file.

        The results location is checked for writing while the first worker starts, before
        it runs a case.  An interrupt (SIGINT, or SIGTERM in the main thread) or a failed
        final write leaves the sidecar in place and raises an error that says how to ``--resume``.
        """
        _import_in_background("audit.store.runfile")  # pyarrow loads while the first worker starts
        sidecar = find_resumable(self.results, self.spec.digest()) if resume else None
        if sidecar is not None:
            sidecar.repair()
            run_line, env, records = sidecar.read()
            assert run_line is not None
            run = Run(run_line["run_id"], run_line["started"], env or {})
            run.records = [r for r in records if self._still_current(r)]
        else:
            run = Run.new({})
            sidecar = Sidecar.create(self.results, run, self.spec.digest())
        with _terminate_as_interrupt():
            try:
                self._collect(run, sidecar)
                sidecar.close()
                from audit.store.runfile import write_run

                path = write_run(run, self.results)
            except KeyboardInterrupt as exc:
                sidecar.close()
                signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
                raise RunInterrupted(f"interrupted by {signal.Signals(signum).name} after "
                                     f"{len(run.records)} of {len(self.cases)} cases; {self._resume_hint(sidecar)}",
                                     int(signum)) from None
            except StoreError as exc:
                if not run.records:  # nothing to keep: the location was refused up front
                    sidecar.remove()
                    raise
                raise StoreError(f"{exc}; {self._resume_hint(sidecar)}") from None
        sidecar.remove()
        return Outcome(run, path, dict(collections.Counter(r["status"] for r in run.records)))

    def _still_current(self, record: Mapping[str, Any]) -> bool:
        """Whether a resumed record is for a case of this catalogue, as the probe is now.

        The catalogue may have changed since the interrupted run: a record of a case that
        no longer exists would count towards "done", and one of an edited probe is stale.
        """
        case = self.cases.get(record["case_key"])
        return case is not None and record.get("probe_version") == case["probe_version"]

    def _resume_hint(self, sidecar: Sidecar) -> str:
        return (f"the finished cases are kept in {sidecar.path}: rerun the same command "
                f"with --resume to continue")

    def _collect(self, run: Run, sidecar: Sidecar) -> None:
        done = {r["case_key"] for r in run.records}
        while len(done) < len(self.cases):
            before = len(done)
            self._one_worker(run, sidecar, done)
            if len(done) == before:
                raise AuditError(f"the worker made no progress; last output: {self._last_error}")

    def _one_worker(self, run: Run, sidecar: Sidecar, done: set) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as f:
            f.write("\n".join(done))
            skip_file = f.name
        worker = _Worker(self.spec, skip_file)
        current: Optional[str] = None
        deadline: Optional[float] = None
        try:
            if self._unchecked:  # now, while the worker imports its libraries
                from audit.store.runfile import check_writable

                check_writable(self.results)
                self._unchecked = False
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    msg = worker.next(timeout)
                except queue.Empty:  # the current case outlived its time limit
                    worker.kill()
                    self._failed(run, sidecar, done, current, Status.TIMEOUT,
                                 f"ran past the {self.spec.case_timeout:g} s case limit; "
                                 f"last output: {worker.stderr_tail()}")
                    return
                if msg is None:  # the worker's stream ended
                    worker.proc.wait()
                    if current is not None:
                        self._failed(run, sidecar, done, current, Status.CRASH,
                                     f"worker {_death(worker.proc.returncode)}; last output: {worker.stderr_tail()}")
                    else:
                        self._last_error = f"{_death(worker.proc.returncode)}: {worker.stderr_tail()}"
                    return
                kind = msg.pop("type", None)
                if kind == "header":
                    if not run.env:
                        run.env = msg["env"]
                    sidecar.append({"type": "header", "env": msg["env"]})
                elif kind == "start":
                    current, deadline = msg["case_key"], time.monotonic() + self.spec.case_timeout
                    worker.case_started(msg.get("output_at"))
                elif kind == "record":
                    self._accept(run, sidecar, done, msg)
                    current, deadline = None, None
                elif kind == "error":  # the worker refused the user's probes (one line)
                    raise UsageError(msg.get("message") or "the worker could not load the probes")
                elif kind == "end":  # everything is here: no need to wait for its interpreter's teardown
                    return
        finally:
            worker.kill()
            os.remove(skip_file)

    def _accept(self, run: Run, sidecar: Sidecar, done: set, record: Dict[str, Any]) -> None:
        sidecar.append({"type": "record", **record})
        run.records.append(record)
        done.add(record["case_key"])
        self.progress(len(done), len(self.cases), record)

    def _failed(self, run: Run, sidecar: Sidecar, done: set, key: Optional[str], status: Status, message: str) -> None:
        if key is None or key not in self.cases:
            return
        self._accept(run, sidecar, done, {**self.cases[key], "status": status.value, "message": message})


def _import_in_background(name: str) -> None:
    """Start importing a module on a thread; a later import waits for it or redoes it."""
    def load() -> None:
        try:
            importlib.import_module(name)
        except Exception:  # pragma: no cover - the import in the main thread reports it
            pass

    threading.Thread(target=load, name=f"import {name}", daemon=True).start()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while a run executes (main thread only; signals need it).

    Without it SIGTERM ends the host at once: no message, and on platforms without a
    parent-death signal the worker runs on, orphaned.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
