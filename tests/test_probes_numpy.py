"""The numpy probes (legacy global, RandomState, Generator): they run, repeat, restore and pin.

numpy is imported before any case runs, as the worker does, so that run_case saves and
restores numpy's global generator.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any, Dict, List, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

np = pytest.importorskip("numpy")

import audit.probes  # noqa: E402,F401  (registers the catalogue before any test empties the registry)
from audit import registry  # noqa: E402
from audit.probes import numpy_generator, numpy_legacy  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402

MODULES = (numpy_legacy.__name__, numpy_generator.__name__)

#: Probes that are unsupported here on purpose, with the reason they must give.
EXPECTED_UNSUPPORTED: Dict[str, str] = {}

#: Probes that return no generator state (they derive seeds rather than draw from one).
STATELESS = {
    "numpy.random.SeedSequence.generate_state",
    "numpy.random.SeedSequence.spawn",
    "numpy.random.Generator.spawn",
}


def module_probes(module: str) -> Dict[str, registry.Probe]:
    return {k: p for k, p in registry.all_probes().items() if p.func.__module__ == module}


def run_all(module: str, seeds: Sequence[int] = registry.DEFAULT_SEEDS, repeat: bool = True) -> List[Dict[str, Any]]:
    return [run_case(c, repeat=repeat) for c in registry.iter_cases(module_probes(module), seeds)]


def le_sha256(a: Any) -> str:
    """sha256 of the little-endian bytes of an array (numpy's own repeatability check)."""
    a = np.asarray(a)
    return hashlib.sha256(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()).hexdigest()


@pytest.fixture(scope="module", params=MODULES)
def module_records(request: pytest.FixtureRequest) -> Tuple[str, List[Dict[str, Any]]]:
    return request.param, run_all(request.param)


def test_every_case_is_ok_and_repeats(module_records: Tuple[str, List[Dict[str, Any]]]) -> None:
    _, records = module_records
    assert len(records) > 100
    for rec in records:
        if rec["probe_key"] in EXPECTED_UNSUPPORTED:
            assert rec["status"] == "unsupported" and EXPECTED_UNSUPPORTED[rec["probe_key"]] in rec["message"]
            continue
        assert rec["status"] == "ok", (rec["probe_key"], rec["params"], rec["message"])
        assert rec["repeat_identical"] is True, (rec["probe_key"], rec["params"])
        assert (rec["state_fingerprint"] is None) == (rec["probe_key"] in STATELESS), rec["probe_key"]


def test_records_are_the_same_in_a_second_run(module_records: Tuple[str, List[Dict[str, Any]]]) -> None:
    module, records = module_records
    again = {r["case_key"]: (r["fingerprint"], r["state_fingerprint"]) for r in run_all(module, repeat=False)}
    assert {r["case_key"]: (r["fingerprint"], r["state_fingerprint"]) for r in records} == again


def test_distinct_seeds_give_distinct_fingerprints(module_records: Tuple[str, List[Dict[str, Any]]]) -> None:
    _, records = module_records
    by_rest: Dict[Any, List[str]] = defaultdict(list)
    for rec in records:
        params = {k: v for k, v in json.loads(rec["params"]).items() if k != "seed"}
        by_rest[(rec["probe_key"], registry.canonical_json(params))].append(rec["fingerprint"])
    for key, fps in by_rest.items():
        assert len(fps) == len(registry.DEFAULT_SEEDS), key
        assert len(set(fps)) == len(fps), key


def test_global_generator_is_restored_after_legacy_probes() -> None:
    np.random.seed(12345)
    before = np.random.get_state()
    records = run_all(numpy_legacy.__name__, seeds=[17])
    assert {r["status"] for r in records} == {"ok"}
    after = np.random.get_state()
    assert before[0] == after[0] and before[2:] == after[2:]
    np.testing.assert_array_equal(before[1], after[1])


def test_legacy_probe_does_touch_the_global_generator_when_called_bare() -> None:
    """The restore test above would pass vacuously if the probes never seeded globally."""
    np.random.seed(12345)
    first = np.random.get_state()[1].copy()
    numpy_legacy.randn(seed=17, n=10)
    assert not np.array_equal(first, np.random.get_state()[1])


@pytest.mark.parametrize("bad_seed", [2**32, -1])
def test_legacy_seeds_out_of_range_are_unsupported(bad_seed: int) -> None:
    records = run_all(numpy_legacy.__name__, seeds=[bad_seed])
    assert records
    for rec in records:
        assert rec["status"] == "unsupported", rec
        assert "takes seeds in [0, 4294967295]" in rec["message"] and str(bad_seed) in rec["message"]


def test_generator_takes_large_seeds_but_not_negative_ones() -> None:
    probes = {k: p for k, p in module_probes(numpy_generator.__name__).items() if "seed" in p.grid}
    big = [run_case(c, repeat=False) for c in registry.iter_cases(probes, [2**64 + 1])]
    assert {r["status"] for r in big} == {"ok"}
    negative = [run_case(c, repeat=False) for c in registry.iter_cases(probes, [-1])]
    for rec in negative:
        assert rec["status"] == "unsupported" and "non-negative" in rec["message"], rec


def test_a_missing_bit_generator_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy < 1.21 has no PCG64DXSM: the case must say so, not error."""
    monkeypatch.delattr(np.random, "PCG64DXSM")
    cases = registry.get("numpy.random.Generator.random").cases([0])
    case = next(c for c in cases if c.params["bitgen"] == "PCG64DXSM")
    rec = run_case(case)
    assert rec["status"] == "unsupported"
    assert "has no 'PCG64DXSM'" in rec["message"]


def test_a_missing_method_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy < 1.20 has no Generator.permuted (Generator is an immutable type: stand in for it)."""

    class OldGenerator:
        def __init__(self, bit_generator: Any) -> None:
            self.bit_generator = bit_generator

    def old_generator(name: str, seed: int) -> OldGenerator:
        return OldGenerator(numpy_generator.bit_generator(name, seed))

    monkeypatch.setattr(numpy_generator, "generator", old_generator)
    rec = run_case(registry.get("numpy.random.Generator.permuted").cases([0])[0])
    assert rec["status"] == "unsupported" and "'permuted'" in rec["message"]


def test_jumped_is_registered_per_bit_generator_except_sfc64() -> None:
    keys = {k for k in module_probes(numpy_generator.__name__) if k.endswith(".jumped")}
    assert keys == {f"numpy.random.{b}.jumped" for b in numpy_generator.JUMPABLE}
    versions = {registry.get(k).version for k in keys}
    assert len(versions) == len(keys)  # one body, but the grid (bitgen) tells them apart


# --- outputs mean what the probe ids say -------------------------------------------------


def test_legacy_randn_output_and_state_match_a_direct_draw() -> None:
    out = numpy_legacy.randn(seed=17, n=1000)
    rs = np.random.RandomState(17)
    np.testing.assert_array_equal(out.value, rs.randn(1000))
    assert out.state[1].tolist() == rs.get_state()[1].tolist() and out.state[2:] == rs.get_state()[2:]


def test_state_shows_one_extra_draw() -> None:
    one = numpy_generator.random(seed=0, bitgen="PCG64", dtype="float32", n=1)
    two = numpy_generator.random(seed=0, bitgen="PCG64", dtype="float32", n=2)
    assert one.state != two.state


@pytest.mark.parametrize("dtype", numpy_legacy.INT_DTYPES)
def test_integer_probes_return_the_dtype_within_bounds(dtype: str) -> None:
    low, high = numpy_legacy.int_bounds(dtype)
    for out in (
        numpy_legacy.rs_randint(seed=3, dtype=dtype, n=1000),
        numpy_generator.integers(seed=3, bitgen="SFC64", dtype=dtype, n=1000),
    ):
        assert out.value.dtype == np.dtype(dtype)
        assert low <= int(out.value.min()) and int(out.value.max()) <= high
        assert len(np.unique(out.value)) > 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**128), bitgen=st.sampled_from(numpy_generator.BIT_GENERATORS))
