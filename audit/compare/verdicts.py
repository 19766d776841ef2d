"""One verdict per case, decided on its outcomes in the order of Verdict.

Pure functions of a case's :class:`~audit.compare.rows.Outcome` records: how many rows
repeated an outcome does not change the cost, so ten million rows decide as fast as the
few thousand outcomes they collapse to.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Set

from audit.compare.model import Verdict
from audit.compare.rows import FAILED, Outcome
from audit.worker.records import Status


class Summary(NamedTuple):
    """The facts of one case that the verdict order needs."""

    failed: bool  # some run recorded error, crash or timeout
    rows: int  # rows of the compared version, every status
    unsupported: int  # rows recorded unsupported
    ok_rows: int
    streams: int  # distinct fingerprints among ok rows
    repeat_false: bool  # some ok run disagreed with itself
    same_env_split: bool  # two runs of one environment got different fingerprints


def summarise(outcomes: List[Outcome]) -> Summary:
    """The :class:`Summary` of one case's outcomes."""
    ok = [o for o in outcomes if o.status == Status.OK]
    by_env: Dict[int, Set[Optional[str]]] = defaultdict(set)
    for o in ok:
        by_env[o.env].add(o.fingerprint)
    return Summary(
        failed=any(o.status in FAILED for o in outcomes),
        rows=sum(o.rows for o in outcomes),
        unsupported=sum(o.rows for o in outcomes if o.status == Status.UNSUPPORTED),
        ok_rows=sum(o.rows for o in ok),
        streams=len({o.fingerprint for o in ok}),
        repeat_false=any(o.repeat_false for o in ok),
        same_env_split=any(len(fps) > 1 for fps in by_env.values()),
    )


def verdict(summary: Summary, stale: bool) -> Optional[Verdict]:
    """The case's verdict (None when unsupported everywhere): the first rule that applies wins.

    ``stale`` says older probe versions of the case were set aside.
    """
    rules = [
        (Verdict.ERROR, summary.failed),
        (Verdict.NONDETERMINISTIC, summary.repeat_false or summary.same_env_split),
        (Verdict.DIVERGENT, summary.streams > 1),
        # tested before identical: a single run of a changed probe agrees with nothing
        (Verdict.INCOMPARABLE, summary.ok_rows == 1 and stale),
        (Verdict.IDENTICAL, summary.streams == 1),
    ]
    return next((v for v, applies in rules if applies), None)
