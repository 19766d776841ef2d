"""Settings the audited libraries take by a call, not an environment variable: one registry.

A sweep axis applied by a library call (:mod:`audit.runner.axes`, ``Apply.CALL``) reaches the
worker as ``--set NAME=VALUE``.  The worker looks each name up here and makes the call once the
libraries and probes are imported and before the environment is captured, so the recorded
environment shows whether the setting held (the axis's ``honoured`` check reads it).  A new
library-call axis is its record in ``audit/runner/axes.py`` and one :func:`library_call` entry
below; the host never imports this module (the runner names the setting, the worker makes it).

An unknown name, a malformed ``NAME=VALUE`` or a value the call refuses is a usage error: the
worker sends it as its ``error`` message and exits 2, so a run never goes on with the setting
silently left unset.  A known setting whose library this interpreter lacks is skipped: the run
records no version of that library, and the axis's check says it cannot tell.

Worker side: standard library only; each library is taken from ``sys.modules``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Sequence

from audit.errors import UsageError

#: ``(the library's module, the value as given) -> None``; ValueError for a value it refuses.
Applier = Callable[[Any, str], None]


@dataclass(frozen=True)
class LibraryCall:
    """One named setting: the library it belongs to, what it calls, and how it makes the call."""

    name: str
    library: str  # the module the call belongs to ("torch")
    meaning: str  # the call, as ``--help`` and errors name it
    apply: Applier


_REGISTRY: Dict[str, LibraryCall] = {}


def library_call(name: str, library: str, meaning: str) -> Callable[[Applier], Applier]:
    """Register ``apply`` as the setting ``name`` (a decorator); a name registered twice is an
    error."""

    def register(apply: Applier) -> Applier:
        if name in _REGISTRY:
            raise ValueError(f"library call {name!r} is registered twice")
        _REGISTRY[name] = LibraryCall(name, library, meaning, apply)
        return apply

    return register


def registered() -> Dict[str, LibraryCall]:
    """Every registered setting, by name (a copy)."""
    return dict(_REGISTRY)


def parse(texts: Sequence[str]) -> Dict[str, str]:
    """``["threads=2", ...]`` -> ``{"threads": "2"}``; UsageError for an unknown or repeated
    name."""
    out: Dict[str, str] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"--set {text!r}: expected NAME=VALUE (e.g. threads=2)")
        if name not in _REGISTRY:
            known = ", ".join(sorted(_REGISTRY))
            raise UsageError(f"--set {text!r}: unknown library setting {name!r}; known: {known}")
        if name in out:
            raise UsageError(f"--set {name} is given twice")
        out[name] = value
    return out


def apply(settings: Mapping[str, str]) -> None:
    """Make each call, in order; UsageError naming the setting when one refuses its value."""
    for name, value in settings.items():
        call = _REGISTRY[name]
        module = sys.modules.get(call.library)
        if module is None:  # not installed here: nothing to set (see the module docstring)
            continue
        try:
            call.apply(module, value)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise UsageError(f"--set {name}={value}: {call.meaning} refused it: {exc}") from None


def switch(value: str) -> bool:
    """``on`` / ``off`` as a bool; ValueError otherwise."""
    if value.lower() not in ("on", "off"):
        raise ValueError(f"{value!r} is not on or off")
    return value.lower() == "on"


def count(value: str) -> int:
    """A positive integer; ValueError otherwise."""
    n = int(value)
    if n < 1:
        raise ValueError(f"{value!r} is not a positive count")
    return n


# --------------------------------------------------------------------------- the settings


@library_call("threads", "torch", "torch.set_num_threads")
def _threads(torch: Any, value: str) -> None:
    torch.set_num_threads(count(value))


@library_call("deterministic", "torch", "torch.use_deterministic_algorithms")
def _deterministic(torch: Any, value: str) -> None:
    torch.use_deterministic_algorithms(switch(value))


@library_call("flush_denormal", "torch", "torch.set_flush_denormal")
def _flush_denormal(torch: Any, value: str) -> None:
    torch.set_flush_denormal(switch(value))  # False where the CPU cannot: the axis check says so
