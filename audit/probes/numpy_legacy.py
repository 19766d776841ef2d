"""numpy's legacy generator: the global functions after ``np.random.seed``, and ``RandomState``.

NEP 19 froze the legacy streams, which is exactly why they are worth auditing: code
that seeded ``np.random.seed(17)`` years ago expects the same numbers today.  Streams
may still move with the default integer dtype (``randint`` returns ``np.int_``, which was
int32 on Windows before numpy 2), with LAPACK (``multivariate_normal`` factors the
covariance by SVD), and with the seed conversion (an int seeds by ``init_genrand``, an
array by ``init_by_array``, a bit generator by ``SeedSequence``).

Legacy seeding takes integers in [0, 2**32 - 1]; other seeds are reported unsupported.
The state after each draw is ``get_state()``, so the cached second Gaussian shows.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from audit.probe_api import SEEDS, Output, probe, require_seed_range

#: The family reports group these probes under (read at registration; the decorators stay as
#: they are).
FAMILY = "numpy legacy"

#: Largest seed legacy seeding accepts.
SEED_MAX = 2**32 - 1

#: Every dtype ``randint``/``integers`` accepts, as numpy spells them.
INT_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")

#: ``choice`` variants: uniform with replacement, a permutation prefix, and by weights.
CHOICE_MODES = ("replace", "no-replace", "weighted")


def int_bounds(dtype: str) -> Tuple[int, int]:
    """An inclusive [low, high] inside ``dtype`` that is neither tiny nor a power of two.

    A third to two thirds of the type's range makes the bounded-integer code take its
    rejection loop and, for 64-bit types, its 64-bit path.
    """
    import numpy as np

    if dtype == "bool":
        return 0, 1
    info = np.iinfo(dtype)
    low = int(info.min) // 3 if info.min < 0 else 7
    return low, int(info.max) // 3 * 2


def choice_args(mode: str, n: int) -> Tuple[int, bool, Any]:
    """(size, replace, p) for a ``choice`` over 1000 items in the given mode."""
    import numpy as np

    if mode == "weighted":
        weights = np.arange(1, 1001, dtype=np.float64)
        return n, True, weights / weights.sum()
    return (n, True, None) if mode == "replace" else (n // 10, False, None)


def mvn_cov() -> List[List[float]]:
    """A fixed, well-conditioned 3x3 covariance with distinct eigenvalues."""
    return [[2.0, 0.6, 0.2], [0.6, 1.0, 0.3], [0.2, 0.3, 0.5]]


def _seeded_global(seed: int) -> Any:
    import numpy as np

    require_seed_range(seed, 0, SEED_MAX, "numpy.random.seed")
    np.random.seed(seed)
    return np


def _global(value: Any) -> Output:
    import numpy as np

    return Output(value, np.random.get_state())


def _random_state(seed: int, seed_kind: str = "int") -> Any:
    import numpy as np

    require_seed_range(seed, 0, SEED_MAX, "numpy.random.RandomState")
    if seed_kind == "array":
        return np.random.RandomState([seed, 0x5EED])
    if seed_kind == "bitgen":
        return np.random.RandomState(np.random.MT19937(seed))
    return np.random.RandomState(seed)


def _rs(rs: Any, value: Any) -> Output:
    return Output(value, rs.get_state())


_N = {"n": [1000]}
_NP: Dict[str, Any] = {"library": "numpy", "min_version": "1.19"}

# --- the global functions, after np.random.seed -------------------------------------------


@probe("numpy.random.seed", grid={"seed": SEEDS, **_N}, **_NP)
def seed(seed: int, n: int) -> Output:
    """np.random.seed alone, then the raw 32-bit words (via randint over the full uint32 range)."""
    np = _seeded_global(seed)
    return _global(np.random.randint(0, 2**32, size=n, dtype=np.uint32))


@probe("numpy.random.rand", grid={"seed": SEEDS, **_N}, **_NP)
def rand(seed: int, n: int) -> Output:
    """Uniform doubles from two 32-bit words (27 + 26 bits)."""
    np = _seeded_global(seed)
    return _global(np.random.rand(n))


@probe("numpy.random.randn", grid={"seed": SEEDS, "n": [1000, 1_000_000]}, **_NP)
def randn(seed: int, n: int) -> Output:
    """Polar Box-Muller normals: the second of each pair is cached in the state."""
    np = _seeded_global(seed)
    return _global(np.random.randn(n))


@probe("numpy.random.randint", grid={"seed": SEEDS, **_N}, **_NP)
def randint(seed: int, n: int) -> Output:
    """Default dtype np.int_ (int32 on Windows before numpy 2): the dtype itself may differ."""
    np = _seeded_global(seed)
    return _global(np.random.randint(-1000, 1000, size=n))


@probe("numpy.random.random_sample", grid={"seed": SEEDS, **_N}, **_NP)
def random_sample(seed: int, n: int) -> Output:
    """random_sample: the documented name of the uniform draw."""
    np = _seeded_global(seed)
    return _global(np.random.random_sample(n))


@probe("numpy.random.random", grid={"seed": SEEDS, **_N}, **_NP)
def random(seed: int, n: int) -> Output:
    """np.random.random: an alias of random_sample that code calls far more often."""
    np = _seeded_global(seed)
    return _global(np.random.random(n))


@probe("numpy.random.choice", grid={"seed": SEEDS, "mode": CHOICE_MODES, **_N}, **_NP)
def choice(seed: int, mode: str, n: int) -> Output:
    """Legacy choice: without replacement it permutes the whole population first."""
    np = _seeded_global(seed)
    size, replace, p = choice_args(mode, n)
    return _global(np.random.choice(1000, size=size, replace=replace, p=p))


@probe("numpy.random.permutation", grid={"seed": SEEDS, **_N}, **_NP)
def permutation(seed: int, n: int) -> Output:
    """permutation(n) of a range."""
    np = _seeded_global(seed)
    return _global(np.random.permutation(n))


@probe("numpy.random.shuffle", grid={"seed": SEEDS, **_N}, **_NP)
def shuffle(seed: int, n: int) -> Output:
    """In-place shuffle of a 2-D array's rows (the path that copies rows through a buffer)."""
    np = _seeded_global(seed)
    rows = np.arange(n * 2, dtype=np.int64).reshape(n, 2)
    np.random.shuffle(rows)
    return _global(rows)


