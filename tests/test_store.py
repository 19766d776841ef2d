"""The store: bad files are named and skipped, old schemas upgraded, writes atomic.

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

from audit.errors import SchemaError, StoreError
from audit.store import runfile as store
from audit.store.runfile import COLUMNS, check_writable, read_run_file, read_runs, write_run
from audit.store.scan import read_run_rows
from audit.worker.records import HASH_ALGORITHM, RECORD_FIELDS, SCHEMA_VERSION, Run

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


@pytest.mark.parametrize("dictionary", [False, True])
def test_the_comparison_reader_skips_the_same_files(tmp_path: Path, dictionary: bool) -> None:
    rows = read_run_rows([str(_mixed_directory(tmp_path))], COLUMNS, dictionary=dictionary)
    assert sorted(os.path.basename(s.path) for s in rows.skipped) == sorted(BAD_KINDS)
    assert len(rows.rows) == 12 and len(rows.runs) == 1


@pytest.mark.parametrize("columns", [None, ["case_key", "hash_algorithm"], ["hash_algorithm"]])
def test_a_schema_1_file_is_upgraded_on_read(columns: Any) -> None:
    assert pq.read_schema(V1).metadata[store.META_SCHEMA] == b"1"
    table = read_run_file(str(V1), columns)
    assert table.column_names == list(columns or COLUMNS)
    assert set(table.column("hash_algorithm").to_pylist()) == {HASH_ALGORITHM}
    assert table.num_rows == 12


def test_a_schema_1_file_upgrades_through_the_dictionary_reader_too() -> None:
    rows = read_run_rows([str(V1)], list(RECORD_FIELDS), dictionary=True)
    assert list(rows.rows["hash_algorithm"].astype(str).unique()) == [HASH_ALGORITHM]
    assert rows.rows["fingerprint"].notna().all()


def test_there_is_an_upgrade_step_from_every_older_version() -> None:
    assert sorted(store._UPGRADES) == list(range(1, SCHEMA_VERSION))


def test_a_new_run_file_carries_the_current_schema_and_hash_algorithm(tmp_path: Path) -> None:
    run = Run.new({"machine_id": "m"})
    run.records = [{"case_key": "k", "probe": "p", "status": "ok", "hash_algorithm": HASH_ALGORITHM}]
    path = write_run(run, str(tmp_path))
    assert pq.read_schema(path).metadata[store.META_SCHEMA] == str(SCHEMA_VERSION).encode()
    assert read_run_file(path).column("hash_algorithm").to_pylist() == [HASH_ALGORITHM]


def test_a_newer_file_read_directly_is_refused_with_advice() -> None:
    with pytest.raises(SchemaError, match="upgrade determinism-audit"):
        read_run_file(str(BAD / "newer_schema.parquet"))


def test_a_file_without_a_requested_column_keeps_its_row_count(tmp_path: Path) -> None:
    table = pa.table({"case_key": ["a", "b", "c"]}).replace_schema_metadata(
        {store.META_SCHEMA: str(SCHEMA_VERSION).encode(), store.META_RUN_ID: b"r"})
    pq.write_table(table, tmp_path / "x.parquet")
    assert read_run_file(str(tmp_path / "x.parquet"), ["message"]).num_rows == 3


def test_an_unwritable_location_is_refused_before_anything_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write to results directory"):
        check_writable(str(blocker / "results"))
    check_writable(str(tmp_path / "fine"))
    assert list((tmp_path / "fine").iterdir()) == []  # the check leaves nothing behind


def test_an_interrupted_write_leaves_no_file_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pq.write_table

    def half_then_interrupt(table: Any, where: Any, **kwargs: Any) -> None:
        real(table.slice(0, 0), where, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(store.pq, "write_table", half_then_interrupt)
    run = Run.new({})
    run.records = [{"case_key": "k", "status": "ok"}]
    with pytest.raises(KeyboardInterrupt):
        write_run(run, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_is_a_store_error_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(table: Any, where: Any, **kwargs: Any) -> None:
        Path(where).write_bytes(b"PAR1")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.pq, "write_table", disk_full)
    with pytest.raises(StoreError, match="No space left"):
        write_run(Run.new({}), str(tmp_path))
    assert list(tmp_path.iterdir()) == []
