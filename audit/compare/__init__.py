"""Compare stored runs: group by case, cluster by fingerprint, attribute, classify.

A thin shell around a pure core.  :func:`compare_paths` fetches (:mod:`audit.compare.fetch`
runs the queries, through :mod:`audit.store.engine`) and the pure functions decide
(:mod:`audit.compare.grouping`, :mod:`audit.compare.verdicts`, :mod:`audit.compare.analysis`);
the data between them is named records (:mod:`audit.compare.rows`), so a comparison can be
built from rows held in memory (:func:`audit.compare.analysis.compare_rows`).  The report
modules present the :class:`~audit.compare.model.Comparison`.
"""

from __future__ import annotations

from typing import Optional, Sequence

from audit.compare.model import Comparison, Difference, Finding, Match, Stream, Verdict

__all__ = ["Comparison", "Difference", "Finding", "Match", "Stream", "Verdict", "compare_paths"]


def compare_paths(
    paths: Sequence[str], cross_device: bool = False, memory_limit: Optional[str] = None
) -> Comparison:
    """Compare every run under ``paths`` (files or directories).

    ``memory_limit`` (DuckDB's spelling, e.g. ``2GB``) bounds the query engine; beyond it
    the engine spills to a temporary folder.
    """
    from audit.compare import analysis, fetch

    with fetch.Source(paths, memory_limit) as source:
        grouped, rows, judged = analysis.fetched(source, cross_device)
    return analysis.analyse(grouped, rows, cross_device, judged)
