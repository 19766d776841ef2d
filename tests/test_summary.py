"""The per-probe summary: case-parameter explanations (exact, or none), counts, kinds, families."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.compare.judgements import OUTSIDE_SAMPLE, family, kind_of
from audit.compare.model import Comparison, Difference, Finding, Match, Measured, Stream, Verdict
from audit.compare.params import explain_params
from audit.report.view import build_view

# --------------------------------------------------------------------------- explain_params: examples

RANDN = [{"dtype": d, "seed": s, "size": n} for d in ("float16", "bfloat16", "float32", "float64")
         for s in (0, 17) for n in (5, 16, 1000)]


def _explain(cases: List[Dict[str, Any]], rule: Any) -> Any:
    return explain_params(cases, [bool(rule(c)) for c in cases])


def test_a_value_set_names_the_changed_dtypes() -> None:
    got = _explain(RANDN, lambda c: c["dtype"] in ("float16", "bfloat16"))
    assert got.text == "dtype in {bfloat16, float16}"
    assert got.values == {"dtype": ["bfloat16", "float16"]}


def test_a_threshold_when_the_changed_sizes_are_the_large_ones() -> None:
    got = _explain(RANDN, lambda c: c["size"] >= 16)
    assert got.text == "size >= 16" and got.values == {"size": [16, 1000]}


def test_a_complement_when_it_is_shorter() -> None:
    cases = [{"mode": m, "seed": s} for m in ("one", "several", "replacement") for s in (0, 1)]
    assert _explain(cases, lambda c: c["mode"] != "replacement").text == "mode != replacement"


def test_a_type_when_the_values_differ_in_type() -> None:
    cases = [{"p": p} for p in (0.25, 0.5, 0.75, 1, 0, "tensor")]
    got = _explain(cases, lambda c: isinstance(c["p"], float))
    assert got.text == "p is a float" and got.values == {"p": [0.25, 0.5, 0.75]}


def test_a_pair_when_no_single_parameter_explains() -> None:
    got = _explain(RANDN, lambda c: c["dtype"] != "float64" and c["size"] >= 16)
    assert got.text == "dtype != float64 and size >= 16"
    assert set(got.values) == {"dtype", "size"}


def test_nothing_when_all_or_none_changed_or_nothing_separates() -> None:
    assert _explain(RANDN, lambda c: True) is None
    assert _explain(RANDN, lambda c: False) is None
    odd = [c for c in RANDN if c["size"] == 5]  # dtype x seed: changed on the diagonal only
    assert _explain(odd, lambda c: (c["dtype"] in ("float16", "float32")) == (c["seed"] == 0)) is None


def test_one_true_and_1_1_0_stay_apart() -> None:
    cases = [{"x": True}, {"x": 1}, {"x": 1.0}, {"x": "1"}]
    got = explain_params(cases, [False, True, False, False])
    assert got is not None and got.values == {"x": [1]} and [got.holds(c) for c in cases] == [False, True, False, False]


def test_only_parameters_every_case_has() -> None:
    cases = [{"a": 1, "extra": 1}, {"a": 1}, {"a": 2}]
    got = explain_params(cases, [True, True, False])
    assert got is not None and list(got.values) == ["a"]


# --------------------------------------------------------------------------- explain_params: properties

VALUES = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.5, 1e300]), st.sampled_from(["a", "b", "c"]),
                   st.booleans(), st.none(), st.lists(st.integers(0, 2), max_size=2))


@st.composite
def labelled_cases(draw: Any) -> Any:
    names = draw(st.lists(st.sampled_from(["dtype", "size", "seed", "p", "mode"]), min_size=1, max_size=3,
                          unique=True))
    cases = draw(st.lists(st.fixed_dictionaries({n: VALUES for n in names}), min_size=1, max_size=14))
    changed = draw(st.lists(st.booleans(), min_size=len(cases), max_size=len(cases)))
    return cases, changed


def _in(value: Any, values: List[Any]) -> bool:
    key = json.dumps(value, sort_keys=True) + str(type(value) is float)
    return key in {json.dumps(v, sort_keys=True) + str(type(v) is float) for v in values}


@settings(max_examples=400, deadline=None)
@given(labelled_cases())
def test_an_explanation_never_misclassifies_a_case(data: Any) -> None:
    cases, changed = data
    got = explain_params(cases, changed)
    if got is None:
        return
    for case, hit in zip(cases, changed):
        assert got.holds(case) == hit, (got.text, case, hit)  # the words
        assert all(_in(case[n], vs) for n, vs in got.values.items()) == hit  # the JSON values
        assert all(c.holds(case) == _in(case[c.name], got.values[c.name]) for c in got.conditions)


@settings(max_examples=300, deadline=None)
@given(labelled_cases())
def test_a_separating_parameter_is_always_found(data: Any) -> None:
    cases, changed = data
    if all(changed) or not any(changed):
        return
    keys = [{n: json.dumps(c[n]) + str(type(c[n]) is float) for n in c} for c in cases]
    separating = [n for n in cases[0]
                  if not {k[n] for k, h in zip(keys, changed) if h} & {k[n] for k, h in zip(keys, changed) if not h}]
    got = explain_params(cases, changed)
    if separating:
        assert got is not None and len(got.conditions) == 1


# --------------------------------------------------------------------------- summarise


def _finding(probe: str, case: Dict[str, Any], verdict: Verdict = Verdict.IDENTICAL, **kw: Any) -> Finding:
    if "difference" in kw or "max_ulp" in kw or "fraction_differing" in kw:
        kw["measured"] = Measured(kw.pop("difference", None), kw.pop("max_ulp", None),
                                  kw.pop("fraction_differing", None))
    return Finding(probe, kw.pop("key", probe), f"{probe}|{json.dumps(case)}", case, kw.pop("device", "cpu"), "v1",
                   verdict, **kw)


def test_one_summary_per_probe_with_counts_kinds_ulps_and_why() -> None:
    split = "split by cpu_capability: AVX2 | DEFAULT"
    findings = [_finding("torch.randn", {"size": 5})]
    findings += [_finding("torch.randn", {"size": n}, Verdict.DIVERGENT, difference=Difference.NUMERICAL_DRIFT,
                          max_ulp=float(n), axes=["cpu_capability"], explanation=split) for n in (16, 17, 1000)]
    findings.append(_finding("torch.bernoulli", {"p": "scalar"}, Verdict.DIVERGENT,
                             difference=Difference.STREAM_CHANGE, max_ulp=1e9, axes=["torch_version"]))
    findings += [_finding("random.random", {"seed": s}) for s in range(3)]
    unsupported = [{"probe": "torch.randn", "probe_key": "torch.randn@cuda", "device": "cuda", "case": {}}]
    s = build_view(Comparison(findings, unsupported, 10, 2, []))
    by = {p.probe: p for p in s.probes}
    randn = by["torch.randn"]
    assert (randn.cases, randn.changed, randn.verdicts) == (4, 3, {"divergent": 3, "identical": 1})
    assert randn.difference == {"numerical-drift": 3} and randn.max_ulp == 1000.0
    assert randn.params is not None and randn.params.text == "size >= 16" and randn.why == split
    assert by["torch.bernoulli"].max_ulp is None  # a stream change's ULP distance means nothing
    assert [p.probe for p in s.changed] == ["torch.bernoulli", "torch.randn"]  # both unexpected: family order
    assert [p.probe for p in s.unchanged] == ["random.random"] and s.unchanged_cases() == 3
    assert by["torch.randn@cuda"].unsupported_only and by["torch.randn@cuda"].family == "cuda"


def test_drift_without_ulp_evidence_is_not_called_drift() -> None:
    f = _finding("numpy.random.Generator.dirichlet", {"seed": 0}, Verdict.DIVERGENT,
                 difference=Difference.NUMERICAL_DRIFT, max_ulp=0.0, fraction_differing=0.0)
    assert kind_of(f) == OUTSIDE_SAMPLE
    p = build_view(Comparison([f], [], 2, 2, [])).probes[0]
    assert p.difference == {OUTSIDE_SAMPLE: 1} and p.max_ulp is None


def test_baseline_mode_counts_matches_and_explains_with_both_values() -> None:
    new = _finding("torch.exp", {"seed": 0}, match=Match.NEW_STREAM, difference=Difference.NUMERICAL_DRIFT,
                   max_ulp=1.0, axes=["cpu_model"], axes_values={"cpu_model": ["AMD EPYC", "Intel(R) Xeon(R)"]})
    known = _finding("torch.exp", {"seed": 1}, match=Match.KNOWN)
    p = build_view(Comparison([new, known], [], 2, 1, [], baseline="ref")).probes[0]
    assert p.verdicts == {"new-stream": 1, "known": 1} and p.changed == 1
    assert p.why == "cpu_model: AMD EPYC vs Intel(R) Xeon(R)" and p.params is not None


def test_expected_cases_are_counted() -> None:
    f = _finding("torch.sum", {"n": 1}, Verdict.DIVERGENT, expected="threads")
    p = build_view(Comparison([f, _finding("torch.sum", {"n": 2}, Verdict.DIVERGENT)], [], 2, 2, [])).probes[0]
    assert (p.changed, p.expected, p.unexpected) == (2, 1, 1)


def test_families() -> None:
    assert family("random.gauss") == "python random"
    assert family("numpy.random.RandomState.randn") == "numpy legacy"
    assert family("numpy.random.seed") == "numpy legacy"
    assert family("numpy.random.Generator.integers") == "numpy Generator"
    assert family("numpy.random.PCG64.jumped") == "numpy Generator"
    assert family("numpy.matmul") == "numpy ops"
    assert family("pandas.DataFrame.sample") == "pandas"
    assert family("torch.rand") == "torch RNG" and family("torch.Tensor.normal_") == "torch RNG"
    assert family("torch.Tensor.index_add_") == "torch ops"
    assert family("torch.nn.init.orthogonal_") == "torch nn"
    assert family("torch.sum") == "torch ops" and family("torch.optim.SGD.step") == "torch ops"
    assert family("torch.randn:chunks") == "invariance" and family("torch.sum:batch") == "invariance"
    assert family("torch.randn@cuda", "cuda") == "cuda"
    assert family("mylib.model", trace=True) == "traces" and family("mylib.thing") == "other"
    assert family("torch.nn.Conv2d:train", trace=True) == "traces"  # a trace probe's key may have a suffix
    assert family("mylib.thing:v2", invariance=False) == "other" and family("mylib.thing:v2") == "invariance"


def test_the_family_follows_the_kind_and_invariance_the_core_gives() -> None:
    trace = _finding("torch.nn.Conv2d", {"seed": 0}, key="torch.nn.Conv2d:train", kind="trace")
    plain_op = _finding("mylib.op", {"seed": 0}, key="mylib.op:v2", kind="op")
    chunks = _finding("torch.randn", {"seed": 0, "chunks": [1, 2]}, key="torch.randn:chunks", kind="generator",
                      invariance="chunks")
    by = {p.probe: p.family for p in build_view(Comparison([trace, plain_op, chunks], [], 3, 1, [])).probes}
    assert by == {"torch.nn.Conv2d:train": "traces", "mylib.op:v2": "other", "torch.randn:chunks": "invariance"}


def test_streams_are_not_needed_for_a_summary() -> None:
    f = _finding("p", {"a": 1}, Verdict.DIVERGENT, streams=[Stream("x", 1, ["r"], {})])
    assert build_view(Comparison([f], [], 1, 1, [])).probes[0].changed == 1


def test_the_first_divergent_op_is_named_when_its_index_differs_between_cases() -> None:
    """nanoGPT: aten.native_layer_norm_backward is #162 without dropout, #240 with it."""
    def traced(index: int, dropout: float) -> Finding:
        first = {"index": index, "op": "aten.native_layer_norm_backward.default"}
        return _finding("user.nanogpt", {"dropout": dropout}, Verdict.DIVERGENT, first_divergence=first)

    (p,) = build_view(Comparison([traced(240, 0.1), traced(162, 0.0)], [], 2, 2, [])).probes
    assert "first divergent op aten.native_layer_norm_backward.default (#162 or #240)" in p.why


