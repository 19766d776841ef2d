"""Sweeps: the same catalogue under every combination of settings on one machine.

``--axis NAME=V1,V2`` names one axis; the sweep runs the cartesian product of all axes,
each combination in a fresh worker process, because most settings (the ATen dispatch
level, numpy's CPU features, OpenMP's pool size, the hash seed) are read once when a
library loads and cannot be changed afterwards.  An axis is applied either as environment
variables set before the worker starts, or as a worker flag for what only a library call
can set (``threads``, ``deterministic``).

A setting the machine cannot honour is not an error the libraries report: torch ignores
an ``ATEN_CPU_CAPABILITY`` above what the CPU has, numpy ignores features it does not
dispatch.  :func:`unhonoured` therefore checks what a run *recorded* against what was
asked, so a sweep never presents a fallback as the setting it asked for.

Pure: parsing, combining and checking; running and printing live in
:mod:`audit.commands.sweep`.
"""

from __future__ import annotations

import enum
import itertools
import re
from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from audit.errors import UsageError
from audit.runner.spec import RunSpec
from audit.worker import records

#: The value that removes an environment variable instead of setting it (one spelling: records.UNSET).
UNSET = records.UNSET


class Apply(enum.Enum):
    """How an axis reaches the worker."""

    ENV = "env"  # one environment variable, set before the worker starts
    THREADS = "threads"  # torch.set_num_threads and every thread-pool variable
    DETERMINISTIC = "deterministic"  # torch.use_deterministic_algorithms
    LOAD = "load"  # other processes keep every core busy while the run executes (audit.runner.load)


#: Thread-pool variables the ``threads`` axis sets alongside torch.set_num_threads, so
#: OpenMP, MKL and OpenBLAS pools agree with torch's intra-op pool.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: ATen dispatch levels torch knows (x86: default, avx2, avx512; POWER: vsx; s390x: zvector;
#: arm64: sve256).  A level of another architecture is accepted and then shows up as
#: not honoured: torch ignores it and dispatches its own best level.
ATEN_LEVELS = ("default", "avx2", "avx512", "vsx", "zvector", "sve256")

_COUNT = re.compile(r"^[1-9][0-9]{0,4}$")
_FEATURES = re.compile(r"^[A-Za-z0-9_]+([ ,][A-Za-z0-9_]+)*$")


@dataclass(frozen=True)
class AxisKind:
    """One known axis: how it is applied and which values it accepts."""

    name: str
    apply: Apply
    meaning: str
    pattern: Optional[re.Pattern[str]] = None  # accepted values (besides ``unset``)
    choices: Tuple[str, ...] = ()
    example: str = ""

    def check(self, value: str) -> None:
        """Raise UsageError unless ``value`` is one this axis accepts."""
        if value == UNSET and self.apply is Apply.ENV:
            return
        if self.choices and value.lower() in self.choices:
            return
        if self.pattern is not None and self.pattern.match(value):
            return
        wanted = ", ".join(self.choices) if self.choices else f"e.g. {self.example}"
        raise UsageError(f"axis {self.name}: {value!r} is not a valid value ({wanted})")


def _env_axis(name: str, meaning: str, pattern: Optional[str] = None, choices: Tuple[str, ...] = (),
              example: str = "") -> AxisKind:
    return AxisKind(name, Apply.ENV, meaning, re.compile(pattern) if pattern else None, choices, example)


