"""Compare on the query engine: the pure core from in-memory rows, the shell's queries, bad input.

The core takes :class:`audit.compare.rows.Rows` and reads no file, so the first tests build
a comparison from rows held in memory.  The rest go through run files: what the engine
fetches (exact run lists, details), files that fail mid-read, duplicates, memory limits,
and the one-line errors of the CLI (issue 15's read side, issue 9's gates).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.compare import Difference, Verdict, compare_paths
from audit.compare.analysis import compare_rows
from audit.compare.rows import CaseRow, Detail, Outcome, Pick, Rows, RunInfo
from audit.runner.supervisor import SOURCE_ROOT
from audit.store import runfile
from audit.worker.records import Status
from tests.compare_helpers import BASE_ENV, f32_sample, make_run, record, write

P = {"seed": 0}


def _detail(sample: str = "", message: Any = None, dtype: str = "float32") -> Detail:
    return Detail(dtype, "[4]", sample, None, None, message, None, None, None, None)


def _outcome(key: str, env: int, fp: Any, runs: List[int], status: Status = Status.OK) -> Outcome:
    return Outcome(key, "v1", env, status, fp, False, None, None, len(runs), min(runs), max(runs))


# --------------------------------------------------------------------------- the pure core


def test_a_comparison_from_rows_in_memory_without_files() -> None:
    envs = [dict(BASE_ENV), {**BASE_ENV, "cpu_capability": "AVX2"}]
    base, drift = f32_sample([1.0, 2.0, 3.0, 4.0]), f32_sample([1.0, 2.0000002, 3.0, 4.0])
    p, q, e = 'p|{"seed":0}', 'q|{"seed":0}', 'e|{"seed":0}'
    rows = Rows(
        runs=[RunInfo(f"run{i}", f"2026-01-0{i + 1}") for i in range(4)],
        envs=envs,
        outcomes=[_outcome(p, 0, "x", [0, 2]), _outcome(p, 1, "y", [1, 3]),
                  _outcome(q, 0, "s", [0, 2]), _outcome(q, 1, "s", [1, 3]),
                  _outcome(e, 0, "s", [0]), _outcome(e, 1, None, [1], Status.CRASH)],
        cases={(key, "v1"): CaseRow(key[0], key[0], "cpu", '{"seed":0}') for key in (p, q, e)},
        details={Pick(0, p, "v1", Status.OK, "x"): _detail(base), Pick(1, p, "v1", Status.OK, "y"): _detail(drift),
                 Pick(1, e, "v1", Status.CRASH, None): _detail(message="killed by SIGSEGV")},
    )
    c = compare_rows(rows)
    found = {f.probe: f for f in c.findings}
    assert (found["p"].verdict, found["p"].measured.kind, found["p"].axes) == (Verdict.DIVERGENT,
                                                                            Difference.NUMERICAL_DRIFT,
                                                                            ["cpu_capability"])
    assert found["p"].measured.max_ulp == 1.0 and sorted(s.runs for s in found["p"].streams) == [["run0", "run2"],
                                                                                        ["run1", "run3"]]
    assert found["q"].verdict == Verdict.IDENTICAL and found["q"].case == {"seed": 0}
    assert found["e"].verdict == Verdict.ERROR and found["e"].messages == ["killed by SIGSEGV"]
    assert (c.rows, c.runs, c.exit_code()) == (10, 4, 1)


def test_what_the_core_asks_for_is_only_the_rows_it_shows() -> None:
    from audit.compare.analysis import needs
    from audit.compare.grouping import group

    many = list(range(10))
    rows = Rows([RunInfo(f"r{i}", None) for i in range(11)], [dict(BASE_ENV), {**BASE_ENV, "os": "Other"}],
                [_outcome("k", 0, "x", many), _outcome("k", 1, "y", [10]), _outcome("same", 0, "s", many)],
                {("k", "v1"): CaseRow("k", "k", "cpu", "{}"), ("same", "v1"): CaseRow("s", "s", "cpu", "{}")})
    wanted = needs(group(rows))
    assert sorted(p.fingerprint for p in wanted.picks) == ["x", "y"]  # one per stream, none for "same"
    (stream,) = wanted.streams  # "x" repeats in ten runs of one environment: its runs must be fetched
    assert (stream.key.fingerprint, stream.want, stream.first_run, stream.last_run) == ("x", 10, 0, 9)


# --------------------------------------------------------------------------- the shell's queries


def _run(name: str, day: int, env: Any, *records: Any) -> Any:
    return make_run(name, f"2026-01-01T00:{day // 60:02d}:{day % 60:02d}.000000Z", env, records)


def test_a_stream_lists_its_first_hundred_runs_exactly(tmp_path: Path) -> None:
    runs = [_run(f"run{i:03d}", i, {}, record("p", P, "x")) for i in range(105)]
    runs.append(_run("odd", 200, {"torch_version": "2.4.1"}, record("p", P, "y")))
    write(runs, str(tmp_path))
    (f,) = compare_paths([str(tmp_path)]).findings
    assert f.verdict == Verdict.DIVERGENT
    common, odd = f.streams
    assert common.run_count == 105 and common.runs == [f"run{i:03d}" for i in range(100)]
    assert odd.runs == ["odd"]


def test_a_file_whose_rows_cannot_be_read_is_skipped_and_the_rest_compared(tmp_path: Path) -> None:
    good = write([_run("a", 1, {}, *[record("p", {"seed": s}, "x", sample="00" * 400) for s in range(50)]),
                  _run("b", 2, {"torch_version": "2.4.1"}, record("p", P, "y"))], str(tmp_path))
    data = bytearray(Path(good[0]).read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    for i in range(8, len(data) - footer - 8, 3):  # pages garbled, footer intact
        data[i] ^= 0x5A
    Path(good[0]).write_bytes(bytes(data))
    c = compare_paths([str(tmp_path)])
    (skipped,) = c.skipped
    assert skipped.path == good[0] and "unreadable" in skipped.reason
    assert c.runs == 1 and c.rows == 1 and c.exit_code() == 3 and c.findings  # the other run is compared


def test_many_copies_of_a_run_count_once_and_a_note_says_so(tmp_path: Path) -> None:
    (path,) = write([_run("a", 1, {}, record("p", P, "x"))], str(tmp_path))
    for i in range(500):
        shutil.copy(path, tmp_path / f"copy-{i:03d}.parquet")
    c = compare_paths([str(tmp_path)])
    assert c.runs == 1 and c.rows == 1 and c.exit_code() == 0
    (note,) = c.notes
    assert "500 run(s) in 500 file(s)" in note and "duplicates ignored" in note
    done = _cli("compare", str(tmp_path))
    assert done.returncode == 0 and "duplicates ignored" in done.stdout


def test_compacted_and_uncompacted_files_compare_alike_and_a_run_in_both_counts_once(tmp_path: Path) -> None:
    from audit.store.compact import compact

    write([_run("a", 1, {}, record("p", P, "x")), _run("b", 2, {"torch_version": "2.4.1"}, record("p", P, "y"))],
          str(tmp_path / "src"))
    compact([str(tmp_path / "src")], str(tmp_path / "dest"))
    plain, packed = compare_paths([str(tmp_path / "src")]), compare_paths([str(tmp_path / "dest")])
    both = compare_paths([str(tmp_path / "src"), str(tmp_path / "dest")])
    key = [(f.verdict, f.axes, f.explanation, [(s.fingerprint, s.runs) for s in f.streams]) for f in plain.findings]
    assert key == [(f.verdict, f.axes, f.explanation, [(s.fingerprint, s.runs) for s in f.streams])
                   for f in packed.findings]
    assert (both.runs, both.rows) == (2, 2) and both.notes


def test_a_memory_limit_is_applied_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    write([_run("a", 1, {}, record("p", P, "x"))], str(tmp_path))
    assert compare_paths([str(tmp_path)], memory_limit="64MB").runs == 1
    assert _cli("compare", "--memory-limit", "64MB", str(tmp_path)).returncode == 0
    _one_line_exit_2(_cli("compare", "--memory-limit", "lots", str(tmp_path)))


def test_files_of_every_schema_version_compare_together(tmp_path: Path) -> None:
    v1 = Path(__file__).parent / "fixtures" / "schema_v1" / "run_schema1.parquet"
    shutil.copy(v1, tmp_path / "v1.parquet")
    table = pq.read_table(v1)
    v2 = table.replace_schema_metadata({**table.schema.metadata, runfile.META_SCHEMA: b"2",
                                        runfile.META_RUN_ID: b"second"})
    v2 = v2.set_column(v2.column_names.index("run_id"), "run_id", pa.array(["second"] * len(v2)))
    v2 = v2.append_column("hash_algorithm", pa.array(["xxh3_128"] * len(v2)))
    pq.write_table(v2, tmp_path / "v2.parquet")
    c = compare_paths([str(tmp_path)])
    assert c.runs == 2 and c.skipped == [] and all(f.verdict == Verdict.IDENTICAL for f in c.findings)


# --------------------------------------------------------------------------- the CLI's one-line errors


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audit", *args], cwd=SOURCE_ROOT, text=True, capture_output=True,
                          timeout=120)


def _one_line_exit_2(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def _without(column: str, path: Path) -> None:
    table = runfile.run_table(make_run("r" * 8, "2026-01-01T00:00:00.000000Z", {}, [record("p", P, "x")]))
    pq.write_table(table.drop_columns([column]), path)


@pytest.mark.parametrize("column", ["fingerprint", "status", "case_key"])
def test_a_file_missing_a_required_column_is_skipped_beside_a_good_run(tmp_path: Path, column: str) -> None:
    write([_run("good", 1, {}, record("p", P, "x"))], str(tmp_path))
    _without(column, tmp_path / "bad.parquet")
    c = compare_paths([str(tmp_path)])
    (skipped,) = c.skipped
    assert f"no column '{column}'" in skipped.reason and c.runs == 1
    assert c.exit_code() == 3 and [f.verdict for f in c.findings] == [Verdict.IDENTICAL]


def test_a_column_of_the_wrong_type_is_skipped(tmp_path: Path) -> None:
    table = runfile.run_table(make_run("r" * 8, "2026-01-01T00:00:00.000000Z", {}, [record("p", P, "x")]))
    i = table.column_names.index("repeat_identical")
    pq.write_table(table.set_column(i, "repeat_identical", pa.array(["yes"])), tmp_path / "bad.parquet")
    write([_run("good", 1, {}, record("p", P, "x"))], str(tmp_path))
    (skipped,) = compare_paths([str(tmp_path)]).skipped
    assert "column 'repeat_identical' is string" in skipped.reason


def test_when_every_input_is_bad_the_one_line_says_why(tmp_path: Path) -> None:
    _without("case_key", tmp_path / "no_case_key.parquet")
    done = _cli("compare", str(tmp_path / "no_case_key.parquet"))
    _one_line_exit_2(done)
    assert "no column 'case_key'" in done.stderr
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    done = _cli("compare", str(tmp_path))
    _one_line_exit_2(done)
    assert "no column 'case_key'" in done.stderr and "junk.parquet: unreadable" in done.stderr


def test_bad_expectations_files_are_one_line(tmp_path: Path) -> None:
    write([_run("a", 1, {}, record("p", P, "x"))], str(tmp_path / "runs"))
    (tmp_path / "binary").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "nul").write_bytes(b"torch.* reason=\x00\n")
    for name, message in [("missing", "does not exist"), ("binary", "not a text file"), ("nul", "not a text file")]:
        done = _cli("compare", "--expectations", str(tmp_path / name), str(tmp_path / "runs"))
        _one_line_exit_2(done)
        assert message in done.stderr


def test_baseline_gates_fail_loudly(tmp_path: Path) -> None:
    write([_run("a", 1, {}, record("p", P, "x"))], str(tmp_path / "runs"))
    write([_run("r", 1, {}, record("other", P, "x"))], str(tmp_path / "elsewhere"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.parquet").write_bytes(b"junk")
    cases = [("nowhere", "does not exist"), ("empty", "holds no readable run"),
             ("junk", "holds no readable run"), ("elsewhere", "shares no case")]
    for name, message in cases:
        done = _cli("compare", "--baseline", str(tmp_path / name), str(tmp_path / "runs"))
        _one_line_exit_2(done)
        assert message in done.stderr
    assert _cli("compare", "--baseline", str(tmp_path / "runs"), str(tmp_path / "runs")).returncode == 0


def test_compare_and_its_json_path_share_the_engine(tmp_path: Path) -> None:
    """Text, JSON and markdown come from the same Comparison (one engine), so they agree."""
    import json

    write([_run("a", 1, {}, record("p", P, "x")), _run("b", 2, {"torch_version": "2.4.1"}, record("p", P, "y"))],
          str(tmp_path))
    text, data = _cli("compare", str(tmp_path)), _cli("compare", "--json", str(tmp_path))
    assert text.returncode == data.returncode == 1
    assert json.loads(data.stdout)["counts"]["divergent"] == 1 and "1 divergent" in text.stdout


def test_the_schema_3_columns_reach_the_core_as_named_records(tmp_path: Path) -> None:
    from audit.compare import analysis, fetch, grouping

    trace = [{"index": 0, "op": "aten::mm", "module": "m", "inputs": ["#x"],
              "outputs": [{"fingerprint": "f", "dtype": "float32", "shape": "[2]", "sample": "00"}]}]
    extra = {"blocks": "00112233445566778899aabbccddeeff", "block_elements": 16384, "trace": trace,
             "invariance": "batch", "invariant": False, "variant_values": "[2, 4]"}
    write([_run("a", 1, {}, {**record("p", P, "x"), **extra}),
           _run("b", 2, {"torch_version": "2.4.1"}, {**record("p", P, "y"), **extra, "invariant": True,
                                                      "variant_values": None})], str(tmp_path))
    with fetch.Source([str(tmp_path)]) as source:
        rows = source.rows()
        grouped = grouping.group(rows)
        picks = analysis.needs(grouped).picks
        details = source.details(picks)
    assert sorted((o.fingerprint, o.invariant, o.variant_values) for o in rows.outcomes) == [
        ("x", False, "[2, 4]"), ("y", True, None)]
    got = details[next(p for p in picks if p.fingerprint == "x")]
    assert isinstance(got, Detail) and got.blocks == bytes.fromhex(extra["blocks"]) and got.block_elements == 16384
    assert got.trace == trace and (got.invariance, got.invariant, got.variant_values) == ("batch", False, "[2, 4]")
    assert (got.dtype, got.shape) == ("float32", "[4]")
