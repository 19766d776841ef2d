"""Op inputs that are the same bits on every machine, for numpy and for torch.

An op probe must not make its input with ``torch.randn``: that stream itself depends on
the CPU's vector width (see the torch_rng probes), and a change would be blamed on the op.
Inputs here come from one integer formula instead, computed with exact integer
arithmetic and converted to floats exactly, so numpy and torch give bit-identical arrays
on any machine, any library version and any thread count.

The formula is murmur3's 32-bit finaliser (``fmix32``) applied to ``index`` mixed with
``fmix32(seed)``.  Multiplication modulo 2**32 is done in 16-bit limbs so every
intermediate is a non-negative int64 below 2**49: no overflow, no unsigned types (torch
2.0 has no uint32/uint64 arithmetic), no reliance on wrap-around.  The top 24 bits of the
hash become ``k / 2**23 - 1``, exact in float32 and float64, in [-1, 1).

Worker side: numpy and torch are imported only by the function that needs them.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple, Union

#: The op grids numpy and torch share (numpy_ops must not import torch_ops: a change there
#: would silently change numpy probe versions, which hash their grid values).
#: The input seed of every op case (fixed data, not the run's seed panel).
OP_SEEDS = (0,)
FLOATS = ("float32", "float64")
#: (m, k, n): square, odd sizes off every block size, and one big enough to tile and thread.
MATMUL_SHAPES = ([64, 64, 64], [127, 129, 63], [512, 512, 512])
#: elementwise function (as torch spells it) -> (scale, shift) mapping [-1, 1) to its domain.
ELEMENTWISE: Dict[str, Tuple[float, float]] = {
    "exp": (20.0, 0.0), "log": (4.0, 4.001), "sin": (10.0, 0.0), "tanh": (5.0, 0.0),
    "sigmoid": (10.0, 0.0), "erf": (3.0, 0.0), "nn.functional.gelu": (5.0, 0.0),
}

_MASK16 = 0xFFFF
_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9  # added to the seed so seed 0 does not hash to 0

Shape = Union[int, Sequence[int]]


def _mulmod32(x: Any, c: int) -> Any:
    """``(x * c) mod 2**32`` for int64 arrays/tensors holding values below 2**32."""
    lo = (x & _MASK16) * c  # < 2**48
    hi = (((x >> 16) * c) & _MASK16) << 16  # < 2**32
    return (lo + hi) & _MASK32


def _fmix32(x: Any) -> Any:
    """murmur3's finaliser: a bijection of 32-bit values with full avalanche."""
    x = x ^ (x >> 16)
    x = _mulmod32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mulmod32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def _fmix32_int(x: int) -> int:
    """The same finaliser on a Python int (for the seed)."""
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _MASK32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _MASK32
    return x ^ (x >> 16)


def _seed_key(seed: int) -> int:
    folded = (seed & _MASK32) ^ ((seed >> 32) & _MASK32)
    return _fmix32_int((folded + _GOLDEN) & _MASK32)


def hash_bits(index: Any, seed: int) -> Any:
    """32-bit hashes of an int64 index array/tensor (values < 2**32) under ``seed``."""
    return _fmix32(_fmix32(index ^ _seed_key(seed)) ^ 0x5BD1E995)


def _shape(shape: Shape) -> Tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _count(shape: Tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def numpy_uniform(shape: Shape, seed: int, dtype: str = "float32") -> Any:
    """Floats in [-1, 1) on a 2**-23 grid, a numpy array of ``dtype``."""
    import numpy as np

    dims = _shape(shape)
    bits = hash_bits(np.arange(_count(dims), dtype=np.int64), seed)
    values = (bits >> 8).astype(np.float64) * 2.0**-23 - 1.0
    return values.astype(dtype).reshape(dims)


#: Elements hashed per step by :func:`torch_uniform`: the int64 temporaries of one step stay
#: in cache, which makes 1e7-element inputs five times faster than one pass over memory.
_STEP = 1 << 18


def torch_uniform(shape: Shape, seed: int, dtype: str = "float32", device: str = "cpu") -> Any:
    """The same numbers as :func:`numpy_uniform`, as a torch tensor (made on CPU, then moved)."""
    import torch

    dims = _shape(shape)
    count = _count(dims)
    out = torch.empty(count, dtype=getattr(torch, dtype))
    for start in range(0, count, _STEP):
        bits = hash_bits(torch.arange(start, min(count, start + _STEP), dtype=torch.int64), seed)
        out[start:start + _STEP] = ((bits >> 8).to(torch.float64) * 2.0**-23 - 1.0).to(out.dtype)
    return out.reshape(dims).to(device)


def numpy_ties(n: int, seed: int, distinct: int = 16) -> Any:
    """``n`` int64 keys with only ``distinct`` values: a sort input full of ties."""
    import numpy as np

    return hash_bits(np.arange(n, dtype=np.int64), seed) % distinct


def torch_ties(n: int, seed: int, distinct: int = 16, device: str = "cpu") -> Any:
    """The same keys as :func:`numpy_ties`, as an int64 tensor."""
    import torch

    return (hash_bits(torch.arange(n, dtype=torch.int64), seed) % distinct).to(device)
