"""What environment made a run: the documented fields, captured inside the worker.

:data:`FIELDS` is the one table of environment fields (name -> meaning); every run file
carries each of them as a string column (null where not applicable).  The names are a
public contract (see DESIGN.md): add fields, never rename one.

Capture reads library versions from installed metadata, so it never imports a library
that is not installed and never imports pandas.  numpy and torch are asked for details
only when they are already imported (the worker imports the libraries under test first).
Worker side: standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from typing import Callable, Dict, Mapping, Optional, Tuple

from audit.registry import canonical_json
from audit.worker import process_state
from audit.worker.settings import SETTING_PREFIXES, SETTINGS

#: Parts of a variable's name that mark a secret: its value is recorded as this word.
_SECRET = ("TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL")
REDACTED = "<redacted>"

#: Fields that hold a canonical JSON object of further settings (name -> value), null when
#: empty.  Compare reads each entry as a field of its own (see :func:`expanded`).
JSON_FIELDS = ("settings", "process_state")

#: Every environment field: name -> what it records.
FIELDS: Dict[str, str] = {
    "machine_id": "short id naming this machine's files: os, arch and a hash of CPU and GPU model",
    "python_version": "Python version (platform.python_version)",
    "python_implementation": "CPython, PyPy ...",
    "numpy_version": "numpy version, null if not installed",
    "torch_version": "torch version, null if not installed",
    "pandas_version": "pandas version, null if not installed",
    "xxhash_version": "version of the hash package that made the fingerprints",
    "os": "operating system (platform.system)",
    "os_release": "operating system release",
    "arch": "machine architecture (platform.machine)",
    "emulator": (
        "the emulator and CPU model an emulated worker ran under "
        "(qemu-aarch64 7.2.22 -cpu a64fx (a64fx)); null when native"
    ),
    "cpu_model": (
        "CPU model name (on arm64 Linux named from the MIDR implementer/part; on macOS the brand "
        "string; on Windows the processor name)"
    ),
    "cpu_features": (
        "ISA features the OS reports that pick kernels: arm64 Linux hwcaps (sve, sve2, i8mm ...), "
        "macOS hw.optional.arm.FEAT_*"
    ),
    "cpu_count": "logical CPUs",
    "cpu_capability": "torch's ATen CPU dispatch level as torch reports it",
    "numpy_simd": "numpy SIMD extensions in use (baseline + dispatched), as numpy reports them",
    "num_threads": "torch intra-op threads (torch.get_num_threads)",
    "blas": "BLAS libraries behind numpy and torch",
    "openblas_core": (
        "the OpenBLAS kernel family chosen at load time "
        "(openblas_get_corename: Haswell, SkylakeX ...)"
    ),
    "openblas_config": (
        "OpenBLAS's build and runtime configuration string (version, threading, core)"
    ),
    "mkl_code_path": (
        "the MKL code path in force: the MKL_CBWR branch when set, else the one MKL picks "
        "for this CPU (AVX2, AVX512_E1 ...)"
    ),
    "gpu_name": "CUDA device 0 name, null without a GPU",
    "gpu_compute_capability": "CUDA device 0 compute capability, e.g. 9.0",
    "gpu_multiprocessors": "CUDA device 0 multiprocessor count (caps launch grids)",
    "cuda_version": "CUDA version torch was built with",
    "cudnn_version": "cuDNN version torch uses",
    "driver_version": "NVIDIA driver version",
    "deterministic_algorithms": "torch.are_deterministic_algorithms_enabled()",
    "tf32_matmul": "torch.backends.cuda.matmul.allow_tf32",
    "tf32_cudnn": "torch.backends.cudnn.allow_tf32",
    **SETTINGS,
    "settings": (
        "every other variable set whose name starts with one of SETTING_PREFIXES "
        "(OMP_, KMP_, MKL_, DNNL_, ONEDNN_, ...), as a canonical JSON object; "
        "null when there is none"
    ),
    "process_state": (
        "process settings that differ from a fresh interpreter's when the cases start (set by a "
        "probe module at import: torch.default_dtype, torch.flush_denormal, numpy.seterr ...), "
        "as a canonical JSON object; null when there is none"
    ),
}


def read_settings(environ: Mapping[str, str]) -> Optional[str]:
    """The ``settings`` field: the variables of ``environ`` with a prefix of
    :data:`SETTING_PREFIXES` and no field of their own, as canonical JSON (None: none set)."""
    found = {
        name: (REDACTED if any(word in name.upper() for word in _SECRET) else value)
        for name, value in environ.items()
        if name.startswith(SETTING_PREFIXES) and name not in SETTINGS
    }
    return canonical_object(found)


def canonical_object(values: Mapping[str, str]) -> Optional[str]:
    """A field holding an object, in the one JSON spelling (:func:`audit.registry.canonical_json`:
    sorted keys, no spaces); None when empty."""
    return canonical_json(dict(values)) if values else None


def expanded(env: Mapping[str, Optional[str]]) -> Dict[str, Optional[str]]:
    """``env`` with each :data:`JSON_FIELDS` field replaced by its entries, so that a split by
    ``DNNL_MAX_CPU_ISA`` is named by that variable.  (A key that is a field already, or a
    value that is not a JSON object, stays as it is.)"""
    out = dict(env)
    for name in JSON_FIELDS:
        text = out.get(name)
        try:
            entries = json.loads(text) if text else {}
        except ValueError:
            continue
        if not isinstance(entries, dict) or any(key in out for key in entries):
            continue
        out.pop(name, None)
        out.update(
            {str(key): None if value is None else str(value) for key, value in entries.items()}
        )
    return out


def _version(dist: str) -> Optional[str]:
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


#: arm64 MIDR implementer and part (hex) and the name they stand for, for the parts this project
#: meets (Linux's cpuinfo has no model name).
_ARM_PART_NAMES = """
41 d08 ARM Cortex-A72      41 d0b ARM Cortex-A76      41 d0c ARM Neoverse-N1
41 d40 ARM Neoverse-V1     41 d49 ARM Neoverse-N2     41 d4f ARM Neoverse-V2
41 d8e ARM Neoverse-N3     41 d84 ARM Neoverse-V3     46 001 Fujitsu A64FX
c0 ac3 Ampere-1            c0 ac4 Ampere-1a           61 022 Apple M1
00 051 QEMU max
"""
#: (implementer, part) -> name, read from the table above (entries apart by two spaces or more).
ARM_PARTS: Dict[Tuple[int, int], str] = {
    (int(implementer, 16), int(part, 16)): name
    for entry in re.split(r"\s{2,}|\n", _ARM_PART_NAMES.strip())
    for implementer, part, name in [entry.split(maxsplit=2)]
}


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _cpuinfo_model(text: str) -> Optional[str]:
    """x86's 'model name', or an arm64 kernel's implementer/part turned into a name."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    for name in ("model name", "Processor", "cpu model"):
        if fields.get(name):
            return fields[name]
    if "CPU implementer" in fields and "CPU part" in fields:
        try:
            part = (int(fields["CPU implementer"], 16), int(fields["CPU part"], 16))
        except ValueError:
            return None
        return ARM_PARTS.get(part, f"arm64 implementer 0x{part[0]:02x} part 0x{part[1]:03x}")
    return None


