"""Findings from grouped rows: verdict, streams, attribution and difference of every case.

Pure: :func:`needs` names the few rows a comparison shows (so the shell can fetch them),
and :func:`analyse` turns the grouped cases and those rows into a
:class:`~audit.compare.model.Comparison`.  :func:`compare_rows` does both for rows built
in memory.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import (
    AbstractSet,
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

from audit.compare import difference
from audit.compare.attribution import attribute, natural_key, shown
from audit.compare.grouping import ComparedCase, Grouped, group
from audit.compare.model import Comparison, Finding, Measured, Stream, Verdict
from audit.compare.rows import (
    FAILED,
    MAX_DETAILED,
    MAX_MESSAGES,
    MAX_RUNS,
    Detail,
    Outcome,
    Pick,
    Rows,
    StreamKey,
    StreamWant,
)
from audit.compare.verdicts import Tally, identity, tally, values_list, verdict
from audit.worker.records import Status


class Judged(NamedTuple):
    case: ComparedCase
    facts: Tally
    verdict: Optional[Verdict]


class Needs(NamedTuple):
    """What the shell must fetch before :func:`analyse`."""

    # representative rows (one per stream of a case that is not identical) and failed rows
    picks: List[Pick]
    streams: List[StreamWant]  # streams whose exact runs the outcomes cannot tell


def judge(grouped: Grouped) -> Iterator[Judged]:
    for case in grouped.cases:
        facts = tally(case.outcomes)
        yield Judged(case, facts, verdict(facts, bool(case.notes)))


def needs(
    grouped: Grouped,
    judged_cases: Optional[List[Judged]] = None,
    also: AbstractSet[str] = frozenset(),
) -> Needs:
    """The rows to fetch: only for cases that are not identical (see audit.compare.rows), and
    the streams of the cases named in ``also`` (baseline mode: cases with a new stream)."""
    picks: List[Pick] = []
    streams: List[StreamWant] = []
    for judged in judged_cases if judged_cases is not None else judge(grouped):
        if judged.verdict == Verdict.IDENTICAL and judged.case.description["case_key"] in also:
            picks.extend(representative(g) for g in _common_streams(judged.case.outcomes))
        if judged.verdict in (None, Verdict.IDENTICAL):
            continue
        ok = [o for o in judged.case.outcomes if o.status == Status.OK]
        picks.extend(representative(group) for group in _common_streams(ok))
        picks.extend(_failed(judged.case.outcomes))
        picks.extend(_disagreed(ok))
        for key, outcomes in _by_stream_key(ok).items():
            if _known_runs(outcomes) is None:
                streams.append(
                    StreamWant(
                        key,
                        min(sum(o.rows for o in outcomes), MAX_RUNS),
                        tuple(sorted({o.env for o in outcomes})),
                        min(o.first_run for o in outcomes),
                        max(o.last_run for o in outcomes),
                    )
                )
    return Needs(picks, streams)


def fetched(
    source: Any,
    cross_device: bool,
    also: Callable[[Grouped], AbstractSet[str]] = lambda g: frozenset(),
) -> Tuple[Grouped, Rows, List[Judged]]:
    """Fetch first, then decide: the outcomes, then the few rows the judged cases show.

    ``source`` is an open :class:`audit.compare.fetch.Source`; ``also`` names cases whose
    streams are fetched although they are identical (see :func:`needs`).
    """
    rows = source.rows()
    grouped = group(rows, cross_device)
    judged = list(judge(grouped))
    wanted = needs(grouped, judged, also(grouped))
    rows.details = source.details(wanted.picks)
    rows.stream_runs = source.stream_runs(wanted.streams)
    rows.unread = source.unread()
    return grouped, rows, judged


def compare_rows(rows: Rows, cross_device: bool = False) -> Comparison:
    """The comparison of rows held in memory (every detail they need included)."""
    return analyse(group(rows, cross_device), rows, cross_device)


#: What the JSON's ``unsupported`` list says of a case (the contract), besides its runs.
UNSUPPORTED_KEYS = ("probe", "probe_key", "case_key", "case", "device", "probe_version")


def analyse(
    grouped: Grouped,
    rows: Rows,
    cross_device: bool = False,
    judged_cases: Optional[List[Judged]] = None,
) -> Comparison:
    """Every case of ``grouped`` as a finding (or as unsupported everywhere).

    ``judged_cases`` is ``list(judge(grouped))`` when the caller has it already.
    """
    run_ids = [r.run_id for r in rows.runs]
    envs = _Envs(grouped.envs)
    findings, unsupported = [], []
    for judged in judged_cases if judged_cases is not None else judge(grouped):
        case = judged.case
        if judged.verdict is None:
            described = {k: case.description[k] for k in UNSUPPORTED_KEYS}
            unsupported.append({**described, "runs": judged.facts.unsupported})
            continue
        findings.append(
            Finding(
                **case.description,
                verdict=judged.verdict,
                runs=judged.facts.rows,
                unsupported_runs=judged.facts.unsupported,
                **_parts(case, judged.verdict, judged.facts, envs, run_ids, rows),
            )
        )
    findings.sort(key=_order)
    unsupported.sort(
        key=lambda u: (
            u["probe"],
            u["device"],
            u["probe_key"],
            natural_key(json.dumps(u["case"])),
            u["case_key"],
        )
    )
    return Comparison(
        findings,
        unsupported,
        rows.row_count,
        len(rows.runs) - rows.unread,
        list(rows.skipped),
        cross_device,
        envs=grouped.envs,
        notes=list(rows.notes),
    )


def _order(f: Finding) -> Tuple[Any, ...]:
    """Verdict order, then probe and parameters in natural order (the case key breaks ties:
    0.5 vs 0.05)."""
    return (
        list(Verdict).index(f.verdict),
        f.probe,
        f.device,
        f.probe_key,
        natural_key(json.dumps(f.case)),
        f.case_key,
    )


# --------------------------------------------------------------------------- rows to show


Identity = Tuple[Optional[str], Optional[bool], Optional[str]]


def _by_identity(ok: Sequence[Outcome]) -> Dict[Identity, List[Outcome]]:
    """The outcomes of each stream (fingerprint and invariance result, see verdicts.identity)."""
    out: Dict[Identity, List[Outcome]] = defaultdict(list)
    for o in ok:
        out[identity(o)].append(o)
    return out


def _by_stream_key(ok: Sequence[Outcome]) -> Dict[StreamKey, List[Outcome]]:
    out: Dict[StreamKey, List[Outcome]] = defaultdict(list)
    for o in ok:
        out[StreamKey(o.case_key, o.probe_version, o.fingerprint)].append(o)
    return out


def _common_streams(ok: Sequence[Outcome]) -> List[List[Outcome]]:
    """The outcomes of each stream, most common first (ties by identity), at most MAX_DETAILED."""
    streams = _by_identity(ok)
    order = sorted(streams, key=lambda i: (-sum(o.rows for o in streams[i]), str(i)))
    return [streams[i] for i in order[:MAX_DETAILED]]


def representative(outcomes: Sequence[Outcome]) -> Pick:
    """The stream's row in the earliest run that produced it."""
    o = min(outcomes, key=lambda o: o.first_run)
    return Pick(o.first_run, o.case_key, o.probe_version, o.status, o.fingerprint)


