"""Python's ``random`` module: seeding from int, str and bytes, and its draws.

The Mersenne Twister core has not changed since Python 3.2, but the methods built on it
have (``randrange`` and ``choice`` moved to ``getrandbits`` in 3.2, ``sample``/``shuffle``
lost arguments in 3.11, ``binomialvariate`` arrived in 3.12), and seeding from str/bytes
goes through SHA-512.  Each probe draws from an explicit ``random.Random`` so nothing
global is touched, except :func:`global_seed`, which audits the module-level functions.
Standard library only: these probes run in an environment without numpy.
"""

from __future__ import annotations

import random
from typing import Union

from audit.probe_api import SEEDS, Output, probe

#: The family reports group these probes under (read at registration; the decorators stay as
#: they are).
FAMILY = "python random"

#: How the integer seed of a case is handed to ``random.Random``.
SEED_KINDS = ("int", "str", "bytes")

#: The usual case grid: the seed panel, each seed given as int, str and bytes.
_GRID = {"seed": SEEDS, "seed_kind": SEED_KINDS}


def seed_value(seed: int, seed_kind: str) -> Union[int, str, bytes]:
    """The seed as the given kind.

    bytes are the seed's 8 big-endian bytes, not ``str(seed).encode()``: CPython seeds a
    str by encoding it to UTF-8 first, so ``"17"`` and ``b"17"`` give one and the same
    stream, and the bytes kind would audit nothing new.
    """
    if seed_kind == "int":
        return seed
    if seed_kind == "str":
        return str(seed)
    return (seed % 2**64).to_bytes(8, "big")


def _generator(seed: int, seed_kind: str) -> random.Random:
    return random.Random(seed_value(seed, seed_kind))


@probe("random.random", grid={**_GRID, "n": [1000]})
def random_random(seed: int, seed_kind: str, n: int) -> Output:
    """random.Random(seed).random() n times, the seed given as int, str or bytes."""
    rng = _generator(seed, seed_kind)
    return Output([rng.random() for _ in range(n)], rng.getstate())


@probe("random.seed", grid={**_GRID, "n": [1000]})
def global_seed(seed: int, seed_kind: str, n: int) -> Output:
    """random.seed(seed), then the module-level random(): the global instance people use."""
    random.seed(seed_value(seed, seed_kind))
    return Output([random.random() for _ in range(n)], random.getstate())


@probe("random.gauss", grid={**_GRID, "n": [1000]})
def gauss(seed: int, seed_kind: str, n: int) -> Output:
    """gauss caches its second normal (gauss_next), which getstate() includes."""
    rng = _generator(seed, seed_kind)
    return Output([rng.gauss(0.0, 1.0) for _ in range(n)], rng.getstate())


@probe("random.normalvariate", grid={"seed": SEEDS, "n": [1000]})
def normalvariate(seed: int, n: int) -> Output:
    """Kinderman-Monahan ratio method: a different consumer of the stream than gauss."""
    rng = random.Random(seed)
    return Output([rng.normalvariate(0.0, 1.0) for _ in range(n)], rng.getstate())


@probe("random.randrange", grid={"seed": SEEDS, "stop": [10, 1000, 2**40 + 7], "n": [1000]})
def randrange(seed: int, stop: int, n: int) -> Output:
    """randrange rejects through getrandbits(k); a large stop takes two 32-bit words."""
    rng = random.Random(seed)
    return Output([rng.randrange(stop) for _ in range(n)], rng.getstate())


@probe("random.randint", grid={"seed": SEEDS, "n": [1000]})
def randint(seed: int, n: int) -> Output:
    """randint(a, b) is randrange(a, b + 1); kept because it is what most code calls."""
    rng = random.Random(seed)
    return Output([rng.randint(-5, 5) for _ in range(n)], rng.getstate())


@probe("random.choice", grid={"seed": SEEDS, "n": [1000]})
def choice(seed: int, n: int) -> Output:
    """choice over a 50-element list."""
    rng = random.Random(seed)
    population = list(range(50))
    return Output([rng.choice(population) for _ in range(n)], rng.getstate())


@probe("random.shuffle", grid={"seed": SEEDS, "n": [1000]})
def shuffle(seed: int, n: int) -> Output:
    """In-place Fisher-Yates shuffle of range(n)."""
    rng = random.Random(seed)
    items = list(range(n))
    rng.shuffle(items)
    return Output(items, rng.getstate())


@probe("random.sample", grid={"seed": SEEDS, "population": [60, 10000], "k": [50]})
def sample(seed: int, population: int, k: int) -> Output:
    """sample switches between a pool copy and a set of picks by population size."""
    rng = random.Random(seed)
    return Output(rng.sample(range(population), k), rng.getstate())


@probe("random.choices", grid={"seed": SEEDS, "weighted": [False, True], "k": [1000]})
def choices(seed: int, weighted: bool, k: int) -> Output:
    """choices without weights uses floor(random() * n); with weights, bisect on cum_weights."""
    rng = random.Random(seed)
    population = list(range(20))
    weights = [float(i + 1) for i in population] if weighted else None
    return Output(rng.choices(population, weights=weights, k=k), rng.getstate())


@probe("random.getrandbits", grid={"seed": SEEDS, "bits": [1, 32, 64, 200], "n": [1000]})
def getrandbits(seed: int, bits: int, n: int) -> Output:
    """Raw words of the Mersenne Twister, k bits at a time (over 64 bits: big ints)."""
    rng = random.Random(seed)
    return Output([rng.getrandbits(bits) for _ in range(n)], rng.getstate())


@probe("random.binomialvariate", grid={"seed": SEEDS, "n_trials": [10, 1000], "n": [1000]}, min_python=(3, 12))
def binomialvariate(seed: int, n_trials: int, n: int) -> Output:
    """New in 3.12: inversion for small n*p, BTRS beyond; the grid takes both branches."""
    rng = random.Random(seed)
    draws = [rng.binomialvariate(n_trials, 0.3) for _ in range(n)]  # type: ignore[attr-defined]
    return Output(draws, rng.getstate())
