"""Reading many run files fast: the columns compare needs, as integer codes.

A year of nightly results is thousands of small parquet files and ten million rows.  This
module reads only the requested columns, in parallel, turns every string column into
global integer codes as each file arrives (pandas categoricals at the end), and keeps the
environment once per run instead of once per row.  Files that cannot be read are skipped
and named, as everywhere in the store.  Host side; only the store and this module read files.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import xxhash

from audit.errors import SchemaError, StoreError
from audit.store.runfile import (
    META_ENV,
    META_RUN_ID,
    RUN_FIELDS,
    TYPE_OF,
    Skipped,
    find_run_files,
    read_run_file,
    read_table_and_footer,
    read_type,
)
from audit.worker.environment import FIELDS as ENV_FIELDS


@dataclass
class RunRows:
    """Case rows of many runs, and one row per run for what is constant within a run.

    ``rows`` holds the requested columns plus ``run``, the position of the row's run in
    ``runs``; ``runs`` holds ``path``, ``run_id``, ``run_started`` and every environment
    field.  The environment is the same on every row of a run, so keeping it once per run
    (rather than on ten million rows) is what lets a year of results fit in memory.
    """

    rows: Any  # pandas DataFrame: the columns asked for, ``run`` and ``row`` (position in its file)
    runs: Any  # pandas DataFrame
    skipped: List[Skipped]


def read_run_rows(paths: Iterable[str], columns: Sequence[str], dictionary: bool = True,
                  env: bool = True, threads: int = 4) -> RunRows:
    """Read the named case columns of every run file, in parallel; skip unreadable files.

    Files are read by a small thread pool (parquet decoding releases the GIL).  The same
    run given twice (a file named directly and through its directory) counts once.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    files, skipped = find_run_files(paths)
    files = list(dict.fromkeys(files))
    columns = [c for c in columns if c not in ("run", "row")]

    def one(path: str) -> Tuple[str, Any]:
        try:
            return path, _read_with_run(path, columns, dictionary, env)
        except StoreError as exc:
            return path, Skipped(path, str(exc).split(": ", 1)[-1])

    encoder = _Encoder(columns) if dictionary else None
    tables: List[pa.Table] = []
    runs: List[Dict[str, Any]] = []
    seen: set = set()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for _, got in _bounded_map(pool, one, files):
            if isinstance(got, Skipped):
                skipped.append(got)
                continue
            table, run = got
            if run["run_id"] in seen:
                continue
            seen.add(run["run_id"])
            runs.append(run)
            if encoder is not None:  # keep integer codes, drop the file's strings at once
                encoder.add(table)
            else:
                tables.append(table)
    lengths = np.array(encoder.lengths if encoder else [len(t) for t in tables], dtype=np.int64)
    frame = encoder.frame() if encoder else _concat(tables, columns, dictionary)
    del tables
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    frame["run"] = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    frame["row"] = (np.arange(len(frame), dtype=np.int64) - np.repeat(starts, lengths)).astype(np.int32)
    return RunRows(frame, pd.DataFrame(runs, columns=_run_columns(env)), skipped)


def _bounded_map(pool: Any, func: Callable[[str], Any], items: Sequence[str], ahead: int = 32) -> Iterator[Any]:
    """``pool.map`` that keeps at most ``ahead`` results waiting, so memory stays flat."""
    pending: Deque[Any] = collections.deque()
    it = iter(items)
    for item in itertools.islice(it, ahead):
        pending.append(pool.submit(func, item))
    while pending:
        result = pending.popleft().result()
        for item in itertools.islice(it, 1):
            pending.append(pool.submit(func, item))
        yield result


class _Codes:
    """One string column's global dictionary, fed the per-file dictionaries.

    Run files of one environment carry the same dictionaries (the same cases in the same
    order, the same fingerprints), so the mapping from a file's codes to global codes is
    cached under a digest of the dictionary's buffers: a year of nightly runs from a few
    environments builds a few mappings, not one per file.
    """

    CACHE = 1024  # mappings kept per column

    def __init__(self) -> None:
        self.index: Dict[Any, int] = {}
        self.values: List[Any] = []
        self.mappings: Dict[Tuple[int, str], np.ndarray] = {}

    def _code(self, value: Any) -> int:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.values)
            self.values.append(value)
        return code

    def encode(self, column: Any) -> np.ndarray:
        """Global codes for one file's column (-1 for null).

        Consecutive files usually carry the same dictionary, so the common case is one
        ``equals`` and one numpy gather; pyarrow compute kernels are avoided on purpose,
        their per-call overhead dominated reading thousands of small files.
        """
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if not pa.types.is_dictionary(array.type):
            array = array.dictionary_encode()
        mapping = self._mapping(array.dictionary)
        indices = array.indices
        if not indices.null_count:
            return mapping[indices.to_numpy()] if len(mapping) else np.zeros(0, np.int32)
        positions = np.nan_to_num(indices.to_numpy(zero_copy_only=False), nan=-1).astype(np.int64)
        if not len(mapping):
            return np.full(len(positions), -1, dtype=np.int32)
        return np.where(positions >= 0, mapping[np.maximum(positions, 0)], -1).astype(np.int32)

    def _mapping(self, dictionary: pa.Array) -> np.ndarray:
        digest = xxhash.xxh3_128()
        digest.update(f"{dictionary.type}|{dictionary.offset}|{len(dictionary)}|".encode())
        for buffer in dictionary.buffers():
            digest.update(b"-" if buffer is None else buffer)
        key = (len(dictionary), digest.hexdigest())
        mapping = self.mappings.get(key)
        if mapping is None:
            mapping = np.fromiter((self._code(v) for v in dictionary.to_pylist()), dtype=np.int32,
                                  count=len(dictionary))
            if len(self.mappings) >= self.CACHE:
                self.mappings.pop(next(iter(self.mappings)))
            self.mappings[key] = mapping
        return mapping


