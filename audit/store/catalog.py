"""Which runs are under the given paths: files listed, checked from their footers, runs numbered.

Before any row is read, every file is checked from its parquet footer: the schema version
(newer ones are refused), every column's name and type (:func:`audit.store.runfile.validate`),
and the runs it holds with their environments.  A bad file is named with the reason and
left out; it never stops the others.  Local footers are read by DuckDB in one parallel
call (its table function ``parquet_kv_metadata``), which also hands back pyarrow's own
serialised schema (``ARROW:schema``), so types are checked without opening each file
again; a file DuckDB cannot read is found by halving the list, and described by pyarrow.

The same run (same run id) found twice, under another name or inside a compacted file,
counts once, and a note says so.  Runs are numbered in start-time order; two runs share
an environment id when every environment field is equal.  Host side.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa

from audit.errors import StoreError, one_line
from audit.store import location as loc
from audit.store import runfile
from audit.store.location import Skipped
from audit.store.runfile import RunMeta
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
    held: Dict[str, Tuple[str, ...]] = field(default_factory=dict)  # every readable file -> its run ids

    def runs_of_file(self) -> Dict[int, List[int]]:
        """File index -> the indices of the runs read from it."""
        out: Dict[int, List[int]] = {}
        for i, run in enumerate(self.runs):
            out.setdefault(run.file, []).append(i)
        return out


def build(paths: Iterable[str]) -> Catalog:
    """List, check and number every run under ``paths`` (files or directories)."""
    files, skipped = loc.run_files(paths)
    described = _describe_all(files)
    good: List[Tuple[FileEntry, List[RunMeta]]] = []
    for path in files:
        got = described[path]
        if isinstance(got, Skipped):
            skipped.append(got)
        else:
            good.append(got)
    return _number(good, skipped)


# --------------------------------------------------------------------------- footers


def _describe_all(files: Sequence[str]) -> Dict[str, Any]:
    """Path -> (FileEntry, runs) or Skipped, for every file."""
    local = [f for f in files if not loc.is_url(f)]
    remote = [f for f in files if loc.is_url(f)]
    out: Dict[str, Any] = {}
    for path, meta in _footers(local).items():
        out[path] = meta if isinstance(meta, Skipped) else _entry(path, meta)
    with ThreadPoolExecutor(8) as pool:  # remote footers wait on the network, not the CPU
        out.update(zip(remote, pool.map(_describe_with_pyarrow, remote)))
    return out


def _footers(paths: Sequence[str]) -> Dict[str, Any]:
    """Path -> key-value metadata (bytes -> bytes), or Skipped when the footer is unreadable."""
    if not paths:
        return {}
    import duckdb

    try:
        rows = duckdb.connect().execute("SELECT file_name, key, value FROM parquet_kv_metadata(?)",
                                        [list(paths)]).fetchall()
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.Error:
        if len(paths) <= _SMALL:
            return {p: _footers_one(p) for p in paths}
        half = len(paths) // 2
        return {**_footers(paths[:half]), **_footers(paths[half:])}
    out: Dict[str, Any] = {p: {} for p in paths}
    for name, key, value in rows:
        out.setdefault(name, {})[bytes(key)] = bytes(value)
    return out


def _footers_one(path: str) -> Any:
    import duckdb

    try:
        rows = duckdb.connect().execute("SELECT key, value FROM parquet_kv_metadata(?)", [[path]]).fetchall()
        return {bytes(key): bytes(value) for key, value in rows}
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.Error as exc:
        return Skipped(path, f"unreadable ({one_line(exc, 200)})")


def _entry(path: str, meta: Mapping[bytes, bytes]) -> Any:
    """A file's entry from its footer metadata (pyarrow's saved schema when there is one)."""
    saved = meta.get(b"ARROW:schema")
    if saved is None:  # written by another tool: ask pyarrow for the schema it reads
        return _describe_with_pyarrow(path)
    try:
        schema = _saved_schema(saved).with_metadata(dict(meta))
    except (ValueError, pa.ArrowException):
        return _describe_with_pyarrow(path)
    return _checked(path, schema)


def _saved_schema(saved: bytes) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(saved)))


def _describe_with_pyarrow(path: str) -> Any:
    try:
        pf, _ = runfile.open_file(path)
    except StoreError as exc:
        return Skipped(path, _reason(exc, path))
    return _checked(path, pf.schema_arrow)


def _checked(path: str, schema: pa.Schema) -> Any:
    try:
        version = runfile.validate(schema, path)
        runs = runfile.runs_in(schema.metadata, path)
        if any(r.run_id is None or r.started is None or r.env is None for r in runs):
            runs = [_completed(path, runs[0], version, set(schema.names))]
    except StoreError as exc:
        return Skipped(path, _reason(exc, path))
    columns = frozenset(n for n in schema.names if n in runfile.TYPE_OF)
    return FileEntry(path, version, columns, runfile.META_RUNS in (schema.metadata or {})), runs


def _completed(path: str, run: RunMeta, version: int, present: set) -> RunMeta:
    """A run whose metadata lacks its id, start or environment, completed from its first row.

    Only files not written by this store (or by an old one, before the start time was
    in the metadata) need it.
    """
    wanted = [c for c in (*runfile.RUN_FIELDS, *ENV_FIELDS) if c in present]
    first: Dict[str, Any] = {}
    if wanted:
        table = runfile.read_run_file(path, wanted)
        first = table.slice(0, 1).to_pylist()[0] if table.num_rows else {}
    env = run.env if run.env is not None else tuple(
        None if first.get(n) is None else str(first.get(n)) for n in ENV_FIELDS)
    return RunMeta(run.run_id or first.get("run_id") or path, run.started or first.get("run_started"), env)


def _reason(exc: BaseException, path: str) -> str:
    text = str(exc)
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


# --------------------------------------------------------------------------- numbering


def _number(good: List[Tuple[FileEntry, List[RunMeta]]], skipped: List[Skipped]) -> Catalog:
    """Drop runs already read elsewhere, order runs by start time, number environments.

    Compacted files are taken first: a run they hold is then never read again from its
    original file, which is left out without being opened.
    """
    order = sorted(range(len(good)), key=lambda i: not good[i][0].compacted)  # stable: path order kept
    files: List[FileEntry] = []
    taken: Dict[str, str] = {}
    duplicates: List[Tuple[str, str]] = []
    placed: List[Tuple[Tuple[str, int, int], RunMeta, int]] = []
    for i in order:
        entry, runs = good[i]
        fresh = [r for r in runs if r.run_id not in taken]
        duplicates.extend((entry.path, taken[r.run_id]) for r in runs if r.run_id in taken)
        if not fresh:
            continue
        files.append(entry)
        for position, run in enumerate(fresh):
            taken[str(run.run_id)] = entry.path
            placed.append(((run.started or "", len(files) - 1, position), run, len(files) - 1))
    placed.sort(key=lambda item: item[0])
    envs: Dict[Tuple[Optional[str], ...], int] = {}
    runs_out = []
    for _, run, file_index in placed:
        env = envs.setdefault(run.env or (None,) * len(ENV_FIELDS), len(envs))
        runs_out.append(RunEntry(str(run.run_id), run.started, env, file_index))
    env_dicts = [dict(zip(ENV_FIELDS, values)) for values in envs]
    held = {entry.path: tuple(str(r.run_id) for r in runs) for entry, runs in good}
    return Catalog(files, runs_out, env_dicts, skipped, _duplicate_notes(duplicates), held)


def _duplicate_notes(duplicates: List[Tuple[str, str]]) -> List[str]:
    if not duplicates:
        return []
    files = len({path for path, _ in duplicates})
    copy, first = duplicates[0]
    return [f"{len(duplicates)} run(s) in {files} file(s) were already read under another name and are "
            f"counted once (duplicates ignored; e.g. {copy} repeats {first})"]
