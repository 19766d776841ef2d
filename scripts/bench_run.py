"""Benchmark: a full ``python -m audit run`` of the catalogue, and where its time goes.

Runs the whole catalogue as a user would (default: each case executed twice for the
run-to-run check) and once with ``--no-repeat``; each configuration ``--times`` times,
keeping the fastest.  The share outside the probes' own computation (interpreter and
library start-up, environment capture, fingerprinting, protocol, sidecar, parquet write)
is ``1 - sum(elapsed_s) / wall``, exact for ``--no-repeat`` runs (elapsed_s times the one
execution); for the default run the second executions are not timed, and the share is
given as an estimate that counts them as long as the first.
Targets: wall under 30 s on the 2-core development machine; at most 10 % outside the probes.

    python scripts/bench_run.py [--times 2] [--probe GLOB ...]

Prints the figures and the machine, and writes the same text to results/bench/run.txt.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from _bench import machine, publish  # noqa: E402

from audit import registry  # noqa: E402
from audit.store.scan import read_runs  # noqa: E402

WALL_TARGET_S = 30.0
OUTSIDE_TARGET = 0.10


def one_run(extra: Sequence[str]) -> Dict[str, Any]:
    """Wall time of one ``python -m audit run`` and the records it wrote."""
    with tempfile.TemporaryDirectory() as results:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "audit", "run", "--results", results, "-q", *extra],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        frame, skipped = read_runs([results])
    assert not skipped, skipped
    return {"wall": wall, "frame": frame}


def startup_s() -> float:
    """What a worker pays before its first case: the interpreter and importing numpy and torch."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy, torch"], check=True)
    return time.perf_counter() - t0


def repeats_of(frame: Any) -> Any:
    """Executions per case in a default run (the probe's repeat count) for each row."""
    import audit.probes  # noqa: F401

    counts = {key: p.repeats for key, p in registry.all_probes().items()}
    return frame["probe_key"].map(counts).fillna(1)


def describe(name: str, best: Dict[str, Any], repeated: bool) -> List[str]:
    frame, wall = best["frame"], best["wall"]
    ok = frame["status"] == "ok"
    first = float(frame["elapsed_s"].sum())
    probes = float((frame["elapsed_s"].fillna(0) * repeats_of(frame)).sum()) if repeated else first
    fingerprint = float(frame["fingerprint_s"].sum())
    outside = 1 - probes / wall
    label = "outside the probes (estimate: repeats as long as first)" if repeated else "outside the probes (exact)"
    return [
        f"{name}: {len(frame)} cases ({int(ok.sum())} ok), wall {wall:.1f} s",
        f"  probes' own computation {probes:.2f} s (first executions {first:.2f} s), "
        f"fingerprinting {fingerprint:.2f} s",
        f"  {label}: {wall - probes:.2f} s = {outside:.1%}",
    ]




def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--times", type=int, default=2, help="runs per configuration; the fastest counts")
    p.add_argument("--probe", action="append", default=[], help="restrict to these globs (default: all)")
    args = p.parse_args(argv)
    select = [a for g in args.probe for a in ("--probe", g)]
    default = min((one_run(select) for _ in range(args.times)), key=lambda r: r["wall"])
    single = min((one_run([*select, "--no-repeat"]) for _ in range(args.times)), key=lambda r: r["wall"])
    start = startup_s()
    outside = 1 - float(single["frame"]["elapsed_s"].sum()) / single["wall"]
    lines = [
        f"bench_run: python -m audit run of the catalogue (fastest of {args.times})",
        machine(), "",
        *describe("default run (each case twice)", default, True),
        *describe("--no-repeat run", single, False),
        f"worker start-up alone (interpreter + import numpy, torch): {start:.2f} s", "",
        f"wall {default['wall']:.1f} s (target < {WALL_TARGET_S:.0f} s): "
        f"{'met' if default['wall'] < WALL_TARGET_S else 'MISSED'}",
        f"outside the probes {outside:.1%} exact, --no-repeat (target <= {OUTSIDE_TARGET:.0%}): "
        f"{'met' if outside <= OUTSIDE_TARGET else 'MISSED'}",
        f"  of which worker start-up (the audited environment importing torch) "
        f"{start / single['wall']:.1%}; the rest (CLI, capture, seeding save/restore, fingerprints, "
        f"protocol, sidecar, parquet) {outside - start / single['wall']:.1%}",
    ]
    text = "\n".join(lines)
    publish(text, "run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
