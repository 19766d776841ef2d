"""The words every report uses for a finding's how, where and why (one place per phrase).

Text, markdown and HTML all say "numerical-drift, max 3 ULP", "2 of 16 blocks differ,
first near element 65536" or "nearest known stream ..." the same way; only the markup
around the words differs.  Pure functions of the model's records.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from audit.compare.judgements import (
    FAMILIES,
    OUTSIDE_SAMPLE,
    SIGNED_ZERO,
    WITHIN_SAMPLE,
    kind_of,
    shown_kind,
)
from audit.compare.model import Difference, Finding, Measured, Stream
from audit.report.view import ProbeSummary

#: What a quiet verdict means (a case that could not be compared, rather than one that differs).
QUIET_MEANING = {
    "new-case": "new (the reference has no run of them)",
    "incomparable": (
        "incomparable (the probe's source changed: no run of the same version to compare with)"
    ),
}

#: What each kind means for a person who relies on the streams (the upgrade view says it).
MEANING = {
    Difference.STRUCTURAL.value: (
        "the output's dtype or shape changed: code that depends on them may break"
    ),
    Difference.STREAM_CHANGE.value: (
        "any seeded run that replays these streams (dropout masks, data order, "
        "initialisation) gets different numbers"
    ),
    Difference.SPARSE.value: (
        "most of the output is bit for bit the same, a few blocks differ: bitwise tests "
        "break; how far those values move is not measured"
    ),
    OUTSIDE_SAMPLE: (
        "the outputs differ where the sampled elements did not look: bitwise tests break; "
        "how far the values move is not measured"
    ),
    WITHIN_SAMPLE: (
        "the sampled elements moved by a few ULPs, but blocks they do not reach differ too: "
        "bitwise tests break; how far those blocks moved is not measured"
    ),
    SIGNED_ZERO: (
        "the sampled elements differ only in the sign of zero (0.0 vs -0.0): equal as numbers, "
        "bitwise tests and 1/x or copysign break"
    ),
    Difference.NUMERICAL_DRIFT.value: (
        "the same stream, its last bits move: bitwise tests break; "
        "each row's rtol accepts what was sampled"
    ),
}


def plural(n: int, word: str) -> str:
    """'1 case', '2 cases', '1 probe'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def ulp(value: Optional[float]) -> str:
    return "" if value is None else ("inf" if value == float("inf") else f"{value:g}")


def tolerance(rtol: Optional[float], atol: Optional[float]) -> str:
    """'accept with rtol >= 3.2e-05': the tolerance that accepts a drift's sampled elements
    (atol where a reference value is 0 and no rtol can)."""
    if rtol is not None:
        return f"accept with rtol >= {_up(rtol)}"
    if atol is not None:
        return f"accept with atol >= {_up(atol)}"
    return ""


def _up(x: float) -> str:
    """Two significant digits, rounded up (so the tolerance shown does accept)."""
    if x <= 0:
        return "0"
    text = f"{x:.1e}"
    return (
        text if float(text) >= x else f"{float(text) + 10 ** (math.floor(math.log10(x)) - 1):.1e}"
    )


def kind_words(
    kind: Optional[str],
    max_ulp: Optional[float] = None,
    fraction: Optional[float] = None,
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
) -> str:
    """'numerical-drift, max 3 ULP (50% of sampled elements differ; accept with rtol >= 2.4e-07)';
    drift only with ULP evidence."""
    if kind is None:
        return ""
    if kind == OUTSIDE_SAMPLE:
        return "differs outside the sampled elements"
    if kind == SIGNED_ZERO:
        return "the sampled elements differ only in the sign of zero (0.0 vs -0.0)"
    if kind == WITHIN_SAMPLE:
        return f"within {ulp(max_ulp)} ULP where sampled"
    if kind == Difference.NUMERICAL_DRIFT.value and max_ulp:
        extra = [
            x
            for x in (
                "" if fraction is None else f"{fraction:.0%} of sampled elements differ",
                tolerance(rtol, atol),
            )
            if x
        ]
        return f"{kind}, max {ulp(max_ulp)} ULP" + (f" ({'; '.join(extra)})" if extra else "")
    return kind


def how(f: Finding) -> str:
    """A finding's difference in words."""
    m = f.measured
    return kind_words(kind_of(f), m.max_ulp, m.fraction, m.rtol, m.atol)


def where(x: Measured) -> str:
    """Where in the stream the difference lies, from the block digests (empty when unknown).

    A stream that agrees up to a block and differs in every block after it is a
    desynchronisation from there on; otherwise 'k of N blocks differ, first near element i'.
    """
    k, n, first = x.blocks_differing, x.blocks, x.first_difference
    if k is None or n is None:
        return "" if first is None else f"first difference near element {first}"
    if k == 0:
        return f"all {n} blocks agree (the difference is outside the blocked output)"
    if x.first_block is not None and x.first_block > 0 and k == n - x.first_block:
        at = f"element {first}" if first is not None else f"block {x.first_block}"
        return f"agrees up to {at}, differs in every block after it ({k} of {n} blocks)"
    if k == n:
        return f"every block differs ({n} block{'s' if n > 1 else ''})"
    near = "" if first is None else f", first near element {first}"
    return f"{k} of {n} blocks differ{near}"


