"""The sidecar: a run's records, flushed one line at a time while the run goes on.

``<results>/.partial/<run_id>.jsonl`` (or a local temp folder for URL results) holds the
run's identity and settings digest, the worker's environment header and every record as
soon as it arrives.  A run killed at any moment leaves at most a torn last line; ``--resume``
finds the newest sidecar made with the same settings and continues it.

A sidecar in use is locked (``flock``; released by the kernel when its process dies, however
it dies), so concurrent ``--resume``\\ s each take a different interrupted run, and a run's
own scratch files (``<run_id>.keys``, the cases its worker skips) are removed by the next
run when their owner is gone.  A full disk is one :class:`~audit.errors.DiskFull` naming
the folder and its free space; what was written before stays.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from audit.errors import DiskFull, StoreError, UsageError
from audit.worker.records import Run


def lock(fd: int) -> None:
    """Lock an open file for this process, or raise OSError at once when another holds it.

    POSIX: ``flock`` (released when the file is closed or the process dies).  Windows:
    ``msvcrt.locking`` of the first byte, non-blocking (likewise released with the handle).
    """
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


PARTIAL_DIR = ".partial"
_TEMP_ROOT = "determinism-audit-partial"

#: Longest a record may sit in the sidecar unsynced.  Every record is flushed to the OS at
#: once (a killed process loses nothing); fsync, which only protects against the machine
#: itself going down, costs milliseconds a call and is batched.
SIDECAR_SYNC_S = 1.0


def partial_dir(results: str) -> str:
    """Where a run's sidecar lives: beside the results, or in a local temp dir for URLs."""
    from audit.store.location import is_url

    if is_url(results):
        tag = hashlib.sha256(results.encode()).hexdigest()[:12]
        return os.path.join(tempfile.gettempdir(), _TEMP_ROOT, tag)
    return os.path.join(os.path.abspath(results), PARTIAL_DIR)  # absolute: workers run elsewhere


def disk_full(exc: OSError, path: str) -> Optional[DiskFull]:
    """The :class:`DiskFull` an ENOSPC (or EDQUOT) stands for, with the free space there."""
    if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return None
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    try:
        free: Optional[int] = shutil.disk_usage(folder).free
    except OSError:
        free = None
    return DiskFull(folder, free)