@probe("numpy.random.normal", grid={"seed": SEEDS, **_N}, **_NP)
def normal(seed: int, n: int) -> Output:
    """normal(loc, scale): randn scaled, through the broadcasting code."""
    np = _seeded_global(seed)
    return _global(np.random.normal(3.0, 2.5, size=n))


@probe("numpy.random.uniform", grid={"seed": SEEDS, **_N}, **_NP)
def uniform(seed: int, n: int) -> Output:
    """uniform(low, high): low + (high - low) * u, rounding included."""
    np = _seeded_global(seed)
    return _global(np.random.uniform(-3.0, 7.0, size=n))


@probe("numpy.random.exponential", grid={"seed": SEEDS, **_N}, **_NP)
def exponential(seed: int, n: int) -> Output:
    """Legacy exponential by inversion (-log(1 - u)), unlike Generator's ziggurat."""
    np = _seeded_global(seed)
    return _global(np.random.exponential(2.0, size=n))


@probe("numpy.random.standard_gamma", grid={"seed": SEEDS, **_N}, **_NP)
def standard_gamma(seed: int, n: int) -> Output:
    """Marsaglia-Tsang on legacy normals and uniforms."""
    np = _seeded_global(seed)
    return _global(np.random.standard_gamma(2.5, size=n))


@probe("numpy.random.binomial", grid={"seed": SEEDS, **_N}, **_NP)
def binomial(seed: int, n: int) -> Output:
    """binomial(20, 0.3): n*p < 30 takes the inversion branch."""
    np = _seeded_global(seed)
    return _global(np.random.binomial(20, 0.3, size=n))


@probe("numpy.random.poisson", grid={"seed": SEEDS, **_N}, **_NP)
def poisson(seed: int, n: int) -> Output:
    """poisson(4.0): the multiplication method for small lambda."""
    np = _seeded_global(seed)
    return _global(np.random.poisson(4.0, size=n))


@probe("numpy.random.bytes", grid={"seed": SEEDS, **_N}, **_NP)
def random_bytes(seed: int, n: int) -> Output:
    """n random bytes, little-endian words cut into bytes."""
    np = _seeded_global(seed)
    return _global(np.random.bytes(n))


# --- RandomState ---------------------------------------------------------------------------


