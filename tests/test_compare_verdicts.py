"""Grouping and verdict order through the whole pipeline, over small synthetic run files."""

from __future__ import annotations

import shutil

import pytest

from audit.compare import Difference, Verdict, compare_paths
from tests.compare_helpers import dated_run, f32_sample, record, write

P = {"seed": 0}


def _verdicts(tmp_path, runs, cross_device=False):
    write(runs, str(tmp_path))
    c = compare_paths([str(tmp_path)], cross_device)
    return c, {(f.probe_key, f.device): f for f in c.findings}


def test_error_wins_over_divergence(tmp_path):
    c, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, "x")),
                                dated_run("b", 2, {"torch_version": "2.4.1"}, record("p", P, "y")),
                                dated_run("c", 3, {}, record("p", P, None, status="crash"))])
    assert f[("p", "cpu")].verdict == Verdict.ERROR
    assert c.exit_code() == 1


def test_same_environment_disagreement_is_nondeterminism_not_divergence(tmp_path):
    _, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, "x")), dated_run("b", 2, {}, record("p", P, "y")),
                                dated_run("c", 3, {"torch_version": "2.4.1"}, record("p", P, "z"))])
    assert f[("p", "cpu")].verdict == Verdict.NONDETERMINISTIC


def test_repeat_flag_is_nondeterminism(tmp_path):
    _, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, "x", repeat=False))])
    assert f[("p", "cpu")].verdict == Verdict.NONDETERMINISTIC


def test_the_workers_measure_of_a_repeat_disagreement_is_a_note(tmp_path):
    how = "a second execution gave fingerprint bbb (the first aaa): 1 of 16 sampled elements differ"
    _, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, "x", repeat=False, message=how))])
    assert f[("p", "cpu")].notes == [how]


def test_divergent_then_identical(tmp_path):
    base, drift = f32_sample([1.0, 2.0, 3.0, 4.0]), f32_sample([1.0, 2.0000002, 3.0, 4.0])
    c, f = _verdicts(tmp_path, [
        dated_run("a", 1, {}, record("p", P, "x", sample=base), record("q", P, "s")),
        dated_run("b", 2, {"cpu_capability": "AVX2"}, record("p", P, "y", sample=drift), record("q", P, "s"))])
    assert f[("p", "cpu")].verdict == Verdict.DIVERGENT
    assert f[("p", "cpu")].measured.kind == Difference.NUMERICAL_DRIFT
    assert (f[("p", "cpu")].measured.max_ulp, f[("p", "cpu")].measured.fraction) == (1.0, 0.25)
    assert f[("p", "cpu")].axes == ["cpu_capability"]
    assert f[("q", "cpu")].verdict == Verdict.IDENTICAL


def test_unsupported_everywhere_is_counted_not_judged(tmp_path):
    c, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, None, status="unsupported"), record("q", P, "s")),
                                dated_run("b", 2, {}, record("p", P, None, status="unsupported"), record("q", P, "s"))])
    assert ("p", "cpu") not in f and c.counts()["unsupported"] == 1
    assert c.unsupported[0]["probe"] == "p" and c.exit_code() == 0


def test_partly_unsupported_compares_the_rest(tmp_path):
    _, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, "x")), dated_run("b", 2, {}, record("p", P, "x")),
                                dated_run("c", 3, {"torch_version": "2.0.1"}, record("p", P, None, status="unsupported"))])
    assert f[("p", "cpu")].verdict == Verdict.IDENTICAL
    assert "torch_version=2.0.1" in f[("p", "cpu")].notes[0]


def test_probe_versions_never_diverge(tmp_path):
    _, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, "x", version="v1")),
                                dated_run("b", 2, {}, record("p", P, "y", version="v2"))])
    assert f[("p", "cpu")].verdict == Verdict.INCOMPARABLE
    assert f[("p", "cpu")].probe_version == "v2" and "older versions set aside" in f[("p", "cpu")].notes[0]


def test_newest_version_is_compared(tmp_path):
    _, f = _verdicts(tmp_path, [dated_run("a", 1, {}, record("p", P, "x", version="v1")),
                                dated_run("b", 2, {}, record("p", P, "y", version="v2")),
                                dated_run("c", 3, {"torch_version": "2.4.1"}, record("p", P, "y", version="v2"))])
    assert f[("p", "cpu")].verdict == Verdict.IDENTICAL


def test_devices_compare_only_when_asked(tmp_path):
    runs = [dated_run("a", 1, {}, record("p", P, "x"), record("p", P, "y", device="cuda"))]
    _, f = _verdicts(tmp_path / "one", runs)
    assert f[("p", "cpu")].verdict == f[("p@cuda", "cuda")].verdict == Verdict.IDENTICAL
    c, f = _verdicts(tmp_path / "two", runs, cross_device=True)
    (only,) = c.findings
    assert only.verdict == Verdict.DIVERGENT and only.axes == ["device"] and only.device == "cpu+cuda"


def test_duplicate_run_and_file_order_change_nothing(tmp_path):
    runs = [dated_run("a", 1, {}, record("p", P, "x")), dated_run("b", 2, {"cpu_capability": "AVX2"}, record("p", P, "y"))]
    paths = write(runs, str(tmp_path / "r"))
    first = compare_paths(list(reversed(paths)))
    shutil.copy(paths[0], tmp_path / "r" / "copy.parquet")  # the same run id twice
    again = compare_paths([str(tmp_path / "r"), paths[1]])
    assert [(f.verdict, f.axes, f.explanation) for f in first.findings] == \
           [(f.verdict, f.axes, f.explanation) for f in again.findings]
    assert again.runs == 2


@pytest.mark.parametrize("content", [b"not parquet at all", b"PAR1\x00\x00PAR1"])
def test_corrupt_files_are_skipped_by_name_exit_3(tmp_path, content):
    write([dated_run("a", 1, {}, record("p", P, "x"))], str(tmp_path))
    (tmp_path / "broken.parquet").write_bytes(content)
    c = compare_paths([str(tmp_path)])
    assert [s.path.endswith("broken.parquet") for s in c.skipped] == [True]
    assert c.exit_code() == 3
