"""numpy's ``Generator`` on every bit generator, ``SeedSequence``, and jumps.

Unlike the legacy stream, ``Generator`` streams are allowed to change between numpy
versions (NEP 19) and several have: ``dirichlet`` for small alpha, ``hypergeometric``,
``geometric``, ``logseries``, ``vonmises`` for large kappa, ``choice`` without replacement.
The bit generator is a grid parameter because the float and bounded-integer paths
differ per bit generator (32-bit buffering, ``next_float``), while ``random_raw``
fingerprints the bit generator alone.

Every bit generator is seeded through ``SeedSequence(seed)`` (so ``MT19937(17)`` here is
not the legacy ``RandomState(17)`` stream).  Negative seeds are unsupported.  The state
after each draw is ``bit_generator.state``, which includes the buffered 32-bit half-word.
"""

from __future__ import annotations

from typing import Any, Dict, List

from audit.probe_api import SEEDS, Output, Unsupported, probe, require_attr
from audit.probes.numpy_legacy import CHOICE_MODES, INT_DTYPES, choice_args, int_bounds, mvn_cov

#: The family reports group these probes under (read at registration; the decorators stay as
#: they are).
FAMILY = "numpy Generator"

#: Every bit generator numpy ships (PCG64DXSM since numpy 1.21).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")

#: Bit generators for the sampling and distribution probes.  A distribution reaches its
#: bit generator only through next_uint64 / next_uint32 / next_double / next_float, and
#: the core probes (random_raw, random, integers ...) fingerprint those on all five; so
#: here the default (64-bit output, buffered 32-bit halves) and MT19937 (native 32-bit
#: output) cover both paths at two fifths of the cases.
SAMPLING_BIT_GENERATORS = ("PCG64", "MT19937")

#: Bit generators with ``jumped`` (SFC64 has none).
JUMPABLE = ("PCG64", "PCG64DXSM", "MT19937", "Philox")

FLOAT_DTYPES = ("float32", "float64")

_NP: Dict[str, Any] = {"library": "numpy", "min_version": "1.19"}
_GRID = {"seed": SEEDS, "bitgen": BIT_GENERATORS}
_GRID2 = {"seed": SEEDS, "bitgen": SAMPLING_BIT_GENERATORS}
_N = {"n": [1000]}


def bit_generator(name: str, seed: int) -> Any:
    """``numpy.random.<name>(seed)``, or Unsupported when this numpy lacks it or the seed is
    negative."""
    import numpy as np

    if seed < 0:
        raise Unsupported(f"SeedSequence takes non-negative seeds, not {seed}")
    return require_attr(np.random, name)(seed)


def generator(name: str, seed: int) -> Any:
    import numpy as np

    return np.random.Generator(bit_generator(name, seed))


def _out(rng: Any, value: Any) -> Output:
    return Output(value, rng.bit_generator.state)


# --- raw stream and the core float/integer draws ----------------------------------------


@probe("numpy.random.BitGenerator.random_raw", grid={**_GRID, **_N}, **_NP)
def random_raw(seed: int, bitgen: str, n: int) -> Output:
    """The bit generator's 64-bit output words, no Generator code in between."""
    bg = bit_generator(bitgen, seed)
    return Output(bg.random_raw(n), bg.state)


@probe("numpy.random.default_rng", grid={"seed": SEEDS, **_N}, **_NP)
def default_rng(seed: int, n: int) -> Output:
    """default_rng(seed).random(): what the numpy docs tell everyone to write."""
    import numpy as np

    if seed < 0:
        raise Unsupported(f"default_rng takes non-negative seeds, not {seed}")
    rng = np.random.default_rng(seed)
    return _out(rng, rng.random(n))


_BIG = [{"seed": SEEDS, "bitgen": "PCG64", "dtype": "float64", "n": 1_000_000}]


@probe("numpy.random.Generator.random", grid={**_GRID, "dtype": FLOAT_DTYPES, **_N}, extra_cases=_BIG, **_NP)
def random(seed: int, bitgen: str, dtype: str, n: int) -> Output:
    """float64 takes 53 bits of a 64-bit word; float32 24 bits of a buffered 32-bit word."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.random(n, dtype=dtype))


@probe("numpy.random.Generator.standard_normal", grid={**_GRID, "dtype": FLOAT_DTYPES, **_N}, extra_cases=_BIG, **_NP)
def standard_normal(seed: int, bitgen: str, dtype: str, n: int) -> Output:
    """Ziggurat normals, with separate float32 tables."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.standard_normal(n, dtype=dtype))


