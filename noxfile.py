"""nox sessions: tests, lint, benchmarks, and audits of this machine and of a version matrix.

``nox`` alone runs ``tests`` and ``lint``.  The audit sessions keep the two sides of the
design apart: each matrix cell is an environment holding only the libraries under test and
xxhash (built with uv, or venv + pip without it, under ``.nox/cells/<cell>`` and reused while
its requirements are unchanged), and the *host* (this project's own interpreter, with pandas
and pyarrow) runs ``python -m audit run --python <cell python>`` so the worker runs inside the
cell and the host writes the parquet file.

Environment variables:
  AUDIT_PYTHON, AUDIT_NUMPY, AUDIT_TORCH  space-separated versions of the matrix ('none' leaves
                                          a library out); defaults in audit/runner/matrix.py
  AUDIT_RESULTS                           results directory or URL (default results/runs for audit,
                                          results/matrix for matrix, compare and upgrade)
  AUDIT_HOST_PYTHON                       the host interpreter (default .venv's, else nox's own)
  AUDIT_FIND_LINKS                        extra wheel directories (e.g. /opt/wheels),
                                          space-separated
  AUDIT_TORCH_INDEX                       extra index for torch (e.g. PyTorch's CPU-only index)
  AUDIT_QEMU_CPU, AUDIT_PANDAS            arm64: the CPU classes audited (default neoverse-n1
                                          a64fx max-sve256) and the pandas of its root ('none'
                                          leaves it out; AUDIT_TORCH, AUDIT_NUMPY: one version)
  AUDIT_ARM64_DIR                         where the arm64 root lives (default .nox/arm64)

A failing session does not stop the others: nox runs every selected session and reports the
failures at the end (only ``--stop-on-first-error`` / ``-x`` stops early), so one cell whose
install fails is reported while the other cells are still audited.
"""

from __future__ import annotations

import glob
import itertools
import os
import sys
import time
from typing import List

import nox

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)

from audit.errors import UsageError  # noqa: E402
from audit.runner import cells, matrix  # noqa: E402  (import nothing heavy)

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
# Never fetch interpreters: use this machine's.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")

#: Where each session writes: ``audit`` beside ``python -m audit run`` (results/runs), the
#: version matrix and upgrade checks apart (results/matrix), so the new-hardware compare of
#: results/runs never picks them up.  ``AUDIT_RESULTS`` overrides both.
RESULTS = os.environ.get("AUDIT_RESULTS", os.path.join("results", "runs"))
MATRIX_RESULTS = os.environ.get("AUDIT_RESULTS", os.path.join("results", "matrix"))


# --------------------------------------------------------------------------- cells

cells.export_pyenv()
find_python = cells.find_python
host_python = cells.host_python
_index_options = cells.index_options


def build_cell(session: nox.Session, cell: matrix.Cell) -> str:
    """The cell's interpreter, building its environment unless an identical one exists
    (audit/runner/cells.py; shared with ``audit bisect`` and the history builder)."""
    try:
        return cells.build(
            cell, run=lambda args: session.run(*args, external=True), log=session.log
        )
    except cells.BuildError as exc:
        if cells.find_python(cell.python) is None:
            session.skip(str(exc))
        session.error(str(exc))
    raise AssertionError("unreachable")  # pragma: no cover - skip and error raise


def audit_in_session(session: nox.Session, python: str, results: str, *extra: str) -> str:
    """Run the catalogue in ``python``'s environment from the host; return the run file
    (the command and its answer are audit/runner/cells.py's, shared with ``audit bisect``)."""
    start = time.perf_counter()
    out = session.run(
        *cells.audit_command(python, results, extra, host_python()), external=True, silent=True
    )
    text = str(out or "")
    print(text, end="")
    session.log(f"audited in {time.perf_counter() - start:.0f} s")
    written = cells.written_run(text)
    if written is None:
        session.error("the audit wrote no run file")
    return str(written)


def _cells() -> List[object]:
    """The matrix as nox parameters; a bad override becomes one session that says why."""
    try:
        return [nox.param(cell, id=cell.name) for cell in matrix.from_environ(os.environ)]
    except UsageError as exc:
        return [nox.param(str(exc), id="invalid")]


# --------------------------------------------------------------------------- sessions


def _install_project(session: nox.Session, *pins: str) -> None:
    session.install(*_index_options(), "-e", ".[test]", *pins)


