"""Benchmark: what ``explore`` costs per example, against calling the probe directly.

Runs ``python -m audit explore torch.sum --axis threads=1,2 --param size=1..SIZE --examples N``
(its JSON says how long the search took once the two workers had started), and calls the same
probe function directly in this process on as many sizes (drawn uniformly: hypothesis draws
smaller ones more often, so the direct figure is if anything the larger).
Target (issue 21): N = 200 examples in two environments in under 60 s.

    python scripts/bench_explore.py [--examples 200] [--size 1000]

Prints the figures and the machine, and writes the same text to results/bench/explore.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from typing import Any, Dict, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bench import ROOT, machine, publish  # noqa: E402

TARGET_S = 60.0


def explore(examples: int, size: int) -> Tuple[float, Dict[str, Any]]:
    """Wall seconds of one explore command, and its JSON answer."""
    cmd = [sys.executable, "-m", "audit", "explore", "torch.sum", "--axis", "threads=1,2", "--param",
           f"size=1..{size}", "--examples", str(examples), "--seed", "0", "--json"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        raise SystemExit(f"explore failed ({out.returncode}): {out.stderr.strip()}")
    return wall, json.loads(out.stdout)


def direct(calls: int, size: int) -> float:
    """Seconds per direct call of the probe function and its fingerprint, in this process
    (after a warm-up call: the probe imports torch on its first call; best of 3 passes)."""
    import audit.probes  # noqa: F401
    from audit import registry
    from audit.worker.fingerprint import fingerprint

    probe = registry.get("torch.sum")
    rng = random.Random(0)
    sizes = [rng.randint(1, size) for _ in range(calls)]
    fingerprint(probe.func(seed=0, size=1, dtype="float32"))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for n in sizes:
            fingerprint(probe.func(seed=0, size=n, dtype="float32"))
        best = min(best, time.perf_counter() - t0)
    return best / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--size", type=int, default=1000)
    args, _ = parser.parse_known_args()  # nox -s bench passes every script the same arguments
    wall, answer = explore(args.examples, args.size)
    ran = sum(answer["counts"].values())
    per_example = answer["search_seconds"] / ran
    fixed = wall - answer["search_seconds"]
    per_call = direct(ran, args.size)
    executions = 2 * per_call  # an example runs the probe once in each of the two workers
    lines = [
        f"explore torch.sum --axis threads=1,2 --param size=1..{args.size} --examples {args.examples} --seed 0",
        f"  {ran} examples (search, survey and bisection) in {wall:.1f} s wall, two persistent workers "
        f"(target: {args.examples} examples under {TARGET_S:.0f} s: {'met' if wall < TARGET_S else 'MISSED'})",
        f"  fixed cost (interpreter, start two workers, describe, answer): {fixed:.2f} s",
        f"  per example: {per_example * 1e3:.2f} ms; the probe called directly twice (fingerprint included): "
        f"{executions * 1e3:.3f} ms; overhead per example: {(per_example - executions) * 1e3:.2f} ms",
        f"  answer: {answer['statement']}",
        machine(),
    ]
    publish("\n".join(lines), "explore")


if __name__ == "__main__":
    main()
