"""Upgrade view: which cases change their stream when one field (a library version) changes.

This is what a person reads before upgrading torch: for consecutive values of the field
(in natural version order) the cases whose set of fingerprints differs, grouped by probe
with counts and difference kinds.  Other fields that also differ between the two groups of
runs are named as confounders, since a change may then be theirs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from audit.compare.attribution import natural_key, shown
from audit.compare.model import Comparison, Finding, Verdict
from audit.errors import UsageError
from audit.worker.environment import FIELDS as ENV_FIELDS


@dataclass
class Change:
    """One case whose stream changed between two values of the field."""

    finding: Finding
    before: str
    after: str


@dataclass
class ProbeChanges:
    probe: str
    before: str
    after: str
    changed: int
    compared: int
    kinds: Dict[str, int]


@dataclass
class Upgrade:
    field: str
    values: List[str]
    changes: List[Change] = dataclasses.field(default_factory=list)
    by_probe: List[ProbeChanges] = dataclasses.field(default_factory=list)
    confounders: Dict[Tuple[str, str], List[str]] = dataclasses.field(default_factory=dict)
    nondeterministic: List[Finding] = dataclasses.field(default_factory=list)


def _values_of(f: Finding, name: str, envs: List[Dict[str, Any]]) -> Dict[str, Set[str]]:
    """Field value -> the fingerprints produced under it."""
    out: Dict[str, Set[str]] = defaultdict(set)
    for stream in f.streams:
        for e in stream.env_ids:
            out[shown(envs[e].get(name))].add(stream.fingerprint)
    return out


def upgrade_view(comparison: Comparison, name: str) -> Upgrade:
    """Fill ``comparison.upgrade`` with the changes along field ``name``."""
    if name not in ENV_FIELDS:
        raise UsageError(f"--upgrade {name!r} is not an environment field; try torch_version or numpy_version")
    envs = comparison.envs
    values = sorted({shown(e.get(name)) for e in envs}, key=natural_key)
    if len(values) < 2:
        raise UsageError(f"the runs do not differ in {name} (all {values[0] if values else 'empty'}); "
                         "give runs made with at least two values")
    view = Upgrade(name, values)
    steps = list(zip(values, values[1:]))
    tally: Dict[Tuple[str, str, str], List[Any]] = {}
    for f in comparison.findings:
        if f.verdict == Verdict.NONDETERMINISTIC:
            view.nondeterministic.append(f)
            continue
        if f.verdict not in (Verdict.DIVERGENT, Verdict.IDENTICAL):
            continue
        by_value = _values_of(f, name, envs)
        for before, after in steps:
            if before not in by_value or after not in by_value:
                continue
            entry = tally.setdefault((f.probe, before, after), [0, 0, Counter()])
            entry[1] += 1
            if by_value[before] != by_value[after]:
                entry[0] += 1
                entry[2][f.difference.value if f.difference else "changed"] += 1
                view.changes.append(Change(f, before, after))
    view.by_probe = [ProbeChanges(p, b, a, n, total, dict(kinds))
                     for (p, b, a), (n, total, kinds) in sorted(tally.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    view.confounders = {step: _confounders(envs, name, *step) for step in steps}
    comparison.upgrade = view
    return view


def _confounders(envs: List[Dict[str, Any]], name: str, before: str, after: str) -> List[str]:
    """Fields (other than ``name`` and derived ids) whose values differ between the two groups."""
    groups: Dict[str, List[Dict[str, Any]]] = {before: [], after: []}
    for e in envs:
        value = shown(e.get(name))
        if value in groups:
            groups[value].append(e)
    out = []
    for other in ENV_FIELDS:
        if other in (name, "machine_id"):
            continue
        a = {shown(e.get(other)) for e in groups[before]}
        b = {shown(e.get(other)) for e in groups[after]}
        if a != b:
            out.append(other)
    return out


def changed_count(view: Optional[Upgrade]) -> int:
    return len(view.changes) if view else 0
