"""The probe registry: registration, duplicates, selection, cases, versions."""

from __future__ import annotations

import pytest

from audit import registry
from audit.errors import RegistryError
from audit.probe_api import SEEDS, probe


def test_decorator_with_and_without_arguments(empty_registry: None) -> None:
    @probe
    def bare() -> int:
        return 1

    @probe("lib.thing", grid={"seed": SEEDS, "n": [1, 2]}, library="numpy", min_version="1.19")
    def thing(seed: int, n: int) -> int:
        return seed + n

    probes = registry.all_probes()
    assert set(probes) == {"bare", "lib.thing"}
    assert probes["lib.thing"].requirement.library == "numpy"
    assert len(probes["lib.thing"].cases()) == len(registry.DEFAULT_SEEDS) * 2
    assert [c.params["seed"] for c in probes["lib.thing"].cases(seeds=[5])] == [5, 5]
    assert bare() == 1  # the decorator returns the function itself


def test_duplicate_key_is_an_error(empty_registry: None) -> None:
    probe("x.y")(lambda: 0)
    with pytest.raises(RegistryError, match="registered twice"):
        probe("x.y")(lambda: 1)
    probe("x.y", device="cuda")(lambda: 2)  # same id on another device is another key
    assert set(registry.all_probes()) == {"x.y", "x.y@cuda"}


def test_reads_are_copies(empty_registry: None) -> None:
    probe("a")(lambda: 0)
    copy = registry.all_probes()
    copy.clear()
    assert "a" in registry.all_probes()


def test_select_by_glob_and_unknown_glob(empty_registry: None) -> None:
    for name in ("torch.randn", "torch.rand", "numpy.random.randn"):
        probe(name)(lambda: 0)
    assert list(registry.select(["torch.*"])) == ["torch.randn", "torch.rand"]
    assert list(registry.select([])) == ["torch.randn", "torch.rand", "numpy.random.randn"]
    with pytest.raises(RegistryError, match="no probe matches 'tensorflow.*'"):
        registry.select(["tensorflow.*"])


def test_case_keys_are_stable_and_distinct(empty_registry: None) -> None:
    probe("p", grid={"seed": SEEDS, "dtype": ["float32", "float64"]})(lambda seed, dtype: 0)
    cases = registry.get("p").cases()
    keys = [c.key for c in cases]
    assert len(set(keys)) == len(keys)
    assert cases[0].params_json == '{"dtype":"float32","seed":0}'
    assert [c.key for c in registry.get("p").cases()] == keys


def test_version_follows_the_source(empty_registry: None) -> None:
    def one(seed: int) -> int:
        return seed

    def two(seed: int) -> int:
        return seed + 1

    probe("v1", grid={"seed": [1]})(one)
    probe("v2", grid={"seed": [1]})(two)
    probe("v3", grid={"seed": [2]})(one)
    versions = {k: p.version for k, p in registry.all_probes().items()}
    assert len(set(versions.values())) == 3  # other code or another grid: another version


def test_extra_cases_expand_the_seed_marker(empty_registry: None) -> None:
    probe("e", grid={"seed": [1]}, extra_cases=[{"seed": SEEDS, "big": True}])(lambda seed, big=False: 0)
    cases = registry.get("e").cases(seeds=[7, 8])
    assert [c.params for c in cases] == [{"seed": 1}, {"seed": 7, "big": True}, {"seed": 8, "big": True}]


def test_unknown_key_names_the_list_command() -> None:
    with pytest.raises(RegistryError, match="audit list"):
        registry.get("no.such.probe")


def test_family_from_the_decorator_or_the_module(empty_registry: None) -> None:
    import sys
    import types

    @probe("jax.random.normal", family="jax")
    def declared(seed: int) -> int:
        return seed

    module = types.ModuleType("fake_probes_module")
    module.FAMILY = "my lib"  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        def from_module(seed: int) -> int:
            return seed

        from_module.__module__ = module.__name__
        probe("mylib.draw")(from_module)
    finally:
        del sys.modules[module.__name__]

    @probe("mylib.other")
    def undeclared(seed: int) -> int:
        return seed

    assert registry.families() == {"jax.random.normal": "jax", "mylib.draw": "my lib"}
    assert registry.get("mylib.other").family is None
    with pytest.raises(RegistryError, match="family must be a non-empty string"):
        probe("mylib.bad", family=" ")(lambda seed: seed)
