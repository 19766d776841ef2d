"""The sidecar: a run's records, flushed one line at a time while the run goes on.

``<results>/.partial/<run_id>.jsonl`` (or a local temp folder for URL results) holds the
run's identity and settings digest, the worker's environment header and every record as
soon as it arrives.  A run killed at any moment leaves at most a torn last line; ``--resume``
finds the newest sidecar made with the same settings and continues it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from audit.errors import StoreError
from audit.worker.records import Run

PARTIAL_DIR = ".partial"

#: Longest a record may sit in the sidecar unsynced.  Every record is flushed to the OS at
#: once (a killed process loses nothing); fsync, which only protects against the machine
#: itself going down, costs milliseconds a call and is batched.
SIDECAR_SYNC_S = 1.0


def partial_dir(results: str) -> str:
    """Where a run's sidecar lives: beside the results, or in a local temp dir for URLs."""
    from audit.store.location import is_url

    if is_url(results):
        tag = hashlib.sha256(results.encode()).hexdigest()[:12]
        return os.path.join(tempfile.gettempdir(), "determinism-audit-partial", tag)
    return os.path.join(results, PARTIAL_DIR)


class Sidecar:
    """Records flushed to ``<results>/.partial/<run_id>.jsonl`` as they are produced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Optional[Any] = None
        self._synced = 0.0

    @classmethod
    def create(cls, results: str, run: Run, spec: str) -> Sidecar:
        """A new sidecar for ``run``; ``spec`` is the digest of the settings that made it."""
        directory = partial_dir(results)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot write to results directory {results!r}: {exc}") from None
        sidecar = cls(os.path.join(directory, f"{run.run_id}.jsonl"))
        sidecar.append({"type": "run", "run_id": run.run_id, "started": run.started, "spec": spec})
        return sidecar

    def append(self, message: Mapping[str, Any]) -> None:
        """Write one line and hand it to the OS now; fsync at most every SIDECAR_SYNC_S."""
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(message) + "\n")
        self._file.flush()
        if time.monotonic() - self._synced >= SIDECAR_SYNC_S:
            os.fsync(self._file.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def repair(self) -> None:
        """Cut a torn last line (a run killed mid-write), so the next line starts clean."""
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def read(self) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]], List[Dict[str, Any]]]:
        """(run line, header env, records); a torn last line (killed mid-write) is ignored.

        Lines that are not what this code writes (garbage, or another tool's) are skipped:
        a sidecar is resumed, never trusted to be well formed.
        """
        run_line, env, records = None, None, {}
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                kind = msg.pop("type", None)
                if kind == "run" and isinstance(msg.get("run_id"), str) and isinstance(msg.get("started"), str):
                    run_line = msg
                elif kind == "header" and env is None and isinstance(msg.get("env"), dict):
                    env = msg["env"]
                elif kind == "record" and isinstance(msg.get("case_key"), str) and isinstance(msg.get("status"), str):
                    records[msg["case_key"]] = msg
        return run_line, env, list(records.values())

    def remove(self) -> None:
        self.close()
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def find_resumable(results: str, spec: str) -> Optional[Sidecar]:
    """The newest interrupted run under ``results`` made with the same settings (digest)."""
    directory = partial_dir(results)
    if not os.path.isdir(directory):
        return None
    candidates = sorted((os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".jsonl")),
                        key=os.path.getmtime, reverse=True)
    for path in candidates:
        try:
            run_line, _, _ = Sidecar(path).read()
        except OSError:  # not a readable file (a directory, a dangling link): not ours
            continue
        if run_line and run_line.get("spec") == spec:
            return Sidecar(path)
    return None
