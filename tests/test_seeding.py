"""The seeders registry: each library says once how to save, restore and seed its global generators."""

from __future__ import annotations

import random
import sys
import types
from typing import Iterator, List

import numpy as np
import pytest

from audit.worker import seeding


def test_the_block_leaves_python_and_numpy_generators_as_they_were() -> None:
    random.seed(5)
    np.random.seed(5)
    expected = (random.random(), float(np.random.random()))
    random.seed(5)
    np.random.seed(5)
    with seeding.restored_global_state():
        random.seed(99)
        np.random.seed(99)
        random.random()
        np.random.random()
    assert (random.random(), float(np.random.random())) == expected


def test_the_built_in_seeders_are_registered_in_order() -> None:
    assert [s.name for s in seeding.registered()][:4] == ["random", "numpy", "torch", "torch.cuda"]
    assert [s.name for s, _ in seeding.active()][:2] == ["random", "numpy"]


@pytest.fixture
def fake_library() -> Iterator[List[int]]:
    """A library ``fakelib`` with one global generator state, registered as a new library would be."""
    module = types.ModuleType("fakelib")
    module.state = [0]  # type: ignore[attr-defined]
    saved = dict(seeding._SEEDERS)
    seeding.register_seeder(seeding.Seeder("fakelib", "fakelib", lambda m: list(m.state),
                                           lambda m, s: m.state.__setitem__(slice(None), s)))
    try:
        yield module.state  # type: ignore[attr-defined]
    finally:
        seeding._SEEDERS.clear()
        seeding._SEEDERS.update(saved)
        sys.modules.pop("fakelib", None)


def test_a_new_library_registers_its_own_and_is_used_once_imported(fake_library: List[int]) -> None:
    assert "fakelib" not in [s.name for s, _ in seeding.active()]  # not imported: left alone
    sys.modules["fakelib"] = types.ModuleType("fakelib")
    sys.modules["fakelib"].state = fake_library  # type: ignore[attr-defined]
    assert "fakelib" in [s.name for s, _ in seeding.active()]
    with seeding.restored_global_state():
        fake_library[0] = 7  # a probe seeds the library's global generator
    assert fake_library == [0]  # restored
    with pytest.raises(ValueError, match="already registered"):
        seeding.register_seeder(seeding.Seeder("fakelib", "other", list, lambda m, s: None))
