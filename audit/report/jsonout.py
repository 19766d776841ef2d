"""``compare --json``: the contract of DESIGN.md, plus a few documented extra keys.

Top level: ``summary`` (one entry per probe and device, changed probes first: ``probe``
(the registration key), ``device``, ``cases``, ``verdicts`` (shown verdict -> cases; the
match in baseline mode), ``difference`` (kind -> changed cases; ``numerical-drift`` only
with ULP evidence that covers every differing block, ``within-sample`` for drift seen in
the sampled elements while other blocks differ too, ``signed-zero`` for sampled elements
that differ only in the sign of zero, ``outside-sample`` for a difference the sampled
elements did not see), ``rtol`` / ``atol`` (over the drifting cases),
``max_ulp`` (over the drifting cases), ``axes`` (the fields that explain the split, most
cases first), ``params`` (case parameter -> the values of the changed cases: a case changed
iff each of its parameters takes one of these values; omitted when nothing explains the
split), and ``family``, ``changed``, ``unexpected``, ``expected``, ``why``, ``which``),
``findings`` (the contract), ``counts`` (per verdict, and ``unsupported``), ``unsupported``
(cases unsupported in every run), ``skipped`` (files not read and why), ``notes`` (about
the input), ``expectations`` (expired or unmatched), ``rows``, ``runs``, ``exit_code``, and
``upgrade`` in upgrade mode.

A finding has ``probe``, ``case`` (the parsed params), ``device``, ``verdict``,
``difference`` (null unless divergent, or new in baseline mode), ``max_ulp``, ``axes``,
``streams``, ``first_difference``, ``blocks_differing``, ``blocks``, ``first_divergence``,
``varies_with``, ``values`` (the contract), and also ``probe_key``, ``probe_version``,
``explanation``, ``fraction_differing``, ``first_block``, ``axes_values`` (baseline mode:
field -> [this run's value, the reference's]), ``kind`` (the probe's), ``invariance`` (the
case's invariance parameter), ``runs``, ``unsupported_runs``, ``notes``,
``messages``, ``match`` (baseline mode: ``known``, ``new-stream``, ``no-longer-runs`` (the
reference ran the case ok, this run did not), ``error``, ``nondeterministic``,
``incomparable``, ``new-case``), ``expected``, ``covered`` (drift: whether the sampled
elements that differ reach every block that differs; when not, ``difference`` is null and
``max_ulp`` holds what the sample saw), ``zero_sign`` (the sampled elements differ only in
the sign of zero), ``rtol`` / ``atol`` (drift: the tolerance of each kind that accepts every
sampled element), and ``reference_streams`` when the core gives them.
A stream has ``nearest`` (baseline mode, a new stream: the closest known stream and the
difference against it) when the core gives it.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional

from audit.compare.model import Comparison, Finding, Measured, Nearest, Stream
from audit.report import phrases
from audit.report.view import ProbeSummary, View


def _number(x: Optional[float]) -> Any:
    if x is None:
        return None
    return "inf" if math.isinf(x) else x


def measured_json(m: Measured) -> Dict[str, Any]:
    """A measured difference under the contract's names (``difference``, ``fraction_differing``)."""
    return {
        "difference": m.kind.value if m.kind else None,
        "max_ulp": _number(m.max_ulp),
        "fraction_differing": m.fraction,
        "first_difference": m.first_difference,
        "first_block": m.first_block,
        "blocks_differing": m.blocks_differing,
        "blocks": m.blocks,
        "covered": m.covered,
        "zero_sign": m.zero_sign,
        "rtol": _number(m.rtol),
        "atol": _number(m.atol),
    }


def nearest_json(n: Nearest) -> Dict[str, Any]:
    return {
        "fingerprint": n.fingerprint,
        "reference": n.reference,
        **measured_json(n.measured),
        "invariance": n.invariance,
    }


def _attributes(obj: Any, *names: str) -> Dict[str, Any]:
    """The JSON keys that are ``obj``'s attributes of the same name, as they are, in order."""
    return {name: getattr(obj, name) for name in names}


def stream_json(s: Stream) -> Dict[str, Any]:
    out = _attributes(s, "fingerprint", "run_count", "runs", "environment", "dtype", "shape")
    if s.known is not None:
        out.update(known=s.known, reference=s.reference)
    if s.nearest is not None:
        out["nearest"] = nearest_json(s.nearest)
    if s.invariant is not None:
        out.update(invariant=s.invariant, variant_values=s.variant_values)
    return out


