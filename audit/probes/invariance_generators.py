"""Chunk invariance: is drawing N numbers at once the same stream as drawing them in pieces?

Code draws "1000 normals" in one call, or one per loop iteration, or per batch; users expect
the concatenation to be the stream of one big call.  Every probe here draws ``n`` values in
chunks of each length in ``chunks`` (the last chunk shorter), concatenates them, and the
worker compares each chunking with the first (``n`` at once, the reference); see
:mod:`audit.worker.invariance`.  Lengths: one at a time, lengths that are no multiple of any
vector width (3, 7, 13), one AVX-512 float32 vector (16), a typical batch (100), halves;
the large panel draws 1e5 values in chunks of 1000, 4096, 333 and 1e4.

Where the stream may legitimately depend on the call: vectorised kernels that treat a
call's tail apart (torch's Box-Muller normals from 16 elements up), and numpy's bounded
integers narrower than 32 bits, which buffer a 32-bit word only within one call.

The probes are derived from two tables of (API, arguments, dtypes), one per library, so
that adding an API is one line.  Probe keys are ``<API>:chunks``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from audit.domains import Domain
from audit.probe_api import SEEDS, Output, compared_with, integers, probe, require_seed_range
from audit.probes.numpy_generator import BIT_GENERATORS, SAMPLING_BIT_GENERATORS, generator
from audit.probes.numpy_legacy import SEED_MAX, int_bounds
from audit.probes.torch_rng import GENERATORS, TORCH_MIN, seeded, state_after

#: Values drawn per case.
N = 500

#: Chunk lengths compared; the first (all at once) is the reference.
CHUNKS = (N, 1, 3, 7, 13, 16, 100, 250)

#: The large panel: a realistic big draw, in the chunk lengths of data pipelines.
N_LARGE = 100_000
CHUNKS_LARGE = (N_LARGE, 1000, 4096, 333, 10_000)
_LARGE: Dict[str, Dict[str, Sequence[Any]]] = {
    "large": {"n": [N_LARGE], "chunks": [list(CHUNKS_LARGE)]},
}

TORCH_FLOATS = ("float32", "float64", "float16", "bfloat16")

#: Where ``explore`` searches (not part of the probe versions): up to 5000 values, drawn in
#: chunks of any length, against all of them drawn at once.
CHUNK_SEARCH: Dict[str, Domain] = {
    "n": integers(1, 5000), "chunks": compared_with(integers(1, 5000), same_as="n"),
}


def chunked(draw: Callable[[int], Any], n: int, length: int) -> List[Any]:
    """``draw(k)`` for consecutive chunks of ``length`` covering ``n`` (the last one shorter)."""
    return [draw(min(length, n - start)) for start in range(0, n, length)]


# --- torch ---------------------------------------------------------------------------------

#: API -> (positional arguments before the size, dtypes).  ``torch.Tensor.<m>`` APIs fill
#: ``torch.empty(k, dtype)`` in place; the others are factories called as ``f(*args, (k,))``.
TORCH_DRAWS: Dict[str, Tuple[List[Any], Tuple[str, ...]]] = {
    "torch.randn": ([], TORCH_FLOATS),
    "torch.rand": ([], TORCH_FLOATS),
    "torch.randint": ([0, 10], ("int64",)),
    "torch.Tensor.normal_": ([0.5, 2.0], ("float32", "float64")),
    "torch.Tensor.uniform_": ([-2.0, 3.0], ("float32",)),
    "torch.Tensor.exponential_": ([1.5], ("float32",)),
    "torch.Tensor.geometric_": ([0.3], ("float32",)),
    "torch.Tensor.cauchy_": ([0.0, 1.0], ("float32",)),
    "torch.Tensor.log_normal_": ([0.0, 0.5], ("float32",)),
    "torch.Tensor.bernoulli_": ([0.3], ("float32",)),
    "torch.Tensor.random_": ([0, 2**40], ("int64",)),
}


def torch_draw(
    torch: Any, api: str, args: Sequence[Any], k: int, dtype: str, gen: Optional[Any]
) -> Any:
    """One call of ``api`` for ``k`` values."""
    kwargs = {} if gen is None else {"generator": gen}
    name = api.rsplit(".", 1)[1]
    if api.startswith("torch.Tensor."):
        out = torch.empty(k, dtype=getattr(torch, dtype))
        getattr(out, name)(*args, **kwargs)
        return out
    return getattr(torch, name)(*args, (k,), dtype=getattr(torch, dtype), **kwargs)


def _register_torch(api: str, args: List[Any], dtypes: Tuple[str, ...]) -> None:
    grid = {"seed": SEEDS, "generator": GENERATORS, "dtype": dtypes, "args": [args], "n": [N],
            "chunks": [list(CHUNKS)]}

    @probe(api, grid=grid, name=f"{api}:chunks", invariance="chunks", library="torch", min_version=TORCH_MIN,
           sizes=_LARGE, search=CHUNK_SEARCH)
    def chunks_probe(seed: int, generator: str, dtype: str, args: List[Any], n: int, chunks: int) -> Output:
        """<api>: n values in one call against the same n drawn in chunks, concatenated."""
        import torch

        gen = seeded(seed, generator, "cpu")
        parts = chunked(lambda k: torch_draw(torch, api, args, k, dtype, gen), n, chunks)
        return Output(torch.cat(parts), state_after(gen, "cpu"))


for _api, (_args, _dtypes) in TORCH_DRAWS.items():
    _register_torch(_api, _args, _dtypes)


# --- numpy ---------------------------------------------------------------------------------

#: One integer dtype of each width (signed and unsigned share their path), and bool: the
#: widths under 32 bits buffer a 32-bit word within one call.
INTEGER_DTYPES = ("bool", "uint8", "int16", "int32", "uint64")

#: method -> (positional arguments before the size, dtypes; "" = the method takes no dtype).
#: Integer draws get bounds from :func:`int_bounds` (a third to two thirds of the range).
GENERATOR_DRAWS: Dict[str, Tuple[List[Any], Tuple[str, ...]]] = {
    "random": ([], ("float32", "float64")),
    "standard_normal": ([], ("float32", "float64")),
    "standard_exponential": ([], ("float32", "float64")),
    "standard_gamma": ([3.0], ("float32", "float64")),
    "integers": ([], INTEGER_DTYPES),
    "binomial": ([10, 0.3], ("",)),
    "poisson": ([3.0], ("",)),
    "bytes": ([], ("",)),
}

#: ``integers`` and ``random`` touch each bit generator's own output path: all five;
#: the distributions only through them: the two kinds (64-bit, native 32-bit).
_ALL_BITGENS = ("integers", "random", "bytes")

RANDOMSTATE_DRAWS: Dict[str, Tuple[List[Any], Tuple[str, ...]]] = {
    "random_sample": ([], ("",)),
    "randn": ([], ("",)),
    "standard_exponential": ([], ("",)),
    "standard_gamma": ([3.0], ("",)),
    "randint": ([], INTEGER_DTYPES),
    "binomial": ([10, 0.3], ("",)),
    "bytes": ([], ("",)),
}

#: Legacy methods that take the size positionally (and only it).
_POSITIONAL_SIZE = ("randn", "bytes")


def numpy_call(rng: Any, method: str, args: Sequence[Any], dtype: str) -> Callable[[int], Any]:
    """``draw(k)``: one call of ``rng.<method>`` for ``k`` values (bytes for ``bytes``)."""
    fn = getattr(rng, method)
    if method in ("integers", "randint"):  # both over the inclusive bounds of int_bounds
        low, high = int_bounds(dtype)
        if method == "randint":
            return lambda k: fn(low, high + 1, size=k, dtype=dtype)
        return lambda k: fn(low, high, size=k, dtype=dtype, endpoint=True)
    if method in _POSITIONAL_SIZE:
        return lambda k: fn(k)
    options = {"dtype": dtype} if dtype else {}
    return lambda k: fn(*args, size=k, **options)


def _numpy_chunks(
    rng: Any, method: str, args: Sequence[Any], n: int, length: int, dtype: str
) -> Any:
    import numpy as np

    parts = chunked(numpy_call(rng, method, args, dtype), n, length)
    if isinstance(parts[0], bytes):
        return np.frombuffer(b"".join(parts), dtype=np.uint8)
    return np.concatenate(parts)


_NP: Mapping[str, Any] = {"library": "numpy", "min_version": "1.19", "invariance": "chunks"}


def _register_generator(method: str, args: List[Any], dtypes: Tuple[str, ...]) -> None:
    api = f"numpy.random.Generator.{method}"
    bitgens = BIT_GENERATORS if method in _ALL_BITGENS else SAMPLING_BIT_GENERATORS
    grid = {"seed": SEEDS, "bitgen": bitgens, "dtype": dtypes, "args": [args], "n": [N],
            "chunks": [list(CHUNKS)]}

    @probe(api, grid=grid, name=f"{api}:chunks", sizes=_LARGE, search=CHUNK_SEARCH, **_NP)
    def chunks_probe(seed: int, bitgen: str, dtype: str, args: List[Any], n: int, chunks: int) -> Output:
        """Generator.<method>: n values in one call against the same n drawn in chunks."""
        rng = generator(bitgen, seed)
        return Output(_numpy_chunks(rng, method, args, n, chunks, dtype), rng.bit_generator.state)


def _register_random_state(method: str, args: List[Any], dtypes: Tuple[str, ...]) -> None:
    api = f"numpy.random.RandomState.{method}"
    grid = {"seed": SEEDS, "generator": ("global", "explicit"), "dtype": dtypes, "args": [args],
            "n": [N], "chunks": [list(CHUNKS)]}

    @probe(api, grid=grid, name=f"{api}:chunks", sizes=_LARGE, search=CHUNK_SEARCH, **_NP)
    def chunks_probe(seed: int, generator: str, dtype: str, args: List[Any], n: int, chunks: int) -> Output:
        """RandomState.<method> (global: np.random.<method>): one call against chunks."""
        import numpy as np

        require_seed_range(seed, 0, SEED_MAX, "numpy.random.RandomState")
        rng: Any = np.random.RandomState(seed)
        if generator == "global":
            np.random.seed(seed)
            rng = np.random
        return Output(_numpy_chunks(rng, method, args, n, chunks, dtype), rng.get_state())


for _method, (_args, _dtypes) in GENERATOR_DRAWS.items():
    _register_generator(_method, _args, _dtypes)
for _method, (_args, _dtypes) in RANDOMSTATE_DRAWS.items():
    _register_random_state(_method, _args, _dtypes)
