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
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audit.errors import SchemaError, StoreError, one_line
from audit.worker.environment import FIELDS as ENV_FIELDS
from audit.worker.records import HASH_ALGORITHM, RECORD_FIELDS, SCHEMA_VERSION, Run

META_SCHEMA = b"audit.schema_version"
META_RUN_ID = b"audit.run_id"
META_ENV = b"audit.env"

#: Every seed the CLI accepts: torch takes -2**63 .. 2**64-1 (numpy 0 .. 2**64-1).
SEED_TYPE = pa.decimal128(20, 0)

#: One output of one op of a trace (see audit/worker/trace.py).
TRACE_OUTPUT = pa.struct([("fingerprint", pa.string()), ("dtype", pa.string()), ("shape", pa.string()),
                          ("sample", pa.string())])
#: One op of a trace: its position, name, module path, where its tensor inputs came from
#: ("#i.j": output j of op i; otherwise the fingerprint of a tensor made outside the trace).
TRACE_OP = pa.struct([("index", pa.int32()), ("op", pa.string()), ("module", pa.string()),
                      ("inputs", pa.list_(pa.string())), ("outputs", pa.list_(TRACE_OUTPUT))])

_TYPES: Dict[str, pa.DataType] = {
    "seed": SEED_TYPE,
    "repeat_identical": pa.bool_(),
    "elapsed_s": pa.float64(),
    "fingerprint_s": pa.float64(),
    "blocks": pa.binary(),
    "block_elements": pa.int64(),
    "invariant": pa.bool_(),
    "trace": pa.list_(TRACE_OP),
}

#: Columns whose type an older schema wrote differently: version -> column -> type.
_OLD_TYPES: Dict[int, Dict[str, pa.DataType]] = {1: {"seed": pa.int64()}, 2: {"seed": pa.int64()}}
RUN_FIELDS = ("run_id", "run_started")
COLUMNS: Tuple[str, ...] = (*RECORD_FIELDS, *RUN_FIELDS, *ENV_FIELDS)
ARROW_SCHEMA = pa.schema([pa.field(name, _TYPES.get(name, pa.string())) for name in COLUMNS])


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


def check_writable(results: str) -> None:
    """Fail now, not after an hour of probes, if ``results`` cannot take a new file.

    Creates the location and writes and deletes a small hidden file in it: a permission
    check alone would miss read-only mounts, full disks and running as root.
    """
    fs, root = _filesystem(results)
    probe = f"{root}/.write-check-{uuid.uuid4().hex}.tmp"
    try:
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(probe) as out:
            out.write(b"determinism-audit write check\n")
        fs.delete_file(probe)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot write to results directory {results!r}: {one_line(exc, 200)}; "
                         "choose another --results") from None


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
        except BaseException as exc:  # an interrupt too: no temporary file is left behind
            if os.path.exists(tmp):
                os.remove(tmp)
            if isinstance(exc, (OSError, pa.ArrowException)):
                raise StoreError(f"cannot write to results directory {results!r}: {one_line(exc, 200)}") from None
            raise
    else:
        pq.write_table(table, final, filesystem=fs, compression="zstd")
    return final if "://" not in results else f"{results.rstrip('/')}/{run.file_name}"


# --------------------------------------------------------------------------- reading

#: Upgrade steps: ``_UPGRADES[n]`` turns a version-n table into version n+1 (asv's update_to_N).
def _update_to_2(table: pa.Table) -> pa.Table:
    """Schema 1 -> 2: add ``hash_algorithm``; every schema-1 fingerprint is xxh3_128."""
    if "hash_algorithm" in table.column_names:  # pragma: no cover - never written by schema 1
        return table
    column = pa.array([HASH_ALGORITHM] * len(table), pa.string())
    return table.append_column(pa.field("hash_algorithm", pa.string()), column)


def _update_to_3(table: pa.Table) -> pa.Table:
    """Schema 2 -> 3: ``seed`` widens to hold every accepted seed; the new columns are unknown
    (null): no blocks, no trace, no invariance case."""
    if "seed" in table.column_names:
        i = table.column_names.index("seed")
        table = table.set_column(i, pa.field("seed", SEED_TYPE), table.column("seed").cast(SEED_TYPE))
    return table


_UPGRADES: Dict[int, Callable[[pa.Table], pa.Table]] = {1: _update_to_2, 2: _update_to_3}


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
    if version < 1:  # there never was one: no upgrade path starts there
        raise SchemaError(f"{path}: unreadable schema version {meta[META_SCHEMA]!r}")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: written by a newer determinism-audit (schema {version}, this one reads "
            f"up to {SCHEMA_VERSION}); upgrade determinism-audit to read it"
        )
    return version


def read_run_file(path: str, columns: Optional[Sequence[str]] = None, dictionary: bool = False) -> pa.Table:
    """One run file as a table with the current schema (upgraded if older); raises StoreError.

    ``columns`` prunes what is read (parquet is columnar: unread columns cost nothing).
    ``dictionary`` reads string columns dictionary-encoded, so repeated values (probe ids,
    fingerprints shared across runs) are stored once and become pandas categoricals.
    """
    return read_table_and_footer(path, columns, dictionary)[0]


