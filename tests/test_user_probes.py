"""User probes (audit/user_probes.py, the worker's --plan, the runner): from a file, a
module, AUDIT_PROBES and entry points; each mistake one line and exit 2; the host needs
neither the module nor its libraries; the committed example runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pandas as pd
import pytest

from audit import registry, user_probes
from audit.errors import UsageError
from audit.runner.spec import RunSpec
from audit.runner.supervisor import SOURCE_ROOT, Runner

EXAMPLE = os.path.join(SOURCE_ROOT, "examples", "my_probes.py")

GOOD = '''
from audit.probe_api import probe

@probe("userland.double", grid={"x": [1, 2]})
def double(x):
    return [x * 2]
'''


@pytest.fixture
def catalogue() -> Iterator[None]:
    """The real catalogue loaded; whatever a test registers is gone afterwards."""
    import audit.probes  # noqa: F401

    saved = registry.snapshot()
    saved_modules = set(sys.modules)
    saved_path = list(sys.path)
    try:
        yield
    finally:
        registry.restore(saved)
        for name in set(sys.modules) - saved_modules:
            del sys.modules[name]
        sys.path[:] = saved_path


def _write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- resolve (host)


def test_resolve_makes_paths_absolute_adds_the_environment_and_drops_duplicates(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", GOOD)
    got = user_probes.resolve(["a.py", "pkg.mod"], {"AUDIT_PROBES": " pkg.mod  a.py other.mod "}, str(tmp_path))
    assert got == [str(tmp_path / "a.py"), "pkg.mod", "other.mod"]


@pytest.mark.parametrize("given, message", [
    ("missing.py", "probe file 'missing.py' does not exist"),
    ("sub/", "probe file 'sub/' is a directory, not a .py file"),
    ("not a module", "neither a .py file nor a dotted module name"),
])
def test_resolve_refuses_what_cannot_be_loaded(tmp_path: Path, given: str, message: str) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(UsageError, match=message):
        user_probes.resolve([given], {}, str(tmp_path))


# --------------------------------------------------------------------------- load (worker)


def test_a_file_registers_its_probes_and_may_import_its_neighbours(catalogue: None, tmp_path: Path) -> None:
    _write(tmp_path, "helpers.py", "FACTOR = 3\n")
    path = _write(tmp_path, "mine.py", GOOD.replace("x * 2", "x * __import__('helpers').FACTOR"))
    assert user_probes.load([path], entry_points=False) == {path: ["userland.double"]}
    cases = registry.get("userland.double").cases()
    assert [c.probe.func(**c.params) for c in cases] == [[3], [6]]


@pytest.mark.parametrize("text, message", [
    ("from audit.probe_api import probe\n\nx = y + 1\n",
     "cannot load probes from {path}: NameError: name 'y' is not defined (bad.py:3)"),
    ("def f(:\n", "cannot load probes from {path}: SyntaxError: invalid syntax (bad.py:1)"),
    ("import no_such_dependency_xyz\n",
     "cannot load probes from {path}: ModuleNotFoundError: No module named 'no_such_dependency_xyz' (bad.py:1)"),
    ("X = 1\n", "{path} registers no probe: decorate its functions with @probe from audit.probe_api"),
    ("from audit.probe_api import probe\n@probe('torch.randn')\ndef f():\n    return 1\n",
     "{path}: probe 'torch.randn' collides with a catalogue probe of the same key (audit.probes.torch_rng)"),
])
def test_each_mistake_is_one_line(catalogue: None, tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "bad.py", text)
    with pytest.raises(UsageError) as caught:
        user_probes.load([path], entry_points=False)
    assert str(caught.value).startswith(message.format(path=path))
    assert "\n" not in str(caught.value)


def test_two_user_files_with_one_key_collide(catalogue: None, tmp_path: Path) -> None:
    first, second = _write(tmp_path, "first.py", GOOD), _write(tmp_path, "second.py", GOOD)
    with pytest.raises(UsageError, match=r"second.py: probe 'userland.double' collides with a probe of the "
                                         r"same key \(audit_user_probes_first_"):
        user_probes.load([first, second], entry_points=False)


def test_a_module_is_imported_by_name(catalogue: None, tmp_path: Path) -> None:
    package = tmp_path / "userpkg"
    package.mkdir()
    _write(package, "__init__.py", "")
    _write(package, "probes.py", GOOD)
    _write(package, "broken.py", "import json\njson.loads('{')\n")
    sys.path.insert(0, str(tmp_path))
    assert user_probes.load(["userpkg.probes"], entry_points=False) == {"userpkg.probes": ["userland.double"]}
    with pytest.raises(UsageError, match=r"probe module 'userpkg.nothere' is not importable by "):
        user_probes.load(["userpkg.nothere"], entry_points=False)
    with pytest.raises(UsageError, match=r"from userpkg.broken: JSONDecodeError: .* \(broken.py:2\)"):
        user_probes.load(["userpkg.broken"], entry_points=False)


def _fake_distribution(folder: Path, module: str) -> None:
    """An installed package, as importlib.metadata sees one: a dist-info with an entry point."""
    info = folder / "userland_probes-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: userland-probes\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{user_probes.GROUP}]\nuserland = {module}\n")


def test_installed_entry_points_are_loaded(catalogue: None, tmp_path: Path) -> None:
    _write(tmp_path, "userland_probes.py", GOOD)
    _fake_distribution(tmp_path, "userland_probes")
    sys.path.insert(0, str(tmp_path))
    assert ("userland", "userland_probes") in user_probes.installed()
    loaded = user_probes.load([])
    assert loaded["userland_probes"] == ["userland.double"]


# --------------------------------------------------------------------------- through the CLI and the runner


def _cli(*args: str, cwd: str = SOURCE_ROOT, env: Any = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": SOURCE_ROOT, **(env or {})}
    return subprocess.run([sys.executable, "-m", "audit", *args], cwd=cwd, text=True, capture_output=True,
                          timeout=300, env=environ)


@pytest.mark.parametrize("name, text, message", [
    ("missing", None, "error: probe file 'nothere.py' does not exist"),
    ("import error", "x = y\n", "NameError: name 'y' is not defined (nothere.py:1)"),
    ("collision", "from audit.probe_api import probe\n@probe('random.random')\ndef f():\n    return 1\n",
     "probe 'random.random' collides with a catalogue probe"),
    ("nothing", "X = 1\n", "registers no probe"),
])
def test_cli_mistakes_exit_2_with_one_line(tmp_path: Path, name: str, text: Any, message: str) -> None:
    if text is not None:
        _write(tmp_path, "nothere.py", text)
    done = _cli("run", "-q", "--results", str(tmp_path / "results"), "--probes-from", "nothere.py", cwd=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "results").exists()


def test_the_example_runs_from_the_environment_variable(tmp_path: Path) -> None:
    done = _cli("run", "-q", "--results", str(tmp_path), "--probe", "myproject.*", "--seed", "0", "--no-repeat",
                env={"AUDIT_PROBES": "examples/my_probes.py"})
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(next(tmp_path.glob("*.parquet")))
    assert sorted(frame["probe"]) == ["myproject.predict", "myproject.predict", "myproject.train_step"]
    assert set(frame["status"]) == {"ok"}
    trace = frame.set_index("probe").loc["myproject.train_step", "trace"]
    assert any(op["op"] == "aten.native_layer_norm.default" and op["module"] == "1" for op in trace)


def _results(path: str) -> Dict[str, Any]:
    frame = pd.read_parquet(path)
    return dict(zip(frame["probe"], zip(frame["status"], frame["message"])))


def test_the_host_needs_neither_the_module_nor_its_libraries(tmp_path: Path) -> None:
    """Both live only on the worker's path (the audited interpreter's, as with --python)."""
    hidden = tmp_path / "audited-only"
    hidden.mkdir()
    _write(hidden, "secret_dependency.py", "VALUE = 7\n")
    uses_it = GOOD.replace("x * 2", "x * secret_dependency.VALUE")
    _write(hidden, "secret_probes.py", "import secret_dependency\n" + uses_it)
    file_probes = _write(tmp_path, "needs_dependency.py",
                         "import secret_dependency\nfrom audit.probe_api import probe\n\n"
                         "@probe('userland.fails')\ndef fails():\n    raise ValueError('broken on purpose')\n")
    with pytest.raises(ImportError):
        __import__("secret_dependency")
    spec = RunSpec(probe_sources=["secret_probes", file_probes], env={"PYTHONPATH": str(hidden)}, repeat=False,
                   probes=["userland.*"])
    runner = Runner(spec, str(tmp_path / "results"))
    assert {c["probe"] for c in runner.cases.values()} == {"userland.double", "userland.fails"}
    outcome = runner.execute()
    assert outcome.counts == {"ok": 2, "error": 1}
    results = _results(str(outcome.path))
    assert results["userland.fails"] == ("error", "ValueError: broken on purpose (at needs_dependency.py:6)")
    assert "secret_dependency" not in sys.modules


def test_a_glob_that_matches_only_user_probes_is_checked_where_they_load(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.py", GOOD)
    with pytest.raises(UsageError, match="no probe matches 'nomatch.*'"):
        Runner(RunSpec(probe_sources=[path], probes=["nomatch.*"]), str(tmp_path))


@pytest.mark.slow
def test_the_example_in_a_thread_sweep_names_its_first_divergent_op(tmp_path: Path) -> None:
    from audit.compare.trace import first_divergence

    done = _cli("sweep", "-q", "--results", str(tmp_path), "--axis", "threads=1,2", "--probes-from", EXAMPLE,
                "--probe", "myproject.train_step", "--seed", "0", "--no-repeat")
    assert done.returncode in (0, 1), done.stderr
    one, two = (pd.read_parquet(p) for p in sorted(tmp_path.glob("*.parquet")))
    found = first_divergence(one["trace"].iloc[0], two["trace"].iloc[0])
    if found is None:
        pytest.skip("this torch trains the example bit-identically on 1 and 2 threads")
    assert done.returncode == 1 and found.inputs_identical


MYTEAM = '''
from audit.probe_api import probe

@probe("myteam.hashed", grid={"word": ["determinism", "audit"]}, family="myteam")
def hashed(word):
    return [hash(word) & 0xFFFFFFFF]
'''


def test_a_declared_family_reaches_the_report_without_the_probe_file(tmp_path: Path) -> None:
    """family= travels in the run files: compare groups the probe under it though the host never
    imports the file (it is gone by then).  The probe's hash() follows PYTHONHASHSEED."""
    path = _write(tmp_path, "myprobes.py", MYTEAM)
    results = tmp_path / "results"
    done = _cli("sweep", "-q", "--results", str(results), "--axis", "PYTHONHASHSEED=0,1", "--probes-from", path,
                "--no-repeat")
    assert done.returncode == 1, done.stderr
    os.remove(path)
    frame = pd.concat([pd.read_parquet(p) for p in results.glob("*.parquet")])
    assert len(frame) == 4 and set(frame["family"]) == {"myteam"}
    text = _cli("compare", str(results))
    assert text.returncode == 1, text.stderr
    (line,) = [line for line in text.stdout.splitlines() if "myteam.hashed" in line]
    assert line.split()[:4] == ["myteam.hashed", "(myteam)", "all", "2"]
    summary = json.loads(_cli("compare", "--json", str(results)).stdout)["summary"]
    assert [(s["probe"], s["family"]) for s in summary] == [("myteam.hashed", "myteam")]


