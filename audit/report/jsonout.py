"""``compare --json``: the contract of DESIGN.md, plus a few documented extra keys.

Top level: ``findings`` (the contract), ``counts`` (per verdict, and ``unsupported``),
``unsupported`` (cases unsupported in every run), ``skipped`` (files not read and why), ``notes``
(about the input, e.g. duplicate copies of a run ignored),
``expectations`` (expired or unmatched), ``rows``, ``runs``, ``exit_code``, and ``upgrade``
in upgrade mode.  A finding has ``probe``, ``case`` (the parsed params), ``device``,
``verdict``, ``difference`` (null unless divergent), ``axes``, ``streams``, and also
``probe_key``, ``probe_version``, ``explanation``, ``max_ulp``, ``fraction_differing``,
``runs``, ``unsupported_runs``, ``notes``, ``messages``, ``match`` and ``expected``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional

from audit.compare.model import Comparison, Finding, Stream


def _number(x: Optional[float]) -> Any:
    if x is None:
        return None
    return "inf" if math.isinf(x) else x


def stream_json(s: Stream) -> Dict[str, Any]:
    out: Dict[str, Any] = {"fingerprint": s.fingerprint, "run_count": s.run_count, "runs": s.runs,
                           "environment": s.environment, "dtype": s.dtype, "shape": s.shape}
    if s.known is not None:
        out.update(known=s.known, reference=s.reference)
    return out


def finding_json(f: Finding) -> Dict[str, Any]:
    return {
        "probe": f.probe, "case": f.case, "device": f.device, "verdict": f.verdict.value,
        "difference": f.difference.value if f.difference else None, "axes": f.axes,
        "streams": [stream_json(s) for s in f.streams],
        "probe_key": f.probe_key, "probe_version": f.probe_version, "explanation": f.explanation,
        "max_ulp": _number(f.max_ulp), "fraction_differing": f.fraction_differing,
        "runs": f.runs, "unsupported_runs": f.unsupported_runs, "notes": f.notes, "messages": f.messages,
        "match": f.match.value if f.match else None, "expected": f.expected,
    }


def upgrade_json(c: Comparison) -> Optional[Dict[str, Any]]:
    u = c.upgrade
    if u is None:
        return None
    return {
        "field": u.field, "values": u.values,
        "probes": [vars(p) for p in u.by_probe],
        "changes": [{"probe": ch.finding.probe, "case": ch.finding.case, "device": ch.finding.device,
                     "before": ch.before, "after": ch.after,
                     "difference": ch.finding.difference.value if ch.finding.difference else None}
                    for ch in u.changes],
        "confounders": {f"{a} -> {b}": fields for (a, b), fields in u.confounders.items()},
        "nondeterministic": len(u.nondeterministic),
    }


def render(c: Comparison) -> str:
    doc: Dict[str, Any] = {
        "findings": [finding_json(f) for f in c.findings],
        "counts": c.counts(),
        "unsupported": c.unsupported,
        "skipped": [{"path": s.path, "reason": s.reason} for s in c.skipped],
        "notes": c.notes,
        "expectations": c.expectation_notes,
        "rows": c.rows, "runs": c.runs, "cross_device": c.cross_device, "baseline": c.baseline,
        "exit_code": c.exit_code(),
    }
    if c.upgrade is not None:
        doc["upgrade"] = upgrade_json(c)
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
