"""Compaction: many small run files merged into one file per month.

A fleet writes one small file per run; a year of them is tens of thousands of files, and
opening them dominates a comparison.  ``compact SRC DEST`` writes, for each month of run
start times, one file ``DEST/month=YYYY-MM/runs-YYYY-MM-<digest>.parquet`` holding every
run of that month found in SRC or already in DEST, in the current schema, in run order,
one row group per few hundred runs.

What is kept: every row and column (the environment stays on every row, ``run_id`` and
``run_started`` too), and the file's metadata lists each run with its id, start time,
environment and the file it came from (``audit.runs``), so per-run metadata is recoverable
and compare reads a compacted file like the files it replaces.

Safe to repeat and to interrupt: a month whose runs are all in one DEST file already is
left alone (idempotent), and sources that hold nothing left to compact are "nothing to
compact", not an error; a file is written under a hidden temporary name and renamed when
complete, so an interrupted compaction leaves no partial file under a final name.

Never loses a row.  Rows are compared by content (:func:`audit.store.catalog.content_sql`:
every column but the run id and start), never by run id alone: a file that holds a run of
the same id as another but other rows (a subset written by hand) is not a copy of it, and
is skipped by name.  A file is deleted only when every one of its rows is, by content, in
DEST's month files: an older month file once the new one holding all its rows is in place,
and a source only with ``remove_sources``.  A source inside DEST (``compact DEST/incoming
DEST``) is a source like any other: left in place unless ``remove_sources`` is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pyarrow as pa

from audit.errors import StoreError, UsageError
from audit.store import catalog as catalog_mod
from audit.store import engine as engine_mod
from audit.store import location as loc
from audit.store import runfile, scan, schema
from audit.store.catalog import Catalog
from audit.store.location import Skipped
from audit.worker.records import SCHEMA_VERSION

#: Runs read per query while writing (one row group each): ~400k rows of the catalogue.
RUNS_PER_GROUP = 256

_MONTH = re.compile(r"^(\d{4})-(\d{2})")


@dataclass
class Compacted:
    """What one compaction did."""

    written: List[str] = field(default_factory=list)  # new month files
    runs: int = 0  # runs in the months written
    superseded: List[str] = field(default_factory=list)  # DEST files replaced by a new month file
    sources_removed: List[str] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def month_of(started: Optional[str]) -> str:
    """``YYYY-MM`` of a start time, or ``unknown``."""
    match = _MONTH.match(started or "")
    return f"{match.group(1)}-{match.group(2)}" if match else "unknown"


def compact(
    sources: Sequence[str],
    dest: str,
    remove_sources: bool = False,
    memory_limit: Optional[str] = None,
) -> Compacted:
    """Merge the runs under ``sources`` into month files under ``dest`` (see the module doc)."""
    _check_dest(sources, dest)
    con = engine_mod.connect(memory_limit)
    try:
        src = scan.build(sources, con)
        missing = [s for s in src.skipped if s.path in sources and s.reason == loc.NOT_FOUND]
        if missing:
            raise UsageError(f"nothing to compact: {missing[0].path}: {missing[0].reason}")
        done = Compacted(skipped=list(src.skipped))
        if not src.runs:
            done.notes.append(f"nothing to compact under {', '.join(sources)} (no run files there)")
            return done
        both = scan.build([dest, *sources], con) if os.path.isdir(dest) else src
        _add_skipped(done, both.skipped)
        engine = engine_mod.Engine(both, con, max_string=None)  # every row, whatever its size
        for month, runs in _months(both).items():
            _one_month(engine, dest, sources, month, runs, done)
        if remove_sources:
            done.sources_removed = _remove_sources(con, src, dest)
    finally:
        engine_mod.close(con)
    return done


def _add_skipped(done: Compacted, more: Sequence[Skipped]) -> None:
    seen = set(done.skipped)
    done.skipped.extend(s for s in more if s not in seen)


def _check_dest(sources: Sequence[str], dest: str) -> None:
    loc.check(dest, "DEST")
    if loc.is_url(dest):
        raise UsageError(f"compact writes to a local directory, not {dest!r}")
    real = os.path.realpath(dest)
    for source in sources:
        loc.check(source, "SRC")
        if not loc.is_url(source) and os.path.realpath(source) == real:
            raise UsageError(f"SRC and DEST are the same directory ({dest}); give another DEST")


def _months(cat: Catalog) -> Dict[str, List[int]]:
    out: Dict[str, List[int]] = {}
    for i, run in enumerate(cat.runs):
        out.setdefault(month_of(run.started), []).append(i)
    return out


def _one_month(
    engine: engine_mod.Engine,
    dest: str,
    sources: Sequence[str],
    month: str,
    runs: List[int],
    done: Compacted,
) -> None:
    """Write the month's file unless one DEST file holds exactly these runs; drop the older month
    files it supersedes (each only when every one of its rows is in the new file)."""
    cat = engine.catalog
    folder = os.path.join(os.path.abspath(dest), f"month={month}")
    ids = sorted(cat.runs[i].run_id for i in runs)
    name = f"runs-{month}-{hashlib.sha256(' '.join(ids).encode()).hexdigest()[:16]}.parquet"
    final = os.path.join(folder, name)
    wanted = set(ids)
    old = sorted(
        path
        for path, held in cat.held.items()
        if path != final and is_month_file(path, dest, sources) and held and set(held) <= wanted
    )
    if not os.path.exists(final):
        runfile.publish(folder, name, lambda where, _: _write(engine, runs, where))
        done.written.append(final)
        done.runs += len(runs)
    if not old:
        return
    lost = rows_missing(engine.con, old, [final])
    for path in old:  # only after the new file is in place, and only when it holds every row
        if lost.get(path) == 0:
            os.remove(path)
            done.superseded.append(path)
        else:
            done.notes.append(f"kept {path}: {_lost(lost.get(path))} not in {final}")


def _lost(count: Optional[int]) -> str:
    return "its rows could not be read" if count is None else f"{count} of its row(s) are"


#: A month file's path inside DEST (see the module doc).
_MONTH_FILE = re.compile(r"^month=[^/]+/runs-[^/]+\.parquet$")


def is_month_file(path: str, dest: str, sources: Sequence[str] = ()) -> bool:
    """Whether ``path`` is one of DEST's month files (and not inside one of ``sources``)."""
    if (
        loc.is_url(path)
        or not _inside(path, dest)
        or any(_inside(path, s) or _same(path, s) for s in sources)
    ):
        return False
    relative = os.path.relpath(os.path.realpath(path), os.path.realpath(dest)).replace(os.sep, "/")
    return bool(_MONTH_FILE.match(relative))


