"""CUDA ops whose results depend on the GPU, on backend flags, or on the order of atomics.

* matmul: TF32 on/off for float32, and the float16/bfloat16 tensor-core paths; the chosen
  cuBLAS kernel (and so the rounding) depends on the GPU model and the library version.
* conv2d forward and backward under ``cudnn.benchmark`` and ``cudnn.deterministic``:
  benchmark mode picks the fastest algorithm at run time, which may differ run to run.
* atomics: ``index_add_``, ``scatter_add_``, ``index_put_(accumulate=True)`` and the
  embedding backward add floats in whatever order threads arrive, so they run ``repeats=5``
  times and the worker reports whether the runs agree.  Under
  ``torch.use_deterministic_algorithms(True)`` they become repeatable or raise; a raise is
  recorded as an error with torch's message, which is the finding.

Every flag a probe sets is put back afterwards, so later probes see the defaults.
Inputs come from :mod:`audit.probes._inputs` (made on CPU, then moved).
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List

from audit.probe_api import probe
from audit.probes._inputs import OP_SEEDS, torch_ties, torch_uniform
from audit.probes.torch_ops import TORCH_MIN

#: The family reports group these probes under (read at registration; the decorators stay as
#: they are).
FAMILY = "cuda"

ATOMIC_REPEATS = 5


def cuda_op(probe_id: str, grid: Dict[str, Any], repeats: int = 2) -> Any:
    """``@probe`` for a CUDA op: device "cuda", kind "op", the fixed input seed."""
    return probe(probe_id, grid={"seed": OP_SEEDS, **grid}, library="torch", min_version=TORCH_MIN,
                 device="cuda", kind="op", repeats=repeats)


@contextlib.contextmanager
def backend_flags(**flags: bool) -> Iterator[None]:
    """Set ``torch.backends`` flags (matmul_tf32, cudnn_tf32, benchmark, deterministic), then
    restore."""
    import torch

    owners = {
        "matmul_tf32": (torch.backends.cuda.matmul, "allow_tf32"),
        "cudnn_tf32": (torch.backends.cudnn, "allow_tf32"),
        "benchmark": (torch.backends.cudnn, "benchmark"),
        "deterministic": (torch.backends.cudnn, "deterministic"),
    }
    saved = {name: getattr(*owners[name]) for name in flags}
    try:
        for name, value in flags.items():
            setattr(*owners[name], value)
        yield
    finally:
        for name, value in saved.items():
            setattr(*owners[name], value)


#: precision -> (dtype, TF32 allowed for float32 matmul).
_MATMUL_PRECISION = {
    "float32": ("float32", False),
    "float32-tf32": ("float32", True),
    "float16": ("float16", False),
    "bfloat16": ("bfloat16", False),
}


@cuda_op("torch.matmul", {"mkn": [[127, 129, 63], [2048, 2048, 2048]], "precision": list(_MATMUL_PRECISION)})
def cuda_matmul(seed: int, mkn: List[int], precision: str) -> Any:
    """A @ B on the GPU: cuBLAS picks kernels (split-K, tensor cores) per GPU and version."""
    dtype, tf32 = _MATMUL_PRECISION[precision]
    m, k, n = mkn
    a = torch_uniform((m, k), seed, dtype, device="cuda")
    b = torch_uniform((k, n), seed + 1, dtype, device="cuda")
    with backend_flags(matmul_tf32=tf32):
        return a @ b


@cuda_op("torch.nn.functional.conv2d",
         {"direction": ["forward", "backward"], "benchmark": [False, True], "deterministic": [False, True]},
         repeats=ATOMIC_REPEATS)
def cuda_conv2d(seed: int, direction: str, benchmark: bool, deterministic: bool) -> Any:
    """conv2d 3x3 (and its input/weight gradients) under cuDNN's algorithm-choice flags."""
    import torch

    x = torch_uniform((16, 64, 32, 32), seed, device="cuda").requires_grad_(direction == "backward")
    w = (torch_uniform((64, 64, 3, 3), seed + 1, device="cuda") * 0.1).requires_grad_(x.requires_grad)
    with backend_flags(benchmark=benchmark, deterministic=deterministic):
        y = torch.nn.functional.conv2d(x, w, padding=1)
        if direction == "forward":
            return y
        y.backward(torch_uniform(tuple(y.shape), seed + 2, device="cuda"))
    return torch.cat([x.grad.reshape(-1), w.grad.reshape(-1)])


