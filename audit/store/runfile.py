"""The run file: writing one, and reading one back.

Host side (pyarrow).  The columns, types, upgrades and validation live in
:mod:`audit.store.schema` (re-exported here); many files are read by
:mod:`audit.store.engine`.  Nothing is pickled.

Writes are atomic: a local file is written under a hidden temporary name and renamed into
place, so a killed run never leaves a half-written file under a final name; object stores
publish a whole object at once.  Names are unique (time, machine id, random run id), so
concurrent writers never overwrite each other.  The audit metadata goes into the parquet
footer (:func:`write_parquet`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

from audit.errors import DiskFull, SchemaError, StoreError, one_line
from audit.store import location as loc
from audit.store.location import Skipped

# The schema's names, as callers have imported them from here.
from audit.store.schema import (  # noqa: F401
    ARROW_SCHEMA,
    COLUMNS,
    META_ENV,
    META_RUN_ID,
    META_RUNS,
    META_SCHEMA,
    META_STARTED,
    RECORD_FIELDS,
    REQUIRED,
    RUN_FIELDS,
    SEED_TYPE,
    TRACE_OP,
    TYPE_OF,
    UPGRADES,
    RunMeta,
    SchemaUpgrade,
    check_columns,
    missing_value,
    runs_in,
    schema_version,
    stored_type,
    upgrade,
    validate,
)
from audit.worker.environment import FIELDS as ENV_FIELDS
from audit.worker.records import SCHEMA_VERSION, Run

__all__ = ["Skipped", "check_writable", "read_run_file", "run_table", "write_run"]


# --------------------------------------------------------------------------- writing


def run_table(run: Run) -> pa.Table:
    """The run as an arrow table with the fixed schema; unknown record keys are dropped."""
    columns: Dict[str, List[Any]] = {name: [] for name in COLUMNS}
    env = {name: run.env.get(name) for name in ENV_FIELDS}
    for record in run.records:
        for name in RECORD_FIELDS:
            columns[name].append(record.get(name))
        blocks = columns["blocks"]
        if isinstance(blocks[-1], str):  # hex on the wire (JSON lines), bytes in the file
            blocks[-1] = bytes.fromhex(blocks[-1])
        columns["run_id"].append(run.run_id)
        columns["run_started"].append(run.started)
        for name, value in env.items():
            columns[name].append(value)
    metadata = {
        META_SCHEMA: str(SCHEMA_VERSION).encode(),
        META_RUN_ID: run.run_id.encode(),
        META_STARTED: run.started.encode(),
        META_ENV: json.dumps(env, sort_keys=True).encode(),
    }
    return pa.Table.from_pydict(columns, schema=ARROW_SCHEMA.with_metadata(metadata))


def check_writable(results: str) -> None:
    """Fail now, not after an hour of probes, if ``results`` cannot take a new file.

    Creates the location and writes and deletes a small hidden file in it: a permission
    check alone would miss read-only mounts, full disks and running as root.  Leftovers
    of killed writers in a local folder are removed first.
    """
    loc.check(results)
    loc.check_persistent(results)
    fs, root = loc.filesystem(results)
    probe = f"{root}/{loc.leftover_name('write-check')}"

    def attempt() -> None:
        fs.create_dir(root, recursive=True)
        if not loc.is_url(results):
            loc.clean_leftovers(root)
        try:
            with fs.open_output_stream(probe) as out:
                out.write(b"determinism-audit write check\n")
        finally:
            _delete_quietly(fs, probe)

    try:
        loc.bounded(results, "writing to", attempt)
    except (OSError, pa.ArrowException) as exc:
        _raise_disk_full(exc, results)
        raise StoreError(
            f"cannot write to results directory {results!r}: {one_line(exc, 200)}; "
            "choose another --results"
        ) from None


def write_run(run: Run, results: str) -> str:
    """Write ``run`` as a new file under ``results``; return its path.  Atomic and unique."""
    loc.check(results)
    loc.check_persistent(results)
    table = run_table(run)
    final = publish(results, run.file_name, lambda where, fs: write_parquet([table], where, fs))
    return final if not loc.is_url(results) else loc.join(results, run.file_name)


def write_parquet(
    tables: Any, where: str, fs: Any = None, metadata: Optional[Mapping[bytes, bytes]] = None
) -> None:
    """Write ``tables`` (an iterable of tables of the run-file schema) as one parquet file.

    The audit metadata (``metadata``, else the first table's) goes into the parquet footer's
    key-value metadata, and not into pyarrow's saved schema (``ARROW:schema``), which then
    is the same bytes in every file one version of the store writes: a reader checks the
    columns of ten thousand files by checking one schema.  One row group per table.
    (pyarrow before 17 cannot add footer metadata: there it goes into the schema as before.)
    """
    footer = hasattr(pq.ParquetWriter, "add_key_value_metadata")
    writer: Any = None
    try:
        for table in tables:
            if writer is None:
                metadata = metadata if metadata is not None else (table.schema.metadata or {})
                writer = pq.ParquetWriter(
                    where, _saved_schema(metadata, footer), filesystem=fs, compression="zstd"
                )
            writer.write_table(
                table.replace_schema_metadata(None), row_group_size=max(1, table.num_rows)
            )
        if writer is None:
            writer = pq.ParquetWriter(
                where, _saved_schema(metadata or {}, footer), filesystem=fs, compression="zstd"
            )
        if footer:
            writer.add_key_value_metadata(dict(metadata or {}))
    finally:
        if writer is not None:
            writer.close()


def _saved_schema(metadata: Mapping[bytes, bytes], footer: bool) -> pa.Schema:
    """The schema pyarrow saves in the file: with only the schema version when the rest goes to
    the footer (the same bytes in every file; older readers still see the version)."""
    if not footer:
        return ARROW_SCHEMA.with_metadata(metadata)
    return ARROW_SCHEMA.with_metadata({k: v for k, v in metadata.items() if k == META_SCHEMA})


def file_metadata(pf: Any) -> Dict[bytes, bytes]:
    """A parquet file's key-value metadata, wherever the writer put it (footer or saved schema)."""
    meta = dict(pf.schema_arrow.metadata or {})
    meta.update((k, v) for k, v in (pf.metadata.metadata or {}).items() if k != b"ARROW:schema")
    return meta


def publish(results: str, name: str, write: Callable[[str, Any], None]) -> str:
    """Have ``write(path, filesystem)`` make file ``name`` under ``results``, atomically.

    Locally: under a hidden temporary name (leftovers of killed writers are cleaned
    first), fsynced, then renamed, so no partial file ever stands under ``name``; an
    interrupt removes the temporary file.  Remotely the object store publishes whole
    objects, within the remote timeout.  Full disks raise :class:`~audit.errors.DiskFull`.
    """
    fs, root = loc.filesystem(results)
    try:
        loc.bounded(results, "creating", lambda: fs.create_dir(root, recursive=True))
    except (OSError, pa.ArrowException) as exc:
        _raise_disk_full(exc, results)
        raise StoreError(
            f"cannot create results directory {results!r}: {one_line(exc, 200)}"
        ) from None
    final = f"{root}/{name}"
    if loc.is_url(results):
        try:
            loc.bounded(results, "writing to", lambda: write(final, fs))
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(
                f"cannot write to results directory {results!r}: {one_line(exc, 200)}"
            ) from None
        return final
    loc.clean_leftovers(root)
    tmp = f"{root}/{loc.leftover_name('file', name)}"
    try:
        write(tmp, None)
        with open(tmp, "rb+") as f:  # the bytes are on disk before the name appears
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException as exc:  # an interrupt too: no temporary file is left behind
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, (OSError, pa.ArrowException)):
            _raise_disk_full(exc, results)
            raise StoreError(
                f"cannot write to results directory {results!r}: {one_line(exc, 200)}"
            ) from None
        raise
    return final