def _same(path: str, other: str) -> bool:
    return not loc.is_url(other) and os.path.realpath(path) == os.path.realpath(other)


def rows_missing(
    con: Any, files: Sequence[str], targets: Sequence[str]
) -> Dict[str, Optional[int]]:
    """File -> how many of its rows are not among the rows of ``targets`` (None: unreadable).

    Rows are told by run id and content (:func:`audit.store.catalog.content_sql`), counted
    as a multiset: a file whose row appears twice needs it twice in the targets.
    """
    cat = catalog_mod.build_all([*files, *targets])
    unread = {s.path for s in cat.skipped}
    engine = engine_mod.Engine(cat, con, max_string=None)
    wanted = set(files)
    side = [
        (i, cat.files[run.file].path, run.run_id, cat.files[run.file].path not in wanted)
        for i, run in enumerate(cat.runs)
    ]
    table: engine_mod.Columns = {
        "run": ("INTEGER", [s[0] for s in side]),
        "path": ("VARCHAR", [s[1] for s in side]),
        "run_id": ("VARCHAR", [s[2] for s in side]),
        "target": ("BOOLEAN", [s[3] for s in side]),
    }
    name = "audit_compact_side"

    def sql(rel: str) -> str:
        return f"""
            WITH r AS (SELECT s.path, s.run_id, s.target, {catalog_mod.content_sql("x")} AS h
                       FROM ({rel}) AS x JOIN {name} AS s ON x.run = s.run),
                 t AS (SELECT run_id, h, count(*) AS n FROM r WHERE target GROUP BY run_id, h),
                 f AS (SELECT path, run_id, h, count(*) AS n FROM r WHERE NOT target
                       GROUP BY path, run_id, h)
            SELECT f.path, sum(greatest(f.n - coalesce(t.n, 0), 0))
            FROM f LEFT JOIN t USING (run_id, h)
            GROUP BY f.path"""

    try:
        rows = engine.query(sql, catalog_mod.CONTENT_COLUMNS, tables={name: table})
    except StoreError:
        return {path: None for path in files}
    unread |= {cat.files[f].path for f in engine.dropped_files()}
    if unread & set(targets):
        return {path: None for path in files}
    counted = {path: int(n) for path, n in rows}
    return {path: None if path in unread else counted.get(path, 0) for path in files}


