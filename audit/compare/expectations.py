"""Accepted divergences: a small reviewed text file, one expectation per line
(docs/expectations.md).

Format (``#`` starts a comment; values with spaces go in double quotes)::

    # probe glob  [param=value ...]  [field=value]  [kind=KIND [max_ulp=N]]
    #             reason="..."  [until=YYYY-MM-DD]
    torch.randn  cpu_capability=DEFAULT  kind=numerical-drift max_ulp=256  reason="Box-Muller"
    torch.Tensor.index_add_  device=cuda  kind=nondeterministic  reason="atomics on CUDA"

- the probe glob matches the probe id or the probe key;
- ``key=value`` tokens whose key is an environment field name the *field/value*; ``kind``
  with one of :data:`KINDS` names the kind of finding accepted, ``max_ulp`` its bound (with
  ``kind=numerical-drift`` only); every other key (``kind`` with another value too, e.g.
  numpy.argsort's ``kind=stable``) is a case parameter that must equal the value (``device``
  matches the device);
- the kind of a finding (:func:`kind_of`): ``error`` (error, crash, timeout, a case that no
  longer runs), ``nondeterministic``, ``variant`` (an invariance that breaks), or how its
  streams differ: ``structural``, ``stream-change``, ``sparse``, ``numerical-drift``, or
  ``unlocated`` (they differ where no sampled element or block digest shows);
- a line with a kind accepts only findings of that kind (in baseline mode: every new stream,
  against its nearest known stream), within ``max_ulp`` when given (an unknown size is not
  within it);
- a line without a kind accepts any kind but ``error`` and has no bound: the output says so
  for each such line that accepted something, with the kinds and largest size it accepted;
- errors are accepted only by ``kind=error``; a kindless line that matches errors says how
  many it left unaccepted;
- with a field/value, a stream is accepted when every environment that produced it has that
  value; a divergent finding is accepted when all its streams but one are accepted; in
  baseline mode a new stream is accepted when it is; an error when every environment where
  the case failed has the value;
- without a field/value the whole case is accepted;
- a line that accepts findings of more than one kind is reported with a warning;
- after ``until`` the expectation no longer applies and is reported as expired; an
  expectation that matched nothing is reported too, so the file does not rot.

Lines are indexed (exact probe ids, then globs by their literal prefix), so a file of tens of
thousands of lines costs about as much as the compare itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Pattern, Tuple

from audit.compare.attribution import shown
from audit.compare.model import Comparison, Difference, Finding, Match, Stream, Verdict
from audit.errors import UsageError
from audit.worker.environment import FIELDS as ENV_FIELDS

ERROR = "error"
NONDETERMINISTIC = "nondeterministic"
VARIANT = "variant"
UNLOCATED = "unlocated"
#: Every kind a line may name, most severe first: the non-difference kinds, then compare's
#: difference kinds (audit.compare.model.Difference), then a difference compare could not locate.
KINDS: Tuple[str, ...] = (
    ERROR,
    NONDETERMINISTIC,
    VARIANT,
    *(d.value for d in Difference),
    UNLOCATED,
)
#: Matches (baseline mode) that are not failures to run; any other match counts as an error.
_RUNS = {Match.NEW_STREAM, Match.NONDETERMINISTIC, Match.INCOMPARABLE, Match.NEW_CASE, Match.KNOWN}
_GLOB = re.compile(r"[*?\[]")


@dataclass
class Expectation:
    source: str  # "file:line"
    probe: str
    params: Dict[str, str]
    field: Optional[str] = None
    value: Optional[str] = None
    reason: str = ""
    until: Optional[dt.date] = None
    kind: Optional[str] = None  # one of KINDS; None: any kind but error, no bound
    max_ulp: Optional[float] = None  # with kind numerical-drift: the largest ULP distance accepted


@dataclass
class Use:
    """What one :func:`apply` did with one expectation (the notes are made from it); the
    expectations themselves are not changed, so applying them again counts afresh."""

    matched: int = 0
    # baseline: reference splits it accepts
    in_reference: int = 0
    # kind -> findings accepted
    kinds: Counter = dataclasses.field(default_factory=Counter)
    # of the drifts accepted
    largest_ulp: Optional[float] = None
    # kindless: errors matched, not accepted
    errors_left: int = 0


def parse(text: str, source: str = "expectations") -> List[Expectation]:
    """Parse the file's text; a malformed line is a usage error naming the line."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        try:
            tokens = split(line)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if tokens:
            out.append(_expectation(tokens, where))
    return out


_SPACE = re.compile(r"[ \t\r\n]*")
_TOKEN = re.compile(r'(?:[^ \t\r\n"#]+|"[^"]*")+')


