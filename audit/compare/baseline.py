"""Baseline mode: does each case of the new runs reproduce a stream the reference knows?

The nightly gate compares tonight's runs (NEW) with an accepted reference (REF).  A case
of NEW is ``known`` when every stream it produced was produced by some reference run of
the same case and probe version, and the finding names which reference environments
produced it; otherwise it is a ``new-stream`` (or ``new-case`` when the reference lacks the
case or never ran it successfully, ``incomparable`` when it has it only under another probe
version).  NEW's own errors and run-to-run nondeterminism are reported as such.

A new stream also gets the how and the why: the reference stream nearest to it (least
severe difference, then fewest ULP), the difference kind, ULPs and blocks against that
stream, and the environment fields in which this run differs from the reference runs
that produced it (``cpu_model: AMD EPYC 7B13 vs Intel(R) Xeon(R) Processor``).
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from audit.compare import analysis, difference, fetch
from audit.compare.attribution import (
    attribute,
    differing_fields,
    natural_key,
    nearest_environments,
    rank,
    shown,
)
from audit.compare.grouping import ComparedCase, Grouped, group
from audit.compare.model import Comparison, Finding, Match, Nearest, Stream, Verdict
from audit.compare.rows import Detail, Outcome, Pick
from audit.compare.trace import TraceDivergence
from audit.compare.verdicts import stream_identity, values_list
from audit.errors import UsageError
from audit.store import location
from audit.worker.records import Status


@dataclass(eq=False)  # hashed by identity: a key of the describe maps
class KnownStream:
    """One stream the reference knows for a case: who produced it, and the row that stands
    for it."""

    identity: str
    outcomes: List[Outcome] = field(default_factory=list)

    @property
    def envs(self) -> Set[int]:
        return {o.env for o in self.outcomes}

    @property
    def pick(self) -> Pick:
        return analysis.representative(self.outcomes)


#: (case_key, version) -> stream identity -> KnownStream
RefStreams = Dict[Tuple[str, str], Dict[str, KnownStream]]


def compare_baseline(
    reference: Sequence[str],
    new: Sequence[str],
    cross_device: bool = False,
    memory_limit: Optional[str] = None,
) -> Comparison:
    """Compare the runs under ``new`` against those under ``reference``.

    A reference that is missing, holds no readable run or shares no case with ``new`` is
    a usage error: a gate that compares against nothing must not pass.
    """
    for path in reference:
        if not location.is_url(location.check(path, "--baseline path")) and not os.path.exists(
            path
        ):
            raise UsageError(f"--baseline {path!r} does not exist")
    with (
        fetch.Source(reference, memory_limit) as ref_source,
        fetch.Source(new, memory_limit) as source,
    ):
        ref_rows = ref_source.rows()
        if not ref_rows.runs:
            why = (
                "; ".join(f"{s.path}: {s.reason}" for s in ref_rows.skipped[:3])
                or "no run files there"
            )
            raise UsageError(f"--baseline {', '.join(reference)} holds no readable run ({why})")
        ref = group(ref_rows, cross_device)
        streams, versions = reference_streams(ref)
        grouped, rows, judged = analysis.fetched(
            source, cross_device, lambda g: _with_new_streams(g, streams)
        )
        rows.details.update(source.details(_lost_rows(grouped, streams)))
        fresh = _with_new_streams(grouped, streams)
        ref_details = ref_source.details(
            k.pick for key, known in streams.items() if key[0] in fresh for k in known.values()
        )
    comparison = analysis.analyse(grouped, rows, cross_device, judged)
    if comparison.findings and not any(f.case_key in versions for f in comparison.findings):
        raise UsageError(
            f"--baseline {', '.join(reference)} shares no case with {', '.join(new)}; "
            "is it the reference for these runs?"
        )
    cases = {c.description["case_key"]: c for c in grouped.cases}
    judge = _Judge(streams, versions, ref.envs, grouped.envs, ref_details, rows.details)
    judged_findings = [judge.judged(f, cases.get(f.case_key)) for f in comparison.findings]
    lost, unsupported = _no_longer_runs(comparison.unsupported, cases, streams, rows.details)
    return dataclasses.replace(
        comparison,
        findings=judged_findings + lost,
        unsupported=unsupported,
        reference_envs=ref.envs,
        skipped=list(ref_rows.skipped) + list(comparison.skipped),
        notes=list(ref_rows.notes) + list(comparison.notes),
        baseline=(
            f"{ref_rows.row_count} rows in {len(ref_rows.runs)} reference runs "
            f"({', '.join(reference)})"
        ),
    )


def reference_streams(ref: Grouped) -> Tuple[RefStreams, Dict[str, Set[str]]]:
    """Every ok stream of the reference per case and version, with its outcomes."""
    streams: RefStreams = defaultdict(dict)
    versions: Dict[str, Set[str]] = defaultdict(set)
    for case in ref.cases:
        key, version = case.description["case_key"], case.description["probe_version"]
        versions[key].add(version)
        for o in case.outcomes:
            if o.status == Status.OK:
                ident = stream_identity(o)
                streams[(key, version)].setdefault(ident, KnownStream(ident)).outcomes.append(o)
    return streams, versions


def _lost_rows(grouped: Grouped, streams: RefStreams) -> List[Pick]:
    """The first row of each case that the reference ran ok and the new runs never did (its
    message says why it no longer runs)."""
    lost = [case for case in grouped.cases if _lost(case, streams)]
    return [analysis.representative(case.outcomes) for case in lost]


def _no_longer_runs(
    unsupported: List[Dict[str, Any]],
    cases: Dict[str, ComparedCase],
    streams: RefStreams,
    details: Dict[Pick, Detail],
) -> Tuple[List[Finding], List[Dict[str, Any]]]:
    """The cases unsupported in every new run that the reference ran ok, each a finding of its
    own (``no-longer-runs``, which fails the gate); and the unsupported cases left."""
    lost, kept = [], []
    for u in unsupported:
        case = cases.get(u["case_key"])
        if case is None or not _lost(case, streams):
            kept.append(u)
            continue
        key = (case.description["case_key"], case.description["probe_version"])
        reference_streams = [
            Stream(
                k.outcomes[0].fingerprint or "",
                sum(x.rows for x in k.outcomes),
                [],
                {},
                env_ids=sorted(k.envs),
            )
            for k in streams[key].values()
        ]
        finding = Finding(
            **case.description,
            verdict=Verdict.INCOMPARABLE,
            unsupported_runs=u["runs"],
            match=Match.NO_LONGER_RUNS,
            explanation=_lost_words(case, details),
            reference_streams=reference_streams,
        )
        lost.append(finding)
    return lost, kept


def _lost(case: ComparedCase, streams: RefStreams) -> bool:
    key = (case.description["case_key"], case.description["probe_version"])
    return bool(streams.get(key)) and not any(o.status == Status.OK for o in case.outcomes)


def _lost_words(case: ComparedCase, details: Dict[Pick, Detail]) -> str:
    """'no longer runs here: error: AttributeError: ...' (the first run's status and message)."""
    first = analysis.representative(case.outcomes)
    detail = details.get(first)
    message = (
        (detail.message or "").strip().splitlines()[0][:160] if detail and detail.message else ""
    )
    n = sum(x.rows for x in case.outcomes)
    runs = f" ({n} runs)" if n > 1 else ""
    return (
        f"no longer runs here{runs}: {first.status.value}"
        + (f": {message}" if message else "")
        + "; the reference ran it ok"
    )


def _with_new_streams(grouped: Grouped, streams: RefStreams) -> Set[str]:
    """Case keys with an ok stream the reference does not know (but some stream it does)."""
    out = set()
    for case in grouped.cases:
        known = streams.get((case.description["case_key"], case.description["probe_version"]))
        if known and any(
            stream_identity(o) not in known for o in case.outcomes if o.status == Status.OK
        ):
            out.add(case.description["case_key"])
    return out


class _Closest(NamedTuple):
    """A new stream's nearest known stream, and the first op where a trace departs from it."""

    nearest: Nearest
    divergence: Optional[TraceDivergence]


class _Judge:
    """Matches findings against the reference, with everything the how and the why need."""

    def __init__(
        self,
        streams: RefStreams,
        versions: Dict[str, Set[str]],
        ref_envs: List[Dict[str, Any]],
        envs: List[Dict[str, Any]],
        ref_details: Dict[Pick, Detail],
        details: Dict[Pick, Detail],
    ) -> None:
        self.streams, self.versions = streams, versions
        self.ref_envs, self.envs = ref_envs, envs
        self.ref_details, self.details = ref_details, details

    def judged(self, f: Finding, case: Optional[ComparedCase]) -> Finding:
        """``f`` as the reference sees it, as one new finding: its match, which of its streams
        the reference knows, and for new ones the nearest known stream, the how and the why."""
        known = self.streams.get((f.case_key, f.probe_version), {})
        match, note = self._match(f, known)
        closest: Dict[str, _Closest] = {}
        why: Dict[str, Any] = {}
        if match == Match.ERROR and case is not None and _lost(case, self.streams):
            match = Match.NO_LONGER_RUNS
            why["explanation"] = _lost_words(case, self.details)
        elif match == Match.NEW_STREAM and case is not None:
            closest = self._closest(f, case, known)
            why = self._how_and_why(f, closest, known)
        by_env = {k: k.envs for k in known.values()}
        streams = [self._as_seen(s, known, by_env, closest.get(s.identity)) for s in f.streams]
        return dataclasses.replace(
            f,
            match=match,
            streams=streams,
            reference_streams=[self._reference_stream(k) for k in known.values()],
            notes=f.notes + ([note] if note else []),
            **why,
        )

    def _as_seen(
        self,
        stream: Stream,
        known: Dict[str, KnownStream],
        by_env: Dict[KnownStream, Set[int]],
        closest: Optional[_Closest],
    ) -> Stream:
        """A new run's stream as the reference sees it: known (and which reference environments
        produced it), or new (and its nearest known stream, where it was measured)."""
        if stream.identity in known:
            reference = describe(by_env, known[stream.identity], self.ref_envs)
            return dataclasses.replace(stream, known=True, reference=reference)
        nearest = closest.nearest if closest is not None else None
        return dataclasses.replace(stream, known=False, nearest=nearest)

    def _match(self, f: Finding, known: Dict[str, KnownStream]) -> Tuple[Match, Optional[str]]:
        """The match, and a note on why there is nothing to match (None: there is)."""
        if f.verdict == Verdict.ERROR:
            return Match.ERROR, None
        if f.verdict == Verdict.NONDETERMINISTIC:
            return Match.NONDETERMINISTIC, None
        if f.case_key not in self.versions:
            return Match.NEW_CASE, None
        if not known and f.probe_version in self.versions[f.case_key]:
            # same probe, but no reference run could run it
            note = (
                "the reference has this case only as unsupported or failed runs: no stream to match"
            )
            return Match.NEW_CASE, note
        if not known:
            versions = ", ".join(sorted(self.versions[f.case_key]))
            note = f"the reference has this case only as probe version {versions}"
            return Match.INCOMPARABLE, note
        if all(s.identity in known for s in f.streams):
            return Match.KNOWN, None
        return Match.NEW_STREAM, None

    def _reference_stream(self, k: KnownStream) -> Stream:
        o = k.outcomes[0]
        return Stream(
            o.fingerprint or "",
            sum(x.rows for x in k.outcomes),
            [],
            {},
            env_ids=sorted(k.envs),
            invariant=o.invariant,
            variant_values=values_list(o.variant_values),
        )

    def _closest(
        self, f: Finding, case: ComparedCase, known: Dict[str, KnownStream]
    ) -> Dict[str, _Closest]:
        """Each new stream (by identity) whose row was fetched against its nearest known
        stream."""
        by_env = {k: k.envs for k in known.values()}
        candidates = [
            (k, d) for k in known.values() if (d := self.ref_details.get(k.pick)) is not None
        ]
        out = {}
        for stream in (s for s in f.streams if s.identity not in known):
            detail = self._detail_of(case, stream)
            at = (
                difference.nearest(detail, [d for _, d in candidates])
                if detail is not None
                else None
            )
            if detail is not None and at is not None:
                k, ref_detail = candidates[at]
                out[stream.identity] = self._measured(stream, detail, k, ref_detail, by_env)
        return out

    def _measured(
        self,
        stream: Stream,
        detail: Detail,
        k: KnownStream,
        ref_detail: Detail,
        by_env: Dict[KnownStream, Set[int]],
    ) -> _Closest:
        """A new stream against the known stream ``k`` nearest to it."""
        located, divergence = difference.between(ref_detail, detail)
        ref = k.outcomes[0]
        invariance = None
        if stream.invariant is not None and stream.fingerprint == (ref.fingerprint or ""):
            # the same output: what broke the invariance there
            invariance = "held" if ref.invariant else ", ".join(values_list(ref.variant_values))
        nearest = Nearest(
            ref.fingerprint or "",
            describe(by_env, k, self.ref_envs),
            located,
            invariance,
            env_ids=sorted(k.envs),
        )
        return _Closest(nearest, divergence)

    def _how_and_why(
        self, f: Finding, closest: Dict[str, _Closest], known: Dict[str, KnownStream]
    ) -> Dict[str, Any]:
        """The finding's measures, fields and words, from the new stream whose nearest known
        stream differs most (the first of the most severe)."""
        located = [(s, closest[s.identity]) for s in f.streams if s.identity in closest]
        if not located:
            return {"explanation": self._known_words(known)}
        stream, (nearest, divergence) = min(located, key=lambda sc: sc[1].nearest.measured.severity)
        out: Dict[str, Any] = {}
        if nearest.invariance is None:  # with one, the output is the same: nothing to locate
            out["measured"] = nearest.measured
        if divergence is not None:
            out["first_divergence"] = divergence.as_dict()
        mine = [self.envs[e] for e in stream.env_ids]
        ran = sorted({e for k in known.values() for e in k.envs})
        theirs = [self.ref_envs[e] for e in nearest_environments(mine, ran, self.ref_envs)]
        axes_values = differing_fields(mine, theirs)
        new = sum(s.identity not in known for s in f.streams)
        return {
            **out,
            "axes_values": axes_values,
            "axes": list(axes_values),
            "explanation": _why(nearest, axes_values, new, theirs),
        }

    def _detail_of(self, case: ComparedCase, stream: Stream) -> Optional[Detail]:
        outcomes = [
            o
            for o in case.outcomes
            if o.status == Status.OK and stream_identity(o) == stream.identity
        ]
        return self.details.get(analysis.representative(outcomes)) if outcomes else None

    def _known_words(self, known: Dict[str, KnownStream]) -> str:
        by_env = {k: k.envs for k in known.values()}
        return "new stream; the reference knows " + " | ".join(
            describe(by_env, k, self.ref_envs) for k in known.values()
        )


#: How the plain-words "why" names a field.
_FIELD_WORDS = {
    "cpu_model": "the CPU",
    "openblas_core": "the OpenBLAS kernel",
    "mkl_code_path": "the MKL code path",
    "cpu_capability": "the ATen dispatch level",
    "arch": "the architecture",
    "blas": "the BLAS",
    "num_threads": "the thread count",
    "torch_version": "torch",
    "numpy_version": "numpy",
}


def _run_words(envs: List[Dict[str, Any]]) -> str:
    """'the reference run on Intel(R) Xeon(R) Processor, AVX512, 2 threads' (runs, when several)."""

    def one(name: str) -> str:
        return ", ".join(sorted({shown(e.get(name)) for e in envs}, key=natural_key))

    parts = [one("cpu_model"), one("cpu_capability"), f"{one('num_threads')} threads"]
    return f"the reference run{'s' if len(envs) > 1 else ''} on " + ", ".join(parts)


def _why(
    nearest: Nearest,
    axes_values: Dict[str, List[str]],
    new: int,
    theirs: Optional[List[Dict[str, Any]]] = None,
) -> str:
    """'new stream: numerical-drift 1 ULP from the reference's cpu_capability=AVX512 stream;
    the only difference from the reference run on Intel(R) Xeon(R), AVX512, 2 threads is the
    CPU: AMD EPYC vs Intel(R) Xeon(R)' (the fields where this run differs from the reference
    runs whose settings are closest to its own, kernels and CPU first)."""
    ref = (
        nearest.reference
        if nearest.reference.startswith("the reference")
        else f"the reference's {nearest.reference} stream"
    )
    streams = "new stream" if new == 1 else f"{new} new streams"
    if nearest.invariance is not None:
        words = (
            f"{streams}: the same output as {ref}, "
            f"but the invariance breaks at other values (there: {nearest.invariance})"
        )
    else:
        how = _how(nearest)
        if nearest.measured.blocks_differing is not None and nearest.measured.blocks:
            how += f" ({nearest.measured.blocks_differing} of {nearest.measured.blocks} blocks)"
        words = f"{streams}: {how} from {ref}"
    fields = list(axes_values.items())[:3]
    runs = _run_words(theirs) if theirs else "the nearest reference runs"
    if len(axes_values) == 1:
        name, (a, b) = fields[0]
        words += f"; the only difference from {runs} is {_FIELD_WORDS.get(name, name)}: {a} vs {b}"
    elif fields:
        words += f"; differs from {runs} (the closest settings) in " + "; ".join(
            f"{k}: {a} vs {b}" for k, (a, b) in fields
        )
        if len(axes_values) > 3:
            words += f" (+{len(axes_values) - 3} more fields)"
    else:
        words += f"; no environment field differs from {runs}"
    return words


def _how(nearest: Nearest) -> str:
    """'numerical-drift 3 ULP', 'within 1 ULP where sampled', 'sign of zero (0.0 vs -0.0)'."""
    if nearest.measured.zero_sign:
        return "the sampled elements differ only in the sign of zero (0.0 vs -0.0)"
    if nearest.measured.kind is None and nearest.measured.max_ulp:
        return f"within {nearest.measured.max_ulp:g} ULP where sampled"
    how = (
        "differs outside the sampled elements"
        if nearest.measured.kind is None
        else nearest.measured.kind.value
    )
    return how + (f" {nearest.measured.max_ulp:g} ULP" if nearest.measured.max_ulp else "")


def describe(
    known: Dict[KnownStream, Set[int]], stream: KnownStream, envs: List[Dict[str, Any]]
) -> str:
    """Which reference environments produced ``stream``, in terms of the field that splits them."""
    if len(known) == 1:
        n = len(known[stream])
        return f"the reference's only stream ({n} environment{'s' if n > 1 else ''})"
    pairs = sorted((env, k.identity) for k, ids in known.items() for env in ids)
    found = attribute([envs[e] for e, _ in pairs], [i for _, i in pairs])
    if not found.axes:
        return (
            _environments_of(known[stream], sorted({e for e, _ in pairs}), envs)
            or f"{stream.identity[:12]} ({len(known[stream])} reference environments)"
        )
    fields = found.axes[0].split("+")
    values = sorted(
        {"/".join(shown(envs[e].get(x)) for x in fields) for e in known[stream]}, key=natural_key
    )
    return f"{'+'.join(fields)}={', '.join(values)}"


def _environments_of(ids: Set[int], all_ids: List[int], envs: List[Dict[str, Any]]) -> str:
    """No field splits the reference's streams: name the environments of one stream by the
    fields that vary across the reference and take one value in them ("cpu_capability=AVX512
    num_threads=1"), best ranked first, one field per way of grouping the runs, three at most."""
    words: List[str] = []
    groupings: Set[Tuple[str, ...]] = set()
    for name in sorted({k for e in all_ids for k in envs[e]}, key=rank):
        grouping = tuple(shown(envs[e].get(name)) for e in all_ids)
        values = {shown(envs[e].get(name)) for e in ids}
        if len(set(grouping)) < 2 or len(values) != 1 or grouping in groupings:
            continue
        groupings.add(grouping)
        words.append(f"{name}={values.pop()}")
        if len(words) == 3:
            break
    return " ".join(words)
