"""Op probes and their inputs: numpy and torch inputs are the same bits, pinned, and every op runs."""

from __future__ import annotations

from typing import Dict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import audit.probes  # noqa: E402,F401  (registers the catalogue)
from audit import registry  # noqa: E402
from audit.probes import _inputs, numpy_ops, torch_ops  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402

MODULES = (torch_ops.__name__, numpy_ops.__name__)

#: numpy_uniform(6, seed=0): pins the input formula; every op fingerprint depends on it.
UNIFORM_0 = [0.7990684509277344, 0.7160180807113647, -0.5187995433807373,
             -0.6381779909133911, -0.7994046211242676, 0.6312625408172607]
TIES_17 = [1, 4, 14, 11, 6, 11, 8, 2]


def op_probes() -> Dict[str, registry.Probe]:
    return {k: p for k, p in registry.all_probes().items() if p.func.__module__ in MODULES}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), n=st.integers(1, 3000), dtype=st.sampled_from(["float32", "float64"]))
def test_numpy_and_torch_inputs_are_bit_identical(seed: int, n: int, dtype: str) -> None:
    a = _inputs.numpy_uniform(n, seed, dtype)
    b = _inputs.torch_uniform(n, seed, dtype).numpy()
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert np.array_equal(_inputs.numpy_ties(n, seed), _inputs.torch_ties(n, seed).numpy())


def test_inputs_are_pinned() -> None:
    assert _inputs.numpy_uniform(6, 0, "float64").tolist() == UNIFORM_0
    assert _inputs.numpy_ties(8, 17).tolist() == TIES_17


def test_inputs_lie_on_a_grid_exact_in_float32() -> None:
    x = _inputs.numpy_uniform(100_000, 5, "float64")
    assert x.min() >= -1.0 and x.max() < 1.0
    k = (x + 1.0) * 2.0**23
    assert np.array_equal(k, np.round(k))
    assert np.array_equal(x.astype(np.float32).astype(np.float64), x)
    assert abs(x.mean()) < 0.01, "roughly uniform"


def test_seeds_give_different_inputs() -> None:
    assert not np.array_equal(_inputs.numpy_uniform(100, 0), _inputs.numpy_uniform(100, 1))
    assert not np.array_equal(_inputs.numpy_uniform(100, 0), _inputs.numpy_uniform(100, 2**32))


def test_every_op_case_is_ok_and_repeatable() -> None:
    """Every op case runs, and none is *systematically* non-repeatable (unseeded input, say).

    A case that disagrees with itself gets two more tries: torch's float32 ``exp`` over 10^5
    elements with two threads has been seen, rarely and not on demand, to disagree with itself
    within one process (reported by the audit as nondeterministic, which is the tool working);
    a probe bug would disagree every time.
    """
    cases = list(registry.iter_cases(op_probes()))
    records = [run_case(c) for c in cases]
    assert len(records) >= 45
    bad = [(r["probe_key"], r["params"], r["status"], r["message"]) for r in records if r["status"] != "ok"]
    assert bad == []
    assert all(r["kind"] == "op" for r in records)
    flaky = [c for c, r in zip(cases, records) if not r["repeat_identical"]]
    always = [c.probe.key for c in flaky if not any(run_case(c)["repeat_identical"] for _ in range(2))]
    assert always == []


def test_op_inputs_ignore_the_run_seed_panel() -> None:
    """Op inputs are fixed data: a run with other seeds has the same op cases."""
    for p in op_probes().values():
        assert [c.key for c in p.cases((1, 2))] == [c.key for c in p.cases()]


def test_numpy_and_torch_matmul_see_the_same_matrices() -> None:
    case = {"seed": 0, "mkn": [127, 129, 63], "dtype": "float64"}
    a = registry.get("numpy.matmul").func(**case)
    b = registry.get("torch.matmul").func(**case).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_training_step_reports_losses_then_parameters() -> None:
    out = registry.get("torch.optim.SGD.step").func(seed=0, steps=3, batch=64, options={"lr": 0.1, "momentum": 0.9})
    n_params = 32 * 64 + 64 + 64 * 10 + 10
    assert out.shape == (3 + n_params,)
    losses = out[:3]
    assert losses[2] < losses[0], "SGD lowers the loss on its own batch"
