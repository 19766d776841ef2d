"""scripts/build_history.py with fake cells: it audits what is missing, resumes, replaces stale
runs, cleans up each cell, and stops before filling the disk."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from typing import Any, Dict, List, Sequence

import pytest

from audit.history import manifest, plan
from tests.compare_helpers import make_run, record, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    spec = importlib.util.spec_from_file_location("build_history_under_test",
                                                  os.path.join(ROOT, "scripts", "build_history.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state: Dict[str, Any] = {"version": "v1", "audited": [], "removed": [], "pruned": [], "free": 100.0}
    torch_only = (plan.SERIES[0],)
    monkeypatch.setattr(module.plan, "SERIES", torch_only)
    monkeypatch.setattr(module, "releases_of", lambda series, given: ["2.0.1", "2.1.2", "2.2.2"])
    monkeypatch.setattr(module, "catalogue", lambda globs: {("torch.rand", state["version"])})
    monkeypatch.setattr(module.cells, "build", lambda cell, log=None: f"/cells/{cell.torch}/bin/python")
    monkeypatch.setattr(module.cells, "installed", lambda cell: ["numpy", "nvidia-cudnn-cu12", "torch"])
    monkeypatch.setattr(module.cells, "remove", lambda cell: state["removed"].append(cell.torch))
    monkeypatch.setattr(module.cells, "prune_cache", lambda names: state["pruned"].append(list(names)))
    monkeypatch.setattr(module.cells, "exists", lambda cell: False)
    monkeypatch.setattr(module.cells, "disk_free_gb", lambda: state["free"])

    def audit_cell(python: str, results: str, extra: Sequence[str]) -> str:
        version = python.split("/")[2]
        state["audited"].append(version)
        rows = [record("torch.rand", {"seed": 0}, f"r-{version}", version=state["version"])]
        run = make_run(f"{version}-{state['version']}", "2026-01-01T00:00:00.000000Z",
                       {"torch_version": version, "numpy_version": "1.26.4"}, rows)
        return write([run], results)[0]

    monkeypatch.setattr(module, "audit_cell", audit_cell)
    state["module"] = module
    return state


def run(state: Dict[str, Any], results: str, *extra: str) -> int:
    args = argparse.Namespace(library=None, results=results, minors=None, after=None, versions=None,
                              keep_cells=False, min_free_gb=15.0)
    for item in extra:
        key, value = item.split("=")
        setattr(args, key, value)
    os.makedirs(results, exist_ok=True)
    return int(state["module"].build(args))


def files(folder: str) -> List[str]:
    return sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))


def test_the_build_audits_every_release_once_and_cleans_up(builder: Dict[str, Any], tmp_path: Any) -> None:
    results = str(tmp_path / "history")
    assert run(builder, results) == 0
    assert builder["audited"] == ["2.0.1", "2.1.2", "2.2.2"]
    assert builder["removed"] == builder["audited"]
    assert builder["pruned"] == [["nvidia-cudnn-cu12", "torch"]] * 3
    assert len(files(os.path.join(results, "torch"))) == 3
    log = [json.loads(line) for line in open(os.path.join(results, "builds.jsonl"), encoding="utf-8")]
    assert [r["version"] for r in log] == ["2.0.1", "2.1.2", "2.2.2"]
    assert {"build_s", "audit_s", "cell_gb", "file", "python", "made"} <= set(log[0])
    listed = json.load(open(os.path.join(results, manifest.NAME), encoding="utf-8"))["libraries"]["torch"]
    assert listed["releases"] == ["2.0.1", "2.1.2", "2.2.2"]
    assert sorted(n.split("/")[1] for n in listed["files"]) == files(os.path.join(results, "torch"))
    manifest.check(results, "torch")


def test_it_resumes_and_replaces_runs_of_another_catalogue(builder: Dict[str, Any], tmp_path: Any) -> None:
    results = str(tmp_path / "history")
    builder["module"].releases_of = lambda series, given: ["2.0.1"]
    run(builder, results)
    builder["module"].releases_of = lambda series, given: ["2.0.1", "2.1.2"]
    run(builder, results)
    assert builder["audited"] == ["2.0.1", "2.1.2"]  # 2.0.1 was there already
    before = files(os.path.join(results, "torch"))
    builder["version"] = "v2"  # a probe changed: every run is stale
    run(builder, results)
    assert builder["audited"][2:] == ["2.0.1", "2.1.2"]
    after = files(os.path.join(results, "torch"))
    assert len(after) == 2 and not set(after) & set(before)
    manifest.check(results, "torch")  # the replaced runs left the manifest with their files


def test_minors_and_after_choose_releases_and_a_full_disk_stops_the_build(builder: Dict[str, Any],
                                                                          tmp_path: Any) -> None:
    results = str(tmp_path / "history")
    run(builder, results, "minors=2.1", "after=2.0.1")
    assert builder["audited"] == ["2.1.2"]
    run(builder, results, "after=2.1.2")
    assert builder["audited"] == ["2.1.2", "2.2.2"]
    builder["free"] = 3.0
    assert run(builder, str(tmp_path / "other")) == 1
    assert builder["audited"] == ["2.1.2", "2.2.2"]
