"""bisect end to end with fake cells (no network, no builds), the cell builder's reuse logic,
and one slow real bisect of numpy releases."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List, Sequence

import pytest

from audit import cli
from audit.history import bisect
from audit.runner import cells, matrix
from tests.compare_helpers import f32_sample, make_run, record, write

VERSIONS = ["2.0.1", "2.1.0", "2.1.2", "2.2.0", "2.2.2", "2.3.1", "2.4.0", "2.4.1"]
A, B = f32_sample([0.5, 1.5, 2.5, 3.5]), f32_sample([9.0, -3.0, 0.125, 7.0])


def fake_records(version: str) -> List[Dict[str, Any]]:
    """bernoulli changes in 2.2.0 (float16 only); dropout in 2.1.2 and again in 2.4.0."""
    i = VERSIONS.index(version)
    out = []
    for seed in (0, 1):
        for dtype in ("float16", "float32"):
            new = i >= 3 and dtype == "float16"
            out.append(record("torch.bernoulli", {"dtype": dtype, "seed": seed}, f"b-{dtype}-{seed}-{new}",
                              sample=B if new else A))
        step = (i >= 2) + (i >= 6)
        out.append(record("torch.nn.functional.dropout", {"seed": seed}, f"d-{seed}-{step}",
                          sample=[A, B, f32_sample([1.0, 2.0, 3.0, 4.0])][step]))
        out.append(record("torch.rand", {"seed": seed}, f"r-{seed}", sample=A))
    return out


@pytest.fixture
def fake_cells(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Dict[str, Any]:
    log: Dict[str, Any] = {"built": [], "broken": {"2.2.2"}}

    def build(cell: matrix.Cell, run: Any = None, log_: Any = None, **_: Any) -> str:
        if cell.torch in log["broken"]:
            raise cells.BuildError("No matching distribution found for torch==2.2.2")
        log["built"].append(cell.torch)
        return f"/cells/{cell.torch}/bin/python"

    def audit_cell(python: str, results: str, extra: Sequence[str]) -> str:
        version = python.split("/")[2]
        log["extra"] = list(extra)
        run = make_run(f"r{version}", "2026-01-01T00:00:00.000000Z", {"torch_version": version}, fake_records(version))
        return write([run], os.path.join(results, version))[0]

    monkeypatch.setattr(bisect.cells, "build", build)
    monkeypatch.setattr(bisect, "audit_cell", audit_cell)
    return log


def test_bisect_finds_each_first_release_with_few_builds(fake_cells: Dict[str, Any], tmp_path: Any,
                                                         capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["bisect", "torch", "2.0.1", "2.4.1", "--versions", ",".join(VERSIONS), "--json",
                     "--results", str(tmp_path), "--history", str(tmp_path / "none")])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"library", "from", "to", "versions_built", "changes"} <= set(doc)
    assert doc["library"] == "torch" and (doc["from"], doc["to"]) == ("2.0.1", "2.4.1")
    got = sorted((c["probe"], c["case"].get("dtype"), c["case"]["seed"], c["previous"], c["first_changed"],
                  c["difference"]) for c in doc["changes"])
    assert got == sorted(
        [("torch.bernoulli", "float16", s, "2.1.2", "2.2.0", "stream-change") for s in (0, 1)]
        + [("torch.nn.functional.dropout", None, s, "2.1.0", "2.1.2", "stream-change") for s in (0, 1)]
        + [("torch.nn.functional.dropout", None, s, "2.3.1", "2.4.0", "stream-change") for s in (0, 1)])
    assert doc["versions_built"] == fake_cells["built"]
    assert len(doc["versions_built"]) < len(VERSIONS)
    assert doc["releases_source"] == "the --versions list"
    assert fake_cells["extra"] == ["--probe", "torch*"]  # the library's own probes by default


def test_earlier_runs_made_the_same_way_are_reused_and_anchor_the_search(
        fake_cells: Dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    keys = {(p, "v1") for p in ("torch.bernoulli", "torch.nn.functional.dropout", "torch.rand")}
    monkeypatch.setattr(bisect, "selection_keys", lambda probes: keys)
    history = tmp_path / "history"
    for version, numpy in (("2.1.2", "1.26.4"), ("2.3.1", "1.26.4"), ("2.2.0", "2.4.6")):  # 2.2.0: another pin
        env = {"torch_version": version, "numpy_version": numpy}
        write([make_run(f"h{version}", "2026-01-01T00:00:00.000000Z", env, fake_records(version))],
              str(history / "torch"))
    args = ["bisect", "torch", "2.0.1", "2.4.1", "--versions", ",".join(VERSIONS), "--json",
            "--results", str(tmp_path / "runs"), "--history", str(history)]
    assert cli.main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(doc["runs_reused"]) == ["2.1.2", "2.3.1"]
    assert "2.2.0" in doc["versions_built"] and not set(doc["runs_reused"]) & set(doc["versions_built"])
    assert {(c["previous"], c["first_changed"]) for c in doc["changes"]} == \
        {("2.1.0", "2.1.2"), ("2.1.2", "2.2.0"), ("2.3.1", "2.4.0")}
    assert cli.main([*args, "--fresh"]) == 0
    assert json.loads(capsys.readouterr().out)["runs_reused"] == {}


def test_a_release_that_does_not_install_is_skipped_with_its_reason(fake_cells: Dict[str, Any], tmp_path: Any,
                                                                    capsys: pytest.CaptureFixture) -> None:
    fake_cells["broken"] = {"2.1.2"}
    assert cli.main(["bisect", "torch", "2.0.1", "2.4.1", "--versions", ",".join(VERSIONS),
                     "--results", str(tmp_path), "--history", str(tmp_path / "none"), "--probe", "torch.nn.*"]) == 0
    captured = capsys.readouterr()
    assert "skipped 2.1.2: does not install: No matching distribution" in captured.out
    lines = [line for line in captured.out.splitlines() if "torch.nn.functional.dropout" in line]
    assert [(line.split()[0], line.split()[-1]) for line in lines] == [("2.2.0", "(2.1.0)"), ("2.4.0", "(2.3.1)")]
    assert fake_cells["extra"] == ["--probe", "torch.nn.*"]
    assert captured.out.splitlines()[0].startswith("torch 2.0.1 -> 2.4.1: ")


def test_an_end_that_does_not_install_is_a_usage_error(fake_cells: Dict[str, Any], tmp_path: Any,
                                                       capsys: pytest.CaptureFixture) -> None:
    fake_cells["broken"] = {"2.4.1"}
    assert cli.main(["bisect", "torch", "2.0.1", "2.4.1", "--versions", ",".join(VERSIONS),
                     "--results", str(tmp_path), "--history", str(tmp_path / "none")]) == 2
    assert "torch 2.4.1 cannot be audited: does not install" in capsys.readouterr().err


def test_bad_bisect_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture) -> None:
    for args in (["torch", "2.4.1", "2.0.1", "--versions", "2.2.0"], ["torch", "2.0.1rc1", "2.4.1"],
                 ["torch", "2.0.1", "2.4.1", "--python", "3.7"]):
        assert cli.main(["bisect", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_a_cell_is_reused_while_its_marker_matches_and_rebuilt_otherwise(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Any) -> None:
    monkeypatch.setattr(cells, "CELLS_DIR", str(tmp_path))
    monkeypatch.setattr(cells, "uv", lambda: "uv")
    ran: List[List[str]] = []

    def run(args: Sequence[str]) -> None:
        ran.append(list(args))
        if args[1] == "venv":
            os.makedirs(os.path.join(args[-1], cells.BIN))
            open(os.path.join(args[-1], cells.BIN, "python"), "w").close()

    cell = matrix.Cell("3.11", "1.26.4", None)
    python = cells.build(cell, run=run)
    assert python == cells.cell_python(cell) and cells.exists(cell) and len(ran) == 2
    assert ran[1][-2:] == ["xxhash", "numpy==1.26.4"]
    assert cells.build(cell, run=run) == python and len(ran) == 2  # reused
    cells.build(matrix.Cell("3.11", "1.26.4", "2.4.1"), run=run)
    assert len(ran) == 4
    cells.remove(cell)
    assert not cells.exists(cell)

    def failing(args: Sequence[str]) -> None:
        run(args)
        if args[1] == "pip":
            raise cells.BuildError("no wheel")

    with pytest.raises(cells.BuildError, match="no wheel"):
        cells.build(cell, run=failing)
    assert not os.path.exists(cells.location(cell))  # a half-built cell is not left to be reused


PROBES = """
from audit.registry import probe

