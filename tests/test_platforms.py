"""Every platform-specific path has a working branch on Windows and macOS (issue 19 item 6).

The host is tested on Linux; each other platform's branch is driven here with
``sys.platform`` patched and the system call it makes replaced by a fake that records it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
import types
from typing import Any, List

import pytest

from audit.runner import processes, sidecar
from audit.store import location
from audit.worker import kernels, main
from tests.signals import process_state


def _no_kill(*args: Any) -> None:
    raise AssertionError("os.kill on Windows terminates the process it is asked about")


class _Kernel32:
    """OpenProcess / GetExitCodeProcess / CloseHandle / GetLastError of a fake Windows."""

    def __init__(self, exit_code: int = 259, open_error: int = 0) -> None:
        self.exit_code, self.open_error = exit_code, open_error
        self.closed: List[int] = []

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:  # noqa: N802 - the Win32 name
        assert access == 0x1000 and not inherit
        return 0 if self.open_error else 77

    def GetLastError(self) -> int:  # noqa: N802
        return self.open_error

    def GetExitCodeProcess(self, handle: int, ref: Any) -> int:  # noqa: N802
        ref._obj.value = self.exit_code
        return 1

    def CloseHandle(self, handle: int) -> int:  # noqa: N802
        self.closed.append(handle)
        return 1


@pytest.mark.parametrize("kernel32, alive", [(_Kernel32(259), True), (_Kernel32(0), False),
                                             (_Kernel32(open_error=87), False), (_Kernel32(open_error=5), True)])
def test_liveness_on_windows_never_calls_os_kill(monkeypatch: pytest.MonkeyPatch, kernel32: _Kernel32,
                                                  alive: bool) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", _no_kill)
    monkeypatch.setattr(location, "_kernel32", lambda: kernel32)
    assert location._alive(os.getpid() + 100000) is alive
    assert kernel32.closed == ([] if kernel32.open_error else [77])


def test_a_windows_leftover_of_a_running_writer_is_kept_and_of_a_gone_one_removed(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", _no_kill)
    (tmp_path / ".a.parquet.4242.tmp").write_bytes(b"")
    monkeypatch.setattr(location, "_kernel32", lambda: _Kernel32(259))
    assert location.clean_leftovers(str(tmp_path)) == []
    monkeypatch.setattr(location, "_kernel32", lambda: _Kernel32(1))
    assert location.clean_leftovers(str(tmp_path)) == [".a.parquet.4242.tmp"]


def test_liveness_on_posix_still_tells_a_gone_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert location._alive(os.getpid()) and not location._alive(child.pid)


def test_sidecar_lock_on_windows_uses_msvcrt(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    calls: List[Any] = []
    held = {"busy": False}

    def locking(fd: int, mode: int, size: int) -> None:
        calls.append((mode, size))
        if held["busy"]:
            raise OSError(36, "Resource deadlock avoided")

    monkeypatch.setitem(sys.modules, "msvcrt", types.SimpleNamespace(locking=locking, LK_NBLCK=2))
    monkeypatch.setattr(sys, "platform", "win32")
    with open(tmp_path / "f", "a") as f:
        sidecar.lock(f.fileno())
        held["busy"] = True
        with pytest.raises(OSError):
            sidecar.lock(f.fileno())
    assert calls == [(2, 1), (2, 1)]


def test_sidecar_lock_on_posix_refuses_a_second_holder(tmp_path: Any) -> None:
    path = tmp_path / "f"
    path.write_text("")
    with open(path, "a") as f:
        sidecar.lock(f.fileno())
        other = subprocess.run([sys.executable, "-c", "from audit.runner import sidecar; "
                                f"f = open({str(path)!r}, 'a'); sidecar.lock(f.fileno())"],
                               capture_output=True, text=True)
        assert other.returncode == 1 and "BlockingIOError" in other.stderr


def test_process_groups_on_windows_are_new_groups_killed_by_taskkill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert processes.group_options() == {"creationflags": 0x200}
    ran: List[List[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    monkeypatch.setattr(os, "killpg", _no_kill, raising=False)

    class Proc:
        pid, killed, waited = 4321, False, False

        def poll(self) -> Any:
            return None

        def kill(self) -> None:
            self.killed = True

        def wait(self) -> int:
            self.waited = True
            return 1

    proc = Proc()
    processes.kill_group(proc)  # type: ignore[arg-type]
    assert ran == [["taskkill", "/T", "/F", "/PID", "4321"]] and proc.killed and proc.waited


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX sessions")
def test_kill_group_on_posix_takes_the_grandchildren_along(tmp_path: Any) -> None:
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                             f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)"],
                            **processes.group_options())
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    processes.kill_group(proc)
    for _ in range(100):
        if not location._alive(grandchild) or _zombie(grandchild):
            break
        time.sleep(0.05)
    assert not location._alive(grandchild) or _zombie(grandchild)


def _zombie(pid: int) -> bool:
    return process_state(pid) == "Z"


def test_parent_death_signal_is_linux_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("prctl asked for off Linux")

    for platform in ("darwin", "win32"):
        monkeypatch.setattr(sys, "platform", platform)
        monkeypatch.setattr(ctypes, "CDLL", refuse)
        main.die_with_parent()  # a no-op, not an error


def test_loaded_libraries_without_proc_look_beside_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy  # noqa: F401  (a package to look beside)

    def no_proc(path: str, *args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(path)

    monkeypatch.setattr(kernels, "open", no_proc, raising=False)
    found = kernels._loaded_libraries()  # what macOS and Windows do: no /proc/self/maps
    assert any(owner == "numpy" for owner, _ in found), found  # numpy's bundled BLAS, found
    assert all(kernels._is_blas(path) for _, path in found)


def test_the_interrupt_handlers_use_signals_windows_has() -> None:
    import signal

    windows_signals = {"SIGABRT", "SIGFPE", "SIGILL", "SIGINT", "SIGSEGV", "SIGTERM", "SIGBREAK"}
    import audit.runner.supervisor as supervisor

    source = open(supervisor.__file__, encoding="utf-8").read()
    used = {name for name in dir(signal) if name.startswith("SIG") and not name.startswith("SIG_")
            and f"signal.{name}" in source and f"signal.{name}s" not in source}
    assert used <= windows_signals, used
