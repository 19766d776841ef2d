"""Fuzzing: the parquet reader never crashes, a run round-trips, compare never lies.

- Random, malformed and adversarial tables (missing and extra columns, wrong types, nulls,
  huge strings, odd metadata, duplicate runs) and raw byte files: reading a directory of
  them never raises; each file is read or named as skipped, the same by every reader.
- Random runs written and read back hold what was saved.
- Random runs over a few cases: a case whose runs produced different fingerprints is never
  reported identical, and one whose runs all agree is never reported divergent.

(The store's in-memory twin is gone with the Store interface it mirrored: compare's
in-memory input is :class:`audit.compare.rows.Rows`, tested in tests/test_engine.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.store import scan
from audit.store.runfile import (
    COLUMNS,
    META_ENV,
    META_RUN_ID,
    META_SCHEMA,
    RECORD_FIELDS,
    read_run_file,
    write_run,
)
from audit.store.scan import read_runs
from audit.worker.environment import FIELDS as ENV_FIELDS
from audit.worker.records import Run

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- reader

HUGE = "h" * 3_000_000  # one 3 MB string, shared so the strategy stays cheap
TEXT = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=20), st.just(HUGE),
                 st.sampled_from(["", "ok", "error", "0" * 32, "float32", "[4]", "\x00", "é∑🙂"]))

#: Arrow type name -> a strategy for one (nullable) value of it.
VALUES: Dict[str, Any] = {
    "string": TEXT,
    "int64": st.integers(-(2**63), 2**63 - 1),
    "float64": st.floats(allow_nan=True),
    "bool": st.booleans(),
    "binary": st.binary(max_size=16),
}
TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
         "binary": pa.binary()}
NATIVE = {"seed": "int64", "repeat_identical": "bool", "elapsed_s": "float64", "fingerprint_s": "float64"}


@st.composite
def adversarial_tables(draw: Any) -> pa.Table:
    """A table that is a run file, nearly one, or not one at all."""
    rows = draw(st.integers(0, 4))
    names = draw(st.lists(st.sampled_from([*COLUMNS, "extra", "run", "row", "__rows"]), max_size=12, unique=True))
    columns: Dict[str, pa.Array] = {}
    for name in names:
        kind = NATIVE.get(name, "string") if draw(st.booleans()) else draw(st.sampled_from(sorted(VALUES)))
        if draw(st.integers(0, 5)) == 0:
            columns[name] = pa.nulls(rows)  # arrow's null type
            continue
        values = draw(st.lists(st.one_of(st.none(), VALUES[kind]), min_size=rows, max_size=rows))
        columns[name] = pa.array(values, TYPES[kind])
    table = pa.table(columns) if columns else pa.table({"case_key": pa.array([], pa.string())})
    meta: Dict[bytes, bytes] = {}
    version = draw(st.sampled_from([None, b"1", b"2", b"3", b"99", b"-1", b"0", b"abc", b"", b"1e9"]))
    if version is not None:
        meta[META_SCHEMA] = version
    run_id = draw(st.one_of(st.none(), st.sampled_from([b"", b"dup", b"\xff\xfe"]), st.binary(max_size=8)))
    if run_id is not None:
        meta[META_RUN_ID] = run_id
    env = draw(st.sampled_from([None, b"{}", b"[]", b"null", b"{not json", b'{"os": 3}', b'{"os": "Linux"}']))
    if env is not None:
        meta[META_ENV] = env
    return table.replace_schema_metadata(meta)


@st.composite
def raw_files(draw: Any) -> bytes:
    framed = st.binary(max_size=32).map(lambda b: b"PAR1" + b + b"PAR1")
    return draw(st.one_of(st.binary(max_size=64), st.just(b"PAR1"), framed))


def _write_all(directory: str, tables: List[pa.Table], raws: List[bytes], cut: Optional[int]) -> List[str]:
    paths = []
    for i, table in enumerate(tables):
        path = os.path.join(directory, f"t{i}.parquet")
        pq.write_table(table, path)
        paths.append(path)
    for i, raw in enumerate(raws):
        path = os.path.join(directory, f"r{i}.parquet")
        with open(path, "wb") as f:
            f.write(raw)
        paths.append(path)
    if cut is not None and tables:  # a prefix of a real parquet file (a torn copy)
        with open(paths[0], "rb") as f:
            data = f.read()
        with open(os.path.join(directory, "torn.parquet"), "wb") as f:
            f.write(data[: cut % max(1, len(data))])
        paths.append(os.path.join(directory, "torn.parquet"))
    return paths


@FUZZ
@given(tables=st.lists(adversarial_tables(), max_size=4), raws=st.lists(raw_files(), max_size=2),
       cut=st.one_of(st.none(), st.integers(0, 10**6)), dictionary=st.booleans())
def test_the_reader_never_crashes_and_accounts_for_every_file(tables: List[pa.Table], raws: List[bytes],
                                                              cut: Optional[int], dictionary: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        paths = _write_all(directory, tables, raws, cut)
        frame, skipped = read_runs([directory])
        narrow, narrow_skipped = read_runs([directory], ["case_key", "status"])
        found = scan.build([directory])
        for path in {f.path for f in found.files}:  # what the catalog accepts, the one-file reader reads
            read_run_file(path)
    for result in (skipped, narrow_skipped, found.skipped):
        assert all(isinstance(s.reason, str) and s.reason for s in result)
    read = set(found.held)
    named = {s.path for s in found.skipped}
    assert read.isdisjoint(named) and read | named == set(paths)  # every file read or named
    # the same files whatever columns are asked
    assert {s.path for s in skipped} == {s.path for s in narrow_skipped} == named
    assert len(frame) == len(narrow) and list(frame.columns) == list(COLUMNS)
    assert frame["run_id"].nunique(dropna=False) <= len(found.runs)


def test_duplicate_runs_count_once(tmp_path: Any) -> None:
    run = Run.new({"machine_id": "m"})
    run.records = [{"case_key": "k", "status": "ok"}]
    first = write_run(run, str(tmp_path / "a"))
    shutil.copy(first, tmp_path / "copy.parquet")
    frame, skipped = read_runs([str(tmp_path)])
    assert len(frame) == 1 and skipped == []


# --------------------------------------------------------------------------- store twins

SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


TRACE_OPS = st.fixed_dictionaries({
    "index": st.integers(0, 2**31 - 1), "op": SAFE_TEXT, "module": st.one_of(st.none(), SAFE_TEXT),
    "inputs": st.lists(SAFE_TEXT, max_size=2),
    "outputs": st.lists(st.fixed_dictionaries({"fingerprint": st.one_of(st.none(), SAFE_TEXT), "dtype": SAFE_TEXT,
                                               "shape": SAFE_TEXT, "sample": SAFE_TEXT}), max_size=2)})


@st.composite
def record_values(draw: Any) -> Dict[str, Any]:
    record: Dict[str, Any] = {name: draw(st.one_of(st.none(), SAFE_TEXT)) for name in RECORD_FIELDS}
    record["case_key"] = draw(SAFE_TEXT)
    record["seed"] = draw(st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1)))
    record["repeat_identical"] = draw(st.one_of(st.none(), st.booleans()))
    record["invariant"] = draw(st.one_of(st.none(), st.booleans()))
    record["block_elements"] = draw(st.one_of(st.none(), st.integers(1, 2**16)))
    record["blocks"] = draw(st.one_of(st.none(), st.binary(max_size=24).map(bytes.hex)))
    record["trace"] = draw(st.one_of(st.none(), st.lists(TRACE_OPS, max_size=3)))
    for name in ("elapsed_s", "fingerprint_s"):
        record[name] = draw(st.one_of(st.none(), st.floats(allow_nan=False)))
    return record


@st.composite
def runs(draw: Any) -> Run:
    env = {name: draw(st.one_of(st.none(), SAFE_TEXT)) for name in draw(st.lists(st.sampled_from(sorted(ENV_FIELDS)),
                                                                                 max_size=4, unique=True))}
    run = Run.new(env)
    run.records = draw(st.lists(record_values(), max_size=4))
    return run


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs())
def test_a_written_run_reads_back_as_saved(run: Run) -> None:
    with tempfile.TemporaryDirectory() as directory:
        table = read_run_file(write_run(run, directory))
        found = scan.build([directory])
    assert [r.run_id for r in found.runs] == [run.run_id] and found.runs[0].started == run.started
    assert found.envs[0] == {name: run.env.get(name) for name in ENV_FIELDS}
    for got, saved in zip(table.to_pylist(), run.records):
        for name in RECORD_FIELDS:
            want = saved.get(name)
            want = bytes.fromhex(want) if name == "blocks" and want is not None else want
            assert got[name] == want, name
        assert (got["run_id"], got["run_started"]) == (run.run_id, run.started)


def test_a_read_run_holds_what_was_saved(tmp_path: Any) -> None:
    run = Run.new({"machine_id": "m", "os": "Linux"})
    run.records = [{"case_key": "k", "status": "ok", "seed": 2**64 - 1, "elapsed_s": 0.5, "extra": "dropped"}]
    (row,) = read_run_file(write_run(run, str(tmp_path))).to_pylist()
    assert {k: row[k] for k in RECORD_FIELDS} == {**{name: None for name in RECORD_FIELDS}, "case_key": "k",
                                                   "status": "ok", "seed": 2**64 - 1, "elapsed_s": 0.5}
    assert row["os"] == "Linux" and row["run_id"] == run.run_id


# --------------------------------------------------------------------------- comparison

FINGERPRINTS = ["a" * 32, "b" * 32, "c" * 32]
ENVIRONMENTS = [{}, {"torch_version": "2.4.1"}, {"cpu_capability": "AVX2"}]


@st.composite
def run_sets(draw: Any) -> List[Dict[str, Any]]:
    """Runs over a few cases: per run an environment, per case an outcome or nothing."""
    cases = draw(st.integers(1, 4))
    runs = []
    for r in range(draw(st.integers(1, 4))):
        outcomes = {}
        for c in range(cases):
            outcomes[c] = draw(st.one_of(
                st.tuples(st.just("ok"), st.sampled_from(FINGERPRINTS), st.sampled_from([True, True, True, False])),
                st.tuples(st.sampled_from(["ok", "error", "crash", "timeout", "unsupported"]), st.none(), st.none()),
                st.none()))
        runs.append({"env": draw(st.sampled_from(ENVIRONMENTS)), "outcomes": outcomes, "name": f"r{r}"})
    return runs


def _write_runs(runs: List[Dict[str, Any]], directory: str) -> None:
    from tests.compare_helpers import f32_sample, make_run, record, write

    made = []
    for day, spec in enumerate(runs, 1):
        records = []
        for case, outcome in spec["outcomes"].items():
            if outcome is None:
                continue
            status, fp, repeat = outcome
            if status == "ok" and fp is None:
                fp = FINGERPRINTS[0]
            sample = f32_sample([1.0, 2.0, 3.0, float(FINGERPRINTS.index(fp))]) if fp else ""
            records.append(record("fuzz.probe", {"seed": case}, fp, status=status, repeat=repeat, sample=sample,
                                  message=None if status == "ok" else "boom"))
        made.append(make_run(spec["name"] * 8, f"2026-01-{day:02d}T00:00:00.000000Z", spec["env"], records))
    write(made, directory)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=run_sets())
def test_compare_never_calls_a_divergent_case_identical(runs: List[Dict[str, Any]]) -> None:
    from audit.compare import Verdict, compare_paths

    with tempfile.TemporaryDirectory() as directory:
        _write_runs(runs, directory)
        comparison = compare_paths([directory])
    findings = {json.loads(f.case_key.split("|", 1)[1])["seed"]: f for f in comparison.findings}
    for case in {c for spec in runs for c in spec["outcomes"]}:
        outcomes = [spec["outcomes"][case] for spec in runs if spec["outcomes"].get(case) is not None]
        ok = {fp or FINGERPRINTS[0] for status, fp, _ in outcomes if status == "ok"}
        failed = any(status in ("error", "crash", "timeout") for status, _, _ in outcomes)
        shaky = any(status == "ok" and repeat is False for status, _, repeat in outcomes)
        if not ok and not failed:
            assert case not in findings or findings[case].verdict != Verdict.IDENTICAL
            continue
        verdict = findings[case].verdict  # every case with a result has a finding
        if len(ok) > 1 or failed or shaky:
            assert verdict != Verdict.IDENTICAL, (case, outcomes)
        if failed:
            assert verdict == Verdict.ERROR
        if len(ok) == 1 and not failed and not shaky:
            assert verdict == Verdict.IDENTICAL, (case, outcomes, verdict)
        if len(ok) > 1 and not failed:
            assert verdict in (Verdict.DIVERGENT, Verdict.NONDETERMINISTIC)
    compared = any(f.verdict != Verdict.INCOMPARABLE for f in comparison.findings)
    unexpected = any(f.unexpected for f in comparison.findings)
    assert comparison.exit_code() == (1 if unexpected or not compared else 0)  # nothing compared fails closed
