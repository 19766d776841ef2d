"""The compare shell's queries: run files in, :class:`~audit.compare.rows.Rows` out.

Fetch first, then decide.  :meth:`Source.rows` runs the one query over every row (a
GROUP BY that collapses ten million rows into a few thousand outcomes) and describes each
case from one row; the pure core then decides, and says which few rows it shows
(:func:`audit.compare.analysis.needs`); :meth:`Source.details` and
:meth:`Source.stream_runs` fetch those, reading only the files that hold them.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from audit.compare.rows import (
    DETAIL_COLUMNS,
    CaseRow,
    Detail,
    Outcome,
    Pick,
    Rows,
    RunInfo,
    StreamKey,
    StreamWant,
)
from audit.store import engine as engine_mod
from audit.store import scan
from audit.store.engine import Columns
from audit.worker.environment import expanded
from audit.worker.records import Status

OUTCOME_COLUMNS = (
    "case_key",
    "probe_version",
    "status",
    "fingerprint",
    "repeat_identical",
    "invariant",
    "variant_values",
)
CASE_COLUMNS = (
    "case_key",
    "probe_version",
    "probe",
    "probe_key",
    "device",
    "params",
    "kind",
    "invariance",
    "family",
)

#: Rows with an oversized string (``audit_over``: their file) come out as groups of their own,
#: counted on the way (see :meth:`audit.store.engine.Engine.query`).
_OUTCOMES = """
SELECT case_key, probe_version, env, status, fingerprint,
       coalesce(NOT repeat_identical, false) AS repeat_false, invariant, variant_values,
       count(*) AS n, min(run) AS first_run, max(run) AS last_run, audit_over
