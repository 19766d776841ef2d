"""Findings from grouped data: verdict, streams, attribution and difference of every case.

The verdicts come vectorised from :mod:`audit.compare.verdicts`; this module then walks
the cases (hundreds, not millions of rows) to describe each one, reading samples and
error messages only for the few rows it shows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Dict, List, Sequence, Tuple, cast

import pandas as pd

from audit.compare import difference
from audit.compare.attribution import attribute, natural_key, shown
from audit.compare.grouping import FAILED, OK, UNSUPPORTED, Frame
from audit.compare.model import Comparison, Finding, Stream, Verdict
from audit.compare.verdicts import case_summary, verdicts

MAX_RUNS = 100  # run ids listed per stream
MAX_MESSAGES = 3  # error messages kept per finding
MAX_DETAILED = 20  # streams of a divergent case whose samples are read (the most common ones)

Outcome = Tuple[int, int, int, bool, int, int]  # env, status, fp, rep_false, n, first


def analyse(frame: Frame, cross_device: bool = False) -> Comparison:
    """Every case of ``frame`` as a finding (or as unsupported everywhere)."""
    summary = case_summary(frame.outcomes)
    verdict = verdicts(summary, frame.notes)
    per_case = _outcomes_by_case(frame.outcomes)
    wanted = {c: _positions(v, per_case[c]) for c in summary.index if (v := verdict[c]) is not None}
    details = difference.fetch(list(frame.runs["path"]), [p for ps in wanted.values() for p in ps])
    envs = environments(frame)
    run_ids = frame.runs["run_id"].tolist()
    exact = frame.runs_of([c for c, v in verdict.items() if v not in (None, Verdict.IDENTICAL)])
    findings, unsupported = [], []
    codes: Dict[str, int] = {}
    for case in summary.index:
        description = _describe(frame.cases.iloc[case])
        case_verdict = verdict[case]
        if case_verdict is None:
            unsupported.append({**description, "runs": _count(summary, case, "unsupported")})
            continue
        finding = Finding(**description, verdict=case_verdict, runs=_count(summary, case, "rows"),
                          unsupported_runs=_count(summary, case, "unsupported"),
                          notes=list(frame.notes.get(case, [])))
        _fill(finding, per_case[case], envs, run_ids, frame, details)
        if finding.verdict != Verdict.IDENTICAL:
            codes = codes or {str(fp): i for i, fp in enumerate(frame.fingerprints)}
            for stream in finding.streams:
                got = exact.get((case, codes.get(stream.fingerprint, -1)))
                stream.runs = sorted({run_ids[r] for r in got})[:MAX_RUNS] if got else stream.runs
        findings.append(finding)
    findings.sort(key=_order)
    return Comparison(findings, unsupported, frame.rows, len(frame.runs), list(frame.skipped), cross_device,
                      envs=envs)


def _order(f: Finding) -> Tuple[Any, ...]:
    return (list(Verdict).index(f.verdict), f.probe, f.device, f.probe_key, natural_key(json.dumps(f.case)))


def _outcomes_by_case(outcomes: pd.DataFrame) -> Dict[int, List[Outcome]]:
    out: Dict[int, List[Outcome]] = defaultdict(list)
    cols = [outcomes[c].tolist() for c in ("case", "env", "status", "fp", "rep_false", "n", "first")]
    for case, *rest in zip(*cols):
        out[case].append(tuple(rest))  # type: ignore[arg-type]
    return out


def _pos(first: int) -> Tuple[int, int]:
    return first >> 32, first & 0xFFFFFFFF


def _count(summary: Any, case: int, column: str) -> int:
    return int(cast(Any, summary.at[case, column]))


def environments(frame: Frame) -> List[Dict[str, Any]]:
    """One dict of environment fields per distinct environment of ``frame``."""
    return cast(List[Dict[str, Any]], frame.envs.to_dict("records"))


def _positions(verdict: Verdict, outcomes: List[Outcome]) -> List[Tuple[int, int]]:
    """Rows whose details a finding shows: one per stream of a divergent case, failed rows' messages."""
    if verdict == Verdict.ERROR:
        return [_pos(f) for f in sorted(o[5] for o in outcomes if o[1] in FAILED)[:MAX_MESSAGES]]
    if verdict != Verdict.DIVERGENT:
        return []
    firsts: Dict[int, int] = {}
    counts: Dict[int, int] = defaultdict(int)
    for _, status, fp, _, n, first in outcomes:
        if status == OK:
            firsts[fp] = min(first, firsts.get(fp, first))
            counts[fp] += n
    common = sorted(firsts, key=lambda fp: (-counts[fp], fp))[:MAX_DETAILED]
    return [_pos(firsts[fp]) for fp in common]


def _describe(row: pd.Series) -> Dict[str, Any]:
    try:
        case = json.loads(row["params"]) if row["params"] else {}
    except (TypeError, ValueError):
        case = {"params": row["params"]}
    return {"probe": shown(row["probe"]), "probe_key": shown(row["probe_key"]), "case_key": shown(row["case_key"]),
            "case": case,
            "device": shown(row["device"]), "probe_version": shown(row["probe_version"])}