def _register_reduction(name: str) -> None:
    @cuda_op(f"torch.{name}", {"size": [10_000_000], "dtype": ["float32"]}, repeats=3)
    def reduction(seed: int, size: int, dtype: str) -> Any:
        """torch.<name> of 1e7 floats: the block/grid split follows the GPU's SM count."""
        import torch

        x = torch_uniform(size, seed, dtype, device="cuda")
        return torch.cumsum(x, 0) if name == "cumsum" else getattr(torch, name)(x)


for _name in ("sum", "mean", "cumsum"):
    _register_reduction(_name)


@cuda_op("torch.softmax", {"shape": [[1024, 4096]], "log": [False, True]})
def cuda_softmax(seed: int, shape: List[int], log: bool) -> Any:
    """softmax / log_softmax along rows of a (1024, 4096) matrix on the GPU."""
    import torch

    x = torch_uniform(shape, seed, device="cuda") * 8
    return torch.log_softmax(x, -1) if log else torch.softmax(x, -1)


# --- atomics: run-to-run order of float additions ------------------------------------------

_ATOMIC_GRID = {"rows": [1000], "updates": [200_000]}


@cuda_op("torch.Tensor.index_add_", {**_ATOMIC_GRID, "width": [64]}, repeats=ATOMIC_REPEATS)
def cuda_index_add(seed: int, rows: int, updates: int, width: int) -> Any:
    """out.index_add_(0, idx, src) with many updates per row: atomicAdd order."""
    import torch

    idx = torch_ties(updates, seed, distinct=rows, device="cuda")
    src = torch_uniform((updates, width), seed + 1, device="cuda")
    return torch.zeros(rows, width, device="cuda").index_add_(0, idx, src)


@cuda_op("torch.Tensor.scatter_add_", _ATOMIC_GRID, repeats=ATOMIC_REPEATS)
def cuda_scatter_add(seed: int, rows: int, updates: int) -> Any:
    """out.scatter_add_(0, idx, src) into a few slots: atomicAdd order."""
    import torch

    idx = torch_ties(updates, seed, distinct=rows, device="cuda")
    src = torch_uniform(updates, seed + 1, device="cuda")
    return torch.zeros(rows, device="cuda").scatter_add_(0, idx, src)


@cuda_op("torch.Tensor.index_put_", _ATOMIC_GRID, repeats=ATOMIC_REPEATS)
def cuda_index_put(seed: int, rows: int, updates: int) -> Any:
    """out.index_put_((idx,), values, accumulate=True): the `x[idx] += v` of training code."""
    import torch

    idx = torch_ties(updates, seed, distinct=rows, device="cuda")
    values = torch_uniform(updates, seed + 1, device="cuda")
    return torch.zeros(rows, device="cuda").index_put_((idx,), values, accumulate=True)


@cuda_op("torch.nn.functional.embedding", {**_ATOMIC_GRID, "width": [64]}, repeats=ATOMIC_REPEATS)
def cuda_embedding_backward(seed: int, rows: int, updates: int, width: int) -> Any:
    """The gradient of an embedding table: repeated token ids sum into one row."""
    import torch

    weight = torch_uniform((rows, width), seed, device="cuda").requires_grad_(True)
    idx = torch_ties(updates, seed + 1, distinct=rows, device="cuda")
    out = torch.nn.functional.embedding(idx, weight)
    out.backward(torch_uniform((updates, width), seed + 2, device="cuda"))
    return weight.grad
