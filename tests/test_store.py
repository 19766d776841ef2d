"""The store: bad files are named and skipped, old schemas upgraded, writes atomic, disks full.

Fixtures: ``tests/fixtures/bad_files/`` holds one tiny file of each bad kind (see its
``make_bad_files.py``); ``tests/fixtures/schema_v1/`` a run written by the schema-1 code.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.compare import compare_paths
from audit.errors import DiskFull, SchemaError, StoreError
from audit.store import runfile as store
from audit.store import scan
from audit.store.compact import compact
from audit.store.runfile import COLUMNS, check_writable, read_run_file, write_run
from audit.store.scan import read_runs
from audit.worker.records import HASH_ALGORITHM, SCHEMA_VERSION, Run

FIXTURES = Path(__file__).parent / "fixtures"
BAD = FIXTURES / "bad_files"
V1 = FIXTURES / "schema_v1" / "run_schema1.parquet"

#: Each bad fixture and a phrase its skip reason must contain.
BAD_KINDS = {
    "empty.parquet": "unreadable",
    "not_parquet.parquet": "unreadable",
    "truncated.parquet": "unreadable",
    "magic_only.parquet": "unreadable",
    "foreign_schema.parquet": "not a determinism-audit run file",
    "wrong_column_types.parquet": "column 'seed' is string",
    "garbled_schema_version.parquet": "unreadable schema version",
    "newer_schema.parquet": "newer determinism-audit (schema 99",
}


def _mixed_directory(tmp_path: Path) -> Path:
    """The schema-1 run beside one file of every bad kind."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(V1, results)
    for name in BAD_KINDS:
        shutil.copy(BAD / name, results)
    return results


def test_every_bad_kind_has_a_fixture() -> None:
    assert sorted(p.name for p in BAD.glob("*.parquet")) == sorted(BAD_KINDS)


@pytest.mark.parametrize("name", sorted(BAD_KINDS))
def test_a_bad_file_is_skipped_by_name_and_the_rest_is_read(tmp_path: Path, name: str) -> None:
    results = _mixed_directory(tmp_path)
    frame, skipped = read_runs([str(results)])
    reasons = {os.path.basename(s.path): s.reason for s in skipped}
    assert set(reasons) == set(BAD_KINDS)
    assert BAD_KINDS[name] in reasons[name]
    assert len(frame) == 12  # the good run, whole


def test_compare_skips_the_same_files(tmp_path: Path) -> None:
    c = compare_paths([str(_mixed_directory(tmp_path))])
    assert sorted(os.path.basename(s.path) for s in c.skipped) == sorted(BAD_KINDS)
    assert c.rows == 12 and c.runs == 1 and c.exit_code() == 3


@pytest.mark.parametrize("columns", [None, ["case_key", "hash_algorithm"], ["hash_algorithm"]])
def test_a_schema_1_file_is_upgraded_on_read(columns: Any) -> None:
    assert pq.read_schema(V1).metadata[store.META_SCHEMA] == b"1"
    table = read_run_file(str(V1), columns)
    assert table.column_names == list(columns or COLUMNS)
    assert set(table.column("hash_algorithm").to_pylist()) == {HASH_ALGORITHM}
    assert table.num_rows == 12


def test_a_schema_1_file_loads_through_every_public_read_path(tmp_path: Path) -> None:
    """read_run_file (above), the catalog, read_runs, compare (JSON and text paths share it), compact."""
    (run,) = scan.build([str(V1)]).runs
    assert run.run_id == "9fd07c549fb54104ad187926e7d13311" and run.started
    frame, skipped = read_runs([str(V1)])
    assert skipped == [] and len(frame) == 12 and list(frame.columns) == list(COLUMNS)
    assert set(frame["hash_algorithm"]) == {HASH_ALGORITHM} and frame["fingerprint"].notna().all()
    assert str(frame["seed"].dtype) != "object" or all(isinstance(v, (int, type(None))) or v == int(v)
                                                      for v in frame["seed"])
    c = compare_paths([str(V1)])
    assert c.runs == 1 and c.rows == 12 and c.skipped == [] and c.findings
    done = compact([str(V1)], str(tmp_path / "dest"))
    (path,) = done.written
    upgraded = read_run_file(path)
    assert upgraded.num_rows == 12 and set(upgraded.column("hash_algorithm").to_pylist()) == {HASH_ALGORITHM}
    assert pq.read_metadata(path).metadata[store.META_SCHEMA] == str(SCHEMA_VERSION).encode()
    again = compare_paths([str(tmp_path / "dest")])
    assert [(f.case_key, f.verdict) for f in again.findings] == [(f.case_key, f.verdict) for f in c.findings]


def test_there_is_an_upgrade_step_from_every_older_version() -> None:
    assert sorted(store.UPGRADES) == list(range(1, SCHEMA_VERSION))
    for version in range(1, SCHEMA_VERSION + 1):  # every column an older file lacks has a declared value
        assert all(store.missing_value(c, version) in (None, HASH_ALGORITHM) for c in COLUMNS)


