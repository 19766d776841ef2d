"""The worker: requirement checks, statuses, state restoration, the JSON-lines protocol."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from audit import registry
from audit.probe_api import Output, Unsupported, probe, require, require_attr
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
    assert recs["t.attr"]["status"] == "error" and "no_such_function" in recs["t.attr"]["message"]
    assert recs["t.err"]["status"] == "error" and recs["t.err"]["message"].startswith("ZeroDivisionError")
    assert recs["t.lib"]["message"] == "surely_not_installed_lib is not installed"
    assert "needs numpy >= 999.0" in recs["t.newer"]["message"]
    if not (sys.modules.get("torch") and sys.modules["torch"].cuda.is_available()):
        assert recs["t.cuda@cuda"]["message"] == "no CUDA device"


def test_unsupported_only_for_a_declared_reason(empty_registry: None) -> None:
    """A typo in a probe body is an error naming the probe's line, never a missing API."""
    import torch

    @probe("t.typo", grid={"seed": [1]})
    def typo(seed: int) -> object:
        torch.manul_seed(seed)  # the typo of issue 18
        return torch.rand(3)

    class Model:
        def configure_optimizers(self) -> list:
            return [1.0]

    probe("t.method")(lambda: Model().confgure_optimizers())  # type: ignore[attr-defined]
    probe("t.import")(lambda: __import__("trch"))
    probe("t.from_import")(lambda: exec("from torch import no_such_name"))
    probe("t.not_implemented")(lambda: (_ for _ in ()).throw(NotImplementedError("later")))
    probe("t.declared")(lambda: require(hasattr(np, "no_such_function"), "numpy lacks no_such_function"))
    probe("t.attr_declared")(lambda: require_attr(np, "random.no_such_generator"))
    recs = {k: run_case(only_case(k)) for k in registry.all_probes()}
    typo_line = typo.__code__.co_firstlineno + 2
    assert recs["t.typo"]["status"] == "error"
    assert recs["t.typo"]["message"] == ("AttributeError: module 'torch' has no attribute 'manul_seed' "
                                         f"(at test_worker.py:{typo_line})")
    assert recs["t.method"]["status"] == "error" and "confgure_optimizers" in recs["t.method"]["message"]
    assert recs["t.import"]["status"] == "error" and "ModuleNotFoundError: No module named 'trch'" in \
        recs["t.import"]["message"]
    assert recs["t.from_import"]["status"] == "error" and "ImportError" in recs["t.from_import"]["message"]
    assert recs["t.not_implemented"]["status"] == "error"
    assert recs["t.declared"] == {**recs["t.declared"], "status": "unsupported",
                                  "message": "numpy lacks no_such_function"}
    assert recs["t.attr_declared"]["status"] == "unsupported" and "no_such_generator" in \
        recs["t.attr_declared"]["message"]


def test_a_library_under_test_that_is_not_installed_is_unsupported(empty_registry: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing a library under test that this interpreter lacks is the requirement it implies;
    the same import of a module that is not a library under test is a mistake."""
    from audit.worker import execute

    monkeypatch.setattr(execute, "LIBRARIES_UNDER_TEST", (*execute.LIBRARIES_UNDER_TEST, "surely_not_installed_lib"))
    probe("t.lib")(lambda: __import__("surely_not_installed_lib.sub"))
    probe("t.other")(lambda: __import__("another_missing_lib"))
    recs = {k: run_case(only_case(k)) for k in registry.all_probes()}
    assert recs["t.lib"]["status"] == "unsupported"
    assert recs["t.lib"]["message"] == "surely_not_installed_lib is not installed"
    assert recs["t.other"]["status"] == "error"


def test_a_probe_that_returns_nothing_is_an_error(empty_registry: None) -> None:
    @probe("t.none")
    def forgot() -> None:
        [1.0, 2.0].sort()

    probe("t.none_output")(lambda: Output(None, state=[1]))
    probe("t.zero")(lambda: 0)  # a falsy output is an output
    recs = {k: run_case(only_case(k)) for k in registry.all_probes()}
    for key in ("t.none", "t.none_output"):
        assert recs[key]["status"] == "error" and recs[key]["message"].startswith("returned nothing"), recs[key]
        assert "fingerprint" not in recs[key]
    assert "(at test_worker.py:" in recs["t.none"]["message"]
    assert recs["t.zero"]["status"] == "ok"


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
