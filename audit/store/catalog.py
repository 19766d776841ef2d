"""Which runs are under the given paths: files listed, checked from their footers, runs numbered.

Before any row is read, every file is checked from its parquet footer: the schema version
(newer ones are refused), every column's name and type (:func:`audit.store.schema.check_columns`),
and the runs it holds with their environments.  A bad file is named with the reason and
left out; it never stops the others.  Local footers are read by DuckDB in one parallel
call (its table function ``parquet_kv_metadata``), which also hands back pyarrow's own
serialised schema (``ARROW:schema``), so types are checked without opening each file
again; a file DuckDB cannot read is found by halving the list, and described by pyarrow.

The same run found twice, under another name or inside a compacted file, counts once:
:func:`number` keeps the first and returns the others as duplicates, and
:func:`audit.store.scan.build` compares their rows (a digest of every row, in the current
schema, run id and start left out), noting a copy and naming a run whose rows differ (a
subset written by hand, an edited file) among the skipped files.  Runs are numbered in
start-time order; two runs share an environment id when every environment field is equal.
Host side.
"""

from __future__ import annotations

import base64
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    NoReturn,
    Optional,
    Sequence,
    Tuple,
    Type,
)

import pyarrow as pa

from audit.errors import StoreError, one_line
from audit.store import location as loc
from audit.store import runfile, schema
from audit.store.location import Skipped
from audit.store.schema import RunMeta
from audit.worker.environment import FIELDS as ENV_FIELDS

#: Below this many files a failing footer batch is checked file by file.
_SMALL = 16


@dataclass(frozen=True)
class FileEntry:
    """A readable run file: its schema version and the run-file columns it has."""

    path: str
    version: int
    columns: FrozenSet[str]
    compacted: bool  # several runs, told apart by the run_id column

    @property
    def remote(self) -> bool:
        return loc.is_url(self.path)


@dataclass(frozen=True)
class RunEntry:
    """One run, where it is read from, and its environment id."""

    run_id: str
    started: Optional[str]
    env: int  # index into Catalog.envs
    file: int  # index into Catalog.files


@dataclass
class Catalog:
    """Every readable run under some paths, and every file left out (with the reason)."""

    files: List[FileEntry]
    runs: List[RunEntry]  # in run order: start time, then file order
    envs: List[Dict[str, Optional[str]]]  # environment id -> every environment field (None: unset)
    skipped: List[Skipped]
    notes: List[str] = field(default_factory=list)
    # every readable file -> its run ids
    held: Dict[str, Tuple[str, ...]] = field(default_factory=dict)


def build_all(paths: Iterable[str], con: Any = None) -> Catalog:
    """Every run of every readable file under ``paths``, copies included (each its own entry, in
    file order; one environment): for questions about files, such as which rows a file holds."""
    files, skipped = loc.run_files(paths)
    described = describe_all(files, con)
    entries: List[FileEntry] = []
    runs: List[RunEntry] = []
    for path in files:
        got = described[path]
        if isinstance(got, Skipped):
            skipped.append(got)
            continue
        entries.append(got[0])
        runs.extend(RunEntry(str(r.run_id), r.started, 0, len(entries) - 1) for r in got[1])
    return Catalog(entries, runs, [{}], skipped)


# --------------------------------------------------------------------------- footers


def interrupts() -> Tuple[Type[BaseException], ...]:
    """What DuckDB raises when Ctrl-C stops a query: its InterruptException, or (DuckDB 2.x) a
    plain ``RuntimeError('Query interrupted')``; pass each to :func:`reraise_interrupt`."""
    import duckdb

    return (duckdb.InterruptException, RuntimeError)


def interruptible(con: Any, call: Callable[[], Any]) -> Any:
    """``call()`` (a query on ``con``) in a helper thread, the main thread waiting: Ctrl-C then
    interrupts the query (``con.interrupt()``) and raises KeyboardInterrupt at once.  DuckDB
    does not see Ctrl-C itself while it runs a query with parameters (measured with DuckDB
    2.0.1)."""
    done, box = loc.in_thread(call, "audit-query")
    try:
        while not done.wait(0.25):
            pass
    except KeyboardInterrupt:
        con.interrupt()
        done.wait(5.0)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def reraise_interrupt(exc: BaseException) -> NoReturn:
    """KeyboardInterrupt for a query Ctrl-C stopped (the command then exits 130); ``exc``
    otherwise."""
    import duckdb

    if isinstance(exc, duckdb.InterruptException) or "interrupted" in str(exc).lower():
        raise KeyboardInterrupt from None
    raise exc


def describe_all(files: Sequence[str], con: Any) -> Dict[str, Any]:
    """Path -> (FileEntry, runs) or Skipped, for every file."""
    local = [f for f in files if not loc.is_url(f)]
    remote = [f for f in files if loc.is_url(f)]
    out: Dict[str, Any] = {}
    for path, meta in _footers(local, con).items():
        out[path] = meta if isinstance(meta, Skipped) else _entry(path, meta)
    with ThreadPoolExecutor(8) as pool:  # remote footers wait on the network, not the CPU
        out.update(zip(remote, pool.map(_describe_with_pyarrow, remote)))
    _complete(out)
    return out


