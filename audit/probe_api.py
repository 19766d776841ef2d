"""What probe modules use: the decorator, the seed panel, and how to say "cannot run".

A probe function takes its case's parameters as keyword arguments, imports the library
it exercises *inside* the function (so that listing the catalogue imports nothing), and
returns the output to fingerprint, or an :class:`Output` that also carries the generator
state after the draw (to catch extra or missing draws).  Worker side: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.registry import DEFAULT_SEEDS, SEEDS, probe

__all__ = ["DEFAULT_SEEDS", "SEEDS", "Output", "Unsupported", "probe", "require_seed_range", "require_attr"]


class Unsupported(Exception):
    """Raised by a probe the installed library cannot run (missing API, seed out of range)."""


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
