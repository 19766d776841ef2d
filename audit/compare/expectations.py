"""Accepted divergences: a small reviewed text file, one expectation per line.

Format (``#`` starts a comment; values with spaces go in double quotes)::

    # probe glob   [param=value ...]  [field=value]           reason="..."            [until=YYYY-MM-DD]
    torch.randn    dtype=float32      cpu_capability=DEFAULT  reason="vectorised Box-Muller; #123"  until=2027-06-30
    torch.Tensor.index_add_  device=cuda  reason="atomics on CUDA; known nondeterministic"

- the probe glob matches the probe id or the probe key;
- ``key=value`` tokens whose key is an environment field name the *field/value*; every
  other key is a case parameter that must equal the value (``device`` matches the device);
- with a field/value, a stream is accepted when every environment that produced it has
  that value; a divergent finding is accepted when all its streams but one are accepted,
  and in baseline mode a new stream is accepted when it is;
- without a field/value the whole case is accepted (any verdict but identical);
- after ``until`` the expectation no longer applies and is reported as expired; an
  expectation that matched nothing is reported too, so the file does not rot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
import shlex
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from audit.compare.model import Comparison, Finding, Match, Stream, Verdict
from audit.errors import UsageError
from audit.worker.environment import FIELDS as ENV_FIELDS


@dataclass
class Expectation:
    source: str  # "file:line"
    probe: str
    params: Dict[str, str]
    field: Optional[str] = None
    value: Optional[str] = None
    reason: str = ""
    until: Optional[dt.date] = None
    matched: int = dataclasses.field(default=0, compare=False)
    in_reference: int = dataclasses.field(default=0, compare=False)  # baseline: reference splits it accepts


def parse(text: str, source: str = "expectations") -> List[Expectation]:
    """Parse the file's text; a malformed line is a usage error naming the line."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if tokens:
            out.append(_expectation(tokens, where))
    return out


def _expectation(tokens: List[str], where: str) -> Expectation:
    exp = Expectation(where, tokens[0], {})
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
                raise UsageError(f"{where}: until must be a date YYYY-MM-DD, not {value!r}") from None
        elif key in ENV_FIELDS:
            if exp.field is not None:
                raise UsageError(f"{where}: one field=value per expectation ({exp.field} and {key})")
            exp.field, exp.value = key, value
        else:
            exp.params[key] = value
    if not exp.reason:
        raise UsageError(f'{where}: every expectation needs reason="why this is accepted"')
    return exp


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


def _same(actual: Any, wanted: str) -> bool:
    return wanted in (str(actual), json.dumps(actual))


def _matches_case(exp: Expectation, f: Finding) -> bool:
    if not (fnmatch.fnmatchcase(f.probe, exp.probe) or fnmatch.fnmatchcase(f.probe_key, exp.probe)):
        return False
    for key, wanted in exp.params.items():
        if key == "device":
            if f.device != wanted:
                return False
        elif key not in f.case or not _same(f.case[key], wanted):
            return False
    return True


def _accepts(exp: Expectation, stream: Stream, envs: List[Dict[str, Any]]) -> bool:
    values = {envs[e].get(exp.field or "") for e in stream.env_ids}
    return bool(values) and all(("unset" if v is None else str(v)) == exp.value for v in values)


def _accepts_finding(exp: Expectation, f: Finding, envs: List[Dict[str, Any]]) -> bool:
    if f.verdict == Verdict.IDENTICAL and f.match in (None, Match.KNOWN):
        return False
    if exp.field is None:
        return True
    if f.match == Match.NEW_STREAM:
        return all(_accepts(exp, s, envs) for s in f.streams if s.known is False)
    if f.verdict == Verdict.DIVERGENT and f.match is None:
        return sum(not _accepts(exp, s, envs) for s in f.streams) <= 1
    return False


def _accepts_reference_split(exp: Expectation, f: Finding, envs: List[Dict[str, Any]]) -> bool:
    """Baseline mode: the reference itself holds streams of this case that the expectation
    accepts (a split between reference runs, which a compare against it never reports)."""
    streams = f.reference_streams
    if exp.field is None or len(streams) < 2:
        return False
    accepted = sum(_accepts(exp, s, envs) for s in streams)
    return accepted > 0 and len(streams) - accepted <= 1


def apply(comparison: Comparison, expectations: List[Expectation], today: Optional[dt.date] = None) -> None:
    """Mark accepted findings (``Finding.expected``) and note expired or unused expectations."""
    today = today or dt.date.today()
    live = [e for e in expectations if e.until is None or e.until >= today]
    for finding in comparison.findings:
        for exp in live:
            if not _matches_case(exp, finding):
                continue
            if _accepts_finding(exp, finding, comparison.envs):
                exp.matched += 1
                finding.expected = finding.expected or f"{exp.reason} ({exp.source})"
            elif _accepts_reference_split(exp, finding, comparison.reference_envs):
                exp.in_reference += 1
    for exp in expectations:
        if exp.until is not None and exp.until < today:
            comparison.expectation_notes.append(f"{exp.source}: expired on {exp.until} ({exp.probe}: {exp.reason})")
        elif not exp.matched and exp.in_reference:
            comparison.expectation_notes.append(
                f"{exp.source}: nothing new to accept; it accepts a split the reference already holds "
                f"({exp.in_reference} case{'s' if exp.in_reference > 1 else ''}; {exp.probe}: {exp.reason})")
        elif not exp.matched:
            comparison.expectation_notes.append(f"{exp.source}: matched nothing ({exp.probe}: {exp.reason})")
