"""The invariance probes of the catalogue: every family runs, repeats and answers its question.

What each answers on this machine is measured, not pinned (it depends on the CPU, the thread
count and the library versions), except where the answer follows from how the library is
built: Generator.random is chunk-invariant, torch.randn is not (its vectorised tail), and a
correct state round trip reproduces the stream.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from typing import Any, Dict, List

import pytest

pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

from audit import registry  # noqa: E402
from audit.probe_api import Output, probe  # noqa: E402
from audit.probes import invariance_data, invariance_generators, invariance_ops, roundtrip  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402

FAMILIES = {"chunks": invariance_generators, "batch": invariance_ops, "layout": invariance_ops,
            "restore": roundtrip}


def _keys(suffix: str) -> List[str]:
    return [k for k, p in registry.all_probes().items() if p.invariance == suffix and p.device == "cpu"]


def _first_case(key: str, **params: Any) -> registry.Case:
    cases = registry.get(key).cases([17])
    return next(c for c in cases if all(c.params.get(k) == v for k, v in params.items()))


def test_every_invariance_probe_declares_a_known_parameter() -> None:
    catalogue = {k: p for k, p in registry.all_probes().items() if p.func.__module__.startswith("audit.probes")}
    kinds = {p.invariance for p in catalogue.values() if p.invariance}
    assert kinds == {"chunks", "batch", "layout", "num_workers", "restore"}
    for key, p in catalogue.items():
        if p.invariance:
            assert key.startswith(p.id + ":"), key  # keys are "<API>:<question>"


@pytest.mark.parametrize("invariance", sorted(FAMILIES))
def test_each_family_runs_repeats_and_records_an_answer(invariance: str) -> None:
    keys = _keys(invariance)
    assert keys
    for key in keys:
        rec = run_case(_first_case(key))
        assert rec["status"] == "ok", (key, rec.get("message"))
        assert rec["repeat_identical"] is True, key
        assert rec["invariance"] == invariance and isinstance(rec["invariant"], bool)
        assert (rec["variant_values"] is None) == rec["invariant"]


def test_chunks_cover_the_draw_exactly() -> None:
    for n in (0, 1, 7, 500):
        for length in (1, 3, 16, 500, 1000):
            sizes = [k for k in invariance_generators.chunked(lambda k: k, n, length)]
            assert sum(sizes) == n and all(0 < k <= length for k in sizes)
            assert all(k == length for k in sizes[:-1])


def test_a_uniform_stream_is_chunk_invariant_and_torch_randn_is_not() -> None:
    """numpy's Generator.random keeps no per-call state; torch.randn redraws its tail of 16."""
    rec = run_case(_first_case("numpy.random.Generator.random:chunks", bitgen="PCG64", dtype="float64"))
    assert rec["invariant"] is True
    rec = run_case(_first_case("torch.randn:chunks", generator="explicit", dtype="float32"))
    assert rec["invariant"] is False and 1 in json.loads(rec["variant_values"])


def test_batches_reassemble_the_full_batch() -> None:
    x = torch.arange(10.0).reshape(10, 1)
    for batch in (1, 3, 10):
        assert torch.equal(torch.cat(invariance_ops.by_batches(lambda r: r * 2, x, batch)), x * 2)


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_layouts_hold_the_same_values(layout: str) -> None:
    x = torch.arange(12.0).reshape(3, 4)
    y = invariance_ops.laid_out(torch, x, layout)
    assert torch.equal(x, y) and (layout == "contiguous") == y.is_contiguous()


def test_a_lossy_restore_is_caught(empty_registry: None) -> None:
    """The round-trip design can fail: drop the buffered 32-bit half and the tail changes."""
    import numpy as np

    @probe("t.lossy", grid={"seed": [3], "restore": [["none", "lossy"]]}, invariance="restore")
    def lossy(seed: int, restore: str) -> Output:
        rng = np.random.Generator(np.random.PCG64(seed))
        head = roundtrip.generator_draws(rng)  # ends on an odd number of float32: a half is buffered
        if restore == "lossy":
            state = rng.bit_generator.state
            rng.bit_generator.state = {**state, "has_uint32": 0, "uinteger": 0}
        return Output(np.concatenate([head, roundtrip.generator_draws(rng)]), rng.bit_generator.state)

    rec = run_case(registry.get("t.lossy").cases()[0])
    assert rec["invariant"] is False and rec["variant_values"] == '["lossy"]'


def _children() -> List[int]:
    """Process ids whose parent is this process (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_the_num_workers_probes_finish_and_leave_no_process_behind() -> None:
    before = set(_children())
    records: Dict[str, Any] = {}
    for key in ("torch.utils.data.DataLoader:order", "torch.utils.data.DataLoader:augmentation"):
        records[key] = run_case(_first_case(key, worker_init="seed_numpy_random"))
    assert set(_children()) <= before and not multiprocessing.active_children()
    order, augmentation = records.values()
    assert order["status"] == augmentation["status"] == "ok"
    assert order["repeat_identical"] and augmentation["repeat_identical"]
    assert order["invariant"] is True  # the sampler runs in the main process: workers cannot reorder


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_hanging_loader_worker_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that never delivers a batch makes the probe raise after the loader's timeout."""
    import time

    monkeypatch.setattr(invariance_data, "LOADER_TIMEOUT", 1.0)
    monkeypatch.setattr(invariance_data.AugmentedRange, "__getitem__", lambda self, i: time.sleep(3))
    before = set(_children())
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="timed out"):
        invariance_data.epoch(0, 1, "none")
    assert time.monotonic() - started < 20
    deadline = time.monotonic() + 10
    while set(_children()) - before and time.monotonic() < deadline:  # the worker is being shut down
        time.sleep(0.1)
    assert not set(_children()) - before
