"""The view every compare report draws: one line per probe, what changed, how much and why.

A person reads a comparison probe by probe, not case by case.  For each probe (and
device) :func:`build_view` counts the verdicts, the difference kinds and the largest ULP of
the cases that changed, names the environment fields that explain the split, and finds the
case parameters that separate the changed cases from the unchanged ones
(:func:`audit.compare.params.explain_params`).  The ``compare`` command builds the view once
and hands it to every renderer (text, markdown, JSON, HTML): a renderer formats, it does not
decide.  Pure: a :class:`Comparison` in, named records out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, List, Optional, Sequence, Tuple

from audit.compare.judgements import (
    OUTSIDE_SAMPLE,
    QUIET,
    SIGNED_ZERO,
    WITHIN_SAMPLE,
    differs,
    drift_measures,
    family_rank,
    kind_of,
    plain,
    probe_family,
    shown_verdict,
)
from audit.compare.model import Comparison, Difference, Finding, Match, Verdict
from audit.compare.params import ParamSplit, explain_params


@dataclass(eq=False)
class ProbeSummary:
    """The findings of one probe on one device, in one line's worth of facts."""

    probe: str  # the registration key: the probe id, "id:chunks" for invariance cases, "id@cuda"
    device: str
    family: str
    cases: int  # compared cases, and cases unsupported in every run
    verdicts: Dict[str, int]  # shown verdict (match in baseline mode) -> cases, in verdict order
    changed: int  # cases that differ (see :func:`differs`)
    quiet: int  # cases that are new or incomparable
    unexpected: int
    expected: int  # changed cases an expectation accepts
    difference: Dict[str, int]  # kind -> changed cases (drift only with ULP evidence)
    # over the drifting cases (a stream change's ULP distance means nothing)
    max_ulp: Optional[float]
    # over the drifting cases: the relative tolerance that accepts them (None: none does)
    rtol: Optional[float]
    atol: Optional[float]  # over the drifting cases: the absolute tolerance that does
    sampled_ulp: Optional[float]  # over the within-sample cases: the largest ULP the sample saw
    # within-sample: (blocks differing, blocks) of the widest case
    sampled_blocks: Optional[Tuple[int, int]]
    axes: List[str]  # environment fields that explain the split, most cases first
    why: str  # the split in words, when the changed cases share one explanation
    params: Optional[ParamSplit]  # case parameters that separate the changed cases
    findings: List[Finding] = field(default_factory=list, repr=False)

    @property
    def unsupported_only(self) -> bool:
        """Every case was unsupported in every run (nothing was compared)."""
        return all(k == "unsupported" for k in self.verdicts)

    @property
    def named(self) -> List[str]:
        """The changed cases' parameters, when they are few and no parameter explains them."""
        hits = [f.params for f in self.findings if differs(f)]
        return hits if self.params is None and 0 < len(hits) <= 2 and len(hits) < self.cases else []


@dataclass
class View:
    """What the reports of one comparison show: every probe's summary, the changed ones first."""

    comparison: Comparison
    probes: List[ProbeSummary]

    @property
    def changed(self) -> List[ProbeSummary]:
        """Probes with a case that differs."""
        return [p for p in self.probes if p.changed]

    @property
    def quiet(self) -> List[ProbeSummary]:
        """Probes whose only news is new or incomparable cases."""
        return [p for p in self.probes if not p.changed and p.quiet]

    @property
    def unchanged(self) -> List[ProbeSummary]:
        return [p for p in self.probes if not p.changed and not p.quiet and not p.unsupported_only]

    def quiet_counts(self) -> Dict[str, Tuple[int, int]]:
        """Quiet verdict -> (probes, cases) over the probes without a difference."""
        out: Dict[str, Tuple[int, int]] = {}
        for v in QUIET:
            probes = [p for p in self.quiet if p.verdicts.get(v)]
            if probes:
                out[v] = (len(probes), sum(p.verdicts[v] for p in probes))
        return out

    def unchanged_cases(self) -> int:
        return sum(p.cases - p.verdicts.get("unsupported", 0) for p in self.unchanged)

    @property
    def compared_cases(self) -> int:
        """Cases compared: all but the unsupported, new and incomparable ones."""
        return sum(p.cases - p.verdicts.get("unsupported", 0) for p in self.probes) - sum(
            p.quiet for p in self.probes
        )

    @property
    def changed_cases(self) -> int:
        return sum(p.changed for p in self.probes)

    @property
    def compared_probes(self) -> int:
        """Probes with a compared case."""
        return sum(p.cases - p.verdicts.get("unsupported", 0) - p.quiet > 0 for p in self.probes)

    def changed_verdicts(self) -> Dict[str, int]:
        """Shown verdict -> cases that differ, in the order the changed probes meet them."""
        kinds: Dict[str, int] = {}
        for p in self.changed:
            for f in p.findings:
                if differs(f):
                    kinds[shown_verdict(f)] = kinds.get(shown_verdict(f), 0) + 1
        return kinds

    @cached_property
    def environment_notes(self) -> List[str]:
        return environment_notes(self.comparison)

    @cached_property
    def listed(self) -> List[Finding]:
        """Findings worth a line: all but plain ones (identical, and known in baseline mode),
        unexpected first."""
        out = [f for f in self.comparison.findings if not plain(f)]
        return sorted(out, key=lambda f: (not f.unexpected, list(Verdict).index(f.verdict)))


