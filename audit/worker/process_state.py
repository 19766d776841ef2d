"""The process-wide settings that change numbers, checked and restored around every execution.

A probe that calls ``torch.set_default_dtype(torch.float64)`` or ``torch.set_flush_denormal(True)``
and does not undo it changes every probe after it: the next ones turn "nondeterministic" or
get a new stream for a reason that is not theirs.  :func:`checked` saves each setting of
:func:`settings` (and ``os.environ``) before an execution, puts back what the execution
changed, and names it, so the case gets a note and the next case starts from the same state.

What a user's probe module sets *at import* applies to every case: the worker captures the
state after the imports as the one to restore to, and :func:`non_default` records what
differs from a fresh interpreter in the environment field ``process_state``.

The global generators are restored by :mod:`audit.worker.seeding` (once per case: a probe that
draws from an unseeded global generator must see it move between its executions).

Worker side: standard library only; numpy and torch are read only when already imported.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from audit.worker.records import UNSET
from audit.worker.settings import SETTING_PREFIXES, SETTINGS

#: Marks a setting whose value in a fresh interpreter is not fixed (thread counts).
NO_DEFAULT = object()


@dataclass(frozen=True)
class Setting:
    """One global setting: how to read and write it, and its value in a fresh interpreter."""

    name: str  # as recorded: "torch.default_dtype"
    get: Callable[[], Any]
    put: Optional[Callable[[Any], None]]  # None: cannot be set back once changed
    default: Any = NO_DEFAULT


_TINY, _ONE = 5e-324, 1.0  # a subnormal: multiplied by one it stays, unless denormals are flushed


def flush_denormal() -> bool:
    """Whether this thread flushes subnormals to zero (x86 FTZ/DAZ, as torch.set_flush_denormal
    sets them); torch has no getter, so the arithmetic of a Python float tells."""
    return _TINY * _ONE == 0.0


def _torch_settings(torch: Any) -> List[Setting]:
    out = [
        Setting(
            "torch.default_dtype", torch.get_default_dtype, torch.set_default_dtype, torch.float32
        ),
        Setting("torch.flush_denormal", flush_denormal, torch.set_flush_denormal, False),
        Setting("torch.num_threads", torch.get_num_threads, torch.set_num_threads),
        Setting("torch.num_interop_threads", torch.get_num_interop_threads, None),
        Setting(
            "torch.deterministic_algorithms",
            torch.are_deterministic_algorithms_enabled,
            lambda on: torch.use_deterministic_algorithms(on, warn_only=_warn_only(torch)),
        ),
        Setting("torch.grad_enabled", torch.is_grad_enabled, torch.set_grad_enabled, True),
        Setting(
            "torch.anomaly_enabled", torch.is_anomaly_enabled, torch.set_anomaly_enabled, False
        ),
    ]
    if hasattr(torch, "is_deterministic_algorithms_warn_only_enabled"):
        out.append(
            Setting(
                "torch.deterministic_warn_only",
                torch.is_deterministic_algorithms_warn_only_enabled,
                lambda wo: torch.use_deterministic_algorithms(
                    torch.are_deterministic_algorithms_enabled(), warn_only=wo
                ),
                False,
            )
        )
    # before allow_tf32: setting it sets allow_tf32
    if hasattr(torch, "get_float32_matmul_precision"):
        out.append(
            Setting(
                "torch.float32_matmul_precision",
                torch.get_float32_matmul_precision,
                torch.set_float32_matmul_precision,
                "highest",
            )
        )
    if hasattr(torch, "get_default_device"):
        out.append(
            Setting(
                "torch.default_device",
                lambda: str(torch.get_default_device()),
                torch.set_default_device,
                "cpu",
            )
        )
    return out + _backend_settings(torch) + _autocast_settings(torch)


def _backend_settings(torch: Any) -> List[Setting]:
    """The flags of torch.backends that pick kernels: (module, attribute, fresh value)."""
    backends = torch.backends
    flags = [
        (backends.cuda.matmul, "torch.backends.cuda.matmul", "allow_tf32", False),
        (
            backends.cuda.matmul,
            "torch.backends.cuda.matmul",
            "allow_fp16_reduced_precision_reduction",
            True,
        ),
        (
            backends.cuda.matmul,
            "torch.backends.cuda.matmul",
            "allow_bf16_reduced_precision_reduction",
            True,
        ),
        (backends.cudnn, "torch.backends.cudnn", "allow_tf32", True),
        (backends.cudnn, "torch.backends.cudnn", "deterministic", False),
        (backends.cudnn, "torch.backends.cudnn", "benchmark", False),
        (backends.mkldnn, "torch.backends.mkldnn", "enabled", True),
    ]
    return [
        Setting(f"{where}.{name}", *_attribute(module, name), default)
        for module, where, name, default in flags
        if hasattr(module, name)
    ]


def _attribute(module: Any, name: str) -> Tuple[Callable[[], Any], Callable[[Any], None]]:
    """Getter and setter of ``module.name``."""

    def get() -> Any:
        return getattr(module, name)

    def put(value: Any) -> None:
        setattr(module, name, value)

    return get, put


def _warn_only(torch: Any) -> bool:
    check = getattr(torch, "is_deterministic_algorithms_warn_only_enabled", None)
    return bool(check()) if check is not None else False


def _autocast_settings(torch: Any) -> List[Setting]:
    try:
        torch.is_autocast_enabled("cpu")  # torch >= 2.4 takes the device type
    except TypeError:
        return [
            Setting(
                "torch.autocast_enabled.cpu",
                torch.is_autocast_cpu_enabled,
                torch.set_autocast_cpu_enabled,
                False,
            ),
            Setting(
                "torch.autocast_enabled.cuda",
                torch.is_autocast_enabled,
                torch.set_autocast_enabled,
                False,
            ),
        ]
    return [
        Setting(
            f"torch.autocast_enabled.{device}",
            functools.partial(torch.is_autocast_enabled, device),
            functools.partial(torch.set_autocast_enabled, device),
            False,
        )
        for device in ("cpu", "cuda")
    ]


def _numpy_settings(np: Any) -> List[Setting]:
    default = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}
    return [Setting("numpy.seterr", np.geterr, lambda d: np.seterr(**d), default)]


def settings() -> List[Setting]:
    """The settings of the libraries imported now (one missing from an old release is left out)."""
    out: List[Setting] = []
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    for make, module in ((_torch_settings, torch), (_numpy_settings, np)):
        if module is None:
            continue
        try:
            out += [s for s in make(module) if _readable(s)]
        except AttributeError:  # an old release without one of the backends: none of its settings
            continue
    return out


def _readable(setting: Setting) -> bool:
    try:
        setting.get()
    except Exception:  # an API this release lacks, or one that needs a device
        return False
    return True


def shown(value: Any) -> str:
    """A setting's value as recorded and named in a note."""
    if isinstance(value, dict):
        return ",".join(f"{k}={value[k]}" for k in sorted(value))
    return str(value)


