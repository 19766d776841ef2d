"""Attribution: which environment field explains a split (pure, property-based)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.compare.attribution import attribute, explains

FIELDS = ["torch_version", "numpy_version", "cpu_capability", "OMP_NUM_THREADS", "machine_id"]
VALUES = ["a", "b", "c", None]


def test_example_words():
    envs = [{"torch_version": v} for v in ("2.13.0", "2.4.1", "2.14.1")]
    got = attribute(envs, ["new", "old", "new"])
    assert got.axes == ["torch_version"]
    assert got.explanation == "split by torch_version: 2.4.1 | 2.13.0, 2.14.1"


def test_null_is_a_value_shown_as_unset():
    envs = [{"ATEN_CPU_CAPABILITY": None}, {"ATEN_CPU_CAPABILITY": "avx2"}]
    assert attribute(envs, [1, 2]).explanation == "split by ATEN_CPU_CAPABILITY: unset | avx2"


def test_derived_ids_give_way_to_meaningful_fields():
    envs = [{"machine_id": "m1", "cpu_capability": "AVX2"}, {"machine_id": "m2", "cpu_capability": "AVX512"}]
    assert attribute(envs, [1, 2]).axes == ["cpu_capability"]
    assert attribute([{"machine_id": "m1"}, {"machine_id": "m2"}], [1, 2]).axes == ["machine_id"]


def test_fewest_values_first():
    envs = [{"torch_version": str(i), "os_release": "X" if i < 2 else "Y"} for i in range(4)]
    assert attribute(envs, [1, 1, 2, 2]).axes == ["os_release", "torch_version"]


def test_pairs_when_no_single_field():
    envs = [{"torch_version": t, "OMP_NUM_THREADS": n} for t in ("1", "2") for n in ("1", "4")]
    streams = [(e["torch_version"] == "2" and e["OMP_NUM_THREADS"] == "4") for e in envs]
    got = attribute(envs, streams)
    assert got.axes == ["torch_version+OMP_NUM_THREADS"]
    assert got.explanation.startswith("split by torch_version + OMP_NUM_THREADS: ")


def test_nothing_explains():
    envs = [{"torch_version": "1"}, {"torch_version": "1"}]
    got = attribute(envs, [1, 2])
    assert got.axes == [] and "no environment field" in got.explanation


def _runs(draw_seed: int, n: int):
    rng = random.Random(draw_seed)
    return [{f: rng.choice(VALUES) for f in FIELDS} for _ in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(3, 12), st.sampled_from(FIELDS[:4]))
def test_planted_split_is_found(seed, n, field):
    envs = _runs(seed, n)
    if len({e[field] for e in envs}) < 2:
        envs[0][field], envs[1][field] = "a", "b"
    streams = [f"s-{e[field]}" for e in envs]  # the planted field decides the stream
    got = attribute(envs, streams)
    assert field in got.axes
    for axis in got.axes:  # and every named axis really explains it
        assert "+" in axis or explains([(e.get(axis), s) for e, s in zip(envs, streams)])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(3, 10), st.randoms())
def test_row_order_and_duplicates_do_not_change_the_answer(seed, n, rnd):
    envs = _runs(seed, n)
    streams = [str(e["cpu_capability"]) for e in envs]
    expected = attribute(envs, streams)
    order = list(range(n))
    rnd.shuffle(order)
    assert attribute([envs[i] for i in order], [streams[i] for i in order]) == expected
    assert attribute(envs + envs[:1], streams + streams[:1]) == expected
