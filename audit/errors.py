"""One exception tree.  A message says what was wrong and what to do next.

The CLI turns an :class:`AuditError` into one line on stderr and exit code 2 (usage
error) or the code the subclass names; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception's message on one line, at most ``limit`` characters (an ellipsis says
    it was cut): what a record, a report or a one-line error shows of it."""
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "")
