"""The committed history carries its manifest; advise refuses a history that does not match it,
and finds the project's own history from any directory (issue 18 item 3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit import cli
from audit.history import manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "results", "history")
HEAD = "torch 2.4.1 -> 2.13.0: 143 of the 617 cases that run in both releases give different results (18 probes)"


def _committed_manifest() -> Dict[str, Any]:
    with open(os.path.join(COMMITTED, manifest.NAME), encoding="utf-8") as f:
        return json.load(f)


def _file_of(release: str, library: str = "torch") -> str:
    files = _committed_manifest()["libraries"][library]["files"]
    (name,) = [n for n, e in files.items() if e["release"] == release]
    return name


@pytest.fixture
def history(tmp_path: Any) -> str:
    """A copy of the committed history (about 9 MB)."""
    shutil.copytree(COMMITTED, tmp_path / "history")
    return str(tmp_path / "history")


def _advise(capsys: Any, history: str) -> Any:
    code = cli.main(["advise", "torch", "2.4.1", "2.13.0", "--history", history])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_committed_manifest_lists_every_committed_file_and_release() -> None:
    for library in ("torch", "numpy"):
        manifest.check(COMMITTED, library)
    assert manifest.build(COMMITTED) == _committed_manifest()
    torch = _committed_manifest()["libraries"]["torch"]
    assert "2.7.1" in torch["releases"] and len(torch["files"]) == len(torch["releases"]) == 16


def test_a_missing_release_file_is_refused_in_one_line_naming_it(history: str, capsys: Any) -> None:
    name = _file_of("2.7.1")
    os.remove(os.path.join(history, name))
    code, out, err = _advise(capsys, history)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{os.path.join(history, name)} (torch 2.7.1 on Python 3.11) is missing" in err


def test_a_tampered_fingerprint_is_refused(history: str, capsys: Any) -> None:
    path = os.path.join(history, _file_of("2.8.0"))
    table = pq.read_table(path)
    i = table.column_names.index("fingerprint")
    values = table.column("fingerprint").to_pylist()
    k = next(n for n, v in enumerate(values) if v)
    values[k] = ("0" if values[k][0] != "0" else "1") + values[k][1:]
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type)), path)
    code, out, err = _advise(capsys, history)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{path} (torch 2.8.0 on Python 3.11) does not match the manifest" in err


def test_an_added_file_or_no_manifest_is_refused(history: str, capsys: Any) -> None:
    shutil.copy(os.path.join(history, _file_of("2.7.1")), os.path.join(history, "torch", "extra.parquet"))
    code, _, err = _advise(capsys, history)
    assert code == 2 and "extra.parquet is not in the manifest" in err
    os.remove(os.path.join(history, "torch", "extra.parquet"))
    os.remove(os.path.join(history, manifest.NAME))
    code, _, err = _advise(capsys, history)
    assert code == 2 and "carries no manifest" in err and len(err.strip().splitlines()) == 1
    manifest.write(history)  # what the builder does: the same history is accepted again
    code, out, _ = _advise(capsys, history)
    assert code == 0 and out.splitlines()[0] == HEAD


def test_advise_from_another_directory_reads_the_project_s_history(tmp_path: Any) -> None:
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-m", "audit", "advise", "torch", "2.4.1", "2.13.0"], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == HEAD
    assert manifest.default_root() == COMMITTED


def test_history_names_another_history_and_a_bad_one_is_one_line(tmp_path: Any, capsys: Any) -> None:
    assert cli.main(["advise", "torch", "2.4.1", "2.13.0", "--history", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / manifest.NAME).write_text("{not json")
    assert cli.main(["advise", "torch", "2.4.1", "2.13.0", "--history", str(tmp_path)]) == 2
    assert "is not a readable manifest" in capsys.readouterr().err
