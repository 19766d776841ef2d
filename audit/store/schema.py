"""The run-file schema: its columns and types, the upgrades of older versions, validation.

Host side (pyarrow).  A run file holds one row per case: the columns of
:data:`audit.worker.records.RECORD_FIELDS`, then ``run_id`` and ``run_started``, then every
environment field.  Its key-value metadata carries the schema version, the run id, the start
time and the environment as JSON; a compacted file lists its runs instead (``audit.runs``).

Older schemas are upgraded on read from one declaration (:data:`UPGRADES`), which both the
arrow reader (:mod:`audit.store.runfile`) and the SQL engine (:mod:`audit.store.engine`)
apply, and one function checks a file's columns (:func:`check_columns`) for every reader.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa

from audit.errors import SchemaError
from audit.worker.environment import FIELDS as ENV_FIELDS
from audit.worker.records import HASH_ALGORITHM, RECORD_FIELDS, SCHEMA_VERSION

META_SCHEMA = b"audit.schema_version"
META_RUN_ID = b"audit.run_id"
META_STARTED = b"audit.run_started"
META_ENV = b"audit.env"
#: Compacted files: JSON {"envs": [environment, ...], "runs": [{run_id, started, env (an index
#: into envs), source (the file it came from)}, ...]}.
META_RUNS = b"audit.runs"

#: Every seed the CLI accepts: torch takes -2**63 .. 2**64-1 (numpy 0 .. 2**64-1).
SEED_TYPE = pa.decimal128(20, 0)

#: One output of one op of a trace (see audit/worker/trace.py).
TRACE_OUTPUT = pa.struct(
    [
        ("fingerprint", pa.string()),
        ("dtype", pa.string()),
        ("shape", pa.string()),
        ("sample", pa.string()),
    ]
)
#: One op of a trace: its position, name, module path, where its tensor inputs came from
#: ("#i.j": output j of op i; otherwise the fingerprint of a tensor made outside the trace).
TRACE_OP = pa.struct(
    [
        ("index", pa.int32()),
        ("op", pa.string()),
        ("module", pa.string()),
        ("inputs", pa.list_(pa.string())),
        ("outputs", pa.list_(TRACE_OUTPUT)),
    ]
)

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
REQUIRED = (
    "case_key",
    "probe",
    "probe_key",
    "probe_version",
    "device",
    "params",
    "status",
    "fingerprint",
    "repeat_identical",
)


# --------------------------------------------------------------------------- upgrades


@dataclass(frozen=True)
class SchemaUpgrade:
    """What changed from schema n to n+1 (asv's update_to_N, declared rather than coded).

    ``added`` maps each new column to the value rows of older files read as (None: unknown);
    ``retyped`` maps a column to the type schema n stored it as (it is cast on read).
    """

    added: Mapping[str, Any] = field(default_factory=dict)
    retyped: Mapping[str, pa.DataType] = field(default_factory=dict)


UPGRADES: Dict[int, SchemaUpgrade] = {
    # every schema-1 fingerprint is xxh3_128
    1: SchemaUpgrade(added={"hash_algorithm": HASH_ALGORITHM}),
    # seed widens to hold every accepted seed; no blocks, trace or invariance before 3
    2: SchemaUpgrade(
        added={
            name: None
            for name in (
                "blocks",
                "block_elements",
                "trace",
                "invariance",
                "invariant",
                "variant_values",
            )
        },
        retyped={"seed": pa.int64()},
    ),
    # no family before 4: compare asks the catalogue for the family of such rows
    3: SchemaUpgrade(added={"family": None}),
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
                column = (
                    pa.nulls(len(table), kind) if _is_null_type(column.type) else column.cast(kind)
                )
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
    """Check a file's arrow schema (its metadata holding the file's); return its schema version.

    Raises SchemaError.  See :func:`check_columns`.
    """
    version = schema_version(schema.metadata, path)
    check_columns(schema, version, path)
    return version


def check_columns(schema: pa.Schema, version: int, path: str) -> FrozenSet[str]:
    """The run-file columns of a schema-``version`` file; SchemaError if it is not one.

    Every column is checked, not only those a caller reads, so a file is skipped or read
    the same whatever is asked of it: a duplicated name, a column of another type than
    its schema version wrote, or a missing required column (:data:`REQUIRED`).
    """
    seen = set()
    for i, name in enumerate(schema.names):
        if name in seen:
            raise SchemaError(
                f"{path}: not a determinism-audit run file (column {name!r} appears twice)"
            )
        seen.add(name)
        want = stored_type(name, version)
        got = schema.field(i).type
        if (
            want is None
            or got == want
            or _is_null_type(got)
            or (pa.types.is_dictionary(got) and got.value_type == want)
        ):
            continue
        raise SchemaError(
            f"{path}: not a determinism-audit run file (column {name!r} is {got}, not {want})"
        )
    missing = [name for name in REQUIRED if name not in seen]
    if missing:
        raise SchemaError(
            f"{path}: not a determinism-audit run file (no column {', '.join(map(repr, missing))})"
        )
    return frozenset(name for name in seen if name in TYPE_OF)


def _is_null_type(kind: pa.DataType) -> bool:
    return pa.types.is_null(kind) or (
        pa.types.is_dictionary(kind) and pa.types.is_null(kind.value_type)
    )


# --------------------------------------------------------------------------- runs of a file


@dataclass(frozen=True)
class RunMeta:
    """One run as a file's metadata describes it (None where the metadata does not say)."""

    run_id: Optional[str]
    started: Optional[str]
    env: Optional[Tuple[Optional[str], ...]]  # values in ENV_FIELDS order


def runs_in(metadata: Optional[Mapping[bytes, bytes]], path: str) -> List[RunMeta]:
    """The runs a file's metadata lists: several for a compacted file, else one (maybe partial)."""
    meta = metadata or {}
    try:
        if META_RUNS in meta:
            listed = json.loads(meta[META_RUNS])
            envs = [env_tuple(e) for e in listed["envs"]]
            return [
                RunMeta(str(r["run_id"]), _text(r.get("started")), envs[r["env"]])
                for r in listed["runs"]
            ]
        run_id = meta[META_RUN_ID].decode() if meta.get(META_RUN_ID) else None
        started = meta[META_STARTED].decode() if META_STARTED in meta else None
        env = _stored_env(meta[META_ENV]) if META_ENV in meta else None
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError):
        raise SchemaError(f"{path}: unreadable run metadata") from None
    return [RunMeta(run_id, started, env)]


@functools.lru_cache(maxsize=4096)
def _stored_env(raw: bytes) -> Tuple[Optional[str], ...]:
    """An environment from its JSON; the runs of one environment share the parse."""
    return env_tuple(json.loads(raw))


def env_tuple(stored: Any) -> Tuple[Optional[str], ...]:
    """An environment (a JSON object) as values in ENV_FIELDS order; ValueError if not an object."""
    if not isinstance(stored, dict):
        raise ValueError("the environment is not a JSON object")
    return tuple(_text(stored.get(name)) for name in ENV_FIELDS)


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)