def test_generator_probe_is_the_documented_seeding(seed: int, bitgen: str) -> None:
    out = numpy_generator.random(seed=seed, bitgen=bitgen, dtype="float64", n=5)
    direct = np.random.Generator(getattr(np.random, bitgen)(np.random.SeedSequence(seed)))
    np.testing.assert_array_equal(out.value, direct.random(5))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rs_seed_kinds_give_three_streams(seed: int) -> None:
    draws = [numpy_legacy.rs_randn(seed=seed, seed_kind=k, n=4).value.tobytes() for k in ("int", "array", "bitgen")]
    assert len(set(draws)) == 3


def test_dirichlet_small_alpha_rows_sum_to_one() -> None:
    rows = numpy_generator.dirichlet(seed=0, bitgen="PCG64", alpha=0.01, n=100).value
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)


# --- sha256-of-little-endian-draws pins (as numpy's own test_generator_mt19937 does) --------

PCG64_0_RANDOM_100 = "9fea72e1d3e79688314ce69e2f60fdcd953ec5df60b345cd94c5ef3b7a858a85"
RANDOMSTATE_0_RANDN_100 = "7ba13b30f2cfcd4bd52ae22fe3a07dc13fd1e542cd72755969eee4d800dca76c"
MT19937_0_INTEGERS_100 = "5267487546ed16373c08e26418015d494ba93b9f1a2bec41bf81ca341a41536e"


def test_pinned_streams_directly() -> None:
    assert le_sha256(np.random.Generator(np.random.PCG64(0)).random(100)) == PCG64_0_RANDOM_100
    assert le_sha256(np.random.RandomState(0).randn(100)) == RANDOMSTATE_0_RANDN_100
    mt = np.random.Generator(np.random.MT19937(0))
    assert le_sha256(mt.integers(0, 2**31, 100, dtype=np.int64)) == MT19937_0_INTEGERS_100


def test_pinned_streams_through_the_probes() -> None:
    assert le_sha256(numpy_generator.random(seed=0, bitgen="PCG64", dtype="float64", n=100).value) == (
        PCG64_0_RANDOM_100
    )
    assert le_sha256(numpy_legacy.rs_randn(seed=0, seed_kind="int", n=100).value) == RANDOMSTATE_0_RANDN_100
    assert le_sha256(numpy_legacy.randn(seed=0, n=100).value) == RANDOMSTATE_0_RANDN_100