@probe("numpy.random.Generator.zipf", name="bisectprobe.zipf", grid={"seed": [0], "a": [1.5]}, library="numpy")
def zipf(seed, a):
    import numpy as np
    return np.random.Generator(np.random.PCG64(seed)).zipf(a, 100000)

@probe("numpy.random.Generator.random", name="bisectprobe.random", grid={"seed": [0]}, library="numpy")
def random(seed):
    import numpy as np
    return np.random.Generator(np.random.PCG64(seed)).random(100000)
"""


@pytest.mark.slow
def test_a_real_bisect_of_numpy_finds_the_zipf_change(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    """numpy's Generator.zipf heavy tail changed in 2.1.0 (see test_slow_matrix; reproduced
    with plain numpy): a user probe module, real cells (numpy only, small), a given list."""
    if cells.uv() is None and shutil.which("pip") is None:
        pytest.skip("neither uv nor pip to build cells")
    if cells.find_python("3.12") is None:
        pytest.skip("no Python 3.12 here")
    (tmp_path / "bisect_probes.py").write_text(PROBES, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    code = cli.main(["bisect", "numpy", "1.26.4", "2.1.3", "--python", "3.12", "--json", "--remove-cells",
                     "--versions", "1.26.4,2.0.0,2.0.1,2.0.2,2.1.0,2.1.3", "--probes-from", "bisect_probes",
                     "--probe", "bisectprobe.*", "--results", str(tmp_path / "runs"), "--fresh"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["versions_built"][:2] == ["1.26.4", "2.1.3"] and len(doc["versions_built"]) < 6
    assert [(c["probe"], c["previous"], c["first_changed"], c["difference"]) for c in doc["changes"]] == \
        [("numpy.random.Generator.zipf", "2.0.2", "2.1.0", "stream-change")]


def test_the_heavy_packages_of_a_cell_are_named_for_the_cache_prune(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Any) -> None:
    monkeypatch.setattr(cells, "CELLS_DIR", str(tmp_path))
    cell = matrix.Cell("3.11", "1.26.4", "2.4.1")
    site = os.path.join(cells.location(cell), "lib", "python3.11", "site-packages")
    for dist in ("torch-2.4.1", "numpy-1.26.4", "nvidia_cudnn_cu12-9.1.0.70", "triton-3.0.0", "xxhash-3.5.0"):
        os.makedirs(os.path.join(site, dist + ".dist-info"))
    assert cells.installed(cell) == ["numpy", "nvidia-cudnn-cu12", "torch", "triton", "xxhash"]
    assert cells.heavy(cells.installed(cell)) == ["nvidia-cudnn-cu12", "torch", "triton"]
