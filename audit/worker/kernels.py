"""Which BLAS kernels were actually chosen: OpenBLAS's core and MKL's code path.

Two machines that split a matmul stream usually differ in the kernel their BLAS picked at
load time (OpenBLAS's ``DYNAMIC_ARCH`` core, MKL's dispatch branch), not in anything a
version number shows.  Both libraries say which one they use; asking them lets compare
attribute a split to ``openblas_core: Haswell | SkylakeX`` instead of only to ``cpu_model``.

Asked through ctypes on the libraries already loaded by numpy and torch (found in
``/proc/self/maps`` on Linux, or beside the packages elsewhere); nothing is imported and
nothing fails a run: an answer that cannot be had is None.  Worker side: standard library.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from typing import Dict, List, Optional, Tuple

#: OpenBLAS's query functions under the prefixes and suffixes wheels build it with
#: (plain, ILP64 ``...64_``, scipy-openblas ``scipy_...64_`` in numpy >= 2).
_OPENBLAS_NAMES = [
    (f"{prefix}openblas_get_corename{suffix}", f"{prefix}openblas_get_config{suffix}")
    for prefix in ("", "scipy_")
    for suffix in ("", "64_")
]

#: MKL's conditional-numerical-reproducibility branches (mkl_cbwr.h), by number.
_MKL_BRANCHES = {
    1: "OFF",
    2: "AUTO",
    3: "COMPATIBLE",
    4: "SSE2",
    6: "SSSE3",
    7: "SSE4_1",
    8: "SSE4_2",
    9: "AVX",
    10: "AVX2",
    11: "AVX512_MIC",
    12: "AVX512",
    13: "AVX512_MIC_E1",
    14: "AVX512_E1",
    16: "AVX512_FP16",
}
_MKL_BRANCH = 1  # MKL_CBWR_BRANCH: ask for the branch in force


def kernel_fields() -> Dict[str, Optional[str]]:
    """``openblas_core``, ``openblas_config`` and ``mkl_code_path`` (None where unknown)."""
    libraries = _loaded_libraries()
    cores, configs = [], []
    for owner, path in libraries:
        found = _openblas(path)
        if found is not None:
            cores.append((owner, found[0]))
            configs.append((owner, found[1]))
    return {
        "openblas_core": _joined(cores),
        "openblas_config": _joined(configs),
        "mkl_code_path": _mkl(libraries),
    }


def _joined(values: List[Tuple[str, str]]) -> Optional[str]:
    """'SkylakeX', or 'numpy:SkylakeX; torch:Haswell' when two libraries answer differently."""
    distinct = {v for _, v in values}
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"{owner}:{value}" for owner, value in values)


def _loaded_libraries() -> List[Tuple[str, str]]:
    """(owner, path) of every BLAS-looking shared library numpy or torch loaded."""
    paths: List[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = [line.split()[-1] for line in f if "/" in line]
    except OSError:  # not Linux: look beside the packages
        for name in ("numpy", "torch"):
            module = sys.modules.get(name)
            if module is not None and getattr(module, "__file__", None):
                root = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__ or "")))
                paths += glob.glob(os.path.join(root, f"{name}*", "**", "*"), recursive=True)
    wanted = [p for p in dict.fromkeys(paths) if _is_blas(p)]
    return [(_owner(p), p) for p in wanted]


def _is_blas(path: str) -> bool:
    name = os.path.basename(path).lower()
    return (
        "openblas" in name or name.startswith(("libtorch_cpu", "libmkl_rt", "libmkl_core"))
    ) and (".so" in name or name.endswith((".dylib", ".dll")))


def _owner(path: str) -> str:
    lowered = path.replace("\\", "/").lower()
    return (
        "torch"
        if "/torch" in lowered
        else "numpy"
        if "/numpy" in lowered or "/scipy" in lowered
        else "other"
    )


def _openblas(path: str) -> Optional[Tuple[str, str]]:
    """(core name, config) from one library, if it is an OpenBLAS."""
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    for core_name, config_name in _OPENBLAS_NAMES:
        core = getattr(library, core_name, None)
        if core is None:
            continue
        core.restype = ctypes.c_char_p
        config = getattr(library, config_name, None)
        text = b""
        if config is not None:
            config.restype = ctypes.c_char_p
            text = config() or b""
        return (core() or b"").decode(errors="replace").strip(), text.decode(
            errors="replace"
        ).strip()
    return None


def _mkl(libraries: List[Tuple[str, str]]) -> Optional[str]:
    """MKL's branch: the one ``MKL_CBWR`` forces, else the one MKL picks for this CPU."""
    for _, path in libraries:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        forced, auto = (
            getattr(library, "mkl_serv_cbwr_get", None),
            getattr(library, "mkl_serv_cbwr_get_auto_branch", None),
        )
        if forced is None or auto is None:
            continue
        branch = forced(_MKL_BRANCH)
        if branch not in (0, 1):  # MKL_CBWR set: that branch is in force
            return f"{_MKL_BRANCHES.get(branch, str(branch))} (MKL_CBWR)"
        picked = auto()
        return _MKL_BRANCHES.get(picked, str(picked))
    return None
