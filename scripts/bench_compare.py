"""Benchmark ``compare`` over a year of synthetic nightly results.

Generates realistic run files (as many cases per run as the real catalogue has at the default
seed panel, 1651 today; a fixed set of environments that
rotate night by night, a few planted splits: one by torch_version, one by cpu_capability
with last-bit drift, one nondeterministic case, a few errors and unsupported cases),
writes them with the store's own schema and metadata, then times the comparison (read with
column pruning, verdicts, attribution, difference kinds) and reports wall time and peak
memory (ru_maxrss of the measuring process).  Each size runs in a fresh subprocess so
peak RSS belongs to that size alone.

    python scripts/bench_compare.py                    # 1M and 10M rows
    python scripts/bench_compare.py --rows 1000000     # one size
    python scripts/bench_compare.py --keep /tmp/bench  # reuse generated files
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bench import machine, publish  # noqa: E402

from audit.store.runfile import ARROW_SCHEMA, COLUMNS, META_ENV, META_RUN_ID, META_SCHEMA  # noqa: E402
from audit.worker.environment import FIELDS  # noqa: E402
from audit.worker.records import SCHEMA_VERSION  # noqa: E402


def _catalogue_size() -> int:
    import audit.probes  # noqa: F401  (registers the catalogue; imports no library)
    from audit import registry

    return len(list(registry.iter_cases(registry.all_probes())))


#: A synthetic run has as many rows as a real run of the whole catalogue.
CASES_PER_RUN = _catalogue_size()
PROBES = 60

#: Environment axes that rotate between nightly runs (24 environments).
AXES = {
    "python_version": ["3.10.14", "3.11.7", "3.12.4"],
    "torch_version": ["2.4.1", "2.13.0"],
    "numpy_version": ["1.26.4", "2.4.6"],
    "cpu_capability": ["AVX2", "AVX512"],
}


def _cases(rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Per-case constant columns: probe ids, params, dtypes and a base float32 sample."""
    n = CASES_PER_RUN
    probe_idx = np.arange(n) % PROBES
    probes = np.array([f"torch.synthetic_{i:02d}" if i % 2 else f"numpy.random.synthetic_{i:02d}"
                       for i in probe_idx])
    params = np.array([json.dumps({"seed": int(i), "size": 1000}, separators=(",", ":")) for i in range(n)])
    base = rng.standard_normal((n, 16)).astype("<f4")
    return {"probe": probes, "params": params, "base": base}


