"""What compare says about a difference: where in the stream, how (drift only with ULP
evidence, sparse, desync), invariance (the variant verdict and its splits), the first
divergent op of a trace, and in baseline mode the nearest known stream and why.

The pure parts are driven with rows built in memory; baseline mode goes through run files.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, List, Optional

import pytest

from audit.compare import Difference, Match, Verdict, difference
from audit.compare.analysis import compare_rows
from audit.compare.baseline import compare_baseline
from audit.compare.judgements import kind_of
from audit.compare.model import Measured
from audit.compare.rows import CaseRow, Detail, Outcome, Pick, Rows, RunInfo
from audit.report.view import build_view
from audit.worker.records import Status
from tests.compare_helpers import BASE_ENV, f32_sample, make_run, record, write

BLOCK = 16384  # float32 elements per 64 KiB block


def _blocks(*digests: int) -> bytes:
    return b"".join(struct.pack("<Q", d) for d in digests)


def _detail(sample: str, blocks: Optional[bytes], *, trace: Any = None, invariance: Optional[str] = None,
            dtype: str = "float32", shape: str = "[65536]") -> Detail:
    return Detail(dtype, shape, sample, blocks, BLOCK if blocks is not None else None, None, trace, invariance,
                  None, None)


# 16 sampled elements of a [65536] float32 output: positions 0-8, 9369, 18730, 28091, 37452 (block 2), ...
SAME = f32_sample([float(i + 1) for i in range(16)])
DRIFT = f32_sample([float(i + 1) if i != 12 else 13.000001 for i in range(16)])  # element 37452 (block 2): 1 ULP
OTHER = f32_sample([9.0, -2.0, 0.5, 7.0] * 4)  # unrelated values


# --------------------------------------------------------------------------- where and how


def test_sampled_drift_is_drift_and_the_blocks_say_where() -> None:
    got = difference.classify_pair(_detail(SAME, _blocks(1, 2, 3, 4)), _detail(DRIFT, _blocks(1, 2, 9, 4)))
    assert (got.kind, got.max_ulp) == (Difference.NUMERICAL_DRIFT, 1.0)
    assert (got.first_block, got.first_difference, got.blocks_differing, got.blocks) == (2, 2 * BLOCK, 1, 4)


def test_agreeing_samples_with_differing_blocks_are_sparse_never_drift() -> None:
    got = difference.classify_pair(_detail(SAME, _blocks(1, 2, 3, 4)), _detail(SAME, _blocks(1, 7, 3, 4)))
    assert got.kind == Difference.SPARSE and got.max_ulp is None
    assert (got.first_difference, got.blocks_differing, got.blocks) == (BLOCK, 1, 4)


def test_agreeing_samples_without_blocks_claim_nothing() -> None:
    """Files of schema 2 have no block digests: no kind rather than a guess."""
    got = difference.classify_pair(_detail(SAME, None), _detail(SAME, None))
    assert got.kind is None and got.blocks is None


def test_a_stream_that_parts_after_a_block_is_a_change_from_there_on() -> None:
    got = difference.classify_pair(_detail(SAME, _blocks(1, 2, 3, 4)), _detail(OTHER, _blocks(1, 5, 6, 7)))
    assert got.kind == Difference.STREAM_CHANGE
    assert (got.first_block, got.blocks_differing, got.blocks) == (1, 3, 4)  # every block from 1 on: a desync


def test_integers_that_differ_are_a_new_stream_and_shapes_are_structural() -> None:
    ints = struct.pack("<4q", 1, 2, 3, 4).hex(), struct.pack("<4q", 1, 2, 3, 5).hex()
    got = difference.classify_pair(_detail(ints[0], _blocks(1), dtype="int64"), _detail(ints[1], _blocks(2),
                                                                                         dtype="int64"))
    assert got.kind == Difference.STREAM_CHANGE
    assert difference.classify_pair(_detail(SAME, None), _detail(SAME, None, shape="[3]")).kind == \
        Difference.STRUCTURAL


def test_the_nearest_known_stream_is_the_least_different() -> None:
    new = _detail(DRIFT, _blocks(1, 2, 9, 4))
    known = [_detail(OTHER, _blocks(8, 9, 9, 9)), _detail(SAME, _blocks(1, 2, 3, 4)),
             _detail(SAME, _blocks(5, 6), shape="[2]")]
    assert difference.nearest(new, known) == 1


# --------------------------------------------------------------------------- verdicts from rows


def _outcome(key: str, env: int, fp: str, run: int, invariant: Optional[bool] = None,
             values: Optional[List[Any]] = None) -> Outcome:
    return Outcome(key, "v1", env, Status.OK, fp, False, invariant, None if values is None else json.dumps(values),
                   1, run, run)


def _rows(outcomes: List[Outcome], details: Dict[Pick, Detail], envs: Optional[List[Dict[str, Any]]] = None,
          kind: str = "op", invariance: Optional[str] = None) -> Rows:
    envs = envs or [dict(BASE_ENV), {**BASE_ENV, "num_threads": "1"}]
    params = json.dumps({"batch": [32, 1, 2, 3], "seed": 0}) if invariance else '{"seed":0}'
    cases = {(o.case_key, "v1"): CaseRow(o.case_key, o.case_key, "cpu", params, kind, invariance) for o in outcomes}
    return Rows([RunInfo(f"run{i}", None) for i in range(4)], envs, outcomes, cases, details=details)


def _pick(o: Outcome) -> Pick:
    return Pick(o.first_run, o.case_key, o.probe_version, o.status, o.fingerprint)


def test_an_invariance_broken_the_same_way_everywhere_is_variant() -> None:
    outcomes = [_outcome("m", 0, "x", 0, False, [1, 2]), _outcome("m", 1, "x", 1, False, [1, 2])]
    details = {_pick(o): _detail(SAME, _blocks(1), invariance="batch") for o in outcomes}
    c = compare_rows(_rows(outcomes, details, invariance="batch"))
    (f,) = c.findings
    assert (f.verdict, f.varies_with, f.values) == (Verdict.VARIANT, "batch", ["1", "2"])
    assert f.unexpected and c.exit_code() == 1
    assert "batch=32 is the reference" in f.explanation


def test_an_invariance_that_holds_in_one_environment_only_is_a_split_by_environment() -> None:
    outcomes = [_outcome("m", 0, "x", 0, False, [1]), _outcome("m", 1, "x", 1, True, None)]
    details = {_pick(o): _detail(SAME, _blocks(1), invariance="batch") for o in outcomes}
    (f,) = compare_rows(_rows(outcomes, details, invariance="batch")).findings
    assert f.verdict == Verdict.DIVERGENT and f.axes[0] == "num_threads"
    assert f.varies_with == "batch" and f.values == ["1"]
    assert f.measured.kind is None and kind_of(f) is None  # the outputs themselves agree
    assert {(s.invariant, tuple(s.variant_values)) for s in f.streams} == {(False, ("1",)), (True, ())}
    assert any("num_threads=1: invariant" in n for n in f.notes)


def test_invariant_cases_are_identical() -> None:
    outcomes = [_outcome("m", 0, "x", 0, True), _outcome("m", 1, "x", 1, True)]
    (f,) = compare_rows(_rows(outcomes, {}, invariance="batch")).findings
    assert f.verdict == Verdict.IDENTICAL and f.kind == "op" and f.invariance == "batch"


def _op(index: int, op: str, fp: str, sample: str, inputs: List[str]) -> Dict[str, Any]:
    return {"index": index, "op": op, "module": "1", "inputs": inputs,
            "outputs": [{"fingerprint": fp, "dtype": "float32", "shape": "[4]", "sample": sample}]}


def test_a_divergent_trace_names_its_first_divergent_op() -> None:
    a = [_op(0, "aten.mm.default", "a0", SAME, ["w"]), _op(1, "aten.native_layer_norm.default", "a1", SAME, ["#0.0"]),
         _op(2, "aten.relu.default", "a2", SAME, ["#1.0"])]
    b = [a[0], _op(1, "aten.native_layer_norm.default", "b1", DRIFT, ["#0.0"]),
         _op(2, "aten.relu.default", "b2", DRIFT, ["#1.0"])]
    outcomes = [_outcome("t", 0, "x", 0), _outcome("t", 1, "y", 1)]
    details = {_pick(outcomes[0]): _detail(SAME, None, trace=a), _pick(outcomes[1]): _detail(SAME, None, trace=b)}
    (f,) = compare_rows(_rows(outcomes, details, kind="trace")).findings
    assert f.verdict == Verdict.DIVERGENT and f.kind == "trace"
    d = f.first_divergence
    assert d is not None and (d["index"], d["op"], d["inputs_identical"], d["difference"], d["max_ulp"]) == \
        (1, "aten.native_layer_norm.default", True, "numerical-drift", 1.0)
    assert (d["ops_differing"], d["ops"]) == (1, 3)
    assert f.measured.kind == Difference.NUMERICAL_DRIFT
    (line,) = summarise_lines([f])
    assert "first divergent op #1 aten.native_layer_norm.default" in line


def summarise_lines(findings: List[Any]) -> List[str]:
    from audit.compare.model import Comparison
    from audit.report.text import probe_line

    return [probe_line(p) for p in build_view(Comparison(findings, [], 0, 2, [])).changed]


# --------------------------------------------------------------------------- baseline how and why


def _rec(fp: str, sample: str, blocks: bytes, **extra: Any) -> Dict[str, Any]:
    return {**record("torch.exp", {"seed": 0}, fp, sample=sample, shape="[65536]"), "blocks": blocks.hex(),
            "block_elements": BLOCK, **extra}


def test_a_new_stream_gets_its_nearest_known_stream_the_kind_and_the_fields_that_differ(tmp_path: Any) -> None:
    intel = {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_capability": "AVX512"}
    ref = [make_run("r1", "2026-01-01T00:00:00Z", intel, [_rec("aa", SAME, _blocks(1, 2, 3, 4))]),
           make_run("r2", "2026-01-01T00:00:01Z", {**intel, "cpu_capability": "AVX2"},
                    [_rec("bb", OTHER, _blocks(5, 6, 7, 8))])]
    amd = {"cpu_model": "AMD EPYC 7B13", "cpu_capability": "AVX512", "machine_id": "linux-x86_64-0000bbbb"}
    new = [make_run("n1", "2026-02-01T00:00:00Z", amd, [_rec("cc", DRIFT, _blocks(1, 2, 9, 4))])]
    write(ref, str(tmp_path / "ref"))
    write(new, str(tmp_path / "new"))
    c = compare_baseline([str(tmp_path / "ref")], [str(tmp_path / "new")])
    (f,) = c.findings
    assert f.match == Match.NEW_STREAM and f.unexpected
    (s,) = f.streams
    assert s.nearest is not None and s.nearest.fingerprint == "aa"
    assert (s.nearest.measured.kind, s.nearest.measured.max_ulp, s.nearest.measured.blocks_differing) == \
        (Difference.NUMERICAL_DRIFT, 1.0, 1)
    assert (f.measured.kind, f.measured.max_ulp, f.measured.first_difference) == \
        (Difference.NUMERICAL_DRIFT, 1.0, 2 * BLOCK)
    assert f.axes_values == {"cpu_model": ["AMD EPYC 7B13", "Intel(R) Xeon(R) Processor"]}
    assert f.axes == ["cpu_model"]
    assert ("the only difference from the reference run on Intel(R) Xeon(R) Processor, AVX512, 2 threads "
            "is the CPU: AMD EPYC 7B13 vs Intel(R) Xeon(R) Processor") in f.explanation
    assert {r.fingerprint for r in f.reference_streams} == {"aa", "bb"} and len(c.reference_envs) == 2


def test_a_known_variant_is_known_and_a_changed_variance_is_new(tmp_path: Any) -> None:
    def rec(values: Optional[List[int]]) -> Dict[str, Any]:
        return _rec("aa", SAME, _blocks(1), invariance="batch", invariant=values is None,
                    variant_values=None if values is None else json.dumps(values))

    write([make_run("r1", "2026-01-01T00:00:00Z", {}, [rec([1])])], str(tmp_path / "ref"))
    write([make_run("n1", "2026-02-01T00:00:00Z", {}, [rec([1])])], str(tmp_path / "same"))
    write([make_run("n2", "2026-02-01T00:00:00Z", {"num_threads": "1"}, [rec(None)])], str(tmp_path / "changed"))
    (known,) = compare_baseline([str(tmp_path / "ref")], [str(tmp_path / "same")]).findings
    assert (known.verdict, known.match) == (Verdict.VARIANT, Match.KNOWN) and not known.unexpected
    (changed,) = compare_baseline([str(tmp_path / "ref")], [str(tmp_path / "changed")]).findings
    assert changed.match == Match.NEW_STREAM
    assert changed.axes_values.get("num_threads") == ["1", "2"]
    (s,) = changed.streams  # the same output: the how is the invariance, not a difference in the output
    assert s.nearest is not None and s.nearest.invariance == "1"
    assert "the same output as the reference's only stream" in changed.explanation
    assert "invariance breaks at other values (there: 1)" in changed.explanation
    assert changed.measured.blocks_differing is None and "blocks" not in changed.explanation


@pytest.mark.parametrize("field", ["first_difference", "blocks_differing", "blocks", "first_divergence",
                                   "varies_with", "values"])
def test_the_json_contract_carries_every_new_key(field: str) -> None:
    from audit.compare.model import Finding
    from audit.report.jsonout import finding_json

    f = Finding("p", "p", "k", {}, "cpu", "v1", Verdict.DIVERGENT)
    assert field in finding_json(f)


def test_why_names_only_fields_no_reference_run_of_the_nearest_stream_shares() -> None:
    from audit.compare.attribution import differing_fields

    mine = [{"num_threads": "3", "cpu_capability": "AVX2", "machine_id": "a"}]
    theirs = [{"num_threads": "1", "cpu_capability": "AVX2", "machine_id": "b"},
              {"num_threads": "2", "cpu_capability": "AVX512", "machine_id": "b"}]
    assert differing_fields(mine, theirs) == {"num_threads": ["3", "1, 2"]}  # AVX2 is among theirs


def test_a_reference_stream_no_field_splits_is_named_by_its_environment_not_its_hash() -> None:
    from audit.compare.baseline import KnownStream, describe

    envs = [{"cpu_capability": c, "num_threads": t, "OMP_NUM_THREADS": t, "torch_version": "2.13.0"}
            for c, t in (("AVX2", "1"), ("AVX2", "2"), ("AVX512", "1"), ("AVX512", "1"))]
    streams = [KnownStream(f"s{i}", [_outcome("k", i, f"s{i}", i)]) for i in range(4)]
    known = {k: k.envs for k in streams}
    # two runs of the same settings made different streams: no field explains the split, so a
    # stream is named by its runs' values of the fields that vary; OMP_NUM_THREADS groups the
    # runs as num_threads does and is left out, torch_version never varies
    assert describe(known, streams[2], envs) == "cpu_capability=AVX512 num_threads=1"
    assert describe(known, streams[1], envs) == "cpu_capability=AVX2 num_threads=2"


# --------------------------------------------------------------------------- drift needs evidence in every block


def test_drift_seen_in_one_block_while_others_differ_is_not_called_drift() -> None:
    """Block 2 holds the sampled element 1 ULP away; blocks 0 and 3 differ where nothing was sampled."""
    got = difference.classify_pair(_detail(SAME, _blocks(1, 2, 3, 4)), _detail(DRIFT, _blocks(7, 2, 9, 8)))
    assert got.kind is None and got.max_ulp == 1.0 and got.covered is False
    assert (got.blocks_differing, got.blocks) == (3, 4)
    assert got.severity == Measured(Difference.SPARSE).severity


def test_drift_words_say_where_sampled_and_how_many_blocks_differ(tmp_path: Any) -> None:
    from audit.report import text
    from audit.report.view import build_view

    write([make_run("r1", "2026-01-01T00:00:00Z", {}, [_rec("aa", SAME, _blocks(1, 2, 3, 4))])], str(tmp_path / "r"))
    write([make_run("n1", "2026-02-01T00:00:00Z", {"cpu_model": "Other CPU"},
                    [_rec("cc", DRIFT, _blocks(7, 2, 9, 8))])], str(tmp_path / "n"))
    c = compare_baseline([str(tmp_path / "r")], [str(tmp_path / "n")])
    (f,) = c.findings
    assert kind_of(f) == "within-sample" and f.measured.kind is None
    out = text.render(build_view(c), details=True)
    assert "within 1 ULP where sampled; 3 of 4 blocks differ" in out
    assert "numerical-drift" not in out and "rtol" not in out
    (p,) = build_view(c).probes
    assert p.max_ulp is None and p.difference == {"within-sample": 1}


def test_a_sign_flip_of_every_zero_is_named() -> None:
    zeros, negative = f32_sample([0.0] * 4), f32_sample([-0.0] * 4)
    got = difference.classify_pair(_detail(zeros, _blocks(1), shape="[4]"), _detail(negative, _blocks(2), shape="[4]"))
    assert got.zero_sign and got.kind is None and got.blocks_differing == 1
    f = _finding_with(got)
    assert kind_of(f) == "signed-zero"
    from audit.report import phrases

    assert "sign of zero (0.0 vs -0.0)" in phrases.how(f)
    assert "sparse" not in phrases.how(f)


def test_drift_gives_the_tolerance_that_accepts_it() -> None:
    a = f32_sample([1.0, 2.0, 4.0, 0.5])
    b = f32_sample([1.0, 2.0000002, 4.0, 0.5])  # 1 ULP at 2.0: 2.38e-07 absolute, 1.19e-07 relative
    got = difference.classify_pair(_detail(a, None, shape="[4]"), _detail(b, None, shape="[4]"))
    assert got.kind == Difference.NUMERICAL_DRIFT and got.covered
    assert got.rtol == pytest.approx(2 ** -23) and got.atol == pytest.approx(2 ** -22)
    from audit.report import phrases

    f = _finding_with(got)
    assert "accept with rtol >= 1.2e-07" in phrases.how(f)
    assert phrases.tolerance(None, 3e-5) == "accept with atol >= 3.0e-05"
    assert float(phrases.tolerance(3.21e-5, None).split(">= ")[1]) >= 3.21e-5  # rounded up, never down


def _finding_with(located: Any) -> Any:
    from audit.compare.model import Finding

    return Finding("torch.exp", "torch.exp", "k", {"seed": 0}, "cpu", "v1", Verdict.DIVERGENT, measured=located)


def test_the_why_is_the_nearest_environment_not_the_nearest_streams_makers(tmp_path: Any) -> None:
    """Issue 18 item 8: the nearest *stream* came from the reference's torch 2.4.1 run, but a
    2.13.0 reference run with this run's settings exists: blame the CPU, never torch_version;
    the kernel and CPU fields come first."""
    intel = {"cpu_model": "Intel(R) Xeon(R) Processor", "openblas_core": "SkylakeX", "mkl_code_path": "AVX512_E1"}
    ref = [make_run("r1", "2026-01-01T00:00:00Z", {**intel, "torch_version": "2.4.1"},
                    [_rec("aa", SAME, _blocks(1, 2, 3, 4))]),
           make_run("r2", "2026-01-01T00:00:01Z", {**intel, "torch_version": "2.13.0"},
                    [_rec("bb", OTHER, _blocks(5, 6, 7, 8))])]
    amd = {"cpu_model": "AMD EPYC 9B14", "openblas_core": "Haswell", "mkl_code_path": "AVX2",
           "torch_version": "2.13.0", "machine_id": "linux-x86_64-0000bbbb"}
    write(ref, str(tmp_path / "ref"))
    write([make_run("n1", "2026-02-01T00:00:00Z", amd, [_rec("cc", DRIFT, _blocks(1, 2, 9, 4))])],
          str(tmp_path / "new"))
    (f,) = compare_baseline([str(tmp_path / "ref")], [str(tmp_path / "new")]).findings
    assert f.streams[0].nearest is not None and f.streams[0].nearest.fingerprint == "aa"  # the how much
    assert list(f.axes_values) == ["openblas_core", "mkl_code_path", "cpu_model"]
    how_much, why = f.explanation.split("; ", 1)
    assert "torch_version=2.4.1 stream" in how_much  # the nearest stream is named as such
    assert "torch_version" not in f.axes_values and "torch_version" not in why
    assert "openblas_core: Haswell vs SkylakeX" in f.explanation
