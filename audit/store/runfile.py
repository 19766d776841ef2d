"""The run file: its schema and upgrades, writing one, and reading one back.

Host side (pyarrow).  A run file holds one row per case: the columns of
:data:`audit.worker.records.RECORD_FIELDS`, then ``run_id`` and ``run_started``, then every
environment field.  Its key-value metadata carries the schema version, the run id, the
start time and the environment as JSON.  Nothing is pickled.  A compacted file (see
:mod:`audit.store.compact`) holds many runs in the same columns, and lists them in its
metadata (``audit.runs``).

Writes are atomic: a local file is written under a hidden temporary name and renamed into
place, so a killed run never leaves a half-written file under a final name; object stores
publish a whole object at once.  Names are unique (time, machine id, random run id), so
concurrent writers never overwrite each other.

Older schemas are upgraded on read from one declaration (:data:`UPGRADES`), which both
this module's arrow reader and the SQL engine (:mod:`audit.store.engine`) apply.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

from audit.errors import DiskFull, SchemaError, StoreError, one_line
from audit.store import location as loc
from audit.store.location import Skipped
from audit.worker.environment import FIELDS as ENV_FIELDS
from audit.worker.records import HASH_ALGORITHM, RECORD_FIELDS, SCHEMA_VERSION, Run

__all__ = ["Skipped", "check_writable", "read_run_file", "run_table", "write_run"]

META_SCHEMA = b"audit.schema_version"
META_RUN_ID = b"audit.run_id"
META_STARTED = b"audit.run_started"
META_ENV = b"audit.env"
META_RUNS = b"audit.runs"  # compacted files: a JSON list of {run_id, started, env, rows, source}

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

RUN_FIELDS = ("run_id", "run_started")
COLUMNS: Tuple[str, ...] = (*RECORD_FIELDS, *RUN_FIELDS, *ENV_FIELDS)
ARROW_SCHEMA = pa.schema([pa.field(name, _TYPES.get(name, pa.string())) for name in COLUMNS])
#: Column name -> arrow type (a dict: validation runs for every file read).
TYPE_OF: Dict[str, pa.DataType] = {f.name: f.type for f in ARROW_SCHEMA}

#: Columns compare relies on: without one a file would give false verdicts (a missing
#: ``fingerprint`` reads as a new stream, a missing ``status`` as an error), so it is refused.
REQUIRED = ("case_key", "probe", "probe_key", "probe_version", "device", "params", "status", "fingerprint",
            "repeat_identical")


# --------------------------------------------------------------------------- upgrades


@dataclass(frozen=True)
class Upgrade:
    """What changed from schema n to n+1 (asv's update_to_N, declared rather than coded).

    ``added`` maps each new column to the value rows of older files read as (None: unknown);
    ``retyped`` maps a column to the type schema n stored it as (it is cast on read).
    """

    added: Mapping[str, Any] = field(default_factory=dict)
    retyped: Mapping[str, pa.DataType] = field(default_factory=dict)


UPGRADES: Dict[int, Upgrade] = {
    # every schema-1 fingerprint is xxh3_128
    1: Upgrade(added={"hash_algorithm": HASH_ALGORITHM}),
    # seed widens to hold every accepted seed; no blocks, trace or invariance before 3
    2: Upgrade(added={name: None for name in ("blocks", "block_elements", "trace", "invariance", "invariant",
                                              "variant_values")},
               retyped={"seed": pa.int64()}),
}


@functools.lru_cache(maxsize=1024)
def stored_type(name: str, version: int) -> Optional[pa.DataType]:
    """The type a schema-``version`` file stores column ``name`` as (None: not ours)."""
    for step in range(version, SCHEMA_VERSION):
        if name in UPGRADES[step].retyped:
            return UPGRADES[step].retyped[name]
    return TYPE_OF.get(name)


def missing_value(name: str, version: int) -> Any:
    """What column ``name`` reads as in a schema-``version`` file that lacks it."""
    for step in range(version, SCHEMA_VERSION):
        if name in UPGRADES[step].added:
            return UPGRADES[step].added[name]
    return None


def upgrade(table: pa.Table, version: int, columns: Sequence[str]) -> pa.Table:
    """``table`` (read from a schema-``version`` file) as ``columns`` of the current schema."""
    out = []
    for name in columns:
        kind = TYPE_OF[name]
        if name in table.column_names:
            column = table.column(name)
            if column.type != kind:
                column = pa.nulls(len(table), kind) if _is_null_type(column.type) else column.cast(kind)
        else:
            column = pa.array([missing_value(name, version)] * len(table), kind)
        out.append(column)
    return pa.Table.from_arrays(out, schema=pa.schema([ARROW_SCHEMA.field(n) for n in columns]))


# --------------------------------------------------------------------------- validation


def schema_version(metadata: Optional[Mapping[bytes, bytes]], path: str) -> int:
    """The file's schema version; SchemaError if it has none, a garbled or a newer one."""
    meta = metadata or {}
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


def validate(schema: pa.Schema, path: str) -> int:
    """Check a file's arrow schema; return its schema version.  Raises SchemaError.

    Every column is checked, not only those a caller reads, so a file is skipped or read
    the same whatever is asked of it: a duplicated name, a column of another type than
    its schema version wrote, or a missing required column (:data:`REQUIRED`).
    """
    version = schema_version(schema.metadata, path)
    seen = set()
    for i, name in enumerate(schema.names):
        if name in seen:
            raise SchemaError(f"{path}: not a determinism-audit run file (column {name!r} appears twice)")
        seen.add(name)
        want = stored_type(name, version)
        got = schema.field(i).type
        if want is None or got == want or _is_null_type(got) or (pa.types.is_dictionary(got)
                                                                  and got.value_type == want):
            continue
        raise SchemaError(f"{path}: not a determinism-audit run file (column {name!r} is {got}, not {want})")
    missing = [name for name in REQUIRED if name not in seen]
    if missing:
        raise SchemaError(f"{path}: not a determinism-audit run file (no column {', '.join(map(repr, missing))})")
    return version


def _is_null_type(kind: pa.DataType) -> bool:
    return pa.types.is_null(kind) or (pa.types.is_dictionary(kind) and pa.types.is_null(kind.value_type))


# --------------------------------------------------------------------------- runs of a file


@dataclass(frozen=True)
class RunMeta:
    """One run as a file's metadata describes it (None where the metadata does not say)."""

    run_id: Optional[str]
    started: Optional[str]
    env: Optional[Tuple[Optional[str], ...]]  # values in ENV_FIELDS order
    rows: Optional[int] = None


def runs_in(metadata: Optional[Mapping[bytes, bytes]], path: str) -> List[RunMeta]:
    """The runs a file's metadata lists: several for a compacted file, else one (maybe partial)."""
    meta = metadata or {}
    try:
        if META_RUNS in meta:
            listed = json.loads(meta[META_RUNS])
            return [RunMeta(str(r["run_id"]), _text(r.get("started")), env_tuple(r.get("env")), r.get("rows"))
                    for r in listed]
        run_id = meta[META_RUN_ID].decode() if meta.get(META_RUN_ID) else None
        started = meta[META_STARTED].decode() if META_STARTED in meta else None
        env = env_tuple(json.loads(meta[META_ENV])) if META_ENV in meta else None
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise SchemaError(f"{path}: unreadable run metadata") from None
    return [RunMeta(run_id, started, env)]


def env_tuple(stored: Any) -> Tuple[Optional[str], ...]:
    """An environment (a JSON object) as values in ENV_FIELDS order; ValueError if not an object."""
    if not isinstance(stored, dict):
        raise ValueError("the environment is not a JSON object")
    return tuple(_text(stored.get(name)) for name in ENV_FIELDS)


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


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
        raise StoreError(f"cannot write to results directory {results!r}: {one_line(exc, 200)}; "
                         "choose another --results") from None


def write_run(run: Run, results: str) -> str:
    """Write ``run`` as a new file under ``results``; return its path.  Atomic and unique."""
    loc.check(results)
    loc.check_persistent(results)
    table = run_table(run)
    final = publish(results, run.file_name, lambda where, fs: pq.write_table(
        table, where, filesystem=fs, compression="zstd"))
    return final if not loc.is_url(results) else loc.join(results, run.file_name)


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
        raise StoreError(f"cannot create results directory {results!r}: {one_line(exc, 200)}") from None
    final = f"{root}/{name}"
    if loc.is_url(results):
        try:
            loc.bounded(results, "writing to", lambda: write(final, fs))
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot write to results directory {results!r}: {one_line(exc, 200)}") from None
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
            raise StoreError(f"cannot write to results directory {results!r}: {one_line(exc, 200)}") from None
        raise
    return final


def _raise_disk_full(exc: BaseException, results: str) -> None:
    """Turn a full disk (ENOSPC, however pyarrow spells it) into DiskFull naming path and free space."""
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
    fs, inner = loc.filesystem(path)
    try:
        pf = loc.bounded(path, "reading", lambda: pq.ParquetFile(inner, filesystem=fs if loc.is_url(path) else None,
                                                                  pre_buffer=False))
        return pf, validate(pf.schema_arrow, path)
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
    present = [c for c in wanted if c in set(pf.schema_arrow.names)]
    try:
        table = loc.bounded(path, "reading", lambda: pf.read(columns=present, use_threads=False))
        rows = pf.metadata.num_rows
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise StoreError(f"{path}: unreadable ({one_line(exc, 200)})") from None
    if not present:  # no column asked for is in the file: keep its row count for the nulls
        table = pa.table({"__rows": pa.nulls(rows)})
    return upgrade(table, version, wanted).replace_schema_metadata(pf.schema_arrow.metadata)
