"""From the trials of a search to the answer: is there a boundary, where, and how sharp.

Pure.  Positions are measured along one parameter (:func:`position`): its value for an
integer, the product of the elements for a shape, the index for a listed value.

- no example differs: ``no-difference`` ("identical at every one of 200 examples tried");
- every example differs: ``everywhere``;
- a **boundary**: every example tried below the smallest difference agrees, and that many
  agreeing examples would be unlikely (< 5 %) if differences were spread everywhere at the
  rate seen above it, i.e. (1 - rate)**agreeing_below < 0.05; an agreeing value right next to
  the difference (what the bisection looks for) makes the boundary sharp, not more certain.
  Then: "identical for every size tried up to 32768; differs from 32769 on, at 38% of sizes
  tried from there";
- the same rule mirrored, for differences that stop rather than start (small batches differ,
  large ones agree): "differs for every batch tried up to 7 ...; identical from 8 on";
- otherwise the differences are **scattered**: the agreeing examples below the smallest
  difference are what chance gives at that rate, and no boundary is claimed;
- no example ran (all errors or unsupported): ``inconclusive``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from audit.domains import Domain, SampledFrom, Tuples, candidates
from audit.explore.search import Outcome, Trial

#: A boundary is claimed when the agreeing examples below the smallest difference would have
#: this small a chance or less, were differences spread at the rate seen above it.
CHANCE = 0.05

NEAR = 3  # examples shown on each side of the boundary


def position(value: Any, domain: Optional[Domain] = None) -> float:
    """Where ``value`` lies along its parameter (see the module doc)."""
    inner = candidates(domain)
    if isinstance(inner, SampledFrom):
        return float(list(inner.values).index(value)) if value in inner.values else math.inf
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return float(math.prod(value))
    return math.inf


@dataclass
class Structure:
    verdict: str  # no-difference | boundary | scattered | everywhere | inconclusive
    statement: str
    along: Optional[str]
    measure: str  # how positions are ordered: "size", "mkn by the product of its elements"
    smallest: Optional[Trial] = None
    # the largest agreeing value below the smallest difference
    identical_up_to: Optional[Any] = None
    tried_below: int = 0
    differs_from: Optional[Any] = None
    tried_from: int = 0
    differing_from: int = 0
    largest_tried: Optional[Any] = None
    # a boundary above which everything tried agrees (else None)
    differs_up_to: Optional[Any] = None
    identical_from: Optional[Any] = None
    near_agreeing: List[Trial] = field(default_factory=list)
    near_differing: List[Trial] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)
    first_error: Optional[str] = None  # what the first failed example said

    @property
    def rate_from(self) -> Optional[float]:
        return self.differing_from / self.tried_from if self.tried_from else None


def plural(name: str, domain: Optional[Domain] = None) -> str:
    inner = candidates(domain)
    if isinstance(inner, (Tuples, SampledFrom)) or not name.isidentifier():
        return f"{name} values"
    return name + ("es" if name.endswith(("s", "x", "ch", "sh")) else "s")


def measure_name(along: Optional[str], domain: Optional[Domain]) -> str:
    """How positions are ordered: the parameter's value, a shape's product, a list's order."""
    inner = candidates(domain)
    if along is None:
        return "example"
    if isinstance(inner, SampledFrom):
        return f"{along} in the order listed"
    if isinstance(inner, Tuples):
        return f"{along} by the product of its elements"
    return along


#: Differing values listed in full in a scattered answer when there are at most this many.
LISTED = 12


def _shown(trial: Trial, along: Optional[str]) -> Any:
    return trial.drawn.get(along) if along else trial.drawn


