"""The explore answer as text and as JSON (the contract is documented in docs/explore.md).

Both renderers take one :class:`Answer`, built once by the command; they format, they do not
decide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from audit.domains import Domain, to_json
from audit.explore.search import Trial
from audit.explore.structure import Structure

#: Version of the JSON answer; bumped when a field changes meaning or goes away.
JSON_VERSION = 1


@dataclass
class Answer:
    probe: str
    version: str
    compared: str  # "threads=1 vs threads=2", "batch against its reference"
    mode: str  # "axis" or "invariance"
    axis: Optional[Dict[str, Any]]  # {"name", "values"} in axis mode
    invariance: Optional[str]
    search: Dict[str, Domain]
    fixed: Dict[str, Any]
    structure: Structure
    seed: int
    examples: Optional[int]  # the --examples asked for (None with --time)
    stopped: str
    seconds: float
    replay: str
    envs: List[Dict[str, Any]]  # per worker: label and the fields the axis touches
    search_seconds: float = 0.0  # of ``seconds``: searching, once the workers had started


def _example(trial: Optional[Trial]) -> Optional[Dict[str, Any]]:
    return None if trial is None else trial.as_json()


def as_json(answer: Answer) -> str:
    s = answer.structure
    data = {
        "version": JSON_VERSION,
        "probe": answer.probe,
        "probe_version": answer.version,
        "mode": answer.mode,
        "axis": answer.axis,
        "invariance": answer.invariance,
        "compared": answer.compared,
        "verdict": s.verdict,
        "statement": s.statement,
        "smallest": _example(s.smallest),
        "along": s.along,
        "measure": s.measure,
        "region": {
            "identical_up_to": s.identical_up_to,
            "tried_below": s.tried_below,
            "differs_from": s.differs_from,
            "tried_from": s.tried_from,
            "differing_from": s.differing_from,
            "rate_from": s.rate_from,
            "largest_tried": s.largest_tried,
            "differs_up_to": s.differs_up_to,
            "identical_from": s.identical_from,
        },
        "near": {
            "agreeing": [t.as_json() for t in s.near_agreeing],
            "differing": [t.as_json() for t in s.near_differing],
        },
        "counts": s.counts,
        "first_error": s.first_error,
        "search": {k: to_json(d) for k, d in answer.search.items()},
        "fixed": answer.fixed,
        "seed": answer.seed,
        "examples": answer.examples,
        "stopped": answer.stopped,
        "seconds": round(answer.seconds, 3),
        "search_seconds": round(answer.search_seconds, 3),
        "replay": answer.replay,
        "workers": answer.envs,
    }
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=str)


def _params(trial: Trial) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in trial.drawn.items())


def _how(trial: Trial) -> str:
    if trial.kind is None:
        return ""
    ulp = f", {trial.max_ulp:,.0f} ULP" if trial.max_ulp else ""
    return f" ({trial.kind}{ulp})"


def as_text(answer: Answer) -> str:
    s = answer.structure
    head = {"no-difference": "no difference found", "inconclusive": "cannot tell"}.get(
        s.verdict, "differs"
    )
    lines = [f"{answer.probe}, {answer.compared}: {head}."]
    if s.smallest is not None:
        lines.append(f"smallest differing example: {_params(s.smallest)}{_how(s.smallest)}")
    lines.append(s.statement + ".")
    if s.verdict == "no-difference":
        lines.append("largest tried: " + ", ".join(_params(t) for t in s.near_agreeing))
    elif s.near_agreeing or s.near_differing:
        lines.append("near the boundary:")
        lines += [f"  agrees:  {_params(t)}" for t in s.near_agreeing]
        lines += [f"  differs: {_params(t)}{_how(t)}" for t in s.near_differing]
    c = s.counts
    fixed = ", ".join(f"{k}={json.dumps(v)}" for k, v in answer.fixed.items())
    lines.append(
        f"searched {', '.join(answer.search)}"
        + (f" (held: {fixed})" if fixed else "")
        + f": {sum(c.values())} examples ({c['identical']} identical, {c['differs']} differ, "
        f"{c['error']} errors, {c['unsupported']} unsupported) in {answer.seconds:.1f} s"
        + (", stopped by --time" if answer.stopped == "time" else "")
    )
    if s.first_error:
        lines.append(f"first failure: {s.first_error}")
    lines.append(f"replay: {answer.replay}")
    return "\n".join(lines)
