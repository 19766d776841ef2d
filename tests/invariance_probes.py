"""Test-only invariance probes: one that holds, one that breaks on purpose, one that forks.

Loaded by tests through ``RunSpec(modules=["tests.invariance_probes"])`` (the worker imports
it) or by importing it inside an isolated registry.  Nothing here is part of the catalogue.
"""

from __future__ import annotations

import os
from typing import List

from audit.probe_api import probe

#: Values every toy compares; the first is the reference.
CHUNKS = [6, 1, 2, 3, 4]


@probe("tests.invariance.holds", grid={"seed": [5], "chunks": [CHUNKS]}, invariance="chunks")
def holds(seed: int, chunks: int) -> List[float]:
    """Integers drawn in chunks of any length and concatenated: always the same list."""
    values = [float(seed * 10 + i) for i in range(6)]
    return [v for start in range(0, 6, chunks) for v in values[start:start + chunks]]


@probe("tests.invariance.breaks", grid={"seed": [5], "chunks": [CHUNKS]}, invariance="chunks")
def breaks(seed: int, chunks: int) -> List[float]:
    """A result that depends on the chunk length below 3: lengths 1 and 2 differ from 6."""
    return [float(seed), float(min(chunks, 3))]


@probe("tests.invariance.forks", grid={"seed": [0], "chunks": [[1, 2]]}, invariance="chunks")
def forks(seed: int, chunks: int) -> List[float]:
    """A forked child writes a protocol-looking line to every descriptor it has: none may reach
    the host.  Run only by a worker (``RunSpec(modules=...)``), never in the test process."""
    pid = os.fork()
    if pid == 0:  # the child
        line = b'{"type": "end", "cases": 0}\n'
        for fd in range(1, 64):
            try:
                os.write(fd, line)
            except OSError:
                pass
        os._exit(0)
    os.waitpid(pid, 0)
    return [float(seed)]
