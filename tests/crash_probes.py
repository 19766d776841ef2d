"""Test-only probes that really crash, really hang or run slowly.

Loaded only by tests, through ``RunSpec(modules=["tests.crash_probes"])`` or
``python -m audit run --probes-from tests.crash_probes``: the worker imports this module with
the repository root on ``PYTHONPATH`` and as its working directory.  Each probe that dies
first prints a line, so tests can check that the last output reaches the ``crash`` record.
Nothing here may run in the host process: every probe body is only called by a worker.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import List

from audit.probe_api import probe

#: Marker printed by every probe before it dies, checked in the crash records.
LAST_WORDS = "last words of"

#: How long a ``tests.slow.sleep`` case takes (interrupt tests kill a run mid-way).
SLOW_CASE_S = float(os.environ.get("AUDIT_TEST_SLOW_CASE_S", "0.3"))


def _in_a_worker() -> bool:
    """Whether this module is being imported by a worker that runs cases (not by the host,
    and not by a worker that only lists them)."""
    return sys.argv[0].endswith(os.path.join("worker", "__main__.py")) and "--plan" not in sys.argv


if os.environ.get("AUDIT_TEST_WORKER_DIES_AT_START") and _in_a_worker():
    os._exit(3)  # a worker that dies before its first case (a test of the resume hint)


def _say(what: str) -> None:
    print(f"{LAST_WORDS} {what}", flush=True)  # fd 1 is stderr inside the worker
    sys.stderr.flush()


@probe("tests.crash.ok", grid={"seed": [1, 2]})
def ok(seed: int) -> List[float]:
    """A case that always works: the run must reach it after every crash."""
    return [float(seed), float(seed) / 3]


@probe("tests.crash.segfault", grid={"seed": [0]})
def segfault(seed: int) -> bytes:
    """Reads address 0: SIGSEGV."""
    import ctypes

    _say("segfault")
    return ctypes.string_at(0)


@probe("tests.crash.abort", grid={"seed": [0]})
def abort(seed: int) -> None:
    """os.abort(): SIGABRT, as a failed C assertion would."""
    _say("abort")
    os.abort()


@probe("tests.crash.sigkill", grid={"seed": [0]})
def sigkill(seed: int) -> None:
    """SIGKILL, as the kernel's out-of-memory killer sends it."""
    _say("sigkill")
    os.kill(os.getpid(), signal.SIGKILL)


@probe("tests.crash.exit", grid={"seed": [0]})
def hard_exit(seed: int) -> None:
    """os._exit(3): a library that quits the process without a signal."""
    _say("exit")
    os._exit(3)


@probe("tests.crash.oom", grid={"seed": [0]})
def out_of_memory(seed: int) -> bytearray:
    """Caps the address space just above what the process uses, then allocates past it.

    The cap is left in place, as a process really short of memory stays short: the
    worker must not run the next case in this poisoned process.
    """
    import resource

    _say("oom")
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    used = pages * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + 64 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return bytearray(2**31)


@probe("tests.crash.after_oom", grid={"seed": [0]})
def after_oom(seed: int) -> int:
    """Fails when an earlier case's memory cap leaked into this one's process."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        raise RuntimeError(f"address space still capped at {soft} bytes by an earlier case")
    return seed


@probe("tests.crash.spin", grid={"seed": [0]})
def spin(seed: int) -> None:
    """A busy loop that never yields: only a kill from outside ends it."""
    _say("spin")
    while True:
        pass


@probe("tests.crash.orphan", grid={"seed": [0]})
def orphan(seed: int) -> None:
    """Starts a long-lived child process, then hangs (sleeps): the kill must take the child too.

    The child's pid goes to the file named by ``AUDIT_TEST_PID_FILE``, for the test to check.
    """
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["AUDIT_TEST_PID_FILE"], "w") as f:
        f.write(str(child.pid))
    _say("orphan")
    time.sleep(3600)


@probe("tests.slow.sleep", grid={"seed": list(range(20))})
def slow(seed: int) -> int:
    """A slow but well-behaved case, so a test can interrupt a run mid-way.

    Each execution appends ``<worker pid> <seed>`` to the file named by ``AUDIT_TEST_LOG``
    (when set): tests count what ran, and check that no worker outlives its host.
    """
    log = os.environ.get("AUDIT_TEST_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {seed}\n")
    time.sleep(SLOW_CASE_S)
    return seed