def _write(engine: engine_mod.Engine, runs: List[int], where: str) -> None:
    cat = engine.catalog
    envs = {e: n for n, e in enumerate(dict.fromkeys(cat.runs[i].env for i in runs))}
    listed = {
        "envs": [cat.envs[e] for e in envs],
        "runs": [
            {
                "run_id": cat.runs[i].run_id,
                "started": cat.runs[i].started,
                "env": envs[cat.runs[i].env],
                "source": os.path.basename(cat.files[cat.runs[i].file].path),
            }
            for i in runs
        ],
    }
    meta = {
        schema.META_SCHEMA: str(SCHEMA_VERSION).encode(),
        schema.META_RUNS: json.dumps(listed).encode(),
    }
    names = ", ".join(f'"{c}"' for c in schema.COLUMNS)

    def groups() -> Iterator[pa.Table]:
        for start in range(0, len(runs), RUNS_PER_GROUP):
            chunk = runs[start : start + RUNS_PER_GROUP]
            table = engine.query(
                lambda rel: f"SELECT {names}, run FROM ({rel}) ORDER BY run, row",
                schema.COLUMNS,
                runs=chunk,
                row_number=True,
                arrow=True,
            )
            yield _with_run_fields(table, engine.catalog)

    runfile.write_parquet(groups(), where, metadata=meta)


def _with_run_fields(table: pa.Table, cat: Catalog) -> pa.Table:
    """Each row's run id and start from the catalog (a hand-made file may lack the columns)."""
    index = table.column("run").to_pylist()
    ids = pa.array([cat.runs[i].run_id for i in index], pa.string())
    started = pa.array([cat.runs[i].started for i in index], pa.string())
    table = table.drop_columns(["run"])
    table = table.set_column(table.column_names.index("run_id"), "run_id", ids)
    table = table.set_column(table.column_names.index("run_started"), "run_started", started)
    return table.cast(schema.ARROW_SCHEMA)


def _inside(path: str, folder: str) -> bool:
    return not loc.is_url(path) and os.path.realpath(path).startswith(
        os.path.realpath(folder) + os.sep
    )


def _remove_sources(con: Any, src: Catalog, dest: str) -> List[str]:
    """Delete the source files every one of whose rows is in DEST's month files (read again)."""
    months, _ = loc.run_files([dest])
    months = [p for p in months if is_month_file(p, dest)]
    candidates = [
        path
        for path, ids in src.held.items()
        if ids and not loc.is_url(path) and not is_month_file(path, dest)
    ]
    if not candidates or not months:
        return []
    lost = rows_missing(con, candidates, months)
    removed = []
    for path in candidates:
        if lost.get(path) != 0:
            continue
        try:
            os.remove(path)
        except OSError as exc:
            raise StoreError(f"cannot remove source {path}: {exc.strerror}") from None
        removed.append(path)
    return removed
