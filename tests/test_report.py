"""Reports: golden output over tests/fixtures/results_small, the summary first, baseline how and why,
where in the stream, the upgrade answer, the HTML picture, and hostile strings.

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_report.py``
and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Dict, List

import pytest

from audit.cli import main
from audit.compare import Verdict, compare_paths
from audit.compare.model import Comparison, Difference, Finding, Match, Measured, Nearest, Stream
from audit.compare.upgrade import upgrade_view
from audit.report import html, jsonout, markdown, phrases, text
from audit.report.escape import printable
from audit.report.view import build_view

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "results_small")
GOLDEN = os.path.join(HERE, "fixtures", "golden")
REFERENCE = os.path.join(os.path.dirname(HERE), "results", "reference")


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare_paths([FIXTURE])


def _golden(name: str, got: str) -> None:
    path = os.path.join(GOLDEN, name)
    if os.environ.get("UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(got)
    with open(path, encoding="utf-8") as f:
        assert got == f.read()


@pytest.mark.parametrize("name,renderer,details", [
    ("report.txt", text, False), ("report-details.txt", text, True),
    ("report.md", markdown, False), ("report-details.md", markdown, True), ("report.json", jsonout, True)])
def test_golden(comparison: Comparison, name: str, renderer: Any, details: bool) -> None:
    _golden(name, renderer.render(build_view(comparison), details=details))


def test_golden_upgrade() -> None:
    c = upgrade_view(compare_paths([FIXTURE]), "torch_version")
    _golden("report-upgrade.txt", text.render(build_view(c)))


# --------------------------------------------------------------------------- summary first


def test_the_answer_comes_first_and_cases_only_with_details(comparison: Comparison) -> None:
    short = text.render(build_view(comparison)).splitlines()
    assert short[0] == "5 probes differ: 5 of 6 cases (1 error, 1 nondeterministic, 3 divergent)"
    randn = next(line for line in short if line.strip().startswith("torch.randn "))
    assert "numerical-drift (max 1 ULP; accept with rtol >= 1.2e-07)" in randn
    after = short[short.index(randn) + 1]
    assert after == "      why: split by torch_version: 2.4.1 | 2.13.0"  # over 120 on one line: the why below
    assert max(len(line) for line in short) <= 120
    assert not any(line.startswith("DIVERGENT") for line in short)
    assert short[-1] == "5 unexpected finding(s)"
    full = text.render(build_view(comparison), details=True)
    assert "DIVERGENT         torch.randn [seed=0 size=4]" in full
    assert "| verdict | probe | case |" not in markdown.render(build_view(comparison))
    assert "| verdict | probe | case |" in markdown.render(build_view(comparison), details=True)


def test_json_contract(comparison: Comparison) -> None:
    doc = json.loads(jsonout.render(build_view(comparison)))
    by_probe = {(f["probe"], f["device"]): f for f in doc["findings"]}
    randn = by_probe[("torch.randn", "cpu")]
    assert randn["case"] == {"seed": 0, "size": 4} and randn["verdict"] == "divergent"
    assert randn["difference"] == "numerical-drift" and randn["axes"] == ["torch_version"]
    assert {s["fingerprint"] for s in randn["streams"]} == {"aa00", "aa01"}
    assert {"probe", "case", "device", "verdict", "difference", "max_ulp", "axes", "streams", "first_difference",
            "blocks_differing", "blocks", "first_divergence", "varies_with", "values"} <= set(randn)
    assert doc["counts"] == {"error": 1, "nondeterministic": 1, "divergent": 3, "variant": 0, "identical": 1,
                             "incomparable": 0, "unsupported": 1}
    summary = {(s["probe"], s["device"]): s for s in doc["summary"]}
    assert {"probe", "device", "cases", "verdicts", "difference", "max_ulp", "axes"} <= set(summary[("torch.randn",
                                                                                                    "cpu")])
    assert summary[("torch.randn", "cpu")]["verdicts"] == {"divergent": 1}
    assert summary[("torch.randn", "cpu")]["difference"] == {"numerical-drift": 1}
    assert summary[("torch.randn@cuda", "cuda")]["verdicts"] == {"unsupported": 1}
    assert "params" not in summary[("torch.randn", "cpu")]  # one case: nothing to separate


def test_json_summary_params_say_which_cases_changed() -> None:
    findings = [_finding({"dtype": d, "seed": s}, Verdict.DIVERGENT if d == "float16" else Verdict.IDENTICAL)
                for d in ("float16", "float32") for s in (0, 1)]
    doc = json.loads(jsonout.render(build_view(Comparison(findings, [], 4, 2, []))))
    assert doc["summary"][0]["params"] == {"dtype": ["float16"]}
    assert doc["summary"][0]["which"] == "where dtype = float16"


def test_cli_exit_codes_and_outputs(tmp_path: Any, capsys: Any) -> None:
    assert main(["compare", FIXTURE, "--html", str(tmp_path / "r.html")]) == 1
    assert "split by torch_version: 2.4.1 | 2.13.0" in capsys.readouterr().out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["compare", FIXTURE, "--details"]) == 1
    assert "    split by torch_version: 2.4.1 | 2.13.0" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "nothing-here")]) == 2
    (tmp_path / "bad.parquet").write_bytes(b"junk")
    assert main(["compare", str(tmp_path / "bad.parquet"), os.path.join(FIXTURE, os.listdir(FIXTURE)[0])]) == 3
    capsys.readouterr()
    assert main(["compare", FIXTURE, "--upgrade", "torch_version", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| `torch.randn` | 1 | 1 | numerical-drift (max 1 ULP; accept with rtol >= 1.2e-07) |  |" in out
    assert out.index("### torch_version 2.4.1 -> 2.13.0") < out.index("Compared 28 rows")


# --------------------------------------------------------------------------- how, where, why


#: A finding's measured difference under the JSON contract's names -> the Measured record's.
_MEASURED = {"difference": "kind", "fraction_differing": "fraction", "max_ulp": "max_ulp",
             "first_difference": "first_difference", "first_block": "first_block",
             "blocks_differing": "blocks_differing", "blocks": "blocks", "covered": "covered",
             "zero_sign": "zero_sign", "rtol": "rtol", "atol": "atol"}


def _measured(kw: Dict[str, Any]) -> Dict[str, Any]:
    """``kw`` with the measured fields gathered into one ``measured`` record."""
    fields = {_MEASURED[k]: kw.pop(k) for k in list(kw) if k in _MEASURED}
    return {**kw, "measured": Measured(**fields)} if fields else kw


def _finding(case: Dict[str, Any], verdict: Verdict = Verdict.DIVERGENT, probe: str = "torch.exp",
             **kw: Any) -> Finding:
    return Finding(probe, kw.pop("key", probe), f"{probe}|{json.dumps(case)}", case, "cpu", "v1", verdict,
                   **_measured(kw))


def _baseline() -> Comparison:
    """A new stream on an AMD machine, as the core will fill it: nearest stream, kind, ULPs, both values."""
    nearest = Nearest("97ec16ff44eb0000", "cpu_capability=AVX512",
                      Measured(Difference.NUMERICAL_DRIFT, 1.0, 0.25, first_difference=65536, first_block=1,
                               blocks_differing=3, blocks=16), env_ids=[0])
    new = Stream("869ab9e251d50000", 1, ["run1"], {}, known=False, env_ids=[0], nearest=nearest)
    refs = [Stream("97ec16ff44eb0000", 8, ["r"], {}, known=True, env_ids=[0]),
            Stream("4cce005a48c50000", 2, ["r"], {}, known=True, env_ids=[1])]
    f = _finding({"dtype": "float32", "seed": 0}, Verdict.IDENTICAL, streams=[new], match=Match.NEW_STREAM,
                 difference=Difference.NUMERICAL_DRIFT, max_ulp=1.0, fraction_differing=0.25, axes=["cpu_model"],
                 axes_values={"cpu_model": ["AMD EPYC 7763", "Intel(R) Xeon(R) Processor"]}, reference_streams=refs,
                 first_difference=65536, first_block=1, blocks_differing=3, blocks=16)
    known = _finding({"dtype": "float64", "seed": 0}, Verdict.IDENTICAL, match=Match.KNOWN,
                     streams=[Stream("aa", 1, ["run1"], {}, known=True, env_ids=[0])])
    env = {"cpu_model": "AMD EPYC 7763", "cpu_capability": "AVX2"}
    refs_env = [{"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_capability": "AVX512"},
                {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_capability": "DEFAULT"}]
    return Comparison([f, known], [], 2, 1, [], baseline="ref (2 runs)", envs=[env], reference_envs=refs_env)


def test_baseline_new_stream_says_how_and_why_everywhere() -> None:
    c = _baseline()
    both = "cpu_model: AMD EPYC 7763 vs Intel(R) Xeon(R) Processor"
    short = text.render(build_view(c))
    assert short.splitlines()[0] == "1 probe differs from the baseline: 1 of 2 cases (1 new-stream)"
    assert "numerical-drift (max 1 ULP)" in short and both in short and "where dtype = float32" in short
    full = text.render(build_view(c), details=True)
    assert "nearest known stream 97ec16ff44eb (cpu_capability=AVX512), numerical-drift, max 1 ULP" in full
    assert "3 of 16 blocks differ, first near element 65536" in full
    md = markdown.render(build_view(c), details=True)
    assert both in md and "nearest known stream 97ec16ff44eb" in md
    doc = json.loads(jsonout.render(build_view(c)))
    finding = doc["findings"][0]
    assert finding["axes_values"] == {"cpu_model": ["AMD EPYC 7763", "Intel(R) Xeon(R) Processor"]}
    assert finding["difference"] == "numerical-drift" and finding["max_ulp"] == 1.0
    assert finding["streams"][0]["nearest"]["fingerprint"] == "97ec16ff44eb0000"
    assert finding["streams"][0]["nearest"]["difference"] == "numerical-drift"
    assert [s["fingerprint"] for s in finding["reference_streams"]] == ["97ec16ff44eb0000", "4cce005a48c50000"]
    page = html.render(build_view(c))
    assert html_text(both) in page and "nearest known stream" in page


def html_text(s: str) -> str:
    import html as std

    return std.escape(s, quote=True)


def test_baseline_page_puts_this_machine_beside_the_reference() -> None:
    page = html.render(build_view(_baseline()))
    assert ">this machine</th>" in page and ">reference</th>" in page
    row = re.search(r'<tr><th class="p"><a href="#p0">torch\.exp</a></th>(.*?)</tr>', page).group(1)
    cells = re.findall(r'<td class="c k-[^"]*"[^>]*>(\d*)</td>', row)
    assert cells == ["1", "1", "1"]  # this machine's new stream differs from both reference streams
    kinds = re.findall(r'class="c k-([a-z-]+)"', row)
    assert kinds == ["numerical-drift", "numerical-drift", "differs"]  # drift vs the nearest; DEFAULT: unmeasured
    assert 'class="tag identical"' not in page and "#e3f2dd" not in row.split("</td>")[0]
    assert re.search(r'<th class="v"[^>]*>0</th>', page) is None  # no column headed "0"


def test_single_environment_is_headed_by_what_it_is() -> None:
    c = dataclasses.replace(_baseline(), reference_envs=[])
    page = html.render(build_view(c))
    assert ">AMD EPYC 7763</th>" in page and ">AVX2</th>" in page


@pytest.mark.parametrize("blocks,words", [
    (dict(first_difference=65536, first_block=1, blocks_differing=2, blocks=16),
     "2 of 16 blocks differ, first near element 65536"),
    (dict(first_difference=65536, first_block=1, blocks_differing=15, blocks=16),
     "agrees up to element 65536, differs in every block after it (15 of 16 blocks)"),
    (dict(first_difference=0, first_block=0, blocks_differing=16, blocks=16), "every block differs (16 blocks)"),
    (dict(first_difference=None, blocks_differing=None, blocks=None), ""),
    (dict(first_difference=10), "first difference near element 10"),
])
def test_where_in_the_stream(blocks: Dict[str, Any], words: str) -> None:
    assert phrases.where(_finding({}, **blocks).measured) == words


def test_drift_is_never_claimed_without_ulp_evidence() -> None:
    f = _finding({"seed": 0}, difference=Difference.NUMERICAL_DRIFT, max_ulp=0.0, fraction_differing=0.0,
                 first_difference=4096, first_block=2, blocks_differing=1, blocks=8, explanation="split by x: a | b")
    out = text.render(build_view(Comparison([f], [], 2, 2, [])), details=True)
    assert "numerical-drift" not in out and "0 ULP" not in out
    assert "differs outside the sampled elements; 1 of 8 blocks differ, first near element 4096" in out
    assert "outside the sample" in text.render(build_view(Comparison([f], [], 2, 2, [])))


def test_sparse_and_variant_and_trace_divergence() -> None:
    sparse = _finding({"n": 1}, difference=Difference.SPARSE, first_difference=131072, first_block=2,
                      blocks_differing=1, blocks=32)
    variant = _finding({"n": 2}, Verdict.VARIANT, probe="torch.sum:batch", varies_with="batch", values=["1", "2", "3"])
    trace = _finding({"n": 3}, probe="model.step", first_divergence={
        "index": 12, "op": "aten.native_layer_norm.default", "module": "encoder.norm1", "inputs_identical": True,
        "difference": "numerical-drift", "max_ulp": 2.0, "ops_differing": 40, "ops": 310})
    out = text.render(build_view(Comparison([sparse, variant, trace], [], 6, 2, [])), details=True)
    assert "sparse; 1 of 32 blocks differ, first near element 131072" in out
    assert "varies with batch: 1, 2, 3" in out
    assert ("first divergent op #12 aten.native_layer_norm.default in encoder.norm1 (inputs identical: this op "
            "computes differently), numerical-drift, max 2 ULP; 40 of 297 later ops differ") in " ".join(out.split())
    assert max(len(line) for line in out.splitlines()) <= 120
    summary = text.render(build_view(Comparison([sparse, variant, trace], [], 6, 2, [])))
    assert "varies with batch: 1, 2, 3" in summary


# --------------------------------------------------------------------------- upgrade


def _upgrade_comparison(confound: bool) -> Comparison:
    envs = [{"torch_version": "2.4.1", "numpy_version": "2.4.6", "cuda_version": "12.1"},
            {"torch_version": "2.13.0", "numpy_version": "2.4.6" if not confound else "1.26.4",
             "cuda_version": "12.1"}]
    findings = []
    for dtype in ("float16", "bfloat16", "float32"):
        for seed in (0, 17):
            changed = dtype != "float32"
            streams = ([Stream("a", 1, ["r0"], {}, env_ids=[0]), Stream("b", 1, ["r1"], {}, env_ids=[1])] if changed
                       else [Stream("a", 2, ["r0", "r1"], {}, env_ids=[0, 1])])
            verdict = Verdict.DIVERGENT if changed else Verdict.IDENTICAL
            findings.append(_finding({"dtype": dtype, "seed": seed}, verdict, probe="torch.randn", streams=streams,
                                     difference=Difference.STREAM_CHANGE if changed else None))
    split = [Stream("c", 1, ["r0"], {}, env_ids=[0]), Stream("d", 1, ["r1"], {}, env_ids=[1])]
    findings.append(_finding({"seed": 0}, probe="torch.exp", difference=Difference.NUMERICAL_DRIFT, max_ulp=2.0,
                             streams=split))
    return upgrade_view(Comparison(findings, [], 14, 2, [], envs=envs), "torch_version")


def test_the_upgrade_view_groups_a_probe_as_the_summary_does() -> None:
    """A trace probe whose key has a suffix is a trace in both (the upgrade view once took the
    suffix for an invariance probe's)."""
    envs = [{"torch_version": "2.4.1"}, {"torch_version": "2.13.0"}]
    split = [Stream("c", 1, ["r0"], {}, env_ids=[0]), Stream("d", 1, ["r1"], {}, env_ids=[1])]
    trace = _finding({"seed": 0}, probe="mylib.model", key="mylib.model:step", kind="trace",
                     streams=split, difference=Difference.STREAM_CHANGE)
    c = upgrade_view(Comparison([trace], [], 2, 2, [], envs=envs), "torch_version")
    assert c.upgrade is not None and [p.family for p in c.upgrade.by_probe] == ["traces"]
    assert [p.family for p in build_view(c).changed] == ["traces"]


HEADLINE = "torch_version 2.4.1 -> 2.13.0: 5 of 7 cases run ok on both sides change their stream, in 2 probes"


def test_upgrade_answer_first_with_parameters_kinds_and_meaning() -> None:
    out = text.render(build_view(_upgrade_comparison(confound=False))).splitlines()
    assert out[0] == HEADLINE
    assert out[2].split() == ["torch.randn", "4", "of", "6", "stream-change", "·", "where", "dtype", "!=", "float32"]
    assert out[3].split()[:5] == ["torch.exp", "1", "of", "1", "numerical-drift"] and "(max 2 ULP)" in out[3]
    meaning = out.index("What the changes mean:")
    assert "dropout masks, data order, initialisation" in out[meaning + 1]
    assert "tolerances hold" not in out[meaning + 2] and "rtol" in out[meaning + 2]
    assert out[-1] == HEADLINE
    assert not any("CAUTION" in line for line in out)


def test_upgrade_page_opens_with_the_answer() -> None:
    page = html.render(build_view(_upgrade_comparison(confound=False)))
    assert "<pre>" + HEADLINE.replace(">", "&gt;") + "\n" in page


def test_upgrade_confound_is_in_the_header() -> None:
    out = text.render(build_view(_upgrade_comparison(confound=True))).splitlines()
    assert out[1] == ("  CAUTION: the two sides also differ in numpy_version 2.4.6 -> 1.26.4: a change may come "
                      "from these, not only from torch_version")
    md = markdown.render(build_view(_upgrade_comparison(confound=True)))
    assert md.index("**Caution:**") < md.index("| probe | changed |")
    doc = json.loads(jsonout.render(build_view(_upgrade_comparison(confound=True))))
    assert doc["upgrade"]["confounders"] == {"2.4.1 -> 2.13.0": {"numpy_version": {"before": ["2.4.6"],
                                                                                  "after": ["1.26.4"]}}}
    assert doc["upgrade"]["probes"][0]["params"] == {"dtype": ["bfloat16", "float16"]}


# --------------------------------------------------------------------------- HTML


def test_html_is_one_self_contained_page_with_a_heatmap_and_drill_down(comparison: Comparison) -> None:
    page = html.render(build_view(comparison))
    assert "<script" not in page.lower() and "src=" not in page and "http" not in page and "url(" not in page
    assert page.count("<details") >= 5 and 'class="h"' in page
    assert re.search(r'<tr class="fam"><th colspan="\d+">torch RNG', page)
    assert ">torch_version</th>" in page and ">cpu_capability</th>" in page
    randn = re.search(r'<a href="#(p\d+)">torch\.randn</a>', page)
    assert randn and f'<details id="{randn.group(1)}">' in page


def test_html_cells_light_the_environments_off_the_main_stream(comparison: Comparison) -> None:
    page = html.render(build_view(comparison))
    headers = re.findall(r'<th class="f" colspan="2">(\w+)</th>(.*?)</tr>', page)
    torch = dict(headers)["torch_version"]
    versions = re.findall(r">([\d.]+)</th>", torch)
    randn = re.search(r'torch\.randn</a></th><td class="n">1/1</td>(.*?)<td class="w">', page).group(1)
    counts = re.findall(r'<td class="c[^"]*"[^>]*>(\d*)</td>', randn)
    assert [n for n, v in zip(counts, versions) if n] == ["1"] and versions[counts.index("1")] == "2.4.1"
    index_add = re.search(r'index_add_</a></th><td class="n">1/1</td>(.*?)<td class="w">', page).group(1)
    assert "k-nondeterministic" in index_add and index_add.count(">1</td>") == 1  # one environment, two streams


def test_html_escapes_every_string() -> None:
    evil = '<script>alert("x")</script>'
    stream = Stream(evil, 1, [evil], {"cpu_model": [evil]}, env_ids=[0])
    other = Stream("'quoted\"", 1, ["r2"], {"cpu_model": ["b&b"]}, env_ids=[1])
    finding = Finding(evil, evil, evil, {evil: evil}, evil, evil, Verdict.DIVERGENT, axes=[evil, evil],
                      explanation=evil, streams=[stream, other], notes=[evil], messages=[evil])
    c = Comparison([finding], [], 2, 2, [], envs=[{"cpu_model": evil}, {"cpu_model": "b&b"}])
    page = html.render(build_view(c))
    assert "<script" not in page and "&lt;script&gt;" in page and "&quot;" in page
    assert "'quoted\"" not in page


@pytest.mark.skipif(not os.path.isdir(REFERENCE), reason="no committed reference results")
def test_the_reference_page_stays_small_and_reads_by_probe() -> None:
    c = compare_paths([REFERENCE])
    page = html.render(build_view(c))
    assert len(page.encode()) < 200_000
    assert page.count("<tr><th class=\"p\">") == len({(f.probe_key, f.device) for f in c.findings
                                                       if f.verdict != Verdict.IDENTICAL})
    assert "Intel(R) X\u2026" not in page


# --------------------------------------------------------------------------- hostile strings

HOSTILE = "a\x1b]8;;http://x\x07link\x1b]8;;\x07\x1b[31mred\rCR\nforged\x00nul\x9b\u202egnp.exe"


def _hostile() -> Comparison:
    stream = Stream(HOSTILE, 1, ["r"], {"cpu_model": [HOSTILE]}, env_ids=[0])
    other = Stream("ff", 1, ["r2"], {"cpu_model": ["plain"]}, env_ids=[1])
    f = Finding(HOSTILE, HOSTILE, HOSTILE, {HOSTILE: HOSTILE}, "cpu", "v", Verdict.DIVERGENT, axes=["cpu_model"],
                explanation=HOSTILE, streams=[stream, other], notes=[HOSTILE], messages=[HOSTILE],
                axes_values={HOSTILE: [HOSTILE, HOSTILE]}, varies_with=HOSTILE, values=[HOSTILE])
    return Comparison([f], [{"probe": HOSTILE, "probe_key": HOSTILE, "device": "cpu"}], 2, 2, [],
                      envs=[{"cpu_model": HOSTILE}, {"cpu_model": "plain"}], notes=[HOSTILE],
                      expectation_notes=[HOSTILE])


@pytest.mark.parametrize("details", [False, True])
def test_control_characters_are_shown_escaped_in_text_and_markdown(details: bool) -> None:
    view = build_view(_hostile())
    for out in (text.render(view, details=details), markdown.render(view, details=details)):
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", out), repr(out)
        assert "\\x1b]8;;http://x\\x07" in out or "\\\\x1b]8;;http://x\\\\x07" in out
        assert "forged" in out and not any(line.startswith("forged") for line in out.splitlines())
        assert "\\u202e" in out or "\\\\u202e" in out


def test_control_characters_in_html_and_json() -> None:
    page = html.render(build_view(_hostile()))
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", page) and "\\x1b" in page
    json.loads(jsonout.render(build_view(_hostile())))  # JSON escapes them itself
    assert "\x1b" not in jsonout.render(build_view(_hostile()))


def test_printable() -> None:
    assert printable("a\x1b[0m\tb\n\x00\x7f\x85\u2028\u202e\u2066é✓") == \
        "a\\x1b[0m\\x09b\\x0a\\x00\\x7f\\x85\\u2028\\u202e\\u2066é✓"
    assert printable(3) == "3"


def test_every_line_is_made_printable_in_one_place() -> None:
    lines: List[str] = text.render(build_view(_hostile()), details=True).splitlines()
    assert all(printable(line) == line for line in lines)


def test_compare_probe_narrows_to_some_probes(capsys: Any) -> None:
    assert main(["compare", FIXTURE]) == 1
    everything = capsys.readouterr().out
    assert "torch.bernoulli" in everything and "torch.randn" in everything
    assert main(["compare", FIXTURE, "--probe", "torch.rand*", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {f["probe"] for f in doc["findings"]} == {"torch.rand", "torch.randn"}
    assert main(["compare", FIXTURE, "--probe", "no.such.*"]) == 2
    assert "--probe no.such.* matches no probe" in capsys.readouterr().err


def test_baseline_page_leaves_reference_columns_alone_when_the_reference_has_one_stream() -> None:
    """torch.erf: all reference runs share one stream; their cells must not say 'N cases affected here'."""
    c = _baseline()
    one = [Stream("97ec16ff44eb0000", 10, ["r"], {}, known=True, env_ids=[0, 1])]
    c = dataclasses.replace(c, findings=[dataclasses.replace(c.findings[0], reference_streams=one), *c.findings[1:]])
    page = html.render(build_view(c))
    row = re.search(r'<tr><th class="p"><a href="#p0">torch\.exp</a></th>(.*?)</tr>', page).group(1)
    cells = re.findall(r'<td class="c[^"]*"[^>]*>(\d*)</td>', row)
    assert cells == ["1", "", ""]  # this machine's column only
    assert row.count("affected here") == 1  # the cell of this machine, no reference cell


def test_header_tooltips_break_lines_for_real() -> None:
    page = html.render(build_view(_baseline()))
    titles = re.findall(r'<th class="v" title="([^"]*)"', page)
    assert titles and any("&#10;" in t for t in titles)
    assert "\\x0a" not in page