class Sidecar:
    """Records flushed to ``<results>/.partial/<run_id>.jsonl`` as they are produced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Optional[Any] = None
        self._synced = 0.0

    @property
    def keys_path(self) -> str:
        """The run's scratch file listing the cases a worker skips (removed with the sidecar)."""
        return self.path[: -len(".jsonl")] + ".keys"

    @classmethod
    def create(cls, results: str, run: Run, spec: str) -> Sidecar:
        """A new, locked sidecar for ``run``; ``spec`` is the digest of the settings that made
        it."""
        directory = partial_dir(results)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise disk_full(exc, directory) or StoreError(
                f"cannot write to results directory {results!r}: {exc}"
            ) from None
        clean_leftovers(directory)
        sidecar = cls(os.path.join(directory, f"{run.run_id}.jsonl"))
        sidecar.append({"type": "run", "run_id": run.run_id, "started": run.started, "spec": spec})
        return sidecar

    def lock(self) -> bool:
        """Open and lock the sidecar for this process; False if another process holds it
        (or it cannot be opened for writing: then it is not resumable either)."""
        try:
            self._open()
        except OSError:
            return False
        return True

    def _open(self) -> None:
        """Open for appending, locked; raises OSError if another process holds the lock."""
        if self._file is not None:
            return
        handle = open(self.path, "a", encoding="utf-8")
        try:
            lock(handle.fileno())
        except OSError:
            handle.close()
            raise
        self._file = handle

    def append(self, message: Mapping[str, Any]) -> None:
        """Write one line and hand it to the OS now; fsync at most every SIDECAR_SYNC_S."""
        try:
            self._open()
            handle: Any = self._file
            handle.write(json.dumps(message) + "\n")
            handle.flush()
            if time.monotonic() - self._synced >= SIDECAR_SYNC_S:
                os.fsync(handle.fileno())
                self._synced = time.monotonic()
        except OSError as exc:
            full = disk_full(exc, self.path)
            if full is None:
                raise StoreError(
                    f"cannot write the run's sidecar {self.path!r}: {exc.strerror}"
                ) from None
            self._cut_torn_line()
            raise full from None

    def _cut_torn_line(self) -> None:
        """After a failed write: drop the half line, so the sidecar resumes cleanly."""
        try:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:  # the buffered half line cannot be written either
                    pass
                self._file = None
            self.repair()
        except OSError:
            pass

    def write_keys(self, keys: Iterable[str]) -> str:
        """The skip file for the next worker: the cases already done."""
        try:
            with open(self.keys_path, "w", encoding="utf-8") as f:
                f.write("\n".join(keys))
        except OSError as exc:
            raise disk_full(exc, self.keys_path) or StoreError(
                f"cannot write {self.keys_path!r}: {exc.strerror}"
            ) from None
        return self.keys_path

    def close(self) -> None:
        """Flush and close (the lock goes with the file)."""
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
                self._file = None
        _remove(self.keys_path)

    def repair(self) -> None:
        """Cut a torn last line (a run killed mid-write), so the next line starts clean."""
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def read(
        self,
    ) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]], List[Dict[str, Any]]]:
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
                if (
                    kind == "run"
                    and isinstance(msg.get("run_id"), str)
                    and isinstance(msg.get("started"), str)
                ):
                    run_line = msg
                elif kind == "header" and env is None and isinstance(msg.get("env"), dict):
                    env = msg["env"]
                elif (
                    kind == "record"
                    and isinstance(msg.get("case_key"), str)
                    and isinstance(msg.get("status"), str)
                ):
                    records[msg["case_key"]] = msg
        return run_line, env, list(records.values())

    def remove(self) -> None:
        """Delete the sidecar and its scratch file, and the partial folder once it is empty."""
        self.close()
        _remove(self.path)
        try:
            os.rmdir(os.path.dirname(self.path))  # only succeeds when nothing else waits there
        except OSError:
            pass
        temp_root = os.path.join(tempfile.gettempdir(), _TEMP_ROOT)
        if os.path.dirname(os.path.dirname(self.path)) == temp_root:
            try:
                os.rmdir(temp_root)
            except OSError:
                pass


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - a leftover the next run cleans
        pass


def _sidecars(directory: str) -> List[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(
        (os.path.join(directory, n) for n in names if n.endswith(".jsonl")),
        key=_mtime,
        reverse=True,
    )


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def clean_leftovers(directory: str) -> None:
    """Remove scratch files (``*.keys``) whose run is not running (its sidecar is not locked)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.endswith(".keys"):
            continue
        sidecar = Sidecar(os.path.join(directory, name[: -len(".keys")] + ".jsonl"))
        if not os.path.exists(sidecar.path):
            _remove(os.path.join(directory, name))
        elif sidecar.lock():  # nobody runs it: its worker is gone (close() removes the keys)
            sidecar.close()


def find_resumable(results: str, spec: str) -> Optional[Sidecar]:
    """The newest interrupted run under ``results`` made with the same settings (digest),
    locked for this process.  None when there is none; a usage error when every one of
    them is being resumed by another process."""
    directory = partial_dir(results)
    busy = []
    for path in _sidecars(directory):
        try:
            run_line, _, _ = Sidecar(path).read()
        except OSError:  # not a readable file (a directory, a dangling link): not ours
            continue
        if not run_line or run_line.get("spec") != spec:
            continue
        sidecar = Sidecar(path)
        if sidecar.lock():
            clean_leftovers(directory)
            return sidecar
        busy.append(path)
    if busy:
        raise UsageError(
            f"--resume: the interrupted run with these settings ({busy[0]}) is being resumed by "
            "another process; wait for it to finish"
        )
    return None
