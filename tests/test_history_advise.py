"""advise and the generated document, on a small synthetic history written with the store."""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Dict, List

import pytest

from audit import cli
from audit.errors import UsageError
from audit.history import advise, archive, document, manifest, render
from tests.compare_helpers import f32_sample, make_run, record, write

SEEDS = (0, 1)
STEADY = f32_sample([0.5, 1.5, 2.5, 3.5])
OTHER = f32_sample([9.0, -3.0, 0.125, 7.0])


def _next_after(value: float) -> float:
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    return float(struct.unpack("<f", struct.pack("<I", bits + 1))[0])


DRIFTED = f32_sample([0.5, _next_after(1.5), 2.5, 3.5])


def torch_records(version: str) -> List[Dict[str, object]]:
    """torch.randn's bfloat16 stream changes in 2.2.2; gelu drifts in 2.1.2; exp changes in 2.1.2
    and back in 2.3.1; nn.init.normal_ runs from 2.1.2 on; torch.rand never changes."""
    after = {v: i for i, v in enumerate(["2.0.1", "2.1.2", "2.2.2", "2.3.1"])}[version]
    out = []
    for seed in SEEDS:
        out.append(record("torch.randn", {"dtype": "float32", "seed": seed}, f"randn32-{seed}", sample=STEADY))
        new = after >= 2
        out.append(record("torch.randn", {"dtype": "bfloat16", "seed": seed}, f"randn16-{seed}-{new}",
                          dtype="bfloat16", sample=OTHER if new else STEADY))
        drift = after >= 1
        out.append(record("torch.nn.functional.gelu", {"seed": seed}, f"gelu-{seed}-{drift}",
                          sample=DRIFTED if drift else STEADY))
        back = after in (1, 2)
        out.append(record("torch.exp", {"seed": seed}, f"exp-{seed}-{back}", sample=OTHER if back else STEADY))
        out.append(record("torch.rand", {"seed": seed}, f"rand-{seed}", sample=STEADY))
        if after == 1:  # fails in one release; runs again with drifted results after it
            out.append(record("torch.optim.Adam.step", {"seed": seed}, None, status="unsupported",
                              message="No module named 'pkg_resources'"))
        else:
            out.append(record("torch.optim.Adam.step", {"seed": seed}, f"adam-{seed}-{after > 1}",
                              sample=DRIFTED if after > 1 else STEADY))
        if after == 0:
            out.append(record("torch.nn.init.normal_", {"seed": seed}, None, status="unsupported",
                              message="takes no generator="))
        else:
            out.append(record("torch.nn.init.normal_", {"seed": seed}, f"init-{seed}", sample=STEADY))
    return out


def numpy_records(version: str, python: str) -> List[Dict[str, object]]:
    new = version.startswith("2.")
    return [record("numpy.random.Generator.zipf", {"seed": s}, f"zipf-{s}-{new}", dtype="int64",
                   sample="00" * 32 if new else "01" * 32) for s in SEEDS] + \
           [record("numpy.random.Generator.random", {"seed": s}, f"random-{s}", sample=STEADY) for s in SEEDS]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("history")
    runs = [make_run(f"t{i}", f"2026-01-0{i + 1}T00:00:00.000000Z", {"torch_version": v, "numpy_version": "1.26.4"},
                     torch_records(v)) for i, v in enumerate(["2.0.1", "2.1.2", "2.2.2", "2.3.1"])]
    write(runs, str(root / "torch"))
    numpy_runs = [make_run(f"n{i}", f"2026-01-0{i + 1}T00:00:00.000000Z",
                           {"numpy_version": v, "python_version": py, "torch_version": None}, numpy_records(v, py))
                  for i, (v, py) in enumerate([("1.25.2", "3.9.18"), ("1.26.4", "3.9.18"), ("1.26.4", "3.12.1"),
                                               ("2.0.2", "3.12.1")])]
    write(numpy_runs, str(root / "numpy"))
    manifest.write(str(root))
    return str(root)


