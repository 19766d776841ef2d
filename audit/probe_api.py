"""What probe modules use: the decorator, the seed panel, and how to say "cannot run".

A probe function takes its case's parameters as keyword arguments, imports the library
it exercises *inside* the function (so that listing the catalogue imports nothing), and
returns the output to fingerprint, or an :class:`Output` that also carries the generator
state after the draw (to catch extra or missing draws).  Worker side: standard library only.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from audit.domains import compared_with, integers, sampled_from, tuples
from audit.registry import DEFAULT_SEEDS, SEEDS, probe

__all__ = [
    "DEFAULT_SEEDS",
    "SEEDS",
    "Output",
    "Unsupported",
    "probe",
    "require",
    "require_seed_range",
    "require_attr",
    "traced",
    "untraced",
    "integers",
    "sampled_from",
    "tuples",
    "compared_with",
]


class Unsupported(Exception):
    """Raised by a probe the installed library cannot run (missing API, seed out of range).

    The one exception that makes a case ``unsupported``, besides a library under test that is
    not installed at all (numpy, torch or pandas: a ``ModuleNotFoundError`` naming it); any
    other, an ``AttributeError`` or another ``ImportError`` included, is an ``error`` (a typo is
    not a missing API).  Say what is missing with :func:`require_attr`, :func:`require` or by
    raising this.
    """


def require(condition: Any, reason: str) -> None:
    """Raise :class:`Unsupported` with ``reason`` unless ``condition`` holds: a capability
    check the probe declares (``require(torch.backends.mkldnn.is_available(), "no oneDNN")``)."""
    if not condition:
        raise Unsupported(reason)


@dataclass(frozen=True)
class Output:
    """A probe's output and the state of the generator it drew from, after the draw."""

    value: Any
    state: Any = None


def require_seed_range(seed: int, low: int, high: int, what: str) -> None:
    """Raise :class:`Unsupported` unless ``low <= seed <= high``."""
    if not low <= seed <= high:
        raise Unsupported(f"{what} takes seeds in [{low}, {high}], not {seed}")


def require_attr(obj: Any, dotted: str) -> Any:
    """``obj.a.b`` or :class:`Unsupported` naming what the installed library lacks."""
    for part in dotted.split("."):
        if not hasattr(obj, part):
            owner = getattr(obj, "__name__", type(obj).__name__)
            version = getattr(obj, "__version__", "")
            raise Unsupported(f"{owner}{' ' + version if version else ''} has no {part!r}")
        obj = getattr(obj, part)
    return obj


def _recorder() -> Any:
    """The recorder of the trace probe running now, or None (no trace, or no torch loaded)."""
    trace = sys.modules.get("audit.worker.trace")
    return trace.active() if trace is not None else None


def traced(module: Any, prefix: str = "") -> Any:
    """Name ``module`` and its submodules in the trace being recorded; returns ``module``.

    In a trace probe, ``model = traced(Net())`` makes every forward op record the path
    ``named_modules()`` gives the module it ran in (``""`` for ``module`` itself; ``prefix``
    goes before every path, to tell several roots apart).  Outside a trace it does
    nothing, so the same function runs untraced (benchmarks, your own tests).
    """
    recorder = _recorder()
    if recorder is not None:
        recorder.name_modules(module, prefix)
    return module


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """``with untraced(): ...`` runs setup unrecorded (a dataset, a model loaded from disk).

    Tensors made inside count, to the trace, as made outside it: an op that reads one
    lists that tensor's fingerprint as its input.  Outside a trace it does nothing.
    """
    recorder = _recorder()
    if recorder is None:
        yield
        return
    was, recorder.paused = recorder.paused, True
    try:
        yield
    finally:
        recorder.paused = was
