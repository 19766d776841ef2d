"""One line per probe: what changed, how much and why, computed from a comparison.

A person reads a comparison probe by probe, not case by case.  For each probe (and
device) this module counts the verdicts, the difference kinds and the largest ULP of the
cases that changed, names the environment fields that explain the split, and finds the
**case parameters** that separate the changed cases from the unchanged ones
(:func:`explain_params`: ``dtype in {float16, bfloat16}``, ``size >= 16``, ``p is a float``).

An explanation is only ever given when it is exact on the data: every changed case
satisfies it and no unchanged case does.  Pure: a :class:`Comparison` in, named records out.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from audit.compare.model import Comparison, Difference, Finding, Match, Verdict

#: Probe families, in the order reports list them (the heatmap's row groups).
FAMILIES = ("python random", "numpy legacy", "numpy Generator", "numpy ops", "pandas", "torch RNG", "torch nn",
            "torch ops", "invariance", "traces", "cuda", "other")

_NUMPY_GENERATOR = ("numpy.random.Generator", "numpy.random.BitGenerator", "numpy.random.default_rng",
                    "numpy.random.SeedSequence", "numpy.random.PCG64", "numpy.random.MT19937",
                    "numpy.random.Philox", "numpy.random.SFC64")
_TORCH_RNG = ("torch.rand", "torch.randn", "torch.randint", "torch.randperm", "torch.bernoulli", "torch.multinomial",
              "torch.poisson", "torch.normal", "torch.distributions.", "torch.utils.data.",
              "torch.Generator", "torch.manual_seed", "torch.random.", "torch.set_rng_state")
_TENSOR_RNG = ("normal_", "uniform_", "exponential_", "geometric_", "cauchy_", "log_normal_", "bernoulli_", "random_")

#: A kind for a difference the sampled elements did not see, when the core still calls it
#: drift: "numerical drift" is only ever claimed with ULP evidence.
OUTSIDE_SAMPLE = "outside-sample"
#: Drift the sampled elements show while blocks they do not reach differ too: how far those
#: blocks moved is unknown, so it is not called drift ("within 1 ULP where sampled").
WITHIN_SAMPLE = "within-sample"
#: The sampled elements differ only in the sign of zero (0.0 vs -0.0).
SIGNED_ZERO = "signed-zero"


def family(probe_key: str, device: str = "cpu", trace: bool = False, invariance: Optional[bool] = None) -> str:
    """The family a probe belongs to (user probes fall in "other").

    ``trace`` and ``invariance`` come from the run files where the core gives them (the
    probe's kind, the case's invariance parameter); ``invariance=None`` (unknown) takes a key
    with a ``:`` suffix (``torch.randn:chunks``) for an invariance probe.
    """
    name, _, variant = probe_key.partition("@")[0].partition(":")
    if trace:
        return "traces"
    if invariance or (invariance is None and variant):
        return "invariance"
    if "cuda" in device or "@cuda" in probe_key:
        return "cuda"
    if name.startswith("random."):
        return "python random"
    if name.startswith(_NUMPY_GENERATOR):
        return "numpy Generator"
    if name.startswith("numpy.random."):
        return "numpy legacy"
    if name.startswith("numpy."):
        return "numpy ops"
    if name.startswith("pandas."):
        return "pandas"
    if name.startswith("torch.nn."):
        return "torch nn"
    if name.startswith(_TORCH_RNG) or (name.startswith("torch.Tensor.") and name.endswith(_TENSOR_RNG)):
        return "torch RNG"
    if name.startswith("torch."):
        return "torch ops"
    return "other"


def shown_verdict(f: Finding) -> str:
    """The verdict a report shows: the match in baseline mode, else the verdict."""
    return f.match.value if f.match is not None else f.verdict.value


def plain(f: Finding) -> bool:
    """Nothing to report: identical, or in baseline mode every stream known (a variance the
    reference shows too is this machine reproducing the reference)."""
    return f.match == Match.KNOWN or (f.match is None and f.verdict == Verdict.IDENTICAL)


#: Verdicts that say a case could not be compared, not that it differs: the reference lacks
#: it, or the probe's source changed.  Summaries count them on a line of their own.
QUIET = (Match.NEW_CASE.value, Verdict.INCOMPARABLE.value)


def differs(f: Finding) -> bool:
    """The case differs (between the runs, or from the baseline): not plain, and not merely new."""
    return not plain(f) and shown_verdict(f) not in QUIET


def kind_of(f: Finding) -> Optional[str]:
    """The difference kind a report shows: the core's, except that drift needs ULP evidence.

    A case the core calls drift while its sampled elements agree (0 ULP, or none measured),
    or whose streams differ while the core could not say how (the samples agree and most
    blocks differ, or no blocks were recorded), differs somewhere the sample did not look:
    :data:`OUTSIDE_SAMPLE`, never "drift".
    """
    if f.zero_sign:
        return SIGNED_ZERO
    if f.difference is None and f.max_ulp:
        return WITHIN_SAMPLE
    if f.difference is None:
        return OUTSIDE_SAMPLE if _fingerprints_differ(f) else None
    if f.difference == Difference.NUMERICAL_DRIFT and not f.max_ulp:
        return OUTSIDE_SAMPLE
    return f.difference.value


def _fingerprints_differ(f: Finding) -> bool:
    """Whether the finding is about different outputs (not only about an invariance result)."""
    if f.match == Match.NEW_STREAM:
        return any(s.nearest is not None and s.nearest.fingerprint != s.fingerprint for s in f.streams)
    return f.verdict == Verdict.DIVERGENT and len({s.fingerprint for s in f.streams}) > 1


# --------------------------------------------------------------------------- case parameters


@dataclass(frozen=True)
class Condition:
    """One exact test on a case parameter: ``op`` is ``in``, ``not in``, ``>=``, ``<=`` or ``is``."""

    name: str
    op: str
    values: Tuple[Any, ...]  # in / not in: values; >= / <=: (threshold,); is: type names

    def holds(self, case: Mapping[str, Any]) -> bool:
        value = case[self.name]
        if self.op == "in":
            return _key(value) in {_key(v) for v in self.values}
        if self.op == "not in":
            return _key(value) not in {_key(v) for v in self.values}
        if self.op == "is":
            return _type(value) in self.values
        if not _number(value):
            return False
        return value >= self.values[0] if self.op == ">=" else value <= self.values[0]

    @property
    def text(self) -> str:
        if self.op == "is":
            return f"{self.name} is " + " or ".join(self.values)
        if self.op in (">=", "<="):
            return f"{self.name} {self.op} {value_text(self.values[0])}"
        if len(self.values) == 1:
            return f"{self.name} {'=' if self.op == 'in' else '!='} {value_text(self.values[0])}"
        return f"{self.name} {self.op} {{{', '.join(value_text(v) for v in self.values)}}}"


@dataclass(frozen=True)
class ParamSplit:
    """Parameters that separate the changed cases exactly: a case changed iff every condition holds.

    ``values`` is the JSON form: parameter -> the values the changed cases take.
    """

    conditions: Tuple[Condition, ...]
    values: Dict[str, List[Any]]

    def holds(self, case: Mapping[str, Any]) -> bool:
        return all(c.holds(case) for c in self.conditions)

    @property
    def text(self) -> str:
        return " and ".join(c.text for c in self.conditions)


def _key(value: Any) -> str:
    """A hashable spelling that keeps 1, 1.0 and true apart (Python's == does not)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str) \
        + ("#float" if isinstance(value, float) else "")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_TYPE_NAMES = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
               (list, "a list"), (dict, "an object"))