def divergence(d: Mapping[str, Any]) -> str:
    """A trace's first divergent op: which op, whether it made the difference, how much, what
    followed."""
    module = d.get("module")
    place = "" if module is None else f" in {module or '(root)'}"
    made = (
        "inputs identical: this op computes differently"
        if d.get("inputs_identical")
        else "inputs differ: inherited from earlier"
    )
    kind = kind_words(d.get("difference"), d.get("max_ulp"))
    if d.get("difference") == Difference.NUMERICAL_DRIFT.value and not d.get("max_ulp"):
        kind = "differs outside the sampled elements"
    later = ""
    if d.get("ops") is not None and d.get("index") is not None and d["ops"] > d["index"] + 1:
        later = f"; {d.get('ops_differing', '?')} of {d['ops'] - d['index'] - 1} later ops differ"
    return f"first divergent op #{d.get('index')} {d.get('op')}{place} ({made}), {kind}{later}"


def probe_name(p: ProbeSummary) -> str:
    """A probe summary's name: its id, and the device unless it is the CPU or the id says it."""
    return p.probe + ("" if p.device == "cpu" or "@" in p.probe else f" on {p.device}")


def stream_where(f: Finding, s: Stream) -> str:
    """The environment of a stream in the fields of the finding's best explanation (every
    varying field when nothing explains the split; the rest is in --json)."""
    best = set(f.axes[0].split("+")) if f.axes else set()
    fields = {k: v for k, v in s.environment.items() if k in best} or s.environment
    return ", ".join(f"{k}={'/'.join(v)}" for k, v in fields.items())


def nearest(s: Stream) -> str:
    """A new stream against the nearest stream the reference knows."""
    n = s.nearest
    if n is None:
        return ""
    parts = [
        f"nearest known stream {n.fingerprint[:12]}" + (f" ({n.reference})" if n.reference else "")
    ]
    if n.invariance is not None:
        return parts[0] + f", the same output; its invariance broke at: {n.invariance}"
    kind = shown_kind(n.measured)
    m = n.measured
    parts += [x for x in (kind_words(kind, m.max_ulp, m.fraction, m.rtol, m.atol), where(m)) if x]
    return ", ".join(parts)


# --------------------------------------------------------------------------- per probe


def own_family(p: ProbeSummary) -> str:
    """' (myteam)' after a probe whose family is none of the library families: a catalogue
    probe's id says its family, the family a team declares for its own probes is named."""
    return "" if p.family in FAMILIES else f" ({p.family})"


def counts(p: ProbeSummary) -> str:
    """'8 of 48 divergent', 'all 4 divergent', '2 error, 1 divergent of 12', '4 unsupported'."""
    unsupported = p.verdicts.get("unsupported", 0)
    compared = p.cases - unsupported
    shown = {v: n for v, n in p.verdicts.items() if v not in ("identical", "known", "unsupported")}
    if not shown:
        return ", ".join(f"{n} {v}" for v, n in p.verdicts.items())
    words = ", ".join(f"{n} {v}" for v, n in shown.items())
    if len(shown) > 1:
        text = f"{words} of {compared}"
    elif sum(shown.values()) == compared:
        text = words if compared == 1 else f"all {words}"
    else:
        text = f"{sum(shown.values())} of {compared} {next(iter(shown))}"
    return text + (f" (+{unsupported} unsupported)" if unsupported else "")


def drift_bound(max_ulp: float, rtol: Optional[float], atol: Optional[float]) -> str:
    """' (max 3 ULP; accept with rtol >= ...)': the largest drift and the tolerance that accepts
    it."""
    accept = tolerance(rtol, atol)
    return f" (max {ulp(max_ulp)} ULP" + (f"; {accept})" if accept else ")")


def kinds(p: ProbeSummary) -> str:
    """'numerical-drift (max 3 ULP)', or with counts when the changed cases differ in kind."""
    out = []
    for kind, n in p.difference.items():
        words = kind if kind != OUTSIDE_SAMPLE else "outside the sample"
        if kind == Difference.NUMERICAL_DRIFT.value and p.max_ulp:
            words += drift_bound(p.max_ulp, p.rtol, p.atol)
        elif kind == WITHIN_SAMPLE:
            blocks = (
                f"; {p.sampled_blocks[0]} of {p.sampled_blocks[1]} blocks differ"
                if p.sampled_blocks
                else ""
            )
            words = f"within {ulp(p.sampled_ulp)} ULP where sampled{blocks}"
        elif kind == SIGNED_ZERO:
            words = "sign of zero (0.0 vs -0.0)"
        out.append(words if len(p.difference) == 1 else f"{words} ×{n}")
    return ", ".join(out)


def which(p: ProbeSummary) -> str:
    """Which cases changed: the parameter explanation, 'all cases', or the one or two cases
    named."""
    if not p.changed or p.changed == p.cases - p.verdicts.get("unsupported", 0):
        return ""  # nothing to explain, or the count says "all"
    if p.params is not None:
        return "where " + p.params.text
    if p.named:
        return "case " + "; ".join(p.named)
    return "no parameter explains which"


def expected(p: ProbeSummary) -> str:
    if not p.expected:
        return ""
    return "expected" if p.expected == p.changed else f"{p.expected} expected"
