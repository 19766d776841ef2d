"""Batch and layout invariance: do an op's rows depend on what else is in the batch, or on strides?

**batch**: inference servers batch requests, training code changes the batch size; each row's
result should not depend on it, but kernels choose their algorithm (GEMV against GEMM,
blocking, how work is split over threads) by the shape of the whole call.  Each probe
computes a full batch of ``rows`` rows, then the same rows in batches of ``batch`` (the last
one shorter), concatenated; the worker compares every batch size with the full batch
(:mod:`audit.worker.invariance`).  Keys ``<API>:batch``.

**layout**: the same logical tensor stored contiguously, column-major (``x.t().contiguous().t()``,
what a transposed weight is), as every other column of a wider buffer (a slice), or
channels-last for images.  Reductions follow memory order, so the summation order can change
with the layout.  Keys ``<API>:layout``.

Inputs come from :mod:`audit.probes._inputs` (the same bits everywhere), divided by 3 so that
float64 sums are not exact and rounding shows.  The seed is the input formula's (fixed).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Tuple

from audit.probe_api import Unsupported, compared_with, integers, probe
from audit.probes._inputs import OP_SEEDS, torch_ties, torch_uniform
from audit.probes.torch_ops import TORCH_MIN

#: Rows of the full batch, and the batch sizes compared with it (the first: all at once).
ROWS = 32
BATCHES = (ROWS, 1, 2, 3, 5, 8, 16)
BATCH_DTYPES = ("float32", "bfloat16")
#: Where ``explore`` searches (not part of the probe versions): every batch size against the
#: full batch.
BATCH_SEARCH = {"batch": compared_with(integers(1, ROWS))}

#: A batch op: (torch, dtype) -> (the full input, a function of a slice of its rows).
BatchOp = Callable[[Any, str], Tuple[Any, Callable[[Any], Any]]]


def inputs(torch: Any, shape: Any, seed: int, dtype: str) -> Any:
    """Fixed input values in [-1/3, 1/3), in ``dtype``: shared between calls, never modify it."""
    return _inputs(tuple(shape) if isinstance(shape, (list, tuple)) else (shape,), seed, dtype)


@functools.lru_cache(maxsize=16)
def _inputs(shape: Tuple[int, ...], seed: int, dtype: str) -> Any:
    """Cached: an invariance case makes the same inputs once per value and execution."""
    import torch

    return torch_uniform(shape, seed, "float64").div(3).to(getattr(torch, dtype))


def supported(run: Callable[[], Any], what: str) -> Any:
    """``run()``, with "not implemented for <dtype>" turned into :class:`Unsupported`."""
    try:
        return run()
    except RuntimeError as exc:
        if "not implemented for" in str(exc) or "Unsupported" in str(exc):
            raise Unsupported(f"{what}: {str(exc).splitlines()[0]}") from None
        raise


def by_batches(fn: Callable[[Any], Any], x: Any, batch: int) -> List[Any]:
    """``fn`` of consecutive slices of ``batch`` rows of ``x`` (the last one shorter)."""
    return [fn(x[start:start + batch]) for start in range(0, x.shape[0], batch)]


# --- batch -------------------------------------------------------------------------------

def _matmul(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
    w = inputs(torch, (512, 512), 1, dtype)
    return inputs(torch, (ROWS, 512), 0, dtype), lambda x: x @ w


def _linear(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
    w, b = inputs(torch, (384, 512), 1, dtype), inputs(torch, 384, 2, dtype)
    return inputs(torch, (ROWS, 512), 0, dtype), lambda x: torch.nn.functional.linear(x, w, b)


def _conv2d(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
    w, b = inputs(torch, (16, 8, 3, 3), 1, dtype), inputs(torch, 16, 2, dtype)
    conv2d = torch.nn.functional.conv2d
    return inputs(torch, (ROWS, 8, 16, 16), 0, dtype), lambda x: conv2d(x, w, b, padding=1)


def _layer_norm(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
    w, b = inputs(torch, 1000, 1, dtype) * 3, inputs(torch, 1000, 2, dtype)
    layer_norm = torch.nn.functional.layer_norm
    return inputs(torch, (ROWS, 1000), 0, dtype) * 9, lambda x: layer_norm(x, (1000,), w, b)


def _softmax(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
    return inputs(torch, (ROWS, 1000), 0, dtype) * 24, lambda x: torch.softmax(x, -1)


def _sdpa(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
    """Self-attention of a batch of sequences: query, key and value are slices of one tensor."""
    qkv = inputs(torch, (ROWS, 3, 4, 32, 64), 0, dtype) * 3
    fn = torch.nn.functional.scaled_dot_product_attention
    return qkv, lambda x: fn(x[:, 0], x[:, 1], x[:, 2])


def _embedding_bag(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
    """Bags of 10 indices into a 1000 x 64 table, summed; the batch is the bags."""
    table = inputs(torch, (1000, 64), 1, dtype)
    bags = torch_ties(ROWS * 10, 0, distinct=1000).reshape(ROWS, 10)
    return bags, lambda x: torch.nn.functional.embedding_bag(x, table, mode="sum")


def _reduction(name: str) -> BatchOp:
    def make(torch: Any, dtype: str) -> Tuple[Any, Callable[[Any], Any]]:
        x = inputs(torch, (ROWS, 1000), 0, dtype)
        if name == "cumsum":
            return x, lambda r: torch.cumsum(r, -1)
        return x, lambda r: getattr(torch, name)(r, -1)

    return make


#: probe id -> how to make its input and run it on some rows.
BATCH_OPS: Dict[str, BatchOp] = {
    "torch.matmul": _matmul,
    "torch.nn.functional.linear": _linear,
    "torch.nn.functional.conv2d": _conv2d,
    "torch.nn.functional.layer_norm": _layer_norm,
    "torch.softmax": _softmax,
    "torch.nn.functional.scaled_dot_product_attention": _sdpa,
    "torch.nn.functional.embedding_bag": _embedding_bag,
    "torch.sum": _reduction("sum"),
    "torch.mean": _reduction("mean"),
    "torch.cumsum": _reduction("cumsum"),
}


def _register_batch(api: str, make: BatchOp) -> None:
    grid = {"seed": OP_SEEDS, "dtype": BATCH_DTYPES, "rows": [ROWS], "batch": [list(BATCHES)]}

    @probe(api, grid=grid, name=f"{api}:batch", kind="op", invariance="batch", library="torch",
           min_version=TORCH_MIN, search=BATCH_SEARCH)
    def batch_probe(seed: int, dtype: str, rows: int, batch: int) -> Any:
        """<api>: the rows of a full batch against the same rows computed in smaller batches."""
        import torch

        x, fn = make(torch, dtype)
        return supported(lambda: torch.cat(by_batches(fn, x[:rows], batch)), f"{api} in {dtype}")


for _api, _make in BATCH_OPS.items():
    _register_batch(_api, _make)


@probe("torch.sum", grid={"seed": OP_SEEDS, "dtype": BATCH_DTYPES, "rows": [8], "batch": [[8, 1, 2, 3]]},
       name="torch.sum:batch-long-rows", kind="op", invariance="batch", library="torch", min_version=TORCH_MIN,
       search={"batch": compared_with(integers(1, 8))})
def sum_long_rows(seed: int, dtype: str, rows: int, batch: int) -> Any:
    """torch.sum of rows of 1e5 elements: alone, one row's sum may be split over threads."""
    import torch

    x = inputs(torch, (rows, 100_000), seed, dtype)
    return torch.cat(by_batches(lambda r: r.sum(-1), x, batch))


