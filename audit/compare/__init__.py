"""Compare stored runs: group by case, cluster by fingerprint, attribute, classify.

Pure functions over data: :func:`compare_paths` reads through :mod:`audit.store` and
returns a :class:`~audit.compare.model.Comparison`; the report modules present it.
"""

from __future__ import annotations

from typing import Sequence

from audit.compare.model import Comparison, Difference, Finding, Match, Stream, Verdict

__all__ = ["Comparison", "Difference", "Finding", "Match", "Stream", "Verdict", "compare_paths"]


def compare_paths(paths: Sequence[str], cross_device: bool = False) -> Comparison:
    """Compare every run under ``paths`` (files or directories)."""
    from audit.compare.analysis import analyse
    from audit.compare.grouping import load

    return analyse(load(paths, cross_device), cross_device)
