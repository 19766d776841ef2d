"""torch ops on fixed inputs: do matmul, reductions and vectorised math agree across machines?

Inputs come from :mod:`audit.probes._inputs`, never from torch's generators, so a changed
fingerprint here is the op's doing (BLAS kernel, vector width, thread split of a reduction)
and not its input's.  Op inputs are fixed data: the ``seed`` parameter is the input
formula's seed and does not follow the run's seed panel.

Sizes are chosen to reach the paths that differ: shapes off the BLAS block size, vectors
long enough to be split across threads and vectorised (1e5..1e6 elements).
"""

from __future__ import annotations

from typing import Any, Dict, List

from audit.probe_api import integers, probe, sampled_from, tuples
from audit.probes._inputs import (
    ELEMENTWISE,
    FLOATS,
    MATMUL_SHAPES,
    OP_SEEDS,
    torch_ties,
    torch_uniform,
)

TORCH_MIN = "2.0"


def op_probe(probe_id: str, grid: Dict[str, Any], **kwargs: Any) -> Any:
    """``@probe`` for a CPU torch op: kind "op", the fixed input seed in the grid."""
    return probe(probe_id, grid={"seed": OP_SEEDS, **grid}, library="torch", min_version=TORCH_MIN,
                 kind="op", **kwargs)


#: The large size panel (``--sizes large``): real-world layer sizes, where kernels take the
#: paths that toy shapes never reach (threaded QR, big GEMM tiles, reductions split over
#: threads, realistic image batches).
LARGE_MATMUL = {"mkn": [[1024, 1024, 1024], [2048, 2048, 2048], [4096, 4096, 4096]]}
LARGE_REDUCTION = {"size": [10_000_000]}
LARGE_CONV = {"input": [[32, 64, 56, 56]], "weight": [[64, 64, 3, 3]]}

#: Where ``explore`` searches (audit.domains; not part of the probe versions): shapes up to a
#: layer's, vectors up to two million elements, rows up to 64 and widths up to 8192.
MATMUL_SEARCH = {"mkn": tuples(integers(1, 512), integers(1, 512), integers(1, 512)),
                 "dtype": sampled_from(FLOATS)}
REDUCTION_SEARCH = {"size": integers(1, 2_000_000)}
ROWS_SEARCH = {"shape": tuples(integers(1, 64), integers(1, 8192))}
ELEMENTWISE_SEARCH = {"size": integers(1, 1_000_000), "dtype": sampled_from(FLOATS)}
ARGSORT_SEARCH = {"size": integers(1, 100_000)}


@op_probe("torch.matmul", {"mkn": MATMUL_SHAPES, "dtype": FLOATS}, sizes={"large": LARGE_MATMUL},
          search=MATMUL_SEARCH)
def torch_matmul(seed: int, mkn: List[int], dtype: str) -> Any:
    """A (m, k) @ B (k, n): the BLAS kernel and its blocking decide the rounding."""
    m, k, n = mkn
    return torch_uniform((m, k), seed, dtype) @ torch_uniform((k, n), seed + 1, dtype)


def _register_reduction(name: str) -> None:
    @op_probe(f"torch.{name}", {"size": [1_000_000], "dtype": ["float32"]}, sizes={"large": LARGE_REDUCTION},
              search=REDUCTION_SEARCH)
    def reduction(seed: int, size: int, dtype: str) -> Any:
        """torch.<name> of a long vector: the summation order follows threads and vector width."""
        import torch

        x = torch_uniform(size, seed, dtype)
        return torch.cumsum(x, 0) if name == "cumsum" else getattr(torch, name)(x)


for _name in ("sum", "mean", "cumsum"):
    _register_reduction(_name)


@op_probe("torch.softmax", {"shape": [[256, 1000]], "log": [False, True]}, search=ROWS_SEARCH)
def torch_softmax(seed: int, shape: List[int], log: bool) -> Any:
    """softmax / log_softmax along rows: exp, max and sum in one vectorised kernel."""
    import torch

    x = torch_uniform(shape, seed) * 8
    return torch.log_softmax(x, -1) if log else torch.softmax(x, -1)


@op_probe("torch.nn.functional.layer_norm", {"shape": [[256, 1000]]}, search=ROWS_SEARCH)
def layer_norm(seed: int, shape: List[int]) -> Any:
    """layer_norm with affine parameters: a mean/variance reduction per row."""
    import torch

    x = torch_uniform(shape, seed) * 3 + 0.5
    weight, bias = torch_uniform(shape[-1], seed + 1), torch_uniform(shape[-1], seed + 2)
    return torch.nn.functional.layer_norm(x, shape[-1:], weight, bias)


@op_probe("torch.nn.functional.conv2d", {"input": [[8, 16, 32, 32]], "weight": [[32, 16, 3, 3]]},
          sizes={"large": LARGE_CONV})
def conv2d(seed: int, input: List[int], weight: List[int]) -> Any:
    """conv2d 3x3 with padding: the CPU backend (oneDNN or im2col+BLAS) picks the order."""
    import torch

    x, w = torch_uniform(input, seed), torch_uniform(weight, seed + 1) * 0.2
    return torch.nn.functional.conv2d(x, w, torch_uniform(weight[0], seed + 2), padding=1)


def _resolve(torch: Any, dotted: str) -> Any:
    obj = torch
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _register_elementwise(name: str, scale: float, shift: float) -> None:
    @op_probe(f"torch.{name}", {"size": [100_000], "dtype": FLOATS, "domain": [[scale, shift]]},
              search=ELEMENTWISE_SEARCH)
    def elementwise(seed: int, size: int, dtype: str, domain: List[float]) -> Any:
        """torch.<name> on 1e5 values: SLEEF/vectorised approximations differ by ISA."""
        import torch

        x = torch_uniform(size, seed, dtype) * domain[0] + domain[1]
        return _resolve(torch, name)(x)


for _name, (_scale, _shift) in ELEMENTWISE.items():
    _register_elementwise(_name, _scale, _shift)


@op_probe("torch.argsort", {"size": [10_000], "stable": [False, True]}, search=ARGSORT_SEARCH)
def torch_argsort(seed: int, size: int, stable: bool) -> Any:
    """argsort of keys with many ties: unstable sorts may order equal keys differently."""
    import torch

    return torch.argsort(torch_ties(size, seed), stable=stable)


def _mlp(torch: Any, seed: int) -> Any:
    """A 32-64-10 MLP whose weights come from the input formula, not from torch's init."""
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch_uniform(tuple(p.shape), seed + 10 + i) * 0.3)
    return model


def _register_training(optimizer: str, options: Dict[str, Any]) -> None:
    @op_probe(f"torch.optim.{optimizer}.step", {"steps": [3], "batch": [64], "options": [options]})
    def training_step(seed: int, steps: int, batch: int, options: Dict[str, Any]) -> Any:
        """MLP forward, cross-entropy backward, <optimizer> step: losses and final parameters."""
        import torch

        model = _mlp(torch, seed)
        opt = getattr(torch.optim, optimizer)(model.parameters(), **options)
        x, y = torch_uniform((batch, 32), seed), torch_ties(batch, seed, distinct=10)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach().reshape(1))
        params = [p.detach().reshape(-1) for p in model.parameters()]
        return torch.cat(losses + params)


_register_training("SGD", {"lr": 0.1, "momentum": 0.9})
_register_training("Adam", {"lr": 0.001})
