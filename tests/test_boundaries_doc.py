"""docs/boundaries.md is generated from results/boundaries.json, never edited (scripts/boundaries.py)."""

from __future__ import annotations

import json
import os

from audit.explore.document import render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example(size: int, outcome: str) -> dict:
    return {"params": {"size": size}, "outcome": outcome, "kind": "numerical-drift" if outcome == "differs" else None,
            "max_ulp": 3.0 if outcome == "differs" else None, "message": None, "phase": "bisect"}


def test_render_states_each_answer() -> None:
    answer = {"probe": "torch.sum", "compared": "threads=1 vs threads=2", "verdict": "boundary", "seed": 7,
              "smallest": _example(32769, "differs"), "statement": "identical for every size tried up to 32768",
              "counts": {"identical": 10, "differs": 5, "error": 1, "unsupported": 0},
              "near": {"agreeing": [_example(32768, "identical")], "differing": [_example(32769, "differs")]}}
    text = render({"machine": "a box", "answers": [answer], "notes": ["- a note"]})
    assert "| `torch.sum` | threads=1 vs threads=2 | boundary | `size=32769` (numerical-drift, 3 ULP) |" in text
    assert "15 (+1 failed)" in text and "`--seed 7`" in text
    assert "agrees at size=32768; differs at size=32769" in text
    assert text.endswith("- a note\n")


def test_the_committed_document_is_the_rendering_of_the_committed_answers() -> None:
    with open(os.path.join(ROOT, "results", "boundaries.json"), encoding="utf-8") as f:
        collected = json.load(f)
    with open(os.path.join(ROOT, "docs", "boundaries.md"), encoding="utf-8") as f:
        assert f.read() == render(collected), "run python scripts/boundaries.py"
