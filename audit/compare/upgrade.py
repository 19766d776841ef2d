"""Upgrade view: which cases change their stream when one field (a library version) changes.

This is what a person reads before upgrading torch: for consecutive values of the field
(in natural version order) the cases whose set of fingerprints differs, grouped by probe
with counts, difference kinds, the largest drift and the case parameters that separate
the changed cases from the unchanged ones.  Other fields that also differ between the two
groups of runs are named as confounders, with both sides' values, since a change may then
be theirs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from typing import Any, Dict, List, Set, Tuple

from audit.compare.attribution import DERIVED, changed_with, names, natural_key, shown
from audit.compare.judgements import drift_measures, kind_of, probe_family
from audit.compare.model import (
    Comparison,
    Confound,
    Finding,
    ProbeChanges,
    UpgradeChange,
    UpgradeView,
    Verdict,
)
from audit.compare.params import explain_params
from audit.errors import UsageError
from audit.worker.environment import FIELDS as ENV_FIELDS


def _values_of(f: Finding, name: str, envs: List[Dict[str, Any]]) -> Dict[str, Set[str]]:
    """Field value -> the streams produced under it (fingerprint and invariance result)."""
    out: Dict[str, Set[str]] = defaultdict(set)
    for stream in f.streams:
        for e in stream.env_ids:
            out[shown(envs[e].get(name))].add(stream.identity)
    return out


def upgrade_view(comparison: Comparison, name: str) -> Comparison:
    """``comparison`` with its :class:`UpgradeView`: the changes along field ``name``."""
    if name not in ENV_FIELDS:
        raise UsageError(
            f"--upgrade {name!r} is not an environment field; try torch_version or numpy_version"
        )
    envs = comparison.envs
    values = sorted({shown(e.get(name)) for e in envs}, key=natural_key)
    if len(values) < 2:
        raise UsageError(
            f"the runs do not differ in {name} (all {values[0] if values else 'empty'}); "
            "give runs made with at least two values"
        )
    steps = list(zip(values, values[1:]))
    nondeterministic: List[Finding] = []
    changes: List[UpgradeChange] = []
    compared: Dict[Tuple[str, str, str], List[Tuple[Finding, bool]]] = defaultdict(list)
    for f in comparison.findings:
        if f.verdict == Verdict.NONDETERMINISTIC:
            nondeterministic.append(f)
            continue
        if f.verdict not in (Verdict.DIVERGENT, Verdict.VARIANT, Verdict.IDENTICAL):
            continue
        by_value = _values_of(f, name, envs)
        for before, after in steps:
            if before not in by_value or after not in by_value:
                continue
            changed = by_value[before] != by_value[after]
            compared[(f.probe_key, before, after)].append((f, changed))
            if changed:
                changes.append(UpgradeChange(f, before, after))
    by_probe = sorted(
        (_probe_changes(*key, cases) for key, cases in compared.items()),
        key=lambda p: (-p.changed, p.probe, natural_key(p.before)),
    )
    confound_values = {step: _confound(envs, name, *step) for step in steps}
    view = UpgradeView(
        name,
        values,
        changes=changes,
        by_probe=by_probe,
        nondeterministic=nondeterministic,
        confound_values=confound_values,
    )
    return dataclasses.replace(comparison, upgrade=view)


def _probe_changes(
    probe: str, before: str, after: str, cases: List[Tuple[Finding, bool]]
) -> ProbeChanges:
    changed = [f for f, hit in cases if hit]
    kinds = Counter(kind_of(f) or "changed" for f in changed)
    max_ulp, rtol, atol = drift_measures(changed)
    return ProbeChanges(
        probe,
        before,
        after,
        len(changed),
        len(cases),
        dict(kinds),
        max_ulp,
        explain_params([f.case for f, _ in cases], [hit for _, hit in cases]),
        probe_family(probe, cases[0][0].device, [f for f, _ in cases]),
        rtol,
        atol,
    )


def _confound(envs: List[Dict[str, Any]], name: str, before: str, after: str) -> Confound:
    """Fields (other than ``name`` and derived ids) whose values differ between the two groups."""
    groups: Dict[str, List[Dict[str, Any]]] = {before: [], after: []}
    for e in envs:
        value = shown(e.get(name))
        if value in groups:
            groups[value].append(e)
    # every field of the runs, the entries of settings too
    others = [other for other in names(envs) if other != name and other not in DERIVED]
    return changed_with(groups[before], groups[after], others)