FROM ({relation}) GROUP BY ALL ORDER BY ALL"""

#: Runs read per query while looking for a stream's first runs (doubling up to the last).
_BATCHES = (256, 1024, 4096, 16384)


class Source:
    """The run files under some paths, open for queries (a context manager)."""

    def __init__(self, paths: Sequence[str], memory_limit: Optional[str] = None) -> None:
        self.paths = list(paths)
        self.memory_limit = memory_limit

    def __enter__(self) -> Source:
        self.con = engine_mod.connect(self.memory_limit)
        try:
            self.catalog = scan.build(self.paths, self.con)
        except BaseException:
            engine_mod.close(self.con)
            raise
        self.engine = engine_mod.Engine(self.catalog, self.con)
        return self

    def __exit__(self, *exc: Any) -> None:
        engine_mod.close(self.con)

    # ------------------------------------------------------------------ phase 1

    def rows(self) -> Rows:
        """Outcomes of every run, and a description of every case (its first row)."""
        got = self.engine.query(
            lambda rel: _OUTCOMES.format(relation=rel), OUTCOME_COLUMNS, flagged=True
        )
        outcomes: List[Outcome] = []
        over: Dict[str, int] = {}
        for key, version, env, status, fp, rep, inv, values, n, first, last, path in got:
            if path is not None:
                over[path] = over.get(path, 0) + n
            else:
                outcomes.append(
                    Outcome(
                        key,
                        version,
                        env,
                        _status(status),
                        fp,
                        bool(rep),
                        inv,
                        values,
                        n,
                        first,
                        last,
                    )
                )
        self.engine.left_out(over)
        runs = [RunInfo(r.run_id, r.started) for r in self.catalog.runs]
        rows = Rows(
            runs,
            [expanded(e) for e in self.catalog.envs],
            outcomes,
            self._cases(outcomes),
            skipped=self.catalog.skipped,
            notes=list(self.catalog.notes),
        )
        return rows

    def _cases(self, outcomes: List[Outcome]) -> Dict[Tuple[str, str], CaseRow]:
        first: Dict[Tuple[str, str], int] = {}
        for o in outcomes:
            if o.case_key is not None:
                key = (o.case_key, o.probe_version)
                first[key] = min(first.get(key, o.first_run), o.first_run)
        wanted: Columns = {
            "run": ("INTEGER", list(first.values())),
            "case_key": ("VARCHAR", [k for k, _ in first]),
            "probe_version": ("VARCHAR", [v for _, v in first]),
        }
        sql = (
            "SELECT r.case_key, r.probe_version, min(probe), min(probe_key), min(device), "
            "min(params), min(kind), min(invariance), min(family) "
            "FROM ({}) AS r JOIN audit_wanted AS w ON r.run = w.run AND r.case_key = w.case_key "
            "AND r.probe_version IS NOT DISTINCT FROM w.probe_version GROUP BY ALL"
        )
        got = self.engine.query(
            sql.format, CASE_COLUMNS, runs=set(first.values()), tables={"audit_wanted": wanted}
        )
        return {(key, version): CaseRow(*rest) for key, version, *rest in got}

    def unread(self) -> int:
        """Runs whose file failed while its rows were read (the engine named it as skipped)."""
        return self.engine.unread_runs()

    # ------------------------------------------------------------------ phase 2

    def details(self, picks: Iterable[Pick]) -> Dict[Pick, Detail]:
        """The detail columns of each picked row (read from the files holding them only)."""
        picks = list(dict.fromkeys(picks))
        if not picks:
            return {}
        wanted: Columns = {
            "run": ("INTEGER", [p.run for p in picks]),
            "case_key": ("VARCHAR", [p.case_key for p in picks]),
        }
        columns = ("case_key", "probe_version", "status", "fingerprint", *DETAIL_COLUMNS)
        names = ", ".join(f'r."{c}"' for c in columns)
        sql = (
            f"SELECT DISTINCT r.run, {names} FROM ({{}}) AS r JOIN audit_picks AS w "
            "ON r.run = w.run AND r.case_key = w.case_key"
        )
        got = self.engine.query(
            sql.format, columns, runs={p.run for p in picks}, tables={"audit_picks": wanted}
        )
        by_row: Dict[Pick, Detail] = {}
        for run, key, version, status, fp, *detail in got:
            by_row.setdefault(Pick(run, key, version, _status(status), fp), Detail(*detail))
        return {p: by_row[p] for p in picks if p in by_row}

    def stream_runs(self, wants: Iterable[StreamWant]) -> Dict[StreamKey, List[int]]:
        """The first runs (in run order) of each stream, reading runs in order until each has
        enough."""
        pending = {w.key: w for w in wants}
        found: Dict[StreamKey, set] = {key: set() for key in pending}
        for batch in _batches(_candidates(pending.values())):
            active = [w for w in pending.values() if len(found[w.key]) < w.want]
            runs = [r for r in batch if any(w.first_run <= r <= w.last_run for w in active)]
            if not active:
                break
            if runs:
                for run, key, version, fp in self._ok_rows(runs, [w.key for w in active]):
                    found[StreamKey(key, version, fp)].add(run)
        return {key: sorted(runs)[: pending[key].want] for key, runs in found.items()}

    def _ok_rows(self, runs: List[int], keys: List[StreamKey]) -> List[Tuple[Any, ...]]:
        table: Columns = {
            "case_key": ("VARCHAR", [k.case_key for k in keys]),
            "probe_version": ("VARCHAR", [k.probe_version for k in keys]),
            "fingerprint": ("VARCHAR", [k.fingerprint for k in keys]),
        }
        sql = (
            "SELECT DISTINCT r.run, r.case_key, r.probe_version, r.fingerprint FROM ({}) AS r "
            "JOIN audit_streams AS s ON r.case_key = s.case_key "
            "AND r.probe_version = s.probe_version "
            "AND r.fingerprint IS NOT DISTINCT FROM s.fingerprint WHERE r.status = 'ok'"
        )
        return list(
            self.engine.query(
                sql.format,
                ("case_key", "probe_version", "fingerprint", "status"),
                runs=runs,
                tables={"audit_streams": table},
            )
        )


def _status(text: Optional[str]) -> Status:
    """A stored status; anything else (null, unknown) counts as an error."""
    try:
        return Status(text)
    except ValueError:
        return Status.ERROR


def _candidates(wants: Iterable[StreamWant]) -> List[int]:
    """Runs that can hold one of the streams, in run order (the union of their run ranges)."""
    spans = sorted((w.first_run, w.last_run) for w in wants)
    out: List[int] = []
    end = -1
    for start, stop in spans:
        out.extend(range(max(start, end + 1), stop + 1))
        end = max(end, stop)
    return out


def _batches(runs: List[int]) -> Iterator[List[int]]:
    start, step = 0, 0
    while start < len(runs):
        size = _BATCHES[min(step, len(_BATCHES) - 1)]
        yield runs[start : start + size]
        start, step = start + size, step + 1
