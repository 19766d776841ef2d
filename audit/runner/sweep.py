"""Sweeps: the same catalogue under every combination of settings on one machine.

``--axis NAME=V1,V2`` names one axis; the sweep runs the cartesian product of all axes,
each combination in a fresh worker process, because most settings (the ATen dispatch
level, numpy's CPU features, OpenMP's pool size, the hash seed) are read once when a
library loads and cannot be changed afterwards.  An axis is applied either as environment
variables set before the worker starts, or as a library call the worker makes (``threads``,
``deterministic``: ``--set NAME=VALUE``); every axis is one record in :mod:`audit.runner.axes`.

A setting the machine cannot honour is not an error the libraries report: torch ignores
an ``ATEN_CPU_CAPABILITY`` above what the CPU has, numpy ignores features it does not
dispatch.  :func:`unhonoured` therefore checks what a run *recorded* against what was
asked, so a sweep never presents a fallback as the setting it asked for.

Pure: parsing, combining and checking; running and printing live in
:mod:`audit.commands.sweep`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from audit.errors import UsageError
from audit.runner.axes import ATEN_LEVELS, AXES, THREAD_VARIABLES, UNSET, Apply, AxisKind
from audit.runner.spec import RunSpec

__all__ = [
    "ATEN_LEVELS",
    "AXES",
    "THREAD_VARIABLES",
    "UNSET",
    "Apply",
    "Axis",
    "AxisKind",
    "RunSpec",
    "Setting",
    "combinations",
    "label",
    "parse_axes",
    "parse_axis",
    "spec_for",
    "unhonoured",
]


@dataclass(frozen=True)
class Axis:
    """One ``--axis``: a known name and the values to sweep, in the order given."""

    name: str
    values: Tuple[str, ...]


def parse_axis(text: str) -> Axis:
    """``NAME=V1,V2`` -> Axis; every malformed spelling is one UsageError naming the fix."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(
            f"--axis {text!r}: expected NAME=V1,V2 (e.g. ATEN_CPU_CAPABILITY=default,avx2)"
        )
    kind = AXES.get(name)
    if kind is None:
        raise UsageError(f"--axis {text!r}: unknown axis {name!r}; known axes: {', '.join(AXES)}")
    values = tuple(v.strip() for v in rest.split(","))
    if not rest.strip() or any(not v for v in values):
        raise UsageError(
            f"--axis {text!r}: empty value; give one or more values, "
            f"e.g. {name}={kind.example or 'on'}"
        )
    if len(set(values)) != len(values):
        raise UsageError(
            f"--axis {text!r}: a value is repeated; use --repeat to run a setting twice"
        )
    for value in values:
        kind.check(value)
    if kind.choices:
        values = tuple(v.lower() for v in values)
    return Axis(name, values)


def parse_axes(texts: Sequence[str]) -> List[Axis]:
    """Every ``--axis``; an axis named twice is an error rather than a silent override."""
    axes = [parse_axis(t) for t in texts]
    seen: Dict[str, int] = {}
    for axis in axes:
        seen[axis.name] = seen.get(axis.name, 0) + 1
    twice = [n for n, k in seen.items() if k > 1]
    if twice:
        raise UsageError(f"axis {twice[0]} is given twice; list all its values in one --axis")
    if not axes:
        raise UsageError(
            "sweep needs at least one --axis NAME=V1,V2 (see 'python -m audit sweep --help')"
        )
    return axes


#: One combination: axis name -> value, in axis order.
Setting = Dict[str, str]


def combinations(axes: Sequence[Axis]) -> List[Setting]:
    """The cartesian product of the axes, first axis varying slowest."""
    names = [a.name for a in axes]
    return [dict(zip(names, values)) for values in itertools.product(*(a.values for a in axes))]


def label(setting: Mapping[str, str]) -> str:
    """``ATEN_CPU_CAPABILITY=avx2 threads=1``: how reports name a combination."""
    return " ".join(f"{k}={v}" for k, v in setting.items())


def spec_for(base: RunSpec, setting: Mapping[str, str]) -> RunSpec:
    """``base`` with the combination applied (each axis record's ``applied``): variables set/unset,
    library calls named."""
    spec = replace(base, env=dict(base.env), unset=list(base.unset), calls=dict(base.calls))
    for name, value in setting.items():
        spec = AXES[name].applied(spec, value, setting)
    return spec


# --------------------------------------------------------------------------- honoured?


def unhonoured(
    setting: Mapping[str, str],
    env: Mapping[str, Optional[str]],
    numpy_targets: Optional[Mapping[str, bool]] = None,
) -> List[str]:
    """What the run recorded that contradicts what the combination asked for.

    ``env`` is the environment a run recorded (:mod:`audit.worker.environment`).  Each returned
    line says what was asked and what was used, e.g. torch falling back from avx512.
    ``numpy_targets`` (numpy's dispatch targets -> whether this CPU has them, when known)
    lets a disabled feature that numpy never dispatches be told from one it stopped using.
    """
    notes: List[str] = []
    for name, value in setting.items():
        axis = AXES.get(name)
        if axis is None:
            continue
        note = axis.honoured(value, env)
        if note is None and axis.targets is not None and numpy_targets is not None:
            note = axis.targets(value, numpy_targets, env)
        if note:
            notes.append(f"{name}={value}: {note}")
    return notes
