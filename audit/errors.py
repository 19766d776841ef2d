"""One exception tree.  A message says what was wrong and what to do next.

The CLI turns an :class:`AuditError` into one line on stderr and exit code 2 (usage
error) or the code the subclass names; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Optional


class AuditError(Exception):
    """Base of every error a person can act on."""

    exit_code = 2


class UsageError(AuditError):
    """Bad command-line input: unknown probe glob, malformed axis, bad seed."""


class RegistryError(UsageError):
    """A probe id that is unknown or registered twice."""


class DuplicateProbe(RegistryError):
    """A probe key registered twice: ``key``, and ``owner``, the module that has it already."""

    def __init__(self, key: str, owner: str) -> None:
        super().__init__(f"probe {key!r} is registered twice (first by {owner})")
        self.key, self.owner = key, owner


class StoreError(AuditError):
    """A results location that cannot be read or written."""


class SchemaError(StoreError):
    """A results file from a newer tool, or one that is not a run file at all."""


class DiskFull(StoreError):
    """No space left where a file was being written: names the place and the free space.

    ``path`` is the results location, ``free`` the bytes free there (None when unknown,
    e.g. an object store).
    """

    def __init__(self, path: str, free: Optional[int]) -> None:
        self.path = path
        self.free = free
        room = "unknown space" if free is None else f"{size(free)}"
        super().__init__(f"no space left on device writing to {path!r} ({room} free)")


def size(n: int) -> str:
    """Bytes for a person: 512 B, 3.2 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception's message on one line, at most ``limit`` characters (an ellipsis says
    it was cut): what a record, a report or a one-line error shows of it."""
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "")