class _Encoder:
    """Run tables turned into global integer codes as they arrive (strings) or kept as arrow (others)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.strings = {c: _Codes() for c in self.columns if TYPE_OF.get(c) == pa.string()}
        self.codes: Dict[str, List[np.ndarray]] = {c: [] for c in self.strings}
        self.other: Dict[str, List[Any]] = {c: [] for c in self.columns if c not in self.strings}
        self.lengths: List[int] = []

    def add(self, table: pa.Table) -> None:
        self.lengths.append(len(table))
        for name, codes in self.strings.items():
            self.codes[name].append(codes.encode(table.column(name)))
        for name, chunks in self.other.items():
            chunks.extend(table.column(name).chunks)

    def frame(self) -> Any:
        import pandas as pd

        data: Dict[str, Any] = {}
        for name in self.columns:
            if name in self.strings:
                codes = np.concatenate(self.codes.pop(name)) if self.lengths else np.zeros(0, np.int32)
                categories = pd.Index(self.strings[name].values, dtype=object)
                data[name] = pd.Categorical.from_codes(codes, categories=categories)
            else:
                kind = TYPE_OF.get(name, pa.null())
                data[name] = pa.chunked_array(self.other.pop(name), type=kind).to_pandas()
        return pd.DataFrame(data)


def _run_columns(env: bool) -> List[str]:
    return ["path", "run_id", "run_started", *(ENV_FIELDS if env else ())]


def _read_with_run(path: str, columns: Sequence[str], dictionary: bool, env: bool) -> Tuple[pa.Table, Dict[str, Any]]:
    """The case columns of one file, and its run description (id, start, environment)."""
    table, pf = read_table_and_footer(path, columns, dictionary)
    meta = table.schema.metadata or {}
    run: Dict[str, Any] = {"path": path, "run_id": meta.get(META_RUN_ID, b"").decode("utf-8", "replace") or None,
                           "run_started": _first_value(pf, "run_started")}
    first: Dict[str, Any] = {}
    if run["run_id"] is None or run["run_started"] is None or (env and META_ENV not in meta):
        got = read_run_file(path, [*RUN_FIELDS, *ENV_FIELDS]).slice(0, 1).to_pylist()
        first = got[0] if got else {}
        run["run_id"] = run["run_id"] or first.get("run_id") or path
        run["run_started"] = run["run_started"] or first.get("run_started")
    if env:
        try:
            run.update(_env_from_json(meta[META_ENV]) if META_ENV in meta else
                       {name: _text(first.get(name)) for name in ENV_FIELDS})
        except ValueError:  # garbled metadata: the file was not written by this store
            raise SchemaError(f"{path}: unreadable environment metadata") from None
    return table.replace_schema_metadata(None), run


@functools.lru_cache(maxsize=4096)
def _env_cached(raw: bytes) -> Tuple[Tuple[str, Optional[str]], ...]:
    stored = json.loads(raw)
    if not isinstance(stored, dict):
        raise ValueError("the environment is not a JSON object")
    return tuple((name, _text(stored.get(name))) for name in ENV_FIELDS)


def _env_from_json(raw: bytes) -> Dict[str, Optional[str]]:
    """A run's environment from its metadata; runs of one environment share the parse."""
    return dict(_env_cached(raw))


def _first_value(pf: Any, column: str) -> Optional[str]:
    """A run-constant string column's value from the footer statistics, without reading it."""
    try:
        md = pf.metadata
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        if column not in names:
            return None
        stats = md.row_group(0).column(names.index(column)).statistics
        if stats is not None and stats.has_min_max and stats.min == stats.max:
            return str(stats.min)
    except (IndexError, pa.ArrowException):
        pass
    return None


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _concat(tables: List[pa.Table], columns: Sequence[str], dictionary: bool) -> Any:
    if not tables:
        schema = pa.schema([pa.field(c, read_type(c, dictionary)) for c in columns])
        return schema.empty_table().to_pandas()
    table = pa.concat_tables(tables)
    if dictionary:
        table = table.unify_dictionaries()
    return table.to_pandas(self_destruct=True, split_blocks=True)
