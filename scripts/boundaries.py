"""Run explore over the catalogue's size-dependent probes and regenerate docs/boundaries.md.

    python scripts/boundaries.py --explore      # run every search (sequentially), write results/boundaries.json
    python scripts/boundaries.py                # render docs/boundaries.md from results/boundaries.json
    python scripts/boundaries.py --check        # exit 1 if docs/boundaries.md is out of date

The searches are slow-ish (100 examples each, minutes in all); the document is rendered from the
committed JSON, so the test that pins it is fast (tests/test_boundaries_doc.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from audit.explore.document import render  # noqa: E402

DOC = os.path.join(ROOT, "docs", "boundaries.md")
DATA = os.path.join(ROOT, "results", "boundaries.json")
EXAMPLES = "100"
SEED = "20261206"

THREADS = ["--axis", "threads=1,2"]
ATEN = ["--axis", "ATEN_CPU_CAPABILITY=avx2,avx512"]

#: (probe, how to compare, extra arguments), in the order the document lists them.
PLAN: List[List[str]] = [
    ["torch.sum", *THREADS], ["torch.mean", *THREADS], ["torch.cumsum", *THREADS],
    ["torch.matmul", *THREADS], ["torch.softmax", *THREADS], ["torch.nn.functional.layer_norm", *THREADS],
    ["torch.exp", *THREADS], ["torch.argsort", *THREADS, "--param", "stable=false"],
    ["torch.nn.init.orthogonal_", *THREADS, "--param", "generator=explicit"],
    ["torch.sum", *ATEN], ["torch.matmul", *ATEN], ["torch.softmax", *ATEN],
    ["torch.nn.functional.layer_norm", *ATEN], ["torch.exp", *ATEN], ["torch.tanh", *ATEN],
    ["torch.randn:chunks", "--invariance", "chunks"], ["torch.rand:chunks", "--invariance", "chunks"],
    ["torch.Tensor.normal_:chunks", "--invariance", "chunks"],
    ["numpy.random.Generator.standard_normal:chunks", "--invariance", "chunks"],
    ["torch.matmul:batch", "--invariance", "batch"], ["torch.nn.functional.linear:batch", "--invariance", "batch"],
    ["torch.softmax:batch", "--invariance", "batch"], ["torch.nn.functional.layer_norm:batch", "--invariance", "batch"],
    ["torch.sum:batch", "--invariance", "batch"], ["torch.sum:batch-long-rows", "--invariance", "batch"],
]


def explore_all() -> Dict[str, Any]:
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from _bench import machine  # the audit's own description of this machine

    answers = []
    for item in PLAN:
        cmd = [sys.executable, "-m", "audit", "explore", *item, "--examples", EXAMPLES, "--seed", SEED, "--json"]
        print(" ".join(cmd[1:]), flush=True)
        out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True)
        if out.returncode not in (0, 1, 3):
            print(f"  failed ({out.returncode}): {out.stderr.strip()}", flush=True)
            continue
        answer = json.loads(out.stdout)
        print(f"  {answer['verdict']}: {answer['statement']}", flush=True)
        answers.append(answer)
    return {"machine": machine().replace("\n", "; "), "answers": answers}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--explore", action="store_true", help="run the searches and write results/boundaries.json")
    mode.add_argument("--check", action="store_true", help="compare with the committed document instead of writing")
    args = p.parse_args()
    if args.explore:
        collected = explore_all()
        old = json.load(open(DATA, encoding="utf-8")) if os.path.exists(DATA) else {}
        collected["notes"] = old.get("notes", [])
        with open(DATA, "w", encoding="utf-8") as f:
            json.dump(collected, f, indent=1)
            f.write("\n")
    with open(DATA, encoding="utf-8") as f:
        text = render(json.load(f))
    if args.check:
        current = open(DOC, encoding="utf-8").read() if os.path.exists(DOC) else ""
        if current != text:
            print("docs/boundaries.md is out of date: run python scripts/boundaries.py", file=sys.stderr)
            return 1
        return 0
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(DOC, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
