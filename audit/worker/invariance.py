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

from dataclasses import dataclass
from typing import Any, List, Sequence

from audit import registry
from audit.worker.execution import Execution, call_and_fingerprint


@dataclass(frozen=True)
class ValueResult:
    """What the probe gave at one value of the invariance parameter."""

    value: Any
    execution: Execution


def run_value(case: registry.Case, name: str, value: Any) -> ValueResult:
    """Call the probe with ``name=value`` and fingerprint what it returned."""
    return ValueResult(value, call_and_fingerprint(case, {name: value}))


def differing_values(results: Sequence[ValueResult]) -> List[Any]:
    """The values whose result is not bitwise the reference's (the first result)."""
    reference = results[0].execution.fingerprint.digest
    return [r.value for r in results[1:] if r.execution.fingerprint.digest != reference]


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
    runs = [r.execution for r in results]
    everything = [[run.fingerprint.digest, run.state] for run in runs]
    return Execution(
        runs[0].fingerprint,
        runs[0].state,
        sum(run.elapsed_s for run in runs),
        sum(run.fingerprint_s for run in runs),
        fields=invariance_fields(name, differing_values(results)),
        repeat_extra=registry.canonical_json(everything),
    )
