"""Benchmark: how long the default catalogue takes, and which probe families spend it.

Runs ``python -m audit run`` of the default catalogue as a user would (each case twice),
``--times`` times, keeping the fastest (via :func:`bench_run.one_run`), and splits the probes'
own time (``elapsed_s``, first executions; invariance cases sum every value) by catalogue
module, so a family that grows past its share shows up.  ``--large`` also times the opt-in
large size panel (``--sizes large``).  Target: the default catalogue under 30 s on the 2-core
development machine.

    python scripts/bench_catalogue.py [--times 2] [--large]

Prints the figures and writes them to results/bench/catalogue.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _bench import machine, publish  # noqa: E402
from bench_run import WALL_TARGET_S, one_run  # noqa: E402

from audit import registry  # noqa: E402


def module_of(frame: Any) -> Any:
    """The catalogue module (torch_rng, invariance_ops ...) of each row's probe."""
    import audit.probes  # noqa: F401

    modules: Dict[str, str] = {key: p.func.__module__.rsplit(".", 1)[-1] for key, p in registry.all_probes().items()}
    return frame["probe_key"].map(modules).fillna("?")


def families(frame: Any) -> List[str]:
    """One line per catalogue module: cases, and seconds of the probes' first executions."""
    table = frame.assign(module=module_of(frame)).groupby("module").agg(
        cases=("case_key", "size"), probe_s=("elapsed_s", "sum")).sort_values("probe_s", ascending=False)
    return [f"  {name:<24} {int(row.cases):>5} cases  {row.probe_s:6.2f} s" for name, row in table.iterrows()]


def describe(label: str, best: Dict[str, Any], times: int) -> List[str]:
    frame, wall = best["frame"], best["wall"]
    invariance = frame["invariant"].notna()
    return [
        f"{label}: {len(frame)} cases ({int((frame['status'] == 'ok').sum())} ok, "
        f"{int(invariance.sum())} invariance cases), wall {wall:.1f} s (fastest of {times})",
        "  probes' own time (first executions) by catalogue module:",
        *families(frame),
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--times", type=int, default=2, help="runs per configuration; the fastest counts")
    p.add_argument("--large", action="store_true", help="also time the large size panel (--sizes large)")
    args = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    default = min((one_run([]) for _ in range(args.times)), key=lambda r: r["wall"])
    lines = ["bench_catalogue: python -m audit run of the default catalogue", machine(),
             f"load average (1 min) at start: {load:.2f} (other work on the machine inflates the figures)", "",
             *describe("default catalogue (each case twice)", default, args.times)]
    if args.large:
        large = one_run(["--sizes", "large"])
        lines += ["", *describe("large size panel (--sizes large)", large, 1)]
    met = default["wall"] < WALL_TARGET_S
    lines += ["", f"default catalogue wall {default['wall']:.1f} s (target < {WALL_TARGET_S:.0f} s): "
                  f"{'met' if met else 'MISSED'}"]
    publish("\n".join(lines), "catalogue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