def test_advise_names_the_release_kind_and_parameters_of_each_change(history: str) -> None:
    a = advise.advise("torch", "2.0.1", "2.3.1", history)
    got = {(p.probe, p.first_changed, p.previous, p.kind, p.changed, p.cases): p.params for p in a.summary}
    assert got == {
        ("torch.nn.functional.gelu", "2.1.2", "2.0.1", "numerical-drift", 2, 2): {},
        ("torch.exp", "2.1.2", "2.0.1", "stream-change", 2, 2): {},
        ("torch.exp", "2.3.1", "2.2.2", "stream-change", 2, 2): {},
        ("torch.randn", "2.2.2", "2.1.2", "stream-change", 2, 4): {"dtype": ["bfloat16"]},
        ("torch.nn.init.normal_", "2.1.2", "2.0.1", "status", 2, 2): {},
        ("torch.optim.Adam.step", "2.1.2", "2.0.1", "status", 2, 2): {},
        ("torch.optim.Adam.step", "2.2.2", "2.1.2", "status", 2, 2): {},
        ("torch.optim.Adam.step", "2.2.2", "2.0.1", "numerical-drift", 2, 2): {},  # across the gap
    }
    assert a.releases == ["2.0.1", "2.1.2", "2.2.2", "2.3.1"]
    assert len(a.net) == 6  # randn bfloat16, gelu and Adam, two seeds each: exp came back
    assert a.unchanged_probes == ["torch.rand"] and a.compared == 12


