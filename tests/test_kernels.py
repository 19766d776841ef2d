"""The kernel each BLAS chose, as environment fields (issue 9: name the kernel actually chosen).

Nothing here sets OPENBLAS_CORETYPE or MKL_CBWR: the machine's own choice is read and
checked for shape and stability; the attribution order is checked on synthetic environments.
"""

from __future__ import annotations

import pytest

from audit.compare.attribution import attribute
from audit.worker import kernels
from audit.worker.environment import FIELDS, capture

KERNEL_FIELDS = ("openblas_core", "openblas_config", "mkl_code_path")


def test_the_kernel_fields_are_documented_environment_fields() -> None:
    assert all(name in FIELDS for name in KERNEL_FIELDS)


def test_the_kernels_numpy_and_torch_loaded_are_named_and_stable() -> None:
    pytest.importorskip("numpy")
    first, second = kernels.kernel_fields(), kernels.kernel_fields()
    assert first == second and set(first) == set(KERNEL_FIELDS)
    assert all(v is None or (isinstance(v, str) and v) for v in first.values())
    np = pytest.importorskip("numpy")
    if "openblas" in str(np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})).lower():
        assert first["openblas_core"] and first["openblas_config"] and "OpenBLAS" in first["openblas_config"]


def test_capture_carries_them() -> None:
    env = capture()
    assert all(name in env for name in KERNEL_FIELDS)


def test_a_library_that_is_not_a_blas_answers_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert kernels._openblas(str(tmp_path / "libnot-a-library.so")) is None
    assert kernels._joined([]) is None
    assert kernels._joined([("numpy", "SkylakeX"), ("torch", "SkylakeX")]) == "SkylakeX"
    assert kernels._joined([("numpy", "SkylakeX"), ("torch", "Haswell")]) == "numpy:SkylakeX; torch:Haswell"


def test_a_split_between_machines_is_put_on_the_kernel_before_the_cpu_model() -> None:
    envs = [{"cpu_model": "AMD EPYC 7B13", "openblas_core": "Zen"},
            {"cpu_model": "Intel(R) Xeon(R)", "openblas_core": "SkylakeX"}]
    found = attribute(envs, ["a", "b"])
    assert found.axes[0] == "openblas_core" and "cpu_model" in found.axes
