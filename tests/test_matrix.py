"""The version matrix: overrides from the environment, 'none', validation, compatibility
skipping and cell naming, all without building an environment."""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable, Dict, Iterator

import pytest

from audit.errors import UsageError
from audit.runner import matrix


def test_defaults_cover_two_torch_releases_and_numpy_1_and_2() -> None:
    cells = matrix.from_environ({})
    assert len({c.torch for c in cells}) >= 2
    assert {c.numpy.split(".")[0] for c in cells if c.numpy} >= {"1", "2"}
    assert all(c.skip is None for c in cells), [c.skip for c in cells]


def test_overrides_are_space_separated_and_none_leaves_a_library_out() -> None:
    env = {"AUDIT_PYTHON": "3.11 3.12", "AUDIT_NUMPY": "1.26.4  none", "AUDIT_TORCH": "none"}
    cells = matrix.from_environ(env)
    assert [c.name for c in cells] == ["py3.11-numpy1.26.4-notorch", "py3.11-nonumpy-notorch",
                                       "py3.12-numpy1.26.4-notorch", "py3.12-nonumpy-notorch"]
    assert cells[0].requirements == ["xxhash", "numpy==1.26.4"]
    assert cells[1].requirements == ["xxhash"]  # stdlib probes only: the random module


def test_a_blank_override_means_the_default() -> None:
    assert matrix.from_environ({"AUDIT_TORCH": "  "}) == matrix.from_environ({})


def test_cell_names_and_requirements() -> None:
    cell = matrix.Cell("3.11", "2.4.6", "2.13.0")
    assert cell.name == "py3.11-numpy2.4.6-torch2.13.0"
    assert cell.requirements == ["xxhash", "numpy==2.4.6", "torch==2.13.0"]
    assert "pandas" not in " ".join(cell.requirements) and "pyarrow" not in " ".join(cell.requirements)


@pytest.mark.parametrize(
    "var, value, fragment",
    [
        ("AUDIT_TORCH", "2.4", "needs a patch number"),
        ("AUDIT_TORCH", "two.four", "malformed"),
        ("AUDIT_TORCH", "2.4.1rc1", "malformed"),
        ("AUDIT_TORCH", "2.99.0", "unknown torch release 2.99.0"),
        ("AUDIT_TORCH", "1.13.1", "unknown torch release"),
        ("AUDIT_NUMPY", "1.18.5", "unknown numpy release"),
        ("AUDIT_NUMPY", "2.2.6 2.2.6", "listed twice"),
        ("AUDIT_PYTHON", "3.7", "not supported by the worker"),
        ("AUDIT_PYTHON", "none", "malformed"),
        ("AUDIT_PYTHON", "py3.11", "malformed"),
    ],
)
def test_bad_versions_are_one_clear_usage_error(var: str, value: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        matrix.from_environ({var: value})
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "python, numpy, torch, fragment",
    [
        ("3.13", "1.26.4", None, "numpy 1.26.4 has no wheels for Python 3.13"),
        ("3.9", "2.2.6", None, "numpy 2.2.6 has no wheels for Python 3.9"),
        ("3.12", None, "2.1.2", "torch 2.1.2 has no wheels for Python 3.12"),
        ("3.9", None, "2.13.0", "torch 2.13.0 has no wheels for Python 3.9"),
        ("3.11", "2.2.6", "2.1.2", "built against numpy 1.x"),
    ],
)
def test_impossible_cells_are_skipped_with_a_reason(python: str, numpy: Any, torch: Any, fragment: str) -> None:
    reason = matrix.incompatibility(python, numpy, torch)
    assert reason is not None and fragment in reason


@pytest.mark.parametrize(
    "python, numpy, torch",
    [("3.11", "1.26.4", "2.4.1"), ("3.12", "2.0.2", "2.3.1"), ("3.9", "1.26.4", "2.0.1"), ("3.13", "2.2.6", "2.5.1")],
)
def test_possible_cells_are_not_skipped(python: str, numpy: str, torch: str) -> None:
    assert matrix.incompatibility(python, numpy, torch) is None


def test_the_matrix_keeps_skipped_cells_so_reports_can_say_why() -> None:
    cells = matrix.from_environ({"AUDIT_PYTHON": "3.9 3.11", "AUDIT_NUMPY": "2.2.6", "AUDIT_TORCH": "2.4.1"})
    assert [(c.python, bool(c.skip)) for c in cells] == [("3.9", True), ("3.11", False)]