def _raise_disk_full(exc: BaseException, results: str) -> None:
    """Turn a full disk (ENOSPC, however pyarrow spells it) into DiskFull naming path and free
    space."""
    if getattr(exc, "errno", None) != errno.ENOSPC and "No space left on device" not in str(exc):
        return
    free: Optional[int] = None
    if not loc.is_url(results):
        where = os.path.abspath(results)
        while where and not os.path.exists(where):
            where = os.path.dirname(where)
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            free = None
    raise DiskFull(results, free) from None


def _delete_quietly(fs: Any, path: str) -> None:
    try:
        fs.delete_file(path)
    except (OSError, pa.ArrowException):
        pass


# --------------------------------------------------------------------------- reading one file


def open_file(path: str) -> Tuple[Any, int]:
    """A validated ``pq.ParquetFile`` and its schema version; raises StoreError (SchemaError)."""
    loc.check_regular(path)  # a FIFO would block the open
    fs, inner = loc.filesystem(path)
    try:
        pf = loc.bounded(
            path,
            "reading",
            lambda: pq.ParquetFile(
                inner, filesystem=fs if loc.is_url(path) else None, pre_buffer=False
            ),
        )
        return pf, validate(pf.schema_arrow.with_metadata(file_metadata(pf)), path)
    except SchemaError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise StoreError(f"{path}: unreadable ({one_line(exc, 200)})") from None


def read_run_file(path: str, columns: Optional[Sequence[str]] = None) -> pa.Table:
    """One run file as a table of the current schema (upgraded if older); raises StoreError.

    ``columns`` prunes what is read (parquet is columnar: unread columns cost nothing).
    The table keeps the file's key-value metadata.
    """
    wanted = list(columns or COLUMNS)
    pf, version = open_file(path)
    names = set(pf.schema_arrow.names)
    present = [c for c in wanted if c in names]
    try:
        table = loc.bounded(path, "reading", lambda: pf.read(columns=present, use_threads=False))
        rows = pf.metadata.num_rows
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise StoreError(f"{path}: unreadable ({one_line(exc, 200)})") from None
    if not present:  # no column asked for is in the file: keep its row count for the nulls
        table = pa.table({"__rows": pa.nulls(rows)})
    return upgrade(table, version, wanted).replace_schema_metadata(file_metadata(pf))
