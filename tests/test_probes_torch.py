"""torch generator, nn and data probes: they run, repeat, restore torch's state, pin known values,
and show the ATen dispatch-level split that motivates the project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import pytest

torch = pytest.importorskip("torch")

import audit.probes  # noqa: E402,F401  (registers the catalogue)
from audit import registry  # noqa: E402
from audit.probes import torch_nn, torch_rng  # noqa: E402
from audit.runner.supervisor import SOURCE_ROOT  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402

MODULES = (torch_rng.__name__, torch_nn.__name__)

#: torch.manual_seed(17); torch.randn(5), as torch has printed it since 1.x.
RANDN_17 = [-1.4135, 0.2336, 0.0340, 0.3499, -0.0145]


def probes(device: str = "cpu") -> Dict[str, registry.Probe]:
    return {k: p for k, p in registry.all_probes().items()
            if p.func.__module__ in MODULES and p.device == device}


def test_every_cpu_case_is_ok_and_repeatable() -> None:
    records = [run_case(c) for c in registry.iter_cases(probes())]
    assert len(records) > 250
    bad = [(r["probe_key"], r["params"], r["status"], r["message"]) for r in records if r["status"] != "ok"]
    assert bad == []
    assert all(r["repeat_identical"] for r in records)
    assert all(r["state_fingerprint"] for r in records), "every generator probe reports its state"


def test_run_case_restores_torch_global_state() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    for key in ("torch.randn", "torch.nn.functional.dropout", "torch.utils.data.DataLoader"):
        for case in registry.get(key).cases((5,)):
            assert run_case(case)["status"] == "ok"
    assert torch.equal(torch.get_rng_state(), before)


def test_randn_known_values_through_the_probe() -> None:
    func = registry.get("torch.randn").func
    for generator in torch_rng.GENERATORS:
        out = func(seed=17, generator=generator, size=5, dtype="float32").value
        assert out.tolist() == pytest.approx(RANDN_17, abs=1e-4)


def test_explicit_and_global_generators_agree_on_cpu() -> None:
    func = registry.get("torch.Tensor.exponential_").func
    a = func(seed=20210530, generator="global", size=1000, args=[1.5]).value
    b = func(seed=20210530, generator="explicit", size=1000, args=[1.5]).value
    assert torch.equal(a, b)


def test_generator_state_moves_with_the_draw() -> None:
    func = registry.get("torch.randn").func
    small = func(seed=0, generator="explicit", size=5, dtype="float32").state
    large = func(seed=0, generator="explicit", size=1000, dtype="float32").state
    assert not torch.equal(small, large)


def test_every_generator_probe_has_a_cuda_twin() -> None:
    cpu, cuda = probes("cpu"), probes("cuda")
    rng = [p for p in cpu.values() if p.func.__module__ == torch_rng.__name__]
    for p in rng:
        twin = cuda[p.key + "@cuda"]
        assert twin.id == p.id and twin.func.__wrapped__ is p.func.__wrapped__  # one body
        assert dict(twin.grid) == dict(p.grid)


def test_init_generator_is_unsupported_only_when_torch_lacks_it() -> None:
    import inspect

    takes = "generator" in inspect.signature(torch.nn.init.orthogonal_).parameters
    case = registry.Case(registry.get("torch.nn.init.orthogonal_"),
                         {"seed": 0, "generator": "explicit", "shape": [8, 4], "kwargs": {}})
    assert run_case(case)["status"] == ("ok" if takes else "unsupported")


# --- ATen dispatch level: the same seed, a different stream ----------------------------------

_SCRIPT = """
import json, torch
import audit.probes
from audit import registry
from audit.worker.fingerprint import fingerprint, state_fingerprint
func = registry.get("torch.randn").func
out = {}
for size in (5, 15, 16, 17, 1000):
    o = func(seed=17, generator="global", size=size, dtype="float32")
    out[size] = [fingerprint(o.value).digest, state_fingerprint(o.state)]
print(json.dumps({"cap": torch.backends.cpu.get_cpu_capability(), "fp": out}))
"""


def _randn_under(capability: str) -> Dict[str, Any]:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "PYTHONPATH": str(SOURCE_ROOT)}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() != "AVX512", reason="needs an AVX-512 CPU")
def test_randn_float32_of_16_or_more_depends_on_the_dispatch_level() -> None:
    """randn's vectorised Box-Muller starts at 16 elements and rounds differently from scalar code."""
    default, avx512 = _randn_under("default"), _randn_under("avx512")
    assert (default["cap"], avx512["cap"]) == ("DEFAULT", "AVX512")
    small: List[str] = ["5", "15"]
    large: List[str] = ["16", "17", "1000"]
    for size in small:
        assert default["fp"][size] == avx512["fp"][size]
    for size in large:
        assert default["fp"][size][0] != avx512["fp"][size][0], size
        # same number of draws: the generator state agrees, only the rounding differs
        assert default["fp"][size][1] == avx512["fp"][size][1], size
