"""The search: hypothesis draws parameters, the workers run them, a differing example is shrunk.

Every example the workers ran is kept as a :class:`Trial` (memoised by its parameters, so
shrinking never runs one twice); the structure of the answer is computed from all of them
(:mod:`audit.explore.structure`), not from the one example hypothesis returns.  After the
search, a short bisection along the first integer parameter, between the largest agreeing
value below the smallest difference and that difference, tightens the boundary.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from audit.compare.difference import classify_pair
from audit.compare.rows import Detail
from audit.domains import Compared, Domain, Integers, candidates
from audit.registry import DEFAULT_SEEDS, SEEDS, canonical_json

#: Steps of the bisection after the search.
BISECT_STEPS = 14


class Outcome(str, enum.Enum):
    IDENTICAL = "identical"
    DIFFERS = "differs"
    ERROR = "error"  # error, crash or timeout in a worker: the example says nothing
    UNSUPPORTED = "unsupported"  # the probe cannot run these parameters here


@dataclass(frozen=True)
class Trial:
    """One example: the drawn values, what ran, and how the results compared."""

    drawn: Dict[str, Any]
    outcome: Outcome
    kind: Optional[str] = None  # difference kind (audit.compare.model.Difference)
    max_ulp: Optional[float] = None
    message: Optional[str] = None
    # search (hypothesis, shrinking included), survey (after it), bisect or below
    phase: str = "search"

    def as_json(self) -> Dict[str, Any]:
        return {
            "params": self.drawn,
            "outcome": self.outcome.value,
            "kind": self.kind,
            "max_ulp": self.max_ulp,
            "message": self.message,
            "phase": self.phase,
        }


Request = Callable[[Dict[str, Any]], List[Dict[str, Any]]]


def default_params(grid: Mapping[str, Any]) -> Dict[str, Any]:
    """Each grid parameter at its first value (the seed panel's first seed)."""
    return {k: (DEFAULT_SEEDS[0] if v == SEEDS else list(v)[0]) for k, v in grid.items()}


def detail(record: Mapping[str, Any]) -> Detail:
    blocks = record.get("blocks")
    return Detail(
        record.get("dtype"),
        record.get("shape"),
        record.get("sample"),
        bytes.fromhex(blocks) if blocks else None,
        record.get("block_elements"),
        record.get("message"),
        None,
        None,
        None,
        None,
    )


def compare_records(records: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Outcome of one example from the records of its executions (the first is the reference)."""
    failed = [
        r
        for r in records
        if r.get("type") != "record" or r.get("status") not in ("ok", "unsupported")
    ]
    if failed:
        return {
            "outcome": Outcome.ERROR,
            "message": str(failed[0].get("message") or failed[0].get("status")),
        }
    unsupported = [r for r in records if r.get("status") == "unsupported"]
    if unsupported:
        return {"outcome": Outcome.UNSUPPORTED, "message": unsupported[0].get("message")}
    first = records[0]
    other = next((r for r in records[1:] if r.get("fingerprint") != first.get("fingerprint")), None)
    if other is None:
        return {"outcome": Outcome.IDENTICAL}
    located = classify_pair(detail(first), detail(other))
    return {
        "outcome": Outcome.DIFFERS,
        "kind": located.kind.value if located.kind else None,
        "max_ulp": located.max_ulp,
    }


@dataclass
class Explorer:
    """What one example means: the parameters each execution runs, and their comparison.

    ``invariance`` empty: every worker runs the same parameters (axis mode).  Otherwise one
    worker runs the parameter at its reference and at the drawn candidate.
    """

    base: Dict[str, Any]  # every parameter: grid default, then fixed --param values
    search: Dict[str, Domain]
    run: Request  # params -> one record per worker
    invariance: str = ""  # the parameter compared in one worker (invariance mode); empty: axis mode
    # the probe's invariance parameter, run at its reference in axis mode
    probe_invariance: Optional[str] = None
    trials: Dict[str, Trial] = field(default_factory=dict)  # canonical drawn JSON -> trial

    def params(self, drawn: Mapping[str, Any]) -> List[Dict[str, Any]]:
        params = {**self.base, **drawn}
        name = self.invariance
        if not name:
            held = self.probe_invariance
            if held and isinstance(params.get(held), list):
                params[held] = params[held][0]
            return [params]
        domain = self.search.get(name)
        reference = self.base[name][0] if isinstance(self.base[name], list) else self.base[name]
        if isinstance(domain, Compared):
            reference = (
                params[domain.same_as]
                if domain.same_as
                else (domain.reference if domain.reference is not None else reference)
            )
        return [{**params, name: reference}, params]

    def evaluate(self, drawn: Mapping[str, Any], phase: str = "search") -> Trial:
        key = canonical_json(dict(drawn))
        if key not in self.trials:
            executions = self.params(drawn)
            records = [r for p in executions for r in self.run(p)]
            found = compare_records(records)
            self.trials[key] = Trial(dict(drawn), phase=phase, **found)
        return self.trials[key]


class _Differs(Exception):
    def __init__(self, trial: Trial) -> None:
        super().__init__(trial.drawn)
        self.trial = trial


class _TimeUp(BaseException):
    """Raised inside the test when the time budget is spent: hypothesis lets it through."""


@dataclass
class Searched:
    """What the search did: the trials, the example hypothesis shrank to, and how it ended."""

    trials: List[Trial]
    shrunk: Optional[Trial]
    stopped: str  # "examples", "time" or "shrunk"


def search(explorer: Explorer, examples: int, seconds: Optional[float], seed: int) -> Searched:
    """Run hypothesis over the explorer's domains; shrink the first difference it finds.

    Then, while the budget (``examples`` in all, or ``seconds``) lasts, a survey draws more
    examples without stopping at differences, so the answer can say how often the inputs
    beyond the smallest difference differ (and whether a smaller one exists elsewhere).
    """
    from hypothesis.errors import Unsatisfiable

    start = time.monotonic()
    deadline = start + seconds if seconds else None
    shrunk, stopped = None, "examples"
    try:
        _given(explorer, examples, deadline, seed, stop_at_difference=True)()
    except _Differs as found:
        shrunk, stopped = found.trial, "shrunk"
    except _TimeUp:
        stopped = "time"
    except Unsatisfiable:
        pass  # every example errored or was unsupported: the structure says so
    left = examples - len(explorer.trials)
    if stopped == "shrunk" and left > 0:
        try:
            _given(explorer, left, deadline, seed + 1, stop_at_difference=False)()
        except _TimeUp:
            stopped = "time"
        except Unsatisfiable:
            pass
    return Searched(list(explorer.trials.values()), shrunk, stopped)


def _given(
    explorer: Explorer,
    examples: int,
    deadline: Optional[float],
    seed: int,
    stop_at_difference: bool,
) -> Callable[[], None]:
    """The hypothesis test: evaluate each drawn example; raise on a difference when asked."""
    from hypothesis import HealthCheck, Phase, Verbosity, assume, given, settings
    from hypothesis import seed as seed_with
    from hypothesis import strategies as st

    from audit.explore.strategies import strategy

    drawn = st.fixed_dictionaries({k: strategy(d) for k, d in explorer.search.items()})
    phases = (Phase.generate, Phase.shrink) if stop_at_difference else (Phase.generate,)

    @seed_with(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        phases=phases,
        print_blob=False,
    )
    @given(drawn)
    def check(values: Dict[str, Any]) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise _TimeUp()
        trial = explorer.evaluate(values, phase="search" if stop_at_difference else "survey")
        assume(trial.outcome in (Outcome.IDENTICAL, Outcome.DIFFERS))
        if stop_at_difference and trial.outcome is Outcome.DIFFERS:
            raise _Differs(trial)

    return check  # type: ignore[no-any-return]


def along(search_domains: Mapping[str, Domain]) -> Optional[str]:
    """The parameter the boundary is stated along: the first integer one, else the first."""
    for name, domain in search_domains.items():
        inner = candidates(domain)
        if isinstance(inner, Integers):
            return name
    return next(iter(search_domains), None)


def bisect(explorer: Explorer, smallest: Trial, name: str, steps: int = BISECT_STEPS) -> None:
    """Tighten the boundary along integer parameter ``name``, the others held at ``smallest``'s.

    Between the largest agreeing value tried below the smallest difference (or the domain's
    low end) and that difference; the trials land in ``explorer.trials`` (phase ``bisect``).
    """
    domain = explorer.search[name]
    inner = candidates(domain)
    if not isinstance(inner, Integers):
        return
    high = smallest.drawn[name]
    agreeing = [
        t.drawn[name]
        for t in explorer.trials.values()
        if t.outcome is Outcome.IDENTICAL
        and isinstance(t.drawn.get(name), int)
        and t.drawn[name] < high
        and all(t.drawn.get(k) == v for k, v in smallest.drawn.items() if k != name)
    ]
    low = max(agreeing, default=inner.lo - 1)
    for _ in range(steps):
        if high - low <= 1:
            break
        middle = (low + high) // 2
        trial = explorer.evaluate({**smallest.drawn, name: middle}, phase="bisect")
        if trial.outcome is Outcome.DIFFERS:
            high = middle
        elif trial.outcome is Outcome.IDENTICAL:
            low = middle
        else:
            break
    if high - 1 > inner.lo - 1 and high - 1 != low:
        explorer.evaluate({**smallest.drawn, name: high - 1}, phase="bisect")


#: Rounds of :func:`tighten`, and the values each draws below the smallest difference.
TIGHTEN_ROUNDS = 3
TIGHTEN_DRAWS = 8


def tighten(explorer: Explorer, smallest: Trial, name: str, seed: int) -> Trial:
    """Bisect below the smallest difference, then test a few values spread uniformly below it
    (and as many in the upper half of that stretch, where a lower boundary is likelier);
    a smaller difference found there starts the next round.  Returns the smallest difference.

    hypothesis draws sizes unevenly (many small ones, some near the top), so a stretch below the
    shrunk example may never have been tried; these draws are counted as tried like any other.
    """
    import random

    domain = explorer.search[name]
    inner = candidates(domain)
    if not isinstance(inner, Integers):
        return smallest
    rng = random.Random(seed)
    for _ in range(TIGHTEN_ROUNDS):
        bisect(explorer, smallest, name)
        smallest = min(
            (
                t
                for t in explorer.trials.values()
                if t.outcome is Outcome.DIFFERS
                and all(t.drawn.get(k) == v for k, v in smallest.drawn.items() if k != name)
            ),
            key=lambda t: t.drawn[name],
            default=smallest,
        )
        top = smallest.drawn[name]
        if top - inner.lo < 2:
            break
        half = max(inner.lo, (inner.lo + top) // 2)
        values = sorted(
            {rng.randrange(inner.lo, top) for _ in range(TIGHTEN_DRAWS)}
            | {rng.randrange(half, top) for _ in range(TIGHTEN_DRAWS)}
        )
        found = [explorer.evaluate({**smallest.drawn, name: v}, phase="below") for v in values]
        lower = [t for t in found if t.outcome is Outcome.DIFFERS]
        if not lower:
            break
        smallest = lower[0]
    return smallest
