"""nox sessions: tests, lint, benchmarks, and audits of this machine and of a version matrix.

``nox`` alone runs ``tests`` and ``lint``.  The audit sessions keep the two sides of the
design apart: each matrix cell is an environment holding only the libraries under test and
xxhash (built with uv, or venv + pip without it, under ``.nox/cells/<cell>`` and reused while
its requirements are unchanged), and the *host* (this project's own interpreter, with pandas
and pyarrow) runs ``python -m audit run --python <cell python>`` so the worker runs inside the
cell and the host writes the parquet file.

Environment variables:
  AUDIT_PYTHON, AUDIT_NUMPY, AUDIT_TORCH  space-separated versions of the matrix ('none' leaves
                                          a library out); defaults in audit/matrix.py
  AUDIT_RESULTS                           results directory or URL (default results/runs)
  AUDIT_HOST_PYTHON                       the host interpreter (default .venv's, else nox's own)
  AUDIT_FIND_LINKS                        extra wheel directories (e.g. /opt/wheels), space-separated
  AUDIT_TORCH_INDEX                       extra index for torch (e.g. PyTorch's CPU-only index)

A failing session does not stop the others: nox runs every selected session and reports the
failures at the end (only ``--stop-on-first-error`` / ``-x`` stops early), so one cell whose
install fails is reported while the other cells are still audited.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
import time
from typing import List, Optional

import nox

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)

from audit.errors import UsageError  # noqa: E402
from audit.runner import matrix  # noqa: E402  (pure; imports nothing heavy)

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # never fetch interpreters: use this machine's

RESULTS = os.environ.get("AUDIT_RESULTS", os.path.join("results", "runs"))
CELLS_DIR = os.path.join(ROOT, ".nox", "cells")
BIN = "Scripts" if sys.platform == "win32" else "bin"
EXE = ".exe" if sys.platform == "win32" else ""


# --------------------------------------------------------------------------- interpreters


def _pyenv_versions() -> List[str]:
    """Full versions (3.11.7) that pyenv has installed, if pyenv is here."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    folder = os.path.join(root, "versions")
    if not os.path.isdir(folder):
        return []
    return sorted(v for v in os.listdir(folder) if re.match(r"^\d+\.\d+\.\d+$", v))