def structure(
    trials: Sequence[Trial],
    along: Optional[str],
    domain: Optional[Domain],
    shrunk: Optional[Trial] = None,
) -> Structure:
    """The answer, from every trial of the search (see the module doc for the rules)."""
    counts = {o.value: sum(1 for t in trials if t.outcome is o) for o in Outcome}
    valid = [t for t in trials if t.outcome in (Outcome.IDENTICAL, Outcome.DIFFERS)]
    name = along or "example"
    where = {id(t): position(_shown(t, along), domain) for t in valid}
    failed = [t for t in trials if t.outcome is Outcome.ERROR]
    base = Structure(
        "inconclusive",
        "",
        along,
        measure_name(along, domain),
        counts=counts,
        first_error=f"{failed[0].drawn}: {failed[0].message}" if failed else None,
    )
    if not valid:
        base.statement = (
            f"inconclusive: none of the {len(trials)} examples ran on every side "
            f"({counts['error']} errors, {counts['unsupported']} unsupported)"
        )
        return base
    ordered = sorted(valid, key=lambda t: where[id(t)])
    base.largest_tried = _shown(ordered[-1], along)
    differing = [t for t in ordered if t.outcome is Outcome.DIFFERS]
    agreeing = [t for t in ordered if t.outcome is Outcome.IDENTICAL]
    span = f"{name} from {_shown(ordered[0], along)} to {base.largest_tried}"
    if isinstance(candidates(domain), Tuples):
        span += ", ordered by the product of its elements"
    if not differing:
        base.verdict = "no-difference"
        base.identical_up_to = base.largest_tried
        base.tried_below = len(agreeing)
        base.near_agreeing = agreeing[-NEAR:][::-1]
        base.statement = f"identical at every one of the {len(agreeing)} examples tried ({span})"
        if failed:  # fail closed: those examples say nothing
            base.verdict = "inconclusive"
            base.statement += f", but {len(failed)} examples failed to run and say nothing"
        return base
    first = differing[0]
    if shrunk is not None and where.get(id(shrunk), math.inf) == where[id(first)]:
        first = shrunk  # equal position: keep the example hypothesis shrank to
    start = where[id(first)]
    below = [t for t in agreeing if where[id(t)] < start]
    above = [t for t in ordered if where[id(t)] >= start]
    base.smallest = first
    base.differs_from = _shown(first, along)
    base.tried_below = len(below)
    base.identical_up_to = _shown(below[-1], along) if below else None
    base.tried_from = len(above)
    base.differing_from = sum(1 for t in above if t.outcome is Outcome.DIFFERS)
    base.near_agreeing = (
        below[-NEAR:][::-1] + [t for t in above if t.outcome is Outcome.IDENTICAL][:NEAR]
    )
    base.near_differing = [t for t in above if t.outcome is Outcome.DIFFERS][:NEAR]
    rate = base.rate_from or 0.0
    if not agreeing:
        base.verdict = "everywhere"
        base.statement = f"differs at every one of the {len(differing)} examples tried ({span})"
        return base
    chance = (1.0 - rate) ** len(below)
    at = (
        f"at every {name}"
        if base.differing_from == base.tried_from
        else f"at {rate:.0%} of {plural(name, domain)}"
    )
    if not (below and chance < CHANCE) and _upper(base, ordered, where):
        return base
    if below and chance < CHANCE:
        base.verdict = "boundary"
        base.statement = (
            f"identical for every {name} tried up to {base.identical_up_to} ({len(below)} tried); "
            f"differs from {base.differs_from} on, {at} tried from there "
            f"({base.differing_from} of {base.tried_from})"
        )
        return base
    base.verdict = "scattered"
    share = f"{len(differing)} of {len(valid)} examples differ ({len(differing) / len(valid):.0%})"
    if below:
        why = (
            f"the smallest at {name} {base.differs_from}, and the {len(below)} agreeing below it "
            f"are what chance gives at that rate ({chance:.0%} likely)"
        )
    else:
        why = f"among agreeing ones, from the smallest {name} tried ({base.differs_from}) on"
    listed = ""
    if len(differing) <= LISTED:
        listed = f"; differs at {name} " + ", ".join(str(_shown(t, along)) for t in differing)
    base.statement = f"no boundary: differences are scattered; {share}, {why}{listed}"
    return base


def _upper(base: Structure, ordered: List[Trial], where: Dict[int, float]) -> bool:
    """The mirrored boundary: differences up to some value, every example tried above it agrees."""
    differing = [t for t in ordered if t.outcome is Outcome.DIFFERS]
    last = differing[-1]
    end = where[id(last)]
    above = [t for t in ordered if t.outcome is Outcome.IDENTICAL and where[id(t)] > end]
    upto = [t for t in ordered if where[id(t)] <= end]
    if not above:
        return False
    rate = len(differing) / len(upto)
    first_agree = above[0]
    if (1.0 - rate) ** len(above) >= CHANCE:
        return False
    name = base.along or "example"
    at = f"at every {name}" if rate == 1 else f"at {rate:.0%} of {plural(name)}"
    base.verdict = "boundary"
    base.differs_up_to = _shown(last, base.along)
    base.identical_from = _shown(first_agree, base.along)
    base.near_agreeing = above[:NEAR]
    base.near_differing = differing[-NEAR:][::-1]
    base.statement = (
        f"differs for {plural(name)} up to {base.differs_up_to}, {at} tried up to there "
        f"({len(differing)} of {len(upto)}); identical for every {name} tried from "
        f"{base.identical_from} on ({len(above)} tried)"
    )
    return True