def _streams(cases: Dict[str, np.ndarray], rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Fingerprints and samples of stream 0 (everyone), 1 (the planted odd stream), 2 (drift)."""
    n = CASES_PER_RUN
    fps = [np.array([f"{s:02x}{i:030x}" for i in range(n)]) for s in range(3)]
    other = rng.standard_normal((n, 16)).astype("<f4")
    drift = (cases["base"].view("<u4") + rng.integers(0, 3, (n, 16), dtype=np.uint32)).view("<f4")
    samples = [np.array([row.tobytes().hex() for row in arr]) for arr in (cases["base"], other, drift)]
    return {"fp": np.stack(fps), "sample": np.stack(samples)}


def _environment(k: int) -> Dict[str, Optional[str]]:
    env: Dict[str, Optional[str]] = {name: None for name in FIELDS}
    env.update(os="Linux", arch="x86_64", cpu_model="Synthetic CPU", cpu_count="16", num_threads="16",
               python_implementation="CPython", pandas_version="3.1.1", xxhash_version="3.5.0",
               deterministic_algorithms="False", blas="numpy:openblas; torch:mkl")
    for name, values in AXES.items():
        env[name] = values[k % len(values)]
        k //= len(values)
    env["machine_id"] = f"linux-x86_64-{'a' if env['cpu_capability'] == 'AVX512' else 'b'}0000000"
    return env


def _run_table(night: int, env_k: int, const: Dict[str, pa.Array], streams: Dict[str, np.ndarray],
               rng: np.random.Generator) -> pa.Table:
    """One run: stream choice per case follows the planted splits."""
    n = CASES_PER_RUN
    env = _environment(env_k)
    choice = np.zeros(n, dtype=np.int64)
    choice[0:40] = 1 if env["torch_version"] == "2.4.1" else 0  # split by torch_version
    choice[40:60] = 2 if env["cpu_capability"] == "AVX2" else 0  # drift split by cpu_capability
    status = np.array(["ok"] * n, dtype=object)
    status[n - 10:n] = "unsupported" if env["python_version"] == "3.10.14" else "ok"
    if rng.random() < 0.01:
        status[300] = "error"
    fp = streams["fp"][choice, np.arange(n)].astype(object)
    fp[100] = f"{rng.integers(1 << 62):032x}"  # a nondeterministic case
    sample = streams["sample"][choice, np.arange(n)]
    run_id = f"{night:08d}{env_k:04d}" + "0" * 20
    started = f"2026-{1 + night // 28 % 12:02d}-{1 + night % 28:02d}T02:{env_k % 60:02d}:00.000000Z"
    cols = dict(const)
    cols.update(fingerprint=pa.array(fp), sample=pa.array(sample), status=pa.array(status),
                repeat_identical=pa.array(np.ones(n, dtype=bool)), run_id=pa.array([run_id] * n),
                run_started=pa.array([started] * n))
    for name in FIELDS:
        cols[name] = pa.array([env[name]] * n, type=pa.string())
    meta = {META_SCHEMA: str(SCHEMA_VERSION).encode(), META_RUN_ID: run_id.encode(),
            META_ENV: json.dumps(env, sort_keys=True).encode()}
    arrays = [cols.get(name, pa.nulls(n, ARROW_SCHEMA.field(name).type)) for name in COLUMNS]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA.with_metadata(meta))


def generate(directory: str, rows: int, seed: int = 0) -> int:
    """Write ``rows // CASES_PER_RUN`` run files to ``directory`` (skipped if already there); return the count."""
    runs = max(1, rows // CASES_PER_RUN)
    os.makedirs(directory, exist_ok=True)
    existing = [n for n in os.listdir(directory) if n.endswith(".parquet")]
    if len(existing) == runs:
        return runs
    rng = np.random.default_rng(seed)
    cases = _cases(rng)
    streams = _streams(cases, rng)
    n = CASES_PER_RUN
    const = {
        "case_key": pa.array([f"{i:016x}" for i in range(n)]), "probe": pa.array(cases["probe"]),
        "probe_key": pa.array(cases["probe"]), "probe_version": pa.array(["v1"] * n),
        "kind": pa.array(["generator"] * n), "device": pa.array(["cpu"] * n),
        "params": pa.array(cases["params"]), "seed": pa.array(np.arange(n, dtype=np.int64)),
        "dtype": pa.array(["float32"] * n), "shape": pa.array(["[1000]"] * n),
        "sample_index": pa.array(["[0, 1, 2, 3, 4, 5, 6, 7, 8, 149, 291, 432, 574, 715, 857, 999]"] * n),
    }
    n_env = int(np.prod([len(v) for v in AXES.values()]))
    for k in range(runs):
        table = _run_table(k // n_env, k % n_env, const, streams, rng)
        pq.write_table(table, os.path.join(directory, f"run_{k:06d}.parquet"), compression="zstd")
    return runs


def measure(directory: str) -> Dict[str, float]:
    """Time one full comparison of ``directory`` in this process."""
    from audit.compare import compare_paths

    start = time.perf_counter()
    result = compare_paths([directory])
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    verdicts: Dict[str, int] = {}
    for f in result.findings:
        verdicts[f.verdict.value] = verdicts.get(f.verdict.value, 0) + 1
    return {"rows": result.rows, "runs": result.runs, "wall_s": wall, "peak_rss_mib": rss, "verdicts": verdicts}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="rows to compare (default: 1M and 10M)")
    parser.add_argument("--keep", default="/tmp/audit-bench", help="where generated files live")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child mode: measure one directory
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    lines: List[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"bench_compare: python -m audit compare over synthetic runs of {CASES_PER_RUN} cases each (the catalogue)\n"
        f"{machine()}")
    targets = {1_000_000: 3.0, 10_000_000: 30.0}
    for rows in args.rows or [1_000_000, 10_000_000]:
        directory = os.path.join(args.keep, f"rows_{rows}")
        t0 = time.perf_counter()
        runs = generate(directory, rows)
        say(f"{rows:>11,} rows: {runs} run files ready in {time.perf_counter() - t0:.1f} s")
        out = subprocess.run([sys.executable, __file__, "--measure", directory], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr)
            return 1
        r = json.loads(out.stdout)
        say(f"{r['rows']:>11,} rows, {r['runs']} runs: compare {r['wall_s']:.2f} s, peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB; verdicts {r['verdicts']}")
        if rows in targets:
            met = r["wall_s"] < targets[rows] and r["peak_rss_mib"] < 3 * 1024
            say(f"  target < {targets[rows]:g} s and < 3 GB: {'met' if met else 'MISSED'}")
    if not args.rows:  # the default sizes are the figures the README quotes
        publish("\n".join(lines), "compare")
    return 0




if __name__ == "__main__":
    sys.exit(main())
