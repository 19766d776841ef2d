"""Reading many run files with a query engine: DuckDB over the files of a :class:`Catalog`.

Why DuckDB: a year of nightly results from a fleet is tens of thousands of small parquet
files and a hundred million rows, and the question asked of them is a GROUP BY.  DuckDB
runs that GROUP BY over local parquet files in parallel, in C++, reading only the columns
asked for, within a memory limit, spilling to disk beyond it; it is one ``pip install``
with no server, and it scans Arrow data handed to it from Python as readily as files.
Polars or DataFusion would do the same job; DuckDB's ``read_parquet`` over an explicit
file list, its ``parquet_kv_metadata`` (footers of thousands of files in one parallel
call) and its bounded memory decided it.

Every query goes through :meth:`Engine.relation`: one SQL relation over the catalog's
files holding the asked-for columns *in the current schema* (older files upgraded in SQL
from the same declaration the arrow reader uses, :data:`audit.store.schema.UPGRADES`),
plus ``run`` (the run's index in the catalog) and ``env`` (its environment id).  Local
files go straight to ``read_parquet``; files behind a URL are read by pyarrow (within the
remote timeout) and handed to DuckDB as a stream of record batches.

A file that passes its footer check but fails while its rows are read (a corrupt page)
is found by halving the file list, named as skipped, and the query is run again without
it.  Host side.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    FrozenSet,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import pyarrow as pa

from audit.errors import StoreError, UsageError, one_line
from audit.store import catalog as catalog_mod
from audit.store import runfile, schema
from audit.store.catalog import Catalog, FileEntry
from audit.store.location import Skipped

_names = itertools.count()

#: A small table to join: column -> (SQL type, values).
Columns = Dict[str, Tuple[str, Sequence[Any]]]


def connect(memory_limit: Optional[str] = None) -> Any:
    """A DuckDB connection for one command: its own spill folder, and ``memory_limit`` (by default
    half the machine's RAM, :func:`default_memory_limit`; beyond it DuckDB spills to disk)."""
    import duckdb

    con = duckdb.connect(config={"preserve_insertion_order": False})
    spill = os.path.join(tempfile.gettempdir(), f"determinism-audit-duckdb-{os.getpid()}")
    con.execute(f"SET temp_directory = '{_quote(spill)}'")
    memory_limit = memory_limit or default_memory_limit()
    if memory_limit:
        try:
            con.execute(f"SET memory_limit = '{_quote(memory_limit)}'")
        except duckdb.Error as exc:
            raise UsageError(
                f"--memory-limit {memory_limit!r}: {one_line(exc, 160)} (try 2GB or 512MB)"
            ) from None
    return con


def close(con: Any) -> None:
    con.close()
    shutil.rmtree(
        os.path.join(tempfile.gettempdir(), f"determinism-audit-duckdb-{os.getpid()}"),
        ignore_errors=True,
    )


def _quote(text: str) -> str:
    return text.replace("'", "''")


#: Arrow type -> DuckDB type, for the run file's plain types.
_PLAIN_TYPES = {
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.binary(): "BLOB",
}


def duck_type(kind: pa.DataType) -> str:
    """The DuckDB spelling of one of the run file's arrow types."""
    if kind in _PLAIN_TYPES:
        return _PLAIN_TYPES[kind]
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision},{kind.scale})"
    if pa.types.is_list(kind):
        return f"{duck_type(kind.value_type)}[]"
    if pa.types.is_struct(kind):
        fields = ", ".join(
            f'"{kind.field(i).name}" {duck_type(kind.field(i).type)}'
            for i in range(kind.num_fields)
        )
        return f"STRUCT({fields})"
    raise TypeError(f"no DuckDB type for {kind}")  # pragma: no cover - the schema is fixed


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return f"'{_quote(value)}'"
    return repr(value)  # pragma: no cover - every default is a string or None today