def finding_json(f: Finding) -> Dict[str, Any]:
    """A finding under the contract's keys, in its order; the measured difference's keys as
    :func:`measured_json` spells them."""
    m = measured_json(f.measured)

    def measured(*keys: str) -> Dict[str, Any]:
        return {key: m[key] for key in keys}

    out = {
        **_attributes(f, "probe", "case", "device"),
        "verdict": f.verdict.value,
        **measured("difference", "max_ulp"),
        "axes": f.axes,
        "streams": [stream_json(s) for s in f.streams],
        **measured("first_difference", "blocks_differing", "blocks"),
        **_attributes(f, "first_divergence", "varies_with", "values", "probe_key"),
        **_attributes(f, "probe_version", "explanation"),
        **measured("fraction_differing", "first_block"),
        **_attributes(f, "axes_values", "kind", "invariance", "runs", "unsupported_runs"),
        **_attributes(f, "notes", "messages"),
        "match": f.match.value if f.match else None,
        "expected": f.expected,
        **measured("covered", "zero_sign", "rtol", "atol"),
    }
    if f.reference_streams:
        out["reference_streams"] = [stream_json(s) for s in f.reference_streams]
    return out


def summary_json(p: ProbeSummary) -> Dict[str, Any]:
    out = _attributes(p, "probe", "device", "cases", "verdicts", "difference")
    out.update(max_ulp=_number(p.max_ulp), axes=p.axes, rtol=_number(p.rtol), atol=_number(p.atol))
    if p.params is not None:
        out["params"] = p.params.values
    out.update(
        family=p.family,
        changed=p.changed,
        unexpected=p.unexpected,
        expected=p.expected,
        why=p.why,
        which=phrases.which(p),
    )
    return out


def upgrade_json(c: Comparison) -> Optional[Dict[str, Any]]:
    u = c.upgrade
    if u is None:
        return None
    return {
        "field": u.field,
        "values": u.values,
        "probes": [
            {
                "probe": p.probe,
                "before": p.before,
                "after": p.after,
                "changed": p.changed,
                "compared": p.compared,
                "kinds": p.kinds,
                "max_ulp": _number(p.max_ulp),
                **({"params": p.params.values} if p.params else {}),
            }
            for p in u.by_probe
        ],
        "changes": [
            {
                "probe": ch.finding.probe,
                "case": ch.finding.case,
                "device": ch.finding.device,
                "before": ch.before,
                "after": ch.after,
                "difference": ch.finding.measured.kind.value if ch.finding.measured.kind else None,
            }
            for ch in u.changes
        ],
        "confounders": {
            f"{a} -> {b}": {k: {"before": v[0], "after": v[1]} for k, v in fields.items()}
            for (a, b), fields in u.confound_values.items()
        },
        "nondeterministic": len(u.nondeterministic),
    }


def render(v: View, details: bool = True) -> str:
    """The whole comparison (``details`` is accepted for a uniform call; JSON always has every
    case)."""
    c = v.comparison
    doc: Dict[str, Any] = {
        "summary": [summary_json(p) for p in v.probes],
        "findings": [finding_json(f) for f in c.findings],
        "counts": c.counts(),
        "unsupported": c.unsupported,
        "skipped": [{"path": s.path, "reason": s.reason} for s in c.skipped],
        "notes": c.notes,
        "expectations": c.expectation_notes,
        "rows": c.rows,
        "runs": c.runs,
        "cross_device": c.cross_device,
        "baseline": c.baseline,
        "exit_code": c.exit_code(),
    }
    if c.upgrade is not None:
        doc["upgrade"] = upgrade_json(c)
    return json.dumps(strict(doc), indent=2, sort_keys=False, allow_nan=False) + "\n"


#: How a number JSON cannot hold is written: as a string (JavaScript's own spelling).
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def strict(value: Any) -> Any:
    """``value`` with every non-finite float as the string "NaN", "Infinity" or "-Infinity":
    strict JSON (``JSON.parse`` rejects bare NaN), and the value still readable."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return NON_FINITE["nan" if math.isnan(value) else "inf" if value > 0 else "-inf"]
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value