@probe("numpy.random.Generator.standard_exponential", grid={**_GRID, "dtype": FLOAT_DTYPES, **_N}, **_NP)
def standard_exponential(seed: int, bitgen: str, dtype: str, n: int) -> Output:
    """Ziggurat exponentials (the default method), float32 and float64 tables."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.standard_exponential(n, dtype=dtype))


@probe(
    "numpy.random.Generator.standard_gamma",
    grid={**_GRID, "dtype": FLOAT_DTYPES, "shape": [3.0], **_N},
    extra_cases=[{"seed": SEEDS, "bitgen": "PCG64", "dtype": d, "shape": 0.5, "n": 1000} for d in FLOAT_DTYPES],
    **_NP,
)
def standard_gamma(seed: int, bitgen: str, dtype: str, shape: float, n: int) -> Output:
    """Marsaglia-Tsang (shape > 1) on every bit generator; shape < 1 (another algorithm) on PCG64."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.standard_gamma(shape, size=n, dtype=dtype))


@probe("numpy.random.Generator.integers", grid={**_GRID, "dtype": INT_DTYPES, **_N}, **_NP)
def integers(seed: int, bitgen: str, dtype: str, n: int) -> Output:
    """Lemire's bounded integers per dtype; small types buffer 8/16-bit pieces of a 32-bit word."""
    rng = generator(bitgen, seed)
    low, high = int_bounds(dtype)
    return _out(rng, rng.integers(low, high, size=n, dtype=dtype, endpoint=True))


# --- sampling and shuffling -------------------------------------------------------------


@probe("numpy.random.Generator.choice", grid={**_GRID2, "mode": CHOICE_MODES, **_N}, **_NP)
def choice(seed: int, bitgen: str, mode: str, n: int) -> Output:
    """With replacement, without (Floyd / tail shuffle, changed in 1.x), and weighted."""
    rng = generator(bitgen, seed)
    size, replace, p = choice_args(mode, n)
    return _out(rng, rng.choice(1000, size=size, replace=replace, p=p))


@probe("numpy.random.Generator.permutation", grid={**_GRID2, **_N}, **_NP)
def permutation(seed: int, bitgen: str, n: int) -> Output:
    """permutation(n) of a range."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.permutation(n))


@probe("numpy.random.Generator.shuffle", grid={**_GRID2, **_N}, **_NP)
def shuffle(seed: int, bitgen: str, n: int) -> Output:
    """In-place shuffle of a 1-D int64 array."""
    import numpy as np

    rng = generator(bitgen, seed)
    items = np.arange(n, dtype=np.int64)
    rng.shuffle(items)
    return _out(rng, items)


@probe("numpy.random.Generator.permuted", grid={**_GRID2, **_N}, **_NP)
def permuted(seed: int, bitgen: str, n: int) -> Output:
    """Independent shuffles along axis 1 of a (10, n/10) array; numpy >= 1.20."""
    import numpy as np

    rng = generator(bitgen, seed)
    permuted_ = require_attr(rng, "permuted")
    return _out(rng, permuted_(np.arange(n, dtype=np.int64).reshape(10, -1), axis=1))


# --- distributions ----------------------------------------------------------------------


@probe("numpy.random.Generator.binomial", grid={**_GRID2, "trials": [10, 1000], **_N}, **_NP)
def binomial(seed: int, bitgen: str, trials: int, n: int) -> Output:
    """Inversion (n*p < 30) and BTPE."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.binomial(trials, 0.3, size=n))


@probe("numpy.random.Generator.multinomial", grid={**_GRID2, **_N}, **_NP)
def multinomial(seed: int, bitgen: str, n: int) -> Output:
    """multinomial(100, [0.2, 0.3, 0.5]): conditional binomials."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.multinomial(100, [0.2, 0.3, 0.5], size=n))


@probe("numpy.random.Generator.poisson", grid={**_GRID2, "lam": [3.0, 50.0], **_N}, **_NP)
def poisson(seed: int, bitgen: str, lam: float, n: int) -> Output:
    """Multiplication method (lam < 10) and PTRS."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.poisson(lam, size=n))


@probe("numpy.random.Generator.hypergeometric", grid={**_GRID2, **_N}, **_NP)
def hypergeometric(seed: int, bitgen: str, n: int) -> Output:
    """hypergeometric(100, 200, 50): rewritten for Generator in numpy 1.18."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.hypergeometric(100, 200, 50, size=n))


@probe("numpy.random.Generator.geometric", grid={**_GRID2, "p": [0.05, 0.5], **_N}, **_NP)
def geometric(seed: int, bitgen: str, p: float, n: int) -> Output:
    """Search for p >= 1/3, inversion below: two branches."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.geometric(p, size=n))