def _footers(paths: Sequence[str], con: Any = None) -> Dict[str, Any]:
    """Path -> key-value metadata (bytes -> bytes), or Skipped when the footer is unreadable."""
    if not paths:
        return {}
    import duckdb

    con = con or duckdb.connect()
    try:
        rows = _with_io_threads(con, lambda: con.execute(_KV, [list(paths)]).fetchall())
    except interrupts() as exc:
        reraise_interrupt(exc)
    except duckdb.Error:
        if len(paths) <= _SMALL:
            return {p: _footers_one(p) for p in paths}
        half = len(paths) // 2
        return {**_footers(paths[:half], con), **_footers(paths[half:], con)}
    out: Dict[str, Any] = {p: {} for p in paths}
    saved: Dict[
        str, bytes
    ] = {}  # digest -> the saved schema, fetched once for all files sharing it
    for name, key, value, digest in sorted(rows, key=lambda row: row[2] is None):
        if digest is not None:
            value = saved.setdefault(digest, bytes(value)) if value is not None else saved[digest]
        out.setdefault(name, {})[bytes(key)] = b"" if value is None else bytes(value)
    return out


def _with_io_threads(con: Any, call: Any) -> Any:
    """``call()`` with more DuckDB threads than cores: reading ten thousand footers waits on
    the disk more than on the CPU (measured: half the time on a cold cache)."""
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute(f"SET threads = {max(8, 4 * (os.cpu_count() or 1))}")
    try:
        return call()
    finally:
        con.execute(f"SET threads = {int(threads)}")


#: Every footer's key-value metadata; pyarrow's saved schema (the same bytes in every file one
#: store version writes) is sent once per distinct value, the other files get its digest.
_KV = """
SELECT file_name, key, CASE WHEN digest IS NULL OR first THEN value END, digest FROM (
    SELECT file_name, key, value, digest,
           row_number() OVER (PARTITION BY digest) = 1 AS first FROM (
        SELECT file_name, key, value, CASE WHEN key = 'ARROW:schema' THEN md5(value) END AS digest
        FROM parquet_kv_metadata(?)))"""


def _footers_one(path: str) -> Any:
    import duckdb

    try:
        rows = (
            duckdb.connect()
            .execute("SELECT key, value FROM parquet_kv_metadata(?)", [[path]])
            .fetchall()
        )
        return {bytes(key): b"" if value is None else bytes(value) for key, value in rows}
    except interrupts() as exc:
        reraise_interrupt(exc)
    except duckdb.Error as exc:
        return Skipped(path, f"unreadable ({one_line(exc, 300).replace(path, 'the file')})")


def _entry(path: str, meta: Mapping[bytes, bytes]) -> Any:
    """A file's entry from its footer metadata (pyarrow's saved schema when there is one)."""
    saved = meta.get(b"ARROW:schema")
    if saved is None:  # written by another tool: ask pyarrow for the schema it reads
        return _describe_with_pyarrow(path)
    try:
        version = schema.schema_version(meta, path)
        columns = _columns(saved, version)
        runs = schema.runs_in(meta, path)
    except StoreError as exc:
        return Skipped(path, _reason(exc, path).replace(_NAMELESS, path))
    except (ValueError, pa.ArrowException):
        return _describe_with_pyarrow(path)
    return FileEntry(path, version, columns, schema.META_RUNS in meta), runs


#: Stands for the file's name in a reason found once for many files with the same schema.
_NAMELESS = "<file>"


@functools.lru_cache(maxsize=256)
def _columns(saved: bytes, version: int) -> FrozenSet[str]:
    """The checked columns of a saved schema; every file one store version writes shares it."""
    decoded = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(saved)))
    return schema.check_columns(decoded, version, _NAMELESS)


def _describe_with_pyarrow(path: str) -> Any:
    try:
        pf, version = runfile.open_file(path)
        meta = runfile.file_metadata(pf)
        runs = schema.runs_in(meta, path)
    except StoreError as exc:
        return Skipped(path, _reason(exc, path))
    columns = frozenset(n for n in pf.schema_arrow.names if n in schema.TYPE_OF)
    return FileEntry(path, version, columns, schema.META_RUNS in meta), runs


# --------------------------------------------------------------------------- runs without metadata

#: The columns a run's id, start and environment can be read from when the metadata lacks them.
_RUN_COLUMNS = (*schema.RUN_FIELDS, *ENV_FIELDS)


def _complete(described: Dict[str, Any]) -> None:
    """Fill in runs whose metadata lacks id, start or environment, from their rows (in place).

    Only files written by an older store (before the start time was in the metadata) or by
    another tool need it; local ones are read together, one column each, by DuckDB.
    """
    groups: Dict[FrozenSet[str], List[str]] = {}
    for path, got in described.items():
        if not isinstance(got, Skipped) and _incomplete(got[1]):
            groups.setdefault(got[0].columns & _missing(got[1][0]), []).append(path)
    for present, paths in groups.items():
        local = [p for p in paths if not loc.is_url(p)]
        firsts = _first_values(local, [c for c in _RUN_COLUMNS if c in present]) if local else {}
        for path in paths:
            entry, runs = described[path]
            try:
                first = firsts[path] if path in firsts else _first_row(path, present)
            except StoreError as exc:
                described[path] = Skipped(path, _reason(exc, path))
                continue
            described[path] = entry, [_completed(path, runs[0], first)]