#: The torch of the README's install and of the committed figures in results/bench/: the bench
#: session measures with it, so that its figures compare with those (the generators' speed
#: changes between releases and builds).
BENCH_TORCH = "torch==2.13.0"


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite (slow and gpu tests deselected by pyproject)."""
    _install_project(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (layout and rules), and mypy for each platform the host and worker run on."""
    session.install("ruff", "mypy", "pandas-stubs", "types-toml")
    session.run("ruff", "format", "--check", "audit", "noxfile.py")
    session.run("ruff", "check", "audit", "tests", "scripts", "noxfile.py")
    for platform in ("linux", "darwin", "win32"):
        session.run("mypy", "--platform", platform, "audit", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Every scripts/bench_*.py, one after another; or those named first, each with the
    arguments after the names: ``nox -s bench -- fingerprint --repeats 9`` runs
    bench_fingerprint.py with ``--repeats 9`` (the arguments go to every named script)."""
    found = {
        os.path.basename(path)[len("bench_") : -len(".py")]: path
        for path in sorted(glob.glob(os.path.join(ROOT, "scripts", "bench_*.py")))
    }
    if not found:
        session.skip("no scripts/bench_*.py yet")
    names = list(itertools.takewhile(lambda arg: not arg.startswith("-"), session.posargs))
    unknown = [name for name in names if name not in found]
    if unknown:
        session.error(f"no benchmark {', '.join(unknown)} (there are: {', '.join(found)})")
    _install_project(session, BENCH_TORCH)
    for name in names or list(found):
        session.run("python", found[name], *session.posargs[len(names) :])


@nox.session(venv_backend="none")
def audit(session: nox.Session) -> None:
    """This machine, this environment: one run file in AUDIT_RESULTS."""
    session.run(
        host_python(), "-m", "audit", "run", "--results", RESULTS, *session.posargs, external=True
    )


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
    audit_in_session(session, python, MATRIX_RESULTS, *session.posargs)


@nox.session(venv_backend="none", default=False)
def compare(session: nox.Session) -> None:
    """Compare the matrix's runs; write report.md and report.html to reports/ beside them."""
    reports = os.path.join(os.path.dirname(os.path.abspath(MATRIX_RESULTS.rstrip("/"))), "reports")
    os.makedirs(reports, exist_ok=True)
    html, markdown = os.path.join(reports, "report.html"), os.path.join(reports, "report.md")
    extra = (
        ["--expectations", "results/expectations.txt"]
        if os.path.exists("results/expectations.txt")
        else []
    )
    with open(markdown, "w", encoding="utf-8") as f:
        session.run(
            host_python(),
            "-m",
            "audit",
            "compare",
            MATRIX_RESULTS,
            *extra,
            "--markdown",
            "--html",
            html,
            *session.posargs,
            external=True,
            stdout=f,
            success_codes=[0, 1, 3],
        )
    session.log(f"wrote {markdown} and {html}")


@nox.session(venv_backend="none", default=False)
def upgrade(session: nox.Session) -> None:
    """Before bumping a library: which streams change (``nox -s upgrade -- torch 2.4.1 2.13.0``).

    Arguments after the three go to ``audit run`` (e.g. ``--probes-from my_probes.py``).
    """
    try:
        plan = matrix.parse_upgrade(session.posargs[:3], os.environ)
    except UsageError as exc:
        session.error(str(exc))
    name = f"{plan.library}-{getattr(plan.old, plan.library)}-to-{getattr(plan.new, plan.library)}"
    results = os.path.join(MATRIX_RESULTS, "upgrade", name)
    runs = [
        audit_in_session(session, build_cell(session, cell), results, *session.posargs[3:])
        for cell in (plan.old, plan.new)
    ]
    print("\n$ python -m audit compare --upgrade " + plan.field + " " + " ".join(runs))
    # --upgrade informs: 0, or 3 when input files were skipped
    session.run(
        host_python(),
        "-m",
        "audit",
        "compare",
        "--upgrade",
        plan.field,
        *runs,
        external=True,
        success_codes=[0, 3],
    )


@nox.session(venv_backend="none", default=False)
def history(session: nox.Session) -> None:
    """The committed stream history: every minor release of torch and numpy (resumable), then
    docs/stream-changes.md.  ``nox -s history -- --library torch --minors 2.0,2.4`` builds part."""
    session.run(
        host_python(),
        os.path.join(ROOT, "scripts", "build_history.py"),
        *session.posargs,
        external=True,
    )
    session.run(host_python(), os.path.join(ROOT, "scripts", "stream_changes.py"), external=True)


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


@nox.session(venv_backend="none", default=False)
def arm64(session: nox.Session) -> None:
    """Emulated aarch64: build or reuse the Debian arm64 root (audit/runner/arm64.py; root,
    debootstrap, qemu-user-static) for AUDIT_TORCH/AUDIT_NUMPY (one version each), then audit
    each CPU class in AUDIT_QEMU_CPU (default: neoverse-n1 a64fx max-sve256) into AUDIT_RESULTS
    (results/matrix)."""
    from audit.runner import arm64 as arm

    try:
        python = arm.build(
            run=lambda args: session.run(*args, external=True, silent=True), log=session.log
        )
    except (UsageError, arm.BuildError) as exc:
        session.error(str(exc))
    for cpu in os.environ.get("AUDIT_QEMU_CPU", "neoverse-n1 a64fx max-sve256").split():
        if cpu not in arm.CPU_CLASSES:
            session.error(
                f"AUDIT_QEMU_CPU: {cpu!r} is not a CPU class ({', '.join(arm.CPU_CLASSES)})"
            )
        session.env["QEMU_CPU"] = cpu
        audit_in_session(session, python, MATRIX_RESULTS, *session.posargs)
