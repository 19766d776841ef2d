"""Where results live: the one place that knows what a results location is.

A location is a local path or a URL (``gs://``, ``s3://``, ``file://``, ``hdfs://`` through
pyarrow; any other scheme through fsspec, when fsspec is installed).  This module checks a
location once (empty, not UTF-8, too long, in-memory), opens its filesystem, lists run
files under it, bounds every remote operation by a timeout, and removes the leftovers of
killed writers.  Host side.

Remote operations run in a daemon thread and the caller waits at most
:func:`remote_timeout` seconds (``AUDIT_REMOTE_TIMEOUT``, default 60): a cloud client that
waits for a network that is not there must not hold a command for a quarter of an hour,
and the main thread stays free to take Ctrl-C and SIGTERM at once.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, TypeVar

from audit.errors import StoreError, UsageError, one_line

T = TypeVar("T")

TIMEOUT_ENV = "AUDIT_REMOTE_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0

#: Schemes whose files live only in this process's memory: refused as a place to write.
IN_MEMORY = ("mock", "memory")

#: Longest file name and path component the local filesystem takes (POSIX defaults).
NAME_MAX, PATH_MAX = 255, 4096

#: A hidden leftover of a killed writer, and the pid that made it (see :func:`clean_leftovers`).
_LEFTOVER = re.compile(
    r"^\.(?:.+\.parquet|compact-[\w-]+)\.(\d+)\.tmp$|^\.write-check-(\d+)-[0-9a-f]+\.tmp$"
)
# before the pid was in the name
_OLD_WRITE_CHECK = re.compile(r"^\.write-check-[0-9a-f]{32}\.tmp$")
_OLD_AGE_S = 3600.0

#: The reason a location that does not exist is skipped with.
NOT_FOUND = "no such file or directory"


@dataclass(frozen=True)
class Skipped:
    """A file that was not read, and why; reports list them by name."""

    path: str
    reason: str


def is_url(location: str) -> bool:
    """Whether ``location`` names a filesystem by scheme (``gs://bucket/x``) rather than a path."""
    return "://" in location


def scheme(location: str) -> str:
    return location.split("://", 1)[0].lower() if is_url(location) else ""


def check(location: str, what: str = "results location") -> str:
    """``location`` if it can name a place at all; a one-line usage error otherwise.

    An empty string would silently mean the current directory; a name that is not UTF-8
    (bytes from a shell) cannot be handed to pyarrow or DuckDB; a path past the OS limits
    would fail deep inside a write with a traceback.
    """
    if not location.strip():
        raise UsageError(f"the {what} is empty; give a directory or a URL")
    try:
        location.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"the {what} {shown(location)} is not valid UTF-8; rename it") from None
    if not is_url(location):
        longest = max((len(part.encode()) for part in location.split(os.sep)), default=0)
        if longest > NAME_MAX or len(os.path.abspath(location).encode()) >= PATH_MAX:
            raise UsageError(
                f"the {what} {shown(location, 80)} is longer than the OS allows "
                f"({NAME_MAX} bytes a name, {PATH_MAX} a path)"
            )
    return location


def printable(text: str) -> str:
    """A name as it can be printed: bytes that are not UTF-8 escaped (``\\xff``)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def shown(text: str, limit: int = 200) -> str:
    """A path quoted for a message, printable and at most ``limit`` characters."""
    safe = printable(text)
    return repr(safe if len(safe) <= limit else safe[:limit] + "...")


def check_persistent(location: str) -> None:
    """Refuse a filesystem that lives in memory: a run written there is lost at exit."""
    if scheme(location) in IN_MEMORY:
        raise StoreError(
            f"{location!r} is an in-memory filesystem: nothing written there outlives this "
            "command; choose a directory or a persistent URL"
        )


def filesystem(location: str) -> Tuple[Any, str]:
    """A pyarrow filesystem and the path inside it, for a local path or a URL."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    if not is_url(location):
        return pafs.LocalFileSystem(), os.path.abspath(location)
    try:
        return pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        found = _fsspec(location)
        if found is not None:
            return found
        raise StoreError(
            f"cannot open results location {location!r}: {one_line(exc, 200)}"
        ) from None