#: Every axis ``--axis`` accepts, by name.
AXES: Dict[str, AxisKind] = {
    axis.name: axis
    for axis in (
        AxisKind("threads", Apply.THREADS, "torch.set_num_threads plus " + ", ".join(THREAD_VARIABLES),
                 _COUNT, example="1,2"),
        AxisKind("deterministic", Apply.DETERMINISTIC, "torch.use_deterministic_algorithms",
                 choices=("on", "off")),
        AxisKind("load", Apply.LOAD, "idle, or busy: other processes keep every core busy during the run",
                 choices=("idle", "busy")),
        _env_axis("ATEN_CPU_CAPABILITY", "torch CPU dispatch level", choices=ATEN_LEVELS),
        _env_axis("OMP_NUM_THREADS", "OpenMP pool size", _COUNT.pattern, example="1,2"),
        _env_axis("MKL_NUM_THREADS", "MKL pool size", _COUNT.pattern, example="1,2"),
        _env_axis("OPENBLAS_NUM_THREADS", "OpenBLAS pool size", _COUNT.pattern, example="1,2"),
        _env_axis("OPENBLAS_CORETYPE", "OpenBLAS kernel family", r"^[A-Za-z0-9_]+$", example="Haswell,SkylakeX"),
        _env_axis("NPY_DISABLE_CPU_FEATURES", "numpy dispatch targets switched off (numpy's own names)",
                  _FEATURES.pattern, example="X86_V4 on numpy>=2.4, AVX512F AVX512_SKX before"),
        _env_axis("NPY_ENABLE_CPU_FEATURES", "numpy dispatch targets allowed (numpy>=2.0)",
                  _FEATURES.pattern, example="X86_V3"),
        _env_axis("MKL_CBWR", "MKL reproducibility mode", r"^[A-Za-z0-9_,]+$", example="COMPATIBLE,AVX2"),
        _env_axis("PYTHONHASHSEED", "Python hash seed", r"^(random|[0-9]{1,10})$", example="0,1,random"),
        _env_axis("QEMU_CPU", "ARM CPU class of an emulated aarch64 --python (docs/arm.md)",
                  choices=("neoverse-n1", "a64fx", "max-sve256", "max")),
        _env_axis("CUBLAS_WORKSPACE_CONFIG", "cuBLAS workspace", r"^(:[0-9]+:[0-9]+)+$", example=":4096:8"),
    )
}


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
        raise UsageError(f"--axis {text!r}: expected NAME=V1,V2 (e.g. ATEN_CPU_CAPABILITY=default,avx2)")
    kind = AXES.get(name)
    if kind is None:
        raise UsageError(f"--axis {text!r}: unknown axis {name!r}; known axes: {', '.join(AXES)}")
    values = tuple(v.strip() for v in rest.split(","))
    if not rest.strip() or any(not v for v in values):
        raise UsageError(f"--axis {text!r}: empty value; give one or more values, e.g. {name}={kind.example or 'on'}")
    if len(set(values)) != len(values):
        raise UsageError(f"--axis {text!r}: a value is repeated; use --repeat to run a setting twice")
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
        raise UsageError("sweep needs at least one --axis NAME=V1,V2 (see 'python -m audit sweep --help')")
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
    """``base`` with the combination applied: variables set/unset, worker flags given."""
    env = dict(base.env)
    unset = list(base.unset)
    threads, deterministic = base.threads, base.deterministic
    for name, value in setting.items():
        apply = AXES[name].apply
        if apply is Apply.THREADS:
            threads = int(value)
            env.update({var: value for var in THREAD_VARIABLES if var not in setting})
        elif apply is Apply.DETERMINISTIC:
            deterministic = value
        elif apply is Apply.LOAD:
            continue  # not a setting of the worker: the sweep runs it beside busy processes
        elif value == UNSET:
            env.pop(name, None)
            unset.append(name)
        else:
            env[name] = value
    return replace(base, env=env, unset=unset, threads=threads, deterministic=deterministic)


# --------------------------------------------------------------------------- honoured?


def unhonoured(setting: Mapping[str, str], env: Mapping[str, Optional[str]],
               numpy_targets: Optional[Mapping[str, bool]] = None) -> List[str]:
    """What the run recorded that contradicts what the combination asked for.

    ``env`` is the environment a run recorded (:mod:`audit.worker.environment`).  Each returned
    line says what was asked and what was used, e.g. torch falling back from avx512.
    ``numpy_targets`` (numpy's dispatch targets -> whether this CPU has them, when known)
    lets a disabled feature that numpy never dispatches be told from one it stopped using.
    """
    notes: List[str] = []
    for name, value in setting.items():
        check = _CHECKS.get(name)
        note = check(value, env) if check else None
        if note is None and name == "NPY_DISABLE_CPU_FEATURES" and numpy_targets is not None:
            note = _npy_targets(value, numpy_targets, env)
        if note:
            notes.append(f"{name}={value}: {note}")
    return notes


