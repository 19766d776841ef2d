"""Baseline mode: does each case of the new runs reproduce a stream the reference knows?

The nightly gate compares tonight's runs (NEW) with an accepted reference (REF).  A case
of NEW is ``known`` when every fingerprint it produced was produced by some reference run
of the same case and probe version, and the finding names which reference environments
produced it; otherwise it is a ``new-stream`` (or ``new-case`` when the reference lacks the
case or never ran it successfully, ``incomparable`` when it has it only under another probe
version).  NEW's own errors and
run-to-run nondeterminism are reported as such.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from audit.compare import compare_paths, fetch
from audit.compare.attribution import attribute, natural_key, shown
from audit.compare.grouping import Grouped, group
from audit.compare.model import Comparison, Finding, Match, Verdict
from audit.errors import UsageError
from audit.store import location
from audit.worker.records import Status

RefStreams = Dict[Tuple[str, str], Dict[str, Set[int]]]  # (case_key, version) -> fingerprint -> env ids


def compare_baseline(reference: Sequence[str], new: Sequence[str], cross_device: bool = False,
                     memory_limit: Optional[str] = None) -> Comparison:
    """Compare the runs under ``new`` against those under ``reference``.

    A reference that is missing, holds no readable run or shares no case with ``new`` is
    a usage error: a gate that compares against nothing must not pass.
    """
    for path in reference:
        if not location.is_url(location.check(path, "--baseline path")) and not os.path.exists(path):
            raise UsageError(f"--baseline {path!r} does not exist")
    with fetch.Source(reference, memory_limit) as source:
        ref_rows = source.rows()
    if not ref_rows.runs:
        why = "; ".join(f"{s.path}: {s.reason}" for s in ref_rows.skipped[:3]) or "no run files there"
        raise UsageError(f"--baseline {', '.join(reference)} holds no readable run ({why})")
    ref = group(ref_rows, cross_device)
    comparison = compare_paths(new, cross_device, memory_limit)
    streams, versions = reference_streams(ref)
    if comparison.findings and not any(f.case_key in versions for f in comparison.findings):
        raise UsageError(f"--baseline {', '.join(reference)} shares no case with {', '.join(new)}; "
                         "is it the reference for these runs?")
    for finding in comparison.findings:
        match_finding(finding, streams, versions, ref.envs)
    comparison.skipped = list(ref_rows.skipped) + list(comparison.skipped)
    comparison.notes = list(ref_rows.notes) + list(comparison.notes)
    comparison.baseline = f"{ref_rows.row_count} rows in {len(ref_rows.runs)} reference runs ({', '.join(reference)})"
    return comparison


def reference_streams(ref: Grouped) -> Tuple[RefStreams, Dict[str, Set[str]]]:
    """Every ok fingerprint of the reference per case and version, with its environments."""
    streams: RefStreams = defaultdict(lambda: defaultdict(set))
    versions: Dict[str, Set[str]] = defaultdict(set)
    for case in ref.cases:
        key, version = case.description["case_key"], case.description["probe_version"]
        versions[key].add(version)
        for o in case.outcomes:
            if o.status == Status.OK:
                streams[(key, version)][o.fingerprint or ""].add(o.env)
    return streams, versions


def match_finding(f: Finding, streams: RefStreams, versions: Dict[str, Set[str]],
                  ref_envs: List[Dict[str, Any]]) -> None:
    """Set ``f.match`` and, per stream, whether and where the reference produced it."""
    known = streams.get((f.case_key, f.probe_version), {})
    for stream in f.streams:
        stream.known = stream.fingerprint in known
        if stream.known:
            stream.reference = describe(known, stream.fingerprint, ref_envs)
    if f.verdict == Verdict.ERROR:
        f.match = Match.ERROR
    elif f.verdict == Verdict.NONDETERMINISTIC:
        f.match = Match.NONDETERMINISTIC
    elif f.case_key not in versions:
        f.match = Match.NEW_CASE
    elif not known and f.probe_version in versions[f.case_key]:
        f.match = Match.NEW_CASE  # same probe, but no reference run could run it
        f.notes.append("the reference has this case only as unsupported or failed runs: no stream to match")
    elif not known:
        f.match = Match.INCOMPARABLE
        f.notes.append(f"the reference has this case only as probe version "
                       f"{', '.join(sorted(versions[f.case_key]))}")
    else:
        f.match = Match.KNOWN if all(s.known for s in f.streams) else Match.NEW_STREAM
    if f.match == Match.NEW_STREAM:
        f.explanation = (f"{sum(not s.known for s in f.streams)} new stream(s); the reference knows "
                         + " | ".join(describe(known, fp, ref_envs) for fp in known))


def describe(known: Dict[str, Set[int]], fingerprint: str, envs: List[Dict[str, Any]]) -> str:
    """Which reference environments produced ``fingerprint``, in terms of the field that splits them."""
    if len(known) == 1:
        n = len(known[fingerprint])
        return f"the reference's only stream ({n} environment{'s' if n > 1 else ''})"
    pairs = sorted((env, fp) for fp, ids in known.items() for env in ids)
    found = attribute([envs[e] for e, _ in pairs], [fp for _, fp in pairs])
    if not found.axes:
        return f"{fingerprint[:12]} ({len(known[fingerprint])} reference environments)"
    fields = found.axes[0].split("+")
    values = sorted({"/".join(shown(envs[e].get(x)) for x in fields) for e in known[fingerprint]}, key=natural_key)
    return f"{'+'.join(fields)}={', '.join(values)}"
