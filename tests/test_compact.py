"""Compaction: month files that keep every run, safe to repeat and to interrupt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Tuple

import pyarrow.parquet as pq
import pytest

from audit.compare import compare_paths
from audit.errors import UsageError
from audit.runner.supervisor import SOURCE_ROOT
from audit.store import compact as compact_mod
from audit.store import runfile, scan
from audit.store.compact import compact, month_of
from tests.compare_helpers import make_run, record, write

P = {"seed": 0}


def _runs(directory: Path, months: List[str], start: int = 0) -> List[str]:
    runs = [make_run(f"run{start + i:04d}", f"2026-{month}-{1 + i % 28:02d}T00:00:00.000000Z",
                     {"torch_version": "2.4.1" if i % 2 else "2.13.0"}, [record("p", P, f"fp{i % 2}"),
                                                                         record("q", P, "same")])
            for i, month in enumerate(months)]
    return write(runs, str(directory))


def _files(directory: Path) -> List[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_runs_are_merged_by_month_and_every_run_keeps_its_id_environment_and_metadata(tmp_path: Path) -> None:
    sources = _runs(tmp_path / "src", ["01", "01", "01", "02", "02"])
    done = compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    assert done.runs == 5 and len(done.written) == 2 and done.sources_removed == []
    assert [os.path.basename(os.path.dirname(p)) for p in done.written] == ["month=2026-01", "month=2026-02"]
    assert len(_files(tmp_path / "src")) == 5  # sources untouched
    january = runfile.read_run_file(done.written[0])
    listed = json.loads(january.schema.metadata[runfile.META_RUNS])
    assert [r["run_id"] for r in listed["runs"]] == ["run0000", "run0001", "run0002"]
    assert {r["source"] for r in listed["runs"]} == {os.path.basename(p) for p in sources[:3]}
    assert [listed["envs"][r["env"]]["torch_version"] for r in listed["runs"]] == ["2.13.0", "2.4.1", "2.13.0"]
    rows = january.to_pylist()
    assert [(r["run_id"], r["case_key"].split("|")[0]) for r in rows][:2] == [("run0000", "p"), ("run0000", "q")]
    assert {r["run_id"]: r["torch_version"] for r in rows} == {"run0000": "2.13.0", "run0001": "2.4.1",
                                                              "run0002": "2.13.0"}
    found = scan.build([str(tmp_path / "dest")])
    assert [r.run_id for r in found.runs] == [f"run{i:04d}" for i in range(5)] and found.files[0].compacted


def test_compare_reads_compacted_files_as_it_reads_the_originals(tmp_path: Path) -> None:
    _runs(tmp_path / "src", ["01", "01", "02", "03"])
    compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    a, b = compare_paths([str(tmp_path / "src")]), compare_paths([str(tmp_path / "dest")])
    assert (a.rows, a.runs) == (b.rows, b.runs) == (8, 4)
    assert [(f.verdict, f.axes, [(s.fingerprint, s.runs) for s in f.streams]) for f in a.findings] == \
           [(f.verdict, f.axes, [(s.fingerprint, s.runs) for s in f.streams]) for f in b.findings]


def test_compaction_is_idempotent(tmp_path: Path) -> None:
    _runs(tmp_path / "src", ["01", "02"])
    compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    before = {p: os.path.getmtime(tmp_path / "dest" / p) for p in _files(tmp_path / "dest")}
    again = compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    assert again.written == [] and again.superseded == []
    assert {p: os.path.getmtime(tmp_path / "dest" / p) for p in _files(tmp_path / "dest")} == before


def test_new_runs_of_a_month_replace_its_file_with_one_holding_all(tmp_path: Path) -> None:
    _runs(tmp_path / "src", ["01", "01"])
    first = compact([str(tmp_path / "src")], str(tmp_path / "dest")).written
    _runs(tmp_path / "src", ["01"], start=10)
    done = compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    assert done.superseded == first and len(done.written) == 1
    assert [r.run_id for r in scan.build([str(tmp_path / "dest")]).runs] == ["run0000", "run0010", "run0001"]
    assert _files(tmp_path / "dest") == [os.path.relpath(done.written[0], tmp_path / "dest")]


def test_an_interrupted_compaction_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _runs(tmp_path / "src", ["01", "01", "02"])
    real = compact_mod._with_run_fields
    calls: List[int] = []

    def interrupt_on_second(table: Any, cat: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(table, cat)

    monkeypatch.setattr(compact_mod, "RUNS_PER_GROUP", 1)
    monkeypatch.setattr(compact_mod, "_with_run_fields", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    assert [p for p in _files(tmp_path / "dest") if p.endswith(".parquet") or ".tmp" in p] == []
    monkeypatch.setattr(compact_mod, "_with_run_fields", real)
    assert len(compact([str(tmp_path / "src")], str(tmp_path / "dest")).written) == 2


def test_a_left_over_superseded_file_is_removed_by_the_next_compaction(tmp_path: Path) -> None:
    _runs(tmp_path / "src", ["01"])
    (old,) = compact([str(tmp_path / "src")], str(tmp_path / "dest")).written
    keep = tmp_path / "old.parquet"
    shutil.copy(old, keep)
    _runs(tmp_path / "src", ["01"], start=5)
    (new,) = compact([str(tmp_path / "src")], str(tmp_path / "dest")).written
    shutil.copy(keep, old)  # as if killed between writing the new file and removing the old one
    c = compare_paths([str(tmp_path / "dest")])
    assert c.runs == 2 and c.notes  # the run in both counts once
    done = compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    assert done.written == [] and done.superseded == [old] and os.path.exists(new)


def test_sources_are_removed_only_when_asked_and_only_when_kept(tmp_path: Path) -> None:
    sources = _runs(tmp_path / "src", ["01", "02"])
    (tmp_path / "src" / "junk.parquet").write_bytes(b"not parquet")
    done = compact([str(tmp_path / "src")], str(tmp_path / "dest"), remove_sources=True)
    assert sorted(done.sources_removed) == sorted(sources) and [s.path for s in done.skipped] == [
        str(tmp_path / "src" / "junk.parquet")]
    assert _files(tmp_path / "src") == ["junk.parquet"]  # what was not compacted stays
    assert compare_paths([str(tmp_path / "dest")]).runs == 2


def test_bad_destinations_are_usage_errors(tmp_path: Path) -> None:
    _runs(tmp_path / "src", ["01"])
    with pytest.raises(UsageError, match="same directory"):
        compact([str(tmp_path / "src")], str(tmp_path / "src"))
    with pytest.raises(UsageError, match="local directory"):
        compact([str(tmp_path / "src")], "gs://bucket/x")
    with pytest.raises(UsageError, match="nothing to compact.*no such file"):
        compact([str(tmp_path / "missing")], str(tmp_path / "dest"))


def test_the_command(tmp_path: Path) -> None:
    _runs(tmp_path / "src", ["01", "02"])
    args = [sys.executable, "-m", "audit", "compact", str(tmp_path / "src"), str(tmp_path / "dest")]
    done = subprocess.run(args, cwd=SOURCE_ROOT, text=True, capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stdout.count("wrote ") == 2
    assert "2 run(s) in 2 new month file(s)" in done.stdout
    again = subprocess.run(args, cwd=SOURCE_ROOT, text=True, capture_output=True, timeout=120)
    assert again.returncode == 0 and "nothing new to compact" in again.stdout


@pytest.mark.parametrize("started, month", [("2026-03-04T00:00:00Z", "2026-03"), (None, "unknown"),
                                            ("garbled", "unknown")])
def test_month_of(started: Any, month: str) -> None:
    assert month_of(started) == month


# --------------------------------------------------------------------------- never a lost row (issue 18 item 12)


def _full_and_subset(src: Path, subset_name: str = "0-subset.parquet") -> Tuple[str, str]:
    """A run file of 10 rows, and a file of its first 4 rows written with plain pyarrow: the
    same run id in its metadata and rows, but not a copy (sorted first, so read first)."""
    recs = [record("p", {"seed": s}, f"fp{s}") for s in range(10)]
    (full,) = write([make_run("runA", "2026-01-02T00:00:00.000000Z", {}, recs)], str(src))
    subset = str(src / subset_name)
    pq.write_table(pq.read_table(full).slice(0, 4), subset)
    return full, subset


def _rows(directory: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in directory.rglob("*.parquet"))


def test_a_subset_with_the_same_run_id_is_not_a_copy_and_no_row_is_lost(tmp_path: Path) -> None:
    full, subset = _full_and_subset(tmp_path / "src")
    found = scan.build([str(tmp_path / "src")])
    assert [s.path for s in found.skipped] == [full] and "not a copy" in found.skipped[0].reason
    assert "10 row(s) here, 4 there" in found.skipped[0].reason
    done = compact([str(tmp_path / "src")], str(tmp_path / "dest"), remove_sources=True)
    assert done.sources_removed == [subset]  # every one of its rows is in DEST
    assert os.path.exists(full) and [s.path for s in done.skipped] == [full]  # 6 of its rows are not
    assert _rows(tmp_path / "src") + _rows(tmp_path / "dest") >= 10
    kept = runfile.read_run_file(full).column("params").to_pylist()
    in_dest = {r for p in (tmp_path / "dest").rglob("*.parquet") for r in runfile.read_run_file(str(p))
               .column("params").to_pylist()}
    assert set(kept) - in_dest  # the rows only the full file holds are still on disk


def test_a_true_copy_under_another_name_counts_once_and_both_go(tmp_path: Path) -> None:
    (full,) = _runs(tmp_path / "src", ["01"])
    shutil.copy(full, tmp_path / "src" / "0-copy.parquet")
    found = scan.build([str(tmp_path / "src")])
    assert found.skipped == [] and len(found.runs) == 1 and found.notes
    done = compact([str(tmp_path / "src")], str(tmp_path / "dest"), remove_sources=True)
    assert len(done.sources_removed) == 2 and done.skipped == []


def test_a_source_is_removed_only_when_every_row_is_in_dest(tmp_path: Path) -> None:
    """A DEST month file already holds the run (its subset, read first as compacted); the full
    source's other rows are not in DEST, so it stays."""
    full, subset = _full_and_subset(tmp_path / "src")
    os.remove(full)
    compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    shutil.move(subset, tmp_path / "subset.parquet")
    _full_and_subset(tmp_path / "src2")
    os.remove(tmp_path / "src2" / "0-subset.parquet")
    done = compact([str(tmp_path / "src2")], str(tmp_path / "dest"), remove_sources=True)
    assert done.sources_removed == [] and len(_files(tmp_path / "src2")) == 1
    assert done.skipped and "not a copy" in done.skipped[0].reason