def _sysctl(name: str) -> Optional[str]:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _windows_processor() -> Optional[str]:
    """The registry's ProcessorNameString (what Task Manager shows); platform.processor() says
    less."""
    try:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        key = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
        machine = winreg.HKEY_LOCAL_MACHINE  # type: ignore[attr-defined,unused-ignore]
        opened = winreg.OpenKey(machine, key)  # type: ignore[attr-defined,unused-ignore]
        with opened as k:
            read = winreg.QueryValueEx  # type: ignore[attr-defined,unused-ignore]
            value = read(k, "ProcessorNameString")[0]
            return str(value).strip() or None
    except (ImportError, OSError):
        return None


def _cpu_model() -> str:
    if sys.platform == "darwin":
        brand = _sysctl("machdep.cpu.brand_string")
        if brand:
            return brand
    if sys.platform == "win32":
        name = _windows_processor()
        if name:
            return name
    text = _read("/proc/cpuinfo")
    model = _cpuinfo_model(text) if text else None
    return model or platform.processor() or platform.machine()


def _cpu_features() -> Optional[str]:
    """arm64 Linux: the kernel's Features line; macOS on Apple silicon: the FEAT_* sysctls set to
    1."""
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "hw.optional.arm"], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.SubprocessError):
            return None
        names = [
            line.split(":")[0].rsplit(".", 1)[-1]
            for line in out.stdout.splitlines()
            if line.strip().endswith(": 1") and ".FEAT_" in line
        ]
        return " ".join(sorted(names)) or None
    text = _read("/proc/cpuinfo")
    if text and platform.machine().lower() in ("aarch64", "arm64"):
        for line in text.splitlines():
            if line.startswith("Features"):
                return line.split(":", 1)[1].strip()
    return None