def _first_rows(outcomes: Iterable[Outcome]) -> List[Pick]:
    """The rows of the first MAX_MESSAGES of ``outcomes`` in run order (their messages are
    shown)."""
    first = sorted(outcomes, key=lambda o: o.first_run)[:MAX_MESSAGES]
    return [representative([o]) for o in first]


def _failed(outcomes: Sequence[Outcome]) -> List[Pick]:
    """The first failed rows."""
    return _first_rows(o for o in outcomes if o.status in FAILED)


def _disagreed(ok: Sequence[Outcome]) -> List[Pick]:
    """The first rows whose second execution disagreed (their message says how)."""
    return _first_rows(o for o in ok if o.repeat_false)


def _known_runs(outcomes: Sequence[Outcome]) -> Optional[List[int]]:
    """Every run of a stream, when its outcomes tell them (none repeats in more than two runs)."""
    if any(o.rows > 2 for o in outcomes):
        return None
    return sorted({r for o in outcomes for r in (o.first_run, o.last_run)})


def _stream_runs(ok: Sequence[Outcome], rows: Rows) -> Optional[List[int]]:
    """The first MAX_RUNS runs (in run order) of a stream, from the outcomes or the fetched runs."""
    runs: set = set()
    for key, outcomes in _by_stream_key(ok).items():
        known = _known_runs(outcomes)
        got = known if known is not None else rows.stream_runs.get(key)
        if got is None:
            return None
        runs.update(got)
    return sorted(runs)[:MAX_RUNS]


# --------------------------------------------------------------------------- one finding


