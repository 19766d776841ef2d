"""Python's ``random`` module: seeding from int, str and bytes, and its draws."""

from __future__ import annotations

import random

from audit.probe_api import SEEDS, Output, probe

SEED_KINDS = ("int", "str", "bytes")


def _generator(seed: int, seed_kind: str) -> random.Random:
    value = {"int": seed, "str": str(seed), "bytes": str(seed).encode()}[seed_kind]
    return random.Random(value)


@probe("random.random", grid={"seed": SEEDS, "seed_kind": SEED_KINDS, "n": [1000]})
def random_random(seed: int, seed_kind: str, n: int) -> Output:
    """random.Random(seed).random() n times."""
    rng = _generator(seed, seed_kind)
    return Output([rng.random() for _ in range(n)], rng.getstate())