def _numpy_fields() -> Dict[str, Optional[str]]:
    np = sys.modules.get("numpy")
    if np is None:
        return {}
    fields: Dict[str, Optional[str]] = {}
    try:
        from numpy._core._multiarray_umath import (
            __cpu_baseline__,
            __cpu_dispatch__,
            __cpu_features__,
        )
    except ImportError:
        try:
            from numpy.core._multiarray_umath import (  # type: ignore
                __cpu_baseline__,
                __cpu_dispatch__,
                __cpu_features__,
            )
        except ImportError:
            __cpu_baseline__ = __cpu_dispatch__ = None  # type: ignore[assignment]
            __cpu_features__ = {}
    if __cpu_baseline__ is not None:
        used = [
            f for f in list(__cpu_baseline__) + list(__cpu_dispatch__) if __cpu_features__.get(f)
        ]
        fields["numpy_simd"] = " ".join(used)
    fields["blas"] = _numpy_blas(np)
    return fields


def _numpy_blas(np) -> Optional[str]:  # type: ignore[no-untyped-def]
    try:
        config = np.show_config(mode="dicts")  # numpy >= 1.26
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:
        pass
    info = getattr(np.__config__, "blas_opt_info", None) or {}
    libs = info.get("libraries") if isinstance(info, dict) else None
    return ",".join(libs) if libs else None


def _torch_fields() -> Dict[str, Optional[str]]:
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    fields: Dict[str, Optional[str]] = {
        "num_threads": str(torch.get_num_threads()),
        "deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()),
    }
    try:
        fields["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # torch < 2.1
        fields["cpu_capability"] = _capability_from_config(torch)
    try:
        config = torch.__config__.show()
        blas = [
            line.split("=", 1)[1].strip() for line in config.splitlines() if "BLAS_INFO=" in line
        ]
        if blas:
            fields["torch_blas"] = blas[0].rstrip(",").split(",")[0]
    except Exception:
        pass
    fields.update(_cuda_fields(torch))
    return fields


def _capability_from_config(torch) -> Optional[str]:  # type: ignore[no-untyped-def]
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return None


def _cuda_fields(torch) -> Dict[str, Optional[str]]:  # type: ignore[no-untyped-def]
    fields: Dict[str, Optional[str]] = {"cuda_version": torch.version.cuda}
    if not torch.cuda.is_available():
        return fields
    props = torch.cuda.get_device_properties(0)
    fields.update(
        gpu_name=props.name,
        gpu_compute_capability=f"{props.major}.{props.minor}",
        gpu_multiprocessors=str(props.multi_processor_count),
        cudnn_version=str(torch.backends.cudnn.version()),
        tf32_matmul=str(torch.backends.cuda.matmul.allow_tf32),
        tf32_cudnn=str(torch.backends.cudnn.allow_tf32),
        driver_version=_driver_version(),
    )
    return fields


def _driver_version() -> Optional[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return (
            out.stdout.strip().splitlines()[0]
            if out.returncode == 0 and out.stdout.strip()
            else None
        )
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def machine_id(env: Dict[str, Optional[str]]) -> str:
    """A short id that can name files; no hostname, stable for one machine's hardware."""
    ident = "|".join(str(env.get(k) or "") for k in ("cpu_model", "gpu_name"))
    digest = hashlib.sha256(ident.encode()).hexdigest()[:8]
    return f"{(env.get('os') or 'unknown').lower()}-{env.get('arch') or 'unknown'}-{digest}"


def _kernel_fields() -> Dict[str, Optional[str]]:
    from audit.worker.kernels import kernel_fields

    try:
        return kernel_fields()
    except Exception:  # pragma: no cover - a library answering oddly never fails a run
        return {}


_CAPTURERS: list[Callable[[], Dict[str, Optional[str]]]] = [
    _numpy_fields,
    _torch_fields,
    _kernel_fields,
]


def capture() -> Dict[str, Optional[str]]:
    """Every field of :data:`FIELDS`, as strings or None."""
    env: Dict[str, Optional[str]] = {name: None for name in FIELDS}
    env.update(
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        numpy_version=_version("numpy"),
        torch_version=_version("torch"),
        pandas_version=_version("pandas"),
        xxhash_version=_version("xxhash"),
        os=platform.system(),
        os_release=platform.release(),
        arch=platform.machine(),
        emulator=os.environ.get("AUDIT_EMULATOR") or None,
        cpu_model=_cpu_model(),
        cpu_features=_cpu_features(),
        cpu_count=str(os.cpu_count()),
    )
    env.update({name: os.environ.get(name) for name in SETTINGS})
    env["settings"] = read_settings(os.environ)
    env["process_state"] = canonical_object(process_state.non_default())
    for capturer in _CAPTURERS:
        extra = capturer()
        torch_blas = extra.pop("torch_blas", None)
        env.update(extra)
        if torch_blas:
            env["blas"] = (
                f"numpy:{env['blas']}; torch:{torch_blas}"
                if env.get("blas")
                else f"torch:{torch_blas}"
            )
    if env.get("blas") and not str(env["blas"]).startswith(("numpy:", "torch:")):
        env["blas"] = f"numpy:{env['blas']}"
    env["machine_id"] = machine_id(env)
    return env