def split(line: str) -> List[str]:
    """``shlex.split(line, comments=True)``, about 20 times faster for the lines this file
    holds (no single quote, no backslash: those go to shlex)."""
    if "'" in line or "\\" in line:
        return shlex.split(line, comments=True)
    tokens: List[str] = []
    pos, end = 0, len(line)
    while True:
        pos = _SPACE.match(line, pos).end()  # type: ignore[union-attr]
        if pos == end or line[pos] == "#":
            return tokens
        found = _TOKEN.match(line, pos)
        if found is None:  # an unclosed quote: shlex says so
            return shlex.split(line, comments=True)
        tokens.append(found.group().replace('"', ""))
        pos = found.end()


def _expectation(tokens: List[str], where: str) -> Expectation:
    exp = Expectation(where, tokens[0], {})
    ulp: Optional[str] = None
    for token in tokens[1:]:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise UsageError(f"{where}: expected key=value, got {token!r}")
        if key == "reason":
            exp.reason = value
        elif key == "until":
            try:
                exp.until = dt.date.fromisoformat(value)
            except ValueError:
                raise UsageError(
                    f"{where}: until must be a date YYYY-MM-DD, not {value!r}"
                ) from None
        elif key == "kind" and value in KINDS:
            if exp.kind is not None:
                raise UsageError(
                    f"{where}: one kind per expectation ({exp.kind} and {value}); write two lines"
                )
            exp.kind = value
        elif key == "max_ulp":
            ulp = value
        elif key in ENV_FIELDS:
            if exp.field is not None:
                raise UsageError(
                    f"{where}: one field=value per expectation ({exp.field} and {key})"
                )
            exp.field, exp.value = key, value
        else:
            exp.params[key] = value
    if not exp.reason:
        raise UsageError(f'{where}: every expectation needs reason="why this is accepted"')
    if ulp is not None:
        exp.max_ulp = _bound(ulp, exp.kind, where)
    return exp


def _bound(text: str, kind: Optional[str], where: str) -> float:
    if kind != Difference.NUMERICAL_DRIFT.value:
        raise UsageError(
            f"{where}: max_ulp bounds kind=numerical-drift; this line has "
            f"{'kind=' + kind if kind else 'no kind'}"
        )
    try:
        bound = float(text)
    except ValueError:
        bound = math.nan
    if not math.isfinite(bound) or bound < 0:
        raise UsageError(f"{where}: max_ulp must be a number >= 0, not {text!r}")
    return bound


