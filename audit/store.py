"""The store: one immutable parquet file per run, and reading many of them back.

Host side (pandas, pyarrow).  Only this module touches run files.  A run file holds one
row per case: the columns of :data:`audit.records.RECORD_FIELDS`, then ``run_id`` and
``run_started``, then every environment field.  Its key-value metadata carries the schema
version, the run id and the environment as JSON.  Nothing is pickled.

Writes are atomic: a local file is written under a hidden temporary name and renamed into
place, so a killed run never leaves a half-written file under a final name; object stores
publish a whole object at once.  Names are unique (time, machine id, random run id), so
concurrent writers never overwrite each other.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Tuple

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audit.environment import FIELDS as ENV_FIELDS
from audit.errors import SchemaError, StoreError
from audit.records import RECORD_FIELDS, SCHEMA_VERSION

META_SCHEMA = b"audit.schema_version"
META_RUN_ID = b"audit.run_id"
META_ENV = b"audit.env"

_TYPES: Dict[str, pa.DataType] = {
    "seed": pa.int64(),
    "repeat_identical": pa.bool_(),
    "elapsed_s": pa.float64(),
    "fingerprint_s": pa.float64(),
}
RUN_FIELDS = ("run_id", "run_started")
COLUMNS: Tuple[str, ...] = (*RECORD_FIELDS, *RUN_FIELDS, *ENV_FIELDS)
ARROW_SCHEMA = pa.schema([pa.field(name, _TYPES.get(name, pa.string())) for name in COLUMNS])


@dataclass
class Run:
    """One run: its id, start time, environment and case records."""

    run_id: str
    started: str  # ISO 8601, UTC
    env: Dict[str, Optional[str]]
    records: List[Dict[str, Any]] = field(default_factory=list)

    @classmethod
    def new(cls, env: Mapping[str, Optional[str]]) -> "Run":
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return cls(uuid.uuid4().hex, now, dict(env))

    @property
    def file_name(self) -> str:
        stamp = self.started.replace("-", "").replace(":", "").split(".")[0] + "Z"
        machine = self.env.get("machine_id") or "unknown"
        return f"{stamp}_{machine}_{self.run_id[:12]}.parquet"


def run_table(run: Run) -> pa.Table:
    """The run as an arrow table with the fixed schema; unknown record keys are dropped."""
    columns: Dict[str, List[Any]] = {name: [] for name in COLUMNS}
    env = {name: run.env.get(name) for name in ENV_FIELDS}
    for record in run.records:
        for name in RECORD_FIELDS:
            columns[name].append(record.get(name))
        columns["run_id"].append(run.run_id)
        columns["run_started"].append(run.started)
        for name, value in env.items():
            columns[name].append(value)
    metadata = {
        META_SCHEMA: str(SCHEMA_VERSION).encode(),
        META_RUN_ID: run.run_id.encode(),
        META_ENV: json.dumps(env, sort_keys=True).encode(),
    }
    return pa.Table.from_pydict(columns, schema=ARROW_SCHEMA.with_metadata(metadata))


def _filesystem(location: str) -> Tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or any URI pyarrow understands."""
    if "://" in location:
        try:
            return pafs.FileSystem.from_uri(location)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise StoreError(f"cannot open results location {location!r}: {exc}") from None
    return pafs.LocalFileSystem(), os.path.abspath(location)


def write_run(run: Run, results: str) -> str:
    """Write ``run`` as a new file under ``results``; return its path.  Atomic and unique."""
    fs, root = _filesystem(results)
    table = run_table(run)
    try:
        fs.create_dir(root, recursive=True)
    except OSError as exc:
        raise StoreError(f"cannot create results directory {results!r}: {exc}") from None
    final = f"{root}/{run.file_name}"
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{root}/.{run.file_name}.{os.getpid()}.tmp"
        try:
            pq.write_table(table, tmp, compression="zstd")
            with open(tmp, "rb+") as f:  # the bytes are on disk before the name appears
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise StoreError(f"cannot write to results directory {results!r}: {exc}") from None
    else:
        pq.write_table(table, final, filesystem=fs, compression="zstd")
    return final if "://" not in results else f"{results.rstrip('/')}/{run.file_name}"


# --------------------------------------------------------------------------- reading

#: Upgrade steps: ``_UPGRADES[n]`` turns a version-n table into version n+1 (asv's update_to_N).
_UPGRADES: Dict[int, Callable[[pa.Table], pa.Table]] = {}


@dataclass(frozen=True)
class Skipped:
    """A file that was not read, and why; reports list them by name."""

    path: str
    reason: str


def find_run_files(paths: Iterable[str]) -> Tuple[List[str], List[Skipped]]:
    """Expand directories (recursively) into their ``*.parquet`` files; hidden names are skipped."""
    found: List[str] = []
    missing: List[Skipped] = []
    for location in paths:
        fs, root = _filesystem(location)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            missing.append(Skipped(location, "no such file or directory"))
        elif info.type == pafs.FileType.Directory:
            selector = pafs.FileSelector(root, recursive=True)
            names = [i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]
            found.extend(sorted(p for p in names if p.endswith(".parquet") and not _hidden(p, root)))
        else:
            found.append(location if "://" in location else root)
    return found, missing


