"""One verdict per case, decided on its outcomes in the order of Verdict.

Pure functions of a case's :class:`~audit.compare.rows.Outcome` records: how many rows
repeated an outcome does not change the cost, so ten million rows decide as fast as the
few thousand outcomes they collapse to.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

from audit.compare.model import Verdict, identity_of
from audit.compare.rows import FAILED, Outcome
from audit.worker.records import Status


class Tally(NamedTuple):
    """The facts of one case that the verdict order needs."""

    failed: bool  # some run recorded error, crash or timeout
    rows: int  # rows of the compared version, every status
    unsupported: int  # rows recorded unsupported
    ok_rows: int
    streams: int  # distinct streams among ok rows (fingerprint and invariance result)
    repeat_false: bool  # some ok run disagreed with itself
    same_env_split: bool  # two runs of one environment got different streams
    variant: bool  # an invariance case whose ok runs all found the invariance broken


def identity(o: Outcome) -> Tuple[Optional[str], Optional[bool], Optional[str]]:
    """What makes two ok outcomes the same stream: the fingerprint, and for an invariance case
    whether the invariance held and which values broke it (an invariance that holds in one
    environment and breaks in another is a split like any other)."""
    return o.fingerprint, o.invariant, o.variant_values


def values_list(variant_values: Optional[str]) -> List[str]:
    """The stored JSON list of the values that broke an invariance, as strings."""
    if not variant_values:
        return []
    try:
        values = json.loads(variant_values)
    except ValueError:
        return [variant_values]
    if not isinstance(values, list):
        return [str(values)]
    return [v if isinstance(v, str) else json.dumps(v) for v in values]


def stream_identity(o: Outcome) -> str:
    """:func:`identity` as a stream shows it (:meth:`audit.compare.model.Stream.identity`)."""
    return identity_of(o.fingerprint or "", o.invariant, values_list(o.variant_values))


def tally(outcomes: List[Outcome]) -> Tally:
    """The :class:`Tally` of one case's outcomes."""
    ok = [o for o in outcomes if o.status == Status.OK]
    by_env: Dict[int, Set[Tuple[Optional[str], Optional[bool], Optional[str]]]] = defaultdict(set)
    for o in ok:
        by_env[o.env].add(identity(o))
    return Tally(
        failed=any(o.status in FAILED for o in outcomes),
        rows=sum(o.rows for o in outcomes),
        unsupported=sum(o.rows for o in outcomes if o.status == Status.UNSUPPORTED),
        ok_rows=sum(o.rows for o in ok),
        streams=len({identity(o) for o in ok}),
        repeat_false=any(o.repeat_false for o in ok),
        same_env_split=any(len(fps) > 1 for fps in by_env.values()),
        variant=bool(ok) and all(o.invariant is False for o in ok),
    )


def verdict(facts: Tally, stale: bool) -> Optional[Verdict]:
    """The case's verdict (None when unsupported everywhere): the first rule that applies wins.

    ``stale`` says older probe versions of the case were set aside.
    """
    rules = [
        (Verdict.ERROR, facts.failed),
        (Verdict.NONDETERMINISTIC, facts.repeat_false or facts.same_env_split),
        (Verdict.DIVERGENT, facts.streams > 1),
        (Verdict.VARIANT, facts.variant),
        # tested before identical: a single run of a changed probe agrees with nothing
        (Verdict.INCOMPARABLE, facts.ok_rows == 1 and stale),
        (Verdict.IDENTICAL, facts.streams == 1),
    ]
    return next((v for v, applies in rules if applies), None)