#: Longest string a row may hold in these columns (bytes) to be read: a row past it is left out,
#: and its file named among the skipped with the count.  Parameters, keys and messages of
#: real probes are a few hundred bytes; megabyte strings only come from hostile or broken
#: files, and grouping them costs gigabytes.
MAX_STRING = 64 * 1024
LIMITED_COLUMNS = ("params", "case_key", "message")


def _limited(entry: FileEntry) -> Tuple[str, ...]:
    """The :data:`LIMITED_COLUMNS` that ``entry``'s file has."""
    return tuple(c for c in LIMITED_COLUMNS if c in entry.columns)


def default_memory_limit() -> Optional[str]:
    """Half of this machine's RAM (DuckDB's own default is 80 %), or None where unknown."""
    if sys.platform == "win32":  # no sysconf: DuckDB's default
        return None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: DuckDB's default
        return None
    if pages <= 0 or size <= 0:
        return None
    return f"{max(256, pages * size // 2 // (1 << 20))}MB"


class Engine:
    """Queries over the runs of one catalog, on one DuckDB connection.

    ``max_string``: rows with a longer string in :data:`LIMITED_COLUMNS` are left out and
    counted (:data:`MAX_STRING`; None reads every row, as compaction must).
    """

    def __init__(self, catalog: Catalog, con: Any, max_string: Optional[int] = MAX_STRING) -> None:
        self.catalog = catalog
        self.con = con
        self.max_string = max_string
        self._sizes_checked = max_string is None
        self._dropped: set = set()  # files found unreadable while their rows were read
        self._registered: List[str] = []  # Arrow streams handed to DuckDB (remote files)
        self._tables: List[str] = []

    # ------------------------------------------------------------------ relations

    def relation(
        self,
        columns: Sequence[str],
        runs: Optional[Collection[int]] = None,
        row_number: bool = False,
        flagged: bool = False,
    ) -> Tuple[str, Dict[str, Any]]:
        """SQL (and its parameters) for the rows of ``runs`` (all by default).

        The relation has ``columns`` in the current schema, ``run`` and ``env``, and with
        ``row_number`` the row's position in its file (``row``).  Rows with a string over
        :attr:`max_string` are left out; with ``flagged`` they are kept instead, with their
        :data:`LIMITED_COLUMNS` NULL and their file's path in ``audit_over`` (NULL elsewhere),
        so that one scan can both read the rows and count those (see :meth:`query`).
        """
        wanted = set(range(len(self.catalog.runs))) if runs is None else set(runs)
        by_file: Dict[int, List[int]] = {}
        for i in sorted(wanted):
            by_file.setdefault(self.catalog.runs[i].file, []).append(i)
        groups: Dict[Tuple[Any, ...], List[int]] = {}
        for f in by_file:
            entry = self.catalog.files[f]
            key = ("remote",) if entry.remote else (entry.version, entry.columns, entry.compacted)
            groups.setdefault(key, []).append(f)
        parts: List[str] = []
        params: Dict[str, Any] = {}
        for key, files in groups.items():
            if key == ("remote",):
                parts.append(self._remote_part(columns, files, by_file, row_number, flagged))
            else:
                part = self._local_part(columns, files, by_file, row_number, params, flagged)
                compacted = self.catalog.files[files[0]].compacted
                parts.append(
                    part
                    + (self._runs_window(files, by_file) if runs is not None and compacted else "")
                )
        if not parts:  # nothing to read: an empty relation of the right shape
            return self._empty(columns, row_number, flagged), params
        return " UNION ALL ".join(f"({p})" for p in parts), params

    def _local_part(
        self,
        columns: Sequence[str],
        files: List[int],
        by_file: Dict[int, List[int]],
        row_number: bool,
        params: Dict[str, Any],
        flagged: bool,
    ) -> str:
        entries = [self.catalog.files[f] for f in files]
        first = entries[0]
        name = f"audit_map_{next(_names)}"
        paths, file_col, run_col, env_col, id_col = [], [], [], [], []
        for f, entry in zip(files, entries):
            paths.append(entry.path)
            for i in by_file[f]:
                run = self.catalog.runs[i]
                file_col.append(entry.path)
                run_col.append(i)
                env_col.append(run.env)
                id_col.append(run.run_id)
        self.table(
            name,
            {
                "path": ("VARCHAR", file_col),
                "run": ("INTEGER", run_col),
                "env": ("INTEGER", env_col),
                "run_id": ("VARCHAR", id_col),
            },
        )
        param = f"p{len(params)}"
        params[param] = paths
        values = {c: self._value(c, first) for c in columns}
        join = "r.filename = m.path" + (" AND r.run_id = m.run_id" if first.compacted else "")
        limited = _limited(first)
        over = self._over(limited, "r.")
        flag = "CAST(NULL AS VARCHAR)"
        if self.max_string is not None and limited:
            if flagged:  # no filter: oversized rows stay, their long strings NULL, their file named
                for c in limited:
                    if c in values:
                        values[c] = f"CASE WHEN {over} THEN NULL ELSE {values[c]} END"
                flag = f"CASE WHEN {over} THEN m.path END"
            else:
                join += f" AND NOT ({over})"
        select = [f'{value} AS "{c}"' for c, value in values.items()]
        select += [f"{flag} AS audit_over"] if flagged else []
        extra = ", r.file_row_number AS row" if row_number else ""
        options = ", file_row_number = true" if row_number else ""
        return (
            f"SELECT {', '.join(select)}, m.run, m.env{extra} "
            f"FROM read_parquet(${param}, filename = true{options}) AS r "
            f"JOIN {name} AS m ON {join}"
        )

    def _runs_window(self, files: List[int], by_file: Dict[int, List[int]]) -> str:
        """A filter on start time that lets DuckDB skip the row groups of a compacted file
        (written in start-time order, a few hundred runs each) that hold none of the runs."""
        found = {self.catalog.runs[i].started for f in files for i in by_file[f]}
        started = {s for s in found if s is not None}
        if not started or len(started) < len(found):
            return ""
        if len(started) <= 64:  # a few runs scattered over the file: each one's row group only
            return f" WHERE r.run_started IN ({', '.join(_literal(s) for s in sorted(started))})"
        return f" WHERE r.run_started BETWEEN {_literal(min(started))} AND {_literal(max(started))}"

    @staticmethod
    def _value(name: str, entry: FileEntry) -> str:
        """Column ``name`` of ``entry``'s rows in the current schema (its upgrade's value where
        the file predates it)."""
        kind = duck_type(schema.TYPE_OF[name])
        if name in entry.columns:
            return f'CAST(r."{name}" AS {kind})'
        return f"CAST({_literal(schema.missing_value(name, entry.version))} AS {kind})"

    def _remote_part(
        self,
        columns: Sequence[str],
        files: List[int],
        by_file: Dict[int, List[int]],
        row_number: bool,
        flagged: bool,
    ) -> str:
        """Files behind a URL: read by pyarrow (upgraded, within the timeout), streamed to
        DuckDB."""
        name = f"audit_remote_{next(_names)}"
        fields = [schema.ARROW_SCHEMA.field(c) for c in columns]
        fields += [pa.field("run", pa.int32()), pa.field("env", pa.int32())]
        fields += [pa.field("row", pa.int64())] if row_number else []
        shape = pa.schema(fields)
        self._register(
            name,
            pa.RecordBatchReader.from_batches(
                shape, self._remote_batches(columns, {f: by_file[f] for f in files}, shape)
            ),
        )
        return f"SELECT *{', CAST(NULL AS VARCHAR) AS audit_over' if flagged else ''} FROM {name}"

    def _remote_batches(
        self, columns: Sequence[str], runs_of: Dict[int, List[int]], shape: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        """The rows of each file (index -> its runs' indices), in ``shape``."""
        for f, wanted in runs_of.items():
            entry = self.catalog.files[f]
            table = runfile.read_run_file(entry.path, list(dict.fromkeys([*columns, "run_id"])))
            runs = {self.catalog.runs[i].run_id: i for i in wanted}
            ids = table.column("run_id").to_pylist()
            keep = [r for r, run_id in enumerate(ids) if not entry.compacted or run_id in runs]
            index = [runs[ids[r]] if entry.compacted else wanted[0] for r in keep]
            table = table.take(pa.array(keep, pa.int64())).select(list(columns))
            table = table.append_column("run", pa.array(index, pa.int32()))
            table = table.append_column(
                "env", pa.array([self.catalog.runs[i].env for i in index], pa.int32())
            )
            if "row" in shape.names:
                table = table.append_column("row", pa.array(keep, pa.int64()))
            yield from table.cast(shape).to_batches()

    def _empty(self, columns: Sequence[str], row_number: bool, flagged: bool) -> str:
        select = [f'CAST(NULL AS {duck_type(schema.TYPE_OF[c])}) AS "{c}"' for c in columns]
        select += ["CAST(NULL AS INTEGER) AS run", "CAST(NULL AS INTEGER) AS env"]
        select += ["CAST(NULL AS BIGINT) AS row"] if row_number else []
        select += ["CAST(NULL AS VARCHAR) AS audit_over"] if flagged else []
        return f"SELECT {', '.join(select)} WHERE false"

    # ------------------------------------------------------------------ queries

    def query(
        self,
        sql: Callable[[str], str],
        columns: Sequence[str],
        runs: Optional[Collection[int]] = None,
        tables: Optional[Dict[str, Columns]] = None,
        row_number: bool = False,
        arrow: bool = False,
        flagged: bool = False,
    ) -> Any:
        """Rows (tuples, or an arrow table) of ``sql(relation)``; ``relation`` reads ``columns``
        of ``runs``.

        ``tables`` are created first (small lookup tables to join; see :meth:`table`).
        A file that fails while its rows are read is skipped by name, and the query rerun.

        Rows with a string over :attr:`max_string` are left out, and the files that hold them
        named among the skipped: by a scan of their own before the first query, unless that
        query is ``flagged``: its relation keeps those rows, flagged in ``audit_over`` (see
        :meth:`relation`), and the caller hands their count per file to :meth:`left_out`, so
        that a full scan counts them on the way instead of in a second scan of every row.
        """
        if not self._sizes_checked and not flagged:
            self._sizes_checked = True
            self._count_oversized()
        for name, data in (tables or {}).items():
            self.table(name, data)
        try:
            while True:
                scope = self._scope(runs)
                relation, params = self.relation(columns, scope, row_number, flagged)
                try:
                    return self._run(sql(relation), params, arrow)
                except StoreError as exc:
                    bad = self._find_bad(sql, columns, scope, row_number, flagged)
                    if not bad:
                        raise StoreError(f"the query over the run files failed: {exc}") from None
                    self._drop(bad)
        finally:
            for name in self._registered:
                self.con.unregister(name)
            for name in self._tables:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
            self._registered, self._tables = [], []

    def table(self, name: str, data: Columns) -> None:
        """A temporary table ``name`` of ``data`` (column -> (SQL type, values)), until the query
        ends.

        Made from query parameters rather than a registered Python object: registering one
        makes DuckDB import pandas, a third of a second on every compare.
        """
        select = ", ".join(
            f'CAST(unnest(${name}_{i}) AS {kind}) AS "{column}"'
            for i, (column, (kind, _)) in enumerate(data.items())
        )
        params = {f"{name}_{i}": list(values) for i, (_, values) in enumerate(data.values())}
        self._run(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}", params)
        self._tables.append(name)

    def _register(self, name: str, data: Any) -> None:
        self.con.register(name, data)
        self._registered.append(name)

    def _run(self, sql: str, params: Dict[str, Any], arrow: bool = False) -> Any:
        import duckdb

        try:
            return catalog_mod.interruptible(self.con, lambda: self._execute(sql, params, arrow))
        except catalog_mod.interrupts() as exc:
            catalog_mod.reraise_interrupt(exc)
        except duckdb.Error as exc:
            raise StoreError(one_line(exc, 300)) from None

    def _execute(self, sql: str, params: Dict[str, Any], arrow: bool) -> Any:
        if arrow:  # to_arrow_table since DuckDB 1.4; arrow() before it
            rel = self.con.sql(sql, params=params)
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        return self.con.execute(sql, params).fetchall()

    def _scope(self, runs: Optional[Collection[int]]) -> List[int]:
        dropped = {i for i, run in enumerate(self.catalog.runs) if run.file in self._dropped}
        every = range(len(self.catalog.runs)) if runs is None else runs
        return [i for i in every if i not in dropped]

    def _find_bad(
        self,
        sql: Callable[[str], str],
        columns: Sequence[str],
        scope: List[int],
        row_number: bool,
        flagged: bool,
    ) -> Dict[int, str]:
        """Files among ``scope``'s whose rows cannot be read, by halving: file index -> reason."""
        files = sorted({self.catalog.runs[i].file for i in scope})
        bad: Dict[int, str] = {}

        def check(part: List[int]) -> None:
            runs = [i for i in scope if self.catalog.runs[i].file in set(part)]
            relation, params = self.relation(columns, runs, row_number, flagged)
            try:
                self._run(f"SELECT count(*) FROM ({sql(relation)})", params)
            except StoreError as exc:
                if len(part) == 1:
                    bad[part[0]] = str(exc)
                    return
                half = len(part) // 2
                check(part[:half])
                check(part[half:])

        check(files)
        if len(bad) == len(files) > 1:  # every file alone fails: the query, not the files
            return {}
        return bad

    def _count_oversized(self) -> None:
        """Name each local file with rows over :attr:`max_string` among the skipped, with the
        count."""
        groups: Dict[Tuple[str, ...], List[str]] = {}
        for entry in self.catalog.files:
            if not entry.remote and _limited(entry):
                groups.setdefault(_limited(entry), []).append(entry.path)
        for columns, paths in groups.items():
            try:
                rows = self._run(
                    f"SELECT filename, count(*) FROM read_parquet($files, filename = true) "
                    f"WHERE {self._over(columns)} GROUP BY filename",
                    {"files": paths},
                )
            except StoreError:
                continue  # an unreadable file is found and named by the query itself
            for path, count in sorted(rows):
                self._name_oversized(path, count, columns)

    def left_out(self, counts: Dict[str, int]) -> None:
        """The rows a ``flagged`` query found over :attr:`max_string`, per file path (see
        :meth:`query`): each file is named among the skipped, and no other scan counts them."""
        self._sizes_checked = True
        by_path = {entry.path: entry for entry in self.catalog.files}
        for path, count in sorted(counts.items()):
            self._name_oversized(path, count, _limited(by_path[path]))

    def _over(self, columns: Sequence[str], alias: str = "") -> str:
        """SQL: a string of ``columns`` is longer than :attr:`max_string`."""
        limit = int(self.max_string or 0)
        return " OR ".join(f'coalesce(strlen({alias}"{c}"), 0) > {limit}' for c in columns)

    def _name_oversized(self, path: str, count: int, columns: Sequence[str]) -> None:
        self.catalog.skipped.append(
            Skipped(
                path,
                f"{count} row(s) left out: a {'/'.join(sorted(columns))} string longer "
                f"than {(self.max_string or 0) // 1024} KiB (the documented limit; "
                "see docs/robustness.md)",
            )
        )

    def dropped_files(self) -> FrozenSet[int]:
        """Indices of the files found unreadable while their rows were read (and left out)."""
        return frozenset(self._dropped)

    def unread_runs(self) -> int:
        """Runs left out because their file failed while its rows were read."""
        return sum(1 for run in self.catalog.runs if run.file in self._dropped)

    def _drop(self, bad: Dict[int, str]) -> None:
        self._dropped = set(self._dropped) | set(bad)
        for f, reason in bad.items():
            path = self.catalog.files[f].path
            self.catalog.skipped.append(
                Skipped(path, f"unreadable ({reason.replace(path, 'the file')})")
            )