def non_default() -> Dict[str, str]:
    """The settings whose value now differs from a fresh interpreter's (the environment
    field ``process_state``: what a user module set at import, or the worker's options)."""
    out: Dict[str, str] = {}
    for setting in settings():
        if setting.default is NO_DEFAULT:
            continue
        value = setting.get()
        if value != setting.default:
            out[setting.name] = shown(value)
    return out


@contextlib.contextmanager
def checked() -> Iterator[List[str]]:
    """Run the block; then put back every setting and environment variable it changed.

    Yields a list that, after the block, names each change (``torch.default_dtype:
    torch.float64, was torch.float32``), ending in ``(not restorable)`` for a setting
    that cannot be set back.
    """
    found = settings()
    saved = [(s, s.get()) for s in found]
    environ = dict(os.environ)
    changed: List[str] = []
    try:
        yield changed
    finally:
        changed += _restore(saved) + _restore_environ(environ)


def _restore(saved: List[Any]) -> List[str]:
    notes = []
    for setting, before in saved:
        now = setting.get()
        if now == before:
            continue
        note = f"{setting.name}: {shown(now)}, was {shown(before)}"
        try:
            if setting.put is None:
                raise RuntimeError("no setter")
            setting.put(before)
        except Exception:  # e.g. torch's interop threads are fixed once set
            note += " (not restorable: later cases run with it)"
        notes.append(note)
    return notes


def _restore_environ(before: Dict[str, str]) -> List[str]:
    """Put ``os.environ`` back; name the variables the audited libraries read (see
    :data:`audit.worker.settings.SETTING_PREFIXES`).  Others are restored unnamed: torch
    sets ``TORCHINDUCTOR_CACHE_DIR`` itself on first use, in whichever case that is."""
    now = dict(os.environ)
    names = sorted(n for n in set(before) | set(now) if before.get(n) != now.get(n))
    for name in names:
        if name in before:
            os.environ[name] = before[name]
        else:
            del os.environ[name]
    read = [n for n in names if n.startswith(SETTING_PREFIXES) or n in SETTINGS]
    return [
        f"os.environ[{name!r}]: {now.get(name, UNSET)}, was {before.get(name, UNSET)}"
        for name in read
    ]
