"""Every case starts from the same process state: settings a probe leaves changed are put
back and named; settings a probe module makes at import are the environment's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from audit import registry
from audit.compare import Verdict, compare_paths
from audit.probe_api import probe
from audit.runner.supervisor import SOURCE_ROOT
from audit.worker import process_state
from audit.worker.execute import run_case
from tests.compare_helpers import make_run, record, write


def only_case(key: str) -> registry.Case:
    return registry.get(key).cases()[0]


def _draw() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(8) * torch.tensor(1e-39)  # subnormal float32 results, in the default dtype


def test_a_probe_that_sets_the_default_dtype_does_not_change_the_next_probe(empty_registry: None) -> None:
    @probe("t.sets_dtype")
    def sets_dtype() -> list:
        torch.set_default_dtype(torch.float64)
        return [1.0]

    probe("t.draws")(_draw)
    alone = run_case(only_case("t.draws"))
    leaky = run_case(only_case("t.sets_dtype"))
    after = run_case(only_case("t.draws"))
    assert torch.get_default_dtype() == torch.float32
    assert (after["fingerprint"], after["dtype"]) == (alone["fingerprint"], alone["dtype"]) == \
        (after["fingerprint"], "float32")
    assert leaky["status"] == "ok" and leaky["repeat_identical"] is True
    assert "torch.default_dtype: torch.float64, was torch.float32" in leaky["message"]
    assert after["message"] is None


def test_flush_denormal_thread_and_numpy_settings_are_restored_and_named(empty_registry: None) -> None:
    @probe("t.leaks")
    def leaks() -> list:
        torch.set_flush_denormal(True)
        torch.set_float32_matmul_precision("medium")
        torch.backends.mkldnn.enabled = False
        np.seterr(under="raise")
        os.environ["OMP_SCHEDULE"] = "dynamic"
        os.environ["MY_OWN_VARIABLE"] = "1"  # restored, but not one the libraries read: unnamed
        torch.set_grad_enabled(False)
        return [1.0]

    before_err = np.geterr()
    rec = run_case(only_case("t.leaks"))
    for name in ("torch.flush_denormal: True, was False", "torch.float32_matmul_precision: medium, was highest",
                 "torch.backends.mkldnn.enabled: False, was True", "numpy.seterr:",
                 "os.environ['OMP_SCHEDULE']: dynamic, was unset", "torch.grad_enabled: False, was True"):
        assert name in rec["message"], (name, rec["message"])
    assert rec["status"] == "ok"
    assert not process_state.flush_denormal() and np.geterr() == before_err
    assert torch.get_float32_matmul_precision() == "highest" and torch.backends.mkldnn.enabled
    assert torch.is_grad_enabled() and "OMP_SCHEDULE" not in os.environ and "MY_OWN_VARIABLE" not in os.environ
    assert "MY_OWN_VARIABLE" not in rec["message"]


def test_each_execution_starts_from_the_same_state(empty_registry: None) -> None:
    """A probe that reads a setting and then changes it sees the same value every execution."""
    @probe("t.reads_then_sets")
    def reads_then_sets() -> list:
        was = str(torch.get_default_dtype())
        torch.set_default_dtype(torch.float64)
        return [was]

    rec = run_case(only_case("t.reads_then_sets"))
    assert rec["repeat_identical"] is True and "torch.default_dtype" in rec["message"]


def test_a_probe_that_fails_after_changing_state_is_restored_too(empty_registry: None) -> None:
    @probe("t.fails")
    def fails() -> list:
        torch.set_default_dtype(torch.float64)
        raise ValueError("broken")

    rec = run_case(only_case("t.fails"))
    assert rec["status"] == "error" and "torch.default_dtype" in rec["message"]
    assert torch.get_default_dtype() == torch.float32


MODULE = '''
import torch
from audit.probe_api import probe

torch.set_default_dtype(torch.float64)
torch.set_flush_denormal(True)


@probe("mine.draw")
def draw():
    torch.manual_seed(0)
    return torch.randn(4)
'''


def test_state_a_module_sets_at_import_is_recorded_in_the_environment(tmp_path: Path) -> None:
    """It applies to every case (the module's probe draws float64) and is an environment field."""
    path = tmp_path / "mine.py"
    path.write_text(MODULE)
    code = ("import json, sys; from audit.worker import main; from audit.worker.environment import capture\n"
            "main.import_libraries(); main.load_catalogue((), [sys.argv[1]])\n"
            "from audit.worker.execute import run_case; from audit import registry\n"
            "print(json.dumps([capture()['process_state'], run_case(registry.get('mine.draw').cases()[0])['dtype']]))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], env={**os.environ, "PYTHONPATH": SOURCE_ROOT},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    state, dtype = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads(state) == {"torch.default_dtype": "torch.float64", "torch.flush_denormal": "True"}
    assert dtype == "float64"


def test_import_time_state_is_an_environment_field_to_compare(tmp_path: Path) -> None:
    """Two runs that differ only in what a module set at import: divergent by that setting,
    never nondeterministic."""
    p = {"seed": 0}
    f64 = '{"torch.default_dtype":"torch.float64"}'
    write([make_run("a", "2026-01-01T00:00:00.000000Z", {}, [record("p", p, "x")]),
           make_run("b", "2026-01-02T00:00:00.000000Z", {"process_state": f64}, [record("p", p, "y")])],
          str(tmp_path))
    f = compare_paths([str(tmp_path)]).findings[0]
    assert f.verdict == Verdict.DIVERGENT and f.axes == ["torch.default_dtype"]


def test_what_cannot_be_restored_is_said() -> None:
    saved = [(process_state.Setting("x", lambda: 2, None), 1)]
    assert process_state._restore(saved) == ["x: 2, was 1 (not restorable: later cases run with it)"]
