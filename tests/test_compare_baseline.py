"""Baseline mode, expectations and the upgrade view."""

from __future__ import annotations

import datetime as dt

import pytest

from audit.compare import Match, compare_paths
from audit.compare import expectations as expect
from audit.compare.baseline import compare_baseline
from audit.compare.model import Comparison, Nearest
from audit.compare.upgrade import upgrade_view
from audit.errors import UsageError
from tests.compare_helpers import dated_run, record, write

P = {"seed": 0}


@pytest.fixture
def ref(tmp_path):
    write([dated_run("r1", 1, {"cpu_capability": "AVX2"}, record("p", P, "x"), record("q", P, "s")),
           dated_run("r2", 2, {"cpu_capability": "AVX512"}, record("p", P, "y"), record("q", P, "s"))],
          str(tmp_path / "ref"))
    return str(tmp_path / "ref")


def test_known_stream_names_the_reference_environment(tmp_path, ref):
    write([dated_run("n1", 3, {"cpu_capability": "AVX2"}, record("p", P, "x"), record("q", P, "s"))], str(tmp_path / "new"))
    c = compare_baseline([ref], [str(tmp_path / "new")])
    f = {x.probe_key: x for x in c.findings}
    assert f["p"].match == Match.KNOWN and f["p"].streams[0].reference == "cpu_capability=AVX2"
    assert f["q"].match == Match.KNOWN and c.exit_code() == 0


def test_a_case_the_reference_could_not_run_is_a_new_case_not_a_version_change(tmp_path):
    write([dated_run("r1", 1, {"python_version": "3.11.7"}, record("b", P, None, status="unsupported"),
               record("q", P, "s"))], str(tmp_path / "ref"))
    write([dated_run("n1", 3, {"python_version": "3.12.1"}, record("b", P, "x"), record("q", P, "s"))],
          str(tmp_path / "new"))
    c = compare_baseline([str(tmp_path / "ref")], [str(tmp_path / "new")])
    f = {x.probe_key: x for x in c.findings}["b"]
    assert f.match == Match.NEW_CASE and "only as unsupported" in f.notes[-1]
    assert c.exit_code() == 0


def test_new_stream_fails_unless_expected(tmp_path, ref):
    write([dated_run("n1", 3, {"cpu_capability": "AVX2", "torch_version": "2.14.0"}, record("p", P, "z"),
               record("q", P, "s"), record("new", P, "n"))], str(tmp_path / "new"))
    c = compare_baseline([ref], [str(tmp_path / "new")])
    f = {x.probe_key: x for x in c.findings}
    assert f["p"].match == Match.NEW_STREAM and f["new"].match == Match.NEW_CASE
    assert c.exit_code() == 1
    rules = expect.parse('p torch_version=2.14.0 reason="torch 2.14 changed p" until=2099-01-01\n'
                         'gone* reason="stale"\n'
                         'q reason="old" until=2020-01-01\n', "exp")
    c = expect.apply(c, rules, today=dt.date(2026, 6, 1))
    f = {x.probe_key: x for x in c.findings}
    assert f["p"].expected and c.exit_code() == 0
    assert c.expectation_notes == [
        "exp:1: no kind stated, so no bound: it accepted 1 finding (1 stream-change); bound it with "
        "kind=stream-change (p: torch 2.14 changed p)",
        "exp:2: matched nothing (gone*: stale)", "exp:3: expired on 2020-01-01 (q: old)"]


def test_an_expectation_of_a_split_inside_the_reference_is_named_so_not_unused(tmp_path, ref):
    write([dated_run("n1", 3, {"cpu_capability": "AVX512"}, record("p", P, "y"), record("q", P, "s"))], str(tmp_path / "new"))
    c = compare_baseline([ref], [str(tmp_path / "new")])
    c = expect.apply(c, expect.parse('p cpu_capability=AVX2 reason="vector width"\n'
                                     'q cpu_capability=AVX2 reason="never split"', "exp"))
    assert c.exit_code() == 0
    assert c.expectation_notes == [
        "exp:1: nothing new to accept; it accepts a split the reference already holds (1 case; p: vector width)",
        "exp:2: matched nothing (q: never split)"]


def test_expectation_accepts_a_divergence_by_field_value(tmp_path, ref):
    c = compare_paths([ref])
    assert c.exit_code() == 1
    c = expect.apply(c, expect.parse('p seed=0 cpu_capability=AVX2 reason="vector width"'))
    assert c.exit_code() == 0
    c = compare_paths([ref])
    c = expect.apply(c, expect.parse('p seed=1 cpu_capability=AVX2 reason="other params"'))
    assert c.exit_code() == 1


@pytest.mark.parametrize("line", ['p reason="x" until=tomorrow', "p cpu_capability=AVX2", 'p oops reason="x"',
                                  'p "unclosed'])
def test_malformed_expectations_are_usage_errors(line):
    with pytest.raises(UsageError, match="exp:1"):
        expect.parse(line, "exp")


def test_upgrade_view_lists_changed_cases_by_probe(tmp_path):
    write([dated_run("a", 1, {"torch_version": "2.4.1"}, record("p", P, "x"), record("p", {"seed": 1}, "x1"),
               record("q", P, "s")),
           dated_run("b", 2, {"torch_version": "2.13.0"}, record("p", P, "y"), record("p", {"seed": 1}, "x1"),
               record("q", P, "s"))], str(tmp_path))
    c = compare_paths([str(tmp_path)])
    view = upgrade_view(c, "torch_version").upgrade
    assert view is not None and c.upgrade is None  # a new comparison; the given one as it was
    assert view.values == ["2.4.1", "2.13.0"]
    assert [(p.probe, p.changed, p.compared) for p in view.by_probe] == [("p", 1, 2), ("q", 0, 1)]
    assert view.confounders == {("2.4.1", "2.13.0"): []}
    with pytest.raises(UsageError):
        upgrade_view(c, "numpy_version")
    with pytest.raises(UsageError):
        upgrade_view(c, "not_a_field")


