"""audit.runner.cells: the one command that audits a cell from the host, and reading its answer."""

from __future__ import annotations

import sys

import pytest

from audit.errors import UsageError
from audit.runner import cells


def test_the_audit_command_runs_this_host_against_the_cell() -> None:
    cmd = cells.audit_command("/cells/a/bin/python", "out", ["--probe", "torch*"])
    assert cmd == [sys.executable, "-m", "audit", "run", "--python", "/cells/a/bin/python", "--results", "out",
                   "--quiet", "--probe", "torch*"]
    assert cells.audit_command("p", "r", [], host="/host/python")[0] == "/host/python"


def test_the_written_run_is_the_last_wrote_line() -> None:
    out = "16 cases (16 ok) in 2.4 s\nwrote /r/a.parquet\nnoise\nwrote /r/b.parquet \n"
    assert cells.written_run(out) == "/r/b.parquet"
    assert cells.written_run("16 cases\nrewrote nothing\n") is None


def test_a_failed_audit_is_one_line_from_its_stderr(tmp_path) -> None:
    with pytest.raises(UsageError, match=r"^--python '/nonexistent/python' is not an executable interpreter$"):
        cells.audit_cell("/nonexistent/python", str(tmp_path), [])