def test_a_source_inside_dest_stays_without_remove_sources(tmp_path: Path) -> None:
    incoming = tmp_path / "dest" / "incoming"
    sources = _runs(incoming, ["01", "01", "02"])
    done = compact([str(incoming)], str(tmp_path / "dest"))
    assert len(done.written) == 2 and done.superseded == [] and done.sources_removed == []
    assert all(os.path.exists(p) for p in sources)
    again = compact([str(incoming)], str(tmp_path / "dest"))
    assert again.written == [] and again.superseded == [] and all(os.path.exists(p) for p in sources)
    removed = compact([str(incoming)], str(tmp_path / "dest"), remove_sources=True)
    assert sorted(removed.sources_removed) == sorted(sources)
    assert compare_paths([str(tmp_path / "dest")]).runs == 3


def test_repeating_compact_remove_sources_exits_0(tmp_path: Path) -> None:
    _runs(tmp_path / "src", ["01", "02"])
    args = [sys.executable, "-m", "audit", "compact", "--remove-sources", str(tmp_path / "src"),
            str(tmp_path / "dest")]
    first = subprocess.run(args, cwd=SOURCE_ROOT, text=True, capture_output=True, timeout=120)
    assert first.returncode == 0 and "removed 2 source file(s)" in first.stdout
    again = subprocess.run(args, cwd=SOURCE_ROOT, text=True, capture_output=True, timeout=120)
    assert (again.returncode, again.stderr) == (0, "") and "nothing to compact" in again.stdout
    missing = subprocess.run([*args[:-2], str(tmp_path / "nowhere"), str(tmp_path / "dest")], cwd=SOURCE_ROOT,
                             text=True, capture_output=True, timeout=120)
    assert missing.returncode == 2 and "no such file" in missing.stderr
