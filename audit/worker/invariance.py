"""Invariance cases: one case run at every value of a parameter that should not matter.

A probe registered with ``invariance="chunks"`` (or batch, num_workers, layout, restore)
has, in each case, a list of values for that parameter, the first the reference:
``{"chunks": [1000, 1, 3, 7], ...}``.  The probe function takes *one* value; it returns a
result that is comparable across values (the concatenated stream of the chunks, the rows
of the sub-batches put back together).  :func:`execute_invariance` calls it with each
value and fills the invariance columns of the record:

- ``fingerprint``, ``sample``, ``blocks``, ``state_fingerprint``: the reference value's;
- ``invariance``: the parameter's name;
- ``invariant``: whether every value gave a bitwise identical result (same fingerprint:
  dtype, shape and every bit);
- ``variant_values``: the values whose result differed from the reference's, as canonical
  JSON (null when invariant).

Only the results are compared, not the generator states after them: drawing in chunks
may legitimately consume the generator differently (a cached normal, a buffered word).
The run-to-run check compares every value's result and state (``repeat_extra``).

Worker side: standard library only (plus what :mod:`audit.worker.execution` imports).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

from audit import registry
from audit.worker.execution import Execution, call_probe
from audit.worker.fingerprint import Fingerprint, fingerprint, state_fingerprint


@dataclass(frozen=True)
class ValueResult:
    """What the probe gave at one value of the invariance parameter."""

    value: Any
    fingerprint: Fingerprint
    state: Optional[str]
    elapsed_s: float
    fingerprint_s: float


def run_value(case: registry.Case, name: str, value: Any) -> ValueResult:
    """Call the probe with ``name=value`` and fingerprint what it returned."""
    output, state, elapsed = call_probe(case, **{name: value})
    t0 = time.perf_counter()
    fp = fingerprint(output)
    state_fp = state_fingerprint(state)
    return ValueResult(value, fp, state_fp, elapsed, time.perf_counter() - t0)


def differing_values(results: Sequence[ValueResult]) -> List[Any]:
    """The values whose result is not bitwise the reference's (the first result)."""
    reference = results[0].fingerprint.digest
    return [r.value for r in results[1:] if r.fingerprint.digest != reference]


def invariance_fields(name: str, differing: Sequence[Any]) -> dict:
    """The record's invariance columns (see the module docstring)."""
    return {
        "invariance": name,
        "invariant": not differing,
        "variant_values": registry.canonical_json(list(differing)) if differing else None,
    }


def execute_invariance(case: registry.Case) -> Execution:
    """One execution of an invariance case: the probe at every value, then the verdict."""
    name = case.probe.invariance
    assert name is not None, "execute_invariance needs a probe with an invariance parameter"
    results = [run_value(case, name, value) for value in case.params[name]]
    reference = results[0]
    everything = [[r.fingerprint.digest, r.state] for r in results]
    return Execution(
        reference.fingerprint,
        reference.state,
        sum(r.elapsed_s for r in results),
        sum(r.fingerprint_s for r in results),
        fields=invariance_fields(name, differing_values(results)),
        repeat_extra=registry.canonical_json(everything),
    )
