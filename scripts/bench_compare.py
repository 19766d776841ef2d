"""Benchmark ``compare`` over a year of synthetic fleet results, next to the bare engine query.

Generates realistic run files (as many cases per run as the real catalogue has at the default
seed panel; 24 environments rotating over the runs of a year, start times spread over 2026; a
few planted splits: one by torch_version, one by cpu_capability with last-bit drift, one
nondeterministic case, a few errors and unsupported cases), written as the store writes them.
Then, in one run and over the same files, it times:

- the bare engine query, the yardstick: DuckDB ``SELECT case_key, count(DISTINCT fingerprint)
  FROM read_parquet(<files>) GROUP BY case_key`` (the cost of reading the data once);
- ``compare`` (footer checks, grouped outcomes, verdicts, attribution, difference kinds);
- both again on the same runs compacted by ``python -m audit compact`` (one file per month).

Each measurement runs in a fresh subprocess, so its peak RSS is its own (VmHWM of the process's
own memory on Linux: ru_maxrss would carry the parent's peak across fork and exec).  Wall
and CPU seconds are both shown: on a loaded machine CPU seconds are the steadier figure.

    python scripts/bench_compare.py                      # 10M and 100M rows (~9 GB of files for 100M)
    python scripts/bench_compare.py --rows 1000000       # one size
    python scripts/bench_compare.py --keep /data/bench   # where generated files live (reused)
    python scripts/bench_compare.py --cases 1651         # cases per run (default: the catalogue's count)
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, List, Optional

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bench import machine, publish  # noqa: E402

from audit.store.runfile import (  # noqa: E402
    ARROW_SCHEMA,
    COLUMNS,
    META_ENV,
    META_RUN_ID,
    META_SCHEMA,
    META_STARTED,
    write_parquet,
)
from audit.worker.environment import FIELDS  # noqa: E402
from audit.worker.records import SCHEMA_VERSION  # noqa: E402

#: rows -> (seconds, peak RSS MiB) targets for compare (issue 13); compare must also stay
#: within RATIO times the bare query.
TARGETS = {10_000_000: (5.0, None), 100_000_000: (60.0, 4096.0)}
RATIO = 1.5
PROBES = 60

#: Environment axes that rotate between runs (24 environments).
AXES = {
    "python_version": ["3.10.14", "3.11.7", "3.12.4"],
    "torch_version": ["2.4.1", "2.13.0"],
    "numpy_version": ["1.26.4", "2.4.6"],
    "cpu_capability": ["AVX2", "AVX512"],
}
N_ENV = int(np.prod([len(v) for v in AXES.values()]))


def _catalogue_size() -> int:
    import audit.probes  # noqa: F401  (registers the catalogue; imports no library)
    from audit import registry

    return len(list(registry.iter_cases(registry.all_probes())))


# --------------------------------------------------------------------------- generating


class Synthetic:
    """The per-case constants and the three streams every synthetic run chooses from."""

    def __init__(self, cases: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n = cases
        probes = np.array([f"torch.synthetic_{i % PROBES:02d}" if i % 2 else f"numpy.random.synthetic_{i % PROBES:02d}"
                           for i in range(cases)])
        params = [json.dumps({"seed": int(i), "size": 1000}, separators=(",", ":")) for i in range(cases)]
        base = rng.standard_normal((cases, 16)).astype("<f4")
        other = rng.standard_normal((cases, 16)).astype("<f4")
        drift = (base.view("<u4") + rng.integers(0, 3, (cases, 16), dtype=np.uint32)).view("<f4")
        self.fps = np.stack([np.array([f"{s:02x}{i:030x}" for i in range(cases)]) for s in range(3)])
        self.samples = np.stack([np.array([row.tobytes().hex() for row in arr]) for arr in (base, other, drift)])
        self.blocks = np.stack([np.array([bytes.fromhex(fp[:16]) for fp in fps]) for fps in self.fps])
        self.const = {
            "case_key": pa.array([f"{i:016x}" for i in range(cases)]), "probe": pa.array(probes),
            "probe_key": pa.array(probes), "probe_version": pa.array(["v1"] * cases),
            "kind": pa.array(["generator"] * cases), "device": pa.array(["cpu"] * cases), "params": pa.array(params),
            "seed": pa.array(np.arange(cases, dtype=np.int64)).cast(ARROW_SCHEMA.field("seed").type),
            "hash_algorithm": pa.array(["xxh3_128"] * cases), "dtype": pa.array(["float32"] * cases),
            "shape": pa.array(["[1000]"] * cases), "block_elements": pa.array(np.full(cases, 1000, np.int64)),
            "sample_index": pa.array(["[0, 1, 2, 3, 4, 5, 6, 7, 8, 149, 291, 432, 574, 715, 857, 999]"] * cases),
        }

    def run_table(self, k: int, runs: int) -> pa.Table:
        """Run ``k`` of ``runs`` (spread over 2026): its stream per case follows the planted splits."""
        rng = np.random.default_rng(k)
        n, env = self.n, _environment(k % N_ENV)
        choice = np.zeros(n, dtype=np.int64)
        choice[0:40] = 1 if env["torch_version"] == "2.4.1" else 0  # split by torch_version
        choice[40:60] = 2 if env["cpu_capability"] == "AVX2" else 0  # drift split by cpu_capability
        status = np.array(["ok"] * n, dtype=object)
        status[n - 10:n] = "unsupported" if env["python_version"] == "3.10.14" else "ok"
        if rng.random() < 0.01:
            status[300] = "error"
        fp = self.fps[choice, np.arange(n)].astype(object)
        fp[100] = f"{rng.integers(1 << 62):032x}"  # a nondeterministic case
        run_id = f"{k:012x}" + "0" * 20
        day = dt.datetime(2026, 1, 1) + dt.timedelta(seconds=int(k * 365 * 86400 // max(runs, 1)))
        started = day.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        cols: Dict[str, Any] = dict(self.const)
        cols.update(fingerprint=pa.array(fp), sample=pa.array(self.samples[choice, np.arange(n)]),
                    blocks=pa.array(self.blocks[choice, np.arange(n)], pa.binary()), status=pa.array(status),
                    repeat_identical=pa.array(np.ones(n, dtype=bool)), run_id=pa.array([run_id] * n),
                    run_started=pa.array([started] * n))
        for name in FIELDS:
            cols[name] = pa.array([env[name]] * n, type=pa.string())
        meta = {META_SCHEMA: str(SCHEMA_VERSION).encode(), META_RUN_ID: run_id.encode(),
                META_STARTED: started.encode(), META_ENV: json.dumps(env, sort_keys=True).encode()}
        arrays = [cols.get(name, pa.nulls(n, ARROW_SCHEMA.field(name).type)) for name in COLUMNS]
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA.with_metadata(meta))


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


def _write_some(directory: str, first: int, last: int, runs: int, cases: int) -> None:
    synthetic = Synthetic(cases)
    for k in range(first, last):
        path = os.path.join(directory, f"run_{k:06d}.parquet")
        if not os.path.exists(path):
            write_parquet([synthetic.run_table(k, runs)], path + ".tmp")  # as the store writes
            os.replace(path + ".tmp", path)


def generate(directory: str, rows: int, cases: int, workers: int = 2) -> int:
    """Write ``rows // cases`` run files to ``directory`` (those already there are kept); return the count."""
    runs = max(1, rows // cases)
    os.makedirs(directory, exist_ok=True)
    step = -(-runs // workers)
    with ProcessPoolExecutor(workers) as pool:
        for f in [pool.submit(_write_some, directory, s, min(runs, s + step), runs, cases)
                  for s in range(0, runs, step)]:
            f.result()
    return runs


# --------------------------------------------------------------------------- measuring (child processes)


def _usage() -> Dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": r.ru_utime + r.ru_stime, "peak_rss_mib": _peak_rss_kib(r) / 1024}


def _peak_rss_kib(r: Any) -> float:
    """This process's own peak RSS: Linux keeps the larger of the parent's ru_maxrss (at fork) and
    the child's across execve, so a child of a large parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(r.ru_maxrss)


def measure_bare(directory: str) -> Dict[str, Any]:
    import duckdb

    files = sorted(glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True))
    start, before = time.perf_counter(), _usage()["cpu_s"]
    got = duckdb.connect().execute("SELECT case_key, count(DISTINCT fingerprint) FROM read_parquet(?) "
                                   "GROUP BY case_key", [files]).fetchall()
    wall, after = time.perf_counter() - start, _usage()
    return {"wall_s": wall, "cpu_s": after["cpu_s"] - before, "peak_rss_mib": after["peak_rss_mib"],
            "files": len(files), "cases": len(got)}


def measure_compare(directory: str) -> Dict[str, Any]:
    from audit.compare import compare_paths

    start, before = time.perf_counter(), _usage()["cpu_s"]
    result = compare_paths([directory])
    wall, after = time.perf_counter() - start, _usage()
    return {"wall_s": wall, "cpu_s": after["cpu_s"] - before, "peak_rss_mib": after["peak_rss_mib"],
            "rows": result.rows, "runs": result.runs, "counts": {k: v for k, v in result.counts().items() if v}}


def measure_compact(source: str, dest: str) -> Dict[str, Any]:
    from audit.store.compact import compact

    start, before = time.perf_counter(), _usage()["cpu_s"]
    done = compact([source], dest)
    wall, after = time.perf_counter() - start, _usage()
    return {"wall_s": wall, "cpu_s": after["cpu_s"] - before, "peak_rss_mib": after["peak_rss_mib"],
            "written": len(done.written), "runs": done.runs}


def _child(mode: str, *paths: str) -> Dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--measure", mode, *paths], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the table


def _size(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows:,}"


def _cell(r: Dict[str, Any]) -> str:
    return f"{r['wall_s']:.1f} s ({r['cpu_s']:.0f} cpu-s), {r['peak_rss_mib']:.0f} MiB"


def _verdict(rows: int, bare: Dict[str, Any], cmp: Dict[str, Any]) -> str:
    ratio = cmp["wall_s"] / bare["wall_s"]
    seconds, mib = TARGETS.get(rows, (None, None))
    misses = []
    if seconds is not None and cmp["wall_s"] >= seconds:
        misses.append(f"< {seconds:g} s")
    if mib is not None and cmp["peak_rss_mib"] >= mib:
        misses.append(f"< {mib / 1024:g} GB")
    if ratio > RATIO:
        misses.append(f"<= {RATIO}x bare")
    wanted = [f"< {seconds:g} s" if seconds else "", f"< {mib / 1024:g} GB" if mib else "", f"<= {RATIO}x bare"]
    return f"{', '.join(w for w in wanted if w)}: " + ("met" if not misses else "MISSED " + ", ".join(misses))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="rows to compare (default: 10M and 100M)")
    parser.add_argument("--keep", default=os.environ.get("AUDIT_BENCH_DATA", "/tmp/audit-bench"),
                        help="where generated files live (reused if present)")
    parser.add_argument("--no-compact", action="store_true", help="skip the compacted measurements")
    parser.add_argument("--cases", type=int, help="cases per run (default: as many as the catalogue has)")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    if args.measure:
        mode, *paths = args.measure
        result = {"bare": measure_bare, "compare": measure_compare, "compact": measure_compact}[mode](*paths)
        print(json.dumps(result))
        return 0
    cases = args.cases or _catalogue_size()
    lines: List[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    say(f"bench_compare: compare vs the bare DuckDB query over the same synthetic runs "
        f"({cases} cases per run)\n{machine()}\nload average (1 min) at start: {load:.2f} "
        "(other work on the machine inflates wall times; CPU seconds are steadier)")
    table = ["| rows | layout | files | bare query | compare | compare / bare | target |",
             "|---|---|---|---|---|---|---|"]
    for rows in args.rows or [10_000_000, 100_000_000]:
        directory = os.path.join(args.keep, f"rows_{rows}_cases_{cases}")
        t0 = time.perf_counter()
        runs = generate(directory, rows, cases)
        say(f"{_size(rows)} rows: {runs} run files ready in {time.perf_counter() - t0:.0f} s "
            f"({_du(directory) / 2**30:.1f} GiB)")
        layouts = [("one file per run", directory)]
        if not args.no_compact:
            packed = directory + "_compacted"
            if not os.path.isdir(packed):
                c = _child("compact", directory, packed)
                say(f"  compacted into {c['written']} month files in {_cell(c)} ({_du(packed) / 2**30:.1f} GiB)")
            layouts.append(("compacted", packed))
        for layout, where in layouts:
            _child("bare", where)  # untimed: the files into the page cache, so neither side pays it
            bare, cmp = _child("bare", where), _child("compare", where)
            say(f"  {layout}: bare {_cell(bare)}; compare {_cell(cmp)}; {cmp['rows']:,} rows, {cmp['runs']} runs, "
                f"{cmp['counts']}")
            table.append(f"| {_size(rows)} | {layout} | {bare['files']:,} | {_cell(bare)} | {_cell(cmp)} | "
                         f"{cmp['wall_s'] / bare['wall_s']:.2f}x | {_verdict(rows, bare, cmp)} |")
    say("")
    for line in table:
        say(line)
    if not args.rows:  # the default sizes are the figures the README quotes
        publish("\n".join(lines), "compare")
    return 0


def _du(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(directory) for f in names)


if __name__ == "__main__":
    sys.exit(main())
