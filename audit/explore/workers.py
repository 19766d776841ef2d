"""Persistent workers for ``explore``: one ``python -m audit.worker --serve`` per setting.

A worker is started with the sweep's own translation of a setting into a run spec
(:func:`audit.runner.sweep.spec_for`) and the runner's command line and environment
(:func:`audit.runner.launch.worker_command`,
:func:`~audit.runner.launch.worker_environment`), so an axis means here exactly what it
means to ``sweep``.  A worker that dies, hangs past the case limit or stops after an
out-of-memory case is killed and started again for the next request; the request that hit it
is answered with a ``crash`` or ``timeout`` record.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, Optional

from audit.errors import AuditError, UsageError
from audit.runner.launch import SOURCE_ROOT, worker_command, worker_environment
from audit.runner.processes import group_options, kill_group
from audit.runner.spec import RunSpec


class ServeWorker:
    """One persistent worker: send a request, wait for its answer."""

    def __init__(self, spec: RunSpec, label: str) -> None:
        self.spec = spec
        self.label = label
        self.proc: Optional[subprocess.Popen] = None
        self.messages: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()
        self.stderr = tempfile.TemporaryFile()
        self.starts = 0
        self._next_id = 0

    def start(self) -> Dict[str, Any]:
        """Start the process and wait for its header; the environment it recorded."""
        self.launch()
        return self.header()

    def launch(self) -> None:
        """Start the process (from the main thread: a worker dies with the thread that started it,
        PR_SET_PDEATHSIG)."""
        self.messages = queue.Queue()
        self.proc = subprocess.Popen(
            [*worker_command(self.spec, None), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=worker_environment(self.spec),
            cwd=SOURCE_ROOT,
            **group_options(),
        )
        self.starts += 1
        threading.Thread(target=self._read, args=(self.proc, self.messages), daemon=True).start()

    def header(self) -> Dict[str, Any]:
        """Wait for the launched worker's header; the environment it recorded."""
        header = self._wait(self.spec.startup_timeout)
        if header is None or header.get("type") != "header":
            self.close()
            if header is not None and header.get("type") == "error":
                raise UsageError(str(header.get("message")))
            raise AuditError(
                f"the worker for {self.label} did not start: {self.tail() or 'no output'}"
            )
        return header["env"]

    @staticmethod
    def _read(proc: subprocess.Popen, messages: queue.Queue[Optional[Dict[str, Any]]]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                messages.put(json.loads(raw))
            except json.JSONDecodeError:
                continue
        messages.put(None)

    def _wait(self, timeout: float) -> Optional[Dict[str, Any]]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return {"type": "timeout"}

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        """Send one request and return its answer; a dead or hung worker answers
        ``{"type": "crash" | "timeout", "message": ...}`` and is restarted next time."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self._next_id += 1
        message = {**message, "id": self._next_id}
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: the reader sees the end of its stream
        limit = self.spec.case_timeout
        deadline = time.monotonic() + limit
        while True:
            answer = self._wait(max(0.0, deadline - time.monotonic()))
            if answer is None:
                self.close()
                return {"type": "crash", "message": f"the worker died; last output: {self.tail()}"}
            if answer.get("type") == "timeout":
                self.close()
                return {"type": "timeout", "message": f"ran past the {limit:g} s case limit"}
            if answer.get("id") == self._next_id:
                if answer.get("poisoned"):
                    self.close()
                return answer

    def tail(self, limit: int = 600) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - limit))
        return " ".join(self.stderr.read().decode("utf-8", "replace").split())

    def close(self) -> None:
        """End the worker and everything its probes started."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        kill_group(proc)
