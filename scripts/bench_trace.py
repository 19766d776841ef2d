"""Benchmark: what recording a trace costs, per built-in model step.

For each model trace of the catalogue (CPU cases, first seed) it times the probe's step
untraced, under a bare ``TorchDispatchMode`` that only calls each op (the floor any
per-op recorder pays: torch's own Python dispatch), and under the recorder; best of N
each, one torch thread.  Target: traced at most 3x untraced.

    python scripts/bench_trace.py [--repeats 15] [--threads 1]

Prints the figures and the machine, and writes the same text to results/bench/trace.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from _bench import machine, publish  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import audit.probes  # noqa: E402,F401  (registers the catalogue)
from audit import registry  # noqa: E402
from audit.worker.execution import call_probe  # noqa: E402
from audit.worker.trace import Recorder  # noqa: E402

TARGET = 3.0


class PassThrough(TorchDispatchMode):
    """Calls every op and records nothing: the cost of Python dispatch alone."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # as the recorder (see Recorder._should_skip_dynamo)
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        return func(*args, **(kwargs or {}))


def best_of(repeats: int, func: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(case: Any, repeats: int) -> List[float]:
    """Seconds untraced, under the pass-through mode, under the recorder; and the op count."""
    def under(mode: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> None:
            with mode():
                call_probe(case)
        return run

    with Recorder() as recorder:  # warm up (lazy imports, first-call kernels) and count the ops
        call_probe(case)
    call_probe(case)
    return [best_of(repeats, lambda: call_probe(case)), best_of(repeats, under(PassThrough)),
            best_of(repeats, under(Recorder)), float(len(recorder.ops))]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    probes = [pr for pr in registry.all_probes().values() if pr.kind == "trace" and pr.device == "cpu"]
    lines = [f"trace overhead: model steps of the catalogue, best of {args.repeats}, {args.threads} torch thread(s)",
             f"{'probe':<38} {'ops':>5} {'untraced ms':>12} {'dispatch only':>14} {'traced ms':>10} "
             f"{'traced/untraced':>16} {'us/op':>6}"]
    worst = 0.0
    for pr in probes:
        untraced, bare, traced, ops = measure(pr.cases()[0], args.repeats)
        ratio = traced / untraced
        worst = max(worst, ratio)
        per_op = (traced - untraced) / ops * 1e6
        lines.append(f"{pr.key:<38} {int(ops):>5} {untraced * 1e3:>12.2f} {bare / untraced:>13.2f}x "
                     f"{traced * 1e3:>10.2f} {ratio:>15.2f}x {per_op:>6.1f}")
    verdict = "met" if worst <= TARGET else "MISSED"
    lines.append(f"worst traced/untraced {worst:.2f}x (target <= {TARGET:g}x: {verdict}); 'dispatch only' is a mode "
                 "that calls each op and records nothing; us/op is the recorder's added time per recorded op")
    publish("\n".join(lines) + "\n" + machine(), "trace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