def read_table_and_footer(path: str, columns: Optional[Sequence[str]], dictionary: bool) -> Tuple[pa.Table, Any]:
    """The table and the parquet footer (whose statistics can answer questions for free)."""
    wanted_all = list(columns or COLUMNS)
    strings = [c for c in wanted_all if TYPE_OF.get(c) == pa.string()]
    fs, local = _filesystem(path)
    try:
        pf = _parquet_file(path, local, fs, strings if dictionary else [])
        schema = pf.schema_arrow  # a property that rebuilds the schema on every access
        version = _schema_version(schema, path)
        _check_types(schema, path, version)
        present = set(schema.names)
        wanted = [c for c in wanted_all if c in present]
        # files are read in parallel by the caller; threads inside one small file only contend
        table = pf.read(columns=wanted, use_threads=False).replace_schema_metadata(schema.metadata)
        if not wanted:  # no column asked for is in the file: keep its row count for the nulls
            table = pa.table({"__rows": pa.nulls(pf.metadata.num_rows)}).replace_schema_metadata(schema.metadata)
    except SchemaError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise StoreError(f"{path}: unreadable ({one_line(exc, 200)})") from None
    while version < SCHEMA_VERSION:
        table = _UPGRADES[version](table)
        version += 1
    for name in wanted_all:  # a column the file lacks reads as nulls
        if name not in table.column_names:
            kind = read_type(name, dictionary)
            table = table.append_column(pa.field(name, kind), pa.nulls(len(table), kind))
        elif dictionary and name in strings and not pa.types.is_dictionary(table.schema.field(name).type):
            table = table.set_column(table.column_names.index(name), name,
                                     table.column(name).dictionary_encode())
    return _conform(table.select(wanted_all), path, dictionary), pf


def _conform(table: pa.Table, path: str, dictionary: bool) -> pa.Table:
    """Cast all-null columns of arrow's null type (hand-made files) to our types."""
    for i, name in enumerate(table.column_names):
        got = table.schema.field(i).type
        if name in ARROW_SCHEMA.names and _is_null_type(got):
            table = table.set_column(i, name, pa.nulls(len(table), read_type(name, dictionary)))
    return table


def _check_types(schema: pa.Schema, path: str, version: int = SCHEMA_VERSION) -> None:
    """Refuse a file whose columns have other types than ours (hand-made, or another tool's).

    Every column of the file is checked, not only those read, so a file is skipped or
    read the same whatever a caller asks of it.  Without this one such file makes
    concatenating every file fail, and nothing is read at all.  Types are those of the
    file's own schema version (:data:`_OLD_TYPES`); the upgrade steps convert them.
    """
    old = _OLD_TYPES.get(version, {})
    for i, name in enumerate(schema.names):
        want = old.get(name, TYPE_OF.get(name))
        if want is None:
            continue
        got = schema.field(i).type
        if got == want or _is_null_type(got) or (pa.types.is_dictionary(got) and got.value_type == want):
            continue
        raise SchemaError(f"{path}: not a determinism-audit run file (column {name!r} is {got}, not {want})")


#: Column name -> arrow type (a dict: ``_check_types`` runs for every file read).
TYPE_OF: Dict[str, pa.DataType] = {f.name: f.type for f in ARROW_SCHEMA}


def _is_null_type(kind: pa.DataType) -> bool:
    return pa.types.is_null(kind) or (pa.types.is_dictionary(kind) and pa.types.is_null(kind.value_type))


def _parquet_file(path: str, local: str, fs: pafs.FileSystem, dictionary: Sequence[str]) -> Any:
    """Open a parquet file, decoding ``dictionary`` columns as dictionaries.

    pyarrow raises KeyError for a dictionary column the file lacks (an older schema, a
    hand-made file); then only the columns present are asked for.
    """
    # pre_buffer off: run files are small, and its read-ahead machinery cost more than the read
    remote: Dict[str, Any] = {"filesystem": fs} if "://" in path else {"pre_buffer": False}
    try:
        return pq.ParquetFile(local, read_dictionary=list(dictionary) or None, **remote)
    except KeyError:
        present = set(pq.read_schema(local, **({"filesystem": fs} if "://" in path else {})).names)
        return pq.ParquetFile(local, read_dictionary=[c for c in dictionary if c in present] or None, **remote)


def read_rows(path: str, rows: Sequence[int], columns: Sequence[str]) -> List[Dict[str, Any]]:
    """Chosen rows (positions in the file) of one run file, as dicts; raises StoreError.

    The comparison reads wide columns (samples, messages) only for the few rows it shows.
    """
    table = read_run_file(path, columns)
    return table.take(pa.array(list(rows), type=pa.int64())).to_pylist()


def read_type(name: str, dictionary: bool) -> pa.DataType:
    kind = ARROW_SCHEMA.field(name).type
    return pa.dictionary(pa.int32(), kind) if dictionary and kind == pa.string() else kind



def read_runs(paths: Iterable[str], columns: Optional[Sequence[str]] = None,
              dictionary: bool = False) -> Tuple[Any, List[Skipped]]:
    """Every run file under ``paths`` as one pandas DataFrame, and the files skipped.

    With ``dictionary`` string columns become pandas categoricals (see :func:`read_run_file`).
    """
    from audit.store.scan import read_run_rows

    rows = read_run_rows(paths, columns or COLUMNS, dictionary=dictionary, env=False)
    return rows.rows.drop(columns=["row", "run"]), rows.skipped


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
        if run.run_id in self._index():  # as MemoryStore: a stored run is never replaced
            raise StoreError(f"run {run.run_id} exists; runs are immutable")
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