def test_the_docs_show_the_committed_example_whole() -> None:
    with open(os.path.join(SOURCE_ROOT, "docs", "own-probes.md"), encoding="utf-8") as f:
        doc = f.read()
    with open(EXAMPLE, encoding="utf-8") as f:
        assert "```python\n" + f.read() + "```" in doc


def test_list_shows_user_probes(tmp_path: Path) -> None:
    done = _cli("list", "--probes-from", EXAMPLE, "--probe", "myproject.*")
    assert done.returncode == 0, done.stderr
    assert "myproject.train_step" in done.stdout and "trace" in done.stdout


def test_a_probe_that_disagrees_with_itself_is_flagged_and_measured(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(
        "import itertools\n"
        "from audit.probe_api import probe\n"
        "_calls = itertools.count()\n"
        "@probe('mine.flaky', grid={'seed': [0]})\n"
        "def flaky(seed):\n"
        "    values = [float(i) for i in range(64)]\n"
        "    values[40] += next(_calls)  # each execution moves one element\n"
        "    return values\n")
    done = _cli("run", "-q", "--results", str(tmp_path / "runs"), "--probes-from", str(tmp_path / "flaky.py"),
                "--probe", "mine.*")
    assert done.returncode == 0, done.stderr
    shown = _cli("compare", "--details", str(tmp_path / "runs"))
    assert shown.returncode == 1, shown.stderr
    assert "NONDETERMINISTIC  mine.flaky" in shown.stdout
    assert "note: a second execution gave fingerprint" in shown.stdout
    assert "1 of 1 blocks differ, the first at element 0" in " ".join(shown.stdout.split())  # lines wrap at 120


NANOGPT = os.path.join(SOURCE_ROOT, "tests", "fixtures", "nanogpt_probes.py")


def test_a_nanogpt_trace_probe_with_a_typo_fails_the_gate(tmp_path: Path) -> None:
    """Issue 18: ``model.confgure_optimizers()`` in a user's trace probe gave 'unsupported', exit 0."""
    done = _cli("run", "-q", "--results", str(tmp_path / "runs"), "--probes-from", NANOGPT, "--probe", "nanogpt.*",
                "--seed", "0", "--seed", "1", "--no-repeat")
    assert done.returncode == 0, done.stderr
    results = pd.read_parquet(next((tmp_path / "runs").glob("*.parquet")))
    with open(NANOGPT, encoding="utf-8") as f:
        line = 1 + f.read().splitlines().index(
            "    optimizer = model.confgure_optimizers(weight_decay=0.1, learning_rate=1e-3)")
    assert list(results["status"]) == ["error", "error"]
    assert set(results["message"]) == {"AttributeError: 'GPT' object has no attribute 'confgure_optimizers' "
                                       f"(at nanogpt_probes.py:{line})"}
    gate = _cli("compare", str(tmp_path / "runs"))
    assert gate.returncode == 1 and "2 error" in gate.stdout, gate.stdout


def test_the_nanogpt_probe_without_its_typo_runs(empty_registry: None, tmp_path: Path) -> None:
    """The same module with the typo fixed traces a training step: the error above is the typo's.
    (Only the user module is forgotten afterwards: torch's own lazily imported modules stay, as
    importing them twice registers their operators twice.)"""
    from audit.worker.execute import run_case

    with open(NANOGPT, encoding="utf-8") as f:
        fixed = f.read().replace("model.confgure_optimizers(", "model.configure_optimizers(")
    path = _write(tmp_path, "nanogpt_fixed.py", fixed)
    saved_path = list(sys.path)
    try:
        user_probes.load([path], entry_points=False)
        record = run_case(registry.get("nanogpt.train_step").cases(seeds=[0])[0], repeat=False)
    finally:
        sys.modules.pop(user_probes.module_name(path), None)
        sys.path[:] = saved_path
    assert record["status"] == "ok", record["message"]
    assert any(op["op"].startswith("aten.native_layer_norm") for op in record["trace"])


# --------------------------------------------------------------------------- your probes alone


def _probes_in(folder: Path) -> Any:
    return sorted(set(pd.read_parquet(next(folder.glob("*.parquet")))["probe"]))


@pytest.mark.parametrize("how", ["option", "environment"])
def test_probes_from_alone_runs_only_those_probes(tmp_path: Path, how: str) -> None:
    """Issue 18: 'run --probes-from F' ran the whole catalogue too (2 to 4 minutes)."""
    path = _write(tmp_path, "mine.py", GOOD)
    given = ["--probes-from", path] if how == "option" else []
    done = _cli("run", "-q", "--results", str(tmp_path / "runs"), "--no-repeat", *given,
                env={"AUDIT_PROBES": path} if how == "environment" else None)
    assert done.returncode == 0, done.stderr
    assert _probes_in(tmp_path / "runs") == ["userland.double"]
    assert done.stdout.startswith("2 cases (2 ok)")


def test_catalogue_adds_the_catalogue_back(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.py", GOOD)
    done = _cli("run", "-q", "--results", str(tmp_path / "runs"), "--no-repeat", "--probes-from", path,
                "--catalogue", "--probe", "userland.*", "--probe", "random.random")
    assert done.returncode == 0, done.stderr
    assert _probes_in(tmp_path / "runs") == ["random.random", "userland.double"]


def test_a_catalogue_glob_without_catalogue_says_how_to_add_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.py", GOOD)
    done = _cli("run", "-q", "--results", str(tmp_path / "runs"), "--probes-from", path, "--probe", "random.random")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no probe of --probes-from matches 'random.random'" in done.stderr and "--catalogue" in done.stderr


def test_list_agrees_with_run(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.py", GOOD)
    alone = _cli("list", "--probes-from", path)
    assert alone.returncode == 0 and alone.stdout.splitlines()[-1] == "1 probes, 2 cases (default seed panel)"
    both = _cli("list", "--probes-from", path, "--catalogue")
    assert "userland.double" in both.stdout and "random.random " in both.stdout


def test_the_resume_digest_knows_whether_the_catalogue_runs() -> None:
    assert RunSpec(probe_sources=["a.py"]).digest() != RunSpec(probe_sources=["a.py"], catalogue=False).digest()
