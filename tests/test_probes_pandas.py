"""The pandas sample probes: they run, repeat, return real rows, and mean what they say."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Dict, List, Sequence

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")

import audit.probes  # noqa: E402,F401  (registers the catalogue before any test empties the registry)
from audit import registry  # noqa: E402
from audit.probes import pandas_sampling  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402

MODULE = pandas_sampling.__name__
PROBES = ("pandas.DataFrame.sample", "pandas.Series.sample")
FUNCS = (pandas_sampling.dataframe_sample, pandas_sampling.series_sample)


def module_probes() -> Dict[str, registry.Probe]:
    return {k: p for k, p in registry.all_probes().items() if p.func.__module__ == MODULE}


def run_all(seeds: Sequence[int] = registry.DEFAULT_SEEDS, repeat: bool = True) -> List[Dict[str, Any]]:
    return [run_case(c, repeat=repeat) for c in registry.iter_cases(module_probes(), seeds)]


@pytest.fixture(scope="module")
def records() -> List[Dict[str, Any]]:
    return run_all()


def test_both_apis_are_registered_for_pandas() -> None:
    probes = module_probes()
    assert set(probes) == set(PROBES)
    assert {p.requirement.library for p in probes.values()} == {"pandas"}


def test_every_case_is_ok_and_repeats(records: List[Dict[str, Any]]) -> None:
    assert len(records) == 2 * len(registry.DEFAULT_SEEDS) * 3 * 4
    for rec in records:
        assert rec["status"] == "ok", (rec["probe_key"], rec["params"], rec["message"])
        assert rec["repeat_identical"] is True
        kind = json.loads(rec["params"])["random_state"]
        assert (rec["state_fingerprint"] is None) == (kind == "int"), rec["params"]


def test_records_are_the_same_in_a_second_run(records: List[Dict[str, Any]]) -> None:
    again = {r["case_key"]: (r["fingerprint"], r["state_fingerprint"]) for r in run_all(repeat=False)}
    assert {r["case_key"]: (r["fingerprint"], r["state_fingerprint"]) for r in records} == again


def test_distinct_seeds_give_distinct_fingerprints(records: List[Dict[str, Any]]) -> None:
    by_rest: Dict[Any, List[str]] = defaultdict(list)
    for rec in records:
        params = {k: v for k, v in json.loads(rec["params"]).items() if k != "seed"}
        by_rest[(rec["probe_key"], registry.canonical_json(params))].append(rec["fingerprint"])
    for key, fps in by_rest.items():
        assert len(set(fps)) == len(registry.DEFAULT_SEEDS), key


def test_random_state_kinds_give_distinct_rows_except_int_and_global() -> None:
    """An int random_state and np.random.seed(int) both mean RandomState(int): same rows."""
    rows = {kind: pandas_sampling.dataframe_sample(seed=17, random_state=kind, mode="n").value.tobytes()
            for kind in pandas_sampling.RANDOM_STATE_KINDS}
    assert rows["int"] == rows["global"]
    assert rows["int"] != rows["generator"]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("mode,rows,unique", [("n", 100, True), ("frac", 250, True), ("weights", 100, True),
                                              ("replace", 1000, False)])
def test_output_is_sampled_labels_and_their_values(func: Any, mode: str, rows: int, unique: bool) -> None:
    out = func(seed=0, random_state="generator", mode=mode).value
    assert out.shape == (rows, 2) and out.dtype == np.int64
    labels, values = out[:, 0], out[:, 1]
    assert np.all((labels - 3) % 7 == 0) and np.all((labels - 3) // 7 < 1000)
    np.testing.assert_array_equal(values, (labels - 3) // 7 * 3)
    assert (len(np.unique(labels)) == rows) == unique


@pytest.mark.parametrize("kind,random_state", [("int", lambda s: s), ("generator", np.random.default_rng)])
def test_probe_is_a_plain_sample_call(kind: str, random_state: Any) -> None:
    out = pandas_sampling.dataframe_sample(seed=20210530, random_state=kind, mode="weights")
    frame = pandas_sampling._frame()
    picked = frame.sample(n=100, weights="w", random_state=random_state(20210530))
    np.testing.assert_array_equal(out.value[:, 0], picked.index.to_numpy())


def test_global_generator_is_restored() -> None:
    np.random.seed(12345)
    before = np.random.get_state()
    recs = [run_case(c) for c in registry.get("pandas.DataFrame.sample").cases([17])]
    assert {r["status"] for r in recs} == {"ok"}
    after = np.random.get_state()
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


@pytest.mark.parametrize("bad_seed", [2**32, -1])
def test_seeds_numpy_refuses_are_unsupported(bad_seed: int) -> None:
    recs = [run_case(c) for c in registry.iter_cases(module_probes(), [bad_seed])]
    by_kind: Dict[str, set] = defaultdict(set)
    for rec in recs:
        by_kind[json.loads(rec["params"])["random_state"]].add(rec["status"])
        if rec["status"] == "unsupported":
            assert str(bad_seed) in rec["message"]
    assert by_kind["int"] == by_kind["global"] == {"unsupported"}
    assert by_kind["generator"] == ({"unsupported"} if bad_seed < 0 else {"ok"})