def _export_pyenv() -> None:
    """Let nox's and uv's own discovery see every pyenv interpreter (via its shims)."""
    versions = _pyenv_versions()
    if versions and "PYENV_VERSION" not in os.environ:
        newest_first = sorted(versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
        os.environ["PYENV_VERSION"] = ":".join(newest_first)


_export_pyenv()


def find_python(version: str) -> Optional[str]:
    """An interpreter for ``version`` (3.11): pyenv's, then python3.11 on PATH, then nox's own."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    full = matrix.pick_interpreter(version, _pyenv_versions())
    if full:
        candidate = os.path.join(root, "versions", full, "bin", "python")
        if os.path.exists(candidate):
            return candidate
    on_path = shutil.which(f"python{version}")
    if on_path:
        return on_path
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    return None


def host_python() -> str:
    """The interpreter that runs the audit CLI: it needs pandas and pyarrow."""
    explicit = os.environ.get("AUDIT_HOST_PYTHON")
    if explicit:
        return explicit
    project = os.path.join(ROOT, ".venv", BIN, "python" + EXE)
    return project if os.path.exists(project) else sys.executable


def _uv() -> Optional[str]:
    return shutil.which("uv") or next(
        (p for p in [os.path.join(os.path.dirname(sys.executable), "uv" + EXE)] if os.path.exists(p)), None)


def _index_options() -> List[str]:
    options: List[str] = []
    for folder in os.environ.get("AUDIT_FIND_LINKS", "").split():
        options += ["--find-links", folder]
    if os.environ.get("AUDIT_TORCH_INDEX"):
        options += ["--extra-index-url", os.environ["AUDIT_TORCH_INDEX"]]
    return options


# --------------------------------------------------------------------------- cells


def build_cell(session: nox.Session, cell: matrix.Cell) -> str:
    """The cell's interpreter, building its environment unless an identical one exists."""
    interpreter = find_python(cell.python)
    if interpreter is None:
        session.skip(f"no Python {cell.python} on this machine (pyenv install {cell.python}, or put python"
                     f"{cell.python} on PATH)")
    location = os.path.join(CELLS_DIR, cell.name)
    python = os.path.join(location, BIN, "python" + EXE)
    marker = os.path.join(location, ".audit-cell.json")
    wanted = {"requirements": cell.requirements, "interpreter": interpreter, "index": _index_options()}
    if os.path.exists(python) and os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == wanted:
                session.log(f"reusing {location}")
                return python
    start = time.perf_counter()
    shutil.rmtree(location, ignore_errors=True)
    uv = _uv()
    if uv:
        session.run(uv, "venv", "--quiet", "--python", interpreter, location, external=True)
        session.run(uv, "pip", "install", "--python", python, *_index_options(), *cell.requirements, external=True)
    else:
        session.run(interpreter, "-m", "venv", location, external=True)
        session.run(python, "-m", "pip", "install", "--quiet", *_index_options(), *cell.requirements, external=True)
    with open(marker, "w", encoding="utf-8") as f:
        json.dump(wanted, f)
    session.log(f"built {cell.name} in {time.perf_counter() - start:.0f} s")
    return python


def audit_cell(session: nox.Session, python: str, results: str, *extra: str) -> str:
    """Run the catalogue in ``python``'s environment from the host; return the run file."""
    start = time.perf_counter()
    out = session.run(host_python(), "-m", "audit", "run", "--python", python, "--results", results, "--quiet",
                      *extra, external=True, silent=True)
    text = str(out or "")
    print(text, end="")
    session.log(f"audited in {time.perf_counter() - start:.0f} s")
    written = [line.split(" ", 1)[1].strip() for line in text.splitlines() if line.startswith("wrote ")]
    if not written:
        session.error("the audit wrote no run file")
    return written[-1]


def _cells() -> List[object]:
    """The matrix as nox parameters; a bad override becomes one session that says why."""
    try:
        return [nox.param(cell, id=cell.name) for cell in matrix.from_environ(os.environ)]
    except UsageError as exc:
        return [nox.param(str(exc), id="invalid")]


# --------------------------------------------------------------------------- sessions


def _install_project(session: nox.Session) -> None:
    session.install(*_index_options(), "-e", ".[test]")


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite (slow and gpu tests deselected by pyproject)."""
    _install_project(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy, as CI runs them."""
    session.install("ruff", "mypy", "pandas-stubs", "types-toml")
    session.run("ruff", "check", "audit", "tests", "scripts", "noxfile.py")
    session.run("mypy", "audit", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Every scripts/bench_*.py, one after another."""
    scripts = sorted(glob.glob(os.path.join(ROOT, "scripts", "bench_*.py")))
    if not scripts:
        session.skip("no scripts/bench_*.py yet")
    _install_project(session)
    for script in scripts:
        session.run("python", script, *session.posargs)


@nox.session(venv_backend="none")
def audit(session: nox.Session) -> None:
    """This machine, this environment: one run file in AUDIT_RESULTS."""
    session.run(host_python(), "-m", "audit", "run", "--results", RESULTS, *session.posargs, external=True)


@nox.session(name="matrix", venv_backend="none", default=False)
@nox.parametrize("cell", _cells())
def matrix_cell(session: nox.Session, cell: object) -> None:
    """One (python, numpy, torch) cell: build or reuse its environment, audit it from the host."""
    if isinstance(cell, str):
        session.error(cell)
    assert isinstance(cell, matrix.Cell)
    if cell.skip:
        session.skip(cell.skip)
    python = build_cell(session, cell)
    audit_cell(session, python, RESULTS, *session.posargs)


@nox.session(venv_backend="none", default=False)
def compare(session: nox.Session) -> None:
    """Compare everything in AUDIT_RESULTS; write report.md and report.html to reports/ beside it."""
    reports = os.path.join(os.path.dirname(os.path.abspath(RESULTS.rstrip("/"))), "reports")
    os.makedirs(reports, exist_ok=True)
    html, markdown = os.path.join(reports, "report.html"), os.path.join(reports, "report.md")
    extra = ["--expectations", "results/expectations.txt"] if os.path.exists("results/expectations.txt") else []
    with open(markdown, "w", encoding="utf-8") as f:
        session.run(host_python(), "-m", "audit", "compare", RESULTS, *extra, "--markdown", "--html", html,
                    *session.posargs, external=True, stdout=f, success_codes=[0, 1, 3])
    session.log(f"wrote {markdown} and {html}")


@nox.session(venv_backend="none", default=False)
def upgrade(session: nox.Session) -> None:
    """Before bumping a library: ``nox -s upgrade -- torch 2.4.1 2.13.0`` shows which streams change.

    Arguments after the three go to ``audit run`` (e.g. ``--probes-from my_probes.py``).
    """
    try:
        plan = matrix.parse_upgrade(session.posargs[:3], os.environ)
    except UsageError as exc:
        session.error(str(exc))
    name = f"{plan.library}-{getattr(plan.old, plan.library)}-to-{getattr(plan.new, plan.library)}"
    results = os.path.join(RESULTS, "upgrade", name)
    runs = [audit_cell(session, build_cell(session, cell), results, *session.posargs[3:])
            for cell in (plan.old, plan.new)]
    print("\n$ python -m audit compare --upgrade " + plan.field + " " + " ".join(runs))
    session.run(host_python(), "-m", "audit", "compare", "--upgrade", plan.field, *runs, external=True,
                success_codes=[0, 3])  # --upgrade informs: 0, or 3 when input files were skipped


@nox.session(default=False)
def slow(session: nox.Session) -> None:
    """Tests that build environments or run long (pytest -m slow)."""
    _install_project(session)
    session.install("uv")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """Tests that need a CUDA device (pytest -m gpu)."""
    _install_project(session)
    session.run("pytest", "-m", "gpu", *session.posargs)
