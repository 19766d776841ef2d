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
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from audit.errors import AuditError, UsageError
from audit.runner import processes
from audit.runner.launch import SOURCE_ROOT, worker_command, worker_environment
from audit.runner.plan import planned_cases
from audit.runner.sidecar import Sidecar, find_resumable
from audit.runner.spec import RunSpec
from audit.worker.records import Run, Status, shown

Progress = Callable[[int, int, Dict[str, Any]], None]


class EnvironmentChanged(UsageError):
    """``--resume`` found the audited environment changed since the interrupted run."""

    def __init__(self, sidecar: str, changed: List[str]) -> None:
        super().__init__(
            f"--resume: the environment differs from the interrupted run's ({'; '.join(changed)}); "
            f"resume with the same settings, or add --force to start a new run "
            f"(the interrupted one stays in {sidecar})"
        )


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> List[str]:
    """'ATEN_CPU_CAPABILITY: default -> unset' for every field that differs."""
    names = sorted(set(before) | set(after))
    return [
        f"{n}: {shown(before.get(n))} -> {shown(after.get(n))}"
        for n in names
        if before.get(n) != after.get(n)
    ]


def _with_hint(exc: AuditError, hint: str) -> AuditError:
    """The same error (class, exit code and attributes), its message ending with ``hint``."""
    exc.args = (f"{exc}; {hint}",)
    return exc


