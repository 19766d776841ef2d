"""The sweep axes: one record per axis, and the only place that lists them.

Each :class:`AxisKind` says everything the sweep needs to know about one axis: its name,
how it reaches the worker (:class:`Apply`: an environment variable set before the worker
starts, or a library call the worker makes), which values it accepts, how a run's recorded
environment shows whether it was honoured (``honoured``), and which environment fields show
it (``fields``).  Adding an environment-variable axis is adding one record to :data:`AXES`
(plus, for a variable that reports should name as a column, its field in
:data:`audit.worker.settings.SETTINGS`).  Adding a library-call axis is one record here
(:func:`_call_axis`) and the call it names in the worker's registry, :mod:`audit.worker.calls`:
the spec carries ``calls`` (name -> value) and the worker gets ``--set NAME=VALUE``.  This
module does not import that registry: the host names a setting, the audited interpreter makes
it (and refuses a name it does not know).

Pure: no I/O; :mod:`audit.runner.sweep` parses, combines and checks with these records.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from audit.errors import UsageError
from audit.runner.spec import RunSpec
from audit.worker import records
from audit.worker.environment import expanded
from audit.worker.settings import SETTINGS

#: The value that removes an environment variable instead of setting it (one spelling:
#: records.UNSET).
UNSET = records.UNSET

#: What a run recorded (:mod:`audit.worker.environment`): field -> value.
Recorded = Mapping[str, Optional[str]]
#: ``(value asked, recorded environment) -> why it was not honoured``, or None when it was (or
#: cannot tell).
Check = Callable[[str, Recorded], Optional[str]]
#: As :data:`Check`, also given numpy's dispatch targets -> whether this CPU has each.
TargetsCheck = Callable[[str, Mapping[str, bool], Recorded], Optional[str]]
#: ``(spec, value, the whole combination) -> the spec with this axis applied`` (a copy; the spec
#: is not changed).
Applier = Callable[[RunSpec, str, Mapping[str, str]], RunSpec]


class Apply(enum.Enum):
    """How an axis reaches the worker."""

    ENV = "env"  # one environment variable, set before the worker starts
    CALL = "call"  # a library call the worker makes (--set NAME=VALUE, audit.worker.calls)
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


def _never(value: str, env: Recorded) -> Optional[str]:
    return None


# --------------------------------------------------------------------------- applied how?


def _set_variable(name: str) -> Applier:
    """Set the variable before the worker starts; ``unset`` removes it."""

    def apply(spec: RunSpec, value: str, setting: Mapping[str, str]) -> RunSpec:
        env, unset = dict(spec.env), list(spec.unset)
        if value == UNSET:
            env.pop(name, None)
            unset.append(name)
        else:
            env[name] = value
        return replace(spec, env=env, unset=unset)

    return apply


def _call(name: str) -> Applier:
    """The worker makes the library call ``name`` (an entry of audit.worker.calls) with the
    value."""

    def apply(spec: RunSpec, value: str, setting: Mapping[str, str]) -> RunSpec:
        return replace(spec, calls={**spec.calls, name: value})

    return apply


def _set_threads(spec: RunSpec, value: str, setting: Mapping[str, str]) -> RunSpec:
    """torch.set_num_threads in the worker, and every pool variable the combination leaves to it."""
    env = {**spec.env, **{var: value for var in THREAD_VARIABLES if var not in setting}}
    return _call("threads")(replace(spec, env=env), value, setting)


def _not_the_worker(spec: RunSpec, value: str, setting: Mapping[str, str]) -> RunSpec:
    """Not a setting of the worker: the sweep runs it beside busy processes (audit.runner.load)."""
    return spec


@dataclass(frozen=True)
class AxisKind:
    """One known axis: how it is applied, which values it accepts, how it is checked, where it
    shows."""

    name: str
    apply: Apply
    meaning: str
    applied: Applier
    pattern: Optional[re.Pattern[str]] = None  # accepted values (besides ``unset``)
    choices: Tuple[str, ...] = ()
    example: str = ""
    honoured: Check = _never  # the recorded environment against the value asked for
    fields: Tuple[str, ...] = ()  # the environment fields that show it
    targets: Optional[TargetsCheck] = None  # a further check against numpy's dispatch targets

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


# --------------------------------------------------------------------------- honoured?


def _variable(name: str) -> Check:
    """A plain variable is honoured when the worker saw it (it records them verbatim: in a field
    of its own, or, without one, in the ``settings`` field,
    :func:`audit.worker.environment.read_settings`)."""

    def check(value: str, env: Recorded) -> Optional[str]:
        recorded = (
            env
            if name in env
            else expanded({"settings": env["settings"]})
            if "settings" in env
            else None
        )
        if recorded is None:
            return None  # a run of another schema: cannot tell
        seen = recorded.get(name)
        asked = None if value == UNSET else value
        if seen != asked:
            return f"the worker saw {name}={seen}"
        return None

    return check


def _aten(value: str, env: Recorded) -> Optional[str]:
    used = env.get("cpu_capability")
    if value == UNSET or used is None or env.get("torch_version") is None:
        return None
    if used.lower() != value.lower():
        return f"torch dispatched {used} instead (the CPU or this torch build lacks {value})"
    return None


def _threads(value: str, env: Recorded) -> Optional[str]:
    used = env.get("num_threads")
    if used is None or env.get("torch_version") is None or used == value:
        return None
    return f"torch ran with {used} threads"


def _deterministic(value: str, env: Recorded) -> Optional[str]:
    used = env.get("deterministic_algorithms")
    if used is None or used.lower() == str(value == "on").lower():
        return None
    return f"torch.are_deterministic_algorithms_enabled() was {used}"


def _flush_denormal(value: str, env: Recorded) -> Optional[str]:
    """torch.set_flush_denormal does nothing where the CPU cannot flush (it needs x86 SSE3); the
    worker records whether its thread flushes as ``torch.flush_denormal`` in ``process_state``
    (left out while it is off, the fresh interpreter's value)."""
    if "process_state" not in env or env.get("torch_version") is None:
        return None
    seen = expanded({"process_state": env["process_state"]}).get("torch.flush_denormal", "False")
    if seen != str(value == "on"):
        return f"torch.flush_denormal was {seen} (set_flush_denormal needs an x86 CPU with SSE3)"
    return None


def _features(value: str) -> List[str]:
    return [f for f in re.split(r"[ ,]+", value.upper()) if f]


def _npy_disable(value: str, env: Recorded) -> Optional[str]:
    simd = env.get("numpy_simd")
    if value == UNSET or simd is None:
        return None
    still = [f for f in _features(value) if f in simd.split()]
    if still:
        version = env.get("numpy_version")
        return f"numpy still uses {' '.join(still)} (not a dispatch target of numpy {version}?)"
    return None


def _npy_targets(value: str, targets: Mapping[str, bool], env: Recorded) -> Optional[str]:
    if value == UNSET:
        return None
    unknown = [f for f in _features(value) if f not in targets]
    if unknown:
        return (
            f"{' '.join(unknown)} is not a dispatch target of numpy {env.get('numpy_version')} "
            f"(its targets: {' '.join(targets)}); nothing was disabled"
        )
    absent = [f for f in _features(value) if not targets[f]]
    if absent:
        return f"this CPU lacks {' '.join(absent)}: numpy never used it, nothing was disabled"
    return None


def _npy_enable(value: str, env: Recorded) -> Optional[str]:
    simd = env.get("numpy_simd")
    if value == UNSET or simd is None:
        return None
    missing = [f for f in _features(value) if f not in simd.split()]
    if missing:
        return f"numpy does not use {' '.join(missing)}"
    return None


def _qemu_cpu(value: str, env: Recorded) -> Optional[str]:
    """Honoured when the worker ran under qemu as that class (the wrapper names it in
    ``emulator``)."""
    emulator = env.get("emulator")
    if value == UNSET or "emulator" not in env:
        return None
    if not emulator:
        return (
            "the worker ran natively (no emulator): QEMU_CPU changed nothing; "
            "give --python an arm64 wrapper"
        )
    if not emulator.endswith(f"({value})"):
        return f"the worker ran as {emulator}"
    return None


# --------------------------------------------------------------------------- the table


def _env_axis(
    name: str,
    meaning: str,
    pattern: Optional[str] = None,
    choices: Tuple[str, ...] = (),
    example: str = "",
    honoured: Optional[Check] = None,
    fields: Tuple[str, ...] = (),
    targets: Optional[TargetsCheck] = None,
) -> AxisKind:
    """An environment-variable axis: by default honoured when the worker saw the variable, shown by
    its own field or, for a variable without one, by ``settings``."""
    return AxisKind(
        name,
        Apply.ENV,
        meaning,
        _set_variable(name),
        re.compile(pattern) if pattern else None,
        choices,
        example,
        honoured or _variable(name),
        fields or ((name,) if name in SETTINGS else ("settings",)),
        targets,
    )


def _numpy_axis(
    name: str, meaning: str, example: str, honoured: Check, targets: Optional[TargetsCheck] = None
) -> AxisKind:
    """A variable naming numpy's dispatch targets: shown by the variable and by ``numpy_simd``
    (what numpy then dispatched to); ``targets`` checks it against the targets this numpy
    knows (the sweep asks the numpy under test for them)."""
    return _env_axis(
        name,
        meaning,
        _FEATURES.pattern,
        example=example,
        honoured=honoured,
        fields=(name, "numpy_simd"),
        targets=targets,
    )


def _call_axis(
    name: str,
    meaning: str,
    honoured: Check,
    fields: Tuple[str, ...],
    choices: Tuple[str, ...] = ("on", "off"),
    pattern: Optional[re.Pattern[str]] = None,
    example: str = "",
    applied: Optional[Applier] = None,
) -> AxisKind:
    """A library-call axis: the worker makes the call ``name`` of audit.worker.calls with the
    value (on/off unless told otherwise); ``honoured`` reads the fields that show it held."""
    return AxisKind(
        name,
        Apply.CALL,
        meaning,
        applied or _call(name),
        pattern,
        choices,
        example,
        honoured,
        fields,
    )


#: Every axis ``--axis`` accepts, by name, in the order ``sweep --help`` lists them.
AXES: Dict[str, AxisKind] = {
    axis.name: axis
    for axis in (
        _call_axis(
            "threads",
            "torch.set_num_threads plus " + ", ".join(THREAD_VARIABLES),
            _threads,
            ("num_threads", *THREAD_VARIABLES),
            choices=(),
            pattern=_COUNT,
            example="1,2",
            applied=_set_threads,
        ),
        _call_axis(
            "deterministic",
            "torch.use_deterministic_algorithms",
            _deterministic,
            ("deterministic_algorithms",),
        ),
        _call_axis(
            "flush_denormal",
            "torch.set_flush_denormal: subnormal floats read and written as zero (x86)",
            _flush_denormal,
            ("process_state",),
        ),
        # checked by the spinners themselves (audit.runner.load)
        AxisKind(
            "load",
            Apply.LOAD,
            "idle, or busy: other processes keep every core busy during the run",
            _not_the_worker,
            choices=("idle", "busy"),
        ),
        _env_axis(
            "ATEN_CPU_CAPABILITY",
            "torch CPU dispatch level",
            choices=ATEN_LEVELS,
            honoured=_aten,
            fields=("ATEN_CPU_CAPABILITY", "cpu_capability"),
        ),
        _env_axis("OMP_NUM_THREADS", "OpenMP pool size", _COUNT.pattern, example="1,2"),
        _env_axis("MKL_NUM_THREADS", "MKL pool size", _COUNT.pattern, example="1,2"),
        _env_axis("OPENBLAS_NUM_THREADS", "OpenBLAS pool size", _COUNT.pattern, example="1,2"),
        _env_axis(
            "OPENBLAS_CORETYPE",
            "OpenBLAS kernel family",
            r"^[A-Za-z0-9_]+$",
            example="Haswell,SkylakeX",
        ),
        _numpy_axis(
            "NPY_DISABLE_CPU_FEATURES",
            "numpy dispatch targets switched off (numpy's own names)",
            "X86_V4 on numpy>=2.4, AVX512F AVX512_SKX before",
            _npy_disable,
            targets=_npy_targets,
        ),
        _numpy_axis(
            "NPY_ENABLE_CPU_FEATURES",
            "numpy dispatch targets allowed (numpy>=2.0)",
            "X86_V3",
            _npy_enable,
        ),
        _env_axis(
            "MKL_CBWR", "MKL reproducibility mode", r"^[A-Za-z0-9_,]+$", example="COMPATIBLE,AVX2"
        ),
        _env_axis(
            "PYTHONHASHSEED", "Python hash seed", r"^(random|[0-9]{1,10})$", example="0,1,random"
        ),
        _env_axis(
            "QEMU_CPU",
            "ARM CPU class of an emulated aarch64 --python (docs/arm.md)",
            choices=("neoverse-n1", "a64fx", "max-sve256", "max"),
            honoured=_qemu_cpu,
            fields=("QEMU_CPU", "emulator"),
        ),
        _env_axis(
            "CUBLAS_WORKSPACE_CONFIG",
            "cuBLAS workspace",
            r"^(:[0-9]+:[0-9]+)+$",
            example=":4096:8",
            honoured=_never,
        ),
        _env_axis(
            "OMP_WAIT_POLICY",
            "OpenMP idle threads spin (active) or sleep (passive)",
            choices=("active", "passive"),
        ),
    )
}