def _fill(finding: Finding, outcomes: List[Outcome], envs: List[Dict[str, Any]], run_ids: List[str],
          frame: Frame, details: Dict[Tuple[int, int], difference.Detail]) -> None:
    """Streams, attribution, difference, messages and notes of one case."""
    ok = [o for o in outcomes if o[1] == OK]
    fields = _varying([envs[o[0]] for o in ok])
    finding.streams = _streams(ok, envs, run_ids, frame, fields, details)
    if finding.verdict == Verdict.DIVERGENT:
        pairs = sorted({(o[0], o[2]) for o in ok})
        found = attribute([envs[e] for e, _ in pairs], [fp for _, fp in pairs])
        finding.axes, finding.explanation = found.axes, found.explanation
        _difference(finding, ok, details)
    elif finding.verdict == Verdict.NONDETERMINISTIC:
        finding.explanation = _nondeterminism(ok)
    elif finding.verdict == Verdict.ERROR:
        failed = sorted(o[5] for o in outcomes if o[1] in FAILED)[:MAX_MESSAGES]
        finding.messages = [m for m in (details[_pos(f)].message for f in failed if _pos(f) in details) if m]
        finding.explanation = f"{sum(o[4] for o in outcomes if o[1] in FAILED)} of {finding.runs} runs failed"
    elif finding.verdict == Verdict.INCOMPARABLE:
        finding.explanation = "the probe changed; no earlier run of this probe version to compare with"
    if finding.unsupported_runs:
        finding.notes.append(_unsupported_note(outcomes, envs))


def _varying(envs: Sequence[Dict[str, Any]]) -> List[str]:
    if not envs:
        return []
    return [f for f in envs[0] if len({e.get(f) for e in envs}) > 1]


def _streams(ok: List[Outcome], envs: List[Dict[str, Any]], run_ids: List[str], frame: Frame, fields: List[str],
             details: Dict[Tuple[int, int], difference.Detail]) -> List[Stream]:
    grouped: Dict[int, List[Outcome]] = defaultdict(list)
    for o in ok:
        grouped[o[2]].append(o)
    streams = []
    for fp, group in grouped.items():
        runs = sorted({run_ids[f >> 32] for *_, f in group})[:MAX_RUNS]
        environment = {f: sorted({shown(envs[o[0]].get(f)) for o in group}, key=natural_key) for f in fields}
        detail = details.get(_pos(min(o[5] for o in group)))
        streams.append(Stream(str(frame.fingerprints[fp]) if fp >= 0 else "", sum(o[4] for o in group), runs,
                              environment, detail.dtype if detail else None, detail.shape if detail else None,
                              env_ids=sorted({o[0] for o in group})))
    streams.sort(key=lambda s: (-s.run_count, s.fingerprint))
    return streams


def _difference(finding: Finding, ok: List[Outcome], details: Dict[Tuple[int, int], difference.Detail]) -> None:
    """Measure every stream against the most common one, from one stored row of each."""
    rep: Dict[int, int] = {}
    for _, _, fp, _, _, first in ok:
        rep[fp] = min(first, rep.get(fp, first))
    reference_fp = _fp_code(ok)
    reference = details.get(_pos(rep[reference_fp]))
    others = [d for d in (details.get(_pos(first)) for fp, first in rep.items() if fp != reference_fp) if d]
    if reference is None or not others:
        return
    kind, distance = difference.classify(reference, others)
    finding.difference = kind
    if distance is not None:
        finding.max_ulp, finding.fraction_differing = distance
        if distance[1] == 0:
            finding.notes.append("the sampled elements agree bit for bit; the streams differ elsewhere")


def _fp_code(ok: List[Outcome]) -> int:
    """The code of the most common stream (the reference the others are measured against)."""
    counts: Dict[int, int] = defaultdict(int)
    for _, _, fp, _, n, _ in ok:
        counts[fp] += n
    return max(counts, key=lambda fp: (counts[fp], -fp))


def _nondeterminism(ok: List[Outcome]) -> str:
    repeat = sum(o[4] for o in ok if o[3])
    by_env: Dict[int, set] = defaultdict(set)
    for env, _, fp, *_ in ok:
        by_env[env].add(fp)
    split = [e for e, fps in by_env.items() if len(fps) > 1]
    parts = []
    if repeat:
        parts.append(f"a second execution in the same process disagreed in {repeat} runs")
    if split:
        parts.append(f"runs in the same environment produced {max(len(by_env[e]) for e in split)} different "
                     f"fingerprints ({len(split)} environment{'s' if len(split) > 1 else ''})")
    return "; ".join(parts)


def _unsupported_note(outcomes: List[Outcome], envs: List[Dict[str, Any]]) -> str:
    """Where the case is unsupported, in terms of the field that separates those runs."""
    n = sum(o[4] for o in outcomes if o[1] == UNSUPPORTED)
    pairs = sorted({(o[0], o[1] == UNSUPPORTED) for o in outcomes if o[1] in (OK, UNSUPPORTED)})
    found = attribute([envs[e] for e, _ in pairs], [u for _, u in pairs])
    where = ""
    if found.axes and "+" not in found.axes[0]:
        axis = found.axes[0]
        values = sorted({shown(envs[e].get(axis)) for e, u in pairs if u}, key=natural_key)
        where = f" ({axis}={', '.join(values)})"
    return f"unsupported in {n} runs{where}; the other runs are compared"