class _Envs:
    """The environments, with what a case's streams ask of them computed once per set of ids."""

    def __init__(self, envs: List[Dict[str, Any]]) -> None:
        self.envs = envs
        self._varying: Dict[FrozenSet[int], List[str]] = {}
        self._shown: Dict[Tuple[FrozenSet[int], str], List[str]] = {}

    def __getitem__(self, env: int) -> Dict[str, Any]:
        return self.envs[env]

    def varying(self, ids: FrozenSet[int]) -> List[str]:
        """The fields whose values differ among the environments ``ids``."""
        if ids not in self._varying:
            chosen = [self.envs[e] for e in sorted(ids)]
            self._varying[ids] = (
                [f for f in chosen[0] if len({e.get(f) for e in chosen}) > 1] if chosen else []
            )
        return self._varying[ids]

    def shown(self, ids: FrozenSet[int], field: str) -> List[str]:
        """The values of ``field`` among the environments ``ids``, as shown, in natural order."""
        if (ids, field) not in self._shown:
            self._shown[(ids, field)] = sorted(
                {shown(self.envs[e].get(field)) for e in ids}, key=natural_key
            )
        return self._shown[(ids, field)]


def _parts(
    case: ComparedCase, verdict: Verdict, facts: Tally, envs: _Envs, run_ids: List[str], rows: Rows
) -> Dict[str, Any]:
    """Streams, attribution, difference, messages and notes of one case: the finding's fields
    beyond its description and verdict, so that it is built once."""
    outcomes = case.outcomes
    ok = [o for o in outcomes if o.status == Status.OK]
    out: Dict[str, Any] = {"streams": _streams(verdict, ok, envs, run_ids, rows)}
    notes = list(case.notes)
    if verdict == Verdict.DIVERGENT:
        pairs = sorted({(o.env, str(identity(o))) for o in ok})
        found = attribute([envs[e] for e, _ in pairs], [i for _, i in pairs])
        out.update(axes=found.axes, explanation=found.explanation)
        measured, first_divergence, note = _difference(ok, rows.details)
        out.update(measured=measured, first_divergence=first_divergence)
        notes += [note] if note else []
        out.update(_variance(case.description, verdict, found.axes, ok, rows.details, envs, notes))
    elif verdict == Verdict.VARIANT:
        out.update(_variance(case.description, verdict, [], ok, rows.details, envs, notes))
    elif verdict == Verdict.NONDETERMINISTIC:
        out["explanation"] = _nondeterminism(ok)
        details = [rows.details.get(p) for p in _disagreed(ok)]
        notes += [d.message for d in details if d is not None and d.message]
    elif verdict == Verdict.ERROR:
        details = [rows.details.get(p) for p in _failed(outcomes)]
        out["messages"] = [d.message for d in details if d is not None and d.message]
        failed = sum(o.rows for o in outcomes if o.status in FAILED)
        out["explanation"] = f"{failed} of {facts.rows} runs failed"
        out["failed_env_ids"] = sorted({o.env for o in outcomes if o.status in FAILED})
    elif verdict == Verdict.INCOMPARABLE:
        out["explanation"] = (
            "the probe changed; no earlier run of this probe version to compare with"
        )
    if facts.unsupported:
        notes.append(_unsupported_note(outcomes, envs))
    out["notes"] = notes
    return out


def _streams(
    case_verdict: Verdict, ok: List[Outcome], envs: _Envs, run_ids: List[str], rows: Rows
) -> List[Stream]:
    fields = envs.varying(frozenset(o.env for o in ok))
    streams = []
    for (fp, invariant, values), same in _by_identity(ok).items():
        exact = _stream_runs(same, rows) if case_verdict != Verdict.IDENTICAL else None
        # identical: one per environment
        runs = exact if exact is not None else [o.first_run for o in same]
        ids = frozenset(o.env for o in same)
        environment = {f: envs.shown(ids, f) for f in fields}
        detail = (
            rows.details.get(representative(same)) if case_verdict == Verdict.DIVERGENT else None
        )
        streams.append(
            Stream(
                fp or "",
                sum(o.rows for o in same),
                sorted({run_ids[r] for r in runs})[:MAX_RUNS],
                environment,
                detail.dtype if detail else None,
                detail.shape if detail else None,
                env_ids=sorted({o.env for o in same}),
                invariant=invariant,
                variant_values=values_list(values),
            )
        )
    streams.sort(key=lambda s: (-s.run_count, s.identity))
    return streams


