"""Build the committed stream history: the catalogue on CPU for every minor release (latest patch).

    python scripts/build_history.py                      # torch and numpy, everything missing
    python scripts/build_history.py --library torch --minors 2.0,2.4,2.13
    python scripts/build_history.py --manifest-only      # only (re)write results/history/MANIFEST.json
    nox -s history                                       # this, then docs/stream-changes.md

What it audits is audit/history/plan.py's SERIES (torch 2.0 to the newest on Python 3.11
with numpy 1.26.4; numpy 1.19-1.26 on Python 3.9 and 1.26 to the newest on 3.12).  The
releases come from the package index (pip index versions; yanked releases skipped).

Resumable: a release whose run file in results/history/<library>/ was made with the current
catalogue (same probe keys and versions) is skipped; a stale one is replaced after the new
run is written.  Disk: each cell is deleted after its audit and its torch wheel dropped from
uv's cache (--keep-cells keeps both); the build stops before a cell when less than
--min-free-gb is free.  Each audit appends a line (wall times, cell size) to builds.jsonl.

After each run it adds or replaces (and at the end) it rewrites MANIFEST.json: the releases of
each library and the sha256 of each run file, which ``advise`` checks before it reads the
history (audit/history/manifest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from audit.errors import AuditError  # noqa: E402
from audit.history import manifest, plan  # noqa: E402
from audit.history import releases as rel  # noqa: E402
from audit.runner import cells  # noqa: E402
from audit.runner.cells import audit_cell  # noqa: E402


def catalogue(globs: Tuple[str, ...]) -> Set[Tuple[str, str]]:
    """(probe key, probe version) of every probe the series audits, as this checkout has them."""
    import audit.probes  # noqa: F401
    from audit import registry

    return {(key, p.version) for key, p in registry.select(list(globs)).items()}


def existing(folder: str, library: str) -> Dict[Tuple[str, str], List[Tuple[str, Set[Tuple[str, str]]]]]:
    """(release, python) -> [(run file, its probe keys and versions)] already in the history."""
    from audit.history import changes
    from audit.store.runfile import read_run_file

    out: Dict[Tuple[str, str], List[Tuple[str, Set[Tuple[str, str]]]]] = {}
    if not os.path.isdir(folder):
        return out
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".parquet") or name.startswith("."):
            continue
        path = os.path.join(folder, name)
        snap = changes.snapshot(path, library)
        table = read_run_file(path, ["probe_key", "probe_version"]).to_pylist()
        out.setdefault((snap.version, snap.python), []).append(
            (path, {(r["probe_key"], r["probe_version"]) for r in table}))
    return out


def releases_of(series: plan.Series, given: Optional[str]) -> List[str]:
    """The latest patch of every minor release of the series that can be audited."""
    if given:
        candidates = [v for v in given.split(",") if v]
        yanked: Set[str] = set()
        installable = None
    else:
        candidates, installable = rel.index_versions(series.library, series.python)
        yanked = rel.yanked_versions(series.library) or set()
    finals = [v for v in candidates if rel.parse(v) is not None and series.covers(v) and v not in yanked
              and rel.compatibility(series.library, v, series.python) is None
              and (installable is None or v in installable)]
    return plan.latest_patches(finals)


def build_one(series: plan.Series, version: str, folder: str, keep: bool) -> Dict[str, object]:
    """Build the cell, audit the series' probes in it, clean up; the figures of the build."""
    cell = series.cell(version)
    start = time.perf_counter()
    python = cells.build(cell, log=print)
    built = time.perf_counter()
    size = _du(cells.location(cell))
    packages = cells.heavy(cells.installed(cell))
    try:
        path = audit_cell(python, folder, [a for p in series.probes for a in ("--probe", p)])
    finally:
        if not keep:
            cells.remove(cell)
            cells.prune_cache(packages)
    return {"library": series.library, "version": version, "python": series.python, "cell": cell.name,
            "build_s": round(built - start, 1), "audit_s": round(time.perf_counter() - built, 1),
            "cell_gb": round(size / 1e9, 2), "file": os.path.basename(path),
            "made": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _du(folder: str) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(base, f)).st_size
            except OSError:
                pass
    return total


def build(args: argparse.Namespace) -> int:
    failures = 0
    minors = {rel.minor(m + ".0" if m.count(".") == 1 else m) for m in args.minors.split(",")} if args.minors else None
    for series in plan.SERIES:
        if args.library and series.library not in args.library:
            continue
        folder = os.path.join(args.results, series.library)
        want = catalogue(series.probes)
        have = existing(folder, series.library)
        for version in releases_of(series, args.versions):
            if minors is not None and rel.minor(version) not in minors:
                continue
            if args.after and rel.key(version) <= rel.key(args.after):
                continue
            runs = have.get((version, series.python), [])
            if any(keys == want for _, keys in runs):
                print(f"have {series.library} {version} on Python {series.python}")
                continue
            if cells.disk_free_gb() < args.min_free_gb and not cells.exists(series.cell(version)):
                print(f"stopping: {cells.disk_free_gb():.0f} GB free, under --min-free-gb {args.min_free_gb}")
                manifest.write(args.results)
                return 1
            print(f"auditing {series.library} {version} on Python {series.python}", flush=True)
            try:
                record = build_one(series, version, folder, args.keep_cells)
            except AuditError as exc:
                print(f"  failed: {exc}")
                failures += 1
                continue
            for stale, _ in runs:  # replaced by the run just written (another catalogue)
                os.remove(stale)
            print(f"  built in {record['build_s']} s ({record['cell_gb']} GB), audited in {record['audit_s']} s")
            with open(os.path.join(args.results, "builds.jsonl"), "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            manifest.write(args.results)
    manifest.write(args.results)
    return 1 if failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--library", action="append", choices=["torch", "numpy"], help="only this library (repeatable)")
    p.add_argument("--results", default=os.path.join(ROOT, "results", "history"), metavar="DIR")
    p.add_argument("--minors", metavar="2.0,2.4", help="only these minor releases")
    p.add_argument("--after", metavar="VERSION", help="only releases newer than VERSION (the weekly job)")
    p.add_argument("--versions", metavar="V1,V2", help="candidate releases instead of the package index")
    p.add_argument("--keep-cells", action="store_true", help="keep each cell and the uv cache (fast re-runs, GBs)")
    p.add_argument("--min-free-gb", type=float, default=15.0, metavar="GB")
    p.add_argument("--manifest-only", action="store_true",
                   help="write MANIFEST.json for the run files there are, build nothing")
    args = p.parse_args()
    if args.manifest_only:
        print(f"wrote {manifest.write(args.results)}")
        return 0
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    cells.export_pyenv()
    os.makedirs(args.results, exist_ok=True)
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
