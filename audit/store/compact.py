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
left alone (idempotent); a file is written under a hidden temporary name and renamed when
complete, so an interrupted compaction leaves no partial file under a final name; DEST
files a new month file supersedes are removed only after it is in place.  Sources are
deleted only with ``remove_sources``, and only those whose every run is in DEST.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import pyarrow as pa

from audit.errors import StoreError, UsageError
from audit.store import catalog as catalog_mod
from audit.store import engine as engine_mod
from audit.store import location as loc
from audit.store import runfile, schema
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


def compact(sources: Sequence[str], dest: str, remove_sources: bool = False,
            memory_limit: Optional[str] = None) -> Compacted:
    """Merge the runs under ``sources`` into month files under ``dest`` (see the module doc)."""
    _check_dest(sources, dest)
    src = catalog_mod.build(sources)
    if not src.runs:
        why = "; ".join(f"{s.path}: {s.reason}" for s in src.skipped[:3]) or "no run files there"
        raise UsageError(f"nothing to compact under {', '.join(sources)} ({why})")
    done = Compacted(skipped=list(src.skipped))
    con = engine_mod.connect(memory_limit)
    try:
        both = catalog_mod.build([dest, *sources]) if os.path.isdir(dest) else src
        engine = engine_mod.Engine(both, con)
        for month, runs in _months(both).items():
            _one_month(engine, dest, month, runs, done)
    finally:
        engine_mod.close(con)
    if remove_sources:
        done.sources_removed = _remove_sources(src, dest)
    return done


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


def _one_month(engine: engine_mod.Engine, dest: str, month: str, runs: List[int], done: Compacted) -> None:
    """Write the month's file unless one DEST file holds exactly these runs; drop what it supersedes."""
    cat = engine.catalog
    folder = os.path.join(os.path.abspath(dest), f"month={month}")
    ids = sorted(cat.runs[i].run_id for i in runs)
    name = f"runs-{month}-{hashlib.sha256(' '.join(ids).encode()).hexdigest()[:16]}.parquet"
    final = os.path.join(folder, name)
    wanted = set(ids)
    old = sorted(path for path, held in cat.held.items()
                 if path != final and _inside(path, dest) and held and set(held) <= wanted)
    if not os.path.exists(final):
        runfile.publish(folder, name, lambda where, _: _write(engine, runs, where))
        done.written.append(final)
        done.runs += len(runs)
    for path in old:  # only after the new file is in place
        os.remove(path)
        done.superseded.append(path)


def _write(engine: engine_mod.Engine, runs: List[int], where: str) -> None:
    cat = engine.catalog
    envs = {e: n for n, e in enumerate(dict.fromkeys(cat.runs[i].env for i in runs))}
    listed = {"envs": [cat.envs[e] for e in envs],
              "runs": [{"run_id": cat.runs[i].run_id, "started": cat.runs[i].started, "env": envs[cat.runs[i].env],
                        "source": os.path.basename(cat.files[cat.runs[i].file].path)} for i in runs]}
    meta = {schema.META_SCHEMA: str(SCHEMA_VERSION).encode(), schema.META_RUNS: json.dumps(listed).encode()}
    names = ", ".join(f'"{c}"' for c in schema.COLUMNS)

    def groups() -> Iterator[pa.Table]:
        for start in range(0, len(runs), RUNS_PER_GROUP):
            chunk = runs[start:start + RUNS_PER_GROUP]
            table = engine.query(lambda rel: f"SELECT {names}, run FROM ({rel}) ORDER BY run, row", schema.COLUMNS,
                                 runs=chunk, row_number=True, arrow=True)
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
    return not loc.is_url(path) and os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def _remove_sources(src: Catalog, dest: str) -> List[str]:
    """Delete source files whose every run is now in DEST (checked by reading DEST again)."""
    kept = {run.run_id for run in catalog_mod.build([dest]).runs}
    removed = []
    for path, ids in src.held.items():
        if _inside(path, dest) or loc.is_url(path) or not ids or not all(i in kept for i in ids):
            continue
        try:
            os.remove(path)
        except OSError as exc:
            raise StoreError(f"cannot remove source {path}: {exc.strerror}") from None
        removed.append(path)
    return removed