# --- layout ------------------------------------------------------------------------------

LAYOUTS = ("contiguous", "transposed", "strided")
LAYOUT_DTYPES = ("float32", "float64", "bfloat16")


def laid_out(torch: Any, x: Any, layout: str) -> Any:
    """The same values as ``x`` stored in ``layout`` (see the module docstring)."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "transposed":
        return x.t().contiguous().t()
    if layout == "strided":
        wide = torch.zeros(x.shape[0], 2 * x.shape[1], dtype=x.dtype)
        wide[:, ::2] = x
        return wide[:, ::2]
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    raise ValueError(f"unknown layout {layout!r}")


def _layout_probe(api: str, grid: Dict[str, Any], layouts: Tuple[str, ...] = LAYOUTS) -> Any:
    full_grid = {"seed": OP_SEEDS, "dtype": LAYOUT_DTYPES, **grid, "layout": [list(layouts)]}
    return probe(api, grid=full_grid, name=f"{api}:layout", kind="op", invariance="layout",
                 library="torch", min_version=TORCH_MIN)


@_layout_probe("torch.matmul", {"operand": ["left", "right"]})
def matmul_layout(seed: int, dtype: str, operand: str, layout: str) -> Any:
    """(256, 384) @ (384, 128) with one operand contiguous, transposed or strided."""
    import torch

    a, b = inputs(torch, (256, 384), seed, dtype), inputs(torch, (384, 128), seed + 1, dtype)
    if operand == "left":
        return supported(lambda: laid_out(torch, a, layout) @ b, f"matmul in {dtype}")
    return supported(lambda: a @ laid_out(torch, b, layout), f"matmul in {dtype}")


@_layout_probe("torch.sum", {"dim": [None, 0, 1]})
def sum_layout(seed: int, dtype: str, dim: Any, layout: str) -> Any:
    """Sum of a 1000 x 1000 matrix (all, per column, per row) in each layout: order follows memory."""
    import torch

    x = laid_out(torch, inputs(torch, (1000, 1000), seed, dtype), layout)
    return x.sum() if dim is None else x.sum(dim)


@_layout_probe("torch.softmax", {"dim": [0, 1]})
def softmax_layout(seed: int, dtype: str, dim: int, layout: str) -> Any:
    """softmax of a 256 x 1000 matrix along either dimension, in each layout."""
    import torch

    x = laid_out(torch, inputs(torch, (256, 1000), seed, dtype) * 24, layout)
    return supported(lambda: torch.softmax(x, dim), f"softmax in {dtype}")


@_layout_probe("torch.nn.functional.conv2d", {}, layouts=("contiguous", "channels_last"))
def conv2d_layout(seed: int, dtype: str, layout: str) -> Any:
    """conv2d 3x3 of an (8, 16, 32, 32) batch, contiguous (NCHW) or channels-last (NHWC)."""
    import torch

    x, w = inputs(torch, (8, 16, 32, 32), seed, dtype), inputs(torch, (32, 16, 3, 3), seed + 1, dtype)
    out = supported(lambda: torch.nn.functional.conv2d(laid_out(torch, x, layout), laid_out(torch, w, layout),
                                                       padding=1), f"conv2d in {dtype}")
    return out.contiguous()
