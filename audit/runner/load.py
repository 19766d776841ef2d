"""The ``load`` axis: run a combination while other processes keep every core busy.

Intermittent nondeterminism (a reduction whose split follows which threads are free, a race
in a kernel) shows under contention and hides on an idle machine.  :func:`busy` starts one
spinning process per core for the duration of a ``with`` block and always ends them: on
leaving the block (Ctrl-C and errors included), and, on Linux, when the host itself dies
(each sets PR_SET_PDEATHSIG), so no spinner outlives the sweep that started it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Iterator, List, Optional

#: In every spinner's command line, with the host's pid after it: how tests find them.
MARK = "audit-busy-load"

_SPIN = """
import sys
if sys.platform.startswith("linux"):
    import ctypes, signal
    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # die with the host
    except (OSError, AttributeError):
        pass
while True:
    pass
"""


@dataclass
class Load:
    """The spinners of one busy block."""

    processes: List[subprocess.Popen] = field(default_factory=list)

    @property
    def pids(self) -> List[int]:
        return [p.pid for p in self.processes]

    def check(self) -> Optional[str]:
        """Why the load was not what was asked (a spinner ended early), or None."""
        ended = [p for p in self.processes if p.poll() is not None]
        if ended:
            return f"{len(ended)} of {len(self.processes)} busy processes ended before the run did"
        return None


def cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def busy(count: Optional[int] = None) -> Iterator[Load]:
    """Keep ``count`` (default: every core) spinning processes running inside the block."""
    load = Load()
    try:
        for _ in range(count or cores()):
            load.processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", _SPIN, MARK, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield load
    finally:
        for process in load.processes:
            process.kill()
        for process in load.processes:
            process.wait()


@contextlib.contextmanager
def applied(value: Optional[str]) -> Iterator[Optional[Load]]:
    """The block under the load ``value`` names: ``busy``, or ``idle``/None (nothing started)."""
    if value != "busy":
        yield None
        return
    with busy() as load:
        yield load
