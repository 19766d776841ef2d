"""What a comparison says: verdicts, difference kinds, streams and findings.

The closed sets are Enums and the order of :class:`Verdict` is the order in which a case
is checked (the first that applies wins) and the order in which reports list them.
Everything here is plain data: the compare functions make it, the report modules show it.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from audit.compare.params import ParamSplit


class Verdict(str, enum.Enum):
    """One verdict per case, checked in this order.

    1. ``error``: a run recorded error, crash or timeout for the case.
    2. ``nondeterministic``: a run disagreed with itself (``repeat_identical`` false), or
       two runs with the same environment (every field but run id and start time equal)
       got different fingerprints.  Checked before ``divergent`` so run-to-run noise is
       never blamed on a version or a machine.
    3. ``divergent``: the comparable runs produced more than one fingerprint (or an
       invariance that holds in some environments and not in others).
    4. ``variant``: an invariance case whose result changed with the parameter that should
       not change it (batch size, chunking, num_workers, layout, a state round-trip), the
       same way in every run.
    5. ``identical``: they produced one.
    6. ``incomparable``: the probe's source changed (new probe version) and the newest
       version has a single run, so there is nothing of the same version to compare with.

    A case that is ``unsupported`` in every run gets no verdict: it is counted apart.
    """

    ERROR = "error"
    NONDETERMINISTIC = "nondeterministic"
    DIVERGENT = "divergent"
    VARIANT = "variant"
    IDENTICAL = "identical"
    INCOMPARABLE = "incomparable"


class Difference(str, enum.Enum):
    """How two streams of one case differ, from their dtype, shape and sampled elements.

    Listed from most to least severe; a case with several streams reports the most severe.
    """

    STRUCTURAL = "structural"  # dtype or shape differ
    # unrelated values (or integers/booleans/unsampled outputs differ)
    STREAM_CHANGE = "stream-change"
    SPARSE = "sparse"  # a few blocks differ and the sampled elements agree
    NUMERICAL_DRIFT = "numerical-drift"  # same stream, last bits differ (see audit.compare.ulp)


class Match(str, enum.Enum):
    """Baseline mode: how a case of the new runs relates to the reference runs."""

    NEW_STREAM = "new-stream"  # a fingerprint the reference never produced
    # the reference ran the case ok; the new runs only failed or were unsupported
    NO_LONGER_RUNS = "no-longer-runs"
    ERROR = "error"  # the new runs errored
    NONDETERMINISTIC = "nondeterministic"  # the new runs disagree with themselves
    INCOMPARABLE = "incomparable"  # the reference has the case only under another probe version
    NEW_CASE = "new-case"  # the reference lacks the case (a new probe or parameter)
    KNOWN = "known"  # every fingerprint matches a stream the reference knows


class Measured(NamedTuple):
    """How one stream differs from another, and where (None: unknown): what a finding, a nearest
    known stream and a block comparison all measure (:mod:`audit.compare.difference` makes it)."""

    kind: Optional[Difference] = None
    max_ulp: Optional[float] = None
    fraction: Optional[float] = None  # share of sampled elements whose bits differ
    # first element of the first differing block (None: unknown)
    first_difference: Optional[int] = None
    # index of the first differing block: with blocks, tells a desync
    first_block: Optional[int] = None
    blocks_differing: Optional[int] = None
    blocks: Optional[int] = None
    # drift: the differing sampled elements reach every differing block
    covered: Optional[bool] = None
    zero_sign: bool = False  # the sampled elements differ only in the sign of zero (0.0 vs -0.0)
    rtol: Optional[float] = None  # drift: the relative tolerance that accepts every sampled element
    atol: Optional[float] = None  # drift: the absolute tolerance that does

    @property
    def severity(self) -> int:
        """0 for the most severe kind; a difference measured only where sampled (or only in
        the sign of zero) ranks with sparse; unknown counts as least severe."""
        order = list(Difference)  # most severe first
        if self.kind is None and (self.max_ulp or self.zero_sign):
            return order.index(Difference.SPARSE)
        return order.index(self.kind) if self.kind is not None else len(order)


@dataclass(frozen=True)
class Nearest:
    """Baseline mode: the stream the reference knows for a case that is closest to a new stream.

    "Closest" is the core's choice (least severe difference, then fewest ULP); ``measured`` is
    the new stream against it, as a divergent finding's measures its streams against the most
    common one.
    """

    fingerprint: str
    # which reference environments produced it, in words ("cpu_capability=AVX512")
    reference: str = ""
    measured: Measured = Measured()
    # invariance cases whose output is bit for bit the nearest stream's but whose invariance
    # result is not: what broke the invariance there ("held", or the values, "1, 2")
    invariance: Optional[str] = None
    env_ids: List[int] = field(default_factory=list, repr=False)  # into Comparison.reference_envs


@dataclass(frozen=True)
class Stream:
    """One distinct result of a case (a fingerprint, with the invariance result of an
    invariance case) and who produced it.  Frozen like :class:`Finding`: baseline mode makes
    a new one with what the reference says of it."""

    fingerprint: str
    run_count: int
    # run ids (up to 100): all of them unless the case is identical, then one per environment
    runs: List[str]
    environment: Dict[str, List[str]]  # the fields that vary within the case -> values seen here
    dtype: Optional[str] = None
    shape: Optional[str] = None
    known: Optional[bool] = None  # baseline mode: does the reference know this stream?
    reference: Optional[str] = None  # baseline mode: which reference environments produced it
    # into Comparison.envs (not reported)
    env_ids: List[int] = field(default_factory=list, repr=False)
    # baseline mode, a new stream: the closest stream the reference knows
    nearest: Optional[Nearest] = None
    # invariance cases: whether the invariance held in this stream's runs
    invariant: Optional[bool] = None
    # invariance cases: the values that broke it
    variant_values: List[str] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return identity_of(self.fingerprint, self.invariant, self.variant_values)


def identity_of(fingerprint: str, invariant: Optional[bool], variant_values: List[str]) -> str:
    """What tells two streams apart: the fingerprint, and for invariance cases whether the
    invariance held and which values broke it."""
    if invariant is None:
        return fingerprint
    return f"{fingerprint}|{invariant}|{','.join(variant_values)}"


@dataclass(frozen=True)
class Finding:
    """The comparison of one case across runs.

    Frozen: each stage that adds to a finding (baseline mode's judgement, an expectation that
    accepts it) makes a new one with :func:`dataclasses.replace`, all its values at once, so
    that what a finding says is decided in one place per stage and never patched afterwards.
    """

    probe: str
    probe_key: str
    case_key: str
    case: Dict[str, Any]
    device: str
    probe_version: str
    verdict: Verdict
    axes: List[str] = field(default_factory=list)
    explanation: str = ""
    streams: List[Stream] = field(default_factory=list)
    runs: int = 0  # runs with a result (ok or failed) for the case
    unsupported_runs: int = 0
    notes: List[str] = field(default_factory=list)
    messages: List[str] = field(default_factory=list)  # error messages, first few
    match: Optional[Match] = None  # baseline mode only
    expected: Optional[str] = None  # reason from an expectation that accepts this finding
    # how its streams differ (divergent) or a new stream from the reference
    measured: Measured = Measured()
    # trace probes: the first op whose output differs
    first_divergence: Optional[Dict[str, Any]] = None
    varies_with: Optional[str] = None  # invariance cases: the parameter
    values: List[str] = field(default_factory=list)  # invariance cases: the values that disagree
    kind: Optional[str] = None  # the probe's kind (generator, op, trace), from the run files
    family: Optional[str] = None  # the family the probe declares, from the run files (schema 4)
    # invariance cases: the parameter that must not change the result
    invariance: Optional[str] = None
    # baseline: field -> [this run's, reference's]
    axes_values: Dict[str, List[str]] = field(default_factory=dict)
    # baseline: streams the reference knows
    reference_streams: List[Stream] = field(default_factory=list)
    # envs with a failed run of the case
    failed_env_ids: List[int] = field(default_factory=list, repr=False)

    @property
    def params(self) -> str:
        """The parameters as one short line (key=value ...)."""
        return " ".join(f"{k}={v}" for k, v in self.case.items())

    @property
    def unexpected(self) -> bool:
        """Whether this finding should fail a gate (exit code 1)."""
        if self.expected:
            return False
        if self.match is not None:
            return self.match in (
                Match.NEW_STREAM,
                Match.NO_LONGER_RUNS,
                Match.ERROR,
                Match.NONDETERMINISTIC,
            )
        return self.verdict in (
            Verdict.ERROR,
            Verdict.NONDETERMINISTIC,
            Verdict.DIVERGENT,
            Verdict.VARIANT,
        )


@dataclass(frozen=True)
class Comparison:
    """Everything one ``compare`` found."""

    findings: List[Finding]
    unsupported: List[Dict[str, Any]]  # cases unsupported in every run: probe, case, device, reason
    rows: int
    runs: int
    skipped: List[Any]  # audit.store.location.Skipped
    cross_device: bool = False
    baseline: Optional[str] = None  # what the reference was, in baseline mode
    expectation_notes: List[str] = field(default_factory=list)  # expired or unmatched expectations
    upgrade: Optional[UpgradeView] = None  # in --upgrade mode
    envs: List[Dict[str, Any]] = field(default_factory=list, repr=False)  # environment id -> fields
    # about the input: e.g. duplicate copies of a run ignored
    notes: List[str] = field(default_factory=list)
    # baseline: env id -> fields
    reference_envs: List[Dict[str, Any]] = field(default_factory=list, repr=False)

    def narrowed(self, patterns: List[str]) -> Comparison:
        """The cases of the probes whose id or registration key matches one of the globs (as
        ``run --probe`` selects them), as a new comparison."""

        def kept(probe: Any, key: Any) -> bool:
            return any(
                fnmatch.fnmatchcase(str(probe), p) or fnmatch.fnmatchcase(str(key), p)
                for p in patterns
            )

        return dataclasses.replace(
            self,
            findings=[f for f in self.findings if kept(f.probe, f.probe_key)],
            unsupported=[u for u in self.unsupported if kept(u.get("probe"), u.get("probe_key"))],
        )

    def counts(self) -> Dict[str, int]:
        """Findings per verdict in verdict order, then the unsupported count."""
        out = {v.value: 0 for v in Verdict}
        for f in self.findings:
            out[f.verdict.value] += 1
        out["unsupported"] = len(self.unsupported)
        return out

    @property
    def unexpected(self) -> List[Finding]:
        return [f for f in self.findings if f.unexpected]

    @property
    def compared(self) -> int:
        """Cases whose streams were compared: in baseline mode those that ran ok here and whose
        probe version the reference ran ok; otherwise every case but the incomparable ones."""
        if self.baseline is not None:
            return sum(
                f.match in (Match.KNOWN, Match.NEW_STREAM, Match.NONDETERMINISTIC)
                for f in self.findings
            )
        return sum(f.verdict != Verdict.INCOMPARABLE for f in self.findings)

    def exit_code(self) -> int:
        """0 nothing unexpected, 1 something unexpected or nothing compared at all (a gate
        fails closed), 3 only that input files were skipped."""
        if self.unexpected or (not self.compared and self.upgrade is None):
            return 1
        return 3 if self.skipped else 0


@dataclass
class UpgradeChange:
    """One case whose stream changed between two values of the field."""

    finding: Finding
    before: str
    after: str


@dataclass
class ProbeChanges:
    """One probe (registration key) across one step of the field."""

    probe: str
    before: str
    after: str
    changed: int
    compared: int
    kinds: Dict[str, int]  # kind -> changed cases (drift only with ULP evidence)
    max_ulp: Optional[float] = None  # over the drifting cases
    params: Optional[ParamSplit] = None  # case parameters that separate the changed cases
    family: str = "other"
    # over the drifting cases: the relative tolerance that accepts them
    rtol: Optional[float] = None
    atol: Optional[float] = None


#: field -> (values on the ``before`` side, values on the ``after`` side)
Confound = Dict[str, Tuple[List[str], List[str]]]


@dataclass(frozen=True)
class UpgradeView:
    """``compare --upgrade FIELD``: the cases whose streams change at each step of the field
    (:func:`audit.compare.upgrade.upgrade_view` makes it)."""

    field: str
    values: List[str]
    changes: List[UpgradeChange] = dataclasses.field(default_factory=list)
    by_probe: List[ProbeChanges] = dataclasses.field(default_factory=list)
    nondeterministic: List[Finding] = dataclasses.field(default_factory=list)
    confound_values: Dict[Tuple[str, str], Confound] = dataclasses.field(default_factory=dict)

    @property
    def steps(self) -> List[Tuple[str, str]]:
        return list(zip(self.values, self.values[1:]))

    @property
    def confounders(self) -> Dict[Tuple[str, str], List[str]]:
        """Step -> the other fields that changed with it (names of :attr:`confound_values`)."""
        return {step: list(fields) for step, fields in self.confound_values.items()}