def load(path: str) -> List[Expectation]:
    """The expectations in file ``path``; a usage error if it is missing, unreadable or not text."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UsageError(f"--expectations {path!r} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read expectations file {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--expectations {path!r} is not a text file (not UTF-8)") from None
    if "\x00" in text:
        raise UsageError(f"--expectations {path!r} is not a text file (it holds NUL bytes)")
    return parse(text, path)


# --------------------------------------------------------------------------- kinds


def is_error(f: Finding) -> bool:
    """An error, crash or timeout, or (baseline mode) a case that does not run here as it did."""
    return f.verdict == Verdict.ERROR or (f.match is not None and f.match not in _RUNS)


def kind_of(f: Finding) -> Optional[str]:
    """The kind of a finding an expectation may accept (None: nothing to accept)."""
    if is_error(f):
        return ERROR
    if f.verdict == Verdict.NONDETERMINISTIC or f.match == Match.NONDETERMINISTIC:
        return NONDETERMINISTIC
    if f.match == Match.NEW_STREAM:
        kinds = [stream_kind(s)[0] for s in f.streams if s.known is False]
        return min(kinds, key=KINDS.index) if kinds else UNLOCATED
    if f.match is not None:
        return None  # known, new case, incomparable: nothing that fails
    if f.verdict == Verdict.VARIANT:
        return VARIANT
    if f.verdict == Verdict.DIVERGENT:
        if f.measured.kind is not None:
            return f.measured.kind.value
        fingerprints = {s.fingerprint for s in f.streams}
        return (
            VARIANT
            if len(fingerprints) == 1 and any(s.invariant is not None for s in f.streams)
            else UNLOCATED
        )
    return None


def stream_kind(s: Stream) -> Tuple[str, Optional[float]]:
    """Baseline mode: how a new stream differs from its nearest known stream, and by how many
    ULP."""
    n = s.nearest
    if n is None:
        return UNLOCATED, None
    if n.invariance is not None:
        return VARIANT, None
    return (n.measured.kind.value if n.measured.kind is not None else UNLOCATED), n.measured.max_ulp


def _size(f: Finding) -> Optional[float]:
    if f.match == Match.NEW_STREAM:
        sizes = [stream_kind(s)[1] for s in f.streams if s.known is False]
        return None if not sizes or None in sizes else max(x for x in sizes if x is not None)
    return f.measured.max_ulp


def _within(exp: Expectation, kind: Optional[str], size: Optional[float]) -> bool:
    if kind != exp.kind:
        return False
    return exp.max_ulp is None or (size is not None and size <= exp.max_ulp)


# --------------------------------------------------------------------------- matching


def _same(actual: Any, wanted: str) -> bool:
    return wanted in (str(actual), json.dumps(actual))


def _matches_params(exp: Expectation, f: Finding) -> bool:
    for key, wanted in exp.params.items():
        if key == "device":
            if f.device != wanted:
                return False
        elif key not in f.case or not _same(f.case[key], wanted):
            return False
    return True


def _accepts(exp: Expectation, stream: Stream, envs: List[Dict[str, Any]]) -> bool:
    return _all_have(exp, stream.env_ids, envs)


def _all_have(exp: Expectation, env_ids: Iterable[int], envs: List[Dict[str, Any]]) -> bool:
    values = {envs[e].get(exp.field or "") for e in env_ids if e < len(envs)}
    return bool(values) and all(shown(v) == exp.value for v in values)


def _accepts_finding(
    exp: Expectation, f: Finding, envs: List[Dict[str, Any]], kind: Optional[str]
) -> bool:
    if kind is None:
        return False
    if kind == ERROR:
        if exp.kind != ERROR:
            return False
        return exp.field is None or _all_have(exp, f.failed_env_ids, envs)
    if exp.kind is not None and exp.kind != kind:
        return False
    if f.match == Match.NEW_STREAM:
        new = [s for s in f.streams if s.known is False]
        return bool(new) and all(
            (exp.field is None or _accepts(exp, s, envs))
            and (exp.kind is None or _within(exp, *stream_kind(s)))
            for s in new
        )
    if exp.kind is not None and not _within(exp, kind, f.measured.max_ulp):
        return False
    if exp.field is None:
        return True
    if f.verdict == Verdict.DIVERGENT:
        return sum(not _accepts(exp, s, envs) for s in f.streams) <= 1
    if kind in (NONDETERMINISTIC, VARIANT) and exp.kind is not None:
        # only where the field has the value
        return _all_have(exp, (e for s in f.streams for e in s.env_ids), envs)
    return False


def _accepts_reference_split(exp: Expectation, f: Finding, envs: List[Dict[str, Any]]) -> bool:
    """Baseline mode: the reference itself holds streams of this case that the expectation
    accepts (a split between reference runs, which a compare against it never reports)."""
    streams = f.reference_streams
    if exp.field is None or exp.kind == ERROR or len(streams) < 2:
        return False
    accepted = sum(_accepts(exp, s, envs) for s in streams)
    return accepted > 0 and len(streams) - accepted <= 1


class Index:
    """The expectations by probe: exact ids in a dict, globs bucketed by their literal prefix.

    ``candidates(probe, probe_key)`` gives, in file order, the expectations whose glob matches
    either name; it looks up each prefix of the two names (a few dozen dict lookups) instead of
    matching every glob, and remembers the answer per pair of names.
    """

    def __init__(self, expectations: List[Expectation]) -> None:
        self.exact: Dict[str, List[int]] = {}
        self.globs: Dict[str, List[Tuple[int, Callable[[str], Any]]]] = {}
        self.expectations = expectations
        compiled: Dict[str, Pattern[str]] = {}
        for i, exp in enumerate(expectations):
            found = _GLOB.search(exp.probe)
            if found is None:
                self.exact.setdefault(exp.probe, []).append(i)
                continue
            pattern = compiled.get(exp.probe)
            if pattern is None:
                pattern = compiled[exp.probe] = re.compile(fnmatch.translate(exp.probe))
            self.globs.setdefault(exp.probe[: found.start()], []).append((i, pattern.match))
        self.lengths = sorted({len(prefix) for prefix in self.globs})
        self._seen: Dict[Tuple[str, str], List[Expectation]] = {}

    def candidates(self, probe: str, probe_key: str) -> List[Expectation]:
        names = (probe, probe_key)
        found = self._seen.get(names)
        if found is None:
            hits: set = set()
            for name in set(names):
                hits.update(self.exact.get(name, ()))
                for n in self.lengths:
                    if n > len(name):
                        break
                    hits.update(i for i, match in self.globs.get(name[:n], ()) if match(name))
            found = self._seen[names] = [self.expectations[i] for i in sorted(hits)]
        return found


def apply(
    comparison: Comparison, expectations: List[Expectation], today: Optional[dt.date] = None
) -> Comparison:
    """The comparison with the findings the expectations accept marked (``Finding.expected``,
    one new finding each), and notes on expired, unused, unbounded or several-kind
    expectations."""
    today = today or dt.date.today()
    index = Index([e for e in expectations if e.until is None or e.until >= today])
    uses: Dict[int, Use] = {id(exp): Use() for exp in expectations}
    findings = []
    for finding in comparison.findings:
        expected = _expected(finding, index, comparison, uses)
        same = expected == finding.expected
        findings.append(finding if same else dataclasses.replace(finding, expected=expected))
    lines = [line for exp in expectations for line in notes(exp, today, uses[id(exp)])]
    return dataclasses.replace(
        comparison, findings=findings, expectation_notes=comparison.expectation_notes + lines
    )


def _expected(
    finding: Finding, index: Index, comparison: Comparison, uses: Dict[int, Use]
) -> Optional[str]:
    """Why ``finding`` is accepted (the first expectation that accepts it; None: none does),
    counting in the :class:`Use` of every expectation that matches it what it did with it."""
    accepted = finding.expected
    kind: Optional[str] = None
    measured = False
    for exp in index.candidates(finding.probe, finding.probe_key):
        if not _matches_params(exp, finding):
            continue
        if not measured:
            kind, measured = kind_of(finding), True
        use = uses[id(exp)]
        if _accepts_finding(exp, finding, comparison.envs, kind):
            _count(use, finding, kind)
            accepted = accepted or f"{exp.reason} ({exp.source})"
        elif _accepts_reference_split(exp, finding, comparison.reference_envs):
            use.in_reference += 1
        elif kind == ERROR and exp.kind is None and not accepted and finding.unexpected:
            use.errors_left += 1
    return accepted


def _count(use: Use, finding: Finding, kind: Optional[str]) -> None:
    use.matched += 1
    use.kinds[kind] += 1
    size = _size(finding)
    if kind == Difference.NUMERICAL_DRIFT.value and size is not None:
        use.largest_ulp = size if use.largest_ulp is None else max(use.largest_ulp, size)


def notes(exp: Expectation, today: dt.date, use: Optional[Use] = None) -> List[str]:
    """What the output says about one expectation after it was applied (warnings first);
    ``use``: what the application did with it (None: nothing matched it)."""
    use = use or Use()
    what = f"({exp.probe}: {exp.reason})"
    out = []
    if len(use.kinds) > 1:
        kinds = ", ".join(
            f"{k} {n}" for k, n in sorted(use.kinds.items(), key=lambda kn: KINDS.index(kn[0]))
        )
        out.append(
            f"warning: {exp.source} accepts findings of {len(use.kinds)} kinds ({kinds}); "
            f"state the one it is for with kind= {what}"
        )
    if use.errors_left:
        n = use.errors_left
        out.append(
            f"warning: {exp.source} matches {n} error{'s' if n > 1 else ''} it does not accept: "
            f"errors need a line with kind=error {what}"
        )
    if exp.until is not None and exp.until < today:
        out.append(f"{exp.source}: expired on {exp.until} {what}")
    elif use.matched and exp.kind is None:
        out.append(
            f"{exp.source}: no kind stated, so no bound: it accepted {_accepted(use)}; "
            f"{_suggest(use)} {what}"
        )
    elif not use.matched and use.in_reference:
        unmeasured = ", of a kind not measured there" if exp.kind is not None else ""
        out.append(
            f"{exp.source}: nothing new to accept; it accepts a split the reference already holds "
            f"({use.in_reference} case{'s' if use.in_reference > 1 else ''}{unmeasured}; "
            f"{exp.probe}: {exp.reason})"
        )
    elif not use.matched:
        hint = ""
        if "kind" in exp.params:
            hint = (
                f"; kind={exp.params['kind']} is read as a case parameter "
                f"(kinds: {', '.join(KINDS)})"
            )
        out.append(f"{exp.source}: matched nothing{hint} {what}")
    return out


def _accepted(use: Use) -> str:
    n = use.matched
    parts = []
    for kind, count in sorted(use.kinds.items(), key=lambda kn: KINDS.index(kn[0])):
        size = (
            f", up to {use.largest_ulp:g} ULP"
            if kind == Difference.NUMERICAL_DRIFT.value and use.largest_ulp is not None
            else ""
        )
        parts.append(f"{count} {kind}{size}")
    return f"{n} finding{'s' if n > 1 else ''} ({'; '.join(parts)})"


def _suggest(use: Use) -> str:
    if len(use.kinds) > 1:
        return "write one line per kind, each with kind="
    (kind,) = use.kinds
    bound = (
        f" max_ulp={use.largest_ulp:g}"
        if kind == Difference.NUMERICAL_DRIFT.value and use.largest_ulp is not None
        else ""
    )
    return f"bound it with kind={kind}{bound}"
