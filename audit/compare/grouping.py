"""From outcomes to cases: which probe version is compared, what a case is, its environments.

Pure functions of :class:`~audit.compare.rows.Rows`.  Cases are keyed by ``case_key``
(probe key, device, canonical params).  Of several probe versions of one case key only
the newest (the version of the latest run) is compared; the others are noted.  With
``cross_device`` a case is keyed by probe id and params instead, and ``device`` becomes an
environment field, so a CPU and a CUDA stream of the same case are compared.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from audit.compare.attribution import shown
from audit.compare.rows import CaseRow, Outcome, Rows


@dataclass
class ComparedCase:
    """One compared case: its description and the outcomes of its compared version."""

    description: Dict[str, Any]  # probe, probe_key, case_key, case, device, probe_version
    outcomes: List[Outcome]  # env is an index into Grouped.envs
    notes: List[str] = field(default_factory=list)


@dataclass
class Grouped:
    """The cases of one comparison, and the environments their outcomes point into."""

    cases: List[ComparedCase]
    envs: List[Dict[str, Any]]


def group(rows: Rows, cross_device: bool = False) -> Grouped:
    """Cases of ``rows``, each at its newest probe version (see the module doc)."""
    by_key: Dict[str, List[Outcome]] = defaultdict(list)
    for outcome in rows.outcomes:
        if outcome.case_key is not None:
            by_key[outcome.case_key].append(outcome)
    compared: Dict[str, Tuple[str, List[Outcome], List[str]]] = {}
    for key, outcomes in by_key.items():
        version, notes = newest_version(outcomes)
        compared[key] = (version, [o for o in outcomes if o.probe_version == version], notes)
    if not cross_device:
        cases = [
            ComparedCase(
                _description(key, version, rows.cases.get((key, version))), outcomes, notes
            )
            for key, (version, outcomes, notes) in compared.items()
        ]
        return Grouped(cases, [dict(e) for e in rows.envs])
    return _cross_device(compared, rows)


def newest_version(outcomes: List[Outcome]) -> Tuple[str, List[str]]:
    """The probe version of the latest run among ``outcomes``, and a note if others were set
    aside."""
    latest: Dict[str, int] = {}
    counts: Dict[str, int] = defaultdict(int)
    first: Dict[str, int] = {}
    for o in outcomes:
        latest[o.probe_version] = max(latest.get(o.probe_version, -1), o.last_run)
        first[o.probe_version] = min(first.get(o.probe_version, o.first_run), o.first_run)
        counts[o.probe_version] += o.rows
    chosen = max(latest, key=lambda v: (latest[v], -first[v]))
    if len(latest) == 1:
        return chosen, []
    old = [f"{v} ({counts[v]} rows)" for v in sorted(latest, key=lambda v: first[v]) if v != chosen]
    return chosen, [f"probe version {chosen} compared; older versions set aside: {', '.join(old)}"]


def _description(key: str, version: str, row: Optional[CaseRow]) -> Dict[str, Any]:
    row = row or CaseRow(None, None, None, None)
    try:
        case = json.loads(row.params) if row.params else {}
    except (TypeError, ValueError):
        case = {"params": row.params}
    if not isinstance(case, dict):
        case = {"params": row.params}
    return {
        "probe": shown(row.probe),
        "probe_key": shown(row.probe_key),
        "case_key": shown(key),
        "case": case,
        "device": shown(row.device),
        "probe_version": shown(version),
        "kind": row.kind,
        "invariance": row.invariance,
        "family": row.family,
    }


def _cross_device(compared: Dict[str, Tuple[str, List[Outcome], List[str]]], rows: Rows) -> Grouped:
    """One case per (probe, params); each (environment, device) pair becomes an environment."""
    members: Dict[Tuple[Any, Any], List[str]] = defaultdict(list)
    for key, (version, _, _) in compared.items():
        row = rows.cases.get((key, version)) or CaseRow(None, None, None, None)
        members[(row.probe or "", row.params or "")].append(key)
    pairs: Dict[Tuple[int, Optional[str]], int] = {}
    envs: List[Dict[str, Any]] = []
    cases = []
    for keys in members.values():
        # described as its first-seen key (the CPU one)
        keys.sort(key=lambda k: _first_seen(k, compared, rows))
        rows_of = [
            rows.cases.get((k, compared[k][0])) or CaseRow(None, None, None, None) for k in keys
        ]
        description = _description(keys[0], compared[keys[0]][0], rows_of[0])
        description["device"] = "+".join(
            sorted({r.device for r in rows_of if r.device is not None})
        )
        description["probe_version"] = "+".join(sorted({compared[k][0] for k in keys}))
        outcomes, notes = [], []
        for key, row in zip(keys, rows_of):
            for o in compared[key][1]:
                pair = (o.env, row.device)
                if pair not in pairs:
                    pairs[pair] = len(envs)
                    envs.append({**rows.envs[o.env], "device": row.device})
                outcomes.append(o._replace(env=pairs[pair]))
            notes.extend(compared[key][2])
        cases.append(ComparedCase(description, outcomes, notes))
    return Grouped(cases, envs)


def _first_seen(
    key: str, compared: Dict[str, Tuple[str, List[Outcome], List[str]]], rows: Rows
) -> Tuple[Any, ...]:
    row = rows.cases.get((key, compared[key][0])) or CaseRow(None, None, None, None)
    return min((o.first_run for o in compared[key][1]), default=0), row.device or "", key
