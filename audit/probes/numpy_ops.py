"""numpy ops on fixed inputs: BLAS matmul, pairwise summation, SIMD math, sorting with ties.

The inputs are the same bits as :mod:`audit.probes.torch_ops` uses (one formula in
:mod:`audit.probes._inputs`), so a numpy and a torch result can be set side by side.
numpy's results move with the BLAS build (OpenBLAS core type, threads), with the SIMD
dispatch of its ufuncs (``NPY_DISABLE_CPU_FEATURES``) and with its sort implementation.
Must run on numpy 1.19: no newer keywords.
"""

from __future__ import annotations

from typing import Any, Dict, List

from audit.probe_api import probe
from audit.probes._inputs import (
    ELEMENTWISE,
    FLOATS,
    MATMUL_SHAPES,
    OP_SEEDS,
    numpy_ties,
    numpy_uniform,
)

#: The family reports group these probes under (read at registration; the decorators stay as
#: they are).
FAMILY = "numpy ops"

NUMPY_MIN = "1.19"


def op_probe(probe_id: str, grid: Dict[str, Any]) -> Any:
    """``@probe`` for a numpy op: kind "op", the fixed input seed in the grid."""
    return probe(probe_id, grid={"seed": OP_SEEDS, **grid}, library="numpy", min_version=NUMPY_MIN,
                 kind="op")


@op_probe("numpy.matmul", {"mkn": MATMUL_SHAPES, "dtype": FLOATS})
def numpy_matmul(seed: int, mkn: List[int], dtype: str) -> Any:
    """A (m, k) @ B (k, n) through numpy's BLAS."""
    import numpy as np

    m, k, n = mkn
    return np.matmul(numpy_uniform((m, k), seed, dtype), numpy_uniform((k, n), seed + 1, dtype))


def _register_reduction(name: str) -> None:
    @op_probe(f"numpy.{name}", {"size": [1_000_000], "dtype": ["float32"]})
    def reduction(seed: int, size: int, dtype: str) -> Any:
        """numpy.<name> of a long float32 vector: pairwise blocks and SIMD lanes set the order."""
        import numpy as np

        return getattr(np, name)(numpy_uniform(size, seed, dtype))


for _name in ("sum", "mean", "cumsum"):
    _register_reduction(_name)


def _register_elementwise(name: str) -> None:
    scale, shift = ELEMENTWISE[name]

    @op_probe(f"numpy.{name}", {"size": [100_000], "dtype": FLOATS, "domain": [[scale, shift]]})
    def elementwise(seed: int, size: int, dtype: str, domain: List[float]) -> Any:
        """numpy.<name> on 1e5 values: SIMD (AVX-512/SVML) and scalar loops may round apart."""
        import numpy as np

        x = numpy_uniform(size, seed, dtype) * np.asarray(domain[0], dtype) + np.asarray(domain[1], dtype)
        return getattr(np, name)(x)


for _name in ("exp", "log", "sin", "tanh"):
    _register_elementwise(_name)


@op_probe("numpy.argsort", {"size": [10_000], "kind": ["quicksort", "stable"]})
def numpy_argsort(seed: int, size: int, kind: str) -> Any:
    """argsort of keys with many ties: quicksort (introsort, SIMD sorts in numpy 2) may reorder ties."""
    import numpy as np

    return np.argsort(numpy_ties(size, seed), kind=kind)  # type: ignore[arg-type]