@pytest.mark.parametrize("status, message", [("unsupported", "torch has no attribute 'manul_seed'"),
                                             ("error", "AttributeError: module 'torch' has no attribute 'manul_seed'"),
                                             ("crash", None), ("timeout", None)])
def test_a_case_the_reference_ran_ok_that_no_longer_runs_fails_the_gate(tmp_path, ref, status, message):
    from audit.report import jsonout, text
    from audit.report.view import build_view

    write([dated_run("n1", 3, {"cpu_capability": "AVX2"}, record("p", P, None, status=status, message=message),
               record("q", P, "s"))], str(tmp_path / "new"))
    c = compare_baseline([ref], [str(tmp_path / "new")])
    f = {x.probe_key: x for x in c.findings}
    assert f["p"].match == Match.NO_LONGER_RUNS and f["p"].unexpected and c.exit_code() == 1
    assert f["p"].explanation.startswith(f"no longer runs here: {status}")
    if message:
        assert message in f["p"].explanation
    out = text.render(build_view(c))
    assert "no longer runs here" in out and "nothing unexpected" not in out and "reproduces" not in out
    assert '"match": "no-longer-runs"' in jsonout.render(build_view(c))
    assert not c.unsupported


def test_nothing_compared_fails_closed_in_baseline_mode(tmp_path):
    from audit.report import markdown, text
    from audit.report.view import build_view

    write([dated_run("r1", 1, {}, record("p", P, None, status="unsupported"), record("q", P, "s"))], str(tmp_path / "ref"))
    write([dated_run("n1", 3, {}, record("p", P, None, status="unsupported"), record("q", P, None, status="unsupported"))],
          str(tmp_path / "new"))
    c = compare_baseline([str(tmp_path / "ref")], [str(tmp_path / "new")])
    assert c.compared == 0 and c.exit_code() == 1
    for out in (text.render(build_view(c)), markdown.render(build_view(c))):
        assert "reproduces" not in out and "nothing unexpected" not in out
        assert "nothing could be compared" in out


def test_nothing_compared_fails_closed_without_a_baseline(tmp_path):
    from audit.report import text
    from audit.report.view import build_view

    write([dated_run("n1", 3, {}, record("p", P, None, status="unsupported"))], str(tmp_path / "new"))
    c = compare_paths([str(tmp_path / "new")])
    assert c.exit_code() == 1
    out = text.render(build_view(c))
    assert "no case differs" not in out and "nothing unexpected" not in out
    assert "nothing could be compared: 1 case unsupported in every run" in out


def _every_path(tmp_path):
    """A reference and new runs whose cases take every path of baseline mode: known, new stream,
    no longer runs (an error here, unsupported here), new case."""
    write([dated_run("r1", 1, {"cpu_capability": "AVX2"}, record("k", P, "k"), record("p", P, "x"),
               record("e", P, "e"), record("u", P, "u"))], str(tmp_path / "ref"))
    write([dated_run("n1", 3, {"cpu_capability": "AVX512"}, record("k", P, "k"), record("p", P, "z"),
               record("e", P, None, status="error", message="boom"),
               record("u", P, None, status="unsupported"), record("new", P, "n"))], str(tmp_path / "new"))
    return str(tmp_path / "ref"), str(tmp_path / "new")


def test_findings_and_streams_are_built_once_no_later_stage_patches_them(tmp_path):
    import dataclasses

    ref, new = _every_path(tmp_path)
    c = expect.apply(compare_baseline([ref], [new]), expect.parse('p reason="accepted"', "exp"))
    f = {x.probe_key: x for x in c.findings}
    assert {k: x.match for k, x in f.items()} == {
        "k": Match.KNOWN, "p": Match.NEW_STREAM, "e": Match.NO_LONGER_RUNS, "u": Match.NO_LONGER_RUNS,
        "new": Match.NEW_CASE}
    assert f["p"].expected == "accepted (exp:1)" and f["p"].streams[0].known is False
    for record_, name in [(f["p"], "expected"), (f["e"], "match"), (f["p"].streams[0], "known"),
                          (f["u"].reference_streams[0], "env_ids"), (Nearest("x"), "invariance")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record_, name, None)


def test_no_stage_of_compare_assigns_a_field_of_a_built_comparison(tmp_path, monkeypatch, capsys):
    """Baseline mode, --probe and --expectations each make a new comparison (--upgrade still
    fills one in: audit/compare/upgrade.py)."""
    from audit.cli import main

    built = Comparison.__init__

    def init(self, *args, **kwargs):
        built(self, *args, **kwargs)
        object.__setattr__(self, "_built", True)

    def assign(self, name, value):
        if getattr(self, "_built", False):
            raise AssertionError(f"Comparison.{name} assigned after the comparison was built")
        object.__setattr__(self, name, value)

    monkeypatch.setattr(Comparison, "__init__", init)
    monkeypatch.setattr(Comparison, "__setattr__", assign)
    ref, new = _every_path(tmp_path)
    (tmp_path / "exp.txt").write_text('p reason="accepted"\nnone.* reason="unused"\n')
    exp = str(tmp_path / "exp.txt")
    assert main(["compare", "--baseline", ref, new, "--expectations", exp, "--probe", "*", "--json"]) == 1
    assert main(["compare", ref, new, "--expectations", exp, "--probe", "p", "--details"]) == 0
    out = capsys.readouterr().out
    assert '"match": "no-longer-runs"' in out and "exp.txt:2: matched nothing" in out
