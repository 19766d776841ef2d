"""The worker: requirement checks, statuses, state restoration, the JSON-lines protocol."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np

from audit import registry
from audit.probe_api import Output, Unsupported, probe
from audit.runner.supervisor import SOURCE_ROOT
from audit.worker.execute import parse_version, run_case, unmet_requirement
from audit.worker.records import Status


def only_case(key: str) -> registry.Case:
    return registry.get(key).cases()[0]


def test_parse_version() -> None:
    assert parse_version("2.4.1+cu121") == (2, 4, 1)
    assert parse_version("1.26.0rc1") == (1, 26, 0)
    assert parse_version("2.13.0") > parse_version("2.4.1")


def test_ok_record_has_fingerprint_sample_and_state(empty_registry: None) -> None:
    @probe("t.ok", grid={"seed": [3]})
    def ok(seed: int) -> Output:
        rng = random.Random(seed)
        return Output([rng.random() for _ in range(20)], rng.getstate())

    rec = run_case(only_case("t.ok"))
    assert rec["status"] == Status.OK.value
    assert len(rec["fingerprint"]) == 32 and rec["dtype"] == "float64" and rec["shape"] == "[20]"
    assert len(json.loads(rec["sample_index"])) == 16 and len(rec["sample"]) == 16 * 16
    assert rec["state_fingerprint"] and rec["repeat_identical"] is True
    assert rec["seed"] == 3 and rec["params"] == '{"seed":3}'


def test_unsupported_error_and_missing_library(empty_registry: None) -> None:
    probe("t.unsup")(lambda: (_ for _ in ()).throw(Unsupported("seed out of range")))
    probe("t.attr")(lambda: np.no_such_function())
    probe("t.err")(lambda: 1 / 0)
    probe("t.lib", library="surely_not_installed_lib")(lambda: 0)
    probe("t.newer", library="numpy", min_version="999.0")(lambda: 0)
    probe("t.cuda", device="cuda")(lambda: 0)
    recs = {k: run_case(only_case(k)) for k in registry.all_probes()}
    assert recs["t.unsup"]["status"] == "unsupported" and recs["t.unsup"]["message"] == "seed out of range"
    assert recs["t.attr"]["status"] == "unsupported" and "no_such_function" in recs["t.attr"]["message"]
    assert recs["t.err"]["status"] == "error" and recs["t.err"]["message"].startswith("ZeroDivisionError")
    assert recs["t.lib"]["message"] == "surely_not_installed_lib is not installed"
    assert "needs numpy >= 999.0" in recs["t.newer"]["message"]
    if not (sys.modules.get("torch") and sys.modules["torch"].cuda.is_available()):
        assert recs["t.cuda@cuda"]["message"] == "no CUDA device"


def test_run_to_run_disagreement_is_recorded(empty_registry: None) -> None:
    counter = iter(range(100))
    probe("t.flaky")(lambda: [next(counter)])
    assert run_case(only_case("t.flaky"))["repeat_identical"] is False


def test_global_generators_are_restored(empty_registry: None) -> None:
    @probe("t.seeds")
    def reseed() -> float:
        random.seed(1)
        np.random.seed(1)
        return random.random() + np.random.rand()

    random.seed(99)
    np.random.seed(99)
    py_state, np_state = random.getstate(), np.random.get_state()
    run_case(only_case("t.seeds"))
    assert random.getstate() == py_state
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(np.random.get_state(), np_state))


def test_unmet_python_requirement(empty_registry: None) -> None:
    probe("t.py", min_python=(99, 0))(lambda: 0)
    assert unmet_requirement(registry.get("t.py")) == "needs Python >= 99.0"


def test_protocol_keeps_probe_prints_off_the_channel() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "audit.worker", "--probe", "random.random", "--seed", "1", "--no-repeat"],
        capture_output=True, text=True, cwd=SOURCE_ROOT, timeout=120, check=True,
    )
    messages = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "header" and kinds[1] == "plan" and kinds[-1] == "end"
    assert kinds.count("start") == kinds.count("record") == messages[1]["cases"] > 0
    assert messages[0]["env"]["python_version"]


def test_a_probe_drawing_from_an_unseeded_global_generator_is_not_repeatable(empty_registry: None) -> None:
    probe("t.unseeded")(lambda: np.random.rand(4))
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    assert run_case(only_case("t.unseeded"))["repeat_identical"] is False
    assert np.array_equal(np.random.get_state()[1], before)  # and the global state is restored
