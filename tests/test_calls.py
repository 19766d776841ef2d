"""Library-call settings (audit/worker/calls.py): one registry on the worker side, named by the
sweep's call axes through ``RunSpec.calls`` and ``--set NAME=VALUE``; an unknown name fails
closed (the worker exits with one line, the run never goes on unset)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from audit.errors import UsageError
from audit.runner import sweep
from audit.runner.launch import worker_command
from audit.runner.spec import RunSpec
from audit.runner.supervisor import SOURCE_ROOT, Runner
from audit.worker import calls

# --------------------------------------------------------------------------- the registry


def test_parse_names_each_setting_once_and_refuses_what_it_does_not_know() -> None:
    assert calls.parse(["threads=2", "deterministic=on"]) == {"threads": "2", "deterministic": "on"}
    with pytest.raises(UsageError, match=r"unknown library setting 'nosuch'; known: .*threads"):
        calls.parse(["nosuch=1"])
    for text in ("threads", "threads=", "=2"):
        with pytest.raises(UsageError, match="expected NAME=VALUE"):
            calls.parse([text])
    with pytest.raises(UsageError, match="--set threads is given twice"):
        calls.parse(["threads=1", "threads=2"])


def test_a_name_registered_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="'threads' is registered twice"):
        calls.library_call("threads", "torch", "again")(lambda module, value: None)
    assert calls.registered()["threads"].meaning == "torch.set_num_threads"


def test_apply_makes_the_call_and_names_a_value_it_refuses() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        calls.apply({"threads": "1"})
        assert torch.get_num_threads() == 1
        with pytest.raises(UsageError, match=r"--set threads=0: torch.set_num_threads refused it"):
            calls.apply({"threads": "0"})
        with pytest.raises(UsageError, match=r"--set deterministic=maybe: .* is not on or off"):
            calls.apply({"deterministic": "maybe"})
    finally:
        torch.set_num_threads(before)


def test_a_setting_of_a_library_not_loaded_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run records no version of that library; the axis check says it cannot tell."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    calls.apply({"threads": "1"})  # nothing to set, nothing raised


# --------------------------------------------------------------------------- host and worker


def test_every_call_axis_names_a_registered_setting() -> None:
    named = [a.name for a in sweep.AXES.values() if a.apply is sweep.Apply.CALL]
    assert "threads" in named and "deterministic" in named
    assert set(named) <= set(calls.registered())


def test_the_runner_does_not_import_the_registry() -> None:
    """The host names a setting; the audited interpreter makes it (docs/architecture.md)."""
    for path in sorted((Path(SOURCE_ROOT) / "audit" / "runner").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert "audit.worker.calls" not in names, path.name


def test_the_spec_carries_calls_to_the_worker_command() -> None:
    spec = sweep.spec_for(RunSpec(), {"threads": "2", "deterministic": "off"})
    assert spec.calls == {"threads": "2", "deterministic": "off"}
    cmd = worker_command(spec, None)
    assert cmd[cmd.index("--set") :][:4] == ["--set", "threads=2", "--set", "deterministic=off"]


def test_the_digest_of_a_spec_without_new_calls_is_the_one_it_always_had() -> None:
    """Runs interrupted before ``calls`` replaced ``threads`` and ``deterministic`` still resume."""
    python = "/usr/bin/python3"
    assert RunSpec(python=python).digest() == "f34fcfb15ca676a2"
    old = RunSpec(python=python, calls={"threads": "2", "deterministic": "on"})
    assert old.digest() == "04329ce28abe3cba"
    assert RunSpec(python=python, calls={"threads": "2", "other": "on"}).digest() != old.digest()


def _worker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit.worker", "--probe", "random.random", "--seed", "0", "--no-repeat", *args],
        capture_output=True, text=True, cwd=SOURCE_ROOT, timeout=120,
    )


def _messages(done: subprocess.CompletedProcess[str]) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("mode", [(), ("--plan",)])
def test_an_unknown_setting_fails_closed_in_the_worker(mode: Any) -> None:
    done = _worker(*mode, "--set", "nosuch=1")
    assert done.returncode == 2
    (message,) = _messages(done)
    assert message["type"] == "error" and "unknown library setting 'nosuch'" in message["message"]


def test_the_old_flag_is_the_same_setting() -> None:
    pytest.importorskip("torch")
    done = _worker("--threads", "1")
    assert done.returncode == 0, done.stderr
    header = _messages(done)[0]
    assert header["type"] == "header" and header["env"]["num_threads"] == "1"


def test_the_runner_raises_the_refusal_as_a_usage_error(tmp_path: Path) -> None:
    spec = RunSpec(probes=["random.random"], seeds=[0], repeat=False, calls={"nosuch": "1"})
    with pytest.raises(UsageError, match="unknown library setting 'nosuch'"):
        Runner(spec, str(tmp_path)).execute()


def test_flush_denormal_is_made_and_recorded_by_the_worker() -> None:
    """The example axis end to end: --set flush_denormal=on shows in the header's process_state."""
    pytest.importorskip("torch")
    done = _worker("--set", "flush_denormal=on")
    assert done.returncode == 0, done.stderr
    env = _messages(done)[0]["env"]
    state = json.loads(env["process_state"] or "{}")
    if state.get("torch.flush_denormal") != "True":
        assert sweep.unhonoured({"flush_denormal": "on"}, env)  # a CPU that cannot flush says so
    else:
        assert sweep.unhonoured({"flush_denormal": "on"}, env) == []