def _type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def value_text(value: Any) -> str:
    """A parameter value as a report shows it: strings bare, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), allow_nan=True, default=str)


def _order(values: Iterable[Any]) -> List[Any]:
    """Distinct values (by :func:`_key`), numbers in numeric order, then the rest by spelling."""
    unique = {_key(v): v for v in values}
    return sorted(unique.values(), key=lambda v: (0, v, "") if _number(v) else (1, 0, _key(v)))


def explain_params(cases: Sequence[Mapping[str, Any]], changed: Sequence[bool]) -> Optional[ParamSplit]:
    """The simplest exact explanation of ``changed`` by the cases' parameters, or None.

    One parameter is tried first (its changed values must never occur in an unchanged
    case), then a pair (a case changed iff both parameters take one of the changed cases'
    values).  Only parameters every case has are used.  None when all or none changed.
    """
    if not cases or all(changed) or not any(changed):
        return None
    names = [n for n in cases[0] if all(n in c for c in cases)]
    sides = {n: _sides(cases, changed, n) for n in names}
    single = [n for n in names if not sides[n][0].keys() & sides[n][1].keys()]
    if single:
        best = min(single, key=lambda n: (len(sides[n][0]), n == "seed", names.index(n)))
        return _split([best], sides)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if _pair_separates(cases, changed, a, b, sides)]
    if pairs:
        best_pair = min(pairs, key=lambda p: (len(sides[p[0]][0]) + len(sides[p[1]][0]), "seed" in p))
        return _split(list(best_pair), sides)
    return None


Sides = Tuple[Dict[str, Any], Dict[str, Any]]  # (changed, unchanged): key -> value


def _sides(cases: Sequence[Mapping[str, Any]], changed: Sequence[bool], name: str) -> Sides:
    out: Sides = ({}, {})
    for case, hit in zip(cases, changed):
        out[0 if hit else 1][_key(case[name])] = case[name]
    return out


def _pair_separates(cases: Sequence[Mapping[str, Any]], changed: Sequence[bool], a: str, b: str,
                    sides: Dict[str, Sides]) -> bool:
    """Whether no unchanged case has both an ``a`` and a ``b`` value of the changed cases."""
    return not any(not hit and _key(c[a]) in sides[a][0] and _key(c[b]) in sides[b][0]
                   for c, hit in zip(cases, changed))


def _split(names: List[str], sides: Dict[str, Sides]) -> ParamSplit:
    conditions = []
    for n in names:
        hit, miss = sides[n]
        rest = {k: v for k, v in miss.items() if k not in hit}  # values no changed case has
        conditions.append(_condition(n, hit, rest))
    return ParamSplit(tuple(conditions), {n: _order(sides[n][0].values()) for n in names})


def _condition(name: str, hit: Dict[str, Any], rest: Dict[str, Any]) -> Condition:
    """The shortest way to say "one of the values in ``hit``", exact on the data.

    Every value the parameter takes is in ``hit`` or in ``rest`` (never both), so a
    threshold between them, a type only ``hit`` has, or "not one of ``rest``" holds for
    exactly the values in ``hit``: the same cases as the value set itself.
    """
    shown = _order(hit.values())
    if len(shown) > 1 and all(_number(v) for v in [*hit.values(), *rest.values()]):
        low, high = min(hit.values()), max(hit.values())
        if all(v < low for v in rest.values()):
            return Condition(name, ">=", (low,))
        if all(v > high for v in rest.values()):
            return Condition(name, "<=", (high,))
    types = {_type(v) for v in hit.values()}
    if len(shown) > 1 and not types & {_type(v) for v in rest.values()}:
        return Condition(name, "is", tuple(sorted(types)))
    if len(rest) < len(hit):
        return Condition(name, "not in", tuple(_order(rest.values())))
    return Condition(name, "in", tuple(shown))


# --------------------------------------------------------------------------- per probe


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
    max_ulp: Optional[float]  # over the drifting cases (a stream change's ULP distance means nothing)
    rtol: Optional[float]  # over the drifting cases: the relative tolerance that accepts them (None: none does)
    atol: Optional[float]  # over the drifting cases: the absolute tolerance that does
    sampled_ulp: Optional[float]  # over the within-sample cases: the largest ULP the sample saw
    sampled_blocks: Optional[Tuple[int, int]]  # within-sample: (blocks differing, blocks) of the widest case
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
class Summary:
    """Every probe's summary, the changed ones first."""

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


