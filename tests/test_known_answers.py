"""Known answers: the numbers printed in /work/shared/seed/000_*.txt, a seeding tutorial.

They are what people have seen on their screens for years, so they are checked twice:
straight from the library, and through the registered probe (its function, and run_case's
record sample), so a probe that seeds or draws differently from the tutorial fails here.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Sequence

import pytest

np = pytest.importorskip("numpy")

import audit.probes  # noqa: E402,F401  (registers the catalogue before any test empties the registry)
from audit import registry  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402
from audit.worker.fingerprint import SAMPLE_HEAD  # noqa: E402
from audit.worker.seeding import restored_global_state  # noqa: E402

#: np.random.seed(17); randn(3); randn(3)  (and RandomState(17) alike).
SEED_17 = [[0.27626589, -1.85462808, 0.62390111], [1.14531129, 1.03719047, 1.88663893]]
#: RandomState(20210530).randn(3) twice.
SEED_20210530 = [[-0.24972681, -1.01951826, 2.23461339], [0.72764703, 1.2921122, 1.15494929]]
#: torch.manual_seed(17); torch.randn(5), printed to 4 decimals.
TORCH_17 = [-1.4135, 0.2336, 0.0340, 0.3499, -0.0145]


def flat(rows: Sequence[Sequence[float]]) -> List[float]:
    return [x for row in rows for x in row]


def sample_values(record: Dict[str, Any]) -> List[float]:
    """The record's leading sampled elements as floats (the sample holds the first 8)."""
    assert record["status"] == "ok", record["message"]
    code = {"float64": "d", "float32": "f"}[record["dtype"]]
    raw = bytes.fromhex(record["sample"])
    count = len(raw) // struct.calcsize(code)
    return list(struct.unpack(f"<{count}{code}", raw))


def find_case(probe_key: str, seed: int, **params: Any) -> registry.Case:
    cases = [c for c in registry.get(probe_key).cases([seed]) if all(c.params.get(k) == v for k, v in params.items())]
    assert len(cases) == 1, (probe_key, params, cases)
    return cases[0]


# --- directly -----------------------------------------------------------------------------


def test_global_seed_17_randn_twice() -> None:
    with restored_global_state():
        np.random.seed(17)
        np.testing.assert_allclose(np.random.randn(3), SEED_17[0], atol=5e-9)
        np.testing.assert_allclose(np.random.randn(3), SEED_17[1], atol=5e-9)


def test_random_states_interleaved() -> None:
    """Two RandomStates drawn in turn: each keeps its own stream (the tutorial's point)."""
    rs17, rs2021 = np.random.RandomState(17), np.random.RandomState(20210530)
    got = [rs17.randn(3), rs2021.randn(3), rs17.randn(3), rs2021.randn(3)]
    want = [SEED_17[0], SEED_20210530[0], SEED_17[1], SEED_20210530[1]]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=5e-9)


def test_torch_manual_seed_17() -> None:
    torch = pytest.importorskip("torch")
    with restored_global_state():
        torch.manual_seed(17)
        assert [round(x, 4) for x in torch.randn(5).tolist()] == TORCH_17


# --- through the probes -------------------------------------------------------------------


def test_legacy_randn_probe() -> None:
    func = registry.get("numpy.random.randn").func
    np.testing.assert_allclose(func(seed=17, n=1000).value[:6], flat(SEED_17), atol=5e-9)
    record = run_case(find_case("numpy.random.randn", 17, n=1000))
    np.testing.assert_allclose(sample_values(record)[:6], flat(SEED_17), atol=5e-9)


@pytest.mark.parametrize("seed,want", [(17, SEED_17), (20210530, SEED_20210530)])
def test_random_state_randn_probe(seed: int, want: List[List[float]]) -> None:
    func = registry.get("numpy.random.RandomState.randn").func
    np.testing.assert_allclose(func(seed=seed, seed_kind="int", n=1000).value[:6], flat(want), atol=5e-9)
    record = run_case(find_case("numpy.random.RandomState.randn", seed, seed_kind="int", n=1000))
    np.testing.assert_allclose(sample_values(record)[:6], flat(want), atol=5e-9)


def test_sample_holds_the_leading_elements() -> None:
    """The through-run_case checks above read the record's sample, which must start at 0."""
    assert SAMPLE_HEAD >= 6


@pytest.mark.parametrize("generator", ["global", "explicit"])
def test_torch_randn_probe(generator: str) -> None:
    """manual_seed(17) and a Generator seeded 17 give the tutorial's five normals (size < 16)."""
    pytest.importorskip("torch")
    if "torch.randn" not in registry.all_probes():
        pytest.skip("no torch.randn probe registered")
    case = find_case("torch.randn", 17, generator=generator, size=5, dtype="float32")
    out = case.probe.func(**case.params)
    assert [round(x, 4) for x in out.value.tolist()] == TORCH_17
    assert [round(x, 4) for x in sample_values(run_case(case))] == TORCH_17
