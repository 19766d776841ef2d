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

from collections import defaultdict
from typing import Any, Dict, List, Sequence, Set, Tuple

from audit.compare.analysis import analyse, environments
from audit.compare.attribution import attribute, natural_key, shown
from audit.compare.grouping import OK, Frame, load
from audit.compare.model import Comparison, Finding, Match, Verdict

RefStreams = Dict[Tuple[str, str], Dict[str, Set[int]]]  # (case_key, version) -> fingerprint -> env ids


def compare_baseline(reference: Sequence[str], new: Sequence[str], cross_device: bool = False) -> Comparison:
    """Compare the runs under ``new`` against those under ``reference``."""
    ref = load(reference, cross_device)
    comparison = analyse(load(new, cross_device), cross_device)
    streams, versions = reference_streams(ref)
    ref_envs = environments(ref)
    for finding in comparison.findings:
        match_finding(finding, streams, versions, ref_envs)
    comparison.skipped = list(ref.skipped) + list(comparison.skipped)
    comparison.baseline = f"{ref.rows} rows in {len(ref.runs)} reference runs ({', '.join(reference)})"
    return comparison


def reference_streams(ref: Frame) -> Tuple[RefStreams, Dict[str, Set[str]]]:
    """Every ok fingerprint of the reference per case and version, with its environments."""
    ok = ref.outcomes[ref.outcomes["status"] == OK]
    keys = ref.cases["case_key"].tolist()
    case_versions = ref.cases["probe_version"].tolist()
    streams: RefStreams = defaultdict(lambda: defaultdict(set))
    versions: Dict[str, Set[str]] = defaultdict(set)
    for case in ref.outcomes["case"].unique().tolist():
        versions[keys[case]].add(case_versions[case])
    for case, env, fp in zip(ok["case"].tolist(), ok["env"].tolist(), ok["fp"].tolist()):
        streams[(keys[case], case_versions[case])][str(ref.fingerprints[fp])].add(env)
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
