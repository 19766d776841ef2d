"""Child processes the host starts, on every platform: a group of their own, and killing it.

POSIX: the child leads a new session (``start_new_session``), so a Ctrl-C at the terminal
reaches the host only, and ``os.killpg`` with SIGKILL reaches whatever the child started
too.  Windows has neither sessions nor SIGKILL: the child gets a new process group
(``CREATE_NEW_PROCESS_GROUP``, which also keeps the console's Ctrl-C from it), and its tree
is ended by ``taskkill /T /F``, the system's own tool.  Host side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, Dict

#: taskkill's own limit, then the process alone is killed.
_TASKKILL_S = 10.0


def group_options() -> Dict[str, Any]:
    """Popen keyword arguments that put the child in a group of its own."""
    if sys.platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` and every process in its group (what it started), then reap it."""
    if sys.platform == "win32":
        try:
            subprocess.run(
                ["taskkill", "/T", "/F", "/PID", str(proc.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=_TASKKILL_S,
            )
        except (OSError, subprocess.SubprocessError):
            pass
        if proc.poll() is None:
            proc.kill()
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            if proc.poll() is None:
                proc.kill()
    proc.wait()