def _hidden(path: str, root: str) -> bool:
    rel = path[len(root):].lstrip("/")
    return any(part.startswith(".") for part in rel.split("/"))


def _schema_version(schema: pa.Schema, path: str) -> int:
    meta = schema.metadata or {}
    if META_SCHEMA not in meta:
        raise SchemaError(f"{path}: not a determinism-audit run file (no schema version)")
    try:
        version = int(meta[META_SCHEMA])
    except ValueError:
        raise SchemaError(f"{path}: unreadable schema version {meta[META_SCHEMA]!r}") from None
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: written by a newer determinism-audit (schema {version}, this one reads "
            f"up to {SCHEMA_VERSION}); upgrade determinism-audit to read it"
        )
    return version


def read_run_file(path: str, columns: Optional[Sequence[str]] = None) -> pa.Table:
    """One run file as a table with the current schema (upgraded if older); raises StoreError."""
    fs, local = _filesystem(path)
    try:
        pf = pq.ParquetFile(local, filesystem=fs) if "://" in path else pq.ParquetFile(local)
        version = _schema_version(pf.schema_arrow, path)
        wanted = [c for c in (columns or COLUMNS) if c in pf.schema_arrow.names]
        table = pf.read(columns=wanted)
    except SchemaError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise StoreError(f"{path}: unreadable ({_short(exc)})") from None
    while version < SCHEMA_VERSION:
        table = _UPGRADES[version](table)
        version += 1
    for name in columns or COLUMNS:  # a column the file lacks reads as nulls
        if name not in table.column_names:
            table = table.append_column(pa.field(name, ARROW_SCHEMA.field(name).type),
                                        pa.nulls(len(table), ARROW_SCHEMA.field(name).type))
    return table.select(list(columns or COLUMNS))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


def read_runs(paths: Iterable[str], columns: Optional[Sequence[str]] = None) -> Tuple[Any, List[Skipped]]:
    """Every run file under ``paths`` as one pandas DataFrame, and the files skipped."""
    files, skipped = find_run_files(paths)
    tables: List[pa.Table] = []
    for path in files:
        try:
            tables.append(read_run_file(path, columns))
        except StoreError as exc:
            skipped.append(Skipped(path, str(exc).split(": ", 1)[-1]))
    if not tables:
        empty = pa.schema([ARROW_SCHEMA.field(c) for c in (columns or COLUMNS)]).empty_table()
        return empty.to_pandas(), skipped
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    return table.to_pandas(), skipped


# --------------------------------------------------------------------------- interface


class Store(Protocol):
    """Where runs live.  :class:`ParquetStore` on disk, :class:`MemoryStore` its twin."""

    def save(self, run: Run) -> str: ...

    def run_ids(self) -> List[str]: ...

    def load(self, run_id: str) -> Run: ...


def _run_from_table(table: pa.Table) -> Run:
    rows = table.to_pylist()
    meta = table.schema.metadata or {}
    env = json.loads(meta[META_ENV]) if META_ENV in meta else {k: rows[0].get(k) for k in ENV_FIELDS} if rows else {}
    run_id = meta.get(META_RUN_ID, b"").decode() or (rows[0]["run_id"] if rows else "")
    started = rows[0]["run_started"] if rows else ""
    records = [{k: row[k] for k in RECORD_FIELDS} for row in rows]
    return Run(run_id, started, env, records)


class ParquetStore:
    """Runs as parquet files in a directory (or URI)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._paths: Dict[str, str] = {}

    def save(self, run: Run) -> str:
        path = write_run(run, self.root)
        self._paths[run.run_id] = path
        return run.run_id

    def _index(self) -> Dict[str, str]:
        files, _ = find_run_files([self.root])
        for path in files:
            if path not in self._paths.values():
                try:
                    meta = pq.read_schema(path).metadata or {}
                except (OSError, pa.ArrowException):
                    continue
                if META_RUN_ID in meta:
                    self._paths[meta[META_RUN_ID].decode()] = path
        return self._paths

    def run_ids(self) -> List[str]:
        return sorted(self._index())

    def load(self, run_id: str) -> Run:
        path = self._index().get(run_id)
        if path is None:
            raise StoreError(f"no run {run_id!r} in {self.root}")
        fs, local = _filesystem(path)
        table = pq.read_table(local, filesystem=fs)
        return _run_from_table(table)


class MemoryStore:
    """The in-memory twin of :class:`ParquetStore`, round-tripping through the same table."""

    def __init__(self) -> None:
        self._tables: Dict[str, pa.Table] = {}

    def save(self, run: Run) -> str:
        if run.run_id in self._tables:
            raise StoreError(f"run {run.run_id} exists; runs are immutable")
        self._tables[run.run_id] = run_table(run)
        return run.run_id

    def run_ids(self) -> List[str]:
        return sorted(self._tables)

    def load(self, run_id: str) -> Run:
        try:
            return _run_from_table(self._tables[run_id])
        except KeyError:
            raise StoreError(f"no run {run_id!r} in memory") from None