def _difference(
    ok: List[Outcome], details: Dict[Pick, Detail]
) -> Tuple[Measured, Optional[Dict[str, Any]], Optional[str]]:
    """Every stream measured against the most common one, from one stored row of each: the most
    severe difference, the first divergent op of a trace, and a note when nothing located it."""
    common = _common_streams(ok)
    reference = details.get(representative(common[0]))
    others = [
        d
        for d in (
            details.get(representative(g))
            for g in common[1:]
            if g[0].fingerprint != common[0][0].fingerprint
        )
        if d
    ]
    if reference is None or not others:
        return Measured(), None, None
    results = [difference.between(reference, other) for other in others]
    located = difference.combine([r for r, _ in results])
    divergences = [d for _, d in results if d is not None]
    first = min(divergences, key=lambda d: d.index).as_dict() if divergences else None
    if located is None:
        return Measured(), first, None
    note = None
    if located.kind is None and located.blocks is None:
        note = (
            "the sampled elements agree bit for bit and the runs recorded no block digests: "
            "the streams differ outside the sample"
        )
    return located, first, note


def _by_invariance(ok: Sequence[Outcome]) -> List[List[Outcome]]:
    """The outcomes grouped by invariance result (held, or which values broke it)."""
    groups: Dict[Tuple[Optional[bool], Optional[str]], List[Outcome]] = defaultdict(list)
    for o in ok:
        groups[(o.invariant, o.variant_values)].append(o)
    return [groups[k] for k in sorted(groups, key=str)]


def _variance(
    described: Dict[str, Any],
    verdict: Verdict,
    axes: List[str],
    ok: List[Outcome],
    details: Dict[Pick, Detail],
    envs: _Envs,
    notes: List[str],
) -> Dict[str, Any]:
    """An invariance case: which parameter, which values broke it, and where (if not everywhere);
    a variant case's words are its explanation, another's go to ``notes``."""
    broken = [o for o in ok if o.invariant is False]
    if not broken:
        return {}
    detail = next(
        (d for d in (details.get(representative(g)) for g in _common_streams(ok)) if d), None
    )
    param = (detail.invariance if detail else None) or described.get("invariance")
    values = sorted({v for o in broken for v in values_list(o.variant_values)}, key=natural_key)
    first = described["case"].get(param) if param else None
    against = (
        f" ({param}={json.dumps(first[0])} is the reference)"
        if isinstance(first, list) and first
        else ""
    )
    words = f"the result changes with {param}: {', '.join(values)} differ{against}"
    out: Dict[str, Any] = {"varies_with": param, "values": values}
    if verdict == Verdict.VARIANT:
        return {**out, "explanation": words}
    axis = axes[0].split("+")[0] if axes else None
    if axis is not None:
        words = f"the result's dependence on {param} differs by {axis}: " + "; ".join(
            f"{axis}={', '.join(envs.shown(frozenset(o.env for o in group), axis))}: "
            + (
                f"{', '.join(values_list(group[0].variant_values))} differ"
                if group[0].invariant is False
                else "invariant"
            )
            for group in _by_invariance(ok)
        )
    notes.append(words)
    return out


def _nondeterminism(ok: List[Outcome]) -> str:
    repeat = sum(o.rows for o in ok if o.repeat_false)
    by_env: Dict[int, set] = defaultdict(set)
    for o in ok:
        by_env[o.env].add(identity(o))
    split = [e for e, fps in by_env.items() if len(fps) > 1]
    parts = []
    if repeat:
        parts.append(f"a second execution in the same process disagreed in {repeat} runs")
    if split:
        parts.append(
            f"runs in the same environment produced {max(len(by_env[e]) for e in split)} different "
            f"fingerprints ({len(split)} environment{'s' if len(split) > 1 else ''})"
        )
    return "; ".join(parts)


def _unsupported_note(outcomes: List[Outcome], envs: _Envs) -> str:
    """Where the case is unsupported, in terms of the field that separates those runs."""
    n = sum(o.rows for o in outcomes if o.status == Status.UNSUPPORTED)
    pairs = sorted(
        {
            (o.env, o.status == Status.UNSUPPORTED)
            for o in outcomes
            if o.status in (Status.OK, Status.UNSUPPORTED)
        }
    )
    found = attribute([envs[e] for e, _ in pairs], [u for _, u in pairs])
    where = ""
    if found.axes and "+" not in found.axes[0]:
        axis = found.axes[0]
        values = sorted({shown(envs[e].get(axis)) for e, u in pairs if u}, key=natural_key)
        where = f" ({axis}={', '.join(values)})"
    return f"unsupported in {n} runs{where}; the other runs are compared"