@probe("numpy.random.Generator.rayleigh", grid={**_GRID2, **_N}, **_NP)
def rayleigh(seed: int, bitgen: str, n: int) -> Output:
    """rayleigh(2.0): a sqrt of an exponential; libm can move it by an ULP."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.rayleigh(2.0, size=n))


@probe("numpy.random.Generator.dirichlet", grid={**_GRID2, "alpha": [0.01, 5.0], **_N}, **_NP)
def dirichlet(seed: int, bitgen: str, alpha: float, n: int) -> Output:
    """Small alpha takes the beta-based stick-breaking path numpy added for alpha < 0.1."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.dirichlet([alpha, alpha * 2, alpha * 3], size=n))


@probe(
    "numpy.random.Generator.multivariate_normal",
    grid={**_GRID2, "method": ["svd", "cholesky"], **_N},
    **_NP,
)
def multivariate_normal(seed: int, bitgen: str, method: str, n: int) -> Output:
    """The factorisation (LAPACK) is part of the stream: svd and cholesky."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.multivariate_normal([0.0, 1.0, -1.0], mvn_cov(), size=n, method=method))


@probe("numpy.random.Generator.beta", grid={**_GRID2, "ab": [[0.5, 0.5], [2.0, 5.0]], **_N}, **_NP)
def beta(seed: int, bitgen: str, ab: List[float], n: int) -> Output:
    """Johnk's algorithm below 1, two gammas above."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.beta(ab[0], ab[1], size=n))


@probe("numpy.random.Generator.zipf", grid={**_GRID2, **_N}, **_NP)
def zipf(seed: int, bitgen: str, n: int) -> Output:
    """zipf(2.0): rejection sampling; its acceptance test changed over numpy versions."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.zipf(2.0, size=n))


@probe("numpy.random.Generator.vonmises", grid={**_GRID2, "kappa": [0.5, 1e7], **_N}, **_NP)
def vonmises(seed: int, bitgen: str, kappa: float, n: int) -> Output:
    """Best-Fisher rejection; very large kappa switches to a wrapped normal (numpy 1.21)."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.vonmises(0.5, kappa, size=n))


@probe("numpy.random.Generator.logseries", grid={**_GRID2, **_N}, **_NP)
def logseries(seed: int, bitgen: str, n: int) -> Output:
    """logseries(0.9): Kemp's algorithm."""
    rng = generator(bitgen, seed)
    return _out(rng, rng.logseries(0.9, size=n))


# --- seeding and jumping ----------------------------------------------------------------


@probe("numpy.random.SeedSequence.generate_state", grid={"seed": SEEDS}, **_NP)
def seedsequence_generate_state(seed: int) -> Any:
    """The entropy hash every bit generator is seeded from: 8 uint32 and 4 uint64 words."""
    import numpy as np

    if seed < 0:
        raise Unsupported(f"SeedSequence takes non-negative seeds, not {seed}")
    ss = np.random.SeedSequence(seed)
    return [ss.generate_state(8, dtype=np.uint32), ss.generate_state(4, dtype=np.uint64)]


@probe("numpy.random.SeedSequence.spawn", grid={"seed": SEEDS}, **_NP)
def seedsequence_spawn(seed: int) -> Any:
    """Children and grandchildren of a SeedSequence, as the state words they generate."""
    import numpy as np

    if seed < 0:
        raise Unsupported(f"SeedSequence takes non-negative seeds, not {seed}")
    children = np.random.SeedSequence(seed).spawn(4)
    grandchildren = children[-1].spawn(2)
    words = [c.generate_state(4) for c in (*children, *grandchildren)]
    return np.stack(words)


@probe("numpy.random.Generator.spawn", grid={**_GRID2, **_N}, min_version="1.25", library="numpy")
def generator_spawn(seed: int, bitgen: str, n: int) -> Any:
    """Generator.spawn (numpy 1.25): child generators' first draws."""
    import numpy as np

    rng = generator(bitgen, seed)
    children = require_attr(rng, "spawn")(3)
    return np.stack([child.random(n) for child in children])


def jumped(seed: int, bitgen: str, jumps: int, n: int) -> Output:
    """The raw output after ``jumps`` jumps: the jump polynomial / advance constants."""
    bg = bit_generator(bitgen, seed)
    moved = require_attr(bg, "jumped")(jumps)
    return Output(moved.random_raw(n), moved.state)


for _name in JUMPABLE:
    probe(f"numpy.random.{_name}.jumped",
          grid={"seed": SEEDS, "bitgen": [_name], "jumps": [1, 3], **_N}, **_NP)(jumped)