def environment_notes(c: Comparison) -> List[str]:
    """Marks a reader needs before the findings: emulated runs (docs/arm.md), and torch builds of
    another flavour than the baseline's (2.13.0 from PyPI on aarch64 is +cu130; x86's +cpu)."""
    notes = []
    emulated = [e for e in c.envs if e.get("emulator")]
    if emulated:
        hosts = sorted({str(e["emulator"]).split(" -cpu ")[0] for e in emulated})
        cpus = sorted(
            {
                str(e["emulator"]).rsplit("(", 1)[-1].rstrip(")")
                for e in emulated
                if " -cpu " in str(e["emulator"])
            }
        )
        notes.append(
            f"emulated: {len(emulated)} of {len(c.envs)} environments ran under {', '.join(hosts)}"
            + (f" (CPU {', '.join(cpus)})" if cpus else "")
        )
    if c.reference_envs:

        def flavours(envs: List[Dict[str, Any]]) -> List[str]:
            return sorted(
                {
                    f"CUDA {e['cuda_version']} build" if e.get("cuda_version") else "CPU-only build"
                    for e in envs
                    if e.get("torch_version")
                }
            )

        mine, theirs = flavours(c.envs), flavours(c.reference_envs)
        if mine and theirs and not set(mine) & set(theirs):
            notes.append(
                f"torch flavour differs: {', '.join(mine)} vs the baseline's {', '.join(theirs)} "
                f"(a confound beside the fields named)"
            )
    return notes


_VERDICT_ORDER = (
    [m.value for m in Match if m != Match.KNOWN]
    + [v.value for v in Verdict]
    + [Match.KNOWN.value, "unsupported"]
)


def build_view(c: Comparison) -> View:
    """One :class:`ProbeSummary` per probe and device of ``c`` (unsupported-only probes
    included)."""
    groups: Dict[Tuple[str, str], List[Finding]] = defaultdict(list)
    for f in c.findings:
        groups[(f.probe_key, f.device)].append(f)
    unsupported: Counter = Counter(
        (str(u.get("probe_key") or u.get("probe")), str(u.get("device"))) for u in c.unsupported
    )
    probes = [
        probe_summary(key, device, groups.get((key, device), []), unsupported[(key, device)])
        for key, device in sorted(set(groups) | set(unsupported))
    ]
    probes.sort(key=_rank)
    return View(c, probes)


def _rank(p: ProbeSummary) -> Tuple[Any, ...]:
    worst = min(
        (_VERDICT_ORDER.index(v) for v in p.verdicts if v in _VERDICT_ORDER),
        default=len(_VERDICT_ORDER),
    )
    return (
        not p.unexpected,
        not p.changed,
        not p.quiet,
        worst,
        family_rank(p.family),
        p.probe,
        p.device,
    )