def _npy_targets(value: str, targets: Mapping[str, bool], env: Mapping[str, Optional[str]]) -> Optional[str]:
    if value == UNSET:
        return None
    unknown = [f for f in _features(value) if f not in targets]
    if unknown:
        return (f"{' '.join(unknown)} is not a dispatch target of numpy {env.get('numpy_version')} "
                f"(its targets: {' '.join(targets)}); nothing was disabled")
    absent = [f for f in _features(value) if not targets[f]]
    if absent:
        return f"this CPU lacks {' '.join(absent)}: numpy never used it, nothing was disabled"
    return None


def _aten(value: str, env: Mapping[str, Optional[str]]) -> Optional[str]:
    used = env.get("cpu_capability")
    if value == UNSET or used is None or env.get("torch_version") is None:
        return None
    if used.lower() != value.lower():
        return f"torch dispatched {used} instead (the CPU or this torch build lacks {value})"
    return None


def _threads(value: str, env: Mapping[str, Optional[str]]) -> Optional[str]:
    used = env.get("num_threads")
    if used is None or env.get("torch_version") is None or used == value:
        return None
    return f"torch ran with {used} threads"


def _deterministic(value: str, env: Mapping[str, Optional[str]]) -> Optional[str]:
    used = env.get("deterministic_algorithms")
    if used is None or used.lower() == str(value == "on").lower():
        return None
    return f"torch.are_deterministic_algorithms_enabled() was {used}"


def _npy_disable(value: str, env: Mapping[str, Optional[str]]) -> Optional[str]:
    simd = env.get("numpy_simd")
    if value == UNSET or simd is None:
        return None
    still = [f for f in _features(value) if f in simd.split()]
    if still:
        return f"numpy still uses {' '.join(still)} (not a dispatch target of numpy {env.get('numpy_version')}?)"
    return None


def _npy_enable(value: str, env: Mapping[str, Optional[str]]) -> Optional[str]:
    simd = env.get("numpy_simd")
    if value == UNSET or simd is None:
        return None
    missing = [f for f in _features(value) if f not in simd.split()]
    if missing:
        return f"numpy does not use {' '.join(missing)}"
    return None


def _qemu_cpu(value: str, env: Mapping[str, Optional[str]]) -> Optional[str]:
    """Honoured when the worker ran under qemu as that class (the wrapper names it in ``emulator``)."""
    emulator = env.get("emulator")
    if value == UNSET or "emulator" not in env:
        return None
    if not emulator:
        return "the worker ran natively (no emulator): QEMU_CPU changed nothing; give --python an arm64 wrapper"
    if not emulator.endswith(f"({value})"):
        return f"the worker ran as {emulator}"
    return None


def _features(value: str) -> List[str]:
    return [f for f in re.split(r"[ ,]+", value.upper()) if f]


def _variable(name: str):  # type: ignore[no-untyped-def]
    """A plain variable is honoured when the worker saw it (it records them verbatim)."""

    def check(value: str, env: Mapping[str, Optional[str]]) -> Optional[str]:
        seen = env.get(name)
        asked = None if value == UNSET else value
        if name in env and seen != asked:
            return f"the worker saw {name}={seen}"
        return None

    return check


_CHECKS = {
    "ATEN_CPU_CAPABILITY": _aten,
    "threads": _threads,
    "deterministic": _deterministic,
    "NPY_DISABLE_CPU_FEATURES": _npy_disable,
    "NPY_ENABLE_CPU_FEATURES": _npy_enable,
    "QEMU_CPU": _qemu_cpu,
    **{name: _variable(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS", "MKL_CBWR", "PYTHONHASHSEED")},
}
