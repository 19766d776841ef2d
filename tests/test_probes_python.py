"""The Python ``random`` probes: they run, repeat, leave the global generator alone, and pin."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import sys
from collections import defaultdict
from typing import Any, Dict, List, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audit.probes  # noqa: F401  (registers the catalogue before any test empties the registry)
from audit import registry
from audit.probes import python_random
from audit.worker.execute import run_case
from audit.worker.seeding import restored_global_state

MODULE = python_random.__name__

#: Needs Python 3.12; elsewhere it must be unsupported with this reason.
NEEDS_312 = "random.binomialvariate"


def module_probes() -> Dict[str, registry.Probe]:
    return {k: p for k, p in registry.all_probes().items() if p.func.__module__ == MODULE}


def run_all(seeds: Sequence[int] = registry.DEFAULT_SEEDS, repeat: bool = True) -> List[Dict[str, Any]]:
    return [run_case(c, repeat=repeat) for c in registry.iter_cases(module_probes(), seeds)]


def le_sha256(values: Sequence[float]) -> str:
    return hashlib.sha256(struct.pack(f"<{len(values)}d", *values)).hexdigest()


@pytest.fixture(scope="module")
def records() -> List[Dict[str, Any]]:
    return run_all()


def test_the_issue_apis_are_covered() -> None:
    ids = {p.id for p in module_probes().values()}
    wanted = {"random", "gauss", "randrange", "choice", "shuffle", "sample", "choices", "getrandbits"}
    wanted.add("binomialvariate")
    assert {f"random.{name}" for name in wanted} <= ids


def test_every_case_is_ok_and_repeats(records: List[Dict[str, Any]]) -> None:
    assert len(records) > 50
    for rec in records:
        if rec["probe_key"] == NEEDS_312 and sys.version_info < (3, 12):
            assert rec["status"] == "unsupported" and rec["message"] == "needs Python >= 3.12"
            continue
        assert rec["status"] == "ok", (rec["probe_key"], rec["params"], rec["message"])
        assert rec["repeat_identical"] is True
        assert rec["state_fingerprint"] is not None


def test_records_are_the_same_in_a_second_run(records: List[Dict[str, Any]]) -> None:
    again = {r["case_key"]: (r.get("fingerprint"), r.get("state_fingerprint")) for r in run_all(repeat=False)}
    assert {r["case_key"]: (r.get("fingerprint"), r.get("state_fingerprint")) for r in records} == again


def test_distinct_seeds_give_distinct_fingerprints(records: List[Dict[str, Any]]) -> None:
    by_rest: Dict[Any, List[str]] = defaultdict(list)
    for rec in records:
        if rec["status"] != "ok":
            continue
        params = {k: v for k, v in json.loads(rec["params"]).items() if k != "seed"}
        by_rest[(rec["probe_key"], registry.canonical_json(params))].append(rec["fingerprint"])
    assert by_rest
    for key, fps in by_rest.items():
        assert len(set(fps)) == len(registry.DEFAULT_SEEDS), key


def test_seed_kinds_give_distinct_streams(records: List[Dict[str, Any]]) -> None:
    by_seed: Dict[Any, Dict[str, str]] = defaultdict(dict)
    for rec in records:
        params = json.loads(rec["params"])
        if "seed_kind" in params:
            by_seed[(rec["probe_key"], params["seed"])][params["seed_kind"]] = rec["fingerprint"]
    assert len(by_seed) >= 3 * len(registry.DEFAULT_SEEDS)
    for key, kinds in by_seed.items():
        assert set(kinds) == set(python_random.SEED_KINDS), key
        assert len(set(kinds.values())) == 3, key


def test_cpython_seeds_str_and_its_utf8_bytes_alike() -> None:
    """Why the bytes kind is not str(seed).encode(): that would repeat the str stream."""
    assert random.Random("17").random() == random.Random(b"17").random()
    assert python_random.seed_value(17, "bytes") != b"17"


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**64 - 1))
def test_three_seed_kinds_are_three_streams_for_any_seed(seed: int) -> None:
    first = {random.Random(python_random.seed_value(seed, kind)).random() for kind in python_random.SEED_KINDS}
    assert len(first) == 3


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(-(2**70), 2**70), kind=st.sampled_from(python_random.SEED_KINDS))
def test_probe_draws_are_random_random_draws(seed: int, kind: str) -> None:
    out = python_random.random_random(seed=seed, seed_kind=kind, n=5)
    rng = random.Random(python_random.seed_value(seed, kind))
    assert out.value == [rng.random() for _ in range(5)]
    assert out.state == rng.getstate()


def test_global_generator_is_restored() -> None:
    random.seed(12345)
    before = random.getstate()
    recs = [run_case(c) for c in registry.get("random.seed").cases([0, 17])]
    assert {r["status"] for r in recs} == {"ok"}
    assert random.getstate() == before


def test_global_seed_probe_does_touch_the_global_generator_when_called_bare() -> None:
    """So the restore test above cannot pass vacuously."""
    with restored_global_state():
        random.seed(12345)
        before = random.getstate()
        python_random.global_seed(seed=17, seed_kind="int", n=3)
        assert random.getstate() != before


def test_state_shows_one_extra_draw() -> None:
    assert python_random.gauss(seed=0, seed_kind="int", n=1).state != python_random.gauss(
        seed=0, seed_kind="int", n=2
    ).state


def test_big_getrandbits_fingerprint_as_big_ints(records: List[Dict[str, Any]]) -> None:
    dtypes = {json.loads(r["params"])["bits"]: r["dtype"] for r in records if r["probe"] == "random.getrandbits"}
    assert dtypes == {1: "int64", 32: "int64", 64: "pyint", 200: "pyint"}


@pytest.mark.skipif(sys.version_info < (3, 12), reason="binomialvariate is new in Python 3.12")
def test_binomialvariate_stays_in_range() -> None:
    out = python_random.binomialvariate(seed=0, n_trials=10, n=1000)
    assert 0 <= min(out.value) and max(out.value) <= 10


# --- sha256-of-little-endian-draws pins ----------------------------------------------------

RANDOM_0_RANDOM_100 = "a8ab1d57cb828389ac0f9a7f2144f28e1b62262c27db9ab4f69922f386258223"
RANDOM_0_GAUSS_100 = "f67a9c2f39da7a1dd11c231184256ef4189d266c6a0276ed7ebba40ee0a6fcb0"


def test_pinned_streams_directly() -> None:
    rng = random.Random(0)
    assert le_sha256([rng.random() for _ in range(100)]) == RANDOM_0_RANDOM_100
    rng = random.Random(0)
    assert le_sha256([rng.gauss(0.0, 1.0) for _ in range(100)]) == RANDOM_0_GAUSS_100


def test_pinned_streams_through_the_probes() -> None:
    assert le_sha256(python_random.random_random(seed=0, seed_kind="int", n=100).value) == RANDOM_0_RANDOM_100
    assert le_sha256(python_random.gauss(seed=0, seed_kind="int", n=100).value) == RANDOM_0_GAUSS_100
