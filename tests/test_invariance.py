"""Invariance cases: the worker mechanism, its columns, the registry's checks and size panels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from audit import registry
from audit.errors import RegistryError
from audit.probe_api import probe
from audit.runner.spec import RunSpec
from audit.runner.supervisor import Runner, worker_command
from audit.store.scan import read_runs
from audit.worker.execute import run_case
from audit.worker.fingerprint import fingerprint
from audit.worker.invariance import differing_values, invariance_fields
from audit.worker.main import cases_to_run


@pytest.fixture
def toys(empty_registry: None) -> Iterator[None]:
    """The test-only invariance probes, registered afresh in an empty registry."""
    sys.modules.pop("tests.invariance_probes", None)
    import tests.invariance_probes  # noqa: F401

    yield
    sys.modules.pop("tests.invariance_probes", None)


def _record(key: str) -> Dict[str, Any]:
    return run_case(registry.get(key).cases()[0])


def test_an_invariant_case_records_the_reference_result(toys: None) -> None:
    rec = _record("tests.invariance.holds")
    assert rec["status"] == "ok" and rec["repeat_identical"] is True
    assert rec["invariance"] == "chunks" and rec["invariant"] is True and rec["variant_values"] is None
    assert rec["fingerprint"] == fingerprint([50.0, 51.0, 52.0, 53.0, 54.0, 55.0]).digest


def test_a_variant_case_names_the_values_that_differ_from_the_first(toys: None) -> None:
    rec = _record("tests.invariance.breaks")
    assert rec["status"] == "ok" and rec["repeat_identical"] is True
    assert rec["invariant"] is False and json.loads(rec["variant_values"]) == [1, 2]
    assert rec["fingerprint"] == fingerprint([5.0, 3.0]).digest  # the reference value's (6) result


def test_an_ordinary_case_has_no_invariance_columns(empty_registry: None) -> None:
    probe("t.plain", grid={"seed": [1]})(lambda seed: [float(seed)])
    rec = _record("t.plain")
    assert "invariant" not in rec and "invariance" not in rec and "variant_values" not in rec


def test_the_repeat_check_covers_every_value_not_only_the_reference(empty_registry: None) -> None:
    calls: List[int] = []

    @probe("t.drifts", grid={"seed": [1], "batch": [[4, 2]]}, invariance="batch")
    def drifts(seed: int, batch: int) -> List[float]:
        calls.append(batch)
        return [float(seed), float(len(calls)) if batch == 2 else 0.0]  # only batch 2 moves

    rec = _record("t.drifts")
    assert rec["repeat_identical"] is False and calls == [4, 2, 4, 2]


def test_values_are_compared_bitwise_and_spelled_as_json() -> None:
    from audit.worker.execution import Execution
    from audit.worker.invariance import ValueResult

    def result(value: Any, output: Any) -> ValueResult:
        return ValueResult(value, Execution(fingerprint(output), None, 0.0, 0.0))

    results = [result("contiguous", [0.0]), result("transposed", [-0.0]), result("strided", [0.0])]
    assert differing_values(results) == ["transposed"]  # -0.0 is another bit pattern
    assert invariance_fields("layout", ["transposed"]) == {
        "invariance": "layout", "invariant": False, "variant_values": '["transposed"]'}
    assert invariance_fields("layout", [])["variant_values"] is None


@pytest.mark.parametrize("values", [[[1]], [[1, 1]], [3], ["abc"]])
def test_an_invariance_parameter_must_list_two_distinct_values(empty_registry: None, values: Any) -> None:
    with pytest.raises(RegistryError, match="at least two distinct values"):
        probe("t.bad", grid={"chunks": values}, invariance="chunks")(lambda chunks: 0)


def test_an_invariance_parameter_must_be_in_the_grid(empty_registry: None) -> None:
    with pytest.raises(RegistryError, match="not in its grid"):
        probe("t.bad", grid={"seed": [1]}, invariance="chunks")(lambda seed, chunks: 0)


# --- size panels -----------------------------------------------------------------------------

def test_size_panels_replace_grid_entries_and_are_opt_in(empty_registry: None) -> None:
    probe("t.sized", grid={"seed": registry.SEEDS, "n": [10]}, sizes={"large": {"n": [10**6, 10**7]}})(
        lambda seed, n: 0)
    probe("t.small", grid={"n": [10]})(lambda n: 0)
    sized, small = registry.get("t.sized"), registry.get("t.small")
    assert [c.params["n"] for c in sized.cases([1])] == [10]
    assert [c.params["n"] for c in sized.cases([1], (registry.Sizes.LARGE,))] == [10**6, 10**7]
    both = sized.cases([1, 2], registry.parse_sizes("default,large"))
    assert len(both) == 6 and len({c.key for c in both}) == 6
    assert small.cases([1], (registry.Sizes.LARGE,)) == []


def test_an_unknown_size_panel_is_refused(empty_registry: None) -> None:
    with pytest.raises(ValueError, match="default, large"):
        registry.parse_sizes("huge")
    with pytest.raises(RegistryError, match="size panel 'huge'"):
        probe("t.x", grid={"n": [1]}, sizes={"huge": {"n": [2]}})(lambda n: 0)


def test_the_catalogue_keeps_large_sizes_out_of_the_default_panel() -> None:
    import audit.probes  # noqa: F401

    default = {c.key: c for c in cases_to_run([], registry.DEFAULT_SEEDS)}
    large = {c.key: c for c in cases_to_run([], registry.DEFAULT_SEEDS, sizes=(registry.Sizes.LARGE,))}
    assert default and large and not set(default) & set(large)
    shapes = [c.params.get("shape") for c in large.values() if c.probe.id == "torch.nn.init.orthogonal_"]
    assert [1024, 1024] in shapes
    assert not any(c.params.get("shape") == [1024, 1024] for c in default.values())
    assert any(c.params.get("size") == 10_000_000 for c in large.values() if c.probe.id == "torch.sum")


def test_the_run_spec_carries_the_size_panels_to_the_worker() -> None:
    assert worker_command(RunSpec(), None)[-2:] == ["--sizes", "default"]
    cmd = worker_command(RunSpec(sizes=["default", "large"]), None)
    assert cmd[cmd.index("--sizes") + 1] == "default,large"
    assert RunSpec(sizes=["large"]).digest() != RunSpec().digest()  # --resume never mixes panels


# --- end to end through a worker ------------------------------------------------------------

@pytest.fixture
def toy_run(tmp_path: Path) -> Iterator[Any]:
    """A real run of the toy probes through a worker process, as a pandas frame."""
    saved = registry.snapshot()
    try:
        spec = RunSpec(probes=["tests.invariance.*"], modules=["tests.invariance_probes"])
        outcome = Runner(spec, str(tmp_path)).execute()
        frame, skipped = read_runs([outcome.path])
        assert not skipped
        yield frame.set_index("probe_key")
    finally:
        registry.restore(saved)
        sys.modules.pop("tests.invariance_probes", None)


def test_invariance_columns_reach_the_run_file(toy_run: Any) -> None:
    assert set(toy_run.index) == {"tests.invariance.holds", "tests.invariance.breaks", "tests.invariance.forks"}
    assert (toy_run["status"] == "ok").all() and toy_run["repeat_identical"].all()
    breaks, holds = toy_run.loc["tests.invariance.breaks"], toy_run.loc["tests.invariance.holds"]
    assert breaks["invariance"] == "chunks" and not breaks["invariant"] and breaks["variant_values"] == "[1,2]"
    assert holds["invariant"] and holds.isna()["variant_values"]
    assert str(toy_run["invariant"].dtype) in ("bool", "boolean", "object")


def test_a_forked_child_cannot_write_to_the_protocol(toy_run: Any) -> None:
    """The fork toy's child wrote a fake 'end' line to every descriptor; the host never saw it."""
    forks = toy_run.loc["tests.invariance.forks"]
    assert forks["status"] == "ok" and forks["invariant"]


