"""bisect and advise as text and JSON: the answer first, then what each kind means for a user."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence

from audit.history.advise import Advice
from audit.history.bisect import Outcome
from audit.history.changes import ProbeChange

#: What a difference kind means to someone whose results depend on the stream.
MEANING: Dict[str, str] = {
    "stream-change": (
        "a different stream: any seeded run that replays it (dropout masks, data order, "
        "initialisation, sampling) gets different numbers"
    ),
    "structural": "a different dtype or shape: code that consumes the output may break",
    "sparse": "a few blocks of the output differ: most of the stream is the same",
    "numerical-drift": (
        "the same stream, results move by a few ULP: tolerances hold, bitwise tests break"
    ),
    "status": "the case started or stopped running (became supported, or fails now)",
}


def params_text(params: Dict[str, List[str]]) -> str:
    return " ".join(f"{k}={','.join(v)}" for k, v in params.items()) or "all cases"


def summary_lines(
    summary: Sequence[ProbeChange], markdown: bool = False, releases: Sequence[str] = ()
) -> List[str]:
    """One line per probe, release and kind, in release order."""
    if markdown:
        out = [
            "| release | previous | probe | device | kind | cases | parameters |",
            "|---|---|---|---|---|---:|---|",
        ]
        for p in summary:
            out.append(
                f"| {p.first_changed} | {p.previous} | `{p.probe}` | {p.device} | {_kind(p)} "
                f"| {p.changed} of {p.cases} | {params_text(p.params)} |"
            )
        return out
    width = max([len(p.probe) for p in summary] + [10])
    return [
        f"  {p.first_changed:<8} {p.probe:<{width}} {p.device:<4} {_kind(p):<26} "
        f"{p.changed:>4} of {p.cases:<4} {params_text(p.params)}{_gap(p, releases)}"
        for p in summary
    ]


def _gap(p: ProbeChange, releases: Sequence[str]) -> str:
    """Say so when a change spans releases where the case did not run (it could lie in any)."""
    if (
        p.first_changed in releases
        and releases.index(p.first_changed) > 0
        and releases[releases.index(p.first_changed) - 1] != p.previous
    ):
        return f"  (after {p.previous}: the case did not run in between)"
    return ""


def _kind(p: ProbeChange) -> str:
    return p.kind + (
        f" ({p.max_ulp:g} ULP)" if p.max_ulp is not None and p.kind == "numerical-drift" else ""
    )


def meanings(kinds: Sequence[str]) -> List[str]:
    seen = [k for k in MEANING if k in set(kinds)]
    return ["What the kinds mean:"] + [f"  {k:<16} {MEANING[k]}" for k in seen] if seen else []


def advice_text(a: Advice) -> str:
    low, high = a.used
    streams = [p for p in a.summary if p.kind != "status"]
    status = [p for p in a.summary if p.kind == "status"]
    probes = sorted({c.probe for c in a.stream_changes if a.differs(c)})
    net = len(a.net)
    head = (
        f"{a.library} {a.asked[0]} -> {a.asked[1]}: {net} of the {a.compared} cases "
        f"that run in both releases give different results ({len(probes)} probes)"
    )
    out = [
        head,
        f"({len(a.stream_changes)} changes along the way; "
        f"from {a.history}: {', '.join(a.releases)}; "
        "each the latest patch of its minor release)",
    ]
    out += [f"note: {n}" for n in a.notes]
    if streams:
        out += [
            "",
            "  release  probe / device / kind / changed cases "
            "/ the parameters that tell them apart",
        ]
        out += summary_lines(streams, releases=a.releases)
    undone = [c for c in a.stream_changes if not a.differs(c)]
    if undone:
        out.append(
            f"  ({len(undone)} of these changes are undone by a later release: "
            "the ends agree there)"
        )
    out += [
        "",
        f"unchanged: {len(a.unchanged_probes)} probes ({a.unchanged_cases} cases) "
        f"give the same streams in {low} and {high}",
    ]
    if status:
        out += [
            f"not compared: {sum(p.changed for p in status)} cases changed whether they run "
            f"({', '.join(sorted({p.probe for p in status}))})"
        ]
    out += [""] + meanings([p.kind for p in a.summary])
    if a.partial:
        out += [
            "",
            f"for an exact answer: python -m audit bisect {a.library} {a.asked[0]} {a.asked[1]}"
            f"   or: nox -s upgrade -- {a.library} {a.asked[0]} {a.asked[1]}",
        ]
    return "\n".join(out) + "\n"


def advice_json(a: Advice) -> str:
    doc: Dict[str, Any] = {
        "library": a.library,
        "from": a.asked[0],
        "to": a.asked[1],
        "history": {"from": a.used[0], "to": a.used[1], "releases": a.releases},
        "versions_built": [],
        "changes": [{**c.to_json(), "net": a.differs(c)} for c in a.changes],
        "cases_compared": a.compared,
        "cases_differing": len(a.net),
        "unchanged_probes": a.unchanged_probes,
        "notes": a.notes,
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def bisect_text(o: Outcome) -> str:
    streams = [c for c in o.changes if c.stream]
    head = (
        f"{o.library} {o.low} -> {o.high}: {len(streams)} stream changes in "
        f"{len({(c.probe, c.first_changed) for c in streams})} (probe, release) pairs; "
        f"audited {len(o.built)} of {len(o.releases.versions)} releases in {o.seconds:.0f} s"
        + (f" (and reused {len(o.reused)} earlier runs)" if o.reused else "")
    )
    out = [
        head,
        f"(releases from {o.releases.source}; Python {o.series.python}; "
        "one line per probe, release and kind: --json lists every case)",
    ]
    if o.summary:
        out += [
            "",
            "  release  probe / device / kind / changed cases "
            "/ the parameters that tell them apart (previous release audited)",
        ]
        out += [f"{line}  ({p.previous})" for line, p in zip(summary_lines(o.summary), o.summary)]
    out += ["", f"audited: {', '.join(o.built) or 'none'}"]
    if o.reused:
        out.append(
            f"reused: {', '.join(o.reused)} "
            "(earlier runs made the same way; --fresh audits them again)"
        )
    out += [f"skipped {v}: {why}" for v, why in o.skipped.items()]
    out += [""] + meanings([c.difference.value if c.difference else "status" for c in o.changes])
    out += [
        "",
        "limitation: a stream that changes and changes back between two audited releases "
        "is not seen",
    ]
    return "\n".join(out) + "\n"


def bisect_json(o: Outcome) -> str:
    return json.dumps(o.to_json(), indent=2) + "\n"
