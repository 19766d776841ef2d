"""Golden reports over tests/fixtures/results_small, and HTML escaping.

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_report.py``.
"""

from __future__ import annotations

import json
import os

import pytest

from audit.cli import main
from audit.compare import Verdict, compare_paths
from audit.compare.model import Comparison, Finding, Stream
from audit.report import html, jsonout, markdown, text

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "results_small")
GOLDEN = os.path.join(HERE, "fixtures", "golden")


@pytest.fixture(scope="module")
def comparison():
    return compare_paths([FIXTURE])


@pytest.mark.parametrize("name,renderer", [("report.txt", text), ("report.md", markdown), ("report.json", jsonout)])
def test_golden(comparison, name, renderer):
    got = renderer.render(comparison)
    path = os.path.join(GOLDEN, name)
    if os.environ.get("UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(got)
    with open(path, encoding="utf-8") as f:
        assert got == f.read()


def test_json_contract(comparison):
    doc = json.loads(jsonout.render(comparison))
    by_probe = {(f["probe"], f["device"]): f for f in doc["findings"]}
    randn = by_probe[("torch.randn", "cpu")]
    assert randn["case"] == {"seed": 0, "size": 4} and randn["verdict"] == "divergent"
    assert randn["difference"] == "numerical-drift" and randn["axes"] == ["torch_version"]
    assert {s["fingerprint"] for s in randn["streams"]} == {"aa00", "aa01"}
    assert doc["counts"] == {"error": 1, "nondeterministic": 1, "divergent": 3, "variant": 0, "identical": 1,
                             "incomparable": 0, "unsupported": 1}


def test_cli_exit_codes_and_outputs(tmp_path, capsys):
    assert main(["compare", FIXTURE, "--html", str(tmp_path / "r.html")]) == 1
    assert "split by torch_version: 2.4.1 | 2.13.0" in capsys.readouterr().out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["compare", str(tmp_path / "nothing-here")]) == 2
    (tmp_path / "bad.parquet").write_bytes(b"junk")
    assert main(["compare", str(tmp_path / "bad.parquet"), os.path.join(FIXTURE, os.listdir(FIXTURE)[0])]) == 3
    assert main(["compare", FIXTURE, "--upgrade", "torch_version", "--markdown"]) == 0
    assert "| `torch.randn` | 2.4.1 → 2.13.0 | 1 | 1 |" in capsys.readouterr().out


def test_html_escapes_every_string():
    evil = '<script>alert("x")</script>'
    stream = Stream(evil, 1, [evil], {"cpu_model": [evil]}, env_ids=[0])
    other = Stream("'quoted\"", 1, ["r2"], {"cpu_model": ["b&b"]}, env_ids=[1])
    finding = Finding(evil, evil, evil, {evil: evil}, evil, evil, Verdict.DIVERGENT, axes=[evil, evil],
                      explanation=evil, streams=[stream, other], notes=[evil], messages=[evil])
    c = Comparison([finding], [], 2, 2, [], envs=[{"cpu_model": evil}, {"cpu_model": "b&b"}])
    page = html.render(c)
    assert "<script" not in page and "&lt;script&gt;" in page and "&quot;" in page
    assert "'quoted\"" not in page