def test_a_selection_without_a_case_in_the_size_panel_is_a_usage_error(tmp_path: Path) -> None:
    from audit.errors import UsageError

    with pytest.raises(UsageError, match="no case in size panel large"):
        Runner(RunSpec(probes=["random.*"], sizes=["large"]), str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_the_cli_lists_and_refuses_size_panels() -> None:
    import subprocess

    listed = subprocess.run([sys.executable, "-m", "audit", "list", "--sizes", "large", "--probe", "torch.matmul"],
                            capture_output=True, text=True, check=True)
    assert "torch.matmul " in listed.stdout and listed.stdout.splitlines()[-1].endswith("sizes large)")
    refused = subprocess.run([sys.executable, "-m", "audit", "run", "--sizes", "huge"], capture_output=True, text=True)
    assert refused.returncode == 2 and "size panel must be one or more of default, large" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_repeat_disagreement_is_measured_where_it_happened() -> None:
    """A probe whose second execution differs: the row says which sampled elements and blocks."""
    import numpy as np

    from audit.worker.execute import Execution, describe_disagreement
    from audit.worker.fingerprint import fingerprint

    a = np.arange(100_000, dtype=np.float32)
    b = a.copy()
    b[70_000] += 1  # in the fifth 64 KiB block (16384 float32 each)
    b[1] = np.nextafter(np.float32(1), np.float32(2))  # element 1 (sampled: the head), 1 ULP up
    first, again = (Execution(fingerprint(x), None, 0.0, 0.0) for x in (a, b))
    words = describe_disagreement(first, again)
    assert words.startswith(f"a second execution gave fingerprint {again.fingerprint.digest[:12]}")
    assert "1 of 16 sampled elements differ by up to 1 ULP" in words
    assert "2 of 7 blocks differ, the first at element 0" in words
    ints = np.arange(10, dtype=np.int64)
    moved = ints.copy()
    moved[3] = 99  # integers: counted, no ULP
    assert describe_disagreement(*(Execution(fingerprint(x), None, 0.0, 0.0) for x in (ints, moved))).endswith(
        ": 1 of 10 sampled elements differ, 1 of 1 blocks differ, the first at element 0")
    same = Execution(fingerprint(a), "state-2", 0.0, 0.0)
    assert describe_disagreement(Execution(fingerprint(a), "state-1", 0.0, 0.0), same) == \
        "a second execution gave the same output but another generator state"
