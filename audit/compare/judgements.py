"""Judgements about one finding: its family, the verdict and kind a report shows, whether it
differs at all.

They live next to the :class:`~audit.compare.model.Finding` model: every report, the upgrade
view and the per-probe view ask the same questions of a finding and get the same answers.
Pure: a finding in, a word out.
"""

from __future__ import annotations

import functools
from typing import Mapping, Optional, Sequence, Tuple

from audit.compare.model import Difference, Finding, Match, Measured, Verdict

#: Probe families, in the order reports list them (the heatmap's row groups).
FAMILIES = (
    "python random",
    "numpy legacy",
    "numpy Generator",
    "numpy ops",
    "pandas",
    "torch RNG",
    "torch nn",
    "torch ops",
    "invariance",
    "traces",
    "cuda",
    "other",
)

_NUMPY_GENERATOR = (
    "numpy.random.Generator",
    "numpy.random.BitGenerator",
    "numpy.random.default_rng",
    "numpy.random.SeedSequence",
    "numpy.random.PCG64",
    "numpy.random.MT19937",
    "numpy.random.Philox",
    "numpy.random.SFC64",
)
_TORCH_RNG = (
    "torch.rand",
    "torch.randn",
    "torch.randint",
    "torch.randperm",
    "torch.bernoulli",
    "torch.multinomial",
    "torch.poisson",
    "torch.normal",
    "torch.distributions.",
    "torch.utils.data.",
    "torch.Generator",
    "torch.manual_seed",
    "torch.random.",
    "torch.set_rng_state",
)
_TENSOR_RNG = (
    "normal_",
    "uniform_",
    "exponential_",
    "geometric_",
    "cauchy_",
    "log_normal_",
    "bernoulli_",
    "random_",
)

#: A kind for a difference the sampled elements did not see, when the core still calls it
#: drift: "numerical drift" is only ever claimed with ULP evidence.
OUTSIDE_SAMPLE = "outside-sample"
#: Drift the sampled elements show while blocks they do not reach differ too: how far those
#: blocks moved is unknown, so it is not called drift ("within 1 ULP where sampled").
WITHIN_SAMPLE = "within-sample"
#: The sampled elements differ only in the sign of zero (0.0 vs -0.0).
SIGNED_ZERO = "signed-zero"


@functools.lru_cache(maxsize=1)
def catalogue_families() -> Mapping[str, str]:
    """Registration key -> family, as the catalogue's probes declare it (``FAMILY`` of their
    module).

    Importing the catalogue imports no audited library (each probe imports its own inside).
    """
    import audit.probes  # noqa: F401  (registers the catalogue)
    from audit import registry

    return registry.families()


def family_rank(name: str) -> float:
    """Where a family comes in reports: :data:`FAMILIES` order; a family declared by a probe
    module and not listed there comes after the library families, before "invariance"."""
    if name in FAMILIES:
        return float(FAMILIES.index(name))
    return FAMILIES.index("invariance") - 0.5


def family(
    probe_key: str,
    device: str = "cpu",
    trace: bool = False,
    invariance: Optional[bool] = None,
    declared: Optional[Mapping[str, str]] = None,
    stored: Optional[str] = None,
) -> str:
    """The family a probe belongs to (a user probe that declares none falls in "other").

    ``trace`` and ``invariance`` come from the run files where the core gives them (the
    probe's kind, the case's invariance parameter); ``invariance=None`` (unknown) takes a key
    with a ``:`` suffix (``torch.randn:chunks``) for an invariance probe.  Otherwise the
    family the probe declares wins: as the run files store it (``stored``, schema 4: a user's
    probe is grouped without importing its module), else, for files that predate it, as the
    catalogue declares it (``declared``: key -> family, by default :func:`catalogue_families`).
    The prefix chain below is only the default for a probe that declares none.
    """
    name, _, variant = probe_key.partition("@")[0].partition(":")
    if trace:
        return "traces"
    if invariance or (invariance is None and variant):
        return "invariance"
    if "cuda" in device or "@cuda" in probe_key:
        return "cuda"
    named = stored or (catalogue_families() if declared is None else declared).get(probe_key)
    if named:
        return named
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
    if name.startswith(_TORCH_RNG) or (
        name.startswith("torch.Tensor.") and name.endswith(_TENSOR_RNG)
    ):
        return "torch RNG"
    if name.startswith("torch."):
        return "torch ops"
    return "other"


def stored_family(findings: Sequence[Finding]) -> Optional[str]:
    """The family the run files give the probe of ``findings`` (None: files before schema 4)."""
    return next((f.family for f in findings if f.family), None)


def probe_family(probe_key: str, device: str, findings: Sequence[Finding]) -> str:
    """The family of the probe whose cases are ``findings``, from what the run files say of
    them (trace, invariance, the declared family): the one grouping of every report."""
    trace = any(f.kind == "trace" or f.first_divergence for f in findings)
    invariance = any(f.invariance for f in findings) or (
        None if not any(f.kind for f in findings) else False
    )
    return family(probe_key, device, trace, invariance, stored=stored_family(findings))


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
    m = f.measured
    if m.kind is None and not m.zero_sign and not m.max_ulp:
        return OUTSIDE_SAMPLE if _fingerprints_differ(f) else None
    return shown_kind(m)


def shown_kind(m: Measured) -> Optional[str]:
    """The kind a report shows for a measured difference (None: not measured): drift only with
    ULP evidence, a difference seen only in the sample or only in the sign of zero named as such."""
    if m.zero_sign:
        return SIGNED_ZERO
    if m.kind is None and m.max_ulp:
        return WITHIN_SAMPLE
    if m.kind == Difference.NUMERICAL_DRIFT and not m.max_ulp:
        return OUTSIDE_SAMPLE
    return m.kind.value if m.kind else None


def _fingerprints_differ(f: Finding) -> bool:
    """Whether the finding is about different outputs (not only about an invariance result)."""
    if f.match == Match.NEW_STREAM:
        return any(
            s.nearest is not None and s.nearest.fingerprint != s.fingerprint for s in f.streams
        )
    return f.verdict == Verdict.DIVERGENT and len({s.fingerprint for s in f.streams}) > 1


def drift_measures(
    findings: Sequence[Finding],
) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """(largest ULP, rtol, atol) over the findings a report shows as drift (each has a ULP
    figure: :func:`kind_of`); the tolerances accept every one of them (None: none does)."""
    drifts = [f for f in findings if kind_of(f) == Difference.NUMERICAL_DRIFT.value]
    ulps = [f.measured.max_ulp for f in drifts if f.measured.max_ulp]
    return (
        max(ulps) if ulps else None,
        largest_tolerance([f.measured.rtol for f in drifts]),
        largest_tolerance([f.measured.atol for f in drifts]),
    )


def largest_tolerance(values: Sequence[Optional[float]]) -> Optional[float]:
    """The largest of the cases' tolerances; None when a case has none (no tolerance of that
    kind accepts it)."""
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)
