"""Disagreement rates of a sweep: per case and setting, how many executions disagreed.

A flag ("nondeterministic") says that something disagreed once; a rate says how often:
"3 of 200 executions disagreed".  Two sources, both within one setting (a combination of
the sweep's axes), counted apart because they mean different things:

- **within a process**: each run executes a case ``executions`` times (``--executions``, else
  the probe's ``repeats``); the worker counts those that disagree with the run's first;
- **between processes**: of the ``--repeat`` runs of one setting, those whose (first) result
  is not the one most runs gave.

Pure: records in, rates out (the sweep keeps its runs' records in memory).
"""

from __future__ import annotations

import collections
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple


class Rate(NamedTuple):
    label: str  # the setting
    probe_key: str
    params: str  # canonical JSON
    executions: int
    disagreements: int  # within a process, against the run's first execution
    runs: int
    runs_differing: int  # runs whose result is not the most common one

    @property
    def disagreed(self) -> bool:
        return bool(self.disagreements or self.runs_differing)

    def sentence(self) -> str:
        within = (
            f"{self.disagreements} of {self.executions} executions "
            "disagreed with their process's first"
        )
        between = (
            f"{self.runs_differing} of {self.runs} runs "
            "gave another result than the most common one"
        )
        return f"{within}; {between}" if self.runs > 1 else within


def _executions(record: Mapping[str, Any]) -> Tuple[int, int]:
    """(executions, disagreements) of one record; older workers only said whether one disagreed."""
    if "executions" in record:
        return int(record["executions"]), int(record["disagreements"])
    flag = record.get("repeat_identical")
    if flag is None:
        return 1, 0
    return 2, 0 if flag else 1


def rates(runs: Sequence[Tuple[str, Sequence[Mapping[str, Any]]]]) -> List[Rate]:
    """One rate per (setting, case) with an ``ok`` record, from ``(label, records)`` per run."""
    grouped: Dict[Tuple[str, str, str], List[Mapping[str, Any]]] = collections.defaultdict(list)
    for label, records in runs:
        for record in records:
            if record.get("status") == "ok":
                grouped[(label, str(record.get("probe_key")), str(record.get("params")))].append(
                    record
                )
    out = []
    for (label, key, params), records in grouped.items():
        counted = [_executions(r) for r in records]
        fingerprints = collections.Counter(r.get("fingerprint") for r in records)
        common = fingerprints.most_common(1)[0][1]
        out.append(
            Rate(
                label,
                key,
                params,
                sum(e for e, _ in counted),
                sum(d for _, d in counted),
                len(records),
                len(records) - common,
            )
        )
    return out


def summary(found: Sequence[Rate]) -> List[str]:
    """Lines for the sweep's output: every case that disagreed, most often first, or one line."""
    bad = sorted(
        (r for r in found if r.disagreed),
        key=lambda r: (-r.disagreements - r.runs_differing, r.probe_key),
    )
    total = sum(r.executions for r in found)
    if not bad:
        return [
            "no execution disagreed with another of its setting "
            f"({total} executions of {len(found)} case-settings)"
        ]
    lines = [f"{len(bad)} case-setting(s) disagreed with themselves:"]
    lines += [f"  {r.probe_key} {r.params} [{r.label}]: {r.sentence()}" for r in bad]
    return lines