def test_a_declared_family_wins_over_the_prefix_chain() -> None:
    from audit.compare.judgements import FAMILIES, family_rank

    assert family("jax.random.normal") == "other"
    assert family("jax.random.normal", declared={"jax.random.normal": "jax"}) == "jax"
    assert family("numpy.matmul", declared={"numpy.matmul": "jax"}) == "jax"
    # trace, invariance and cuda come from the run files and still come first
    assert family("jax.random.normal", trace=True, declared={"jax.random.normal": "jax"}) == "traces"
    assert family("jax.f@cuda", "cuda", declared={"jax.f@cuda": "jax"}) == "cuda"
    # a family no list names sorts after the library families, before invariance
    assert family_rank("torch ops") < family_rank("jax") < family_rank("invariance")
    assert [family_rank(f) for f in FAMILIES] == sorted(family_rank(f) for f in FAMILIES)


def test_catalogue_modules_declare_the_families_the_prefix_chain_gives() -> None:
    """Declaring FAMILY in catalogue modules changed no probe's family in any report."""
    import audit.probes  # noqa: F401
    from audit import registry
    from audit.compare.judgements import catalogue_families

    declared = catalogue_families()
    assert len(declared) > 100 and {"numpy legacy", "numpy ops", "torch RNG", "pandas"} <= set(declared.values())
    for key, p in registry.all_probes().items():
        args = (key, p.device, p.kind == "trace", p.invariance is not None)
        assert family(*args) == family(*args, declared={}), key


def test_the_family_the_run_files_carry_wins_over_the_catalogue() -> None:
    """Schema 4 stores the declared family per row: a user's probe is grouped under it without
    importing its module; rows of older files (family null) ask the catalogue."""
    assert family("mylib.thing", stored="myteam") == "myteam"
    assert family("numpy.matmul", stored=None) == "numpy ops"  # the catalogue's FAMILY
    assert family("mylib.thing", trace=True, stored="myteam") == "traces"
    mine = _finding("mylib.thing", {"seed": 0}, Verdict.DIVERGENT, family="myteam")
    old = _finding("numpy.random.RandomState.randn", {"seed": 0})
    by = {p.probe: p.family for p in build_view(Comparison([mine, old], [], 2, 1, [])).probes}
    assert by == {"mylib.thing": "myteam", "numpy.random.RandomState.randn": "numpy legacy"}