class RunInterrupted(AuditError):
    """SIGINT or SIGTERM stopped a run; its finished cases wait in the sidecar."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class _Worker:
    """One worker process and a thread that turns its stdout into a queue of messages."""

    def __init__(self, spec: RunSpec, skip_file: Optional[str]) -> None:
        self.stderr = tempfile.TemporaryFile()
        # A session of its own: a Ctrl-C at the terminal reaches the host only (which ends
        # the worker), and a kill reaches whatever the probes started too.
        self.proc = subprocess.Popen(
            worker_command(spec, skip_file),
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
            env=worker_environment(spec),
            cwd=SOURCE_ROOT,
            **processes.group_options(),
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
        processes.kill_group(self.proc)

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

    def execute(self, resume: bool = False, force: bool = False) -> Outcome:
        """Run every case not yet done, then write the run file.

        With ``resume`` the newest interrupted run of the same settings continues, if the
        audited environment is still the one it recorded; ``force`` starts a new run instead
        when there is nothing to resume or the environment changed (never merging the two).
        The results location is checked for writing while the first worker starts, before
        it runs a case.  An interrupt (SIGINT, or SIGTERM in the main thread), a full disk
        or a failed final write leaves the sidecar in place and raises an error that says
        how to ``--resume``.
        """
        _import_in_background("audit.store.runfile")  # pyarrow loads while the first worker starts
        sidecar = find_resumable(self.results, self.spec.digest()) if resume else None
        if resume and sidecar is None and not force:
            raise UsageError(
                f"--resume: no interrupted run with these settings under {self.results}; "
                "run without --resume to start one"
            )
        if sidecar is None:
            return self._finish(*self._new_run())
        try:
            return self._finish(self._resumed(sidecar), sidecar)
        except EnvironmentChanged:
            if not force:
                raise
            return self._finish(*self._new_run())  # the interrupted run stays as it was

    def _new_run(self) -> Tuple[Run, Sidecar]:
        run = Run.new({})
        return run, Sidecar.create(self.results, run, self.spec.digest())

    def _resumed(self, sidecar: Sidecar) -> Run:
        sidecar.repair()
        run_line, env, records = sidecar.read()
        assert run_line is not None
        run = Run(run_line["run_id"], run_line["started"], env or {})
        run.records = [r for r in records if self._still_current(r)]
        return run

    def _finish(self, run: Run, sidecar: Sidecar) -> Outcome:
        with _terminate_as_interrupt():
            try:
                self._collect(run, sidecar)
                sidecar.close()
                from audit.store.runfile import write_run

                path = write_run(run, self.results)
            except KeyboardInterrupt as exc:
                sidecar.close()
                signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
                raise RunInterrupted(
                    f"interrupted by {signal.Signals(signum).name} after "
                    f"{len(run.records)} of {len(self.cases)} cases; {self._resume_hint(sidecar)}",
                    int(signum),
                ) from None
            # a full disk, a failed write, a worker that never started ...
            except AuditError as exc:
                self._keep_or_drop(run, sidecar)
                if not run.records or isinstance(exc, UsageError):
                    raise
                raise _with_hint(exc, self._resume_hint(sidecar)) from None
        sidecar.remove()
        return Outcome(run, path, dict(collections.Counter(r["status"] for r in run.records)))

    def _keep_or_drop(self, run: Run, sidecar: Sidecar) -> None:
        """After a failure: keep a sidecar that holds records, drop one that holds nothing."""
        if run.records:
            sidecar.close()
        else:
            sidecar.remove()

    def _still_current(self, record: Mapping[str, Any]) -> bool:
        """Whether a resumed record is for a case of this catalogue, as the probe is now.

        The catalogue may have changed since the interrupted run: a record of a case that
        no longer exists would count towards "done", and one of an edited probe is stale.
        """
        case = self.cases.get(record["case_key"])
        return case is not None and record.get("probe_version") == case["probe_version"]

    def _resume_hint(self, sidecar: Sidecar) -> str:
        return (
            f"the finished cases are kept in {sidecar.path}: rerun the same command "
            f"with --resume to continue"
        )

    def _collect(self, run: Run, sidecar: Sidecar) -> None:
        done = {r["case_key"] for r in run.records}
        while len(done) < len(self.cases):
            before = len(done)
            self._one_worker(run, sidecar, done)
            if len(done) == before:
                raise AuditError(f"the worker made no progress; last output: {self._last_error}")

    def _one_worker(self, run: Run, sidecar: Sidecar, done: set) -> None:
        worker = _Worker(self.spec, sidecar.write_keys(done))
        current: Optional[str] = None
        deadline: Optional[float] = time.monotonic() + self.spec.startup_timeout  # until its header
        try:
            if self._unchecked:  # now, while the worker imports its libraries
                from audit.store.runfile import check_writable

                check_writable(self.results)
                self._unchecked = False
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    msg = worker.next(timeout)
                # the worker did not start, or the current case outlived its limit
                except queue.Empty:
                    worker.kill()
                    if current is None:
                        raise AuditError(
                            f"the worker ({self.spec.python}) did not start within "
                            f"{self.spec.startup_timeout:g} s (--startup-timeout); last output: "
                            f"{worker.stderr_tail() or 'none'}"
                        ) from None
                    self._failed(
                        run,
                        sidecar,
                        done,
                        current,
                        Status.TIMEOUT,
                        f"ran past the {self.spec.case_timeout:g} s case limit; "
                        f"last output: {worker.stderr_tail()}",
                    )
                    return
                if msg is None:  # the worker's stream ended
                    worker.proc.wait()
                    if current is not None:
                        self._failed(
                            run,
                            sidecar,
                            done,
                            current,
                            Status.CRASH,
                            f"worker {_death(worker.proc.returncode)}; "
                            f"last output: {worker.stderr_tail()}",
                        )
                    else:
                        self._last_error = (
                            f"{_death(worker.proc.returncode)}: {worker.stderr_tail()}"
                        )
                    return
                kind = msg.pop("type", None)
                if kind == "header":
                    deadline = None
                    if run.env and run.env != msg["env"]:
                        raise EnvironmentChanged(sidecar.path, changed_fields(run.env, msg["env"]))
                    run.env = run.env or msg["env"]
                    sidecar.append({"type": "header", "env": msg["env"]})
                elif kind == "start":
                    current, deadline = msg["case_key"], time.monotonic() + self.spec.case_timeout
                    worker.case_started(msg.get("output_at"))
                elif kind == "record":
                    self._accept(run, sidecar, done, msg)
                    current, deadline = None, None
                elif kind == "error":  # the worker refused the user's probes (one line)
                    raise UsageError(msg.get("message") or "the worker could not load the probes")
                # everything is here: no need to wait for its interpreter's teardown
                elif kind == "end":
                    return
        finally:
            worker.kill()

    def _accept(self, run: Run, sidecar: Sidecar, done: set, record: Dict[str, Any]) -> None:
        sidecar.append({"type": "record", **record})
        run.records.append(record)
        done.add(record["case_key"])
        self.progress(len(done), len(self.cases), record)

    def _failed(
        self,
        run: Run,
        sidecar: Sidecar,
        done: set,
        key: Optional[str],
        status: Status,
        message: str,
    ) -> None:
        if key is None or key not in self.cases:
            return
        self._accept(
            run, sidecar, done, {**self.cases[key], "status": status.value, "message": message}
        )


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
    """SIGINT and SIGTERM end a run as one interrupt (main thread only; signals need it).

    Without it SIGTERM ends the host at once: no message, and on platforms without a
    parent-death signal the worker runs on, orphaned.  After the first signal both are
    ignored until the process exits, so a second or third Ctrl-C cannot cut short the
    clean-up or replace the resume hint with a traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted = False

    def interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if not interrupted:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
