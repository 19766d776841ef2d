"""Matrix cells on disk: find an interpreter, build or reuse a cell's environment, remove it.

One place for what ``nox -s matrix``, ``nox -s upgrade``, ``audit bisect`` and the history
builder all do: a cell (:class:`audit.runner.matrix.Cell`) is an environment under
``.nox/cells/<cell name>`` holding only the libraries under test and xxhash, built with uv
(or venv + pip without it) and reused while a marker file says it was built from the same
requirements, interpreter and index options.  Commands run through a ``run`` callable so the
noxfile can log them as nox does; by default they run as subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence

from audit.errors import AuditError, UsageError, one_line
from audit.runner import matrix

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CELLS_DIR = os.path.join(ROOT, ".nox", "cells")
BIN = "Scripts" if sys.platform == "win32" else "bin"
EXE = ".exe" if sys.platform == "win32" else ""
MARKER = ".audit-cell.json"

Run = Callable[[Sequence[str]], object]
Log = Callable[[str], None]


class BuildError(AuditError):
    """A cell's environment could not be built (no interpreter, or the install failed)."""

    exit_code = 3


# --------------------------------------------------------------------------- interpreters


def pyenv_versions() -> List[str]:
    """Full versions (3.11.7) that pyenv has installed, if pyenv is here."""
    folder = os.path.join(_pyenv_root(), "versions")
    if not os.path.isdir(folder):
        return []
    return sorted(v for v in os.listdir(folder) if re.match(r"^\d+\.\d+\.\d+$", v))