@probe("numpy.random.RandomState.randn", grid={"seed": SEEDS, "seed_kind": ["int", "array", "bitgen"], **_N}, **_NP)
def rs_randn(seed: int, seed_kind: str, n: int) -> Output:
    """randn under the three ways to seed a RandomState (int, array, MT19937 bit generator)."""
    rs = _random_state(seed, seed_kind)
    return _rs(rs, rs.randn(n))


@probe("numpy.random.RandomState.rand", grid={"seed": SEEDS, **_N}, **_NP)
def rs_rand(seed: int, n: int) -> Output:
    """Uniform doubles from an explicit RandomState."""
    rs = _random_state(seed)
    return _rs(rs, rs.rand(n))


@probe("numpy.random.RandomState.randint", grid={"seed": SEEDS, "dtype": INT_DTYPES, **_N}, **_NP)
def rs_randint(seed: int, dtype: str, n: int) -> Output:
    """randint per dtype: small types draw from buffered 32-bit words, 64-bit from two."""
    rs = _random_state(seed)
    low, high = int_bounds(dtype)
    return _rs(rs, rs.randint(low, high + 1, size=n, dtype=dtype))


@probe("numpy.random.RandomState.choice", grid={"seed": SEEDS, "mode": CHOICE_MODES, **_N}, **_NP)
def rs_choice(seed: int, mode: str, n: int) -> Output:
    """choice with replacement, without, and weighted (searchsorted on the cdf)."""
    rs = _random_state(seed)
    size, replace, p = choice_args(mode, n)
    return _rs(rs, rs.choice(1000, size=size, replace=replace, p=p))


@probe("numpy.random.RandomState.permutation", grid={"seed": SEEDS, **_N}, **_NP)
def rs_permutation(seed: int, n: int) -> Output:
    """permutation(n) from an explicit RandomState."""
    rs = _random_state(seed)
    return _rs(rs, rs.permutation(n))


@probe("numpy.random.RandomState.shuffle", grid={"seed": SEEDS, **_N}, **_NP)
def rs_shuffle(seed: int, n: int) -> Output:
    """In-place shuffle of a 1-D int64 array."""
    import numpy as np

    rs = _random_state(seed)
    items = np.arange(n, dtype=np.int64)
    rs.shuffle(items)
    return _rs(rs, items)


@probe("numpy.random.RandomState.binomial", grid={"seed": SEEDS, "trials": [10, 1000], **_N}, **_NP)
def rs_binomial(seed: int, trials: int, n: int) -> Output:
    """Inversion (n*p < 30) and BTPE (beyond): two algorithms, two cases."""
    rs = _random_state(seed)
    return _rs(rs, rs.binomial(trials, 0.3, size=n))


@probe("numpy.random.RandomState.poisson", grid={"seed": SEEDS, "lam": [3.0, 50.0], **_N}, **_NP)
def rs_poisson(seed: int, lam: float, n: int) -> Output:
    """Multiplication method (lam < 10) and PTRS (beyond)."""
    rs = _random_state(seed)
    return _rs(rs, rs.poisson(lam, size=n))


@probe("numpy.random.RandomState.gamma", grid={"seed": SEEDS, "shape": [0.5, 3.0], **_N}, **_NP)
def rs_gamma(seed: int, shape: float, n: int) -> Output:
    """shape < 1 (rejection on exponentials) and shape > 1 (Marsaglia-Tsang)."""
    rs = _random_state(seed)
    return _rs(rs, rs.gamma(shape, 2.0, size=n))


@probe("numpy.random.RandomState.beta", grid={"seed": SEEDS, "ab": [[0.5, 0.5], [2.0, 5.0]], **_N}, **_NP)
def rs_beta(seed: int, ab: List[float], n: int) -> Output:
    """Johnk's algorithm when both parameters are below 1, two gammas otherwise."""
    rs = _random_state(seed)
    return _rs(rs, rs.beta(ab[0], ab[1], size=n))


@probe("numpy.random.RandomState.multivariate_normal", grid={"seed": SEEDS, **_N}, **_NP)
def rs_multivariate_normal(seed: int, n: int) -> Output:
    """Legacy MVN factors the covariance by SVD (LAPACK): BLAS/LAPACK can move it."""
    rs = _random_state(seed)
    return _rs(rs, rs.multivariate_normal([0.0, 1.0, -1.0], mvn_cov(), size=n))
