"""CUDA probes: recorded unsupported without a GPU (CPU twins unaffected), flags restored,
and on a GPU (``-m gpu``) they run, atomics report run-to-run agreement."""

from __future__ import annotations

from typing import Dict, List

import pytest

torch = pytest.importorskip("torch")

import audit.probes  # noqa: E402,F401  (registers the catalogue)
from audit import registry  # noqa: E402
from audit.probes import torch_cuda, torch_nn, torch_rng  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402

MODULES = (torch_rng.__name__, torch_nn.__name__, torch_cuda.__name__)
HAS_CUDA = torch.cuda.is_available()
ATOMICS = ("torch.Tensor.index_add_@cuda", "torch.Tensor.scatter_add_@cuda",
           "torch.Tensor.index_put_@cuda", "torch.nn.functional.embedding@cuda")


def cuda_probes() -> Dict[str, registry.Probe]:
    return {k: p for k, p in registry.all_probes().items() if p.func.__module__ in MODULES and p.device == "cuda"}


def test_cuda_probes_are_keyed_by_id_and_device() -> None:
    probes = cuda_probes()
    assert len(probes) >= 30
    assert all(k == p.id + "@cuda" for k, p in probes.items())
    assert all(registry.get(k).repeats == torch_cuda.ATOMIC_REPEATS for k in ATOMICS)


@pytest.mark.skipif(HAS_CUDA, reason="checks the no-GPU path")
def test_without_a_gpu_cuda_cases_are_unsupported_and_cpu_cases_unaffected() -> None:
    cases = list(registry.iter_cases(cuda_probes(), (0,)))
    records = [run_case(c) for c in cases]
    assert {(r["status"], r["message"]) for r in records} == {("unsupported", "no CUDA device")}
    for key in ("torch.randn", "torch.nn.functional.dropout", "torch.matmul", "torch.softmax"):
        assert key + "@cuda" in cuda_probes()
        case = registry.get(key).cases((0,))[0]
        assert run_case(case)["status"] == "ok", key


def _flags() -> List[bool]:
    return [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic]


def test_backend_flags_are_restored_even_after_an_error() -> None:
    before = _flags()
    with torch_cuda.backend_flags(matmul_tf32=not before[0], benchmark=not before[2], deterministic=not before[3]):
        assert _flags() != before
    assert _flags() == before
    with pytest.raises(RuntimeError):
        with torch_cuda.backend_flags(cudnn_tf32=not before[1]):
            raise RuntimeError("probe failed")
    assert _flags() == before


# --- on a GPU ----------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_on_a_gpu_every_cuda_case_runs_and_flags_survive() -> None:
    before = _flags()
    records = [run_case(c) for c in registry.iter_cases(cuda_probes(), (17,))]
    assert _flags() == before
    bad = [(r["probe_key"], r["params"], r["message"]) for r in records if r["status"] != "ok"]
    assert bad == []
    generators = [r for r in records if r["kind"] == "generator"]
    assert all(r["repeat_identical"] for r in generators)
    assert all(r["state_fingerprint"] for r in generators)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_on_a_gpu_explicit_and_global_generators_agree() -> None:
    func = registry.get("torch.randn@cuda").func
    a = func(seed=17, generator="global", size=1000, dtype="float32").value
    b = func(seed=17, generator="explicit", size=1000, dtype="float32").value
    assert a.is_cuda and torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_on_a_gpu_deterministic_mode_makes_atomics_repeat_or_raise() -> None:
    torch.use_deterministic_algorithms(True)
    try:
        for key in ATOMICS:
            record = run_case(registry.get(key).cases()[0])
            assert record["status"] == "error" or record["repeat_identical"], (key, record["message"])
    finally:
        torch.use_deterministic_algorithms(False)