def _pyenv_root() -> str:
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def export_pyenv() -> None:
    """Let nox's and uv's own discovery see every pyenv interpreter (via its shims)."""
    versions = pyenv_versions()
    if versions and "PYENV_VERSION" not in os.environ:
        newest_first = sorted(versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
        os.environ["PYENV_VERSION"] = ":".join(newest_first)


def find_python(version: str) -> Optional[str]:
    """An interpreter for ``version`` (3.11): pyenv's, then python3.11 on PATH, then this one."""
    full = matrix.pick_interpreter(version, pyenv_versions())
    if full:
        candidate = os.path.join(_pyenv_root(), "versions", full, "bin", "python")
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


def uv() -> Optional[str]:
    """uv on PATH or beside this interpreter; None means venv + pip."""
    beside = os.path.join(os.path.dirname(sys.executable), "uv" + EXE)
    return shutil.which("uv") or (beside if os.path.exists(beside) else None)


def index_options() -> List[str]:
    """Extra wheel sources from ``AUDIT_FIND_LINKS`` and ``AUDIT_TORCH_INDEX``."""
    options: List[str] = []
    for folder in os.environ.get("AUDIT_FIND_LINKS", "").split():
        options += ["--find-links", folder]
    if os.environ.get("AUDIT_TORCH_INDEX"):
        options += ["--extra-index-url", os.environ["AUDIT_TORCH_INDEX"]]
    return options


# --------------------------------------------------------------------------- cells


def location(cell: matrix.Cell) -> str:
    return os.path.join(CELLS_DIR, cell.name)


def cell_python(cell: matrix.Cell) -> str:
    return os.path.join(location(cell), BIN, "python" + EXE)


def subprocess_run(args: Sequence[str]) -> None:
    """Run a build command quietly; a failure becomes a BuildError naming its last line."""
    capture(args)


def capture(args: Sequence[str], named: bool = False) -> str:
    """A build command's output (stdout and stderr); a failure becomes a BuildError naming its
    last line (after the command's first words with ``named``)."""
    done = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit {done.returncode}"
        raise BuildError(
            one_line(Exception(f"{' '.join(args[:3])}: {last}" if named else last), 300)
        )
    return done.stdout


def build(cell: matrix.Cell, run: Run = subprocess_run, log: Log = lambda _: None) -> str:
    """The cell's interpreter, building its environment unless an identical one exists.

    Raises BuildError when no interpreter for the cell's Python is here or an install fails
    (then the half-built environment is removed, so the next try starts clean).
    """
    interpreter = find_python(cell.python)
    if interpreter is None:
        raise BuildError(
            f"no Python {cell.python} on this machine (pyenv install {cell.python}, "
            f"or put python{cell.python} on PATH)"
        )
    where, python = location(cell), cell_python(cell)
    wanted = {
        "requirements": cell.requirements,
        "interpreter": interpreter,
        "index": index_options(),
    }
    if read_marker(where) == wanted and os.path.exists(python):
        log(f"reusing {where}")
        return python
    start = time.perf_counter()
    shutil.rmtree(where, ignore_errors=True)
    try:
        for command in _commands(interpreter, where, python, cell.requirements):
            run(command)
    except BaseException:
        shutil.rmtree(where, ignore_errors=True)
        raise
    write_marker(where, wanted)
    log(f"built {cell.name} in {time.perf_counter() - start:.0f} s")
    return python


def read_marker(where: str, name: str = MARKER) -> object:
    """What a built environment says it was built from (None: unbuilt or half-built): an
    environment is reused only while this equals what is wanted now."""
    try:
        with open(os.path.join(where, name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_marker(where: str, wanted: object, name: str = MARKER) -> None:
    """Mark ``where`` as built from ``wanted``; written last, so a half-built one has none."""
    with open(os.path.join(where, name), "w", encoding="utf-8") as f:
        json.dump(wanted, f)


def _commands(
    interpreter: str, where: str, python: str, requirements: Sequence[str]
) -> List[List[str]]:
    tool = uv()
    if tool:
        return [
            [tool, "venv", "--quiet", "--python", interpreter, where],
            [
                tool,
                "pip",
                "install",
                "--quiet",
                "--python",
                python,
                *index_options(),
                *requirements,
            ],
        ]
    return [
        [interpreter, "-m", "venv", where],
        [python, "-m", "pip", "install", "--quiet", *index_options(), *requirements],
    ]


def exists(cell: matrix.Cell) -> bool:
    """Whether a built environment for the cell is on disk."""
    return read_marker(location(cell)) is not None


def remove(cell: matrix.Cell) -> None:
    """Delete the cell's environment (the history builder keeps the disk in check this way)."""
    shutil.rmtree(location(cell), ignore_errors=True)


def installed(cell: matrix.Cell) -> List[str]:
    """Distribution names installed in the cell (from its dist-info folders; nothing is run)."""
    import glob

    pattern = os.path.join(location(cell), "**", "site-packages", "*.dist-info")
    names = (
        os.path.basename(p)[: -len(".dist-info")].rsplit("-", 1)[0]
        for p in glob.glob(pattern, recursive=True)
    )
    return sorted({n.lower().replace("_", "-") for n in names})


#: What a torch cell pulls in besides torch that is large: the CUDA libraries and triton.
HEAVY = ("torch", "triton", "nvidia-")


def heavy(names: Sequence[str]) -> List[str]:
    """The large packages among ``names``: worth dropping from the cache after a one-off cell."""
    return [n for n in names if n in HEAVY or n.startswith("nvidia-")]


def prune_cache(packages: Sequence[str], run: Run = subprocess_run) -> None:
    """Drop ``packages`` from uv's cache (torch wheels with their CUDA libraries are GBs)."""
    tool = uv()
    if tool and packages:
        run([tool, "cache", "clean", "--quiet", *packages])


def disk_free_gb(path: str = ROOT) -> float:
    return shutil.disk_usage(path).free / 1e9


def audit_command(
    python: str, results: str, extra: Sequence[str], host: Optional[str] = None
) -> List[str]:
    """The host command that audits ``python``'s environment (a cell's) into ``results``."""
    return [
        host or sys.executable,
        "-m",
        "audit",
        "run",
        "--python",
        python,
        "--results",
        results,
        "--quiet",
        *extra,
    ]


def written_run(stdout: str) -> Optional[str]:
    """The run file that ``audit run`` says it wrote (its last ``wrote PATH`` line), if any."""
    written = re.findall(r"^wrote (.+)$", stdout, flags=re.MULTILINE)
    return written[-1].strip() if written else None


def audit_cell(python: str, results: str, extra: Sequence[str]) -> str:
    """Run the catalogue in ``python``'s environment from this host; return the run file.

    ``audit bisect`` and the history builder call this; ``nox -s matrix`` runs the same
    :func:`audit_command` through its session.
    """
    done = subprocess.run(audit_command(python, results, extra), capture_output=True, text=True)
    path = written_run(done.stdout)
    if done.returncode != 0 or path is None:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise UsageError(last.removeprefix("error: "))
    return path