def test_advise_text_answers_first_and_explains_the_kinds(history: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["advise", "torch", "2.0.1", "2.3.1", "--history", history]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first == ("torch 2.0.1 -> 2.3.1: 6 of the 12 cases that run in both releases give different results "
                     "(3 probes)")
    assert "dtype=bfloat16" in out and "2 of 4" in out
    assert "unchanged: 1 probes (2 cases)" in out
    assert "undone by a later release" in out
    assert "dropout masks" in out and "bitwise tests break" in out


def test_advise_json_has_the_bisect_changes_contract(history: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["advise", "torch", "2.0.1", "2.3.1", "--history", history, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"library", "from", "to", "versions_built", "changes"} <= set(doc)
    assert doc["versions_built"] == [] and doc["from"] == "2.0.1"
    for change in doc["changes"]:
        assert {"probe", "case", "device", "first_changed", "previous", "difference"} <= set(change)
    randn = [c for c in doc["changes"] if c["probe"] == "torch.randn"]
    assert {(c["case"]["dtype"], c["first_changed"], c["previous"], c["difference"]) for c in randn} == \
        {("bfloat16", "2.2.2", "2.1.2", "stream-change")}
    init = [c for c in doc["changes"] if c["probe"] == "torch.nn.init.normal_"]
    assert init[0]["difference"] is None and init[0]["status"] == "unsupported -> ok"
    exp = [c for c in doc["changes"] if c["probe"] == "torch.exp"]
    assert exp and not any(c["net"] for c in exp)


def test_a_patch_release_maps_to_its_minor_with_a_note(history: str) -> None:
    a = advise.advise("torch", "2.1.0", "2.3.1", history)
    assert a.used == ("2.1.2", "2.3.1")
    assert any("2.1.0 is read as 2.1.2" in n for n in a.notes) and not a.partial


def test_an_end_outside_the_history_is_named_with_the_nearest_and_exit_3(history: str,
                                                                         capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["advise", "torch", "1.13.1", "2.2.2", "--history", history]) == 3
    out = capsys.readouterr().out
    assert "1.13.1 is outside the history (2.0.1 to 2.3.1)" in out
    assert "python -m audit bisect torch 1.13.1 2.2.2" in out and "nox -s upgrade -- torch 1.13.1 2.2.2" in out


def test_unmappable_versions_are_one_usage_error(history: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["advise", "torch", "2.5.0", "2.6.0", "--history", history]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the history of torch (2.0.1 to 2.3.1) does not cover 2.5.0 -> 2.6.0")
    assert "bisect torch 2.5.0 2.6.0" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UsageError, match="no torch 2.1 release"):
        archive.map_version("torch", "2.1.0", ["2.0.1", "2.2.2"])
    with pytest.raises(UsageError, match="older release"):
        advise.advise("torch", "2.3.1", "2.0.1", history)
    nothing = os.path.join(os.path.dirname(history), "nothing")
    os.makedirs(os.path.join(nothing, "numpy"), exist_ok=True)
    manifest.write(nothing)
    with pytest.raises(UsageError, match="lists no numpy history"):
        advise.advise("numpy", "1.26.4", "2.0.2", nothing)
    with pytest.raises(UsageError, match="holds no runs"):
        archive.map_version("numpy", "1.26.4", [])


def test_two_pythons_join_at_the_overlap_release(history: str) -> None:
    steps = archive.steps(archive.entries("numpy", history), "1.25.2", "2.0.2")
    assert [(a.version, a.python, b.version, b.python) for a, b in steps] == \
        [("1.25.2", "3.9", "1.26.4", "3.9"), ("1.26.4", "3.12", "2.0.2", "3.12")]
    a = advise.advise("numpy", "1.25.2", "2.0.2", history)
    assert [(c.probe, c.first_changed, c.previous) for c in a.changes] == \
        [("numpy.random.Generator.zipf", "2.0.2", "1.26.4")] * 2
    assert any("share no Python" in n for n in a.notes)  # the ends do not: the direct comparison says so
    assert not any("between 1.26.4 and 2.0.2 also changed" in n for n in a.notes)


def test_other_fields_that_change_with_a_release_are_noted(tmp_path: Any) -> None:
    runs = [make_run(f"c{i}", f"2026-01-0{i + 1}T00:00:00.000000Z",
                     {"torch_version": v, "cpu_capability": cap}, torch_records(v))
            for i, (v, cap) in enumerate([("2.0.1", "AVX2"), ("2.1.2", "AVX512")])]
    write(runs, str(tmp_path / "torch"))
    manifest.write(str(tmp_path))
    a = advise.advise("torch", "2.0.1", "2.1.2", str(tmp_path))
    assert a.notes == ["between 2.0.1 and 2.1.2 also changed: cpu_capability AVX2 -> AVX512 "
                       "(a change at that step may be theirs)"]


def test_the_document_is_generated_from_the_runs(history: str) -> None:
    text = document.render_document(history)
    assert "| 2.2.2 | 2.1.2 | `torch.randn` | cpu | stream-change | 2 of 4 | dtype=bfloat16 |" in text
    assert "| 2.2.2 | 2.0.1 | `torch.optim.Adam.step` | cpu | numerical-drift (1 ULP) | 2 of 2 | all cases |" in text
    assert "Never changed (1 probes, 2 cases): `torch.rand`." in text
    assert "- 2.1.2: `torch.nn.init.normal_` (2 of 2 cases; unsupported -> ok)" in text
    assert "- 2.1.2: `torch.optim.Adam.step` (2 of 2 cases; ok -> unsupported)" in text
    assert "numpy 1.26.4 on Python 3.9 and 3.12 (where the two series meet): identical on 4 cases." in text
    assert "Generated by `python scripts/stream_changes.py`" in text
    assert render.MEANING["numerical-drift"] in text


def test_the_committed_document_matches_the_committed_history() -> None:
    """docs/stream-changes.md is generated, never edited: regenerate it with scripts/stream_changes.py."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    history_dir, doc = os.path.join(root, "results", "history"), os.path.join(root, "docs", "stream-changes.md")
    if not os.path.exists(doc):
        pytest.skip("no docs/stream-changes.md yet")
    with open(doc, encoding="utf-8") as f:
        assert f.read() == document.render_document(history_dir), "run python scripts/stream_changes.py"
