"""The environment variables that change what the audited libraries compute.

Named here, apart from environment capture, because two sides need them: the environment
records them (:mod:`audit.worker.environment`) and the per-case state check names the ones a
probe left changed (:mod:`audit.worker.process_state`).  Worker side: standard library only.
"""

from __future__ import annotations

from typing import Dict

#: Environment variables that change results; recorded verbatim (null when unset).
SETTINGS: Dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "torch CPU dispatch level asked for (default, avx2, avx512)",
    "OMP_NUM_THREADS": "OpenMP thread count asked for",
    "MKL_NUM_THREADS": "MKL thread count asked for",
    "NPY_DISABLE_CPU_FEATURES": "numpy SIMD features disabled at start-up",
    "NPY_ENABLE_CPU_FEATURES": "numpy SIMD features restricted to at start-up",
    "OPENBLAS_CORETYPE": "OpenBLAS kernel family forced",
    "OPENBLAS_L2_SIZE": "OpenBLAS L2 size forced",
    "OPENBLAS_NUM_THREADS": "OpenBLAS thread count asked for",
    "MKL_CBWR": "MKL conditional numerical reproducibility mode",
    "CUBLAS_WORKSPACE_CONFIG": "cuBLAS workspace setting (deterministic cuBLAS needs it)",
    "PYTHONHASHSEED": "Python hash seed",
    "QEMU_CPU": (
        "qemu-user CPU model the emulated worker ran as (the arm64 environment's CPU class axis)"
    ),
}

#: Prefixes of the environment variables the audited libraries and their runtimes (OpenMP,
#: MKL, oneDNN, OpenBLAS, numpy, ATen, CUDA) read.  Every variable set with one of them
#: and no field of its own goes into ``settings``: two runs whose settings differ are never
#: "the same environment" (``DNNL_MAX_CPU_ISA=SSE41`` changes conv2d, it is not noise).
SETTING_PREFIXES = (
    "OMP_",
    "KMP_",
    "GOMP_",
    "MKL_",
    "DNNL_",
    "ONEDNN_",
    "OPENBLAS_",
    "GOTO",
    "NPY_",
    "ATEN_",
    "TORCH_",
    "PYTORCH_",
    "CUBLAS_",
    "CUDA_",
    "NVIDIA_TF32",
)