def _fsspec(location: str) -> Optional[Tuple[Any, str]]:
    """A URL of a scheme pyarrow does not know, through fsspec when it is installed."""
    try:
        import fsspec
        import pyarrow.fs as pafs
    except ImportError:
        return None
    protocol, _, rest = location.partition("://")
    if protocol not in fsspec.available_protocols():
        return None
    try:
        fs = fsspec.filesystem(protocol)
    except (ImportError, ValueError, OSError):
        return None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), rest.rstrip("/") or "/"


def join(location: str, name: str) -> str:
    """``name`` inside ``location``, spelled as the user spelled the location."""
    return f"{location.rstrip('/')}/{name}" if is_url(location) else os.path.join(location, name)


# --------------------------------------------------------------------------- timeouts


def remote_timeout() -> float:
    """Seconds a remote operation may take (``AUDIT_REMOTE_TIMEOUT``, default 60)."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e9:
        raise UsageError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds")
    return value


def in_thread(call: Callable[[], Any], name: str) -> Tuple[threading.Event, Dict[str, Any]]:
    """Start ``call()`` in a daemon thread: the event is set when it ends, and the dict then holds
    its ``"value"`` or its ``"error"`` (for the waiting thread to raise).  The main thread, only
    waiting, keeps taking SIGINT and SIGTERM at once."""
    box: Dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    return done, box


def bounded(location: str, what: str, call: Callable[[], T]) -> T:
    """``call()``, given at most :func:`remote_timeout` seconds when ``location`` is remote.

    Local work runs in place.  Remote work runs in a daemon thread: on timeout the command
    gives up with one line (the thread is abandoned and dies with the process), and the
    main thread, only waiting, takes SIGINT and SIGTERM at once.
    """
    if not is_url(location):
        return call()
    limit = remote_timeout()
    done, box = in_thread(call, f"audit-remote-{what}")
    if not done.wait(limit):
        raise StoreError(
            f"{what} {location!r} got no answer within {limit:g} s (no network, or a slow "
            f"store: set {TIMEOUT_ENV} to wait longer)"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------- listing


def run_files(locations: Iterable[str]) -> Tuple[List[str], List[Skipped]]:
    """Every ``*.parquet`` file under ``locations`` (directories searched recursively).

    Hidden names (``.partial/``, temporary files) are passed over.  A local directory is
    walked once per real path, so symlink loops end; a name that is not UTF-8 is skipped
    by itself.  A location that does not exist is reported as skipped, and so is anything
    that is not a regular file (a FIFO, a socket, a device named ``x.parquet``): opening a
    FIFO blocks until a writer comes, so only regular files are ever opened.
    """
    found: List[str] = []
    skipped: List[Skipped] = []
    seen: Set[Tuple[int, int]] = set()
    for location in locations:
        check(location, "path")
        if is_url(location):
            found.extend(_remote_files(location, skipped))
        else:
            _walk(location, found, skipped, seen)
    return list(dict.fromkeys(found)), skipped


def _walk(path: str, found: List[str], skipped: List[Skipped], seen: Set[Tuple[int, int]]) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        reason = NOT_FOUND if exc.errno == errno.ENOENT else one_line(exc, 200)
        skipped.append(Skipped(path, reason))
        return
    if not stat.S_ISDIR(info.st_mode):
        if stat.S_ISREG(info.st_mode):
            found.append(os.path.abspath(path))
        else:
            skipped.append(Skipped(os.path.abspath(path), not_regular(info.st_mode)))
        return
    if (info.st_dev, info.st_ino) in seen:  # reached again through a link: read once
        return
    seen.add((info.st_dev, info.st_ino))
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        skipped.append(Skipped(path, f"cannot list ({one_line(exc, 200)})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not _utf8(entry.name):
            skipped.append(
                Skipped(printable(entry.path), "the file name is not valid UTF-8; rename it")
            )
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            _walk(entry.path, found, skipped, seen)
        elif entry.name.endswith(".parquet"):
            try:
                mode = entry.stat().st_mode  # follows a link; never opens the file
            except OSError as exc:
                skipped.append(Skipped(os.path.abspath(entry.path), one_line(exc, 200)))
                continue
            if stat.S_ISREG(mode):
                found.append(os.path.abspath(entry.path))
            else:
                skipped.append(Skipped(os.path.abspath(entry.path), not_regular(mode)))


def not_regular(mode: int) -> str:
    """Why a path that is neither a directory nor a regular file is not read."""
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a file")
    return f"not a regular file ({kind}); only regular files are read"


def check_regular(path: str) -> None:
    """Raise StoreError unless the local ``path`` is a regular file (so opening it cannot block)."""
    if is_url(path):
        return
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise StoreError(f"{path}: unreadable ({one_line(exc, 200)})") from None
    if not stat.S_ISREG(mode):
        raise StoreError(f"{path}: {not_regular(mode)}")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _remote_files(location: str, skipped: List[Skipped]) -> List[str]:
    import pyarrow as pa
    import pyarrow.fs as pafs

    fs, root = filesystem(location)

    def listing() -> List[str]:
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            skipped.append(Skipped(location, NOT_FOUND))
            return []
        if info.type != pafs.FileType.Directory:
            return [location]
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        inner = root.strip("/")
        names = sorted(i.path.lstrip("/") for i in infos if i.type == pafs.FileType.File)
        relative = [name[len(inner) :].lstrip("/") for name in names if name.startswith(inner)]
        return [
            f"{location.rstrip('/')}/{rel}"
            for rel in relative
            if rel.endswith(".parquet") and not any(part.startswith(".") for part in rel.split("/"))
        ]

    try:
        return bounded(location, "listing", listing)
    except (OSError, pa.ArrowException) as exc:
        skipped.append(Skipped(location, f"cannot list ({one_line(exc, 200)})"))
        return []


# --------------------------------------------------------------------------- leftovers


def clean_leftovers(directory: str) -> List[str]:
    """Remove what killed writers left in a local ``directory``; return the names removed.

    Only leftovers of processes that are gone: a temporary file names its writer's pid
    (``.<name>.parquet.<pid>.tmp``, ``.write-check-<pid>-<hex>.tmp``,
    ``.compact-<month>.<pid>.tmp``), and one whose writer still runs is in use.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        if _stale(directory, name):
            try:
                os.remove(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def _stale(directory: str, name: str) -> bool:
    match = _LEFTOVER.match(name)
    if match:
        return not _alive(int(match.group(1) or match.group(2)))
    if _OLD_WRITE_CHECK.match(name):
        try:
            return time.time() - os.path.getmtime(os.path.join(directory, name)) > _OLD_AGE_S
        except OSError:
            return False
    return False


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs.  Never ``os.kill`` on Windows: there any signal but
    the console events *terminates* the process (Python calls TerminateProcess)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return _alive_windows(pid, _kernel32())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


#: Windows: the access right to ask a process its exit code, its "still running" code, and the
#: error OpenProcess gives for a process that runs but belongs to someone else.
_QUERY_LIMITED_INFORMATION, _STILL_ACTIVE, _ACCESS_DENIED = 0x1000, 259, 5


def _kernel32() -> Any:
    import ctypes

    return ctypes.WinDLL(  # type: ignore[attr-defined,unused-ignore]
        "kernel32", use_last_error=False
    )


def _alive_windows(pid: int, kernel32: Any) -> bool:
    """Whether ``pid`` runs, asked without touching it: OpenProcess, then GetExitCodeProcess."""
    import ctypes

    handle = kernel32.OpenProcess(_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:  # no such process, or one we may not query (which runs)
        return bool(kernel32.GetLastError() == _ACCESS_DENIED)
    try:
        code = ctypes.c_ulong(0)
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: a file still in use is never removed
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def leftover_name(kind: str, name: str = "") -> str:
    """The hidden temporary name this process writes for ``kind`` (cleaned if it is killed)."""
    pid = os.getpid()
    if kind == "write-check":
        return f".write-check-{pid}-{os.urandom(8).hex()}.tmp"
    return f".{name}.{pid}.tmp"