def test_a_new_run_file_carries_the_current_schema_and_hash_algorithm(tmp_path: Path) -> None:
    run = Run.new({"machine_id": "m"})
    run.records = [{"case_key": "k", "probe": "p", "status": "ok", "hash_algorithm": HASH_ALGORITHM}]
    path = write_run(run, str(tmp_path))
    assert pq.read_metadata(path).metadata[store.META_SCHEMA] == str(SCHEMA_VERSION).encode()
    assert read_run_file(path).column("hash_algorithm").to_pylist() == [HASH_ALGORITHM]


def test_a_newer_file_read_directly_is_refused_with_advice() -> None:
    with pytest.raises(SchemaError, match="upgrade determinism-audit"):
        read_run_file(str(BAD / "newer_schema.parquet"))


def _required_only(rows: int = 3) -> pa.Table:
    table = pa.table({name: pa.array(["v"] * rows, store.TYPE_OF[name]) if name != "repeat_identical"
                      else pa.array([True] * rows) for name in store.REQUIRED})
    return table.replace_schema_metadata({store.META_SCHEMA: str(SCHEMA_VERSION).encode(), store.META_RUN_ID: b"r"})


def test_a_file_without_an_optional_column_keeps_its_row_count(tmp_path: Path) -> None:
    pq.write_table(_required_only(), tmp_path / "x.parquet")
    assert read_run_file(str(tmp_path / "x.parquet"), ["message"]).num_rows == 3


@pytest.mark.parametrize("column", store.REQUIRED)
def test_a_file_without_a_required_column_is_refused_by_name(tmp_path: Path, column: str) -> None:
    pq.write_table(_required_only().drop_columns([column]), tmp_path / "x.parquet")
    with pytest.raises(SchemaError, match=f"no column '{column}'"):
        read_run_file(str(tmp_path / "x.parquet"))
    (skipped,) = scan.build([str(tmp_path)]).skipped
    assert f"no column '{column}'" in skipped.reason


def test_a_duplicated_column_name_is_refused(tmp_path: Path) -> None:
    table = _required_only()
    table = pa.Table.from_arrays([*table.columns, table.column("fingerprint")],
                                 names=[*table.column_names, "fingerprint"]).replace_schema_metadata(
        table.schema.metadata)
    pq.write_table(table, tmp_path / "dup.parquet")
    (skipped,) = scan.build([str(tmp_path)]).skipped
    assert "column 'fingerprint' appears twice" in skipped.reason


def test_an_unwritable_location_is_refused_before_anything_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write to results directory"):
        check_writable(str(blocker / "results"))
    check_writable(str(tmp_path / "fine"))
    assert list((tmp_path / "fine").iterdir()) == []  # the check leaves nothing behind


def test_an_interrupted_write_leaves_no_file_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.write_parquet

    def half_then_interrupt(tables: Any, where: Any, fs: Any = None, **kwargs: Any) -> None:
        real([t.slice(0, 0) for t in tables], where, fs, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "write_parquet", half_then_interrupt)
    run = Run.new({})
    run.records = [{"case_key": "k", "status": "ok"}]
    with pytest.raises(KeyboardInterrupt):
        write_run(run, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_place_and_the_free_space_and_leaves_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(tables: Any, where: Any, *args: Any, **kwargs: Any) -> None:
        Path(where).write_bytes(b"PAR1")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_parquet", disk_full)
    with pytest.raises(DiskFull, match="no space left on device writing to .* free") as caught:
        write_run(Run.new({}), str(tmp_path))
    assert isinstance(caught.value, StoreError) and caught.value.path == str(tmp_path)
    assert isinstance(caught.value.free, int) and caught.value.free > 0
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_in_the_write_check_is_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.loc.filesystem

    class Full:
        """The local filesystem, but every new file meets a full disk."""

        def __init__(self, fs: Any) -> None:
            self.fs = fs

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fs, name)

        def open_output_stream(self, path: str) -> Any:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.loc, "filesystem", lambda where: (Full(real(where)[0]), real(where)[1]))
    with pytest.raises(DiskFull):
        check_writable(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_written_file_carries_its_start_time(tmp_path: Path) -> None:
    run = Run.new({"machine_id": "m"})
    run.records = [{"case_key": "k", "status": "ok"}]
    path = write_run(run, str(tmp_path))
    meta = pq.read_metadata(path).metadata
    assert meta[store.META_STARTED] == run.started.encode()
    saved = pq.read_schema(path).metadata or {}  # the saved schema keeps only the version: the same in every file
    assert store.META_RUN_ID not in saved and saved[store.META_SCHEMA] == str(SCHEMA_VERSION).encode()
    assert read_run_file(path).schema.metadata[store.META_RUN_ID] == run.run_id.encode()