def probe_summary(
    key: str, device: str, findings: List[Finding], unsupported: int = 0
) -> ProbeSummary:
    """The summary of one probe's findings (and of its cases unsupported everywhere)."""
    changed = [f for f in findings if differs(f)]
    verdicts = Counter(shown_verdict(f) for f in findings)
    if unsupported:
        verdicts["unsupported"] = unsupported
    kinds = Counter(k for k in (kind_of(f) for f in changed) if k)
    max_ulp, rtol, atol = drift_measures(changed)
    within = [f for f in changed if kind_of(f) == WITHIN_SAMPLE]
    widest = max(
        within,
        key=lambda f: (f.measured.blocks_differing or 0, f.measured.blocks or 0),
        default=None,
    )
    axes = Counter(f.axes[0] for f in changed if f.axes)
    return ProbeSummary(
        probe=key,
        device=device,
        family=probe_family(key, device, findings),
        cases=len(findings) + unsupported,
        verdicts={v: verdicts[v] for v in sorted(verdicts, key=_verdict_index)},
        changed=len(changed),
        quiet=sum(not plain(f) and not differs(f) for f in findings),
        unexpected=sum(f.unexpected for f in findings),
        expected=sum(bool(f.expected) for f in changed),
        difference={k: kinds[k] for k in sorted(kinds, key=_kind_index)},
        max_ulp=max_ulp,
        rtol=rtol,
        atol=atol,
        sampled_ulp=max((f.measured.max_ulp or 0 for f in within), default=None),
        sampled_blocks=(widest.measured.blocks_differing, widest.measured.blocks)
        if widest is not None
        and widest.measured.blocks_differing is not None
        and widest.measured.blocks
        else None,
        axes=[a for a, _ in axes.most_common()],
        why=_why(changed),
        params=explain_params([f.case for f in findings], [differs(f) for f in findings]),
        findings=findings,
    )


def _verdict_index(v: str) -> int:
    return _VERDICT_ORDER.index(v) if v in _VERDICT_ORDER else len(_VERDICT_ORDER)


def _kind_index(k: str) -> int:
    order = [d.value for d in Difference]
    for extra in (SIGNED_ZERO, WITHIN_SAMPLE, OUTSIDE_SAMPLE):
        order.insert(order.index(Difference.NUMERICAL_DRIFT.value), extra)
    return order.index(k) if k in order else len(order)


def _why(changed: Sequence[Finding]) -> str:
    """The explanation the changed cases share, in words ("" when they do not share one),
    and for traces the first divergent op they share."""
    return "; ".join(x for x in (_shared_reason(changed), _shared_divergence(changed)) if x)


def _shared_reason(changed: Sequence[Finding]) -> str:
    texts = {_reason(f) for f in changed}
    if len(texts) == 1:
        return texts.pop()
    axes = Counter(f.axes[0] for f in changed if f.axes)
    if axes and sum(axes.values()) == len(changed):
        lead = (
            "differs from the baseline in "
            if any(f.match is not None for f in changed)
            else "split by "
        )
        return lead + ", ".join(
            a if len(axes) == 1 else f"{a} ({n})" for a, n in axes.most_common()
        )
    return ""


def _shared_divergence(changed: Sequence[Finding]) -> str:
    """'first divergent op #36 aten.native_layer_norm_backward.default' when every trace agrees on
    it; 'first divergent op aten.native_layer_norm_backward (#162 or #240)' when they agree on the
    op at different positions."""
    if not changed or any(not f.first_divergence for f in changed):
        return ""
    ops = {(d.get("index"), d.get("op")) for d in (f.first_divergence for f in changed) if d}
    names = {op for _, op in ops}
    if len(ops) == 1:
        index, op = ops.pop()
        return f"first divergent op #{index} {op}"
    if len(names) == 1:  # the same op at another position (dropout, say, adds ops before it)
        indices = sorted({i for i, _ in ops}, key=lambda i: (i is None, i))
        return f"first divergent op {names.pop()} ({' or '.join(f'#{i}' for i in indices)})"
    return ""


def both_values(values: Dict[str, List[str]], most: int = 3) -> str:
    """'cpu_model: AMD EPYC vs Intel(R) Xeon(R); blas: ...' (this run's value first), the
    ``most`` best fields (the rest are counted; every field is in --json)."""
    shown = "; ".join(f"{k}: {' vs '.join(v)}" for k, v in list(values.items())[:most])
    return shown + (f" (+{len(values) - most} more fields)" if len(values) > most else "")


def varies_with(f: Finding) -> str:
    """'varies with batch: 1, 2, 3' (the values whose result differed); '' for other cases."""
    if not f.varies_with:
        return ""
    return f"varies with {f.varies_with}" + (f": {', '.join(f.values)}" if f.values else "")


def _reason(f: Finding) -> str:
    """One finding's why: the fields with both values in baseline mode, else its explanation."""
    if f.match == Match.NO_LONGER_RUNS:
        return f.explanation
    if f.axes_values:
        return both_values(f.axes_values)
    if f.varies_with:
        return varies_with(f)
    if f.verdict == Verdict.ERROR and f.messages:
        return f.messages[0].splitlines()[0][:120] if f.messages[0] else f.explanation
    return f.explanation