def test_pick_interpreter_takes_the_newest_matching_patch() -> None:
    installed = ["2.7.18", "3.11.2", "3.11.7", "3.1.0", "3.12.1", "3.11.10", "pypy3.10-7.3.12"]
    assert matrix.pick_interpreter("3.11", installed) == "3.11.10"
    assert matrix.pick_interpreter("3.1", installed) == "3.1.0"
    assert matrix.pick_interpreter("3.11.7", installed) == "3.11.7"
    assert matrix.pick_interpreter("3.13", installed) is None


def test_upgrade_picks_a_python_and_other_library_that_suit_both_ends() -> None:
    plan = matrix.parse_upgrade(["torch", "2.4.1", "2.13.0"], {})
    assert (plan.old.torch, plan.new.torch, plan.field) == ("2.4.1", "2.13.0", "torch_version")
    assert plan.old.numpy == plan.new.numpy and plan.old.python == plan.new.python
    assert plan.old.name != plan.new.name

    env = {"AUDIT_PYTHON": "3.9 3.12", "AUDIT_TORCH": "2.1.2 2.4.1"}
    plan = matrix.parse_upgrade(["numpy", "1.26.4", "2.2.6"], env)
    assert (plan.old.python, plan.new.torch) == ("3.12", "2.4.1")  # 3.9 lacks numpy 2.2; torch 2.1 lacks numpy 2


@pytest.mark.parametrize(
    "args, env, fragment",
    [
        ([], {}, "usage"),
        (["jax", "0.4.1", "0.4.2"], {}, "usage"),
        (["torch", "2.4.1"], {}, "usage"),
        (["torch", "2.4.1", "2.4.1"], {}, "the same"),
        (["torch", "2.4.1", "9.9.9"], {}, "unknown torch release"),
        (["torch", "2.1.2", "2.13.0"], {"AUDIT_PYTHON": "3.12"}, "suits both"),
    ],
)
def test_upgrade_usage_errors(args: list, env: Dict[str, str], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        matrix.parse_upgrade(args, env)


# --------------------------------------------------------------------------- noxfile


@pytest.fixture
def load_noxfile() -> Iterator[Callable[[], Any]]:
    """Import the noxfile without leaving its sessions or environment changes behind."""
    pytest.importorskip("nox")
    import nox.registry

    saved_sessions = dict(nox.registry._REGISTRY)
    saved_environ = dict(os.environ)

    def load() -> Any:
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "noxfile.py")
        spec = importlib.util.spec_from_file_location("noxfile_under_test", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        nox.registry._REGISTRY.clear()
        spec.loader.exec_module(module)
        return module

    yield load
    nox.registry._REGISTRY.clear()
    nox.registry._REGISTRY.update(saved_sessions)
    os.environ.clear()
    os.environ.update(saved_environ)


def test_noxfile_parametrises_one_matrix_session_per_cell(monkeypatch: pytest.MonkeyPatch, load_noxfile: Any) -> None:
    monkeypatch.setenv("AUDIT_PYTHON", "3.11")
    monkeypatch.setenv("AUDIT_NUMPY", "1.26.4 2.4.6")
    monkeypatch.setenv("AUDIT_TORCH", "none")
    ids = [p.id for p in load_noxfile()._cells()]
    assert ids == ["py3.11-numpy1.26.4-notorch", "py3.11-numpy2.4.6-notorch"]


def test_noxfile_turns_a_bad_override_into_one_failing_session(monkeypatch: pytest.MonkeyPatch,
                                                              load_noxfile: Any) -> None:
    monkeypatch.setenv("AUDIT_TORCH", "2.4")
    (param,) = load_noxfile()._cells()
    assert param.id == "invalid" and "patch number" in param.args[0]


def test_noxfile_defines_the_documented_sessions(load_noxfile: Any) -> None:
    import nox.registry

    load_noxfile()
    names = set(nox.registry.get())
    assert {"tests", "lint", "bench", "audit", "compare", "upgrade", "history", "slow", "gpu"} <= names
    assert any(name.startswith("matrix") for name in names)


def test_old_torch_cells_get_the_setuptools_a_pip_venv_would_have() -> None:
    """torch 2.0/2.1 import pkg_resources in their optimizers: without setuptools their optim
    probes would fail where a user's environment does not."""
    assert "setuptools<81" in matrix.Cell("3.11", "1.26.4", "2.1.2").requirements
    assert not any(r.startswith("setuptools") for r in matrix.Cell("3.11", "1.26.4", "2.2.2").requirements)