def _missing(run: RunMeta) -> FrozenSet[str]:
    """The columns that can tell what the run's metadata does not."""
    return frozenset(
        [
            *(["run_id"] if run.run_id is None else []),
            *(["run_started"] if run.started is None else []),
            *(ENV_FIELDS if run.env is None else []),
        ]
    )


def _incomplete(runs: List[RunMeta]) -> bool:
    return any(r.run_id is None or r.started is None or r.env is None for r in runs)


def _first_values(paths: List[str], columns: List[str]) -> Dict[str, Dict[str, Any]]:
    """Path -> column -> its value (the file's smallest; run-constant columns have one), by
    DuckDB."""
    import duckdb

    if not columns:
        return {p: {} for p in paths}
    select = ", ".join(f'min(CAST("{c}" AS VARCHAR))' for c in columns)
    sql = f"SELECT filename, {select} FROM read_parquet($files, filename = true) GROUP BY filename"
    try:
        rows = duckdb.connect().execute(sql, {"files": paths}).fetchall()
    except interrupts() as exc:
        reraise_interrupt(exc)
    except duckdb.Error:
        return {}  # one of them is unreadable: each is read alone, and the bad one named
    return {name: dict(zip(columns, values)) for name, *values in rows}


def _first_row(path: str, present: FrozenSet[str]) -> Dict[str, Any]:
    wanted = [c for c in _RUN_COLUMNS if c in present]
    if not wanted:
        return {}
    table = runfile.read_run_file(path, wanted)
    return table.slice(0, 1).to_pylist()[0] if table.num_rows else {}


def _completed(path: str, run: RunMeta, first: Dict[str, Any]) -> RunMeta:
    """A run whose metadata lacks its id, start or environment, completed from its rows."""
    env = (
        run.env
        if run.env is not None
        else tuple(None if first.get(n) is None else str(first.get(n)) for n in ENV_FIELDS)
    )
    return RunMeta(
        run.run_id or first.get("run_id") or path, run.started or first.get("run_started"), env
    )


def _reason(exc: BaseException, path: str) -> str:
    text = str(exc)
    return text[len(path) + 2 :] if text.startswith(f"{path}: ") else text


# --------------------------------------------------------------------------- numbering


def number(
    good: List[Tuple[FileEntry, List[RunMeta]]], skipped: List[Skipped]
) -> Tuple[Catalog, List[Tuple[int, RunMeta, int]]]:
    """Drop runs already read elsewhere, order runs by start time, number environments.

    Compacted files are taken first: a run they hold is then never read again from its
    original file.  Also returned: each run left out as a duplicate, as (index into
    ``good`` of its file, the run, index into ``good`` of the file it was taken from).
    """
    # stable: path order kept
    order = sorted(range(len(good)), key=lambda i: not good[i][0].compacted)
    files: List[FileEntry] = []
    taken: Dict[str, str] = {}
    taken_from: Dict[str, int] = {}
    duplicates: List[Tuple[int, RunMeta, int]] = []
    placed: List[Tuple[Tuple[str, int, int], RunMeta, int]] = []
    for i in order:
        entry, runs = good[i]
        fresh = [r for r in runs if r.run_id not in taken]
        duplicates.extend((i, r, taken_from[str(r.run_id)]) for r in runs if r.run_id in taken)
        if not fresh:
            continue
        files.append(entry)
        for position, run in enumerate(fresh):
            taken[str(run.run_id)] = entry.path
            taken_from[str(run.run_id)] = i
            placed.append(((run.started or "", len(files) - 1, position), run, len(files) - 1))
    placed.sort(key=lambda item: item[0])
    envs: Dict[Tuple[Optional[str], ...], int] = {}
    runs_out = []
    for _, run, file_index in placed:
        env = envs.setdefault(run.env or (None,) * len(ENV_FIELDS), len(envs))
        runs_out.append(RunEntry(str(run.run_id), run.started, env, file_index))
    env_dicts = [dict(zip(ENV_FIELDS, values)) for values in envs]
    held = {entry.path: tuple(str(r.run_id) for r in runs) for entry, runs in good}
    return Catalog(files, runs_out, env_dicts, skipped, [], held), duplicates


#: The columns whose values make a run's content (its id and start are where it is, not what).
CONTENT_COLUMNS = tuple(c for c in schema.COLUMNS if c not in schema.RUN_FIELDS)


def content_sql(alias: str = "") -> str:
    """A 64-bit digest of one row's content (every column in :data:`CONTENT_COLUMNS`), in SQL."""
    prefix = f"{alias}." if alias else ""
    return "hash(" + ", ".join(f'{prefix}"{c}"' for c in CONTENT_COLUMNS) + ")"