_VERDICT_ORDER = [m.value for m in Match if m != Match.KNOWN] + [v.value for v in Verdict] \
    + [Match.KNOWN.value, "unsupported"]


def summarise(c: Comparison) -> Summary:
    """One :class:`ProbeSummary` per probe and device of ``c`` (unsupported-only probes included)."""
    groups: Dict[Tuple[str, str], List[Finding]] = defaultdict(list)
    for f in c.findings:
        groups[(f.probe_key, f.device)].append(f)
    unsupported: Counter = Counter((str(u.get("probe_key") or u.get("probe")), str(u.get("device")))
                                   for u in c.unsupported)
    probes = [probe_summary(key, device, groups.get((key, device), []), unsupported[(key, device)])
              for key, device in sorted(set(groups) | set(unsupported))]
    probes.sort(key=_rank)
    return Summary(probes)


def _rank(p: ProbeSummary) -> Tuple[Any, ...]:
    worst = min((_VERDICT_ORDER.index(v) for v in p.verdicts if v in _VERDICT_ORDER), default=len(_VERDICT_ORDER))
    return (not p.unexpected, not p.changed, not p.quiet, worst, FAMILIES.index(p.family), p.probe, p.device)


def probe_summary(key: str, device: str, findings: List[Finding], unsupported: int = 0) -> ProbeSummary:
    """The summary of one probe's findings (and of its cases unsupported everywhere)."""
    changed = [f for f in findings if differs(f)]
    verdicts = Counter(shown_verdict(f) for f in findings)
    if unsupported:
        verdicts["unsupported"] = unsupported
    kinds = Counter(k for k in (kind_of(f) for f in changed) if k)
    drifts = [f for f in changed if f.max_ulp is not None and kind_of(f) == Difference.NUMERICAL_DRIFT.value]
    ulps = [f.max_ulp for f in drifts if f.max_ulp is not None]
    within = [f for f in changed if kind_of(f) == WITHIN_SAMPLE]
    widest = max(within, key=lambda f: (f.blocks_differing or 0, f.blocks or 0), default=None)
    axes = Counter(f.axes[0] for f in changed if f.axes)
    trace = any(f.kind == "trace" or f.first_divergence for f in findings)
    invariance = any(f.invariance for f in findings) or (None if not any(f.kind for f in findings) else False)
    return ProbeSummary(
        probe=key, device=device, family=family(key, device, trace, invariance), cases=len(findings) + unsupported,
        verdicts={v: verdicts[v] for v in sorted(verdicts, key=_verdict_index)},
        changed=len(changed), quiet=sum(not plain(f) and not differs(f) for f in findings),
        unexpected=sum(f.unexpected for f in findings),
        expected=sum(bool(f.expected) for f in changed),
        difference={k: kinds[k] for k in sorted(kinds, key=_kind_index)},
        max_ulp=max(ulps) if ulps else None, rtol=largest_tolerance([f.rtol for f in drifts]),
        atol=largest_tolerance([f.atol for f in drifts]),
        sampled_ulp=max((f.max_ulp or 0 for f in within), default=None),
        sampled_blocks=(widest.blocks_differing, widest.blocks)
        if widest is not None and widest.blocks_differing is not None and widest.blocks else None,
        axes=[a for a, _ in axes.most_common()],
        why=_why(changed), params=explain_params([f.case for f in findings], [differs(f) for f in findings]),
        findings=findings)


def largest_tolerance(values: Sequence[Optional[float]]) -> Optional[float]:
    """The largest of the cases' tolerances; None when a case has none (no tolerance of that kind accepts it)."""
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


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
        lead = "differs from the baseline in " if any(f.match is not None for f in changed) else "split by "
        return lead + ", ".join(a if len(axes) == 1 else f"{a} ({n})" for a, n in axes.most_common())
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
